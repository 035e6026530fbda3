/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Create(kind, name, size, options), the entry point of every kind but
 * v4l2: what every kind shares (the reply's shape, the options, the
 * refusals). Each kind's own behaviour is tested in test-kind-*.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

/* Create on the test's connection; r and *error as the call left them. On
 * success *ret_path (strdup'ed) and *ret_fd (a dup, -1 if none came). */
static int create(const char *kind, uint64_t size, const char *opt, char type, const void *value,
                  char **ret_path, int *ret_fd, uint64_t *ret_size, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *path, *key;
        int fd = -1, r;

        r = sd_bus_message_new_method_call(H->bus, &m, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                           "Create");
        ck_assert_int_ge(r, 0);
        r = sd_bus_message_append(m, "sst", kind, "create", size);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && opt && type == 'b')
                r = sd_bus_message_append(m, "{sv}", opt, "b", *(const int *) value);
        else if (r >= 0 && opt && type == 's')
                r = sd_bus_message_append(m, "{sv}", opt, "s", (const char *) value);
        else if (r >= 0 && opt && type == 't')
                r = sd_bus_message_append(m, "{sv}", opt, "t", *(const uint64_t *) value);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        ck_assert_int_ge(r, 0);
        r = sd_bus_call(H->bus, m, 0, error, &reply);
        if (r < 0)
                return r;

        ck_assert_int_ge(sd_bus_message_read(reply, "o", &path), 0);
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "h"), 0);
        while ((r = sd_bus_message_read(reply, "h", &fd)) > 0)
                ck_assert_msg(*ret_fd < 0, "more than one fd");
        ck_assert_int_ge(r, 0);
        ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);
        *ret_fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
        *ret_size = 0;
        ck_assert_int_ge(sd_bus_message_enter_container(reply, 'a', "{sv}"), 0);
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                ck_assert_int_ge(sd_bus_message_read(reply, "s", &key), 0);
                if (strcmp(key, BB_INFO_SIZE) == 0)
                        ck_assert_int_ge(sd_bus_message_read(reply, "v", "t", ret_size), 0);
                else if (strcmp(key, BB_INFO_KIND) == 0) {
                        const char *k;

                        ck_assert_int_ge(sd_bus_message_read(reply, "v", "s", &k), 0);
                        ck_assert_str_eq(k, kind);
                } else
                        ck_assert_int_ge(sd_bus_message_skip(reply, "v"), 0);
                ck_assert_int_ge(sd_bus_message_exit_container(reply), 0);
        }
        ck_assert_int_ge(r, 0);
        *ret_path = strdup(path);
        return 0;
}

/* A memfd through Create: one read-write fd of the rounded size, info as
 * Open's, the same buffer as CreateMemfd makes; released, nothing left. */
START_TEST(test_create_memfd) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t size, page = (uint64_t) sysconf(_SC_PAGESIZE);
        Snapshot base;
        char *path = NULL;
        int fd = -1, yes = 1;
        void *p;

        baseline_after_warmup(&base);
        released_watch();
        ck_assert_msg(create(BB_KIND_MEMFD, 1, BB_OPT_PREFAULT, 'b', &yes, &path, &fd, &size, &error) >= 0,
                      "Create: %s", error.message);
        ck_assert_uint_eq(size, page);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert(p != MAP_FAILED);
        memcpy(p, "made", 4);
        munmap(p, size);
        ck_assert_msg(ftruncate(fd, 2 * size) < 0 && errno == EPERM, "a memfd from Create is not sealed");
        ck_assert_uint_eq(stats_get(BB_STAT_BYTES), base.bytes + page);
        ck_assert_int_ge(call_release(NULL, path, &error), 0);
        close(fd);
        ck_assert_msg(released_wait(buffer_id_from_path(path), scaled_ms(5000)), "not released");
        free(path);
        assert_back_to(&base, "Create memfd released");
}
END_TEST

/* busctl can call it and read the reply. */
START_TEST(test_create_busctl) {
        _cleanup_run_result_ RunResult r = {};
        Snapshot base;

        baseline_after_warmup(&base);
        busctl(&r, AS_ROOT, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", "ssta{sv}",
               BB_KIND_MEMFD, "from-busctl", "100", "0");
        ck_assert_run_status(&r, 0);
        ck_assert_msg(strncmp(r.out, "oaha{sv} \"" BB_BUFFER_PATH_PREFIX "/", 10 + strlen(BB_BUFFER_PATH_PREFIX)) == 0,
                      "busctl printed: %s", r.out);
        ck_assert_msg(strstr(r.out, "\"kind\" s \"memfd\""), "busctl printed: %s", r.out);
        /* busctl exited: its connection and fd are gone, and the buffer with them. */
        assert_back_to(&base, "busctl's buffer");
}
END_TEST

/* What is refused, with the name of what was wrong, and nothing left. */
START_TEST(test_create_refusals) {
        static const char *const bad_kinds[] = { "", "bogus", BB_KIND_V4L2, "MEMFD", "memfd " };
        static const char *const not_memfd[] = { BB_KIND_POSIX, BB_KIND_SYSV, BB_KIND_FILE };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t size, zero = 0;
        char *path = NULL;
        Snapshot base;
        int fd = -1, yes = 1, r;

        baseline_after_warmup(&base);
        for (size_t i = 0; i < ELEMENTSOF(bad_kinds); i++) {
                char want[64];

                snprintf(want, sizeof(want), "kind '%s'", bad_kinds[i]);
                r = create(bad_kinds[i], 4096, NULL, 0, NULL, &path, &fd, &size, &error);
                assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, want, bad_kinds[i]);
                sd_bus_error_free(&error);
        }
        for (size_t i = 0; i < ELEMENTSOF(not_memfd); i++) {
                r = create(not_memfd[i], 4096, BB_OPT_HUGETLB, 'b', &yes, &path, &fd, &size, &error);
                assert_bus_error(&error, r, SD_BUS_ERROR_NOT_SUPPORTED, "'hugetlb'", not_memfd[i]);
                ck_assert_msg(strstr(error.message, not_memfd[i]), "%s", error.message);
                sd_bus_error_free(&error);
        }
        r = create(BB_KIND_MEMFD, 0, NULL, 0, NULL, &path, &fd, &size, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "size", "size 0");
        sd_bus_error_free(&error);
        r = create(BB_KIND_MEMFD, 4096, BB_OPT_TTL_USEC, 't', &zero, &path, &fd, &size, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "'ttl-usec'", "ttl 0");
        sd_bus_error_free(&error);
        r = create(BB_KIND_MEMFD, 4096, BB_OPT_PERSISTENT, 's', "yes", &path, &fd, &size, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "'persistent'", "persistent as a string");
        sd_bus_error_free(&error);
        r = create(BB_KIND_MEMFD, 4096, "frobnicate", 'b', &yes, &path, &fd, &size, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, "'frobnicate'", "unknown option");
        sd_bus_error_free(&error);
        r = create(BB_KIND_MEMFD, UINT64_MAX, NULL, 0, NULL, &path, &fd, &size, &error);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, NULL, "2^64-1 bytes");
        sd_bus_error_free(&error);
        assert_back_to(&base, "refused creates");
}
END_TEST

static void setup_daemon(void) {
        harness_start(BUS_DBUS_DAEMON, true, NULL);
}
static void setup_broker(void) {
        harness_start(BUS_DBUS_BROKER, true, NULL);
}

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_create_memfd);
        tcase_add_test(tc, test_create_busctl);
        tcase_add_test(tc, test_create_refusals);
}

int main(void) {
        Suite *s = suite_create("Create");

        harness_add_tcase(s, "dbus-daemon", setup_daemon, add_tests);
        harness_add_tcase(s, "dbus-broker", setup_broker, add_tests);
        return harness_main(s);
}
