/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/log.c: a "<N>" priority prefix exactly when stderr is the stream
 * $JOURNAL_STREAM names (journald reads it as the priority), the program
 * name otherwise. Each case logs in a child (the decision is made once per
 * process) whose stderr is a pipe, and reads what it wrote.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

typedef enum { NO_STREAM, THIS_STREAM, OTHER_STREAM } Stream;

/* What a child with @stream logs for one error line and one errno line. */
static char *logged(Stream stream) {
        static char out[512];
        int p[2], status;
        ssize_t n, len = 0;
        pid_t pid;

        ck_assert_int_eq(pipe(p), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct stat st;
                char v[64];

                dup2(p[1], STDERR_FILENO);
                fstat(STDERR_FILENO, &st);
                snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long) st.st_dev,
                         (unsigned long long) st.st_ino + (stream == OTHER_STREAM));
                if (stream == NO_STREAM)
                        unsetenv("JOURNAL_STREAM");
                else
                        setenv("JOURNAL_STREAM", v, 1);
                errno = EBADF;
                log_error("cannot save state: %m");
                _exit(log_warning_errno(-ENOENT, "gone %d", 7) == -ENOENT ? 0 : 1);
        }
        close(p[1]);
        while ((n = read(p[0], out + len, sizeof(out) - 1 - (size_t) len)) > 0)
                len += n;
        close(p[0]);
        out[len] = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "log_…_errno did not return -ENOENT");
        return out;
}

START_TEST(test_journal_stream_gets_priorities) {
        ck_assert_str_eq(logged(THIS_STREAM), "<3>cannot save state: Bad file descriptor\n"
                                              "<4>gone 7: No such file or directory\n");
}
END_TEST

START_TEST(test_terminal_gets_program_name) {
        ck_assert_str_eq(logged(NO_STREAM), "bufbrokerd: cannot save state: Bad file descriptor\n"
                                            "bufbrokerd: gone 7: No such file or directory\n");
}
END_TEST

/* Inherited by a child whose stderr went elsewhere: not the journal. */
START_TEST(test_stale_journal_stream_is_ignored) {
        ck_assert_str_eq(logged(OTHER_STREAM), "bufbrokerd: cannot save state: Bad file descriptor\n"
                                               "bufbrokerd: gone 7: No such file or directory\n");
}
END_TEST

int main(void) {
        Suite *s = suite_create("log");
        TCase *tc = tcase_create("log");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_journal_stream_gets_priorities);
        tcase_add_test(tc, test_terminal_gets_program_name);
        tcase_add_test(tc, test_stale_journal_stream_is_ignored);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
