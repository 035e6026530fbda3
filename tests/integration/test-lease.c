/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fd is the lease (daemon/lease.c): a memfd buffer's holds go, without
 * a bus message, once every open file description of it that the daemon
 * handed out is gone: its fds closed AND its mappings unmapped, in every
 * process; not a moment before. A buffer released by Release() stays, and
 * stays charged, while such a description is alive.
 *
 * "Not released" is checked after a pause (LINGER_MS) long enough for the
 * daemon to have read the close events it got; "released" by waiting for
 * BufferReleased.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define LINGER_MS 300
#define SIZE 4096u

static void *map(int fd, size_t size, int prot) {
        void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);

        ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
        return p;
}

/* Still there after the daemon had time to read what it was told. */
static void assert_kept(uint64_t id, const char *context) {
        msleep((unsigned) scaled_ms(LINGER_MS));
        ck_assert_msg(!released_seen(id), "%s: buffer %" PRIu64 " was released", context, id);
        ck_assert_msg(list_has(NULL, id), "%s: buffer %" PRIu64 " is not listed", context, id);
}

static void assert_released(uint64_t id, const char *context) {
        ck_assert_msg(released_wait(id, scaled_ms(5000)), "%s: no BufferReleased for %" PRIu64, context, id);
}

/* The daemon warmed up (*base), BufferReleased watched, and a buffer of
 * ours in *c. */
static void begin(Snapshot *base, bool persistent, Created *c) {
        baseline_after_warmup(base);
        released_watch();
        create_memfd(NULL, "lease", SIZE, persistent, 0, c);
}

/* Released, and the daemon back at *base. */
static void end(uint64_t id, const Snapshot *base, const char *context) {
        assert_released(id, context);
        assert_back_to(base, context);
}

/* Its fd closed, its mapping alive: held; unmapped: released, and the
 * daemon is back where it was. Or the other way round: unmapped, its fd
 * still open: held; closed: released. */
static void close_and_unmap(bool close_first) {
        _cleanup_created_ Created c = { .fd = -1 };
        Snapshot base;
        void *p;

        begin(&base, false, &c);
        p = map(c.fd, SIZE, PROT_READ | PROT_WRITE);
        if (close_first)
                c.fd = safe_close(c.fd);
        else
                ck_assert_int_eq(munmap(p, SIZE), 0);
        assert_kept(c.id, close_first ? "fd closed, mapping alive" : "unmapped, fd open");
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), base.buffers + 1);

        if (close_first)
                ck_assert_int_eq(munmap(p, SIZE), 0);
        else
                c.fd = safe_close(c.fd);
        end(c.id, &base, "fd closed and unmapped");
}

START_TEST(test_close_then_unmap) {
        close_and_unmap(true);
}
END_TEST

START_TEST(test_unmap_then_close) {
        close_and_unmap(false);
}
END_TEST

/* The fd inherited by a child (the same description, shared): released only
 * once both have closed it. */
START_TEST(test_fd_shared_with_child) {
        _cleanup_created_ Created c = { .fd = -1 };
        Snapshot base;
        int go[2], status;
        pid_t child;
        char x = 0;

        begin(&base, false, &c);
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
                /* Keeps c.fd until told to go. */
                close(go[1]);
                (void) read(go[0], &x, 1);
                _exit(0);
        }
        close(go[0]);

        c.fd = safe_close(c.fd);
        assert_kept(c.id, "the child still has the fd");

        ck_assert_int_eq(write(go[1], &x, 1), 1);
        close(go[1]);
        ck_assert_int_eq(waitpid(child, &status, 0), child);
        end(c.id, &base, "parent and child closed the fd");
}
END_TEST

/* A second connection opens by token: its description keeps the buffer
 * after the creator's is gone, until it closes and unmaps it too. */
START_TEST(test_open_by_token) {
        _cleanup_created_ Created c = { .fd = -1 };
        sd_bus *other = NULL;
        char *token = NULL, *path = NULL;
        Snapshot base;
        int fd = -1;
        void *p;

        begin(&base, false, &c);
        ck_assert(call_share(NULL, c.path, false, (uid_t) -1, false, 0, &token, NULL) >= 0);
        ck_assert_int_ge(bus_connect(&other), 0);
        ck_assert(call_open(other, token, &path, &fd, NULL, NULL) >= 0);
        ck_assert_str_eq(path, c.path);

        c.fd = safe_close(c.fd);
        assert_kept(c.id, "the creator closed, the token holder has its fd");

        p = map(fd, SIZE, PROT_READ);
        fd = safe_close(fd);
        assert_kept(c.id, "the token holder closed its fd, its mapping alive");

        ck_assert_int_eq(munmap(p, SIZE), 0);
        assert_released(c.id, "every description gone");
        /* Both connections are still there: only the descriptions went. */
        sd_bus_flush_close_unref(other);
        free(token);
        free(path);
        assert_back_to(&base, "after the token holder unmapped");
}
END_TEST

/* A persistent buffer outlives its owner's last description: only the
 * owner's Release ends persistence. */
START_TEST(test_persistent_survives_close) {
        _cleanup_created_ Created c = { .fd = -1 };
        Snapshot base;

        begin(&base, true, &c);
        c.fd = safe_close(c.fd);
        assert_kept(c.id, "persistent, its fd closed");

        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        end(c.id, &base, "persistent, released by its owner, no description alive");
}
END_TEST

/* The daemon's own opens of the same memfd (the reopen for each holder, an
 * O_RDONLY reopen for a read-only share, OpenFds, the fd store's copy of
 * its fd) never end a lease while someone still maps the buffer. */
START_TEST(test_daemon_opens_release_nothing_early) {
        _cleanup_created_ Created c = { .fd = -1 };
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *other = NULL;
        char notify[108], *token = NULL;
        int sock, ro_fd = -1, fd;
        pid_t drainer;
        void *p;

        drainer = notify_drainer_start(notify, &sock);
        harness_daemon_spawn = (PbusSpawn) { .notify_socket = notify };
        harness_restart_daemon(NULL);

        released_watch();
        create_memfd(NULL, "lease", SIZE, false, 0, &c);
        p = map(c.fd, SIZE, PROT_READ | PROT_WRITE);
        c.fd = safe_close(c.fd);

        /* A read-only share opened by another connection, and closed. */
        ck_assert(call_share(NULL, c.path, true, (uid_t) -1, false, 0, &token, NULL) >= 0);
        ck_assert_int_ge(bus_connect(&other), 0);
        ck_assert(call_open(other, token, NULL, &ro_fd, NULL, NULL) >= 0);
        ro_fd = safe_close(ro_fd);
        /* OpenFds, read-only and not, and the fds dropped with the replies. */
        for (int ro = 0; ro < 2; ro++) {
                ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, c.path, BB_BUFFER_INTERFACE, "OpenFds",
                                                 &error, &reply, "a{sv}", 1, BB_OPT_READ_ONLY, "b", ro) >= 0,
                              "OpenFds: %s", error.message);
                ck_assert(sd_bus_message_enter_container(reply, 'a', "h") > 0);
                ck_assert(sd_bus_message_read(reply, "h", &fd) > 0);
                reply = sd_bus_message_unref(reply);
        }
        /* The other connection goes (its hold with it). */
        other = sd_bus_flush_close_unref(other);
        assert_kept(c.id, "the daemon's own opens came and went, a mapping is alive");
        ck_assert_msg(((volatile char *) p)[0] == 0, "the mapping reads");

        ck_assert_int_eq(munmap(p, SIZE), 0);
        assert_released(c.id, "the last mapping went");
        free(token);
        sd_bus_error_free(&error);
        notify_drainer_stop(drainer, sock);
        harness_daemon_spawn = (PbusSpawn) {};
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_close_then_unmap);
        tcase_add_test(tc, test_unmap_then_close);
        tcase_add_test(tc, test_fd_shared_with_child);
        tcase_add_test(tc, test_open_by_token);
        tcase_add_test(tc, test_persistent_survives_close);
}

/* The daemon started by the test, with a notify socket for its fd store. */
static void setup_bus_daemon_only(void) {
        harness_start(BUS_DBUS_DAEMON, false, NULL);
}

static void setup_bus_broker_only(void) {
        harness_start(BUS_DBUS_BROKER, false, NULL);
}

static void add_fdstore_tests(TCase *tc) {
        tcase_add_test(tc, test_daemon_opens_release_nothing_early);
}

/* --------------------------------------------------- quota boundary --- */

/* A uid may have two pages: a released buffer whose memory is still mapped
 * counts, so the next create is refused until it is unmapped. */
static const char *const quota_args[] = { "--max-bytes-per-uid=8K", NULL };

static void setup_quota_daemon(void) {
        harness_start(BUS_DBUS_DAEMON, true, quota_args);
}

static void setup_quota_broker(void) {
        harness_start(BUS_DBUS_BROKER, true, quota_args);
}

START_TEST(test_release_keeps_charge_while_mapped) {
        _cleanup_created_ Created c = { .fd = -1 }, d = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;
        void *p;

        released_watch();
        create_memfd(NULL, "full", 2 * SIZE, false, 0, &c);
        p = map(c.fd, 2 * SIZE, PROT_READ | PROT_WRITE);
        c.fd = safe_close(c.fd);
        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        assert_kept(c.id, "released, still mapped");

        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                               &error, NULL, "sta{sv}", "refused", (uint64_t) SIZE, 0);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, NULL, "create while a released buffer is mapped");
        sd_bus_error_free(&error);

        ck_assert_int_eq(munmap(p, 2 * SIZE), 0);
        assert_released(c.id, "released and unmapped");
        create_memfd(NULL, "fits", SIZE, false, 0, &d);
}
END_TEST

static void add_quota_tests(TCase *tc) {
        tcase_add_test(tc, test_release_keeps_charge_while_mapped);
}

int main(void) {
        Suite *s = suite_create("lease");

        harness_add_tcases(s, NULL, add_tests);
        harness_add_tcase(s, "fd store dbus-daemon", setup_bus_daemon_only, add_fdstore_tests);
        harness_add_tcase(s, "fd store dbus-broker", setup_bus_broker_only, add_fdstore_tests);
        harness_add_tcase(s, "quota dbus-daemon", setup_quota_daemon, add_quota_tests);
        harness_add_tcase(s, "quota dbus-broker", setup_quota_broker, add_quota_tests);
        return harness_main(s);
}
