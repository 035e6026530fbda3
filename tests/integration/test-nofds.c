/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A client whose connection did not negotiate fd passing (jeepney's default,
 * dbus-next without its native module) calls what returns fds. Neither bus
 * can deliver the reply, and what the client and the daemon see differs;
 * each is asserted as it is:
 *
 * - dbus-daemon refuses the reply, to the daemon (NotSupported), and lets
 *   no second reply through: the call runs into the client's own timeout.
 *   The daemon takes back what the reply handed out, logs the client and
 *   the cause, and refuses the client's next such call at once.
 * - dbus-broker shuts the client's connection down at once and tells the
 *   daemon nothing. The client's holds go when it closes; what would
 *   outlive it (a persistent buffer, a spent single-use token) the daemon
 *   takes back when the bus refuses the fd check that follows such a reply
 *   (bus-connection.c), and logs the client and the cause.
 *
 * And libbufbroker refuses such a connection itself (-EOPNOTSUPP), against
 * a stand-in bus that does not agree to fd passing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <systemd/sd-id128.h>

#include "bufbroker.h"
#include "harness.h"

#define SIZE 4096
/* The client's call timeout (waited out on dbus-daemon), and how soon an
 * answer must come otherwise, even on a loaded machine. */
#define CALL_TIMEOUT_MS 3000
#define ANSWER_MS 2000

static char log_path[64];

static void setup_log(void) {
        snprintf(log_path, sizeof(log_path), "/tmp/bb-test-nofds-%d.log", (int) getpid());
        (void) unlink(log_path);
        harness_daemon_spawn = (PbusSpawn) { .log_path = log_path };
}

static void setup_dbus_daemon(void) {
        setup_log();
        harness_start(BUS_DBUS_DAEMON, true, NULL);
}

static void setup_dbus_broker(void) {
        setup_log();
        harness_start(BUS_DBUS_BROKER, true, NULL);
}

/* The daemon's log so far (the caller frees it). */
static char *read_log(void) {
        FILE *f = fopen(log_path, "re");
        char *text = NULL;
        size_t size = 0;

        ck_assert_msg(f, "cannot open %s", log_path);
        text = calloc(1, 1 << 20);
        ck_assert_ptr_nonnull(text);
        size = fread(text, 1, (1 << 20) - 1, f);
        text[size] = 0;
        fclose(f);
        return text;
}

/* Wait until the log has a line with both @a and @b. */
static bool log_has(const char *a, const char *b, int timeout_ms) {
        uint64_t until = now_usec() + (uint64_t) scaled_ms(timeout_ms) * 1000;

        do {
                _cleanup_free_ char *text = read_log();

                for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
                        if (strstr(line, a) && strstr(line, b))
                                return true;
                msleep(50);
        } while (now_usec() < until);
        return false;
}

static sd_bus *connect_without_fds(char name[static 64]) {
        sd_bus *bus = NULL;
        const char *unique;

        ck_assert_int_ge(sd_bus_new(&bus), 0);
        ck_assert_int_ge(sd_bus_set_address(bus, H->address), 0);
        ck_assert_int_ge(sd_bus_set_bus_client(bus, 1), 0);
        ck_assert_int_ge(sd_bus_negotiate_fds(bus, 0), 0);
        ck_assert_int_ge(sd_bus_start(bus), 0);
        ck_assert_int_eq(sd_bus_can_send(bus, SD_BUS_TYPE_UNIX_FD), 0);
        ck_assert_int_ge(sd_bus_set_method_call_timeout(bus, (uint64_t) scaled_ms(CALL_TIMEOUT_MS) * 1000), 0);
        ck_assert_int_ge(sd_bus_get_unique_name(bus, &unique), 0);
        snprintf(name, 64, "%s", unique);
        return bus;
}

typedef enum Call {
        CALL_CREATE,
        CALL_CREATE_PERSISTENT,
        CALL_CREATE_BATCH,
        CALL_OPEN_TOKEN,
        CALL_OPEN_TOKEN_SINGLE_USE,
        CALL_OPEN_FDS,
} Call;

static const char *call_name(Call c) {
        static const char *const names[] = {
                [CALL_CREATE] = "CreateMemfd",
                [CALL_CREATE_PERSISTENT] = "CreateMemfd (persistent)",
                [CALL_CREATE_BATCH] = "CreateMemfds (persistent)",
                [CALL_OPEN_TOKEN] = "Open",
                [CALL_OPEN_TOKEN_SINGLE_USE] = "Open (single-use token)",
                [CALL_OPEN_FDS] = "OpenFds",
        };
        return names[c];
}

static int do_call(sd_bus *bus, Call c, const char *path, const char *token, sd_bus_error *error) {
        switch (c) {
        case CALL_CREATE:
        case CALL_CREATE_PERSISTENT:
                return sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                                          error, NULL, "sta{sv}", "nofds", (uint64_t) SIZE, 1, BB_OPT_PERSISTENT,
                                          "b", c == CALL_CREATE_PERSISTENT);
        case CALL_CREATE_BATCH:
                return sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfds",
                                          error, NULL, "stua{sv}", "nofds", (uint64_t) SIZE, 3, 1,
                                          BB_OPT_PERSISTENT, "b", 1);
        case CALL_OPEN_TOKEN:
        case CALL_OPEN_TOKEN_SINGLE_USE:
                return sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open", error,
                                          NULL, "sa{sv}", token, 0);
        case CALL_OPEN_FDS:
                return sd_bus_call_method(bus, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "OpenFds", error, NULL,
                                          "a{sv}", 0);
        }
        return -EINVAL;
}

/* One call from a connection without fd passing; then the daemon holds
 * nothing more than before, and its log names the client and the cause. */
static void check_call(Call c) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *token = NULL;
        Snapshot base, before;
        Created shared = { .fd = -1 };
        char name[64];
        uint64_t t0, waited_ms;
        sd_bus *bus;
        int r;

        baseline_after_warmup(&base);
        if (c == CALL_OPEN_TOKEN || c == CALL_OPEN_TOKEN_SINGLE_USE || c == CALL_OPEN_FDS) {
                /* root's buffer: a token for anyone, or (OpenFds) root's own. */
                create_memfd(NULL, "shared", SIZE, true, 0, &shared);
                if (c != CALL_OPEN_FDS)
                        ck_assert(call_share(NULL, shared.path, false, (uid_t) -1,
                                             c == CALL_OPEN_TOKEN_SINGLE_USE, 0, &token, NULL) >= 0);
        }
        stats_read(&before);

        bus = connect_without_fds(name);
        t0 = now_usec();
        r = do_call(bus, c, shared.path, token, &error);
        waited_ms = (now_usec() - t0) / 1000;
        fprintf(stderr, "[%s] %s without fd passing: %s (%s) after %" PRIu64 " ms\n", bus_kind_name(H->kind),
                call_name(c), error.name ?: strerror(-r), error.message ?: "-", waited_ms);
        ck_assert_msg(r < 0, "%s succeeded on a connection without fd passing", call_name(c));
        if (H->kind == BUS_DBUS_DAEMON) {
                ck_assert_msg(r == -ETIMEDOUT && waited_ms >= CALL_TIMEOUT_MS - 100,
                              "%s: %s (%d) after %" PRIu64 " ms, expected the client's own timeout", call_name(c),
                              strerror(-r), r, waited_ms);
                if (!log_has(name, "cannot take file descriptors", 5000)) {
                        _cleanup_free_ char *text = read_log();
                        ck_abort_msg("the daemon's log names not %s and the cause:\n%s", name, text);
                }
                assert_back_to(&before, call_name(c));
                /* Known now: its next such call is refused at once, and
                 * calls without fds still work. */
                sd_bus_error_free(&error);
                t0 = now_usec();
                r = do_call(bus, c, shared.path, token, &error);
                assert_bus_error(&error, r, SD_BUS_ERROR_NOT_SUPPORTED, "negotiate fd passing", "the next call");
                ck_assert_msg(now_usec() - t0 < (uint64_t) scaled_ms(ANSWER_MS) * 1000, "the next call waited");
                ck_assert_msg(sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, "org.freedesktop.DBus.Properties",
                                                 "Get", NULL, NULL, "ss", BB_MANAGER_INTERFACE, "Stats") >= 0,
                              "the connection still works for calls without fds");
        } else {
                ck_assert_msg(r == -ECONNRESET && waited_ms < (uint64_t) scaled_ms(ANSWER_MS),
                              "%s: %s (%d) after %" PRIu64 " ms, expected the bus to drop the client at once",
                              call_name(c), strerror(-r), r, waited_ms);
                if ((c == CALL_CREATE_PERSISTENT || c == CALL_CREATE_BATCH || c == CALL_OPEN_TOKEN_SINGLE_USE) &&
                    !log_has(name, "cannot take file descriptors", 5000)) {
                        _cleanup_free_ char *text = read_log();
                        ck_abort_msg("the daemon's log names not %s and the cause:\n%s", name, text);
                }
                /* Taken back before the client closed, where it would
                 * outlive it; the rest goes with the client. */
                if (c == CALL_CREATE_PERSISTENT || c == CALL_CREATE_BATCH || c == CALL_OPEN_TOKEN_SINGLE_USE)
                        assert_back_to(&before, call_name(c));
        }
        sd_bus_error_free(&error);
        bus = sd_bus_flush_close_unref(bus);
        assert_back_to(&before, call_name(c));

        if (shared.path) {
                /* The token is still there (a single-use one was given back). */
                if (token) {
                        int fd = -1;

                        ck_assert_msg(call_open(NULL, token, NULL, &fd, NULL, NULL) >= 0,
                                      "the token works after the undelivered Open");
                        safe_close(fd);
                }
                ck_assert(call_release(NULL, shared.path, NULL) >= 0);
                created_done(&shared);
        }
        assert_back_to(&base, "all released");
        (void) unlink(log_path);
}

START_TEST(test_create) { check_call(CALL_CREATE); }
END_TEST
START_TEST(test_create_persistent) { check_call(CALL_CREATE_PERSISTENT); }
END_TEST
START_TEST(test_create_batch) { check_call(CALL_CREATE_BATCH); }
END_TEST
START_TEST(test_open_token) { check_call(CALL_OPEN_TOKEN); }
END_TEST
START_TEST(test_open_token_single_use) { check_call(CALL_OPEN_TOKEN_SINGLE_USE); }
END_TEST
START_TEST(test_open_fds) { check_call(CALL_OPEN_FDS); }
END_TEST

/* Fresh connections that take fds, each checked before its first call:
 * served, and their persistent buffers stay after they go at once. */
START_TEST(test_quick_exit_keeps) {
        enum { ROUNDS = 40 };
        uint64_t ids[ROUNDS];

        for (unsigned i = 0; i < ROUNDS; i++) {
                Created c = { .fd = -1 };
                sd_bus *bus = NULL;

                ck_assert_int_ge(bus_connect(&bus), 0);
                create_memfd(bus, "quick", SIZE, true, 0, &c);
                ids[i] = c.id;
                created_done(&c);
                sd_bus_close_unref(bus);
        }
        msleep(300);
        for (unsigned i = 0; i < ROUNDS; i++)
                ck_assert_msg(list_has(NULL, ids[i]), "persistent buffer %" PRIu64 " (round %u) is gone", ids[i],
                              i);
        for (unsigned i = 0; i < ROUNDS; i++) {
                _cleanup_free_ char *path = buffer_path(ids[i]);
                ck_assert(call_release(NULL, path, NULL) >= 0);
        }
}
END_TEST

/* ---- the library refuses a connection without fd passing ------------- */

/* A stand-in for a bus that cannot pass fds (as over TCP): one sd-bus
 * server connection that does not agree to fd passing and answers Hello. */
static int on_hello(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return sd_bus_reply_method_return(m, "s", ":1.1");
}

static const sd_bus_vtable fake_bus_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Hello", NULL, "s", on_hello, 0),
        SD_BUS_VTABLE_END
};

static int serve_without_fds(void *userdata) {
        int listener = *(int *) userdata, fd;
        sd_bus *bus = NULL;
        sd_id128_t id;
        int r;

        fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        child_check(fd >= 0, "accept: %m");
        child_check(sd_id128_randomize(&id) >= 0, "id");
        child_check(sd_bus_new(&bus) >= 0 && sd_bus_set_fd(bus, fd, fd) >= 0 && sd_bus_set_server(bus, 1, id) >= 0 &&
                    sd_bus_negotiate_fds(bus, 0) >= 0 && sd_bus_start(bus) >= 0, "server setup");
        child_check(sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                             fake_bus_vtable, NULL) >= 0, "vtable");
        for (unsigned i = 0; i < 200; i++) {
                r = sd_bus_process(bus, NULL);
                if (r < 0)
                        break;          /* the client went */
                if (r == 0 && sd_bus_wait(bus, 50 * 1000) < 0)
                        break;
        }
        sd_bus_flush_close_unref(bus);
        return 0;
}

static int connect_library(void *userdata) {
        bb_client *c = NULL;
        int r = bb_client_new_address(&c, userdata);

        child_check(r == -EOPNOTSUPP, "bb_client_new_address on a bus without fd passing: %d (%s), want -EOPNOTSUPP",
                    r, strerror(-r));
        child_check(!c, "a client was made");
        return 0;
}

START_TEST(test_library_refuses_without_fds) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char address[sizeof(sa.sun_path) + 16];
        int listener;
        pid_t server;

        if (H->kind != BUS_DBUS_DAEMON)
                return;         /* no bus involved: once is enough */
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/nofds", H->dir);
        listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(listener, 0);
        ck_assert_int_eq(bind(listener, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(listener, 1), 0);
        snprintf(address, sizeof(address), "unix:path=%s", sa.sun_path);

        server = fork_as(AS_ROOT, serve_without_fds, &listener);
        ck_assert_int_eq(run_as(AS_ROOT, connect_library, address, scaled_ms(10000)), 0);
        ck_assert_int_eq(wait_child(server, scaled_ms(15000)), 0);
        close(listener);
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_create);
        tcase_add_test(tc, test_create_persistent);
        tcase_add_test(tc, test_create_batch);
        tcase_add_test(tc, test_open_token);
        tcase_add_test(tc, test_open_token_single_use);
        tcase_add_test(tc, test_open_fds);
        tcase_add_test(tc, test_quick_exit_keeps);
        tcase_add_test(tc, test_library_refuses_without_fds);
}

int main(void) {
        Suite *s = suite_create("nofds");

        /* The harness's fixtures, but for the daemon's log in a file. */
        harness_add_tcase(s, "dbus-daemon", setup_dbus_daemon, add_tests);
        harness_add_tcase(s, "dbus-broker", setup_dbus_broker, add_tests);
        return harness_main(s);
}
