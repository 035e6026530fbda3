/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs one worked example of tests/examples/ against the real bufbrokerd on a
 * private dbus-daemon and on a private dbus-broker (the integration harness),
 * and checks what it did through the test's own connection. The example runs
 * on the bus that DBUS_SYSTEM_BUS_ADDRESS names, as every example's default
 * (the system bus) allows. Examples come in two shapes (README.md here):
 *
 *   test-example [--no-fds] COMMAND [ARG...]
 *
 * COMMAND [ARG...] (a program, or an interpreter and a script) speaks the
 * three-step command line of the examples that use the D-Bus contract
 * directly:
 *
 *   share          as root: create a persistent memfd buffer, write the
 *                  message "Hello from a bufbroker example" (the same in
 *                  every example), share it read-only; print "buffer PATH" and
 *                  "token TOKEN" lines; exit 0
 *   open TOKEN     as nobody (65534): open it, check the message, check that
 *                  a writable mapping is refused (print "writable mapping
 *                  refused"), that Freeze by a non-owner fails with NotOwner
 *                  and an unknown token with NoSuchToken (print "... refused:
 *                  ERROR-NAME" for each), close its descriptor; exit 0
 *   release PATH   as root: release (ending persistence), wait for
 *                  BufferReleased; exit 0
 *
 * and on any failure prints the D-Bus error name and exits 1. With --no-fds
 * the example also has
 *
 *   no-fds         as nobody: call CreateMemfd on a connection that did not
 *                  negotiate fd passing, print "without fd passing: ..."
 *                  when no reply (or an error) came; exit 0
 *
 * and the daemon must have taken back what the refused reply handed out.
 *
 *   test-example --whole EXPECTED-LINE COMMAND [ARG...]
 *
 * COMMAND does the whole flow in one process, as the event-loop examples of
 * libbufbroker do (create, share, open on a second connection, release),
 * and prints EXPECTED-LINE (what the second connection read) and "released";
 * it runs as root and as nobody, and exits 1 when a step fails.
 *
 * Either way the cases check that the example did what it says and left the
 * daemon as it found it (Stats, fds and ListBuffers back at the baseline),
 * and that it fails when the flow does: no bus at all, and for the steps a
 * token that no longer exists, a malformed one, a buffer whose contents are
 * not the message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

static char **example;          /* COMMAND [ARG...] */
static int example_argc;
static bool with_no_fds;
static const char *whole_expected;      /* --whole: the line the flow prints */

/* Run the example with args (NULL-terminated) as uid on the bus at address
 * (NULL: the fixture's). */
static void run_example_on(RunResult *r, uid_t uid, const char *address, const char *const *args) {
        const char *argv[16];
        char env_address[160];
        const char *env[] = { env_address, NULL };
        int n = 0;

        snprintf(env_address, sizeof env_address, "DBUS_SYSTEM_BUS_ADDRESS=%s", address ? address : H->address);
        for (int i = 0; i < example_argc; i++)
                argv[n++] = example[i];
        for (int i = 0; args[i]; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        ck_assert_int_eq(run_argv(r, uid, NULL, 0, env, argv), 0);
}
#define example_run(r, uid, ...) \
        run_example_on((r), (uid), NULL, (const char *[]) { __VA_ARGS__, NULL })

/* The value of out's "KEY VALUE" line, or NULL. */
static char *output_value(const RunResult *r, const char *key) {
        size_t n = strlen(key);

        for (const char *l = r->out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
                if (strncmp(l, key, n) == 0 && l[n] == ' ')
                        return strndup(l + n + 1, strcspn(l + n + 1, "\n"));
        return NULL;
}

static char *assert_output_value(const RunResult *r, const char *key) {
        char *value = output_value(r, key);

        if (!value)
                run_result_dump("example", r);
        ck_assert_msg(value, "the example printed no \"%s\" line", key);
        return value;
}

/* Does out have line as a whole line? */
static bool output_has_line(const RunResult *r, const char *line) {
        size_t n = strlen(line);

        for (const char *l = r->out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
                if (strncmp(l, line, n) == 0 && (l[n] == '\n' || l[n] == '\0'))
                        return true;
        return false;
}

static void assert_output_has_line(const RunResult *r, const char *line) {
        if (!output_has_line(r, line))
                run_result_dump("example", r);
        ck_assert_msg(output_has_line(r, line), "the example's stdout lacks the line \"%s\"", line);
}

/* text is r's out or err, named what */
static void assert_output_has(const RunResult *r, const char *text, const char *what,
                              const char *needle) {
        if (!strstr(text, needle))
                run_result_dump("example", r);
        ck_assert_msg(strstr(text, needle), "the example's %s lacks \"%s\"", what, needle);
}

/* ------------------------------------------------ the three-step examples --- */

/* share as root: the buffer exists, persistent, owned by root. */
static void share(char **ret_path, char **ret_token) {
        _cleanup_run_result_ RunResult r = { 0 };

        example_run(&r, AS_ROOT, "share");
        ck_assert_run_status(&r, 0);
        *ret_path = assert_output_value(&r, "buffer");
        *ret_token = assert_output_value(&r, "token");
        ck_assert_msg(strlen(*ret_token) == 32, "token \"%s\"", *ret_token);
        ck_assert_msg(list_has(test_bus(), buffer_id_from_path(*ret_path)),
                      "%s is not listed after share (not persistent?)", *ret_path);
}

static void release(const char *path) {
        _cleanup_run_result_ RunResult r = { 0 };
        uint64_t id = buffer_id_from_path(path);

        released_watch();
        example_run(&r, AS_ROOT, "release", path);
        ck_assert_run_status(&r, 0);
        ck_assert_msg(released_wait(id, scaled_ms(5000)), "no BufferReleased for %s", path);
        ck_assert(!list_has(test_bus(), id));
}

/* share -> open as nobody -> release, and nothing is left behind. */
START_TEST(test_steps) {
        _cleanup_run_result_ RunResult r = { 0 };
        Snapshot base;
        char *path, *token;

        baseline_after_warmup(&base);
        share(&path, &token);

        example_run(&r, NOBODY_UID, "open", token);
        ck_assert_run_status(&r, 0);
        assert_output_has(&r, r.out, "stdout", "writable mapping refused");
        assert_output_has(&r, r.out, "stdout", "refused: " BB_ERROR_NOT_OWNER);
        assert_output_has(&r, r.out, "stdout", "refused: " BB_ERROR_NO_SUCH_TOKEN);
        /* nobody's hold ended with its descriptor and connection; the
         * buffer stays, being persistent */
        ck_assert(list_has(test_bus(), buffer_id_from_path(path)));

        release(path);
        assert_back_to(&base, "after share, open, release");
        free(path);
        free(token);
}
END_TEST

/* The token died with the buffer: open fails, naming the daemon's error. */
START_TEST(test_open_gone_token_fails) {
        _cleanup_run_result_ RunResult r = { 0 }, r2 = { 0 };
        char *path, *token;

        share(&path, &token);
        release(path);
        example_run(&r, NOBODY_UID, "open", token);
        ck_assert_msg(r.status == 1, "open of a dead token: exit %d, want 1", r.status);
        assert_output_has(&r, r.err, "stderr", BB_ERROR_NO_SUCH_TOKEN);

        example_run(&r2, NOBODY_UID, "open", "not-a-token");
        ck_assert_msg(r2.status == 1, "open of a malformed token: exit %d, want 1", r2.status);
        assert_output_has(&r2, r2.err, "stderr", BB_ERROR_INVALID_ARGS);
        free(path);
        free(token);
}
END_TEST

/* open checks what it reads: a buffer that does not hold the message fails. */
START_TEST(test_open_checks_contents) {
        _cleanup_run_result_ RunResult r = { 0 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char *path, *token, *p;
        int fd;

        share(&path, &token);
        /* the owner (root) overwrites the message through its own fd */
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                         "OpenFds", &error, &reply, "a{sv}", 0) >= 0,
                      "OpenFds: %s", error.message);
        ck_assert(sd_bus_message_enter_container(reply, 'a', "h") > 0);
        ck_assert(sd_bus_message_read(reply, "h", &fd) > 0);
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert(p != MAP_FAILED);
        memcpy(p, "Not the message", 16);
        munmap(p, 4096);
        /* closes the fd, which ends this hold (a Release by the owner would
         * end the buffer's persistence too) */
        sd_bus_message_unref(reply);

        example_run(&r, NOBODY_UID, "open", token);
        ck_assert_msg(r.status == 1, "open of a buffer without the message: exit %d, want 1:\n%s",
                      r.status, r.out);
        release(path);
        free(path);
        free(token);
}
END_TEST

/* A client that cannot take fds gets no CreateMemfd reply, and the daemon
 * keeps nothing of what that reply carried. */
START_TEST(test_no_fds) {
        _cleanup_run_result_ RunResult r = { 0 };
        Snapshot base;

        baseline_after_warmup(&base);
        example_run(&r, NOBODY_UID, "no-fds");
        ck_assert_run_status(&r, 0);
        assert_output_has(&r, r.out, "stdout", "without fd passing: ");
        assert_back_to(&base, "after a CreateMemfd reply the bus refused");
}
END_TEST

/* -------------------------------------------- the whole flow in one process --- */

static void run_whole(uid_t uid) {
        _cleanup_run_result_ RunResult r = { 0 };
        Snapshot base;

        baseline_after_warmup(&base);
        run_example_on(&r, uid, NULL, (const char *[]) { NULL });
        ck_assert_run_status(&r, 0);
        assert_output_has_line(&r, whole_expected);
        assert_output_has_line(&r, "released");
        assert_back_to(&base, "after the example");
}

START_TEST(test_whole_as_root) {
        run_whole(AS_ROOT);
}
END_TEST

START_TEST(test_whole_as_nobody) {
        run_whole(NOBODY_UID);
}
END_TEST

/* ------------------------------------------------------------------ both --- */

/* Pointed at a bus that is not there, the example fails, and says so. */
START_TEST(test_fails_without_bus) {
        _cleanup_run_result_ RunResult r = { 0 };
        char address[160];
        char *token;
        bool shared;

        snprintf(address, sizeof(address), "unix:path=%s/no-such-socket", H->dir);
        if (whole_expected) {
                run_example_on(&r, AS_ROOT, address, (const char *[]) { NULL });
                ck_assert_msg(!output_has_line(&r, whole_expected), "read something without a bus:\n%s", r.out);
        } else {
                run_example_on(&r, AS_ROOT, address, (const char *[]) { "share", NULL });
                token = output_value(&r, "token");
                shared = token;
                free(token);
                ck_assert_msg(!shared, "shared something without a bus:\n%s", r.out);
        }
        ck_assert_msg(r.status == 1, "without a bus: exit %d, want 1", r.status);
        ck_assert_msg(r.err && *r.err, "without a bus: nothing on stderr");
}
END_TEST

static void add_tests(TCase *tc) {
        if (whole_expected) {
                tcase_add_test(tc, test_whole_as_root);
                tcase_add_test(tc, test_whole_as_nobody);
        } else {
                tcase_add_test(tc, test_steps);
                tcase_add_test(tc, test_open_gone_token_fails);
                tcase_add_test(tc, test_open_checks_contents);
                if (with_no_fds)
                        tcase_add_test(tc, test_no_fds);
        }
        tcase_add_test(tc, test_fails_without_bus);
}

int main(int argc, char **argv) {
        Suite *s;

        if (argc > 1 && strcmp(argv[1], "--no-fds") == 0) {
                with_no_fds = true;
                argv++;
                argc--;
        } else if (argc > 2 && strcmp(argv[1], "--whole") == 0) {
                whole_expected = argv[2];
                argv += 2;
                argc -= 2;
        }
        if (argc < 2 || argc > 8) {
                fprintf(stderr, "usage: test-example [--no-fds] COMMAND [ARG...]\n"
                                "       test-example --whole EXPECTED-LINE COMMAND [ARG...]\n");
                return 2;
        }
        example = argv + 1;
        example_argc = argc - 1;
        s = suite_create("example");
        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
