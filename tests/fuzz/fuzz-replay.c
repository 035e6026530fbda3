/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-bus without libFuzzer: runs every corpus file through
 * LLVMFuzzerTestOneInput(), so that the corpus is a regression test in the
 * plain, sanitizer and valgrind rounds (meson test "Fuzz corpus replays
 * cleanly").
 *
 * Each file runs in a child of its own: one that aborts is named and the
 * others still run. The child returns from main() normally, so that
 * LeakSanitizer and valgrind judge what it left behind.
 *
 *   fuzz-bus-replay FILE|DIR...
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"
#include "macro.h"

static int read_file(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *data = NULL;
        struct stat st;
        size_t done = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        data = malloc(st.st_size > 0 ? (size_t) st.st_size : 1);
        if (!data)
                return -ENOMEM;
        while (done < (size_t) st.st_size) {
                ssize_t n = read(fd, data + done, (size_t) st.st_size - done);
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        *ret = TAKE_PTR(data);
        *ret_size = done;
        return 0;
}

/* Run @path in a child; true if it came back cleanly. */
static bool replay(const char *path) {
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                fprintf(stderr, "fuzz-bus-replay: fork: %m\n");
                return false;
        }
        if (pid == 0) {
                uint8_t *data = NULL;
                size_t size = 0;
                int r = read_file(path, &data, &size);

                if (r < 0) {
                        fprintf(stderr, "fuzz-bus-replay: cannot read %s: %s\n", path, strerror(-r));
                        exit(EXIT_FAILURE);
                }
                LLVMFuzzerTestOneInput(data, size);
                free(data);
                exit(EXIT_SUCCESS);
        }
        if (waitpid(pid, &status, 0) < 0) {
                fprintf(stderr, "fuzz-bus-replay: waitpid: %m\n");
                return false;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return true;
        if (WIFSIGNALED(status))
                printf("fuzz-bus-replay: FAILED: %s (signal %d: %s)\n", path, WTERMSIG(status),
                       strsignal(WTERMSIG(status)));
        else
                printf("fuzz-bus-replay: FAILED: %s (exit status %d)\n", path, WEXITSTATUS(status));
        printf("fuzz-bus-replay: reproduce with: %s %s\n", program_invocation_name, path);
        return false;
}

static int is_input(const struct dirent *de) {
        return de->d_name[0] != '.';
}

int main(int argc, char *argv[]) {
        unsigned passed = 0, failed = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: fuzz-bus-replay FILE|DIR...\n");
                return EXIT_FAILURE;
        }
        for (int i = 1; i < argc; i++) {
                struct dirent **list;
                struct stat st;
                int n;

                if (stat(argv[i], &st) < 0) {
                        printf("fuzz-bus-replay: FAILED: %s: %m\n", argv[i]);
                        failed++;
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        replay(argv[i]) ? passed++ : failed++;
                        continue;
                }
                /* Sorted: the same order on every run. */
                n = scandir(argv[i], &list, is_input, alphasort);
                if (n < 0) {
                        printf("fuzz-bus-replay: FAILED: cannot list %s: %m\n", argv[i]);
                        failed++;
                        continue;
                }
                for (int j = 0; j < n; j++) {
                        _cleanup_free_ char *path = NULL;

                        if (asprintf(&path, "%s/%s", argv[i], list[j]->d_name) < 0) {
                                path = NULL;
                                failed++;
                        } else
                                replay(path) ? passed++ : failed++;
                        free(list[j]);
                }
                free(list);
        }
        /* A corpus that ran nothing tested nothing. */
        if (passed + failed == 0) {
                printf("fuzz-bus-replay: no input found\n");
                failed++;
        }
        printf("%u passed, %u failed\n", passed, failed);
        return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
