/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hostile suite: local users who try to take the broker down for
 * everyone, on a private dbus-daemon and a private dbus-broker with the
 * project's policy and the daemon's default limits.
 *
 *   flood without reading  uid 65534 opens 10 connections and sends 300
 *                          CreateMemfd on each without ever reading a reply
 *   many holders           8 uids x 250 connections (2,000), each holding
 *                          a buffer
 *   a flooding uid         uid 65534 keeps 8 connections busy with create and
 *                          release as fast as the daemon answers, while root
 *                          does the same on one connection
 *
 * Every case asserts that the daemon stays on the bus (the process we
 * started owns the name), answers root's Ping within a bound all along, loses
 * nothing of root's (a persistent buffer with its contents, a held buffer, a
 * token), and comes back to its baseline afterwards: Stats, its fd count,
 * and its RSS within a margin (malloc keeps some of what it had).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "harness.h"

/* Root's Ping must be answered within this, whatever the flood does. The
 * daemon needs up to 350 ms to see that dbus-daemon stopped reading it and
 * a few ms to move to a fresh connection (see daemon/bus-connection.c). */
#define PING_BOUND_MS 1500
#define RSS_MARGIN_KB (8 * 1024)
#define PAGE 4096u

/* ---- what the attacker must not touch ---------------------------------- */

typedef struct Victim {
        Created persistent;     /* created by a connection that is gone */
        Created held;           /* held by the test's own connection */
        char *token;            /* for the persistent one */
        uint64_t rss_kb;
        Snapshot base;
} Victim;

static uint64_t daemon_rss_kb(void) {
        char path[64], line[256];
        uint64_t kb = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) H->daemon_pid);
        f = fopen(path, "re");
        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1)
                        break;
        fclose(f);
        return kb;
}

static void fill(int fd, char c) {
        char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        ck_assert(p != MAP_FAILED);
        memset(p, c, PAGE);
        munmap(p, PAGE);
}

static void check_filled(int fd, char c, const char *what) {
        char *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);

        ck_assert(p != MAP_FAILED);
        for (unsigned i = 0; i < PAGE; i++)
                ck_assert_msg(p[i] == c, "%s: byte %u is 0x%02x, want 0x%02x", what, i, p[i], c);
        munmap(p, PAGE);
}

static void victim_setup(Victim *v) {
        sd_bus *other;
        sd_bus_error error = SD_BUS_ERROR_NULL;

        baseline_after_warmup(&v->base);
        v->rss_kb = daemon_rss_kb();

        ck_assert(bus_connect(&other) >= 0);
        create_memfd(other, "root-persistent", PAGE, true, 0, &v->persistent);
        fill(v->persistent.fd, 'P');
        ck_assert(call_share(other, v->persistent.path, true, (uid_t) -1, false, 0, &v->token, &error) >= 0);
        sd_bus_flush_close_unref(other);
        create_memfd(NULL, "root-held", PAGE, false, 0, &v->held);
        fill(v->held.fd, 'H');
}

/* Everything of root's is still there and intact, and opens. */
static void victim_check(Victim *v, const char *context) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *path = NULL;
        int fd = -1;

        ck_assert_msg(daemon_alive(), "%s: bufbrokerd died", context);
        ck_assert_msg(daemon_owns_name(), "%s: bufbrokerd does not own %s", context, BB_BUS_NAME);
        ck_assert_msg(list_has(NULL, v->persistent.id), "%s: root's persistent buffer is gone", context);
        ck_assert_msg(list_has(NULL, v->held.id), "%s: root's held buffer is gone", context);
        ck_assert_msg(call_open(NULL, v->token, &path, &fd, NULL, &error) >= 0, "%s: root's token: %s",
                      context, error.message);
        ck_assert_str_eq(path, v->persistent.path);
        check_filled(fd, 'P', "persistent buffer, opened by token");
        check_filled(v->held.fd, 'H', "held buffer");
        close(fd);
        free(path);
        sd_bus_error_free(&error);
}

/* AddressSanitizer keeps freed memory in quarantine (256 MiB) and valgrind
 * has its own heap: RSS says something only of the plain daemon. */
static bool daemon_heap_is_plain(void) {
        char path[64], line[512];
        bool plain = !H->wrapped;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int) H->daemon_pid);
        f = fopen(path, "re");
        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        while (plain && fgets(line, sizeof(line), f))
                if (strstr(line, "libasan"))
                        plain = false;
        fclose(f);
        return plain;
}

static void victim_done(Victim *v) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t rss;

        ck_assert(call_release(NULL, v->persistent.path, &error) >= 0);
        ck_assert(call_release(NULL, v->held.path, &error) >= 0);
        created_done(&v->persistent);
        created_done(&v->held);
        free(v->token);
        assert_back_to(&v->base, "after the attack");
        rss = daemon_rss_kb();
        fprintf(stderr, "hostile [%s] RSS %" PRIu64 " kB before, %" PRIu64 " kB after%s\n", bus_kind_name(H->kind),
                v->rss_kb, rss, daemon_heap_is_plain() ? "" : " (instrumented heap: not checked)");
        if (daemon_heap_is_plain())
                ck_assert_msg(rss <= v->rss_kb + RSS_MARGIN_KB, "RSS %" PRIu64 " kB after the attack, %" PRIu64 " kB before",
                              rss, v->rss_kb);
}

/* ---- root's Ping, all along --------------------------------------------- */

#define PING_SAMPLES 4096

typedef struct PingStats {
        unsigned n, retried, failed;
        uint32_t sample_usec[PING_SAMPLES];     /* the first ones, for percentiles */
        uint64_t worst_usec;
        uint64_t in_flight_since;       /* 0: none */
        char last_error[256];
} PingStats;

typedef struct Pinger {
        pid_t pid;
        PingStats *stats;       /* shared with the child */
} Pinger;

/* One Ping every 10 ms; a call that the daemon's move to a fresh connection
 * cut off (NoReply) is sent again, and counted from the first send. */
static int pinger_main(void *userdata) {
        PingStats *st = userdata;
        sd_bus *bus;

        if (bus_connect(&bus) < 0)
                return 1;
        for (;;) {
                uint64_t t0 = now_usec();
                int r;

                st->in_flight_since = t0;
                for (unsigned attempt = 0;; attempt++) {
                        sd_bus_error error = SD_BUS_ERROR_NULL;

                        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, "org.freedesktop.DBus.Peer",
                                               "Ping", &error, NULL, "");
                        if (r >= 0 || attempt >= 3 || !sd_bus_error_has_name(&error, SD_BUS_ERROR_NO_REPLY)) {
                                if (r < 0)
                                        snprintf(st->last_error, sizeof(st->last_error), "%s: %s",
                                                 error.name, error.message);
                                sd_bus_error_free(&error);
                                break;
                        }
                        st->retried++;
                        sd_bus_error_free(&error);
                }
                if (r < 0)
                        st->failed++;
                if (now_usec() - t0 > st->worst_usec)
                        st->worst_usec = now_usec() - t0;
                if (st->n < PING_SAMPLES)
                        st->sample_usec[st->n] = (uint32_t) MIN(now_usec() - t0, (uint64_t) UINT32_MAX);
                st->in_flight_since = 0;
                st->n++;
                msleep(10);
        }
        return 0;
}

static void pinger_start(Pinger *p) {
        p->stats = mmap(NULL, sizeof(PingStats), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ck_assert(p->stats != MAP_FAILED);
        memset(p->stats, 0, sizeof(PingStats));
        p->pid = fork_as(AS_ROOT, pinger_main, p->stats);
}

static int compare_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
        return x < y ? -1 : x > y;
}

/* Stop it and assert that every Ping was answered within the bound. */
static void pinger_check(Pinger *p, const char *context) {
        PingStats st;
        unsigned k;

        kill(p->pid, SIGKILL);
        (void) wait_child(p->pid, 5000);
        st = *p->stats;
        /* A Ping still waiting counts with how long it has waited. */
        if (st.in_flight_since && now_usec() - st.in_flight_since > st.worst_usec)
                st.worst_usec = now_usec() - st.in_flight_since;
        munmap(p->stats, sizeof(PingStats));
        k = MIN(st.n, (unsigned) PING_SAMPLES);
        qsort(st.sample_usec, k, sizeof(uint32_t), compare_u32);
        fprintf(stderr, "hostile [%s] %s: %u Pings from root, p50 %.1f ms, p99 %.1f ms, worst %" PRIu64
                " ms, %u sent again after NoReply\n",
                bus_kind_name(H->kind), context, st.n, k ? st.sample_usec[k / 2] / 1000.0 : 0.0,
                k ? st.sample_usec[k * 99 / 100] / 1000.0 : 0.0, st.worst_usec / 1000, st.retried);
        ck_assert_msg(st.n >= 5, "%s: only %u Pings done", context, st.n);
        ck_assert_msg(st.failed == 0, "%s: %u of root's Pings failed, last: %s", context, st.failed, st.last_error);
        ck_assert_msg(st.worst_usec <= (uint64_t) scaled_ms(PING_BOUND_MS) * 1000u,
                      "%s: root waited %" PRIu64 " ms for a Ping, more than %d ms", context,
                      st.worst_usec / 1000, scaled_ms(PING_BOUND_MS));
}

/* ---- case 1: a flood that never reads ----------------------------------- */

#define FLOOD_CONNECTIONS 10
#define FLOOD_CALLS 300

static int flood_never_read(void *userdata) {
        sd_bus *bus[FLOOD_CONNECTIONS];

        for (unsigned i = 0; i < FLOOD_CONNECTIONS; i++) {
                if (bus_connect(&bus[i]) < 0)
                        return 1;
                for (unsigned j = 0; j < FLOOD_CALLS; j++) {
                        sd_bus_message *m = NULL;
                        uint64_t cookie;

                        /* A cookie asked for: the call expects its reply. */
                        if (sd_bus_message_new_method_call(bus[i], &m, BB_BUS_NAME, BB_MANAGER_PATH,
                                                           BB_MANAGER_INTERFACE, "CreateMemfd") < 0 ||
                            sd_bus_message_append(m, "sta{sv}", "flood", (uint64_t) PAGE, 0) < 0 ||
                            sd_bus_send(bus[i], m, &cookie) < 0)
                                return 1;
                        sd_bus_message_unref(m);
                }
                if (sd_bus_flush(bus[i]) < 0)
                        return 1;
        }
        pause();        /* and never read */
        return 0;
}

START_TEST(test_flood_never_read) {
        Victim v = {};
        Pinger p;
        pid_t flood;

        victim_setup(&v);
        pinger_start(&p);
        flood = fork_as(NOBODY_UID, flood_never_read, NULL);
        msleep(scaled_ms(6000));
        victim_check(&v, "during the flood");
        pinger_check(&p, "flood without reading");

        kill(flood, SIGKILL);
        ck_assert_int_eq(wait_child(flood, 5000), 128 + SIGKILL);
        victim_check(&v, "after the flood");
        victim_done(&v);
}
END_TEST

/* ---- case 2: many clients, each holding one buffer ---------------------- */

/* 2,000 clients: within the buses' limits (256 connections per uid,
 * 2,048 in all on dbus-daemon's system defaults) and the daemon's. */
#define HOLDER_UIDS 8
#define HOLDERS_PER_UID 250

/* As the uid it runs as: HOLDERS_PER_UID connections, each creating one
 * buffer and holding it; report how many got one through the pipe, then
 * stay until killed. */
static int hold_many(void *userdata) {
        int report = *(int *) userdata;
        sd_bus *bus[HOLDERS_PER_UID];
        unsigned n = 0;

        for (unsigned i = 0; i < HOLDERS_PER_UID; i++) {
                sd_bus_message *reply = NULL;

                if (bus_connect(&bus[i]) < 0)
                        break;
                int fd;

                if (sd_bus_call_method(bus[i], BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd",
                                       NULL, &reply, "sta{sv}", "holder", (uint64_t) PAGE, 0) < 0 ||
                    sd_bus_message_read(reply, "oh", NULL, &fd) < 0)
                        break;
                /* The fd is the lease: keep it, or the buffer goes. */
                fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
                sd_bus_message_unref(reply);
                if (fd < 0)
                        break;
                n++;
        }
        if (write(report, &n, sizeof(n)) != sizeof(n))
                return 1;
        pause();
        return 0;
}

START_TEST(test_many_holders) {
        uid_t uids[HOLDER_UIDS] = { NOBODY_UID, system_uid("daemon"), system_uid("bin"), system_uid("sys"),
                                    system_uid("games"), system_uid("man"), system_uid("lp"), system_uid("mail") };
        pid_t pids[HOLDER_UIDS];
        unsigned total = 0;
        Victim v = {};
        int pipefd[2];
        Pinger p;

        victim_setup(&v);
        pinger_start(&p);
        ck_assert(pipe2(pipefd, O_CLOEXEC) == 0);
        for (unsigned i = 0; i < HOLDER_UIDS; i++)
                pids[i] = fork_as(uids[i], hold_many, &pipefd[1]);
        for (unsigned i = 0; i < HOLDER_UIDS; i++) {
                unsigned n = 0;

                ck_assert_int_eq(read(pipefd[0], &n, sizeof(n)), sizeof(n));
                total += n;
        }
        ck_assert_uint_eq(total, HOLDER_UIDS * HOLDERS_PER_UID);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), v.base.buffers + 2 + total);
        ck_assert_uint_eq(stats_get(BB_STAT_CLIENTS), v.base.clients + 1 + total);
        victim_check(&v, "with 2,000 holders");
        msleep(500);            /* root keeps pinging while they hold */
        pinger_check(&p, "many holders");

        for (unsigned i = 0; i < HOLDER_UIDS; i++) {
                kill(pids[i], SIGKILL);
                ck_assert_int_eq(wait_child(pids[i], 5000), 128 + SIGKILL);
        }
        close(pipefd[0]);
        close(pipefd[1]);
        victim_check(&v, "after the holders left");
        victim_done(&v);
}
END_TEST

/* ---- case 3: a uid that floods, reading its replies --------------------- */

#define BUSY_CONNECTIONS 8
#define BUSY_IN_FLIGHT 16

typedef struct Busy {
        sd_bus *bus;
        uint64_t *done;
} Busy;

static int busy_create(Busy *b);

static int on_busy_released(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Busy *b = userdata;

        (*b->done)++;
        return busy_create(b);
}

static int on_busy_created(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Busy *b = userdata;
        const char *path;

        if (sd_bus_message_is_method_error(reply, NULL) || sd_bus_message_read(reply, "o", &path) < 0)
                return busy_create(b);  /* refused (a limit): try again */
        return sd_bus_call_method_async(b->bus, NULL, BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release",
                                        on_busy_released, b, "");
}

static int busy_create(Busy *b) {
        return sd_bus_call_method_async(b->bus, NULL, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                        "CreateMemfd", on_busy_created, b, "sta{sv}", "busy",
                                        (uint64_t) PAGE, 0);
}

/* BUSY_CONNECTIONS connections, each with BUSY_IN_FLIGHT create-then-release
 * chains going as fast as the daemon answers. */
static int flood_busy(void *userdata) {
        uint64_t *done = userdata;
        Busy b[BUSY_CONNECTIONS];
        sd_event *e;

        if (sd_event_new(&e) < 0)
                return 1;
        for (unsigned i = 0; i < BUSY_CONNECTIONS; i++) {
                b[i].done = done;
                if (bus_connect(&b[i].bus) < 0 || sd_bus_attach_event(b[i].bus, e, 0) < 0)
                        return 1;
                for (unsigned j = 0; j < BUSY_IN_FLIGHT; j++)
                        if (busy_create(&b[i]) < 0)
                                return 1;
        }
        return sd_event_loop(e) < 0;
}

/* Root's create + release, one after the other, for @ms: how many per second. */
static double victim_rate(sd_bus *bus, unsigned ms) {
        uint64_t t0 = now_usec(), n = 0;
        sd_bus_error error = SD_BUS_ERROR_NULL;

        while (now_usec() - t0 < (uint64_t) ms * 1000u) {
                Created c;

                create_memfd(bus, "victim", PAGE, false, 0, &c);
                ck_assert_msg(call_release(bus, c.path, &error) >= 0, "release: %s", error.message);
                created_done(&c);
                n++;
        }
        return n * 1e6 / (now_usec() - t0);
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

START_TEST(test_flooding_uid_gets_its_share) {
        enum { ROUNDS = 3 };
        double quiet[ROUNDS + 1], flooded[ROUNDS], ratio[ROUNDS];
        uint64_t *done;
        Victim v = {};
        sd_bus *bus;
        Pinger p;

        victim_setup(&v);
        ck_assert(bus_connect(&bus) >= 0);
        done = mmap(NULL, sizeof(*done), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ck_assert(done != MAP_FAILED);
        *done = 0;
        pinger_start(&p);

        /* Rounds, quiet and flooded in turn, each flooded one against the
         * quiet ones on either side: the machine is shared and noisy. */
        quiet[0] = victim_rate(bus, 600);
        for (unsigned i = 0; i < ROUNDS; i++) {
                pid_t flood = fork_as(NOBODY_UID, flood_busy, done);

                msleep(200);
                flooded[i] = victim_rate(bus, 1000);
                kill(flood, SIGKILL);
                ck_assert_int_eq(wait_child(flood, 5000), 128 + SIGKILL);
                quiet[i + 1] = victim_rate(bus, 600);
                ratio[i] = flooded[i] / ((quiet[i] + quiet[i + 1]) / 2);
                fprintf(stderr, "hostile [%s] a flooding uid, round %u: root's create+release %.0f/s quiet, %.0f/s "
                        "while uid 65534 kept %u connections busy (%.0f%%), %.0f/s after\n",
                        bus_kind_name(H->kind), i + 1, quiet[i], flooded[i], BUSY_CONNECTIONS, 100 * ratio[i],
                        quiet[i + 1]);
        }
        pinger_check(&p, "a flooding uid");
        qsort(ratio, ROUNDS, sizeof(double), compare_double);
        fprintf(stderr, "hostile [%s] a flooding uid: %" PRIu64 " create+release by the flood; root kept %.0f%% of its "
                "rate (median of %u rounds)\n", bus_kind_name(H->kind), *done, 100 * ratio[ROUNDS / 2], ROUNDS);
        /* The daemon was busy: the flood got through a lot ... */
        ck_assert_msg(*done > 1000, "the flood did only %" PRIu64 " create+release", *done);
        /* ... and root still got a fair part of it. Two uids: half each at
         * best, and the bus serves the flood's 8 connections before root's
         * one too; a fifth leaves room for a noisy machine. (First come,
         * first served gave root 2%.) */
        ck_assert_msg(ratio[ROUNDS / 2] >= 0.2, "root kept only %.0f%% of its rate under another uid's flood",
                      100 * ratio[ROUNDS / 2]);

        munmap(done, sizeof(*done));
        sd_bus_flush_close_unref(bus);
        victim_check(&v, "after the busy flood");
        victim_done(&v);
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_flood_never_read);
        tcase_add_test(tc, test_many_holders);
        tcase_add_test(tc, test_flooding_uid_gets_its_share);
}

int main(void) {
        Suite *s = suite_create("hostile");

        harness_add_tcases(s, "", add_tests);
        return harness_main(s);
}
