/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The integration-test harness's fixture (see harness.h). Starting the buses and the
 * daemon is tests/lib/private-bus.c (shared with the benchmark, which see for
 * the start-up facts); here its errors become check failures.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness-internal.h"
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

/* wait_child() SIGKILLs and reaps a child that does not exit in time: its
 * pid is free after it, not ours to signal again. */
static void kill_and_reap(pid_t *pid) {
        if (*pid > 0) {
                kill(*pid, SIGTERM);
                (void) wait_child(*pid, 5000);
                *pid = -1;
        }
}

/* Stop the bus. dbus-broker outlives its launcher for a moment (it dies by
 * PR_SET_PDEATHSIG) and, as we are a subreaper, comes to us to be reaped;
 * it logs to the journal socket while exiting, so the drainer goes last. */
static void stop_bus(Harness *h) {
        pid_t broker = h->bus_pid > 0 ? pbus_first_child_of(h->bus_pid) : -1;
        /* A pidfd, not the pid: whoever reaps the broker (the launcher, or
         * we once it is ours), a signal through it never reaches a process
         * that got its pid later. */
        int broker_fd = broker > 0 ? (int) syscall(SYS_pidfd_open, broker, 0) : -1;

        kill_and_reap(&h->bus_pid);
        if (broker_fd >= 0) {
                struct pollfd p = { .fd = broker_fd, .events = POLLIN };

                if (poll(&p, 1, 5000) == 0) {
                        (void) syscall(SYS_pidfd_send_signal, broker_fd, SIGKILL, NULL, 0);
                        (void) poll(&p, 1, 5000);
                }
                (void) waitpid(broker, NULL, WNOHANG);  /* ours if the launcher went first */
                close(broker_fd);
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

int wait_daemon_exit(int timeout_ms) {
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

void harness_restart_daemon(const char *const *daemon_args) {
        char owner[256];
        uint64_t deadline = now_usec() + (uint64_t) scaled_ms(10000) * 1000u;

        ck_assert_msg(!daemon_alive(), "bufbrokerd still runs");
        /* The bus may not have seen the old daemon's connection close yet
         * (dbus-broker, busy): until it has, the name still names the dead
         * connection, and waiting for an owner would find that one. */
        while (get_name_owner(H->bus, BB_BUS_NAME, owner, sizeof(owner)) >= 0 &&
               strcmp(owner, H->daemon_unique_name) == 0) {
                ck_assert_msg(now_usec() < deadline, "the bus kept the exited bufbrokerd's name (%s)", owner);
                msleep(10);
        }
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
                _exit(harness_become_uid(NOBODY_UID) < 0 ? 2 : can_exec((void *) ctl));
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

