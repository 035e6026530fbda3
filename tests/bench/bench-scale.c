/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The measurements that are not per-call rows of the interleaved table:
 *
 *   concurrency   1, 4 and 16 client processes doing create -> release
 *                 loops at once: aggregate throughput, per-call p50/p99
 *   bulk          N MiB through a bufbrokerd buffer (writer fills, a reader
 *                 process reads it through its own mapping) against the same
 *                 bytes sent as 'ay' in 8 MiB messages to D, which reads them
 *   live buffers  create+release rate with 0 .. 100,000 buffers held in the
 *                 daemon, without and with the fd store (a fake NOTIFY_SOCKET
 *                 drained here), and the daemon's RSS per live buffer
 *
 * Each is repeated (>= 3 rounds or blocks) and reported as medians: the
 * machines are shared and noisy. Like the rows, these are measurements:
 * only a failure (a call, a process) fails the benchmark.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bufbroker-protocol.h"
#include "bufbroker.h"

#define SCALE_ROUNDS 3

/* What the summary line at the end says about these. */
static char summary[2048];
static size_t summary_len;

static _printf_(1, 2) void summary_add(const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(summary + summary_len, sizeof(summary) - summary_len, fmt, ap);
        va_end(ap);
        if (n > 0)
                summary_len = MIN(summary_len + (size_t) n, sizeof(summary) - 1);
}

void bench_scale_print_summary(void) {
        if (summary_len > 0)
                printf("summary (scale): %s\n", summary);
}

static bb_client *client_new(const char *address) {
        bb_client *c = NULL;
        int r = bb_client_new_address(&c, address);

        if (r < 0)
                fail("connecting a client to %s: %s", address, strerror(-r));
        return c;
}

static void *shared_new(size_t size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        if (p == MAP_FAILED)
                fail("mmap %zu bytes: %m", size);
        return p;
}

/* A forked helper process: dies with us, exits by _exit(). */
static pid_t fork_helper(void) {
        pid_t parent = getpid(), pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                fail("fork: %m");
        if (pid == 0)
                pbus_child_die_with_parent(parent);
        return pid;
}

static void wait_helper(pid_t pid, const char *what) {
        int status = pbus_wait_child(pid, 60000);

        if (status != 0)
                fail("%s exited with status %d", what, status);
}

/* ------------------------------------------------------- concurrency --- */

#define CONC_MAX_CLIENTS 16
#define CONC_MAX_SAMPLES 65536          /* per client and level; calls beyond are counted, not timed */

typedef struct Worker {
        uint64_t calls;
        uint64_t end_ns;
        int error;
        unsigned n_samples;
        uint64_t samples[CONC_MAX_SAMPLES];
} Worker;

typedef struct ConcShared {
        uint64_t stop_ns;
        Worker workers[CONC_MAX_CLIENTS];
} ConcShared;

/* One client process: connect, warm up, say ready, wait for the go (EOF on
 * go_fd), then create -> release until stop_ns, timing each call. */
static _Noreturn void conc_worker(const char *address, ConcShared *sh, Worker *w, int ready_fd, int go_fd) {
        bb_client *c = NULL;
        char x = 'r';
        int r;

        r = bb_client_new_address(&c, address);
        for (unsigned i = 0; r >= 0 && i < 3; i++) {
                bb_buffer *buf = NULL;

                r = bb_buffer_create(c, "bench-conc", BUFFER_SIZE, 0, 0, &buf);
                if (r >= 0)
                        r = bb_buffer_release(buf);
                bb_buffer_unref(buf);
        }
        w->error = r < 0 ? r : 0;
        if (write(ready_fd, &x, 1) != 1 || r < 0)
                _exit(1);
        while (read(go_fd, &x, 1) < 0 && errno == EINTR)
                ;
        for (uint64_t stop = __atomic_load_n(&sh->stop_ns, __ATOMIC_ACQUIRE); now_ns() < stop;) {
                bb_buffer *buf = NULL;
                uint64_t t0, t1, t2;

                t0 = now_ns();
                r = bb_buffer_create(c, "bench-conc", BUFFER_SIZE, 0, 0, &buf);
                t1 = now_ns();
                if (r >= 0)
                        r = bb_buffer_release(buf);
                t2 = now_ns();
                bb_buffer_unref(buf);
                if (r < 0) {
                        w->error = r;
                        break;
                }
                w->calls += 2;
                if (w->n_samples + 2 <= CONC_MAX_SAMPLES) {
                        w->samples[w->n_samples++] = t1 - t0;
                        w->samples[w->n_samples++] = t2 - t1;
                }
        }
        w->end_ns = now_ns();
        _exit(w->error < 0);
}

typedef struct ConcResult {
        double calls_per_sec;
        double p50_us, p99_us;
} ConcResult;

static void conc_level(const ScaleBus *b, ConcShared *sh, unsigned n, unsigned ms, uint64_t *scratch,
                       ConcResult *ret) {
        pid_t pids[CONC_MAX_CLIENTS];
        int ready[2], go[2];
        uint64_t t_go, calls = 0, end = 0;
        unsigned n_samples = 0;
        char x;

        memset(sh, 0, sizeof(*sh));
        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
                fail("pipe: %m");
        for (unsigned i = 0; i < n; i++) {
                pids[i] = fork_helper();
                if (pids[i] == 0) {
                        close(ready[0]);
                        close(go[1]);
                        conc_worker(b->address, sh, &sh->workers[i], ready[1], go[0]);
                }
        }
        close(ready[1]);
        close(go[0]);
        for (unsigned i = 0; i < n; i++)
                if (read(ready[0], &x, 1) != 1)
                        fail("%s: concurrency client %u of %u did not start (error %d)", b->name, i + 1, n,
                             sh->workers[i].error);
        t_go = now_ns();
        __atomic_store_n(&sh->stop_ns, t_go + (uint64_t) ms * 1000000u, __ATOMIC_RELEASE);
        close(go[1]);           /* EOF: everyone starts */
        for (unsigned i = 0; i < n; i++)
                wait_helper(pids[i], "a concurrency client");
        close(ready[0]);

        for (unsigned i = 0; i < n; i++) {
                Worker *w = &sh->workers[i];

                calls += w->calls;
                end = w->end_ns > end ? w->end_ns : end;
                memcpy(scratch + n_samples, w->samples, w->n_samples * sizeof(uint64_t));
                n_samples += w->n_samples;
        }
        qsort(scratch, n_samples, sizeof(uint64_t), cmp_u64);
        ret->calls_per_sec = (double) calls / ((double) (end - t_go) / 1e9);
        ret->p50_us = percentile_u64(scratch, n_samples, 0.5) / 1000;
        ret->p99_us = percentile_u64(scratch, n_samples, 0.99) / 1000;
}

void bench_concurrency(const ScaleBus *buses, unsigned n_buses, unsigned ms) {
        static const unsigned levels[] = { 1, 4, 16 };
        ConcResult res[2][ELEMENTSOF(levels)][SCALE_ROUNDS];
        ConcShared *sh = shared_new(sizeof(ConcShared));
        uint64_t *scratch = malloc(sizeof(uint64_t) * CONC_MAX_SAMPLES * CONC_MAX_CLIENTS);

        if (!scratch)
                fail("out of memory");
        /* Interleaved: each round runs every level on every bus. */
        for (unsigned r = 0; r < SCALE_ROUNDS; r++)
                for (unsigned l = 0; l < ELEMENTSOF(levels); l++)
                        for (unsigned i = 0; i < n_buses; i++)
                                conc_level(&buses[i], sh, levels[l], ms, scratch, &res[i][l][r]);

        printf("\nConcurrent clients (separate processes), each looping bb_buffer_create(4K) -> release;\n"
               "%u rounds x %u ms per level, interleaved; medians over rounds. A call is one\n"
               "method call (create or release); a cycle is both.\n", SCALE_ROUNDS, ms);
        printf("%-14s %8s %14s %14s %12s %12s\n", "bus", "clients", "cycles/s", "calls/s", "p50 us", "p99 us");
        for (unsigned i = 0; i < n_buses; i++) {
                summary_add("%s%s concurrency", summary_len ? "; " : "", buses[i].name);
                for (unsigned l = 0; l < ELEMENTSOF(levels); l++) {
                        double cps[SCALE_ROUNDS], p50[SCALE_ROUNDS], p99[SCALE_ROUNDS];

                        for (unsigned r = 0; r < SCALE_ROUNDS; r++) {
                                cps[r] = res[i][l][r].calls_per_sec;
                                p50[r] = res[i][l][r].p50_us;
                                p99[r] = res[i][l][r].p99_us;
                        }
                        printf("%-14s %8u %14.0f %14.0f %12.1f %12.1f\n", buses[i].name, levels[l],
                               median_double(cps, SCALE_ROUNDS) / 2, median_double(cps, SCALE_ROUNDS),
                               median_double(p50, SCALE_ROUNDS), median_double(p99, SCALE_ROUNDS));
                        summary_add(" %ux: %.0f cycles/s p50 %.0f p99 %.0f us", levels[l],
                                    median_double(cps, SCALE_ROUNDS) / 2, median_double(p50, SCALE_ROUNDS),
                                    median_double(p99, SCALE_ROUNDS));
                }
        }
        free(scratch);
        munmap(sh, sizeof(ConcShared));
}

/* -------------------------------------------------------------- bulk --- */

#define BULK_CHUNK (UINT64_C(8) << 20)  /* per 'ay' message: far below any bus's maximum */

/* What the writer tells the reader: a command byte, then a token or nothing. */
typedef struct BulkMsg {
        char cmd;                       /* BULK_* */
        char token[BB_TOKEN_LEN + 1];
} BulkMsg;

enum {
        BULK_FRESH = 'F',               /* open token, read it all, release */
        BULK_KEEP = 'K',                /* open token, keep it mapped, read it all */
        BULK_AGAIN = 'A',               /* read the kept buffer again */
};

static int bulk_open_map(bb_client *c, const char *token, bb_buffer **ret, void **ret_p, size_t *ret_size) {
        int r = bb_buffer_open(c, token, ret);

        return r < 0 ? r : bb_buffer_map(*ret, ret_p, ret_size);
}

/* The reader: its own connection, in its own process; reads every word of
 * the buffer through its own mapping and writes back the sum. */
static _Noreturn void bulk_reader(const char *address, int msg_fd, int res_fd) {
        bb_buffer *kept = NULL;
        void *kept_p = NULL;
        size_t kept_size = 0;
        bb_client *c = NULL;
        BulkMsg msg;

        if (bb_client_new_address(&c, address) < 0)
                _exit(1);
        while (read(msg_fd, &msg, sizeof(msg)) == sizeof(msg)) {
                bb_buffer *buf = NULL;
                uint64_t sum = 0;
                size_t size;
                void *p;
                int r = 0;

                if (msg.cmd == BULK_FRESH) {
                        r = bulk_open_map(c, msg.token, &buf, &p, &size);
                        if (r >= 0) {
                                sum = bench_sum_words(p, size);
                                r = bb_buffer_unmap(buf);
                        }
                        if (r >= 0)
                                r = bb_buffer_release(buf);
                        bb_buffer_unref(buf);
                } else if (msg.cmd == BULK_KEEP) {
                        r = bulk_open_map(c, msg.token, &kept, &kept_p, &kept_size);
                        sum = r >= 0 ? bench_sum_words(kept_p, kept_size) : 0;
                } else if (kept)
                        sum = bench_sum_words(kept_p, kept_size);
                if (r < 0 || write(res_fd, &sum, sizeof(sum)) != sizeof(sum))
                        _exit(1);
        }
        _exit(0);
}

typedef struct BulkPeer {
        const ScaleBus *bus;
        bb_client *writer;
        pid_t reader;
        int msg_fd, res_fd;             /* our ends */
        bb_buffer *kept;                /* the reused buffer, mapped at kept_p */
        void *kept_p;
        size_t kept_size;
} BulkPeer;

static void bulk_ask(BulkPeer *bp, char cmd, const char *token, uint64_t expect) {
        BulkMsg msg = { .cmd = cmd };
        uint64_t sum = 0;

        if (token)
                snprintf(msg.token, sizeof(msg.token), "%s", token);
        if (write(bp->msg_fd, &msg, sizeof(msg)) != sizeof(msg) || read(bp->res_fd, &sum, sizeof(sum)) != sizeof(sum))
                fail("%s: the bulk reader failed", bp->bus->name);
        if (sum != expect)
                fail("%s: the bulk reader read wrong data", bp->bus->name);
}

static char *bulk_share(BulkPeer *bp, bb_buffer *buf) {
        char *token = NULL;
        int r = bb_buffer_share(buf, BB_SHARE_SINGLE_USE, 0, 0, &token);

        if (r < 0)
                fail("%s: bulk share: %s", bp->bus->name, strerror(-r));
        return token;
}

/* Fresh: create, map, fill, share; the reader opens, maps, reads it all,
 * releases; we release. All of it timed. Returns ns. */
static uint64_t bulk_fresh(BulkPeer *bp, uint64_t bytes, int seed, uint64_t expect) {
        uint64_t t0 = now_ns();
        bb_buffer *buf = NULL;
        char *token;
        size_t size;
        void *p;
        int r;

        r = bb_buffer_create(bp->writer, "bench-bulk", bytes, 0, 0, &buf);
        if (r >= 0)
                r = bb_buffer_map(buf, &p, &size);
        if (r < 0)
                fail("%s: bulk create+map of %" PRIu64 " bytes: %s (%s)", bp->bus->name, bytes, strerror(-r),
                     bb_client_error_message(bp->writer) ?: "-");
        memset(p, seed, size);
        token = bulk_share(bp, buf);
        bulk_ask(bp, BULK_FRESH, token, expect);
        (void) bb_buffer_unmap(buf);
        r = bb_buffer_release(buf);
        bb_buffer_unref(buf);
        free(token);
        if (r < 0)
                fail("%s: bulk release: %s", bp->bus->name, strerror(-r));
        return now_ns() - t0;
}

/* Reused: the buffer both sides keep mapped; fill, tell the reader, it reads
 * it all. Returns ns. */
static uint64_t bulk_reused(BulkPeer *bp, int seed, uint64_t expect) {
        uint64_t t0 = now_ns();

        memset(bp->kept_p, seed, bp->kept_size);
        bulk_ask(bp, BULK_AGAIN, NULL, expect);
        return now_ns() - t0;
}

/* As 'ay' to D's Sink, BULK_CHUNK per message; D reads every word.
 * Returns ns. */
static uint64_t bulk_ay(const ScaleBus *b, uint8_t *src, uint64_t bytes, int seed, uint64_t expect) {
        uint64_t t0 = now_ns(), sum = 0;

        memset(src, seed, bytes);
        for (uint64_t off = 0; off < bytes; off += BULK_CHUNK) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *m = NULL, *reply = NULL;
                uint64_t part = 0;
                int r;

                r = sd_bus_message_new_method_call(b->bus, &m, BENCH_D_NAME, BENCH_D_PATH, BENCH_D_INTERFACE,
                                                   "Sink");
                if (r >= 0)
                        r = sd_bus_message_append_array(m, 'y', src + off, MIN(BULK_CHUNK, bytes - off));
                if (r >= 0)
                        r = sd_bus_call(b->bus, m, 0, &error, &reply);
                if (r >= 0)
                        r = sd_bus_message_read(reply, "t", &part);
                if (r < 0)
                        fail("%s: 'ay' to D: %s", b->name, error.message ?: strerror(-r));
                sum += part;
                sd_bus_error_free(&error);
                sd_bus_message_unref(m);
                sd_bus_message_unref(reply);
        }
        if (sum != expect)
                fail("%s: D read wrong data", b->name);
        return now_ns() - t0;
}

/* Word sums of memset(seed): bytes/8 words of seed * 0x0101010101010101. */
static uint64_t bulk_expect(uint64_t bytes, int seed) {
        return (bytes / 8) * ((uint64_t) seed * UINT64_C(0x0101010101010101));
}

static void bulk_peer_start(BulkPeer *bp, const ScaleBus *b, uint64_t bytes, const BulkPeer *earlier,
                            unsigned n_earlier) {
        int msg[2], res[2], r;
        char *token;

        *bp = (BulkPeer) { .bus = b };
        if (pipe2(msg, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
                fail("pipe: %m");
        bp->reader = fork_helper();
        if (bp->reader == 0) {
                /* the earlier readers' pipes too: they see EOF when we close */
                for (unsigned j = 0; j < n_earlier; j++) {
                        close(earlier[j].msg_fd);
                        close(earlier[j].res_fd);
                }
                close(msg[1]);
                close(res[0]);
                bulk_reader(b->address, msg[0], res[1]);
        }
        close(msg[0]);
        close(res[1]);
        bp->msg_fd = msg[1];
        bp->res_fd = res[0];
        bp->writer = client_new(b->address);

        /* the reused buffer: made, shared and mapped on both sides once */
        r = bb_buffer_create(bp->writer, "bench-bulk-kept", bytes, 0, 0, &bp->kept);
        if (r >= 0)
                r = bb_buffer_map(bp->kept, &bp->kept_p, &bp->kept_size);
        if (r < 0)
                fail("%s: bulk create+map of %" PRIu64 " bytes: %s", b->name, bytes, strerror(-r));
        memset(bp->kept_p, 0, bp->kept_size);
        token = bulk_share(bp, bp->kept);
        bulk_ask(bp, BULK_KEEP, token, 0);
        free(token);
}

static void bulk_peer_stop(BulkPeer *bp) {
        close(bp->msg_fd);
        wait_helper(bp->reader, "the bulk reader");
        close(bp->res_fd);
        (void) bb_buffer_unmap(bp->kept);
        (void) bb_buffer_release(bp->kept);
        bp->kept = bb_buffer_unref(bp->kept);
        bp->writer = bb_client_unref(bp->writer);
}

void bench_bulk(const ScaleBus *buses, unsigned n_buses, unsigned mib) {
        uint64_t bytes = (uint64_t) mib << 20, t[2][3][SCALE_ROUNDS];
        static const char *const what[3] = { "fresh", "reused", "'ay'" };
        BulkPeer peers[2];
        uint8_t *src = malloc(bytes);

        if (!src)
                fail("out of memory for %u MiB", mib);
        for (unsigned i = 0; i < n_buses; i++)
                bulk_peer_start(&peers[i], &buses[i], bytes, peers, i);
        /* Interleaved rounds, a new byte value each time (the reader must
         * see this round's data). */
        for (unsigned r = 0; r < SCALE_ROUNDS; r++)
                for (unsigned i = 0; i < n_buses; i++) {
                        int seed = 1 + (int) (r * n_buses + i);
                        uint64_t expect = bulk_expect(bytes, seed);

                        t[i][0][r] = bulk_fresh(&peers[i], bytes, seed, expect);
                        t[i][1][r] = bulk_reused(&peers[i], seed, expect);
                        t[i][2][r] = bulk_ay(&buses[i], src, bytes, seed, expect);
                }
        /* Last first: each reader has copies of the earlier ones' pipes. */
        for (unsigned i = n_buses; i > 0; i--)
                bulk_peer_stop(&peers[i - 1]);
        free(src);

        printf("\nBulk data: %u MiB per transfer, %u rounds interleaved, medians over rounds; MB/s is\n"
               "10^6 bytes per second. The writer memsets the bytes, a reader in another process\n"
               "reads every 8-byte word; timed from the first byte written to the reader's sum:\n"
               "  fresh:  bb_buffer_create(%u MiB) + map + memset + share; the reader opens, maps,\n"
               "          reads, releases; release (every page is a new page, faulted in on both sides)\n"
               "  reused: a buffer both keep mapped: memset, one pipe message, the reader reads\n"
               "  'ay':   the bytes to D as 'ay' in 8 MiB method calls, each waiting for D's reply;\n"
               "          D reads every word\n", mib, SCALE_ROUNDS, mib);
        printf("%-14s %12s %12s %12s %16s %16s\n", "bus", "fresh MB/s", "reused MB/s", "'ay' MB/s",
               "fresh / 'ay'", "reused / 'ay'");
        for (unsigned i = 0; i < n_buses; i++) {
                double mbs[3][SCALE_ROUNDS], ratio[2][SCALE_ROUNDS];

                for (unsigned k = 0; k < 3; k++)
                        for (unsigned r = 0; r < SCALE_ROUNDS; r++)
                                mbs[k][r] = (double) bytes / ((double) t[i][k][r] / 1e9) / 1e6;
                for (unsigned r = 0; r < SCALE_ROUNDS; r++) {
                        ratio[0][r] = mbs[0][r] / mbs[2][r];
                        ratio[1][r] = mbs[1][r] / mbs[2][r];
                }
                printf("%-14s %12.0f %12.0f %12.0f %15.2fx %15.2fx\n", buses[i].name,
                       median_double(mbs[0], SCALE_ROUNDS), median_double(mbs[1], SCALE_ROUNDS),
                       median_double(mbs[2], SCALE_ROUNDS), median_double(ratio[0], SCALE_ROUNDS),
                       median_double(ratio[1], SCALE_ROUNDS));
                summary_add("%s%s bulk %u MiB:", summary_len ? "; " : "", buses[i].name, mib);
                for (unsigned k = 0; k < 3; k++)
                        summary_add(" %s %.0f MB/s", what[k], median_double(mbs[k], SCALE_ROUNDS));
                summary_add(" (fresh %.2fx, reused %.2fx 'ay')", median_double(ratio[0], SCALE_ROUNDS),
                            median_double(ratio[1], SCALE_ROUNDS));
        }
}

/* ------------------------------------------------------ live buffers --- */

#define LIVE_BLOCKS 3
#define LIVE_BLOCK_CYCLES 200
#define LIVE_BLOCK_MS 400
#define LIVE_MIN_CYCLES 5
#define LIVE_HEADROOM 16        /* given back when the daemon's quota ends the build */
#define LIVE_MAX_LEVELS 4
/* Calls of two uids within 50 ms put the daemon in its fair mode for 1 s
 * (daemon/bus-peer.c: every call queued, two rounds of its loop): after
 * the holders' creates, wait that out, or the level would measure it. */
#define LIVE_SETTLE_MS 1500

static long vmrss_kib(pid_t pid) {
        char path[64], line[256];
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                fail("%s: %m", path);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* Stands in for the service manager's notify socket, as
 * tests/integration/test-fdstore.c does: takes the messages and closes the
 * fds stored with them. */
static _Noreturn void drain_notify(int fd) {
        for (;;) {
                char buf[4096], control[CMSG_SPACE(sizeof(int) * 16)];
                struct iovec iov = { buf, sizeof(buf) };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                                     .msg_controllen = sizeof(control) };

                if (recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                                for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                        int stored;

                                        memcpy(&stored, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                        close(stored);
                                }
        }
}

static pid_t start_drainer(const char *dir, char path[static 108]) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        pid_t pid;
        int fd;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
        (void) unlink(sa.sun_path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                fail("notify socket %s: %m", sa.sun_path);
        memcpy(path, sa.sun_path, sizeof(sa.sun_path));
        pid = fork_helper();
        if (pid == 0) {
                pbus_close_fds_except(fd);
                drain_notify(fd);
        }
        close(fd);
        return pid;
}

/* The live buffers are held by holder processes, one connection each. The
 * daemon shares its fd budget fairly among uids (one uid alone gets half),
 * so as root each holder runs as a uid of its own, and a new one starts when
 * the last one's share is full. The uids must be in the passwd database:
 * the buses refuse connections from others. */
#define LIVE_MAX_HOLDERS 8

static unsigned holder_uids(uid_t *ret, unsigned max) {
        struct passwd *pw;
        unsigned n = 0;

        if (geteuid() != 0) {
                ret[0] = (uid_t) -1;    /* as we are */
                return 1;
        }
        setpwent();
        while (n < max && (pw = getpwent()))
                if (pw->pw_uid != 0)
                        ret[n++] = pw->pw_uid;
        endpwent();
        return n;
}

typedef struct HoldReply {
        uint32_t made;
        uint32_t capped;        /* the daemon said no: why */
        char why[400];
} HoldReply;

typedef struct Holder {
        pid_t pid;
        int req, rep;           /* our ends of its pipes */
        bool capped;
} Holder;

/* One more buffer on holder's connection, its fd kept in *ret_fd (the fd
 * is the lease: a buffer whose fds all close goes). 1: made; 0: a quota
 * said no (why). */
static int hold_one(sd_bus *holder, char *path, size_t path_size, int *ret_fd, char *why, size_t why_size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *p;
        int fd, r;

        r = sd_bus_call_method(holder, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd", &error,
                               &reply, "sta{sv}", "held", (uint64_t) BUFFER_SIZE, 0);
        if (r < 0) {
                bool quota = sd_bus_error_has_name(&error, BB_ERROR_QUOTA_EXCEEDED);

                snprintf(why, why_size, "%s", error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                if (!quota) {
                        fprintf(stderr, "bench-broker: holder: CreateMemfd: %s\n", why);
                        _exit(1);
                }
                return 0;
        }
        if (sd_bus_message_read(reply, "oh", &p, &fd) < 0)
                _exit(1);
        *ret_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (*ret_fd < 0)
                _exit(1);
        snprintf(path, path_size, "%s", p);
        sd_bus_message_unref(reply);
        return 1;
}

static void release_path(sd_bus *holder, const char *path, int fd) {
        if (sd_bus_call_method(holder, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release", NULL, NULL, "") < 0)
                _exit(1);
        close(fd);
}

/* A holder: per request (a count), makes that many buffers, or fewer when
 * a quota says no -- then it gives the last LIVE_HEADROOM back, so that the
 * measured creates still fit. Exits (and so lets go of everything) at EOF. */
static _Noreturn void holder_main(const char *address, uid_t uid, int req, int rep) {
        static char last[LIVE_HEADROOM][128];
        static int last_fd[LIVE_HEADROOM];     /* the others' fds stay open until we exit */
        pid_t parent = getppid();
        sd_bus *bus = NULL;
        uint64_t held = 0;
        uint32_t want;

        if (uid != (uid_t) -1) {
                if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0) {
                        fprintf(stderr, "bench-broker: holder: cannot become uid %u: %m\n", (unsigned) uid);
                        _exit(1);
                }
                pbus_child_die_with_parent(parent);     /* a change of credentials clears it */
        }
        if (pbus_connect(address, &bus) < 0)
                _exit(1);       /* pbus_connect() said why */
        while (read(req, &want, sizeof(want)) == sizeof(want)) {
                HoldReply rp = {};

                while (rp.made < want) {
                        if (!hold_one(bus, last[held % LIVE_HEADROOM], sizeof(last[0]), &last_fd[held % LIVE_HEADROOM],
                                      rp.why, sizeof(rp.why))) {
                                for (unsigned k = 0; k < LIVE_HEADROOM && held > 0 && rp.made > 0; k++, rp.made--) {
                                        held--;
                                        release_path(bus, last[held % LIVE_HEADROOM], last_fd[held % LIVE_HEADROOM]);
                                }
                                rp.capped = 1;
                                break;
                        }
                        held++;
                        rp.made++;
                }
                if (write(rep, &rp, sizeof(rp)) != sizeof(rp))
                        _exit(1);
        }
        _exit(0);
}

static void holder_start(const ScaleBus *b, uid_t uid, Holder *ret) {
        int req[2], rep[2];

        if (pipe2(req, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)
                fail("pipe: %m");
        *ret = (Holder) { .pid = fork_helper() };
        if (ret->pid == 0) {
                close(req[1]);
                close(rep[0]);
                holder_main(b->address, uid, req[0], rep[1]);
        }
        close(req[0]);
        close(rep[1]);
        ret->req = req[1];
        ret->rep = rep[0];
}

static unsigned holder_hold(const ScaleBus *b, Holder *h, unsigned n, char *why, size_t why_size) {
        uint32_t want = n;
        HoldReply rp;

        if (write(h->req, &want, sizeof(want)) != sizeof(want) || read(h->rep, &rp, sizeof(rp)) != sizeof(rp))
                fail("%s: a holder of live buffers failed (a call that was not refused for a quota)", b->name);
        if (rp.capped) {
                h->capped = true;
                snprintf(why, why_size, "%s", rp.why);
        }
        return rp.made;
}

static void holder_stop(Holder *h) {
        close(h->req);
        wait_helper(h->pid, "a holder of live buffers");
        close(h->rep);
}

/* create(4K) + release, no map: the daemon's part, at this level. Median
 * per block, median of the blocks; a block ends after LIVE_BLOCK_CYCLES or
 * LIVE_BLOCK_MS (but runs at least LIVE_MIN_CYCLES), as slow levels are slow. */
static double live_cycle_us(const ScaleBus *b, bb_client *c) {
        uint64_t samples[LIVE_BLOCK_CYCLES];
        double med[LIVE_BLOCKS];

        for (unsigned blk = 0; blk < LIVE_BLOCKS; blk++) {
                uint64_t end = now_ns() + (uint64_t) LIVE_BLOCK_MS * 1000000u;
                unsigned n = 0;

                while (n < LIVE_BLOCK_CYCLES && (n < LIVE_MIN_CYCLES || now_ns() < end)) {
                        bb_buffer *buf = NULL;
                        uint64_t t0 = now_ns();
                        int r = bb_buffer_create(c, "bench-live", BUFFER_SIZE, 0, 0, &buf);

                        if (r >= 0)
                                r = bb_buffer_release(buf);
                        bb_buffer_unref(buf);
                        if (r < 0)
                                fail("%s: create+release with live buffers: %s (%s)", b->name, strerror(-r),
                                     bb_client_error_message(c) ?: "-");
                        samples[n++] = now_ns() - t0;
                }
                qsort(samples, n, sizeof(uint64_t), cmp_u64);
                med[blk] = percentile_u64(samples, n, 0.5);
        }
        return median_double(med, LIVE_BLOCKS) / 1000;
}

typedef struct LiveLevel {
        unsigned target, held, holders;
        double cycle_us;
        long rss_kib;
} LiveLevel;

/* The daemon lets its buffers go once their holder is gone; a SIGTERM
 * before that would catch it with buffers (with the fd store: an exit
 * status that asks for a restart). */
static void wait_no_buffers(const ScaleBus *b, bb_client *c) {
        uint64_t deadline = now_ns() + UINT64_C(120000000000), n = 1;

        while (n > 0) {
                int r = bb_client_get_stat(c, BB_STAT_BUFFERS, &n);

                if (r < 0)
                        fail("%s: reading the daemon's stats: %s", b->name, strerror(-r));
                if (n > 0 && now_ns() > deadline)
                        fail("%s: the daemon still has %" PRIu64 " buffers 120 s after their holder left",
                             b->name, n);
                if (n > 0)
                        pbus_msleep(20);
        }
}

/* One daemon: build up to each level, measure there. Returns the number of
 * levels measured; *cap says why the build stopped short, if it did. */
static unsigned live_run(const ScaleBus *b, const char *dir, bool fdstore, const unsigned *targets, unsigned n_targets,
                         unsigned build_sec, LiveLevel *out, long *ret_rss0, char *cap, size_t cap_size,
                         uint64_t *ret_max_fds, bool *ret_clean) {
        char a1[64], a2[64], notify[108] = "";
        const char *extra[] = { a1, a2, NULL };
        PbusSpawn opts = { .uid = (uid_t) -1, .gid = (gid_t) -1 };
        unsigned held = 0, n_out = 0, n_holders = 0, max_level = targets[n_targets - 1];
        uid_t uids[LIVE_MAX_HOLDERS];
        unsigned max_holders = holder_uids(uids, LIVE_MAX_HOLDERS);
        Holder holders[LIVE_MAX_HOLDERS];
        pid_t daemon, drainer = -1;
        uint64_t build_ns = 0;          /* time spent building, measurements not counted */
        bb_client *c;
        bool capped = false;
        int status;

        /* Raise the daemon's count limits past the level (one uid gets a
         * fair half of --max-buffers). RLIMIT_NOFILE was raised in main(). */
        snprintf(a1, sizeof(a1), "--max-buffers-per-uid=%u", max_level + 1024);
        snprintf(a2, sizeof(a2), "--max-buffers=%u", 2 * (max_level + 1024));
        if (fdstore) {
                drainer = start_drainer(dir, notify);
                opts.notify_socket = notify;
        }
        daemon = bench_spawn_bufbrokerd(b->bus, b->address, b->name, extra, &opts);
        c = client_new(b->address);
        if (bb_client_get_limit(c, BB_LIMIT_MAX_FDS, ret_max_fds) < 0)
                *ret_max_fds = 0;
        (void) live_cycle_us(b, c);             /* warm-up */
        *ret_rss0 = vmrss_kib(daemon);

        for (unsigned l = 0; l < n_targets && !capped; l++) {
                uint64_t t_build = now_ns();

                while (held < targets[l]) {
                        /* with the fd store each create costs more than the last: check often */
                        unsigned step = MIN(targets[l] - held, fdstore ? 50u : 2000u);

                        if (fdstore && build_ns + now_ns() - t_build > (uint64_t) build_sec * UINT64_C(1000000000)) {
                                snprintf(cap, cap_size, "building stopped after %u s (BB_BENCH_FDSTORE_BUILD_SEC): "
                                         "each create rewrites the whole state, so building up is quadratic",
                                         build_sec);
                                capped = true;
                                break;
                        }
                        if (n_holders == 0 || holders[n_holders - 1].capped) {
                                if (n_holders == max_holders) {
                                        capped = true;  /* cap says which quota */
                                        break;
                                }
                                holder_start(b, uids[n_holders], &holders[n_holders]);
                                n_holders++;
                        }
                        held += holder_hold(b, &holders[n_holders - 1], step, cap, cap_size);
                }
                build_ns += now_ns() - t_build;
                if (n_out > 0 && held == out[n_out - 1].held)
                        break;          /* capped right away: nothing new to measure */
                out[n_out] = (LiveLevel) { .target = targets[l], .held = held, .holders = n_holders };
                if (held > 0)
                        pbus_msleep(LIVE_SETTLE_MS);
                out[n_out].cycle_us = live_cycle_us(b, c);
                out[n_out].rss_kib = vmrss_kib(daemon);
                printf("  live buffers%s: %u held by %u uids (target %u): create+release %.1f us, VmRSS %ld KiB "
                       "(built in %.1f s)\n", fdstore ? " with fd store" : "", held, n_holders, targets[l],
                       out[n_out].cycle_us, out[n_out].rss_kib, (double) build_ns / 1e9);
                n_out++;
        }

        /* Last first: each holder has copies of the earlier ones' pipes. */
        for (unsigned i = n_holders; i > 0; i--)
                holder_stop(&holders[i - 1]);
        wait_no_buffers(b, c);
        bb_client_unref(c);
        kill(daemon, SIGTERM);
        status = pbus_wait_child(daemon, 60000);
        if (status != 0)
                fprintf(stderr, "bench-broker: bufbrokerd (live buffers%s) exited with status %d after SIGTERM\n",
                        fdstore ? ", fd store" : "", status);
        *ret_clean = status == 0;
        if (drainer > 0) {
                kill(drainer, SIGKILL);
                (void) pbus_wait_child(drainer, 5000);
                (void) unlink(notify);
        }
        return n_out;
}

bool bench_live_buffers(const ScaleBus *b, const char *dir, unsigned max_level, unsigned fdstore_build_sec) {
        static const unsigned fixed[] = { 0, 1000, 10000 };
        unsigned targets[LIVE_MAX_LEVELS], n_targets = 0, n_out[2];
        LiveLevel out[2][LIVE_MAX_LEVELS];
        char cap[2][512] = {};
        uint64_t max_fds[2];
        long rss0[2];
        bool clean[2];

        for (unsigned i = 0; i < ELEMENTSOF(fixed) && fixed[i] < max_level; i++)
                targets[n_targets++] = fixed[i];
        targets[n_targets++] = max_level;

        for (unsigned m = 0; m < 2; m++)
                n_out[m] = live_run(b, dir, m == 1, targets, n_targets, fdstore_build_sec, out[m], &rss0[m], cap[m],
                                    sizeof(cap[m]), &max_fds[m], &clean[m]);

        printf("\nLive buffers in the daemon (on %s), held by holder processes (one connection\n"
               "and uid each, a new uid when one's fair share is full); create(4K) + release by\n"
               "another connection, no map, %.1f s after the last hold (the daemon's fair mode):\n"
               "%u blocks per level (<= %u cycles or %u ms each), median of the block medians.\n"
               "RSS: the daemon's VmRSS (its own memory: the memfd pages are shmem, not in it),\n"
               "per live buffer over the level-0 value.\n",
               b->name, LIVE_SETTLE_MS / 1000.0, LIVE_BLOCKS, LIVE_BLOCK_CYCLES, LIVE_BLOCK_MS);
        printf("%-12s %8s %8s %14s %14s %12s %14s\n", "fd store", "target", "held", "us per cycle", "cycles/s",
               "VmRSS KiB", "RSS B/buffer");
        for (unsigned m = 0; m < 2; m++) {
                summary_add("%slive buffers%s:", summary_len ? "; " : "", m ? " with fd store" : "");
                for (unsigned l = 0; l < n_out[m]; l++) {
                        const LiveLevel *v = &out[m][l];
                        char per[32] = "-";

                        if (v->held > 0)
                                snprintf(per, sizeof(per), "%.0f",
                                         (double) (v->rss_kib - rss0[m]) * 1024 / v->held);
                        printf("%-12s %8u %8u %14.1f %14.0f %12ld %14s\n", m ? "yes" : "no", v->target, v->held,
                               v->cycle_us, 1e6 / v->cycle_us, v->rss_kib, per);
                        summary_add(" %u: %.0f/s%s%s%s", v->held, 1e6 / v->cycle_us, v->held ? " (" : "",
                                    v->held ? per : "", v->held ? " B RSS/buffer)" : "");
                }
                if (out[m][n_out[m] - 1].held < targets[n_targets - 1])
                        printf("  %s: stopped at %u of %u, held by %u uids (the daemon keeps at most %" PRIu64
                               " fds for buffers, half of them for one uid): %s\n",
                               m ? "with fd store" : "without fd store", out[m][n_out[m] - 1].held,
                               targets[n_targets - 1], out[m][n_out[m] - 1].holders, max_fds[m], cap[m]);
        }
        return clean[0] && clean[1];
}
