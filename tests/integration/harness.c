/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The integration-test harness (see harness.h). Starting the buses and the
 * daemon is tests/lib/private-bus.c (shared with the benchmark, which see for
 * the start-up facts); here its errors become check failures.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "private-bus.h"

Harness *H;
const char *const *harness_daemon_args;
bool harness_with_daemon = true;

static Harness harness_storage;
static pid_t harness_owner_pid;

/* ------------------------------------------------------------------ misc -- */

const char *harness_env(const char *name) {
        const char *v = getenv(name);

        if (!v || !*v) {
                fprintf(stderr, "harness: environment variable %s is not set (run through meson test)\n",
                        name);
                abort();
        }
        return v;
}

const char *bus_kind_name(BusKind kind) {
        return kind == BUS_DBUS_BROKER ? "dbus-broker" : "dbus-daemon";
}

uint64_t now_usec(void) {
        return pbus_now_usec();
}

void msleep(unsigned ms) {
        pbus_msleep(ms);
}

static bool wrapper_set(void) {
        const char *w = getenv("BUFBROKER_TEST_DAEMON_WRAPPER");

        return w && *w;
}

int scaled_ms(int ms) {
        return wrapper_set() ? ms * 10 : ms;
}

char *buffer_path(uint64_t id) {
        char *p;

        ck_assert(asprintf(&p, "%s/%" PRIu64, BB_BUFFER_PATH_PREFIX, id) > 0);
        return p;
}

uint64_t buffer_id_from_path(const char *path) {
        size_t n = strlen(BB_BUFFER_PATH_PREFIX);
        char *end;
        uint64_t id;

        ck_assert_msg(path && strncmp(path, BB_BUFFER_PATH_PREFIX "/", n + 1) == 0,
                      "not a buffer path: %s", path ? path : "(null)");
        errno = 0;
        id = strtoull(path + n + 1, &end, 10);
        ck_assert_msg(errno == 0 && *end == 0 && end != path + n + 1, "bad buffer path %s", path);
        return id;
}

/* Wait for pid up to timeout_ms (<0: forever); returns its translated status,
 * or -1 on timeout (the child is then killed and reaped). */
int wait_child(pid_t pid, int timeout_ms) {
        return pbus_wait_child(pid, timeout_ms);
}

static int become_uid(uid_t uid) {
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
                if (become_uid(uid) < 0) {
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
                if (become_uid(uid) < 0 || (uid != 0 && chdir("/") < 0))
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
                if (become_uid(uid) < 0) {
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

/* ------------------------------------------------------------------ bus -- */

int bus_connect(sd_bus **ret) {
        return pbus_connect(H->address, ret);
}

sd_bus *test_bus(void) {
        ck_assert_ptr_nonnull(H);
        ck_assert_ptr_nonnull(H->bus);
        return H->bus;
}

static int get_name_owner(sd_bus *bus, const char *name, char *ret, size_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *owner;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetNameOwner", &error, &reply, "s", name);
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &owner);
        if (r >= 0 && ret)
                snprintf(ret, size, "%s", owner);
        sd_bus_message_unref(reply);
        return r < 0 ? r : 0;
}

bool wait_name_owner(sd_bus *bus, const char *name, int timeout_ms) {
        uint64_t deadline = now_usec() + (uint64_t) timeout_ms * 1000u;

        while (now_usec() < deadline) {
                if (get_name_owner(bus, name, NULL, 0) >= 0)
                        return true;
                if (H && H->daemon_pid > 0 && !daemon_alive())
                        return false;
                msleep(10);
        }
        return false;
}

/* ------------------------------------------------------------ the buses -- */

const char *harness_daemon_user;
PbusSpawn harness_daemon_spawn;
static bool copy_file(const char *from, const char *to);

/* The runner's pid: every temp dir of this run starts with it, so that
 * harness_main() can remove those of tests that failed (check's fork mode
 * ends a failed test with _exit(): no teardown, no atexit). */
static pid_t harness_runner_pid;

static void make_dir(Harness *h) {
        snprintf(h->dir, sizeof(h->dir), "/tmp/bb-integ-%d-XXXXXX", (int) harness_runner_pid);
        ck_assert_msg(mkdtemp(h->dir), "mkdtemp: %s", strerror(errno));
        /* nobody must reach the socket inside */
        ck_assert(chmod(h->dir, 0755) == 0);
        snprintf(h->socket_path, sizeof(h->socket_path), "%s/bus", h->dir);
        snprintf(h->address, sizeof(h->address), "unix:path=%s", h->socket_path);
}

static void write_bus_config(Harness *h, const char *path) {
        char *extra;
        int r;

        /* The daemon's user may own the name, as "bufbroker" may on a real
         * system (the project's policy names only root and bufbroker). */
        if (asprintf(&extra,
                     "  <policy user=\"root\">\n"
                     "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Monitoring\"/>\n"
                     "  </policy>\n"
                     "  <policy user=\"%s\">\n"
                     "    <allow own=\"" BB_BUS_NAME "\"/>\n"
                     "  </policy>\n",
                     harness_daemon_user ? harness_daemon_user : "root") < 0)
                abort();
        r = pbus_write_config(path, h->socket_path, harness_env("DBUS_POLICY_CONF"),
                "    <deny send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\" send_member=\"UpdateActivationEnvironment\"/>\n",
                extra);
        free(extra);
        ck_assert_msg(r >= 0, "writing the bus config %s: %s", path, strerror(-r));
}

static void start_dbus_daemon(Harness *h, const char *config) {
        int r = pbus_start_dbus_daemon(config, h->socket_path, &h->bus_pid);

        ck_assert_msg(r >= 0, "starting dbus-daemon: %s", strerror(-r));
}

static void start_dbus_broker(Harness *h, const char *config) {
        int r;

        /* The private mount namespace with a fake journal socket (see the top). */
        r = pbus_setup_journal_namespace(&h->journal_pid);
        ck_assert_msg(r >= 0, "fake journal namespace: %s", strerror(-r));
        r = pbus_start_dbus_broker(config, h->socket_path, h->address, &h->bus_pid);
        ck_assert_msg(r >= 0, "starting dbus-broker-launch: %s", strerror(-r));
}

static void wait_bus_ready(Harness *h) {
        int r = pbus_wait_ready(h->address, h->bus_pid, bus_kind_name(h->kind), &h->bus);

        ck_assert_msg(r >= 0, "%s did not come up on %s: %s", bus_kind_name(h->kind), h->address,
                      strerror(-r));
}

/* ---------------------------------------------------------- the daemon -- */

bool daemon_alive(void) {
        int wstatus;
        pid_t r;

        if (!H || H->daemon_pid <= 0 || H->daemon_status >= 0)
                return false;
        r = waitpid(H->daemon_pid, &wstatus, WNOHANG);
        if (r == H->daemon_pid) {
                /* keep the status for stop_daemon() and the messages */
                H->daemon_status = pbus_status_of(wstatus);
                fprintf(stderr, "harness: bufbrokerd (pid %d) exited with status %d\n",
                        (int) H->daemon_pid, H->daemon_status);
                return false;
        }
        return r == 0;
}

static int can_exec(void *userdata) {
        return access((const char *) userdata, X_OK) == 0 ? 0 : 1;
}

/* The daemon's binary, and the uid/gid to run it as: root, or
 * harness_daemon_user, for whom the binary is copied into the run's 0755
 * directory when the build tree is out of its reach. */
static const char *daemon_binary(Harness *h, uid_t *ret_uid, gid_t *ret_gid) {
        static char copy[128];
        const char *bin = harness_env("BUFBROKERD");
        const struct passwd *pw;
        pid_t pid;

        *ret_uid = (uid_t) -1;
        *ret_gid = (gid_t) -1;
        if (!harness_daemon_user)
                return bin;
        pw = getpwnam(harness_daemon_user);
        ck_assert_msg(pw, "no user %s", harness_daemon_user);
        *ret_uid = pw->pw_uid;
        *ret_gid = pw->pw_gid;

        pid = fork_as(pw->pw_uid, can_exec, (void *) bin);
        if (wait_child(pid, 10000) == 0)
                return bin;
        snprintf(copy, sizeof(copy), "%s/bufbrokerd", h->dir);
        ck_assert_msg(copy_file(bin, copy), "cannot copy %s to %s", bin, copy);
        return copy;
}

static void start_daemon(Harness *h, const char *const *daemon_args) {
        const char *wrapper = getenv("BUFBROKER_TEST_DAEMON_WRAPPER");
        const char *argv[64];
        PbusSpawn spawn;
        uid_t uid;
        gid_t gid;
        char *wrapper_copy = NULL;
        size_t n = 0;

        if (wrapper && *wrapper) {
                char *save = NULL, *tok;

                h->wrapped = true;
                wrapper_copy = strdup(wrapper);
                ck_assert_ptr_nonnull(wrapper_copy);
                for (tok = strtok_r(wrapper_copy, " \t", &save); tok;
                     tok = strtok_r(NULL, " \t", &save)) {
                        ck_assert(n < 32);
                        argv[n++] = tok;
                }
        }
        argv[n++] = daemon_binary(h, &uid, &gid);
        argv[n++] = "--system";
        for (; daemon_args && *daemon_args; daemon_args++) {
                ck_assert(n < ELEMENTSOF(argv) - 1);
                argv[n++] = *daemon_args;
        }
        argv[n] = NULL;
        spawn = harness_daemon_spawn;
        spawn.uid = uid;
        spawn.gid = gid;
        h->daemon_pid = pbus_spawn_daemon(h->address, argv, &spawn);
        ck_assert_msg(h->daemon_pid > 0, "starting bufbrokerd: %s", strerror((int) -h->daemon_pid));
        free(wrapper_copy);

        ck_assert_msg(wait_name_owner(h->bus, BB_BUS_NAME, scaled_ms(10000)),
                      "bufbrokerd did not take %s on %s (alive: %d)", BB_BUS_NAME,
                      bus_kind_name(h->kind), daemon_alive());
        ck_assert(get_name_owner(h->bus, BB_BUS_NAME, h->daemon_unique_name,
                                 sizeof(h->daemon_unique_name)) == 0);
        if (!h->wrapped) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                uint32_t pid;

                /* The name's owner is the process we started, not a stray one. */
                ck_assert(sd_bus_call_method(h->bus, "org.freedesktop.DBus",
                                             "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                             "GetConnectionUnixProcessID", &error, &reply, "s",
                                             BB_BUS_NAME) >= 0);
                ck_assert(sd_bus_message_read(reply, "u", &pid) >= 0);
                ck_assert_int_eq((pid_t) pid, h->daemon_pid);
                sd_bus_message_unref(reply);
                sd_bus_error_free(&error);
        }
}

/* Stop the daemon and check it exited 0 (valgrind's error exit code fails). */
static void stop_daemon(Harness *h) {
        int status;

        if (h->daemon_pid <= 0)
                return;
        ck_assert_msg(h->daemon_status < 0, "bufbrokerd had died during the test (status %d)",
                      h->daemon_status);
        ck_assert_msg(kill(h->daemon_pid, SIGTERM) == 0, "kill: %s", strerror(errno));
        status = wait_child(h->daemon_pid, scaled_ms(10000));
        h->daemon_pid = -1;
        ck_assert_msg(status == 0, "bufbrokerd exited with status %d after SIGTERM (want 0%s)",
                      status, status == -1 ? "; it did not exit in time" : "");
}

static void kill_and_reap(pid_t *pid) {
        if (*pid > 0) {
                kill(*pid, SIGTERM);
                if (wait_child(*pid, 5000) < 0)
                        kill(*pid, SIGKILL);
                *pid = -1;
        }
}

/* Stop the bus. dbus-broker outlives its launcher for a moment (it dies by
 * PR_SET_PDEATHSIG) and, as we are a subreaper, comes to us to be reaped;
 * it logs to the journal socket while exiting, so the drainer goes last. */
static void stop_bus(Harness *h) {
        pid_t broker = h->bus_pid > 0 ? pbus_first_child_of(h->bus_pid) : -1;

        kill_and_reap(&h->bus_pid);
        if (broker > 0) {
                uint64_t deadline = now_usec() + 5000000u;

                for (;;) {
                        pid_t r = waitpid(broker, NULL, WNOHANG);

                        if (r == broker || (r < 0 && kill(broker, 0) < 0))
                                break;
                        if (now_usec() > deadline) {
                                kill(broker, SIGKILL);
                                deadline = UINT64_MAX;
                        }
                        msleep(2);
                }
        }
        kill_and_reap(&h->journal_pid);
}

/* Runs on any exit of the test process, including a failed assertion
 * (check's fork mode exits without running the teardown). */
static void harness_atexit(void) {
        Harness *h = &harness_storage;

        /* Only the test process cleans up, never a forked client. */
        if (getpid() != harness_owner_pid)
                return;
        if (h->daemon_pid > 0 && h->daemon_status < 0)
                kill(h->daemon_pid, SIGKILL);
        if (h->bus_pid > 0)
                kill(h->bus_pid, SIGKILL);
        if (h->journal_pid > 0)
                kill(h->journal_pid, SIGKILL);
        if (h->dir[0])
                pbus_rm_rf_dir(h->dir);
}

void harness_start(BusKind kind, bool with_daemon, const char *const *daemon_args) {
        static bool atexit_done;
        Harness *h = &harness_storage;
        char config[512];

        *h = (Harness) { .kind = kind, .bus_pid = -1, .journal_pid = -1, .daemon_pid = -1,
                         .daemon_status = -1 };
        H = h;
        harness_owner_pid = getpid();
        if (!atexit_done) {
                atexit(harness_atexit);
                atexit_done = true;
        }
        /* Orphans (dbus-broker once its launcher is gone) come to us to be
         * reaped in harness_stop() rather than piling up as zombies. */
        (void) prctl(PR_SET_CHILD_SUBREAPER, 1);
        /* A client killed by a test must not take us down with SIGPIPE. */
        signal(SIGPIPE, SIG_IGN);
        make_dir(h);
        snprintf(config, sizeof(config), "%s/bus.conf", h->dir);
        write_bus_config(h, config);
        if (kind == BUS_DBUS_DAEMON)
                start_dbus_daemon(h, config);
        else
                start_dbus_broker(h, config);
        wait_bus_ready(h);
        if (with_daemon)
                start_daemon(h, daemon_args);
}

void harness_restart_daemon(const char *const *daemon_args) {
        ck_assert_msg(!daemon_alive(), "bufbrokerd still runs");
        H->daemon_status = -1;
        start_daemon(H, daemon_args);
}

void harness_stop(void) {
        Harness *h = H;

        if (!h)
                return;
        /* Drop our connection first so the daemon sees a quiet bus. */
        h->bus = sd_bus_flush_close_unref(h->bus);
        stop_daemon(h);
        stop_bus(h);
        pbus_rm_rf_dir(h->dir);
        h->dir[0] = 0;
        H = NULL;
}

static void setup_dbus_daemon(void) {
        harness_start(BUS_DBUS_DAEMON, harness_with_daemon, harness_daemon_args);
}

static void setup_dbus_broker(void) {
        harness_start(BUS_DBUS_BROKER, harness_with_daemon, harness_daemon_args);
}

void harness_add_tcase(Suite *s, const char *name, void (*setup)(void),
                       void (*add_tests)(TCase *tc)) {
        TCase *tc = tcase_create(name);

        tcase_add_checked_fixture(tc, setup, harness_stop);
        tcase_set_timeout(tc, wrapper_set() ? 600 : 60);
        add_tests(tc);
        suite_add_tcase(s, tc);
}

/* TCase names we allocated: check borrows them, harness_main() frees them. */
static char *tcase_names[32];
static size_t n_tcase_names;

void harness_add_tcases(Suite *s, const char *prefix, void (*add_tests)(TCase *tc)) {
        static const struct {
                const char *name;
                void (*setup)(void);
        } kinds[] = {
                { "dbus-daemon", setup_dbus_daemon },
                { "dbus-broker", setup_dbus_broker },
        };

        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                char *name;

                /* not inside a test: no ck_assert here */
                if (asprintf(&name, "%s%s%s", prefix ? prefix : "", prefix ? " " : "",
                             kinds[i].name) < 0)
                        abort();
                if (n_tcase_names >= ELEMENTSOF(tcase_names))
                        abort();
                tcase_names[n_tcase_names++] = name;
                harness_add_tcase(s, name, kinds[i].setup, add_tests);
        }
}

static int nobody_can_exec(void *userdata) {
        return access((const char *) userdata, X_OK) == 0 ? 0 : 1;
}

static bool copy_file(const char *from, const char *to) {
        char buf[65536];
        int in, out;
        ssize_t k;
        bool ok = true;

        in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return false;
        out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
        if (out < 0) {
                close(in);
                return false;
        }
        while ((k = read(in, buf, sizeof(buf))) > 0)
                if (write(out, buf, (size_t) k) != k) {
                        ok = false;
                        break;
                }
        ok = ok && k == 0;
        close(in);
        return close(out) == 0 && ok;
}

/* Copy libbufbroker.so* from dir into to. */
static void copy_libs(const char *dir, const char *to) {
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                char from[PATH_MAX], dest[PATH_MAX];

                if (strncmp(de->d_name, "libbufbroker.so", 15) != 0)
                        continue;
                snprintf(from, sizeof(from), "%s/%s", dir, de->d_name);
                snprintf(dest, sizeof(dest), "%s/%s", to, de->d_name);
                if (!copy_file(from, dest))
                        fprintf(stderr, "harness: cannot copy %s\n", from);
        }
        closedir(d);
}

/* uid 65534 runs bufbrokerctl too. When the build tree is out of its reach
 * (say under a 0700 /root), run a copy of the CLI and its library from a
 * 0755 directory of this run instead. */
static void stage_cli_for_nobody(void) {
        const char *ctl = harness_env("BUFBROKERCTL");
        char dir[64], *ctldir, *copy, *ldpath, *lib;
        const char *old;
        pid_t pid;

        pid = fork();
        if (pid < 0)
                abort();
        if (pid == 0)
                _exit(become_uid(NOBODY_UID) < 0 ? 2 : nobody_can_exec((void *) ctl));
        if (wait_child(pid, 10000) == 0)
                return;

        snprintf(dir, sizeof(dir), "/tmp/bb-integ-%d-cli", (int) harness_runner_pid);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                abort();
        (void) chmod(dir, 0755);
        ctldir = strdup(ctl);
        if (!ctldir || asprintf(&copy, "%s/bufbrokerctl", dir) < 0)
                abort();
        *strrchr(ctldir, '/') = 0;
        if (!copy_file(ctl, copy)) {
                fprintf(stderr, "harness: cannot copy %s to %s\n", ctl, copy);
                abort();
        }
        copy_libs(ctldir, dir);
        old = getenv("LD_LIBRARY_PATH");
        lib = old ? strdup(old) : NULL;
        for (char *save = NULL, *p = lib ? strtok_r(lib, ":", &save) : NULL; p;
             p = strtok_r(NULL, ":", &save))
                copy_libs(p, dir);
        if (asprintf(&ldpath, "%s%s%s", dir, old ? ":" : "", old ? old : "") < 0)
                abort();
        setenv("LD_LIBRARY_PATH", ldpath, 1);
        setenv("BUFBROKERCTL", copy, 1);
        fprintf(stderr, "harness: uid 65534 cannot run %s; running a copy from %s\n", ctl, dir);
        free(lib);
        free(ldpath);
        free(copy);
        free(ctldir);
}

static void remove_run_dirs(void) {
        char prefix[64];
        struct dirent *de;
        DIR *d = opendir("/tmp");

        if (!d)
                return;
        snprintf(prefix, sizeof(prefix), "bb-integ-%d-", (int) harness_runner_pid);
        while ((de = readdir(d))) {
                char p[300];

                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                snprintf(p, sizeof(p), "/tmp/%s", de->d_name);
                pbus_rm_rf_dir(p);
        }
        closedir(d);
}

int harness_main(Suite *s) {
        SRunner *sr;
        int failed;

        if (geteuid() != 0) {
                /* Both buses need several uids, and dbus-broker needs a private
                 * mount namespace: refuse loudly, never pass silently. */
                fprintf(stderr,
                        "SKIP: the integration tests must run as root (they run clients as uid "
                        "65534 and give dbus-broker a private /run/systemd in a mount "
                        "namespace); nothing was tested.\n");
                return 77;
        }
        harness_runner_pid = getpid();
        stage_cli_for_nobody();
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        while (n_tcase_names > 0)
                free(tcase_names[--n_tcase_names]);
        remove_run_dirs();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---------------------------------------------------------- daemon state -- */

int daemon_fd_count(void) {
        char path[64];
        struct dirent *de;
        int n = 0;
        DIR *d;

        ck_assert(H && H->daemon_pid > 0);
        snprintf(path, sizeof(path), "/proc/%d/fd", (int) H->daemon_pid);
        d = opendir(path);
        ck_assert_msg(d, "opendir %s: %s", path, strerror(errno));
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

void stats_read(Snapshot *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;

        *ret = (Snapshot) { 0 };
        r = sd_bus_get_property(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                "Stats", &error, &reply, "a{sv}");
        ck_assert_msg(r >= 0, "reading Stats: %s: %s", error.name ? error.name : "",
                      error.message ? error.message : strerror(-r));
        ck_assert(sd_bus_message_enter_container(reply, 'a', "{sv}") > 0);
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;
                uint64_t v;

                ck_assert(sd_bus_message_read(reply, "s", &key) > 0);
                ck_assert_msg(sd_bus_message_read(reply, "v", "t", &v) > 0,
                              "Stats[%s] is not a t", key);
                if (strcmp(key, BB_STAT_BUFFERS) == 0)
                        ret->buffers = v;
                else if (strcmp(key, BB_STAT_BYTES) == 0)
                        ret->bytes = v;
                else if (strcmp(key, BB_STAT_CLIENTS) == 0)
                        ret->clients = v;
                else if (strcmp(key, BB_STAT_TOKENS) == 0)
                        ret->tokens = v;
                ck_assert(sd_bus_message_exit_container(reply) >= 0);
        }
        ck_assert(r >= 0);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        ret->fds = daemon_fd_count();
}

uint64_t stats_get(const char *key) {
        Snapshot s;

        stats_read(&s);
        if (strcmp(key, BB_STAT_BUFFERS) == 0)
                return s.buffers;
        if (strcmp(key, BB_STAT_BYTES) == 0)
                return s.bytes;
        if (strcmp(key, BB_STAT_CLIENTS) == 0)
                return s.clients;
        if (strcmp(key, BB_STAT_TOKENS) == 0)
                return s.tokens;
        ck_abort_msg("unknown stat %s", key);
        return 0;
}

static bool snapshot_eq(const Snapshot *a, const Snapshot *b) {
        return a->buffers == b->buffers && a->bytes == b->bytes && a->clients == b->clients &&
               a->tokens == b->tokens && a->fds == b->fds;
}

void assert_back_to(const Snapshot *base, const char *context) {
        uint64_t deadline = now_usec() + (uint64_t) scaled_ms(3000) * 1000u;
        Snapshot now;

        for (;;) {
                ck_assert_msg(daemon_alive(), "%s: bufbrokerd died", context);
                stats_read(&now);
                if (snapshot_eq(&now, base))
                        break;
                if (now_usec() > deadline)
                        ck_abort_msg("%s: daemon not back at baseline: buffers %" PRIu64
                                     " (want %" PRIu64 "), bytes %" PRIu64 " (%" PRIu64
                                     "), clients %" PRIu64 " (%" PRIu64 "), tokens %" PRIu64
                                     " (%" PRIu64 "), fds %d (%d)",
                                     context, now.buffers, base->buffers, now.bytes, base->bytes,
                                     now.clients, base->clients, now.tokens, base->tokens, now.fds,
                                     base->fds);
                msleep(10);
        }
        ck_assert_msg(daemon_owns_name(), "%s: bufbrokerd no longer owns %s", context, BB_BUS_NAME);
}

bool daemon_owns_name(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint32_t pid = 0;
        int r;

        /* By pid, not unique name: the daemon moves to a fresh connection
         * when the bus stops reading the old one. */
        r = sd_bus_call_method(test_bus(), "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetConnectionUnixProcessID", &error, &reply,
                               "s", BB_BUS_NAME);
        if (r >= 0)
                r = sd_bus_message_read(reply, "u", &pid);
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return r >= 0 && (pid_t) pid == H->daemon_pid;
}

void baseline_after_warmup(Snapshot *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL, *reply2 = NULL;
        const char *path, *token;
        char *p;
        int fd;
        uint64_t size;

        /* create with a ttl, share with a ttl, open, release: every kind of
         * timer and tracking object the daemon may open lazily */
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH,
                                         BB_MANAGER_INTERFACE, "CreateMemfd", &error, &reply,
                                         "sta{sv}", "warmup", (uint64_t) 4096, 1, BB_OPT_TTL_USEC,
                                         "t", (uint64_t) 60000000) >= 0,
                      "warm-up CreateMemfd: %s", error.message);
        ck_assert(sd_bus_message_read(reply, "oht", &path, &fd, &size) >= 0);
        p = strdup(path);
        sd_bus_message_unref(reply);
        reply = NULL;
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, p, BB_BUFFER_INTERFACE, "Share",
                                         &error, &reply, "a{sv}", 1, BB_OPT_TTL_USEC, "t",
                                         (uint64_t) 60000000) >= 0,
                      "warm-up Share: %s", error.message);
        ck_assert(sd_bus_message_read(reply, "s", &token) >= 0);
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH,
                                         BB_MANAGER_INTERFACE, "Open", &error, &reply2, "sa{sv}",
                                         token, 0) >= 0,
                      "warm-up Open: %s", error.message);
        sd_bus_message_unref(reply2);
        sd_bus_message_unref(reply);
        /* Release drops our single hold (created and opened by one connection) */
        ck_assert_msg(sd_bus_call_method(test_bus(), BB_BUS_NAME, p, BB_BUFFER_INTERFACE,
                                         "Release", &error, NULL, "") >= 0,
                      "warm-up Release: %s", error.message);
        sd_bus_error_free(&error);
        free(p);

        /* Wait for the buffer (and its token) to be gone, then take the state. */
        {
                uint64_t deadline = now_usec() + (uint64_t) scaled_ms(3000) * 1000u;

                for (;;) {
                        stats_read(ret);
                        if (ret->buffers == 0 && ret->tokens == 0)
                                break;
                        ck_assert_msg(now_usec() < deadline,
                                      "warm-up buffer not released: buffers %" PRIu64
                                      ", tokens %" PRIu64,
                                      ret->buffers, ret->tokens);
                        msleep(10);
                }
        }
}

void assert_bus_error(const sd_bus_error *err, int r, const char *name, const char *needle,
                      const char *context) {
        ck_assert_msg(r < 0, "%s: call succeeded, expected %s", context, name);
        ck_assert_msg(err->name && strcmp(err->name, name) == 0, "%s: error %s (%s), expected %s",
                      context, err->name ? err->name : "(none)",
                      err->message ? err->message : strerror(-r), name);
        if (needle)
                ck_assert_msg(err->message && strstr(err->message, needle),
                              "%s: error message \"%s\" does not mention \"%s\"", context,
                              err->message ? err->message : "", needle);
}

/* ------------------------------------------------------ calls and signals -- */

void created_done(Created *c) {
        free(c->path);
        c->path = NULL;
        c->fd = safe_close(c->fd);
}

void create_memfd(sd_bus *bus, const char *name, uint64_t size, bool persistent,
                  uint64_t ttl_usec, Created *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        int fd, r;

        bus = bus ?: test_bus();
        ck_assert(sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, BB_MANAGER_PATH,
                                                 BB_MANAGER_INTERFACE, "CreateMemfd") >= 0);
        ck_assert(sd_bus_message_append(m, "st", name, size) >= 0);
        ck_assert(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        if (persistent)
                ck_assert(sd_bus_message_append(m, "{sv}", BB_OPT_PERSISTENT, "b", 1) >= 0);
        if (ttl_usec > 0)
                ck_assert(sd_bus_message_append(m, "{sv}", BB_OPT_TTL_USEC, "t", ttl_usec) >= 0);
        ck_assert(sd_bus_message_close_container(m) >= 0);
        r = sd_bus_call(bus, m, 0, &error, &reply);
        ck_assert_msg(r >= 0, "CreateMemfd(%s, %" PRIu64 "): %s: %s", name, size, error.name,
                      error.message);
        *ret = (Created) { .fd = -1 };
        ck_assert(sd_bus_message_read(reply, "oht", &path, &fd, &ret->size) > 0);
        ret->path = strdup(path);
        ret->id = buffer_id_from_path(path);
        ret->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        ck_assert(ret->fd >= 0);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_error_free(&error);
}

int call_release(sd_bus *bus, const char *path, sd_bus_error *error) {
        return sd_bus_call_method(bus ?: test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                  "Release", error, NULL, "");
}

int call_freeze(sd_bus *bus, const char *path, sd_bus_error *error) {
        return sd_bus_call_method(bus ?: test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                  "Freeze", error, NULL, "");
}

int call_share(sd_bus *bus, const char *path, bool read_only, uid_t uid, bool single_use,
               uint64_t ttl_usec, char **ret_token, sd_bus_error *error) {
        sd_bus_message *m = NULL, *reply = NULL;
        const char *token;
        int r;

        bus = bus ?: test_bus();
        r = sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                           "Share");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && read_only)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_READ_ONLY, "b", 1);
        if (r >= 0 && uid != (uid_t) -1)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_UID, "u", (uint32_t) uid);
        if (r >= 0 && single_use)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_SINGLE_USE, "b", 1);
        if (r >= 0 && ttl_usec > 0)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_TTL_USEC, "t", ttl_usec);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, error, &reply);
        if (r >= 0) {
                r = sd_bus_message_read(reply, "s", &token);
                if (r >= 0 && ret_token)
                        *ret_token = strdup(token);
        }
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r;
}

int call_open(sd_bus *bus, const char *token, char **ret_path, int *ret_fd,
              bool *ret_read_only, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        const char *path;
        int r, fd, first = -1;
        bool ro = false;

        bus = bus ?: test_bus();
        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open",
                               error, &reply, "sa{sv}", token, 0);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0 && ret_path)
                *ret_path = strdup(path);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "h");
        while (r >= 0 && (r = sd_bus_message_read(reply, "h", &fd)) > 0)
                if (first < 0)
                        first = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0 && strcmp(key, BB_INFO_READ_ONLY) == 0) {
                        int b;

                        r = sd_bus_message_read(reply, "v", "b", &b);
                        ro = b;
                } else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        sd_bus_message_unref(reply);
        if (r < 0) {
                safe_close(first);
                return r;
        }
        if (ret_fd)
                *ret_fd = first;
        else
                safe_close(first);
        if (ret_read_only)
                *ret_read_only = ro;
        return 0;
}

bool list_has(sd_bus *bus, uint64_t id) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        bool found = false;
        int r;

        r = sd_bus_call_method(bus ?: test_bus(), BB_BUS_NAME, BB_MANAGER_PATH,
                               BB_MANAGER_INTERFACE, "ListBuffers", &error, &reply, "");
        ck_assert_msg(r >= 0, "ListBuffers: %s", error.message);
        ck_assert(sd_bus_message_enter_container(reply, 'a', BB_LIST_ENTRY_SIGNATURE) > 0);
        for (;;) {
                const char *path, *name, *kind;
                uint64_t bid, size, created;
                uint32_t owner, holders;
                int persistent, frozen;

                r = sd_bus_message_read(reply, BB_LIST_ENTRY_SIGNATURE, &path, &bid, &name, &kind,
                                        &size, &owner, &persistent, &frozen, &holders, &created);
                ck_assert(r >= 0);
                if (r == 0)
                        break;
                found = found || bid == id;
        }
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return found;
}

static uint64_t released_ids[4096];
static size_t n_released;

static int on_released(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *path;
        uint64_t id;

        if (sd_bus_message_read(m, "ot", &path, &id) > 0 && n_released < ELEMENTSOF(released_ids)) {
                /* the path and the id must agree */
                if (buffer_id_from_path(path) == id)
                        released_ids[n_released++] = id;
                else
                        fprintf(stderr, "BufferReleased(%s, %" PRIu64 "): path and id differ\n",
                                path, id);
        }
        return 0;
}

void released_watch(void) {
        int r;

        n_released = 0;
        /* by unique name: only the daemon we started counts */
        r = sd_bus_match_signal(test_bus(), NULL, H->daemon_unique_name, BB_MANAGER_PATH,
                                BB_MANAGER_INTERFACE, "BufferReleased", on_released, NULL);
        ck_assert_msg(r >= 0, "AddMatch BufferReleased: %s", strerror(-r));
}

bool released_seen(uint64_t id) {
        while (sd_bus_process(test_bus(), NULL) > 0)
                ;
        for (size_t i = 0; i < n_released; i++)
                if (released_ids[i] == id)
                        return true;
        return false;
}

bool released_wait(uint64_t id, int timeout_ms) {
        uint64_t deadline = now_usec() + (uint64_t) scaled_ms(timeout_ms) * 1000u;

        for (;;) {
                uint64_t now;

                if (released_seen(id))
                        return true;
                now = now_usec();
                if (now >= deadline)
                        return false;
                (void) sd_bus_wait(test_bus(), deadline - now);
        }
}
