/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OpenPrivateConnection(): a socket on which the daemon serves its
 * interfaces with no bus in between. Its calls are the opener's (uid,
 * quotas), its holds go when it closes, the number open per uid and in all
 * is bounded, garbage on it costs only that connection, and nothing is left
 * behind. Clients through libbufbroker (bb_client_open_private) and busctl.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bufbroker.h"
#include "harness.h"

static int lib_connect(bb_client **ret) {
        return bb_client_new_address(ret, H->address);
}

/* As uid 65534: create on a private connection; the buffer is 65534's, its
 * contents reach the bus side; closing the private connection drops it. */
static int nobody_creates_privately(void *userdata) {
        uint64_t *ret_id = userdata;
        bb_client *c = NULL, *p = NULL;
        bb_buffer *buf = NULL, *seen = NULL;
        char *addr;
        size_t size;
        int r;

        r = lib_connect(&c);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_client_open_private(c, &p);
        child_check(r == 0, "open private: %s (%s)", strerror(-r), bb_client_error_message(c) ?: "");
        r = bb_client_monitor(p, NULL, NULL);
        child_check(r == 0, "unsubscribing is always fine: %d", r);
        child_check(bb_client_open_private(p, &c) == -EINVAL, "a private connection opens no other");

        r = bb_buffer_create(p, "private", 4096, 0, 0, &buf);
        child_check(r == 0, "create on the private connection: %s (%s)", strerror(-r),
                    bb_client_error_message(p) ?: "");
        child_check(bb_buffer_owner_uid(buf) == getuid(), "owner %u, want the opener's uid %u",
                    (unsigned) bb_buffer_owner_uid(buf), (unsigned) getuid());
        r = bb_buffer_map(buf, (void **) &addr, &size);
        child_check(r == 0, "map: %s", strerror(-r));
        memcpy(addr, "over the private socket", 24);
        /* the bus connection of the same uid sees it */
        r = bb_buffer_get(c, bb_buffer_id(buf), &seen);
        child_check(r == 0, "get through the bus: %s", strerror(-r));
        child_check(bb_buffer_size(seen) == 4096, "size %" PRIu64, bb_buffer_size(seen));
        *ret_id = bb_buffer_id(buf);
        bb_buffer_unref(seen);
        bb_buffer_unref(buf);           /* unmaps, closes our fd; the hold stays */
        /* the hold goes with the connection */
        bb_client_unref(p);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_private_connection_is_the_openers) {
        /* shared with the child, which tells the id */
        uint64_t *id = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        Snapshot base;
        int r;

        ck_assert(id != MAP_FAILED);
        baseline_after_warmup(&base);
        released_watch();
        r = run_as(NOBODY_UID, nobody_creates_privately, id, 20000);
        ck_assert_int_eq(r, 0);
        ck_assert_uint_gt(*id, 0);
        ck_assert_msg(released_wait(*id, scaled_ms(5000)), "buffer %" PRIu64 " outlived its private connection", *id);
        assert_back_to(&base, "after the private connection closed");
        munmap(id, sizeof(uint64_t));
}
END_TEST

/* A private connection monitors like a bus connection: it hears, with the
 * reason, of its uid's buffer released on the bus connection (released,
 * then its fd closed: it goes by the lease). */
static void heard(const char *path, uint64_t id, const char *reason, void *userdata) {
        char *out = userdata;

        (void) path;
        snprintf(out, 64, "%" PRIu64 " %s", id, reason);
}

static int monitor_on_private(void *userdata) {
        bb_client *c = NULL, *p = NULL;
        bb_buffer *b = NULL;
        char got[64] = "", want[64];
        int r;

        (void) userdata;
        child_check(lib_connect(&c) == 0, "connect");
        child_check(bb_client_open_private(c, &p) == 0, "open private");
        r = bb_client_monitor_reason(p, heard, got);
        child_check(r == 0, "monitor on a private connection: %s", strerror(-r));
        child_check(bb_buffer_create(c, "heard-privately", 4096, BB_CREATE_PERSISTENT, 0, &b) == 0, "create");
        snprintf(want, sizeof(want), "%" PRIu64 " lease", bb_buffer_id(b));
        child_check(bb_buffer_release(b) == 0, "release");
        b = bb_buffer_unref(b);
        for (unsigned i = 0; i < 50 && !got[0]; i++)
                child_check(bb_client_process(p, 100 * 1000) >= 0, "process");
        child_check(strcmp(got, want) == 0, "heard \"%s\", want \"%s\"", got, want);
        bb_client_unref(p);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_private_connection_monitors) {
        ck_assert_int_eq(run_as(NOBODY_UID, monitor_on_private, NULL, 20000), 0);
}
END_TEST

/* At the limit: 16 per uid; the 17th is QuotaExceeded (-EDQUOT), naming
 * the count; closing one makes room; another uid is still served. */
static int nobody_fills_its_private_connections(void *userdata) {
        bb_client *c = NULL, *p[17] = {};
        int r;

        child_check(lib_connect(&c) == 0, "connect");
        for (unsigned i = 0; i < 16; i++) {
                r = bb_client_open_private(c, &p[i]);
                child_check(r == 0, "private connection %u of 16: %s (%s)", i + 1, strerror(-r),
                            bb_client_error_message(c) ?: "");
        }
        r = bb_client_open_private(c, &p[16]);
        child_check(r == -EDQUOT, "the 17th private connection: %d, want -EDQUOT", r);
        child_check(strcmp(bb_client_error_name(c) ?: "", BB_ERROR_QUOTA_EXCEEDED) == 0, "error %s",
                    bb_client_error_name(c) ?: "(none)");
        child_check(strstr(bb_client_error_message(c), "16 private connections"), "message: %s",
                    bb_client_error_message(c));
        /* while full, root still gets one */
        child_check(write(*(int *) userdata, "f", 1) == 1, "signal the parent");
        child_check(read(*((int *) userdata + 1), &(char) { 0 }, 1) == 1, "wait for the parent");
        bb_client_unref(p[3]);
        /* the daemon sees the close at its next loop round; ask until then */
        for (unsigned i = 0; i < 100; i++) {
                r = bb_client_open_private(c, &p[16]);
                if (r != -EDQUOT)
                        break;
                usleep(10000);
        }
        child_check(r == 0, "after closing one: %s", strerror(-r));
        for (unsigned i = 0; i < 17; i++)
                if (i != 3)
                        bb_client_unref(p[i]);
        bb_client_unref(c);
        return 0;
}

static int root_opens_one(void *userdata) {
        bb_client *c = NULL, *p = NULL;
        bb_buffer *buf = NULL;
        int r;

        child_check(lib_connect(&c) == 0, "connect");
        r = bb_client_open_private(c, &p);
        child_check(r == 0, "root while uid 65534 is at its limit: %s", strerror(-r));
        r = bb_buffer_create(p, "root-private", 4096, 0, 0, &buf);
        child_check(r == 0, "create: %s", strerror(-r));
        bb_buffer_unref(buf);
        bb_client_unref(p);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_private_connection_limit) {
        int to_parent[2], to_child[2], pair[2];
        Snapshot base;
        char ch;
        pid_t pid;

        baseline_after_warmup(&base);
        ck_assert_int_eq(pipe2(to_parent, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(to_child, O_CLOEXEC), 0);
        pair[0] = to_parent[1];
        pair[1] = to_child[0];
        pid = fork_as(NOBODY_UID, nobody_fills_its_private_connections, pair);
        ck_assert_int_eq(read(to_parent[0], &ch, 1), 1);
        ck_assert_int_eq(run_as(AS_ROOT, root_opens_one, NULL, 20000), 0);
        ck_assert_int_eq(write(to_child[1], "g", 1), 1);
        ck_assert_int_eq(wait_child(pid, 30000), 0);
        close(to_parent[0]);
        close(to_parent[1]);
        close(to_child[0]);
        close(to_child[1]);
        assert_back_to(&base, "after every private connection closed");
}
END_TEST

/* Garbage on a private socket ends that connection only; a half-open one
 * (never authenticated) too; busctl can open one. */
START_TEST(test_private_connection_garbage) {
        static const char garbage[] = "\0AUTH NONSENSE\r\nBEGIN\r\n\x6c\x01\x00\x01\xff\xff\xff\xff";
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        Snapshot base;
        int fd, idle_fd;

        baseline_after_warmup(&base);
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                         "OpenPrivateConnection", &error, &reply, "") >= 0,
                      "OpenPrivateConnection: %s", error.message);
        ck_assert(sd_bus_message_read(reply, "h", &fd) > 0);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        reply = sd_bus_message_unref(reply);
        ck_assert(sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                     "OpenPrivateConnection", &error, &reply, "") >= 0);
        ck_assert(sd_bus_message_read(reply, "h", &idle_fd) > 0);
        idle_fd = fcntl(idle_fd, F_DUPFD_CLOEXEC, 3);
        reply = sd_bus_message_unref(reply);

        ck_assert_int_eq(write(fd, garbage, sizeof(garbage)), (ssize_t) sizeof(garbage));
        close(fd);
        close(idle_fd);         /* never said a word */
        {
                _cleanup_run_result_ RunResult r = { 0 };

                busctl(&r, AS_ROOT, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                       "OpenPrivateConnection");
                ck_assert_run_status(&r, 0);
                ck_assert_msg(strncmp(r.out, "h ", 2) == 0, "busctl: %s", r.out);
        }
        assert_back_to(&base, "after garbage on private connections");
}
END_TEST

/* bufbrokerctl --private: the same uid, the same output; monitor needs the
 * bus and says so. */
START_TEST(test_ctl_private) {
        _cleanup_run_result_ RunResult c = { 0 }, i = { 0 }, rel = { 0 };
        char want[64], id[32];
        Snapshot base;
        char *end;

        baseline_after_warmup(&base);
        ctl(&c, NOBODY_UID, NULL, "--private", "create", "--size", "4K", "--name", "by-ctl", "--persistent");
        ck_assert_run_status(&c, 0);
        snprintf(id, sizeof(id), "%llu", strtoull(c.out, &end, 10));
        ck_assert_msg(*end == '\n', "create printed '%s'", c.out);
        ctl(&i, NOBODY_UID, NULL, "--private", "info", id);
        ck_assert_run_status(&i, 0);
        snprintf(want, sizeof(want), "OwnerUid:   %u\n", (unsigned) NOBODY_UID);
        ck_assert_msg(strstr(i.out, want), "info:\n%s", i.out);
        ctl(&rel, NOBODY_UID, NULL, "--private", "release", id);
        ck_assert_run_status(&rel, 0);
        assert_back_to(&base, "after bufbrokerctl --private");
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_ctl_private);
        tcase_add_test(tc, test_private_connection_is_the_openers);
        tcase_add_test(tc, test_private_connection_monitors);
        tcase_add_test(tc, test_private_connection_limit);
        tcase_add_test(tc, test_private_connection_garbage);
}

int main(void) {
        Suite *s = suite_create("private");

        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
