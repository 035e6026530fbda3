/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerd as a program: its command line, its fd limit, the bus it picks,
 * a clean exit on SIGTERM/SIGINT, refusing to start twice, and exiting when
 * idle. Each case runs on both buses.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <stdio.h>

#include "harness.h"

/* Wait until the fixture's daemon has exited; returns its status and tells
 * the fixture not to stop it again. */
static int wait_daemon_exit(int timeout_ms) {
        for (int waited = 0; waited < timeout_ms; waited += 20) {
                if (!daemon_alive()) {
                        int status = H->daemon_status;
                        H->daemon_pid = -1;
                        return status;
                }
                usleep(20 * 1000);
        }
        return -1;
}

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
                        "--max-tokens", BB_BUS_NAME, NULL }; *o; o++)
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

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_help_and_version);
        tcase_add_test(tc, test_bad_command_lines);
        tcase_add_test(tc, test_fd_limit_raised);
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
        ck_assert_int_eq(wait_daemon_exit(scaled_ms(10000)), 0);
        ck_assert_msg(!name_has_owner(), "%s still owned after the idle exit", BB_BUS_NAME);
}
END_TEST

static void add_idle_tests(TCase *tc) {
        tcase_add_test(tc, test_exit_when_idle);
}

int main(void) {
        Suite *s = suite_create("bufbrokerd");

        harness_add_tcases(s, "daemon", add_tests);
        harness_add_tcase(s, "idle exit: dbus-daemon", setup_idle_daemon, add_idle_tests);
        harness_add_tcase(s, "idle exit: dbus-broker", setup_idle_broker, add_idle_tests);
        return harness_main(s);
}
