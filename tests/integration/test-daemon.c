/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerd as a program: its command line, its fd limit, the bus it picks,
 * a clean exit on SIGTERM/SIGINT, refusing to start twice, and exiting when
 * idle. Each case runs on both buses.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdio.h>

#include "bufbroker.h"
#include "harness.h"
#include "private-bus.h"

static bool name_has_owner(void) {
        return wait_name_owner(test_bus(), BB_BUS_NAME, 0);
}

START_TEST(test_help_and_version) {
        _cleanup_run_result_ RunResult help = {}, version = {};
        const char *bin = harness_env("BUFBROKERD");

        ck_assert_int_eq(run_argv(&help, AS_ROOT, NULL, 0, NULL, (const char *[]) { bin, "--help", NULL }), 0);
        ck_assert_run_status(&help, 0);
        /* Every option is explained, and the bus name is named. */
        for (const char *const *o = (const char *const[]) {
                        "--system", "--user", "--exit-idle-time", "--max-buffer-size", "--max-buffers-per-uid",
                        "--max-bytes-per-uid", "--max-tokens-per-uid", "--max-buffers", "--max-bytes",
                        "--max-tokens", "--max-fds", "--fdstore-max", BB_BUS_NAME, NULL }; *o; o++)
                ck_assert_msg(strstr(help.out, *o), "--help does not mention %s:\n%s", *o, help.out);

        ck_assert_int_eq(run_argv(&version, AS_ROOT, NULL, 0, NULL, (const char *[]) { bin, "--version", NULL }), 0);
        ck_assert_run_status(&version, 0);
        ck_assert_msg(strncmp(version.out, "bufbrokerd ", 11) == 0, "--version printed: %s", version.out);
}
END_TEST

START_TEST(test_bad_command_lines) {
        static const struct {
                const char *arg, *needle;
        } cases[] = {
                { "--no-such-option", "no-such-option" },
                { "--max-buffer-size=lots", "lots" },
                { "--max-buffer-size=1E", "1E" },
                { "--max-buffers-per-uid=-1", "-1" },
                { "--max-tokens=99999999999999999999", "99999999999999999999" },
                { "--exit-idle-time=soon", "soon" },
                { "--max-fds=many", "many" },
                { "--max-buffer-size=300T", "256T" },
                { "stray-argument", "stray-argument" },
        };
        const char *bin = harness_env("BUFBROKERD");

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_run_result_ RunResult r = {};

                ck_assert_int_eq(run_argv(&r, AS_ROOT, NULL, 0, NULL,
                                          (const char *[]) { bin, cases[i].arg, NULL }), 0);
                ck_assert_msg(r.status == 1, "%s: exit status %d, want 1", cases[i].arg, r.status);
                ck_assert_msg(strstr(r.err, cases[i].needle), "%s: stderr does not name '%s': %s",
                              cases[i].arg, cases[i].needle, r.err);
        }
}
END_TEST

START_TEST(test_fd_limit_raised) {
        char path[64], line[256];
        unsigned long long soft = 0, hard = 0;
        bool found = false;
        struct rlimit rl;
        FILE *f;

        /* The daemon takes every fd it may (one per buffer plane). */
        snprintf(path, sizeof(path), "/proc/%d/limits", (int) H->daemon_pid);
        f = fopen(path, "re");
        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Max open files %llu %llu", &soft, &hard) == 2)
                        found = true;
        fclose(f);
        ck_assert_msg(found, "no 'Max open files' line in %s", path);
        ck_assert_msg(soft == hard, "soft fd limit %llu, hard %llu: not raised", soft, hard);
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        ck_assert_msg(H->wrapped || soft >= (unsigned long long) rl.rlim_cur,
                      "daemon's limit %llu is below ours %llu", soft, (unsigned long long) rl.rlim_cur);
}
END_TEST

static uint64_t max_fds_limit(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint64_t limit = 0;
        int r;

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
        ck_assert_int_ge(r, 0);
        sd_bus_message_unref(reply);
        return limit;
}

/* --max-fds: a budget below the rlimit is taken as given (and one uid gets
 * its fair half of it); one above is lowered to what the rlimit allows,
 * never a cap of its own below it. */
START_TEST(test_max_fds) {
        static const char *const small[] = { "--max-fds=4", NULL };
        static const char *const huge[] = { "--max-fds=1000000000", NULL };
        _cleanup_created_ Created c1 = {}, c2 = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t unlimited;
        struct rlimit rl;
        int r;

        unlimited = max_fds_limit();
        ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        ck_assert_uint_gt(unlimited, 0);
        ck_assert_uint_lt(unlimited, rl.rlim_max);
        ck_assert_msg(H->wrapped || unlimited + 1024 >= rl.rlim_max,
                      "fd budget %" PRIu64 " is far below the hard RLIMIT_NOFILE %llu", unlimited,
                      (unsigned long long) rl.rlim_max);

        ck_assert_int_eq(kill(H->daemon_pid, SIGTERM), 0);
        ck_assert_int_eq(wait_daemon_exit(scaled_ms(10000)), 0);
        harness_restart_daemon(small);
        ck_assert_uint_eq(max_fds_limit(), 4);
        create_memfd(NULL, "fd-1", 4096, false, 0, &c1);
        create_memfd(NULL, "fd-2", 4096, false, 0, &c2);
        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                               &error, NULL, "sta{sv}", "fd-3", (uint64_t) 4096, 0);
        assert_bus_error(&error, r, BB_ERROR_QUOTA_EXCEEDED, "file descriptors", "create over --max-fds");
        sd_bus_error_free(&error);
        created_done(&c1);
        created_done(&c2);

        ck_assert_int_eq(kill(H->daemon_pid, SIGTERM), 0);
        ck_assert_int_eq(wait_daemon_exit(scaled_ms(10000)), 0);
        harness_restart_daemon(huge);
        ck_assert_uint_eq(max_fds_limit(), unlimited);
}
END_TEST

static void check_clean_exit_on(int sig) {
        _cleanup_created_ Created c = {};

        /* With a buffer alive: the exit must still be clean (no leak, status 0). */
        create_memfd(NULL, "exit-test", 4096, false, 0, &c);
        ck_assert_int_eq(kill(H->daemon_pid, sig), 0);
        ck_assert_int_eq(wait_daemon_exit(scaled_ms(10000)), 0);
        ck_assert_msg(!name_has_owner(), "%s still owned after the daemon exited", BB_BUS_NAME);
}

START_TEST(test_sigterm_exits_cleanly) {
        check_clean_exit_on(SIGTERM);
}
END_TEST

START_TEST(test_sigint_exits_cleanly) {
        check_clean_exit_on(SIGINT);
}
END_TEST

START_TEST(test_second_instance_refused) {
        _cleanup_run_result_ RunResult r = {};
        char env[256];

        snprintf(env, sizeof(env), "DBUS_SYSTEM_BUS_ADDRESS=%s", H->address);
        ck_assert_int_eq(run_argv(&r, AS_ROOT, NULL, 0, (const char *[]) { env, NULL },
                                  (const char *[]) { harness_env("BUFBROKERD"), "--system", NULL }), 0);
        ck_assert_msg(r.status == 1, "second instance: exit status %d, want 1", r.status);
        ck_assert_msg(strstr(r.err, BB_BUS_NAME), "second instance's error does not name the bus name: %s", r.err);
        ck_assert(daemon_alive());
}
END_TEST

START_TEST(test_user_bus_from_environment) {
        _cleanup_run_result_ RunResult r = {};
        char env[256];

        /* --user must connect to DBUS_SESSION_BUS_ADDRESS (here: our bus, where
         * the name is taken, so it has to say so and exit 1); with a bogus
         * system address it must not fall back to the system bus. */
        snprintf(env, sizeof(env), "DBUS_SESSION_BUS_ADDRESS=%s", H->address);
        ck_assert_int_eq(run_argv(&r, AS_ROOT, NULL, 0,
                                  (const char *[]) { env, "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent", NULL },
                                  (const char *[]) { harness_env("BUFBROKERD"), "--user", NULL }), 0);
        ck_assert_msg(r.status == 1, "--user: exit status %d, want 1", r.status);
        ck_assert_msg(strstr(r.err, "Another process owns"), "--user did not reach the session bus: %s", r.err);
}
END_TEST

/* SIGHUP, SIGUSR1 and SIGUSR2 end a process by default, and every buffer
 * with it: the daemon logs its state instead and goes on. */
START_TEST(test_signals_keep_state) {
        static const int sigs[] = { SIGHUP, SIGUSR1, SIGUSR2 };
        _cleanup_created_ Created c = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL, *path = NULL;
        int fd = -1;

        create_memfd(NULL, "survives-signals", 4096, true, 0, &c);
        ck_assert(call_share(NULL, c.path, false, (uid_t) -1, false, 0, &token, &error) >= 0);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
                ck_assert_int_eq(kill(H->daemon_pid, sigs[i]), 0);
                msleep(200);
                ck_assert_msg(daemon_alive(), "bufbrokerd died of signal %d", sigs[i]);
                ck_assert_msg(daemon_owns_name(), "bufbrokerd lost its name after signal %d", sigs[i]);
        }
        ck_assert(list_has(NULL, c.id));
        ck_assert_msg(call_open(NULL, token, &path, &fd, NULL, &error) >= 0, "token after the signals: %s",
                      error.message);
        ck_assert_str_eq(path, c.path);
        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        close(fd);
        free(path);
        free(token);
}
END_TEST

/* A daemon that lost its bus must not run on without its name, keeping
 * everyone's buffers where nobody can reach them: it exits with status 1,
 * for the service manager to restart it (the fd store keeps the buffers). */
START_TEST(test_lost_bus_exits_with_failure) {
        _cleanup_created_ Created c = {};
        pid_t broker = H->kind == BUS_DBUS_BROKER ? pbus_first_child_of(H->bus_pid) : -1;

        create_memfd(NULL, "orphaned", 4096, true, 0, &c);
        if (broker > 0)
                ck_assert_int_eq(kill(broker, SIGKILL), 0);
        ck_assert_int_eq(kill(H->bus_pid, SIGKILL), 0);
        ck_assert_int_eq(wait_daemon_exit(scaled_ms(5000)), 1);
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_signals_keep_state);
        tcase_add_test(tc, test_lost_bus_exits_with_failure);
        tcase_add_test(tc, test_help_and_version);
        tcase_add_test(tc, test_bad_command_lines);
        tcase_add_test(tc, test_fd_limit_raised);
        tcase_add_test(tc, test_max_fds);
        tcase_add_test(tc, test_sigterm_exits_cleanly);
        tcase_add_test(tc, test_sigint_exits_cleanly);
        tcase_add_test(tc, test_second_instance_refused);
        tcase_add_test(tc, test_user_bus_from_environment);
}

/* --exit-idle-time: its own fixture, the daemon started with a short one. */
static const char *const idle_args[] = { "--exit-idle-time=1s", NULL };

static void setup_idle_daemon(void) {
        harness_start(BUS_DBUS_DAEMON, true, idle_args);
}

static void setup_idle_broker(void) {
        harness_start(BUS_DBUS_BROKER, true, idle_args);
}

START_TEST(test_exit_when_idle) {
        _cleanup_created_ Created c = {};

        /* Holding a buffer keeps it alive well past the idle time... */
        create_memfd(NULL, "keeps-alive", 4096, false, 0, &c);
        msleep((unsigned) scaled_ms(2500));
        ck_assert_msg(daemon_alive(), "the daemon exited although a client holds a buffer");

        /* ...and once nothing is left it gives its name back and exits 0. */
        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        c.fd = safe_close(c.fd);        /* the fd is the lease */
        ck_assert_int_eq(wait_daemon_exit(scaled_ms(10000)), 0);
        ck_assert_msg(!name_has_owner(), "%s still owned after the idle exit", BB_BUS_NAME);
}
END_TEST

/* An open private connection keeps the daemon up: the client on it may
 * call at any time, and it would not see the daemon come back. */
START_TEST(test_private_connection_keeps_it_up) {
        sd_bus_message *reply = NULL;
        int fd;

        ck_assert(sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                     "OpenPrivateConnection", NULL, &reply, "") >= 0);
        ck_assert(sd_bus_message_read(reply, "h", &fd) > 0);
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        sd_bus_message_unref(reply);
        msleep((unsigned) scaled_ms(2500));
        ck_assert_msg(daemon_alive(), "the daemon exited with a private connection open");
        close(fd);
        ck_assert_int_eq(wait_daemon_exit(scaled_ms(10000)), 0);
}
END_TEST

/* Calls that reach the daemon while it gives its name back are answered,
 * never cut off by its exit. The bus is stopped before the daemon's idle
 * time is up, our calls wait in it; the daemon's ReleaseName joins them, and
 * when the bus goes on it may route our calls (sent first) to the daemon
 * before it handles the release: then the daemon receives them while it is
 * leaving, and a daemon that exits as soon as the release is confirmed
 * leaves them to NoReply. Should the bus handle the release first, our calls
 * are not routed to the daemon at all; that proves nothing, and the test
 * tries again. */
typedef struct Pending {
        unsigned answered, no_reply, not_routed, other;
        char other_error[256];
} Pending;

static int on_list_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Pending *p = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (!e)
                p->answered++;
        else if (sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY))
                p->no_reply++;
        else if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                p->not_routed++;
        else {
                p->other++;
                snprintf(p->other_error, sizeof(p->other_error), "%s: %s", e->name, e->message);
        }
        return 0;
}

/* One try; returns whether our calls reached the daemon while it left.
 * The calls come from several connections: the bus reads its connections in
 * an order of its own, and one read before the daemon's is enough. */
static bool idle_exit_with_calls_waiting(void) {
        enum { N_CONNECTIONS = 6, N_CALLS = 5 };
        pid_t bus_pid = H->kind == BUS_DBUS_BROKER ? pbus_first_child_of(H->bus_pid) : H->bus_pid;
        sd_bus *bus[N_CONNECTIONS];
        unsigned total = N_CONNECTIONS * N_CALLS;
        Pending p = {};

        ck_assert(bus_pid > 0);
        /* Each connection up (Hello answered) before the bus stops; the last
         * call is activity: the daemon's 1 s of idleness starts after it. */
        for (unsigned c = 0; c < N_CONNECTIONS; c++) {
                ck_assert(bus_connect(&bus[c]) >= 0);
                ck_assert(sd_bus_call_method(bus[c], BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                             "ListBuffers", NULL, NULL, "") >= 0);
        }
        msleep(300);
        ck_assert_int_eq(kill(bus_pid, SIGSTOP), 0);
        /* The bus reads first what became readable first (dbus-daemon), or
         * last (dbus-broker takes epoll's events from the end): our calls go
         * before or after the daemon's release accordingly. */
        if (H->kind == BUS_DBUS_BROKER)
                msleep(1200);   /* the daemon's idle time is up: it releases the name */
        for (unsigned c = 0; c < N_CONNECTIONS; c++) {
                for (unsigned i = 0; i < N_CALLS; i++)
                        ck_assert(sd_bus_call_method_async(bus[c], NULL, BB_BUS_NAME, BB_MANAGER_PATH,
                                                           BB_MANAGER_INTERFACE, "ListBuffers", on_list_reply, &p,
                                                           "") >= 0);
                ck_assert(sd_bus_flush(bus[c]) >= 0);
        }
        if (H->kind == BUS_DBUS_DAEMON)
                msleep(1200);
        ck_assert_int_eq(kill(bus_pid, SIGCONT), 0);

        while (p.answered + p.no_reply + p.not_routed + p.other < total)
                for (unsigned c = 0; c < N_CONNECTIONS; c++) {
                        int r;

                        while ((r = sd_bus_process(bus[c], NULL)) > 0)
                                ;
                        ck_assert(r >= 0);
                        if (c == N_CONNECTIONS - 1 && p.answered + p.no_reply + p.not_routed + p.other < total)
                                msleep(5);
                }
        fprintf(stderr, "idle exit [%s]: %u answered, %u NoReply, %u not routed to the daemon\n",
                bus_kind_name(H->kind), p.answered, p.no_reply, p.not_routed);
        ck_assert_msg(p.other == 0, "%u calls failed: %s", p.other, p.other_error);
        ck_assert_msg(p.no_reply == 0, "%u of %u calls died with the daemon (NoReply)", p.no_reply, total);
        ck_assert_int_eq(wait_daemon_exit(scaled_ms(10000)), 0);
        for (unsigned c = 0; c < N_CONNECTIONS; c++)
                sd_bus_flush_close_unref(bus[c]);
        return p.answered > 0;
}

START_TEST(test_idle_exit_answers_calls_that_reached_it) {
        for (unsigned attempt = 0;; attempt++) {
                if (idle_exit_with_calls_waiting())
                        break;
                ck_assert_msg(attempt < 12, "the bus handled the release before our calls in %u tries", attempt + 1);
                harness_restart_daemon(idle_args);
        }
}
END_TEST

static void add_idle_tests(TCase *tc) {
        tcase_add_test(tc, test_exit_when_idle);
        tcase_add_test(tc, test_private_connection_keeps_it_up);
        tcase_add_test(tc, test_idle_exit_answers_calls_that_reached_it);
}

/* Errors of the kernel are not errors of the request: with the daemon as an
 * unprivileged user (as under systemd), a buffer's inode made unreadable
 * behind its back (root may chmod it) fails the daemon's reopen with EACCES.
 * That is org.freedesktop.DBus.Error.Failed with the kernel's message, not
 * org.bufbroker.Error.AccessDenied, which tells a caller it was refused. */
static void setup_unprivileged(BusKind kind) {
        harness_daemon_user = "daemon";
        harness_start(kind, true, NULL);
}

static void setup_unprivileged_daemon(void) {
        setup_unprivileged(BUS_DBUS_DAEMON);
}

static void setup_unprivileged_broker(void) {
        setup_unprivileged(BUS_DBUS_BROKER);
}

START_TEST(test_kernel_errors_are_not_protocol_errors) {
        _cleanup_created_ Created c = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *token = NULL;
        Snapshot base;
        int r;

        baseline_after_warmup(&base);
        create_memfd(NULL, "chmodded", 4096, true, 0, &c);
        ck_assert(call_share(NULL, c.path, false, (uid_t) -1, false, 0, &token, &error) >= 0);
        ck_assert_int_eq(fchmod(c.fd, 0), 0);

        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, c.path, BB_BUFFER_INTERFACE, "OpenFds", &error, &reply,
                               "a{sv}", 0);
        assert_bus_error(&error, r, SD_BUS_ERROR_FAILED, "Permission denied", "OpenFds of a chmodded buffer");
        sd_bus_error_free(&error);
        r = call_open(NULL, token, NULL, NULL, NULL, &error);
        assert_bus_error(&error, r, SD_BUS_ERROR_FAILED, "Permission denied", "Open of a chmodded buffer");
        sd_bus_error_free(&error);

        /* The library says -EIO (sd-bus alone would say -EACCES, a refusal)
         * and keeps the error for the caller to read. */
        bb_client *lc = NULL;
        bb_buffer *lb = NULL;
        ck_assert_int_eq(bb_client_new_address(&lc, H->address), 0);
        r = bb_buffer_open(lc, token, &lb);
        ck_assert_msg(r == -EIO, "bb_buffer_open of a chmodded buffer: %d (%s), want -EIO", r, strerror(-r));
        ck_assert_str_eq(bb_client_error_name(lc), SD_BUS_ERROR_FAILED);
        ck_assert_ptr_nonnull(strstr(bb_client_error_message(lc), "Permission denied"));
        ck_assert_ptr_null(lb);
        bb_client_unref(lc);

        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        c.fd = safe_close(c.fd);        /* the fd is the lease */
        assert_back_to(&base, "after the failed opens");
        free(token);
}
END_TEST

static void add_unprivileged_tests(TCase *tc) {
        tcase_add_test(tc, test_kernel_errors_are_not_protocol_errors);
}

int main(void) {
        Suite *s = suite_create("bufbrokerd");

        harness_add_tcases(s, "daemon", add_tests);
        harness_add_tcase(s, "idle exit: dbus-daemon", setup_idle_daemon, add_idle_tests);
        harness_add_tcase(s, "idle exit: dbus-broker", setup_idle_broker, add_idle_tests);
        harness_add_tcase(s, "unprivileged daemon: dbus-daemon", setup_unprivileged_daemon, add_unprivileged_tests);
        harness_add_tcase(s, "unprivileged daemon: dbus-broker", setup_unprivileged_broker, add_unprivileged_tests);
        return harness_main(s);
}
