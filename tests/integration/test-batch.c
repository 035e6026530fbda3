/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Batches: CreateMemfds (up to 16 buffers and fds in one reply, all or none)
 * and ReleaseBuffers (up to 1024, all or none), through sd-bus and
 * libbufbroker, on both buses. Every refusal leaves the daemon as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bufbroker.h"
#include "harness.h"

/* CreateMemfds(name, size, count) on @bus; returns the call's result, the
 * reply in *ret_reply. */
static int create_many(sd_bus *bus, const char *name, uint64_t size, uint32_t count, sd_bus_error *error,
                       sd_bus_message **ret_reply) {
        return sd_bus_call_method(bus ?: test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                  "CreateMemfds", error, ret_reply, "stua{sv}", name, size, count, 0);
}

/* ReleaseBuffers(paths) */
static int release_many(sd_bus *bus, char **paths, size_t n, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus ?: test_bus(), &m, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                           "ReleaseBuffers");
        ck_assert_int_ge(r, 0);
        ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "o"), 0);
        for (size_t i = 0; i < n; i++)
                ck_assert_int_ge(sd_bus_message_append(m, "o", paths[i]), 0);
        ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        return sd_bus_call(bus ?: test_bus(), m, 0, error, NULL);
}

/* The reply's paths (strdup'd) and fds (dup'd: the fd is the lease, a
 * buffer whose fds all close is released) after checking each fd is a
 * memfd of @size. */
static size_t read_created(sd_bus_message *reply, uint64_t size, char **paths, int *fds) {
        const char *path;
        uint64_t real;
        size_t n = 0;
        int fd;

        ck_assert_int_gt(sd_bus_message_enter_container(reply, 'a', "(oht)"), 0);
        while (sd_bus_message_read(reply, "(oht)", &path, &fd, &real) > 0) {
                struct stat st;

                ck_assert_uint_eq(real, size);
                ck_assert_int_eq(fstat(fd, &st), 0);
                ck_assert_int_eq((uint64_t) st.st_size, size);
                for (size_t i = 0; i < n; i++)
                        ck_assert_str_ne(paths[i], path);
                fds[n] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                ck_assert_int_ge(fds[n], 0);
                paths[n++] = strdup(path);
        }
        return n;
}

static void free_created(char **paths, int *fds, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(paths[i]);
                safe_close(fds[i]);
        }
}

START_TEST(test_create_and_release_sixteen) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *paths[BB_CREATE_BATCH_MAX];
        int fds[BB_CREATE_BATCH_MAX];
        Snapshot base, full;
        size_t n;

        baseline_after_warmup(&base);
        released_watch();
        ck_assert_msg(create_many(NULL, "batch", 4096, BB_CREATE_BATCH_MAX, &error, &reply) >= 0,
                      "CreateMemfds 16: %s", error.message);
        n = read_created(reply, 4096, paths, fds);
        sd_bus_message_unref(reply);
        ck_assert_uint_eq(n, BB_CREATE_BATCH_MAX);      /* 16 fds in one reply, on this bus too */
        stats_read(&full);
        ck_assert_uint_eq(full.buffers, base.buffers + 16);
        ck_assert_uint_eq(full.bytes, base.bytes + 16 * 4096);

        ck_assert_msg(release_many(NULL, paths, n, &error) >= 0, "ReleaseBuffers: %s", error.message);
        /* Released, but our fds keep each alive (the fd is the lease) */
        for (size_t i = 0; i < n; i++) {
                ck_assert(list_has(NULL, buffer_id_from_path(paths[i])));
                fds[i] = safe_close(fds[i]);
        }
        for (size_t i = 0; i < n; i++)
                ck_assert_msg(released_wait(buffer_id_from_path(paths[i]), scaled_ms(5000)),
                              "no BufferReleased for %s", paths[i]);
        free_created(paths, fds, n);
        assert_back_to(&base, "after releasing the batch");
}
END_TEST

START_TEST(test_bad_batches_leave_nothing) {
        static const uint32_t counts[] = { 0, BB_CREATE_BATCH_MAX + 1, UINT32_MAX };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *paths[3], *two[2];
        int fds[3] = { -1, -1, -1 };
        Snapshot base;
        int r;

        baseline_after_warmup(&base);
        for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
                r = create_many(NULL, "bad", 4096, counts[i], &error, NULL);
                assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "buffers per call", "CreateMemfds count");
                sd_bus_error_free(&error);
        }
        r = create_many(NULL, "", 0, 2, &error, NULL);
        assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "size", "CreateMemfds size 0");
        sd_bus_error_free(&error);
        r = create_many(NULL, "\x01", 4096, 2, &error, NULL);
        assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "name", "CreateMemfds bad name");
        sd_bus_error_free(&error);
        assert_back_to(&base, "after refused CreateMemfds");

        /* Release: empty, a path twice, one that is no buffer: none goes. */
        ck_assert(create_many(NULL, "kept", 4096, 2, &error, &reply) >= 0);
        ck_assert_uint_eq(read_created(reply, 4096, paths, fds), 2);
        reply = sd_bus_message_unref(reply);
        r = release_many(NULL, paths, 0, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "No buffers", "ReleaseBuffers of none");
        sd_bus_error_free(&error);
        two[0] = paths[0];
        two[1] = paths[0];
        r = release_many(NULL, two, 2, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "twice", "ReleaseBuffers with a duplicate");
        sd_bus_error_free(&error);
        paths[2] = buffer_path(999999);
        r = release_many(NULL, paths, 3, &error);
        assert_bus_error(&error, r, BB_ERROR_NO_SUCH_BUFFER, "999999", "ReleaseBuffers with an unknown one");
        sd_bus_error_free(&error);
        ck_assert(list_has(NULL, buffer_id_from_path(paths[0])));
        ck_assert(list_has(NULL, buffer_id_from_path(paths[1])));
        ck_assert(release_many(NULL, paths, 2, &error) >= 0);
        free_created(paths, fds, 3);
        assert_back_to(&base, "after the refused ReleaseBuffers");
}
END_TEST

/* Another uid's buffer in the list: NotOwner, and its own stay too. */
typedef struct Mixed {
        char *theirs;
        const char *address;
} Mixed;

static int nobody_releases_mixed(void *userdata) {
        const Mixed *mx = userdata;
        bb_client *c = NULL;
        bb_buffer *bufs[3] = {};
        int r;

        child_check(bb_client_new_address(&c, mx->address) == 0, "connect");
        r = bb_buffer_create_many(c, "mine", 4096, 0, 0, 2, bufs);
        child_check(r == 0, "bb_buffer_create_many: %s", strerror(-r));
        child_check(bb_buffer_id(bufs[0]) != bb_buffer_id(bufs[1]), "two buffers");
        child_check(bb_buffer_get(c, buffer_id_from_path(mx->theirs), &bufs[2]) == -EPERM,
                    "root's buffer is not visible to uid 65534");
        /* a handle of another client cannot even be passed */
        {
                bb_client *c2 = NULL;
                bb_buffer *other = NULL;

                child_check(bb_client_new_address(&c2, mx->address) == 0, "connect");
                child_check(bb_buffer_create(c2, "other", 4096, 0, 0, &other) == 0, "create");
                bufs[2] = other;
                child_check(bb_buffer_release_many(bufs, 3) == -EINVAL, "handles of two clients");
                bb_buffer_unref(other);
                bb_client_unref(c2);
        }
        r = bb_buffer_release_many(bufs, 2);
        child_check(r == 0, "bb_buffer_release_many: %s", strerror(-r));
        bb_buffer_unref(bufs[0]);
        bb_buffer_unref(bufs[1]);
        bb_client_unref(c);
        return 0;
}

static int nobody_cannot_release_roots(void *userdata) {
        const Mixed *mx = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *paths[3];
        sd_bus *bus = NULL;
        int r;

        child_check(bus_connect(&bus) >= 0, "connect");
        r = create_many(bus, "mine", 4096, 2, &error, &reply);
        child_check(r >= 0, "CreateMemfds: %s", error.message);
        child_check(sd_bus_message_enter_container(reply, 'a', "(oht)") > 0, "reply");
        for (int i = 0; i < 2; i++) {
                const char *p;
                uint64_t s;
                int fd;

                child_check(sd_bus_message_read(reply, "(oht)", &p, &fd, &s) > 0, "entry");
                paths[i] = strdup(p);
        }
        paths[2] = mx->theirs;
        r = release_many(bus, paths, 3, &error);
        child_check(r < 0 && sd_bus_error_has_name(&error, BB_ERROR_NOT_OWNER), "got %s", error.name ?: "success");
        child_check(strstr(error.message, "none released"), "message: %s", error.message);
        sd_bus_error_free(&error);
        /* its own two are still there, and go now */
        r = release_many(bus, paths, 2, &error);
        child_check(r >= 0, "ReleaseBuffers of its own: %s", error.message);
        free(paths[0]);
        free(paths[1]);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return 0;
}

START_TEST(test_other_uids_buffer_in_the_list) {
        _cleanup_created_ Created roots = { .fd = -1 };
        Snapshot base;
        Mixed mx = { .address = H->address };

        baseline_after_warmup(&base);
        create_memfd(NULL, "roots", 4096, true, 0, &roots);
        stats_read(&base);
        mx.theirs = roots.path;
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_cannot_release_roots, &mx, 20000), 0);
        ck_assert(list_has(NULL, roots.id));
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_releases_mixed, &mx, 20000), 0);
        assert_back_to(&base, "after uid 65534's batches");
        ck_assert_int_ge(call_release(NULL, roots.path, NULL), 0);
}
END_TEST

/* bufbrokerctl create --count N, release ID...: one call each. */
START_TEST(test_ctl_batches) {
        _cleanup_run_result_ RunResult c = { 0 }, bad = { 0 }, partial = { 0 }, rel = { 0 }, over = { 0 };
        char ids[3][32], *line, *save = NULL;
        Snapshot base;
        int n = 0;

        baseline_after_warmup(&base);
        ctl(&c, NOBODY_UID, NULL, "create", "--size", "4K", "--count", "3", "--persistent");
        ck_assert_run_status(&c, 0);
        for (line = strtok_r(c.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                ck_assert_int_lt(n, 3);
                snprintf(ids[n++], sizeof(ids[0]), "%s", line);
        }
        ck_assert_int_eq(n, 3);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), base.buffers + 3);

        ctl(&over, NOBODY_UID, NULL, "create", "--size", "4K", "--count", "17");
        ck_assert_run_status(&over, 2);
        /* one unknown: none released */
        ctl(&partial, NOBODY_UID, NULL, "release", ids[0], "999999");
        ck_assert_run_status(&partial, 1);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), base.buffers + 3);
        ctl(&bad, NOBODY_UID, NULL, "release", ids[0], "x");
        ck_assert_run_status(&bad, 2);

        ctl(&rel, NOBODY_UID, NULL, "release", ids[0], ids[1], ids[2]);
        ck_assert_run_status(&rel, 0);
        assert_back_to(&base, "after bufbrokerctl release of three");
}
END_TEST

/* At the quota: 20 per uid. 16 fit; 5 more would not, so none are made;
 * 4 fit exactly. */
static const char *const quota_args[] = { "--max-buffers-per-uid=20", NULL };

START_TEST(test_batch_at_the_quota) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *paths[BB_CREATE_BATCH_MAX + 4];
        int fds[BB_CREATE_BATCH_MAX + 4];
        Snapshot base, after;
        size_t n;
        int r;

        stats_read(&base);
        ck_assert(create_many(NULL, "q", 4096, 16, &error, &reply) >= 0);
        n = read_created(reply, 4096, paths, fds);
        reply = sd_bus_message_unref(reply);
        r = create_many(NULL, "q", 4096, 5, &error, NULL);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, "5 more", "5 over a quota with room for 4");
        sd_bus_error_free(&error);
        stats_read(&after);
        ck_assert_uint_eq(after.buffers, base.buffers + 16);   /* none of the 5 */
        ck_assert(create_many(NULL, "q", 4096, 4, &error, &reply) >= 0);
        n += read_created(reply, 4096, paths + n, fds + n);
        reply = sd_bus_message_unref(reply);
        ck_assert_uint_eq(n, 20);
        ck_assert(release_many(NULL, paths, n, &error) >= 0);
        free_created(paths, fds, n);
        assert_back_to(&base, "after the quota batches");
}
END_TEST

static void setup_quota_daemon(void) {
        harness_start(BUS_DBUS_DAEMON, true, quota_args);
}

static void setup_quota_broker(void) {
        harness_start(BUS_DBUS_BROKER, true, quota_args);
}

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_create_and_release_sixteen);
        tcase_add_test(tc, test_bad_batches_leave_nothing);
        tcase_add_test(tc, test_other_uids_buffer_in_the_list);
        tcase_add_test(tc, test_ctl_batches);
}

static void add_quota_tests(TCase *tc) {
        tcase_add_test(tc, test_batch_at_the_quota);
}

int main(void) {
        Suite *s = suite_create("batch");

        harness_add_tcases(s, NULL, add_tests);
        harness_add_tcase(s, "quota dbus-daemon", setup_quota_daemon, add_quota_tests);
        harness_add_tcase(s, "quota dbus-broker", setup_quota_broker, add_quota_tests);
        return harness_main(s);
}
