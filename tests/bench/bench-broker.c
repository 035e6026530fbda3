/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-broker: what a buffer costs through bufbrokerd, as ratios against a
 * baseline measured in the same run (the machines are shared and noisy).
 *
 * It starts its own private buses -- dbus-daemon and, as root, dbus-broker --
 * with a system-like configuration that includes the project's policy file,
 * the real bufbrokerd on each, and times, per operation:
 *
 *   (a) inproc   memfd_create + ftruncate + seal + mmap + touch one page +
 *                munmap + close, in this process: the baseline
 *   (a-)         the same without mmap/touch/munmap (informative: splits the
 *                syscalls from the MMU work, which some VMs make expensive)
 *   (B)          the SCM_RIGHTS yardstick: a request byte to a forked server
 *                on a socket pair, a sealed memfd back, map, touch, close
 *   (b) ping     org.freedesktop.DBus.Peer.Ping to bufbrokerd through the bus
 *   (D)          the sd-bus yardstick: a minimal service on the same bus
 *                returns a fresh sealed memfd as 'h'; map, touch, close
 *   (c) create   bb_buffer_create(4 KiB) + map + touch + unmap + release +
 *                unref, on a connection that holds nothing else
 *   (c') create  the same on a connection that already holds a buffer
 *   (d) share    bb_buffer_share (single-use) + bb_buffer_open on a second
 *                connection + release + unref
 *   (e) list     bb_client_list_buffers() + free, with 1000 buffers held
 *   (e')         the same ListBuffers call through raw sd-bus, every entry
 *                read but no handles made: (e) - (e') is the library's part
 *   (k)  kinds   Create(kind) 4 KiB + attach (mmap of the fd; shmat of a
 *                sysv shmid) + touch + detach + Release, raw sd-bus, for
 *                memfd, posix, sysv and file: each kind's cost against a
 *                memfd made the same way
 *
 * Every variant runs ITERATIONS times per round, in chunks interleaved across
 * all variants and both buses (so drift hits them all alike), for at least 3
 * rounds. Reported: median and p90 (the median over rounds of each round's
 * value), and ratios to (a), (b), (D) and (B) taken per round -- both sides
 * from the same round -- with their median and range over rounds.
 *
 * Then (bench-scale.c): 1/4/16 concurrent clients, bulk data through a
 * buffer vs as 'ay', and create+release with many live buffers, without and
 * with the fd store, with the daemon's RSS per buffer.
 *
 * This is a measurement, never a verdict on speed: it exits 0 unless
 * something failed (a bus or the daemon did not start, a call failed, the
 * daemon did not exit cleanly).
 *
 * Environment: BUFBROKERD and DBUS_POLICY_CONF (set by meson); optional
 * BB_BENCH_ITERATIONS (2000), BB_BENCH_LIST_ITERATIONS (200),
 * BB_BENCH_LIST_BUFFERS (1000), BB_BENCH_ROUNDS (5; at least 3),
 * BB_BENCH_BUDGET_SEC (45: the rows; fewer iterations when 3 rounds would
 * not fit, no new round once the next would end past it, but never fewer
 * than 3 rounds), BB_BENCH_PIN (0; 1: everything on CPU 0),
 * BB_BENCH_SCALE (1; 0: the rows only), BB_BENCH_CONC_MS (700 per level and
 * round), BB_BENCH_BULK_MIB (256), BB_BENCH_LIVE_MAX (100000),
 * BB_BENCH_FDSTORE_BUILD_SEC (40: building live buffers with the fd store).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "bench.h"
#include "bufbroker-protocol.h"
#include "bufbroker.h"
#define MIN_ROUNDS 3
#define CHUNKS 10               /* interleaving: each round is CHUNKS passes over all variants */
#define MAX_BUSES 2
#define MIN_ITERATIONS 200      /* per variant and round, when a busy machine scales the run down */
#define MIN_LIST_ITERATIONS 20

/* ------------------------------------------------------------------ misc -- */

uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}

void fail(const char *fmt, ...) {
        va_list ap;

        fflush(stdout);
        fputs("bench-broker: FAILED: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(EXIT_FAILURE);     /* the atexit handler stops what we started */
}

const char *env_required(const char *name) {
        const char *v = getenv(name);

        if (!v || !*v)
                fail("environment variable %s is not set (run through 'meson test --benchmark')", name);
        return v;
}

unsigned env_unsigned(const char *name, unsigned def, unsigned min, unsigned max) {
        const char *v = getenv(name);
        unsigned long u;
        char *end;

        if (!v || !*v)
                return def;
        errno = 0;
        u = strtoul(v, &end, 10);
        if (errno != 0 || *end || end == v || u < min || u > max)
                fail("%s=%s: want a number from %u to %u", name, v, min, max);
        return (unsigned) u;
}


typedef enum BusKind {
        BUS_DBUS_DAEMON,
        BUS_DBUS_BROKER,
} BusKind;

typedef struct Bus {
        BusKind kind;
        const char *name;
        char dir[64];
        char socket_path[108];
        char address[128];
        pid_t bus_pid;                  /* dbus-daemon or dbus-broker-launch */
        pid_t daemon_pid;               /* bufbrokerd */
        pid_t d_pid;                    /* D, the minimal sd-bus service */

        sd_bus *bus;                    /* raw: Peer.Ping */
        sd_bus *holder;                 /* raw: holds the (e) buffers */
        sd_bus *kinds;                  /* raw: (k), holds nothing between iterations */
        bb_client *cold;                /* (c): holds nothing between iterations */
        bb_client *owner;               /* (c') and (d): holds `shared` */
        bb_client *opener;              /* (d): the second connection */
        bb_client *lister;              /* (e) */
        bb_client *private;             /* (p): a private connection of cold's */
        bb_buffer *shared;
        unsigned list_expected;         /* (e): at least this many entries */
} Bus;

static Bus buses[MAX_BUSES];
static unsigned n_buses;
static pid_t journal_pid = -1;
static pid_t b_pid = -1;                /* B, the SCM_RIGHTS server */
static int b_sock = -1;
static pid_t main_pid;
static bool is_root;

static void write_bus_config(Bus *b, const char *path) {
        const char *policy = env_required("DBUS_POLICY_CONF");
        char own[256] = "";

        /* The project's policy lets only root (and the service user) own
         * the name: a non-root run adds its own user, nothing else. */
        if (!is_root) {
                struct passwd *pw = getpwuid(geteuid());

                if (!pw)
                        fail("no passwd entry for uid %u", (unsigned) geteuid());
                snprintf(own, sizeof(own),
                         "  <policy user=\"%s\">\n"
                         "    <allow own=\"" BB_BUS_NAME "\"/>\n"
                         "  </policy>\n",
                         pw->pw_name);
        }

        /* As tests/integration/harness.c, less its two extra rules, plus
         * D's name: anyone may own and call it (a private bus). */
        if (pbus_write_config(path, b->socket_path, policy, bench_d_policy, own) < 0)
                fail("writing the bus config %s", path);
}

static void start_dbus_daemon(Bus *b, const char *config) {
        int r = pbus_start_dbus_daemon(config, b->socket_path, &b->bus_pid);

        if (r < 0)
                fail("starting dbus-daemon: %s", strerror(-r));
}

/* dbus-broker-launch exits unless /run/systemd/journal/socket answers: bind
 * our own in a private mount namespace (the host's /run is not touched) and
 * drain it in a child. */
static void setup_journal_namespace(void) {
        int r = pbus_setup_journal_namespace(&journal_pid);

        if (r < 0)
                fail("fake journal namespace: %s", strerror(-r));
}

static void start_dbus_broker(Bus *b, const char *config) {
        int r = pbus_start_dbus_broker(config, b->socket_path, b->address, &b->bus_pid);

        if (r < 0)
                fail("starting dbus-broker-launch: %s", strerror(-r));
}

static void wait_bus_ready(Bus *b) {
        int r = pbus_wait_ready(b->address, b->bus_pid, b->name, &b->bus);

        if (r < 0)
                fail("%s did not come up on %s: %s", b->name, b->address, strerror(-r));
}

pid_t bench_spawn_bufbrokerd(sd_bus *bus, const char *address, const char *what, const char *const *extra,
                             const PbusSpawn *opts) {
        const char *argv[16] = { env_required("BUFBROKERD"), "--system" };
        unsigned n = 2;
        uint64_t deadline;
        pid_t pid;

        for (; extra && *extra && n + 1 < ELEMENTSOF(argv); extra++)
                argv[n++] = *extra;
        pid = pbus_spawn_daemon(address, argv, opts);
        if (pid < 0)
                fail("starting bufbrokerd on %s: %s", what, strerror((int) -pid));

        deadline = now_ns() + UINT64_C(10000000000);
        for (;;) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r;

                r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "GetNameOwner", &error, NULL, "s",
                                       BB_BUS_NAME);
                sd_bus_error_free(&error);
                if (r >= 0)
                        return pid;
                if (waitpid(pid, NULL, WNOHANG) != 0)
                        fail("bufbrokerd exited during start-up on %s", what);
                if (now_ns() > deadline) {
                        kill(pid, SIGKILL);
                        fail("bufbrokerd did not take %s on %s within 10 s", BB_BUS_NAME, what);
                }
                pbus_msleep(10);
        }
}

static void start_daemon(Bus *b, unsigned max_buffers) {
        char maxbuf[64], maxtok[64], filedir[96], filedir_arg[128];
        const char *extra[] = { maxbuf, maxtok, filedir_arg, NULL };

        /* Say the limits we need rather than lean on the defaults. */
        snprintf(maxbuf, sizeof(maxbuf), "--max-buffers-per-uid=%u", max_buffers);
        snprintf(maxtok, sizeof(maxtok), "--max-tokens-per-uid=%u", 1024u);
        /* (k) file: the kind's directory, in the bus's scratch directory. */
        snprintf(filedir, sizeof(filedir), "%s/files", b->dir);
        if (mkdir(filedir, 0700) < 0)
                fail("mkdir %s: %m", filedir);
        snprintf(filedir_arg, sizeof(filedir_arg), "--file-dir=%s", filedir);
        b->daemon_pid = bench_spawn_bufbrokerd(b->bus, b->address, b->name, extra, NULL);
}

/* SIGKILL and reap (no zombie is left for an init that may not reap). */
static void kill_reap(pid_t pid) {
        if (pid <= 0)
                return;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

/* SIGTERM to bufbrokerd; returns its exit status (0 is clean, also when it
 * was stopped before), or -1. */
static int daemon_stop(Bus *b) {
        int status = 0;

        if (b->daemon_pid > 0) {
                kill(b->daemon_pid, SIGTERM);
                status = pbus_wait_child(b->daemon_pid, 10000);
                b->daemon_pid = -1;
        }
        return status;
}

/* Orderly stop; returns bufbrokerd's exit status (0 is clean), or -1. */
static int bus_stop(Bus *b) {
        int status = 0;
        pid_t broker;

        b->shared = bb_buffer_unref(b->shared);
        b->private = bb_client_unref(b->private);
        b->cold = bb_client_unref(b->cold);
        b->owner = bb_client_unref(b->owner);
        b->opener = bb_client_unref(b->opener);
        b->lister = bb_client_unref(b->lister);
        b->holder = sd_bus_flush_close_unref(b->holder);
        b->kinds = sd_bus_flush_close_unref(b->kinds);
        b->bus = sd_bus_flush_close_unref(b->bus);

        status = daemon_stop(b);
        kill_reap(b->d_pid);
        b->d_pid = -1;
        broker = b->bus_pid > 0 ? pbus_first_child_of(b->bus_pid) : -1;
        if (b->bus_pid > 0) {
                kill(b->bus_pid, SIGTERM);
                (void) pbus_wait_child(b->bus_pid, 5000);
                b->bus_pid = -1;
        }
        /* dbus-broker outlives its launcher for a moment and, as we are a
         * subreaper, comes to us to be reaped. */
        if (broker > 0)
                (void) pbus_wait_child(broker, 5000);
        if (b->dir[0])
                pbus_rm_rf_dir(b->dir);
        b->dir[0] = 0;
        return status;
}

/* Any exit, failures and signals included: nothing we started stays behind.
 * (Async-signal-safe enough for on_fatal_signal: kill, waitpid, and the
 * opendir/unlink of pbus_rm_rf_dir().) */
static void cleanup_atexit(void) {
        if (getpid() != main_pid)
                return;
        for (unsigned i = 0; i < n_buses; i++) {
                Bus *b = &buses[i];

                if (b->daemon_pid > 0)
                        kill_reap(b->daemon_pid);
                b->daemon_pid = -1;
                kill_reap(b->d_pid);
                b->d_pid = -1;
                if (b->bus_pid > 0) {
                        /* dbus-broker-launch's broker comes to us, the subreaper */
                        pid_t broker = pbus_first_child_of(b->bus_pid);

                        kill_reap(b->bus_pid);
                        kill_reap(broker);
                }
                b->bus_pid = -1;
                if (b->dir[0])
                        pbus_rm_rf_dir(b->dir);
                b->dir[0] = 0;
        }
        kill_reap(journal_pid);
        journal_pid = -1;
        kill_reap(b_pid);
        b_pid = -1;
}

static void on_fatal_signal(int sig) {
        /* meson's timeout sends SIGTERM: clean up, then die of it */
        cleanup_atexit();
        signal(sig, SIG_DFL);
        raise(sig);
}

static void bus_start(Bus *b, BusKind kind, unsigned max_buffers) {
        char config[128];
        int r;

        *b = (Bus) { .kind = kind, .bus_pid = -1, .daemon_pid = -1, .d_pid = -1,
                     .name = kind == BUS_DBUS_BROKER ? "dbus-broker" : "dbus-daemon" };
        snprintf(b->dir, sizeof(b->dir), "/tmp/bb-bench-%d-XXXXXX", (int) getpid());
        if (!mkdtemp(b->dir))
                fail("mkdtemp: %m");
        if (chmod(b->dir, 0755) < 0)
                fail("chmod %s: %m", b->dir);
        snprintf(b->socket_path, sizeof(b->socket_path), "%s/bus", b->dir);
        snprintf(b->address, sizeof(b->address), "unix:path=%s", b->socket_path);
        snprintf(config, sizeof(config), "%s/bus.conf", b->dir);
        write_bus_config(b, config);

        if (kind == BUS_DBUS_DAEMON)
                start_dbus_daemon(b, config);
        else
                start_dbus_broker(b, config);
        wait_bus_ready(b);
        start_daemon(b, max_buffers);
        b->d_pid = bench_d_start(b->address, b->bus);

        r = pbus_connect(b->address, &b->holder);
        if (r >= 0)
                r = pbus_connect(b->address, &b->kinds);
        if (r >= 0)
                r = bb_client_new_address(&b->cold, b->address);
        if (r >= 0)
                r = bb_client_new_address(&b->owner, b->address);
        if (r >= 0)
                r = bb_client_new_address(&b->opener, b->address);
        if (r >= 0)
                r = bb_client_new_address(&b->lister, b->address);
        if (r >= 0)
                r = bb_client_open_private(b->cold, &b->private);
        if (r < 0)
                fail("connecting clients to %s: %s", b->name, strerror(-r));
        r = bb_buffer_create(b->owner, "bench-shared", BUFFER_SIZE, 0, 0, &b->shared);
        if (r < 0)
                fail("%s: creating the shared buffer: %s (%s)", b->name, strerror(-r),
                     bb_client_error_message(b->owner) ?: "-");
}

/* (e)'s buffers: made persistent by one raw connection for the whole run
 * (their fds are closed at once; the daemon stops with them). */
static void bus_hold_buffers(Bus *b, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                char name[32];
                int r;

                snprintf(name, sizeof(name), "held-%u", i);
                /* persistent: the fd is the lease, and ours closes now */
                r = sd_bus_call_method(b->holder, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                       "CreateMemfd", &error, &reply, "sta{sv}", name,
                                       (uint64_t) BUFFER_SIZE, 1, BB_OPT_PERSISTENT, "b", 1);
                if (r < 0)
                        fail("%s: holding buffer %u of %u: %s", b->name, i + 1, n,
                             error.message ?: strerror(-r));
                sd_bus_message_unref(reply);    /* closes the fd */
                sd_bus_error_free(&error);
        }
        /* the shared buffer is listed too */
        b->list_expected = n + 1;
}

/* --------------------------------------------------------- operations --- */

/* (a) */
static int op_inproc(Bus *b) {
        int fd = bench_memfd_new(BUFFER_SIZE), r;

        if (fd < 0)
                return fd;
        r = bench_map_touch(fd);
        close(fd);
        return r;
}

/* (a-): the same without the mapping, to split syscall from MMU cost */
static int op_inproc_nomap(Bus *b) {
        int fd = bench_memfd_new(BUFFER_SIZE);

        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

static const char *last_error_message;
static char last_error_buf[512];

static void note_bus_error(const sd_bus_error *e) {
        snprintf(last_error_buf, sizeof(last_error_buf), "%s", e->message ?: (e->name ?: ""));
        last_error_message = last_error_buf;
}

static void note_client_error(bb_client *c) {
        const char *m = bb_client_error_message(c);

        snprintf(last_error_buf, sizeof(last_error_buf), "%s", m ?: "");
        last_error_message = last_error_buf;
}

/* (B) the SCM_RIGHTS yardstick */
static int op_peer_b(Bus *b) {
        return bench_b_cycle(b_sock);
}

/* (D) the sd-bus yardstick, on b's bus */
static int op_peer_d(Bus *b) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = bench_d_create_cycle(b->bus, &error);

        if (r < 0)
                note_bus_error(&error);
        sd_bus_error_free(&error);
        return r;
}

/* (b) */
static int op_ping(Bus *b) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(b->bus, BB_BUS_NAME, BB_MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping",
                               &error, NULL, "");
        if (r < 0)
                note_bus_error(&error);
        sd_bus_error_free(&error);
        return r;
}

/* create + map + touch + unmap, then release (explicit) or just close (the
 * fd is the lease: the daemon sees the last close and drops the buffer) */
static int create_cycle_how(bb_client *c, bool release) {
        bb_buffer *buf = NULL;
        size_t size;
        void *p;
        int r;

        r = bb_buffer_create(c, "bench", BUFFER_SIZE, 0, 0, &buf);
        if (r < 0) {
                note_client_error(c);
                return r;
        }
        r = bb_buffer_map(buf, &p, &size);
        if (r >= 0) {
                *(volatile uint8_t *) p = 1;
                r = bb_buffer_unmap(buf);
        }
        if (r >= 0 && release) {
                r = bb_buffer_release(buf);
                if (r < 0)
                        note_client_error(c);
        }
        bb_buffer_unref(buf);
        return r;
}

static int create_cycle(bb_client *c) {
        return create_cycle_how(c, true);
}

/* (l): (c) released by closing, one call */
static int op_create_lease(Bus *b) {
        return create_cycle_how(b->cold, false);
}

/* (pl): the same on the private connection */
static int op_create_private_lease(Bus *b) {
        return create_cycle_how(b->private, false);
}

/* (c) */
static int op_create_cold(Bus *b) {
        return create_cycle(b->cold);
}

/* (c') */
static int op_create_warm(Bus *b) {
        return create_cycle(b->owner);
}

/* (p): (c) over a private connection: no bus in between */
static int op_create_private(Bus *b) {
        return create_cycle(b->private);
}

/* (g): 16 buffers in two calls (CreateMemfds, ReleaseBuffers), each mapped
 * and touched; timed per buffer (ops[].per) */
static int op_batch(Bus *b) {
        bb_buffer *bufs[BB_CREATE_BATCH_MAX];
        int r;

        r = bb_buffer_create_many(b->cold, "bench", BUFFER_SIZE, 0, 0, BB_CREATE_BATCH_MAX, bufs);
        if (r < 0) {
                note_client_error(b->cold);
                return r;
        }
        for (unsigned i = 0; i < BB_CREATE_BATCH_MAX && r >= 0; i++) {
                size_t size;
                void *p;

                r = bb_buffer_map(bufs[i], &p, &size);
                if (r >= 0) {
                        *(volatile uint8_t *) p = 1;
                        r = bb_buffer_unmap(bufs[i]);
                }
        }
        if (r >= 0) {
                r = bb_buffer_release_many(bufs, BB_CREATE_BATCH_MAX);
                if (r < 0)
                        note_client_error(b->cold);
        }
        for (unsigned i = 0; i < BB_CREATE_BATCH_MAX; i++)
                bb_buffer_unref(bufs[i]);
        return r;
}

/* (d) */
static int op_share_open(Bus *b) {
        bb_buffer *o = NULL;
        char *token = NULL;
        int r;

        /* single-use: the token is gone after Open, none pile up */
        r = bb_buffer_share(b->shared, BB_SHARE_SINGLE_USE, 0, 0, &token);
        if (r < 0) {
                note_client_error(b->owner);
                return r;
        }
        r = bb_buffer_open(b->opener, token, &o);
        if (r >= 0) {
                r = bb_buffer_release(o);
                bb_buffer_unref(o);
        }
        if (r < 0)
                note_client_error(b->opener);
        free(token);
        return r;
}

/* (e) */
static int op_list(Bus *b) {
        bb_buffer **list = NULL;
        size_t n = 0;
        int r;

        r = bb_client_list_buffers(b->lister, &list, &n);
        if (r < 0) {
                note_client_error(b->lister);
                return r;
        }
        bb_buffer_list_free(list, n);
        if (n < b->list_expected) {
                snprintf(last_error_buf, sizeof(last_error_buf), "listed %zu buffers, want >= %u", n,
                         b->list_expected);
                last_error_message = last_error_buf;
                return -EBADMSG;
        }
        return 0;
}

/* (e'): the same call through raw sd-bus, every entry read, no handles */
static int op_list_raw(Bus *b) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        unsigned n = 0;
        int r;

        r = sd_bus_call_method(b->bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "ListBuffers",
                               &error, &reply, "");
        if (r < 0) {
                note_bus_error(&error);
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', BB_LIST_ENTRY_SIGNATURE);
        while (r >= 0) {
                const char *path, *name, *kind;
                uint64_t id, size, created;
                uint32_t owner, holders;
                int persistent, frozen;

                r = sd_bus_message_read(reply, BB_LIST_ENTRY_SIGNATURE, &path, &id, &name, &kind, &size,
                                        &owner, &persistent, &frozen, &holders, &created);
                if (r <= 0)
                        break;
                n++;
        }
        sd_bus_message_unref(reply);
        if (r < 0)
                return r;
        if (n < b->list_expected) {
                snprintf(last_error_buf, sizeof(last_error_buf), "listed %u buffers, want >= %u", n,
                         b->list_expected);
                last_error_message = last_error_buf;
                return -EBADMSG;
        }
        return 0;
}

/* (k): Create(kind) + attach + touch + detach + Release through raw
 * sd-bus, the same steps for every kind. */
static int create_kind_cycle(Bus *b, const char *kind) {
        sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *path, *key;
        int fd = -1, shmid = -1, r;
        void *p = MAP_FAILED;

        r = sd_bus_call_method(b->kinds, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Create", &error,
                               &reply, "ssta{sv}", kind, "bench", (uint64_t) BUFFER_SIZE, 0);
        if (r < 0)
                goto out;
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "h");
        while (r >= 0 && (r = sd_bus_message_read(reply, "h", &fd)) > 0)
                ;
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0 && strcmp(key, BB_INFO_SHMID) == 0)
                        r = sd_bus_message_read(reply, "v", "i", &shmid);
                else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0)
                goto out;
        if (fd >= 0)
                p = mmap(NULL, BUFFER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        else if (shmid >= 0)
                p = shmat(shmid, NULL, 0);
        if (fd < 0 && shmid < 0) {
                r = -EBADMSG;           /* neither an fd nor a shmid in the reply */
                goto out;
        }
        if (p == MAP_FAILED) {
                r = -errno;
                goto out;
        }
        *(volatile uint8_t *) p = 1;
        r = fd >= 0 ? munmap(p, BUFFER_SIZE) : shmdt(p);
        if (r < 0) {
                r = -errno;
                goto out;
        }
        r = sd_bus_call_method(b->kinds, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release", &error, NULL, "");
out:
        if (r < 0 && error.message)
                note_bus_error(&error);
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);    /* closes fd */
        return r < 0 ? r : 0;
}

static int op_kind_memfd(Bus *b) {
        return create_kind_cycle(b, BB_KIND_MEMFD);
}

static int op_kind_posix(Bus *b) {
        return create_kind_cycle(b, BB_KIND_POSIX);
}

static int op_kind_sysv(Bus *b) {
        return create_kind_cycle(b, BB_KIND_SYSV);
}

static int op_kind_file(Bus *b) {
        return create_kind_cycle(b, BB_KIND_FILE);
}

/* ------------------------------------------------------------ variants --- */

typedef enum OpKind {
        OP_INPROC,
        OP_INPROC_NOMAP,
        OP_PEER_B,
        OP_PING,
        OP_PEER_D,
        OP_CREATE,
        OP_CREATE_WARM,
        OP_CREATE_LEASE,
        OP_CREATE_PRIVATE,
        OP_CREATE_PRIVATE_LEASE,
        OP_BATCH,
        OP_SHARE_OPEN,
        OP_LIST,
        OP_LIST_RAW,
        OP_KIND_MEMFD,
        OP_KIND_POSIX,
        OP_KIND_SYSV,
        OP_KIND_FILE,
        _OP_MAX,
} OpKind;

static const struct {
        const char *label;      /* table row */
        const char *key;        /* summary line */
        int (*fn)(Bus *b);
        bool list_iterations;
        unsigned per;           /* buffers per call: samples are per buffer (0: 1) */
} ops[_OP_MAX] = {
        [OP_INPROC]      = { "(a)  in-process memfd+seal+mmap+touch (baseline)", "inproc", op_inproc, false },
        [OP_INPROC_NOMAP] = { "(a-) same without mmap/touch/munmap (informative)", "inproc-nomap", op_inproc_nomap, false },
        [OP_PEER_B]      = { "(B)  peer B, SCM_RIGHTS: memfd+map+touch", "B", op_peer_b, false },
        [OP_PING]        = { "(b)  Peer.Ping to bufbrokerd", "ping", op_ping, false },
        [OP_PEER_D]      = { "(D)  peer D, sd-bus: memfd as 'h'+map+touch", "D", op_peer_d, false },
        [OP_CREATE]      = { "(c)  bb_buffer_create 4K+map+touch+unmap+release", "create", op_create_cold, false },
        [OP_CREATE_WARM] = { "(c') same, connection already holds a buffer", "create-warm", op_create_warm, false },
        [OP_CREATE_LEASE] = { "(l)  (c) released by closing (the fd is the lease)", "create-lease", op_create_lease, false },
        [OP_CREATE_PRIVATE_LEASE] = { "(pl) (l) through a private connection", "private-lease",
                                      op_create_private_lease, false },
        [OP_CREATE_PRIVATE] = { "(p)  (c) through a private connection", "private", op_create_private, false },
        [OP_BATCH]       = { "(g)  16 at once: CreateMemfds+map+touch+ReleaseBuffers, per buffer", "batch",
                             op_batch, false, BB_CREATE_BATCH_MAX },
        [OP_SHARE_OPEN]  = { "(d)  share + open (2nd connection) + release", "share+open", op_share_open, false },
        [OP_LIST]        = { "(e)  ListBuffers (library), N buffers held", "list", op_list, true },
        [OP_LIST_RAW]    = { "(e') same call, raw sd-bus: entries read, no handles", "list-raw", op_list_raw, true },
        [OP_KIND_MEMFD]  = { "(k)  Create memfd 4K+mmap+touch+Release, raw sd-bus", "memfd", op_kind_memfd, false },
        [OP_KIND_POSIX]  = { "(kp) (k) of kind posix", "posix", op_kind_posix, false },
        [OP_KIND_SYSV]   = { "(ks) (k) of kind sysv (shmat by shmid)", "sysv", op_kind_sysv, false },
        [OP_KIND_FILE]   = { "(kf) (k) of kind file (O_TMPFILE on disk)", "file", op_kind_file, false },
};

typedef struct Variant {
        OpKind op;
        Bus *bus;               /* NULL for the in-process baseline */
        unsigned iterations;    /* per round */
        uint64_t *samples;      /* this round's, ns */
        unsigned n;
        /* per round */
        double median[64];
        double p90[64];
} Variant;

#define N_INPROC_OPS 3          /* no bus: run once, shown for every bus */
#define MAX_VARIANTS (N_INPROC_OPS + MAX_BUSES * (_OP_MAX - N_INPROC_OPS))

static bool op_is_inproc(OpKind op) {
        return op == OP_INPROC || op == OP_INPROC_NOMAP || op == OP_PEER_B;
}
static Variant variants[MAX_VARIANTS];
static unsigned n_variants;

int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
double percentile_u64(const uint64_t *v, unsigned n, double q) {
        unsigned i = (unsigned) ceil(q * n);

        return (double) v[i > 0 ? i - 1 : 0];
}

double median_double(const double *v, unsigned n) {
        double tmp[64];

        memcpy(tmp, v, n * sizeof(double));
        qsort(tmp, n, sizeof(double), cmp_double);
        return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static double min_double(const double *v, unsigned n) {
        double m = v[0];

        for (unsigned i = 1; i < n; i++)
                m = v[i] < m ? v[i] : m;
        return m;
}

static double max_double(const double *v, unsigned n) {
        double m = v[0];

        for (unsigned i = 1; i < n; i++)
                m = v[i] > m ? v[i] : m;
        return m;
}

static void run_chunk(Variant *v, unsigned count, bool record) {
        for (unsigned i = 0; i < count; i++) {
                uint64_t t0, t1;
                int r;

                last_error_message = NULL;
                t0 = now_ns();
                r = ops[v->op].fn(v->bus);
                t1 = now_ns();
                if (r < 0)
                        fail("%s %s: %s%s%s", v->bus ? v->bus->name : "in-process", ops[v->op].key,
                             strerror(-r), last_error_message && *last_error_message ? ": " : "",
                             last_error_message ?: "");
                if (record)
                        v->samples[v->n++] = (t1 - t0) / (ops[v->op].per ? ops[v->op].per : 1);
        }
}

/* One round: CHUNKS passes over all variants, each pass starting at another
 * variant, so that no variant always follows the same one. The warm-up
 * (record false) is one such pass: a tenth of a round, which also tells how
 * long a round will take. A round that runs past deadline_ns (0: none) ends
 * after the pass in progress, so that every variant keeps the same share of
 * it. Returns the number of passes run. */
static unsigned run_round(unsigned round, bool record, uint64_t deadline_ns) {
        unsigned chunks = record ? CHUNKS : 1, c;

        for (unsigned i = 0; i < n_variants; i++)
                variants[i].n = 0;
        for (c = 0; c < chunks; c++) {
                if (c > 0 && deadline_ns > 0 && now_ns() > deadline_ns)
                        break;
                for (unsigned k = 0; k < n_variants; k++) {
                        Variant *v = &variants[(c + k) % n_variants];
                        /* spread the remainder over the first chunks */
                        unsigned count = v->iterations / CHUNKS + (c < v->iterations % CHUNKS);

                        run_chunk(v, count, record);
                }
        }
        if (!record)
                return c;
        for (unsigned i = 0; i < n_variants; i++) {
                Variant *v = &variants[i];

                qsort(v->samples, v->n, sizeof(uint64_t), cmp_u64);
                v->median[round] = percentile_u64(v->samples, v->n, 0.5);
                v->p90[round] = percentile_u64(v->samples, v->n, 0.9);
        }
        return c;
}

static Variant *find_variant(OpKind op, const Bus *b) {
        for (unsigned i = 0; i < n_variants; i++)
                if (variants[i].op == op && (op_is_inproc(op) || variants[i].bus == b))
                        return &variants[i];
        return NULL;
}

/* Per round: median of v over median of base, both from that round. */
static void round_ratios(const Variant *v, const Variant *base, unsigned rounds, double *ret) {
        for (unsigned r = 0; r < rounds; r++)
                ret[r] = v->median[r] / base->median[r];
}

static void format_ratio(char *buf, size_t size, const double *ratios, unsigned rounds) {
        double med = median_double(ratios, rounds), lo = min_double(ratios, rounds),
               hi = max_double(ratios, rounds);

        if (med >= 100)
                snprintf(buf, size, "%6.0fx [%.0f-%.0f]", med, lo, hi);
        else if (med >= 10)
                snprintf(buf, size, "%6.1fx [%.1f-%.1f]", med, lo, hi);
        else
                snprintf(buf, size, "%6.2fx [%.2f-%.2f]", med, lo, hi);
}

static double clock_overhead_ns(void) {
        uint64_t v[1001];

        for (unsigned i = 0; i < ELEMENTSOF(v); i++)
                v[i] = now_ns();
        for (unsigned i = 0; i + 1 < ELEMENTSOF(v); i++)
                v[i] = v[i + 1] - v[i];
        qsort(v, ELEMENTSOF(v) - 1, sizeof(uint64_t), cmp_u64);
        return (double) v[(ELEMENTSOF(v) - 1) / 2];
}

/* On these 2-vCPU VMs a client, the bus and the daemon on different vCPUs
 * make latencies bimodal: BB_BENCH_PIN=1 puts all of them (everything this
 * process starts inherits it) on CPU 0, as `taskset -c 0` would. */
static void pin_cpu0(bool pin) {
        cpu_set_t set;

        if (!pin)
                return;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0)
                fail("pinning to CPU 0: %m");
        printf("NOTE: pinned to CPU 0 (BB_BENCH_PIN=1), with the buses, daemons and clients it starts\n");
}

/* Each memfd buffer keeps an fd in bufbrokerd, which takes the hard limit it
 * inherits: as root, raise it for the live-buffer levels (up to
 * fs.nr_open); otherwise take what the hard limit allows. */
static void raise_fd_limit(void) {
        struct rlimit rl;
        unsigned long nr_open = 1048576;
        FILE *f = fopen("/proc/sys/fs/nr_open", "re");

        if (f) {
                if (fscanf(f, "%lu", &nr_open) != 1)
                        nr_open = 1048576;
                fclose(f);
        }
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        if (is_root && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < nr_open) {
                struct rlimit want = { nr_open, nr_open };

                if (setrlimit(RLIMIT_NOFILE, &want) >= 0)
                        return;
                printf("NOTE: RLIMIT_NOFILE stays at %llu (raising it to fs.nr_open %lu: %m, no "
                       "CAP_SYS_RESOURCE?): bufbrokerd keeps one fd per memfd buffer, so the live-buffer "
                       "levels stop below it\n", (unsigned long long) rl.rlim_max, nr_open);
        }
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);
}

/* ---------------------------------------------------------------- main --- */

int main(int argc, char *argv[]) {
        unsigned iterations, list_iterations, list_buffers, max_rounds, budget_sec, rounds = 0;
        unsigned run_scale, conc_ms, bulk_mib, live_max, fdstore_build_sec;
        const char *skipped = NULL;
        char summary[2048];
        size_t sl = 0;
        uint64_t t_start, t_measure;
        bool failed = false, scaled = false, cut = false;

        setvbuf(stdout, NULL, _IOLBF, 0);
        main_pid = getpid();
        is_root = geteuid() == 0;
        iterations = env_unsigned("BB_BENCH_ITERATIONS", 2000, CHUNKS, 10000000);
        list_iterations = env_unsigned("BB_BENCH_LIST_ITERATIONS", 200, CHUNKS, 10000000);
        list_buffers = env_unsigned("BB_BENCH_LIST_BUFFERS", 1000, 0, 100000);
        max_rounds = env_unsigned("BB_BENCH_ROUNDS", 5, MIN_ROUNDS, 64);
        budget_sec = env_unsigned("BB_BENCH_BUDGET_SEC", 45, 1, 100000);
        (void) env_required("BUFBROKERD");
        (void) env_required("DBUS_POLICY_CONF");
        run_scale = env_unsigned("BB_BENCH_SCALE", 1, 0, 1);
        conc_ms = env_unsigned("BB_BENCH_CONC_MS", 700, 50, 600000);
        bulk_mib = env_unsigned("BB_BENCH_BULK_MIB", 256, 8, 4096);
        live_max = env_unsigned("BB_BENCH_LIVE_MAX", 100000, 1, 1000000);
        fdstore_build_sec = env_unsigned("BB_BENCH_FDSTORE_BUILD_SEC", 40, 1, 100000);
        pin_cpu0(env_unsigned("BB_BENCH_PIN", 0, 0, 1));
        raise_fd_limit();

        t_start = now_ns();
        atexit(cleanup_atexit);
        signal(SIGTERM, on_fatal_signal);
        signal(SIGINT, on_fatal_signal);
        signal(SIGPIPE, SIG_IGN);
        /* dbus-broker outlives its launcher for a moment: we reap it */
        (void) prctl(PR_SET_CHILD_SUBREAPER, 1);
        bench_probe_memfd_flags();
        b_pid = bench_b_start(&b_sock);

        /* ---- start the buses ---- */
        if (!is_root)
                skipped = "not root: dbus-broker needs a private mount namespace with a fake journal "
                          "socket (run as root to benchmark it too)";
        else if (access("/usr/bin/dbus-broker-launch", X_OK) < 0 &&
                 system("command -v dbus-broker-launch >/dev/null 2>&1") != 0)
                skipped = "dbus-broker-launch is not installed (Debian package dbus-broker)";
        if (skipped)
                printf("NOTE: dbus-broker is NOT benchmarked: %s\n", skipped);

        bus_start(&buses[n_buses++], BUS_DBUS_DAEMON, list_buffers + 64);
        if (!skipped) {
                setup_journal_namespace();
                bus_start(&buses[n_buses++], BUS_DBUS_BROKER, list_buffers + 64);
        }
        for (unsigned i = 0; i < n_buses; i++)
                bus_hold_buffers(&buses[i], list_buffers);

        /* ---- the variants: the baseline once, the rest per bus ---- */
        for (OpKind op = 0; op < _OP_MAX; op++)
                if (op_is_inproc(op))
                        variants[n_variants++] = (Variant) { .op = op, .iterations = iterations };
        for (unsigned i = 0; i < n_buses; i++)
                for (OpKind op = 0; op < _OP_MAX; op++)
                        if (!op_is_inproc(op))
                                variants[n_variants++] = (Variant) {
                                        .op = op, .bus = &buses[i],
                                        .iterations = ops[op].list_iterations ? list_iterations : iterations,
                                };
        for (unsigned i = 0; i < n_variants; i++) {
                variants[i].samples = calloc(variants[i].iterations, sizeof(uint64_t));
                if (!variants[i].samples)
                        fail("out of memory");
        }

        printf("bench-broker: %u buses (%s%s), %u iterations per round (ListBuffers: %u, with %u buffers held), "
               "%u-%u rounds interleaved in %u chunks, %ld CPUs, clock read ~%.0f ns; set up in %.1f s\n",
               n_buses, buses[0].name, n_buses > 1 ? ", dbus-broker" : " only", iterations, list_iterations,
               list_buffers, MIN_ROUNDS, max_rounds, CHUNKS, sysconf(_SC_NPROCESSORS_ONLN),
               clock_overhead_ns(), (double) (now_ns() - t_start) / 1e9);

        /* ---- measure ---- */
        {
                /* Warm-up (caches, lazily made daemon state), and the time
                 * a round will take. A slow or busy machine gets fewer
                 * iterations rather than a run past the budget: MIN_ROUNDS
                 * rounds must fit. */
                uint64_t t0 = now_ns(), budget_ns = (uint64_t) budget_sec * UINT64_C(1000000000);
                double est_round, allowed_round;

                run_round(0, false, 0);
                est_round = (double) (now_ns() - t0) * CHUNKS;
                allowed_round = ((double) budget_ns - (double) (now_ns() - t_start)) / MIN_ROUNDS;
                if (est_round > allowed_round) {
                        double scale = allowed_round > 0 ? allowed_round / est_round : 0;

                        for (unsigned i = 0; i < n_variants; i++) {
                                Variant *v = &variants[i];
                                unsigned floor = ops[v->op].list_iterations ? MIN_LIST_ITERATIONS : MIN_ITERATIONS;
                                unsigned want = (unsigned) (v->iterations * scale);

                                v->iterations = want > floor ? want : (floor < v->iterations ? floor : v->iterations);
                        }
                        iterations = variants[0].iterations;
                        scaled = true;
                        printf("NOTE: a round would take ~%.0f s here (slow or busy machine): scaled down to %u "
                               "iterations per round (ListBuffers: %u) to stay within %u s\n",
                               est_round / 1e9, iterations, find_variant(OP_LIST, &buses[0])->iterations,
                               budget_sec);
                }
        }
        t_measure = now_ns();
        while (rounds < max_rounds) {
                uint64_t t0 = now_ns(), elapsed = t0 - t_start, per_round,
                         budget_ns = (uint64_t) budget_sec * UINT64_C(1000000000),
                         left = budget_ns > elapsed ? budget_ns - elapsed : 0, allot;
                unsigned passes;

                /* The load may change under us: every round gets its share
                 * of what is left, the rounds still needed sharing alike. */
                allot = rounds < MIN_ROUNDS ? left / (MIN_ROUNDS - rounds) : left;
                passes = run_round(rounds, true, t0 + allot);
                rounds++;
                per_round = now_ns() - t0;
                if (passes < CHUNKS)
                        cut = true;
                printf("  round %u: %.1f s, %u/%u passes;", rounds, (double) per_round / 1e9, passes, CHUNKS);
                for (unsigned i = 0; i < n_buses; i++) {
                        Variant *p = find_variant(OP_PING, &buses[i]);

                        printf(" %s ping %.1f us%s", buses[i].name, p->median[rounds - 1] / 1000,
                               i + 1 < n_buses ? "," : "");
                }
                printf(", in-process %.1f us\n", find_variant(OP_INPROC, NULL)->median[rounds - 1] / 1000);
                elapsed = now_ns() - t_start;
                if (rounds >= MIN_ROUNDS && elapsed + per_round > budget_ns)
                        break;
        }

        /* ---- report ---- */
        printf("\nPer operation: median and p90 in microseconds (median over rounds of each round's\n"
               "value); ratios: median over %u rounds of (this op's median / the reference's median in\n"
               "the same round), [min-max over rounds]. Lower is faster; ratios say what the broker\n"
               "costs relative to doing it in-process, to one bare bus round trip, to D (a minimal\n"
               "sd-bus service handing out a memfd on the same bus) and to B (a minimal SCM_RIGHTS\n"
               "server on a socket pair, no bus).\n",
               rounds);
        for (unsigned i = 0; i < n_buses; i++) {
                Bus *b = &buses[i];
                Variant *base = find_variant(OP_INPROC, NULL), *ping = find_variant(OP_PING, b),
                        *peer_d = find_variant(OP_PEER_D, b), *peer_b = find_variant(OP_PEER_B, b);
                double ratios[64];

                printf("\n%-14s %-50s %9s %9s  %-20s %-20s %-20s %-20s\n", b->name, "operation", "median", "p90",
                       "x in-process", "x Peer.Ping", "x D", "x B");
                for (OpKind op = OP_INPROC; op < _OP_MAX; op++) {
                        Variant *v = find_variant(op, b);
                        char label[96], r_base[48], r_ping[48], r_d[48], r_b[48];

                        round_ratios(v, base, rounds, ratios);
                        format_ratio(r_base, sizeof(r_base), ratios, rounds);
                        round_ratios(v, ping, rounds, ratios);
                        format_ratio(r_ping, sizeof(r_ping), ratios, rounds);
                        round_ratios(v, peer_d, rounds, ratios);
                        format_ratio(r_d, sizeof(r_d), ratios, rounds);
                        round_ratios(v, peer_b, rounds, ratios);
                        format_ratio(r_b, sizeof(r_b), ratios, rounds);
                        if (op == OP_LIST)
                                snprintf(label, sizeof(label), "(e)  ListBuffers (library), %u buffers listed",
                                         b->list_expected);
                        else
                                snprintf(label, sizeof(label), "%s", ops[op].label);
                        printf("%-14s %-50s %9.1f %9.1f  %-20s %-20s %-20s %-20s\n", "", label,
                               median_double(v->median, rounds) / 1000, median_double(v->p90, rounds) / 1000,
                               r_base, r_ping, r_d, r_b);
                }
                if (b->list_expected > 0) {
                        Variant *l = find_variant(OP_LIST, b);
                        double per[64];

                        for (unsigned r = 0; r < rounds; r++)
                                per[r] = (l->median[r] - ping->median[r]) / b->list_expected;
                        printf("%-14s (e) minus one round trip, per listed buffer: %.2f us\n", "",
                               median_double(per, rounds) / 1000);
                }

                /* the summary line */
                {
                        static const OpKind in_summary[] = { OP_CREATE, OP_CREATE_WARM, OP_SHARE_OPEN, OP_LIST };

                        round_ratios(ping, base, rounds, ratios);
                        sl += (size_t) snprintf(summary + sl, sizeof(summary) - sl, "%s%s: ping %.1f us = %.1fx in-process",
                                                i ? "; " : "", b->name, median_double(ping->median, rounds) / 1000,
                                                median_double(ratios, rounds));
                        for (size_t k = 0; k < ELEMENTSOF(in_summary); k++) {
                                Variant *v = find_variant(in_summary[k], b);

                                char key[32];

                                if (in_summary[k] == OP_LIST)
                                        snprintf(key, sizeof(key), "list%u", b->list_expected);
                                else
                                        snprintf(key, sizeof(key), "%s", ops[in_summary[k]].key);
                                round_ratios(v, ping, rounds, ratios);
                                sl += (size_t) snprintf(summary + sl, sizeof(summary) - sl, ", %s/ping = %.1fx",
                                                        key, median_double(ratios, rounds));
                        }
                        /* the yardsticks: bufbrokerd's create cycle (c) against D and B */
                        round_ratios(find_variant(OP_CREATE, b), peer_d, rounds, ratios);
                        sl += (size_t) snprintf(summary + sl, sizeof(summary) - sl, ", create = %.2fx D",
                                                median_double(ratios, rounds));
                        round_ratios(find_variant(OP_CREATE, b), peer_b, rounds, ratios);
                        sl += (size_t) snprintf(summary + sl, sizeof(summary) - sl, " = %.1fx B",
                                                median_double(ratios, rounds));
                        round_ratios(find_variant(OP_CREATE_LEASE, b), peer_d, rounds, ratios);
                        sl += (size_t) snprintf(summary + sl, sizeof(summary) - sl, ", create-lease = %.2fx D",
                                                median_double(ratios, rounds));
                        round_ratios(find_variant(OP_CREATE_PRIVATE_LEASE, b), peer_b, rounds, ratios);
                        sl += (size_t) snprintf(summary + sl, sizeof(summary) - sl, ", private-lease = %.2fx B",
                                                median_double(ratios, rounds));
                        /* the private connection against B, a batched buffer against B */
                        round_ratios(find_variant(OP_CREATE_PRIVATE, b), peer_b, rounds, ratios);
                        sl += (size_t) snprintf(summary + sl, sizeof(summary) - sl, ", private = %.2fx B",
                                                median_double(ratios, rounds));
                        round_ratios(find_variant(OP_BATCH, b), peer_b, rounds, ratios);
                        sl += (size_t) snprintf(summary + sl, sizeof(summary) - sl, ", batched = %.2fx B per buffer",
                                                median_double(ratios, rounds));
                        /* each kind against a memfd made the same way, (k) */
                        for (OpKind k = OP_KIND_POSIX; k <= OP_KIND_FILE; k++) {
                                char range[64];

                                round_ratios(find_variant(k, b), find_variant(OP_KIND_MEMFD, b), rounds, ratios);
                                format_ratio(range, sizeof(range), ratios, rounds);
                                sl += (size_t) snprintf(summary + sl, sizeof(summary) - sl, ", %s = %s memfd",
                                                        ops[k].key, range + strspn(range, " "));
                        }
                }
        }

        /* ---- beyond the rows: concurrency, bulk data, live buffers ---- */
        if (run_scale) {
                ScaleBus sb[MAX_BUSES];
                int status;

                for (unsigned i = 0; i < n_buses; i++)
                        sb[i] = (ScaleBus) { buses[i].name, buses[i].address, buses[i].bus };
                bench_concurrency(sb, n_buses, conc_ms);
                bench_bulk(sb, n_buses, bulk_mib);
                /* The live-buffer levels start daemons of their own, with
                 * other limits and the fd store: the first bus's makes way. */
                status = daemon_stop(&buses[0]);
                if (status != 0) {
                        fprintf(stderr, "bench-broker: bufbrokerd on %s exited with status %d after SIGTERM\n",
                                buses[0].name, status);
                        failed = true;
                }
                if (!bench_live_buffers(&sb[0], buses[0].dir, live_max, fdstore_build_sec))
                        failed = true;
        }

        /* ---- stop; the daemon must exit cleanly ---- */
        for (unsigned i = 0; i < n_buses; i++) {
                int status = bus_stop(&buses[i]);

                if (status != 0) {
                        fprintf(stderr, "bench-broker: bufbrokerd on %s exited with status %d after SIGTERM\n",
                                buses[i].name, status);
                        failed = true;
                }
        }
        if (journal_pid > 0) {
                kill(journal_pid, SIGTERM);
                (void) pbus_wait_child(journal_pid, 5000);
                journal_pid = -1;
        }
        n_buses = 0;
        for (unsigned i = 0; i < n_variants; i++)
                free(variants[i].samples);

        printf("\n");
        bench_scale_print_summary();
        printf("summary: %s%s; %u rounds x %u iterations%s (measured %.1f s, total %.1f s)%s%s\n",
               failed ? "FAILED (see above); " : "", summary, rounds, iterations,
               scaled || cut ? " (scaled down: busy machine)" : "",
               (double) (now_ns() - t_measure) / 1e9, (double) (now_ns() - t_start) / 1e9,
               skipped ? "; dbus-broker skipped: " : "", skipped ? skipped : "");
        (void) argc;
        (void) argv;
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
