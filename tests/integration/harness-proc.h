/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration-test harness, processes (harness-proc.c): commands and C
 * functions run as root or as another uid, with their output captured, and
 * background processes. Include harness.h.
 */
#pragma once

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include "macro.h"

typedef struct RunResult {
        int status;             /* exit code; 128+signal if killed; -1 timeout */
        char *out;              /* NUL-terminated captured stdout */
        size_t out_len;
        char *err;              /* captured stderr */
} RunResult;

void run_result_done(RunResult *r);
#define _cleanup_run_result_ _cleanup_(run_result_done)

/* Run argv (argv[0] searched in PATH) as uid (0 or 65534), feeding input (may
 * be NULL) on stdin, capturing stdout/stderr; 30 s timeout. Extra environment
 * entries "K=V" in env (NULL-terminated, may be NULL). Returns 0 or -errno for
 * a harness failure (the command's own failure is in res->status). */
int run_argv(RunResult *res, uid_t uid, const char *input, size_t input_len,
             const char *const *env, const char *const *argv);

/* bufbrokerctl --address=ADDR args... */
#define ctl(res, uid, input, ...) \
        run_ctl((res), (uid), (input), (const char *[]) { __VA_ARGS__, NULL })
int run_ctl(RunResult *res, uid_t uid, const char *input, const char *const *args);
/* busctl --address=ADDR args... */
#define busctl(res, uid, ...) \
        run_busctl((res), (uid), (const char *[]) { __VA_ARGS__, NULL })
int run_busctl(RunResult *res, uid_t uid, const char *const *args);

/* Log a RunResult to stderr (for failure diagnostics). */
void run_result_dump(const char *what, const RunResult *r);

/* Assert exit status, dumping output on mismatch. */
#define ck_assert_run_status(r, expected)                                       \
        do {                                                                    \
                if ((r)->status != (expected))                                  \
                        run_result_dump(#r, (r));                               \
                ck_assert_msg((r)->status == (expected),                        \
                              "%s: exit status %d, expected %d (stderr: %s)",   \
                              #r, (r)->status, (expected),                      \
                              (r)->err ? (r)->err : "");                        \
        } while (0)

/* A background process with stdout and stderr captured into one pipe. */
typedef struct BgProc {
        pid_t pid;
        int out_fd;             /* read end, O_NONBLOCK */
        char *out;
        size_t out_len;
} BgProc;

int bg_spawn(BgProc *p, uid_t uid, const char *const *env, const char *const *argv);
/* Read what is available; returns true once out contains needle (waits up to
 * timeout_ms). */
bool bg_wait_output(BgProc *p, const char *needle, int timeout_ms);
/* SIGTERM (then SIGKILL), reap; returns the wait status translated like RunResult. */
int bg_stop(BgProc *p);

/* The uid of a system user that exists on every Debian system ("daemon",
 * "bin", "sys"): dbus-daemon refuses connections from uids without a passwd
 * entry. Asserts that it exists. */
uid_t system_uid(const char *user);

/* Fork, become uid/gid (setgroups(0), setresgid, setresuid unless uid is 0),
 * run fn(userdata), _exit with its return value. Returns the exit status
 * (128+signal if killed, -1 on timeout after timeout_ms). */
int run_as(uid_t uid, int (*fn)(void *userdata), void *userdata, int timeout_ms);
/* Fork like run_as() but return at once; reap with wait_child(). */
pid_t fork_as(uid_t uid, int (*fn)(void *userdata), void *userdata);
int wait_child(pid_t pid, int timeout_ms);

/* In a child (run_as), report and fail: prints file:line and the message,
 * then _exit(1). */
#define child_check(expr, ...)                                                  \
        do {                                                                    \
                if (!(expr)) {                                                  \
                        fprintf(stderr, "%s:%d: child check failed: %s: ",      \
                                __FILE__, __LINE__, #expr);                     \
                        fprintf(stderr, __VA_ARGS__);                           \
                        fputc('\n', stderr);                                    \
                        fflush(stderr);                                         \
                        _exit(1);                                               \
                }                                                               \
        } while (0)

/* A notify socket at $H->dir/notify ($NOTIFY_SOCKET for the daemon: set
 * harness_daemon_spawn.notify_socket to path) drained by a child, as the
 * service manager's fd store would take the daemon's messages: it closes
 * the fds they carry. Returns the child's pid, *ret_fd the socket. */
pid_t notify_drainer_start(char path[static 108], int *ret_fd);
void notify_drainer_stop(pid_t drainer, int fd);
