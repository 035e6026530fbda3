/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vm suite (plain mode): 100,000 live buffers in one bufbrokerd, with the
 * fd store active. The guest's root may raise RLIMIT_NOFILE (the CI host's
 * may not: its hard limit is 20,000), so this is where the daemon's fd
 * budget is tried at its full size.
 *
 * The fd store is a stand-in: a NOTIFY_SOCKET receiver here that takes every
 * message and closes the fds it carries (systemd would keep them). Not
 * systemd's own store: systemd compares each fd stored with every one it
 * holds already (service_add_fd_store(): same_fd() in a loop), so filling it
 * with 100,000 is quadratic in PID 1, far beyond this suite's time; the
 * unit keeps FileDescriptorStoreMax= at 65536 for that reason (bufbrokerd(8)).
 *
 * Two daemons, each on its own private bus with its own receiver: "empty"
 * holds nothing, "loaded" holds SCALE_LIVE buffers made by CreateMemfds (16
 * a call) on one connection that keeps their fds (the fd is the lease). The
 * create+release cost is measured on both in alternating rounds, so a drift
 * of the emulated machine's speed hits both alike. Asserted: every buffer
 * made and held, every fd stored, the daemons alive, the loaded one within
 * SCALE_RATIO_MAX of the empty one (an O(live buffers) step per call would
 * be far beyond it at 100,000; the 10 % goal is measured, not asserted), and
 * after release the daemon's fds and Stats back at their baseline. The
 * numbers (rates, ratio, RSS per buffer) are printed as "# scale:" lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "bufbroker-protocol.h"
#include "daemon-state.h"
#include "macro.h"
#include "private-bus.h"

#define SCALE_LIVE_DEFAULT      100000u
#define SCALE_ROUNDS            3
#define SCALE_CYCLES            400     /* create+release per round and daemon */
#define SCALE_RATIO_MAX         2.0
#define SCALE_BUFFER_SIZE       4096

static unsigned n_failed;
static unsigned SCALE_LIVE = SCALE_LIVE_DEFAULT;       /* $BB_SCALE_LIVE: by hand, on a smaller machine */

static _printf_(1, 2) void diag(const char *fmt, ...) {
        va_list ap;

        fputs("# ", stdout);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static _printf_(2, 3) bool check(bool ok, const char *fmt, ...) {
        va_list ap;

        fputs(ok ? "ok - " : "not ok - ", stdout);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        if (!ok)
                n_failed++;
        return ok;
}

/* ---- the fd store stand-in ------------------------------------------------ */

typedef struct StoreCount {
        uint64_t fds;                   /* fds received (FDSTORE=1) */
        uint64_t messages;
} StoreCount;

static _Noreturn void store_main(int fd, StoreCount *count) {
        for (;;) {
                char data[4096], control[CMSG_SPACE(sizeof(int) * 253)];
                struct iovec iov = { data, sizeof(data) };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                     .msg_controllen = sizeof(control) };

                if (recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                __atomic_add_fetch(&count->messages, 1, __ATOMIC_RELAXED);
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                        int stored;

                                        memcpy(&stored, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                        close(stored);
                                        __atomic_add_fetch(&count->fds, 1, __ATOMIC_RELAXED);
                                }
        }
}

/* ---- one daemon on its own bus --------------------------------------------- */

typedef struct Daemon {
        const char *name;
        char dir[64], socket_path[128], notify_path[128], address[160];
        pid_t bus_pid, store_pid, pid;
        StoreCount *store;
        sd_bus *bus;                    /* the measuring connection */
} Daemon;

static bool daemon_alive(void *userdata) {
        Daemon *d = userdata;
        return kill(d->pid, 0) == 0;
}

static int daemon_start(Daemon *d, const char *name, const char *binary, const char *policy, const char *log_path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char config[128], a1[64], a2[64], a3[64];
        const char *argv[] = { binary, "--system", a1, a2, a3, NULL };
        PbusSpawn opts = { .uid = (uid_t) -1, .gid = (gid_t) -1 };
        int fd, r;

        d->name = name;
        snprintf(d->dir, sizeof(d->dir), "/run/bb-scale-%s", name);
        pbus_rm_rf_dir(d->dir);
        if (mkdir(d->dir, 0755) < 0)
                return -errno;
        snprintf(config, sizeof(config), "%s/bus.conf", d->dir);
        snprintf(d->socket_path, sizeof(d->socket_path), "%s/bus", d->dir);
        snprintf(d->address, sizeof(d->address), "unix:path=%s", d->socket_path);
        r = pbus_write_config(config, d->socket_path, policy, NULL, NULL);
        if (r >= 0)
                r = pbus_start_dbus_daemon(config, d->socket_path, &d->bus_pid);
        if (r < 0)
                return r;

        d->store = mmap(NULL, sizeof(StoreCount), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (d->store == MAP_FAILED)
                return -errno;
        snprintf(d->notify_path, sizeof(d->notify_path), "%s/notify", d->dir);
        memcpy(sa.sun_path, d->notify_path, MIN(sizeof(sa.sun_path) - 1, strlen(d->notify_path)));
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        fflush(NULL);
        d->store_pid = fork();
        if (d->store_pid < 0)
                return -errno;
        if (d->store_pid == 0) {
                pbus_child_die_with_parent(getppid());
                store_main(fd, d->store);
        }
        close(fd);

        /* One uid holds them all, and one uid gets half of each global
         * limit (the fair share): room for twice the level. The fd budget
         * is left to RLIMIT_NOFILE: that is what is tried here. */
        snprintf(a1, sizeof(a1), "--max-buffers-per-uid=%u", SCALE_LIVE + 1024);
        snprintf(a2, sizeof(a2), "--max-buffers=%u", 2 * (SCALE_LIVE + 1024));
        snprintf(a3, sizeof(a3), "--max-tokens=%u", 16384);
        opts.notify_socket = d->notify_path;
        fflush(NULL);
        {
                int saved = dup(STDERR_FILENO), logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                if (logfd >= 0)
                        dup2(logfd, STDERR_FILENO);
                d->pid = pbus_spawn_daemon(d->address, argv, &opts);
                dup2(saved, STDERR_FILENO);
                close(saved);
                if (logfd >= 0)
                        close(logfd);
        }
        if (d->pid < 0)
                return d->pid;

        r = pbus_connect(d->address, &d->bus);
        if (r < 0)
                return r;
        /* The emulated machine on a busy host: calls may wait long. */
        (void) sd_bus_set_method_call_timeout(d->bus, 120 * UINT64_C(1000000));
        for (unsigned i = 0; i < 600; i++) {
                sd_bus_message *reply = NULL;
                int has = 0;

                r = sd_bus_call_method(d->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", NULL, &reply, "s", BB_BUS_NAME);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "b", &has);
                sd_bus_message_unref(reply);
                if (r >= 0 && has)
                        return 0;
                if (!daemon_alive(d))
                        return -ESRCH;
                pbus_msleep(100);
        }
        return -ETIMEDOUT;
}

static int daemon_stop(Daemon *d) {
        int status = 0;

        d->bus = sd_bus_flush_close_unref(d->bus);
        if (d->pid > 0) {
                kill(d->pid, SIGTERM);
                status = pbus_wait_child(d->pid, 300000);      /* the emulated machine, 100,000 buffers */
        }
        if (d->store_pid > 0) {
                kill(d->store_pid, SIGKILL);
                (void) pbus_wait_child(d->store_pid, 5000);
        }
        if (d->bus_pid > 0) {
                kill(d->bus_pid, SIGTERM);
                (void) pbus_wait_child(d->bus_pid, 5000);
        }
        pbus_rm_rf_dir(d->dir);
        return status;
}

/* A /proc/meminfo field, KiB (-1: none). */
static long meminfo(const char *field) {
        char line[256], name[64];
        long value = -1, v;
        FILE *f = fopen("/proc/meminfo", "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%63[^:]: %ld", name, &v) == 2 && strcmp(name, field) == 0)
                        value = v;
        fclose(f);
        return value;
}

/* VmRSS and RssAnon of pid, KiB. */
static void proc_rss(pid_t pid, long *ret_rss, long *ret_anon) {
        char path[64], line[256];
        FILE *f;

        *ret_rss = *ret_anon = -1;
        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                (void) sscanf(line, "VmRSS: %ld", ret_rss);
                (void) sscanf(line, "RssAnon: %ld", ret_anon);
        }
        fclose(f);
}

static uint64_t get_limit(sd_bus *bus, const char *key) {
        sd_bus_message *reply = NULL;
        uint64_t value = 0;
        int r;

        r = sd_bus_get_property(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Limits", NULL, &reply,
                                "a{sv}");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r > 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *k;

                r = sd_bus_message_read(reply, "s", &k);
                if (r >= 0 && strcmp(k, key) == 0)
                        r = sd_bus_message_read(reply, "v", "t", &value);
                else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = 1;
        }
        sd_bus_message_unref(reply);
        return value;
}

/* create(4K) + Release, SCALE_CYCLES times: the median, in us; <0 on error. */
static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* The time pid spent on a CPU, ns (/proc/PID/schedstat); 0 if unknown. */
static uint64_t proc_cpu_ns(pid_t pid) {
        char path[64];
        unsigned long long ns = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/schedstat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        if (fscanf(f, "%llu", &ns) != 1)
                ns = 0;
        fclose(f);
        return ns;
}

/* create(4K) + Release, SCALE_CYCLES times: the median wall time of a cycle,
 * in us (<0 on error), and the daemon's CPU time per cycle (*ret_cpu_us):
 * what the daemon does, less blurred by the other processes (the bus, this
 * one) and by a busy host than the wall time. */
static double cycle_us(Daemon *d, double *ret_cpu_us) {
        static double samples[SCALE_CYCLES];
        uint64_t cpu0 = proc_cpu_ns(d->pid);
        unsigned errors = 0;

        for (unsigned i = 0; i < SCALE_CYCLES; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                uint64_t t0 = pbus_now_usec(), size;
                const char *path;
                int fd, r;

                r = sd_bus_call_method(d->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                                       &error, &reply, "sta{sv}", "scale-cycle", (uint64_t) SCALE_BUFFER_SIZE, 0);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "oht", &path, &fd, &size);
                /* Release before the reply (and its fd, the lease) goes. */
                if (r >= 0)
                        r = sd_bus_call_method(d->bus, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release", &error,
                                               NULL, "");
                if (r < 0) {
                        /* As in on_created(): a move to a fresh connection. */
                        diag("%s: create+release %u: %s%s", d->name, i, error.message ?: strerror(-r),
                             errors < 10 ? "; again" : "");
                        sd_bus_error_free(&error);
                        sd_bus_message_unref(reply);
                        if (++errors > 10)
                                return -1;
                        i--;
                        continue;
                }
                sd_bus_message_unref(reply);
                samples[i] = (double) (pbus_now_usec() - t0);
        }
        if (ret_cpu_us)
                *ret_cpu_us = (double) (proc_cpu_ns(d->pid) - cpu0) / 1000 / SCALE_CYCLES;
        qsort(samples, SCALE_CYCLES, sizeof(double), cmp_double);
        return samples[SCALE_CYCLES / 2];
}

/* ---- the live buffers ------------------------------------------------------- */

/* Calls in flight: their replies' fds (16 each) must stay under the 64
 * that dbus-daemon lets wait for a client, or it stops reading the daemon
 * (and the daemon, after 250 ms, moves to a fresh connection). */
#define LIVE_WINDOW 2
#define LIVE_RETRIES_MAX 1000

typedef struct Live Live;

typedef struct LiveCall {
        Live *live;
        unsigned count;
        bool busy;
} LiveCall;

struct Live {
        sd_bus *bus;                    /* the holder's connection */
        char **paths;
        int *fds;
        unsigned n, target, in_flight, asked, retries;
        LiveCall calls[LIVE_WINDOW];
        int error;
};

/* A CreateMemfds reply: its buffers' paths and (dup'ed) fds into l. */
static int live_take(Live *l, sd_bus_message *reply) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        if (e) {
                diag("CreateMemfds with %u live: %s", l->n, e->message);
                return -EIO;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(oht)");
        while (r >= 0) {
                const char *path;
                uint64_t size;
                int fd;

                r = sd_bus_message_read(reply, "(oht)", &path, &fd, &size);
                if (r <= 0)
                        break;
                if (l->n == l->target)
                        return -E2BIG;
                l->fds[l->n] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                l->paths[l->n] = strdup(path);
                if (l->fds[l->n] < 0 || !l->paths[l->n])
                        return -errno;
                l->n++;
        }
        return r;
}

/* A call that failed is asked again: on this emulated machine the daemon
 * may move to a fresh bus connection (it takes a bus that is not scheduled
 * for 250 ms for one that stopped reading), and calls in flight then end
 * in an error; what they made was taken back. Stats are checked after. */
static int on_created(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        LiveCall *call = userdata;
        Live *l = call->live;
        int r;

        call->busy = false;
        l->in_flight--;
        if (sd_bus_message_is_method_error(reply, NULL) && l->retries < LIVE_RETRIES_MAX) {
                diag("CreateMemfds with %u live: %s; asking again", l->n, sd_bus_message_get_error(reply)->message);
                l->retries++;
                l->asked -= call->count;
                return 0;
        }
        r = live_take(l, reply);
        if (r < 0 && l->error == 0)
                l->error = r;
        return 0;
}

/* CreateMemfds, LIVE_WINDOW calls in flight (the daemon queues up to 32 per
 * connection): the emulated machine's round trips do not add up. */
static int live_build(Daemon *d, Live *l, unsigned target) {
        uint64_t t0 = pbus_now_usec();
        unsigned next_report = 10000;
        int r = pbus_connect(d->address, &l->bus);

        if (r < 0)
                return r;
        (void) sd_bus_set_method_call_timeout(l->bus, 120 * UINT64_C(1000000));
        l->target = target;
        l->paths = calloc(target, sizeof(char *));
        l->fds = calloc(target, sizeof(int));
        if (!l->paths || !l->fds)
                return -ENOMEM;
        while (l->error == 0 && (l->asked < target || l->in_flight > 0)) {
                while (l->asked < target && l->in_flight < LIVE_WINDOW) {
                        uint32_t count = MIN(target - l->asked, (unsigned) BB_CREATE_BATCH_MAX);
                        LiveCall *call = NULL;

                        for (unsigned i = 0; !call && i < LIVE_WINDOW; i++)
                                if (!l->calls[i].busy)
                                        call = &l->calls[i];
                        *call = (LiveCall) { .live = l, .count = count, .busy = true };
                        r = sd_bus_call_method_async(l->bus, NULL, BB_BUS_NAME, BB_MANAGER_PATH,
                                                     BB_MANAGER_INTERFACE, "CreateMemfds", on_created, call,
                                                     "stua{sv}", "scale-live", (uint64_t) SCALE_BUFFER_SIZE, count,
                                                     0);
                        if (r < 0)
                                return r;
                        l->asked += count;
                        l->in_flight++;
                }
                r = sd_bus_process(l->bus, NULL);
                if (r < 0)
                        return r;
                if (r == 0 && (r = sd_bus_wait(l->bus, UINT64_MAX)) < 0)
                        return r;
                if (l->n >= next_report) {
                        diag("%s: %u live after %.1f s", d->name, l->n, (double) (pbus_now_usec() - t0) / 1e6);
                        next_report += 10000;
                }
        }
        return l->error;
}

/* ReleaseBuffers in batches, and close the fds (the leases). */
static int live_release(Live *l) {
        int r = 0;

        for (unsigned i = 0; i < l->n && r >= 0; i += BB_RELEASE_BATCH_MAX) {
                sd_bus_message *m = NULL;
                sd_bus_error error = SD_BUS_ERROR_NULL;

                r = sd_bus_message_new_method_call(l->bus, &m, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                                   "ReleaseBuffers");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "o");
                for (unsigned k = i; r >= 0 && k < MIN(l->n, i + BB_RELEASE_BATCH_MAX); k++)
                        r = sd_bus_message_append(m, "o", l->paths[k]);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_call(l->bus, m, 0, &error, NULL);
                if (r < 0)
                        diag("ReleaseBuffers from %u: %s", i, error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                sd_bus_message_unref(m);
        }
        for (unsigned i = 0; i < l->n; i++) {
                close(l->fds[i]);
                free(l->paths[i]);
        }
        free(l->paths);
        free(l->fds);
        l->bus = sd_bus_flush_close_unref(l->bus);
        return r;
}

static int raise_nofile(rlim_t *ret) {
        struct rlimit rl;
        unsigned long nr_open = 1048576;
        FILE *f = fopen("/proc/sys/fs/nr_open", "re");

        if (f) {
                if (fscanf(f, "%lu", &nr_open) != 1)
                        nr_open = 1048576;
                fclose(f);
        }
        rl.rlim_cur = rl.rlim_max = nr_open;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                /* Not root in the guest, or no CAP_SYS_RESOURCE: as high as we may. */
                if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                        return -errno;
                rl.rlim_cur = rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        return -errno;
        }
        *ret = rl.rlim_cur;
        return 0;
}

static int write_sysctl(const char *path, const char *value) {
        int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

        if (fd < 0)
                return -errno;
        if (write(fd, value, strlen(value)) < 0)
                r = -errno;
        close(fd);
        return r;
}

int main(int argc, char *argv[]) {
        const char *build = getenv("BB_BUILD_DIR"), *src = getenv("BB_SOURCE_DIR"), *out = getenv("BB_VM_OUT");
        char binary[512], policy[512], log_path[512];
        Daemon empty = {}, loaded = {};
        Snapshot base = {}, peak = {}, after = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        double us_empty[SCALE_ROUNDS], us_loaded[SCALE_ROUNDS], ratio;
        double cpu_empty[SCALE_ROUNDS], cpu_loaded[SCALE_ROUNDS], cpu_ratio;
        long rss0 = -1, anon0 = -1, rss1 = -1, anon1 = -1, rss2, anon2, slab0, avail0;
        uint64_t t0, fds_before, max_fds;
        Live live = {};
        rlim_t nofile = 0;
        int r;

        if (argc > 1 || !build || !src) {
                fprintf(stderr, "usage: BB_BUILD_DIR=... BB_SOURCE_DIR=... [BB_VM_OUT=...] guest-scale\n");
                return 2;
        }
        if (getenv("BB_VM_MODE") && strcmp(getenv("BB_VM_MODE"), "plain") != 0) {
                printf("# skipped: runs in plain mode only\n");
                return 77;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (getenv("BB_SCALE_LIVE"))
                SCALE_LIVE = (unsigned) strtoul(getenv("BB_SCALE_LIVE"), NULL, 10);
        signal(SIGPIPE, SIG_IGN);
        snprintf(binary, sizeof(binary), "%s/daemon/bufbrokerd", build);
        snprintf(policy, sizeof(policy), "%s/systemd/org.bufbroker.Broker1.conf", src);
        snprintf(log_path, sizeof(log_path), "%s/scale-bufbrokerd.log", out ?: "/tmp");

        r = raise_nofile(&nofile);
        if (!check(r >= 0 && nofile >= 2 * (SCALE_LIVE + 1024) + 1024,
                   "RLIMIT_NOFILE raised to %lu, room for %u live buffers with the fair share", (unsigned long) nofile,
                   SCALE_LIVE))
                return 1;
        /* One inotify watch per memfd (its lease): the default per-user
         * limit of a 1 GiB machine is far below 100,000. */
        r = write_sysctl("/proc/sys/fs/inotify/max_user_watches", "262144");
        check(r >= 0, "fs.inotify.max_user_watches raised to 262144 (a lease watch per memfd)");

        r = daemon_start(&empty, "empty", binary, policy, log_path);
        if (r >= 0)
                r = daemon_start(&loaded, "loaded", binary, policy, log_path);
        if (!check(r >= 0, "two private buses, each with bufbrokerd and an fd store stand-in: %s",
                   r < 0 ? strerror(-r) : "up"))
                goto finish;

        max_fds = get_limit(loaded.bus, BB_LIMIT_MAX_FDS);
        check(max_fds >= 2 * (SCALE_LIVE + 1024),
              "the fd budget follows RLIMIT_NOFILE, no cap below it: max-fds %" PRIu64 " (rlimit %lu)", max_fds,
              (unsigned long) nofile);

        (void) cycle_us(&loaded, NULL);         /* warm-up: the first calls allocate */
        (void) cycle_us(&empty, NULL);
        r = snapshot_read(loaded.bus, loaded.pid, &base, &error);
        proc_rss(loaded.pid, &rss0, &anon0);
        fds_before = loaded.store->fds;
        slab0 = meminfo("Slab");
        avail0 = meminfo("MemAvailable");
        if (!check(r >= 0, "baseline of the loaded daemon read"))
                goto finish;

        t0 = pbus_now_usec();
        r = live_build(&loaded, &live, SCALE_LIVE);
        diag("scale: %u buffers made in %.1f s (CreateMemfds, %u a call, %u in flight, %u asked again)", live.n,
             (double) (pbus_now_usec() - t0) / 1e6, BB_CREATE_BATCH_MAX, LIVE_WINDOW, live.retries);
        if (!check(r >= 0 && live.n == SCALE_LIVE, "%u live buffers made without an error (%u made)", SCALE_LIVE,
                   live.n))
                goto release;

        r = snapshot_read(loaded.bus, loaded.pid, &peak, &error);
        check(r >= 0 && peak.buffers == base.buffers + SCALE_LIVE,
              "the daemon holds all %u (Stats buffers %" PRIu64 ")", SCALE_LIVE, peak.buffers);
        check(r >= 0 && peak.fds >= base.fds + (int) SCALE_LIVE,
              "the daemon keeps an fd for each (%d fds, %d at the start)", peak.fds, base.fds);
        for (unsigned i = 0; i < 100 && loaded.store->fds - fds_before < SCALE_LIVE; i++)
                pbus_msleep(100);
        check(loaded.store->fds - fds_before >= SCALE_LIVE,
              "the fd store got every buffer's fd (%" PRIu64 " fds in %" PRIu64 " messages since the start)",
              loaded.store->fds - fds_before, loaded.store->messages);
        proc_rss(loaded.pid, &rss1, &anon1);
        diag("scale: the kernel: Slab %ld -> %ld KiB (%.0f B per live buffer), MemAvailable %ld -> %ld KiB "
             "(%.0f B per live buffer, every process and the kernel)", slab0, meminfo("Slab"),
             (double) (meminfo("Slab") - slab0) * 1024 / SCALE_LIVE, avail0, meminfo("MemAvailable"),
             (double) (avail0 - meminfo("MemAvailable")) * 1024 / SCALE_LIVE);
        diag("scale: daemon VmRSS %ld -> %ld KiB, RssAnon %ld -> %ld KiB: %.0f B VmRSS, %.0f B RssAnon per live buffer",
             rss0, rss1, anon0, anon1, (double) (rss1 - rss0) * 1024 / SCALE_LIVE,
             (double) (anon1 - anon0) * 1024 / SCALE_LIVE);

        for (unsigned i = 0; i < SCALE_ROUNDS; i++) {
                us_empty[i] = cycle_us(&empty, &cpu_empty[i]);
                us_loaded[i] = cycle_us(&loaded, &cpu_loaded[i]);
                diag("scale: round %u: create+release median %.0f us with 0 live, %.0f us with %u live; "
                     "daemon CPU per cycle %.0f us, %.0f us", i + 1, us_empty[i], us_loaded[i], SCALE_LIVE,
                     cpu_empty[i], cpu_loaded[i]);
        }
        qsort(us_empty, SCALE_ROUNDS, sizeof(double), cmp_double);
        qsort(us_loaded, SCALE_ROUNDS, sizeof(double), cmp_double);
        qsort(cpu_empty, SCALE_ROUNDS, sizeof(double), cmp_double);
        qsort(cpu_loaded, SCALE_ROUNDS, sizeof(double), cmp_double);
        ratio = us_loaded[SCALE_ROUNDS / 2] / us_empty[SCALE_ROUNDS / 2];
        cpu_ratio = cpu_loaded[SCALE_ROUNDS / 2] / cpu_empty[SCALE_ROUNDS / 2];
        diag("scale: median of rounds: %.0f us (%.0f/s) with 0 live, %.0f us (%.0f/s) with %u live: ratio %.3f; "
             "daemon CPU per cycle %.0f us, %.0f us: ratio %.3f",
             us_empty[SCALE_ROUNDS / 2], 1e6 / us_empty[SCALE_ROUNDS / 2], us_loaded[SCALE_ROUNDS / 2],
             1e6 / us_loaded[SCALE_ROUNDS / 2], SCALE_LIVE, ratio, cpu_empty[SCALE_ROUNDS / 2],
             cpu_loaded[SCALE_ROUNDS / 2], cpu_ratio);
        check(us_empty[0] > 0 && us_loaded[0] > 0 && cpu_empty[0] > 0 && cpu_ratio < SCALE_RATIO_MAX,
              "the daemon's CPU time per create+release with %u live buffers is less than %.1fx that with none "
              "(%.3f; wall time %.3f)", SCALE_LIVE, SCALE_RATIO_MAX, cpu_ratio, ratio);

release:
        t0 = pbus_now_usec();
        r = live_release(&live);
        check(r >= 0, "ReleaseBuffers of all of them, %u a call", BB_RELEASE_BATCH_MAX);
        /* The daemon may take longer than a call's timeout to work through
         * 100,000 closes on the emulated machine: a timed-out read is asked
         * again, within the wait. */
        for (uint64_t end = pbus_now_usec() + 600 * UINT64_C(1000000);;) {
                sd_bus_error_free(&error);
                r = snapshot_wait(loaded.bus, loaded.pid, &base, 240000, 500, daemon_alive, &loaded, &after, &error);
                if (r != -ETIMEDOUT || pbus_now_usec() > end)
                        break;
        }
        if (r < 0)
                diag("reading the daemon's state: %s", error.message ?: strerror(-r));
        diag("scale: released in %.1f s", (double) (pbus_now_usec() - t0) / 1e6);
        {
                char want[128], got[128];

                snapshot_format(&base, want, sizeof(want));
                snapshot_format(&after, got, sizeof(got));
                check(r > 0, "the daemon is back at its baseline, fds included (%s; want %s)", got, want);
        }
        proc_rss(loaded.pid, &rss2, &anon2);
        diag("scale: after release VmRSS %ld KiB, RssAnon %ld KiB (%ld, %ld at the start, %ld, %ld with %u live)",
             rss2, anon2, rss0, anon0, rss1, anon1, SCALE_LIVE);
        if (rss1 > 0)
                check(rss2 > 0 && rss2 - rss0 <= (rss1 - rss0) / 4,
                      "the daemon gave most of that memory back after the release (VmRSS %ld KiB over the start, "
                      "%ld KiB at the peak)", rss2 - rss0, rss1 - rss0);

finish:
        sd_bus_error_free(&error);
        r = daemon_stop(&loaded);
        check(r == 0, "the loaded daemon stopped cleanly on SIGTERM (status %d)", r);
        r = daemon_stop(&empty);
        check(r == 0, "the empty daemon stopped cleanly on SIGTERM (status %d)", r);
        return n_failed > 0;
}
