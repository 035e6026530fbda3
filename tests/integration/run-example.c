/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs a worked example of tests/examples/ against the real daemon on both
 * buses: run-example PROGRAM EXPECTED. PROGRAM is started with the bus
 * address as its argument, as root and as nobody; it must exit 0, print
 * EXPECTED (the line the second connection read) and "released", and leave
 * the daemon as it found it. Pointed at a bus that is not there, it must
 * fail.
 */
#include <string.h>

#include "harness.h"

static const char *arg_program;
static const char *arg_expected;

static void run_example(uid_t uid) {
        _cleanup_run_result_ RunResult res = { 0 };
        Snapshot base;

        baseline_after_warmup(&base);
        ck_assert_int_eq(run_argv(&res, uid, NULL, 0, NULL, (const char *[]) { arg_program, H->address, NULL }), 0);
        ck_assert_run_status(&res, 0);
        ck_assert_msg(strstr(res.out, arg_expected), "output lacks \"%s\":\n%s", arg_expected, res.out);
        ck_assert_msg(strstr(res.out, "\nreleased\n"), "output lacks \"released\":\n%s", res.out);
        assert_back_to(&base, "after the example");
}

START_TEST(test_example_as_root) {
        run_example(AS_ROOT);
}
END_TEST

START_TEST(test_example_as_nobody) {
        run_example(NOBODY_UID);
}
END_TEST

START_TEST(test_example_fails_without_bus) {
        _cleanup_run_result_ RunResult res = { 0 };
        char address[160];

        snprintf(address, sizeof(address), "unix:path=%s/no-such-socket", H->dir);
        ck_assert_int_eq(run_argv(&res, AS_ROOT, NULL, 0, NULL, (const char *[]) { arg_program, address, NULL }), 0);
        ck_assert_int_ne(res.status, 0);
        ck_assert_msg(!strstr(res.out, arg_expected), "read something without a bus:\n%s", res.out);
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_example_as_root);
        tcase_add_test(tc, test_example_as_nobody);
        tcase_add_test(tc, test_example_fails_without_bus);
}

int main(int argc, char *argv[]) {
        Suite *s;

        if (argc != 3) {
                fprintf(stderr, "usage: run-example PROGRAM EXPECTED-OUTPUT\n");
                return 2;
        }
        arg_program = argv[1];
        arg_expected = argv[2];
        s = suite_create("example");
        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
