/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's side of systemd's file descriptor store (daemon/fdstore.c),
 * outside the VM. systemd itself is tested in the VM (tests/vm/
 * guest-systemd.sh: restarts, the watchdog, a lost bus connection). Here the
 * test stands in for the service manager at its two interfaces, because only
 * so can it hand the daemon a state systemd would never produce, or a
 * notify socket that fails:
 *
 * - restore: fds passed at 3, 4, ... with $LISTEN_FDS, $LISTEN_PID and
 *   $LISTEN_FDNAMES, exactly as systemd passes its store to a new instance;
 * - store: $NOTIFY_SOCKET, where the daemon sends FDSTORE=1 messages.
 *
 * Cases: a saved state comes back (buffer, contents, token, a holder that
 * left is dropped, ids go on); a state in an unknown format is dropped
 * whole; a buffer that cannot be stored is refused; the daemon keeps no
 * more fds than --fdstore-max (FileDescriptorStoreMax=) allows; a state that
 * cannot be written leaks nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#define CONTENT "restored across a restart"
#define TOKEN "0123456789abcdef0123456789abcdef"

static int memfd_with(const char *name, const char *text, size_t size, bool seal) {
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t) size), 0);
        ck_assert_int_eq(pwrite(fd, text, strlen(text), 0), (ssize_t) strlen(text));
        if (seal)
                ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
        return fd;
}

/* A saved state with buffer 5 (persistent, owner 65534, named "kept"), a
 * token for it, and a hold of a connection that is gone; the buffer's fd. */
static void start_with_state(unsigned version, int fds[2]) {
        char state[1024];

        snprintf(state, sizeof(state),
                 "bufbroker-state %u 10\n"
                 "buffer 5 65534 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b657074\n"
                 "token 5 " TOKEN " 65534 4294967295 1 0 18446744073709551615\n"
                 "hold 5 65534 :1.999\n",
                 version);
        fds[0] = memfd_with("bb-test-state", state, strlen(state), false);
        fds[1] = memfd_with("bb-test-kept", CONTENT, 4096, true);
        harness_daemon_spawn = (PbusSpawn) {
                .listen_fds = fds,
                .n_listen_fds = 2,
                .listen_fdnames = "state:buf-5-0",
        };
        harness_restart_daemon(NULL);
        close(fds[0]);
        close(fds[1]);
}

/* Does the daemon hold an fd of the memfd named @name? */
static bool daemon_has_memfd(const char *name) {
        char dir[64], link[128], target[256];
        bool found = false;

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int) H->daemon_pid);
        for (int fd = 0; fd < 1024; fd++) {
                ssize_t n;

                snprintf(link, sizeof(link), "%s/%d", dir, fd);
                n = readlink(link, target, sizeof(target) - 1);
                if (n < 0)
                        continue;
                target[n] = 0;
                if (strstr(target, name))
                        found = true;
        }
        return found;
}

START_TEST(test_restore_a_saved_state) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_created_ Created next = {};
        char *path = NULL, buf[sizeof(CONTENT)] = "";
        bool read_only = false;
        int fds[2], fd = -1;

        start_with_state(2, fds);
        ck_assert_msg(list_has(NULL, 5), "buffer 5 was not restored");
        ck_assert_msg(call_open(NULL, TOKEN, &path, &fd, &read_only, &error) >= 0, "the saved token: %s",
                      error.message);
        ck_assert_str_eq(path, BB_BUFFER_PATH_PREFIX "/5");
        ck_assert(read_only);
        ck_assert_int_eq(pread(fd, buf, strlen(CONTENT), 0), (ssize_t) strlen(CONTENT));
        ck_assert_str_eq(buf, CONTENT);
        /* The holder that left while the daemon was down has let go (the
         * buffer stays: it is persistent); ids go on from the saved next id. */
        ck_assert_uint_eq(stats_get(BB_STAT_CLIENTS), 1);       /* us, by Open */
        create_memfd(NULL, "next", 4096, false, 0, &next);
        ck_assert_uint_ge(next.id, 10);
        close(fd);
        free(path);
}
END_TEST

/* A state in a format this daemon does not know is dropped whole, never
 * guessed at: nothing restored, the store's fds closed. */
START_TEST(test_unknown_state_format_is_dropped) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_created_ Created next = {};
        int fds[2], r;

        start_with_state(3, fds);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), 0);
        ck_assert(!list_has(NULL, 5));
        r = call_open(NULL, TOKEN, NULL, NULL, NULL, &error);
        assert_bus_error(&error, r, BB_ERROR_NO_SUCH_TOKEN, NULL, "the token of a dropped state");
        sd_bus_error_free(&error);
        ck_assert_msg(!daemon_has_memfd("bb-test-"), "the daemon kept an fd of the dropped state");
        create_memfd(NULL, "next", 4096, false, 0, &next);
        ck_assert_uint_eq(next.id, 1);
}
END_TEST

/* A buffer whose fds cannot be stored would be lost at the next restart:
 * the create fails, and leaves nothing. */
START_TEST(test_store_failure_refuses_the_buffer) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        Snapshot base;
        int r;

        harness_daemon_spawn = (PbusSpawn) { .notify_socket = "/run/bb-test-no-such-dir/notify" };
        harness_restart_daemon(NULL);
        stats_read(&base);
        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                               &error, &reply, "sta{sv}", "unstorable", (uint64_t) 4096, 1, BB_OPT_PERSISTENT, "b",
                               1);
        assert_bus_error(&error, r, SD_BUS_ERROR_FAILED, "file descriptor store", "create without a store");
        sd_bus_error_free(&error);
        assert_back_to(&base, "after the refused create");
}
END_TEST

/* --fdstore-max= (FileDescriptorStoreMax= of the unit): the daemon keeps no
 * more fds for buffers than the store takes, less one for the state, and a
 * full budget is QuotaExceeded, not a buffer the next restart would lose. */
START_TEST(test_fd_budget_fits_the_store) {
        static const char *const args[] = { "--fdstore-max=8", NULL };
        char notify[108];
        Created c[4] = {};
        uint64_t limit = 0;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        pid_t drainer;
        int fd, r;

        drainer = notify_drainer_start(notify, &fd);
        harness_daemon_spawn = (PbusSpawn) { .notify_socket = notify };
        harness_restart_daemon(args);

        ck_assert(sd_bus_get_property(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Limits",
                                      &error, &reply, "a{sv}") >= 0);
        ck_assert(sd_bus_message_enter_container(reply, 'a', "{sv}") > 0);
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;
                uint64_t v;

                ck_assert(sd_bus_message_read(reply, "s", &key) > 0);
                ck_assert(sd_bus_message_read(reply, "v", "t", &v) > 0);
                if (strcmp(key, BB_LIMIT_MAX_FDS) == 0)
                        limit = v;
                ck_assert(sd_bus_message_exit_container(reply) >= 0);
        }
        sd_bus_message_unref(reply);
        ck_assert_uint_eq(limit, 7);
        /* One uid alone gets half of it, rounded up (the fair share). */
        for (unsigned i = 0; i < 4; i++)
                create_memfd(NULL, "stored", 4096, false, 0, &c[i]);
        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                               &error, NULL, "sta{sv}", "one-too-many", (uint64_t) 4096, 0);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, "file descriptors", "create over the fd budget");
        sd_bus_error_free(&error);
        for (unsigned i = 0; i < 4; i++)
                created_done(&c[i]);
        notify_drainer_stop(drainer, fd);
}
END_TEST

/* A state that cannot be written leaves no fd behind. Here fdopen() fails
 * through an LD_PRELOAD shim (fault-fdopen.c): glibc's fails only when
 * malloc does, which nothing else can bring about inside the daemon. */
START_TEST(test_unwritable_state_leaks_no_fd) {
        char notify[108];
        Created c = {};
        Snapshot base;
        int fd;
        pid_t drainer;

        drainer = notify_drainer_start(notify, &fd);
        harness_daemon_spawn = (PbusSpawn) { .notify_socket = notify, .preload = harness_env("FAULT_FDOPEN_SO") };
        harness_restart_daemon(NULL);
        baseline_after_warmup(&base);
        /* Each create and each release changes the state: 20 saves fail.
         * The fds come back to the baseline (without the fix: 20 more). */
        for (unsigned i = 0; i < 10; i++) {
                create_memfd(NULL, "unsaved", 4096, false, 0, &c);
                ck_assert_int_ge(call_release(test_bus(), c.path, NULL), 0);
                created_done(&c);
        }
        assert_back_to(&base, "after 20 failed saves");
        notify_drainer_stop(drainer, fd);
}
END_TEST

static void setup_bus_only(BusKind kind) {
        harness_daemon_spawn = (PbusSpawn) {};
        harness_start(kind, false, NULL);
}

static void setup_dbus_daemon_only(void) {
        setup_bus_only(BUS_DBUS_DAEMON);
}

static void setup_dbus_broker_only(void) {
        setup_bus_only(BUS_DBUS_BROKER);
}

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_restore_a_saved_state);
        tcase_add_test(tc, test_unknown_state_format_is_dropped);
        tcase_add_test(tc, test_store_failure_refuses_the_buffer);
        tcase_add_test(tc, test_fd_budget_fits_the_store);
        tcase_add_test(tc, test_unwritable_state_leaks_no_fd);
}

int main(void) {
        Suite *s = suite_create("fdstore");

        harness_add_tcase(s, "fd store: dbus-daemon", setup_dbus_daemon_only, add_tests);
        harness_add_tcase(s, "fd store: dbus-broker", setup_dbus_broker_only, add_tests);
        return harness_main(s);
}
