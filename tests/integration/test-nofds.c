/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A client whose connection did not negotiate fd passing (jeepney's default,
 * dbus-next without its native module) calls what returns fds. Neither bus
 * can deliver such a reply, and neither tells the caller (dbus-daemon lets
 * the call run into the caller's timeout, dbus-broker shuts the caller's
 * connection down). The daemon asks first (bus-peer.c: a call carrying an
 * fd, which the bus refuses for such a client), so the caller gets
 * NotSupported at once, nothing is made or held for it, and the daemon's log
 * names the client and the cause.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define SIZE 4096
/* The client's call timeout, and how soon the error must come: an answer,
 * not the timeout, even on a loaded machine. */
#define CALL_TIMEOUT_MS 10000
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
        assert_bus_error(&error, r, SD_BUS_ERROR_NOT_SUPPORTED, "negotiate fd passing", call_name(c));
        ck_assert_msg(waited_ms < (uint64_t) scaled_ms(ANSWER_MS), "%s: the client waited %" PRIu64 " ms",
                      call_name(c), waited_ms);
        if (!log_has(name, "cannot take file descriptors", 5000)) {
                _cleanup_free_ char *text = read_log();
                ck_abort_msg("the daemon's log names not %s and the cause:\n%s", name, text);
        }
        /* The connection stays usable for what carries no fds, and its next
         * call that returns fds is refused the same way. */
        ck_assert_msg(sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get",
                                         NULL, NULL, "ss", BB_MANAGER_INTERFACE, "Stats") >= 0,
                      "the connection still works for calls without fds");
        sd_bus_error_free(&error);
        r = do_call(bus, c, shared.path, token, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_NOT_SUPPORTED, "negotiate fd passing", "the next call");
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

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_create);
        tcase_add_test(tc, test_create_persistent);
        tcase_add_test(tc, test_create_batch);
        tcase_add_test(tc, test_open_token);
        tcase_add_test(tc, test_open_token_single_use);
        tcase_add_test(tc, test_open_fds);
        tcase_add_test(tc, test_quick_exit_keeps);
}

int main(void) {
        Suite *s = suite_create("nofds");

        /* The harness's fixtures, but for the daemon's log in a file. */
        harness_add_tcase(s, "dbus-daemon", setup_dbus_daemon, add_tests);
        harness_add_tcase(s, "dbus-broker", setup_dbus_broker, add_tests);
        return harness_main(s);
}
