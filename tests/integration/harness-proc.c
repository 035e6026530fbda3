/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The integration-test harness's processes (see harness-proc.h): commands
 * and C functions as root or as another uid, background processes.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>


#include "harness.h"
#include "harness-internal.h"
#include "private-bus.h"

/* Wait for pid up to timeout_ms (<0: forever); returns its translated status,
 * or -1 on timeout (the child is then killed and reaped). */
int wait_child(pid_t pid, int timeout_ms) {
        return pbus_wait_child(pid, timeout_ms);
}

int harness_become_uid(uid_t uid) {
        if (uid == 0)
                return 0;
        if (setgroups(0, NULL) < 0)
                return -errno;
        if (setresgid((gid_t) uid, (gid_t) uid, (gid_t) uid) < 0)
                return -errno;
        if (setresuid(uid, uid, uid) < 0)
                return -errno;
        /* Credentials changed: the parent-death signal was reset. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        return 0;
}

static void putenv_list(const char *const *env) {
        for (; env && *env; env++)
                putenv((char *) *env);
}

/* ------------------------------------------------------------- commands -- */

void run_result_done(RunResult *r) {
        free(r->out);
        free(r->err);
        r->out = r->err = NULL;
}

void run_result_dump(const char *what, const RunResult *r) {
        fprintf(stderr, "---- %s: status %d\n---- stdout:\n%s\n---- stderr:\n%s\n----\n", what,
                r->status, r->out ? r->out : "", r->err ? r->err : "");
}

static int slurp_fd(int fd, char **ret, size_t *ret_len) {
        size_t n = 0, cap = 4096;
        char *buf = malloc(cap + 1);

        if (!buf)
                return -ENOMEM;
        if (lseek(fd, 0, SEEK_SET) < 0) {
                free(buf);
                return -errno;
        }
        for (;;) {
                ssize_t k;

                if (n == cap) {
                        char *nb = realloc(buf, cap * 2 + 1);

                        if (!nb) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = nb;
                        cap *= 2;
                }
                k = read(fd, buf + n, cap - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        free(buf);
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = 0;
        *ret = buf;
        if (ret_len)
                *ret_len = n;
        return 0;
}

int run_argv(RunResult *res, uid_t uid, const char *input, size_t input_len,
             const char *const *env, const char *const *argv) {
        _cleanup_close_ int in_fd = -1, out_fd = -1, err_fd = -1;
        pid_t parent = getpid(), pid;
        int r;

        *res = (RunResult) { .status = -1 };
        in_fd = memfd_create("stdin", MFD_CLOEXEC);
        out_fd = memfd_create("stdout", MFD_CLOEXEC);
        err_fd = memfd_create("stderr", MFD_CLOEXEC);
        if (in_fd < 0 || out_fd < 0 || err_fd < 0)
                return -errno;
        if (input && input_len > 0) {
                const char *p = input;
                size_t left = input_len;

                while (left > 0) {
                        ssize_t k = write(in_fd, p, left);

                        if (k < 0)
                                return -errno;
                        p += k;
                        left -= (size_t) k;
                }
        }
        if (lseek(in_fd, 0, SEEK_SET) < 0)
                return -errno;

        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                pbus_child_die_with_parent(parent);
                if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
                        _exit(126);
                pbus_close_fds_except(-1);
                if (harness_become_uid(uid) < 0) {
                        fprintf(stderr, "harness: cannot become uid %u\n", (unsigned) uid);
                        _exit(126);
                }
                if (uid != 0 && chdir("/") < 0)
                        _exit(126);
                putenv_list(env);
                execvp(argv[0], (char *const *) argv);
                fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        res->status = wait_child(pid, scaled_ms(30000));
        r = slurp_fd(out_fd, &res->out, &res->out_len);
        if (r < 0)
                return r;
        r = slurp_fd(err_fd, &res->err, NULL);
        if (r < 0)
                return r;
        return 0;
}

static int run_prefixed(RunResult *res, uid_t uid, const char *input, const char *tool,
                        const char *const *args) {
        const char *argv[64];
        char addr[400];
        size_t n = 0;
        int r;

        ck_assert_ptr_nonnull(H);
        snprintf(addr, sizeof(addr), "--address=%s", H->address);
        argv[n++] = tool;
        argv[n++] = addr;
        for (; *args; args++) {
                ck_assert(n < ELEMENTSOF(argv) - 1);
                argv[n++] = *args;
        }
        argv[n] = NULL;
        r = run_argv(res, uid, input, input ? strlen(input) : 0, NULL, argv);
        ck_assert_msg(r == 0, "running %s failed: %s", tool, strerror(-r));
        return r;
}

int run_ctl(RunResult *res, uid_t uid, const char *input, const char *const *args) {
        return run_prefixed(res, uid, input, harness_env("BUFBROKERCTL"), args);
}

int run_busctl(RunResult *res, uid_t uid, const char *const *args) {
        return run_prefixed(res, uid, NULL, "busctl", args);
}

int bg_spawn(BgProc *p, uid_t uid, const char *const *env, const char *const *argv) {
        int pipefd[2];
        pid_t parent = getpid();

        *p = (BgProc) { .pid = -1, .out_fd = -1 };
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        fflush(stdout);
        fflush(stderr);
        p->pid = fork();
        if (p->pid < 0) {
                close(pipefd[0]);
                close(pipefd[1]);
                return -errno;
        }
        if (p->pid == 0) {
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

                pbus_child_die_with_parent(parent);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(pipefd[1], 1) < 0 ||
                    dup2(pipefd[1], 2) < 0)
                        _exit(126);
                pbus_close_fds_except(-1);
                if (harness_become_uid(uid) < 0 || (uid != 0 && chdir("/") < 0))
                        _exit(126);
                putenv_list(env);
                execvp(argv[0], (char *const *) argv);
                _exit(127);
        }
        close(pipefd[1]);
        p->out_fd = pipefd[0];
        (void) fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
        return 0;
}

static void bg_read(BgProc *p) {
        for (;;) {
                char buf[4096];
                ssize_t k = read(p->out_fd, buf, sizeof(buf));
                char *nb;

                if (k <= 0)
                        return;
                nb = realloc(p->out, p->out_len + (size_t) k + 1);
                ck_assert_ptr_nonnull(nb);
                p->out = nb;
                memcpy(p->out + p->out_len, buf, (size_t) k);
                p->out_len += (size_t) k;
                p->out[p->out_len] = 0;
        }
}

bool bg_wait_output(BgProc *p, const char *needle, int timeout_ms) {
        uint64_t deadline = now_usec() + (uint64_t) timeout_ms * 1000u;

        for (;;) {
                struct pollfd pfd = { .fd = p->out_fd, .events = POLLIN };
                uint64_t now;

                bg_read(p);
                if (p->out && strstr(p->out, needle))
                        return true;
                now = now_usec();
                if (now >= deadline)
                        return false;
                (void) poll(&pfd, 1, (int) ((deadline - now) / 1000u) + 1);
        }
}

int bg_stop(BgProc *p) {
        int status;

        if (p->pid <= 0)
                return -1;
        kill(p->pid, SIGTERM);
        status = wait_child(p->pid, 5000);
        p->pid = -1;
        bg_read(p);
        p->out_fd = safe_close(p->out_fd);
        return status;
}

pid_t fork_as(uid_t uid, int (*fn)(void *userdata), void *userdata) {
        pid_t parent = getpid(), pid;

        fflush(stdout);
        fflush(stderr);
        pid = fork();
        ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) {
                int r;

                pbus_child_die_with_parent(parent);
                /* H->bus belongs to the parent (sd-bus refuses it after fork
                 * with -ECHILD); it stays reachable, so no leak report. */
                if (harness_become_uid(uid) < 0) {
                        fprintf(stderr, "harness: cannot become uid %u: %s\n", (unsigned) uid,
                                strerror(errno));
                        _exit(126);
                }
                r = fn(userdata);
                fflush(stdout);
                fflush(stderr);
                _exit(r < 0 || r > 125 ? 125 : r);
        }
        return pid;
}

uid_t system_uid(const char *user) {
        const struct passwd *pw = getpwnam(user);

        ck_assert_msg(pw, "no user %s on this system", user);
        ck_assert_uint_ne(pw->pw_uid, 0);
        return pw->pw_uid;
}

int run_as(uid_t uid, int (*fn)(void *userdata), void *userdata, int timeout_ms) {
        return wait_child(fork_as(uid, fn, userdata), scaled_ms(timeout_ms));
}

/* Stands in for the service manager's notify socket: takes the messages
 * (and closes the fds stored with them) until killed. */
static int drain_notify(void *userdata) {
        int fd = *(int *) userdata;

        for (;;) {
                char buf[4096], control[CMSG_SPACE(sizeof(int) * 16)];
                struct iovec iov = { buf, sizeof(buf) };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                     .msg_controllen = sizeof(control) };
                struct cmsghdr *c;

                if (recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) < 0)
                        return errno == EINTR ? 0 : 1;
                for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
                                        close(((int *) CMSG_DATA(c))[i]);
        }
}

/* A notify socket at $H->dir/notify drained by a child: *ret_fd, the pid. */
pid_t notify_drainer_start(char path[static 108], int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", H->dir);
        (void) unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        memcpy(path, sa.sun_path, sizeof(sa.sun_path));
        *ret_fd = fd;
        return fork_as(AS_ROOT, drain_notify, ret_fd);
}

void notify_drainer_stop(pid_t drainer, int fd) {
        kill(drainer, SIGKILL);
        (void) wait_child(drainer, 5000);
        close(fd);
}
