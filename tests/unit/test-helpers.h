/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared scaffolding of the unit tests of the broker core: a broker per test
 * (a checked fixture, so every test runs in its own forked process), a
 * recorder for the BrokerCallbacks, and assertion helpers that report the
 * line of the test that called them.
 *
 * The tests are written against the contract in daemon/broker.h, issue 2 and
 * DESIGN.md, not against the implementation: where the contract leaves a
 * choice open, a test accepts every documented answer and says so.
 */
#pragma once

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"

/* Uids of unprivileged test users; none is root or the broker's own uid
 * (checked in setup). */
#define UID_A ((uid_t) 1000001)
#define UID_B ((uid_t) 1000002)
#define UID_C ((uid_t) 1000003)
#define UID_ANY ((uid_t) -1)

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_HOUR (UINT64_C(3600) * USEC_PER_SEC)
/* An arbitrary CLOCK_MONOTONIC "now": time is passed in, never read. */
#define T0 (UINT64_C(1000000) * USEC_PER_SEC)

#define TEST_TIMEOUT 120

#define CALLER(n, u) (&(Caller) { .name = (n), .uid = (u) })

typedef struct Recorder {
        int fail_added;                 /* client_added returns this */
        unsigned added;
        unsigned removed;
        unsigned dropped;
        uint64_t dropped_ids[1024];
        BrokerDropReason last_reason;
        unsigned last_dropped_holds;    /* the holds the dropped buffer still had */
        unsigned changed;
        const char *last_changed;       /* the property */
        char last_removed[64];
} Recorder;

static Broker *b;
static Recorder rec;

static int rec_client_added(Broker *broker, Client *c, void *userdata) {
        Recorder *r = userdata;

        ck_assert_ptr_eq(broker, b);
        ck_assert_ptr_eq(r, &rec);
        ck_assert_ptr_nonnull(c);
        if (r->fail_added < 0)
                return r->fail_added;
        r->added++;
        return 0;
}

static void rec_client_removed(Broker *broker, Client *c, void *userdata) {
        Recorder *r = userdata;

        ck_assert_ptr_eq(broker, b);
        ck_assert_ptr_nonnull(c);
        /* "about to be freed": still readable here (ASan/valgrind catch it). */
        ck_assert_ptr_nonnull(c->name);
        snprintf(r->last_removed, sizeof(r->last_removed), "%s", c->name);
        r->removed++;
}

static void rec_buffer_dropped(Broker *broker, Buffer *buf, BrokerDropReason reason, void *userdata) {
        Recorder *r = userdata;

        ck_assert_ptr_eq(broker, b);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_ne(reason, BROKER_DROP_NONE);
        ck_assert_uint_lt(r->dropped, ELEMENTSOF(r->dropped_ids));
        r->dropped_ids[r->dropped++] = buf->id;
        r->last_reason = reason;
        r->last_dropped_holds = buf->n_holds;
}

static void rec_buffer_changed(Broker *broker, Buffer *buf, const char *property, void *userdata) {
        Recorder *r = userdata;

        ck_assert_ptr_eq(broker, b);
        r->changed++;
        r->last_changed = property;
}

static const BrokerCallbacks rec_callbacks = {
        .client_added = rec_client_added,
        .client_removed = rec_client_removed,
        .buffer_dropped = rec_buffer_dropped,
        .buffer_changed = rec_buffer_changed,
};

static inline uint64_t page_size(void) {
        return (uint64_t) sysconf(_SC_PAGESIZE);
}

/* Generous limits, so that only the quota tests hit one. */
static inline void limits_generous(BrokerLimits *l) {
        broker_limits_default(l);
        l->max_buffer_size = UINT64_C(64) << 20;
        l->max_buffers_per_uid = 4096;
        l->max_bytes_per_uid = UINT64_C(1) << 30;
        l->max_tokens_per_uid = 4096;
        l->max_buffers = 16384;
        l->max_bytes = UINT64_C(4) << 30;
        l->max_tokens = 16384;
}

/* Sizes no broker may hand out, whatever its limits: each one is near 2^64,
 * where page rounding or the conversion to off_t wraps when done naively.
 * Used by test-broker.c and test-conditional.c (_unused_: test-memfd.c too
 * includes this header). */
static const uint64_t huge_sizes[] _unused_ = {
        UINT64_MAX,
        UINT64_MAX - 1,
        UINT64_MAX - 4094,      /* + 4095 wraps to 0 when rounding naively */
        UINT64_MAX - 4095,
        UINT64_MAX - 4096,
        UINT64_MAX - 65535,
        UINT64_C(1) << 63,
        (UINT64_C(1) << 63) + 1,
        (UINT64_C(1) << 63) - 1,        /* INT64_MAX: off_t's largest */
};

static inline void broker_start(const BrokerLimits *l) {
        int r;

        memset(&rec, 0, sizeof(rec));
        r = broker_new(&b, l, &rec_callbacks, &rec);
        ck_assert_int_eq(r, 0);
        ck_assert_ptr_nonnull(b);
        ck_assert(b->self_uid != UID_A && b->self_uid != UID_B && b->self_uid != UID_C);
}

static inline void broker_stop(void) {
        b = broker_free(b);
        ck_assert_ptr_null(b);
}

/* Replace the fixture's broker by one with other limits. */
static inline void broker_restart(const BrokerLimits *l) {
        broker_stop();
        broker_start(l);
}

static void setup(void) {
        BrokerLimits l;

        limits_generous(&l);
        broker_start(&l);
}

static void teardown(void) {
        broker_stop();
}

static inline ShareOptions share_opts(void) {
        return (ShareOptions) { .bound_uid = UID_ANY };
}

static inline int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;   /* the DIR's own fd */
}

static inline uint64_t realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static inline unsigned count_buffers(void) {
        Buffer *buf;
        unsigned n = 0;

        BROKER_FOREACH_BUFFER(buf, b)
                n++;
        return n;
}

static inline unsigned count_dropped(uint64_t id) {
        unsigned n = 0;

        for (unsigned i = 0; i < rec.dropped; i++)
                if (rec.dropped_ids[i] == id)
                        n++;
        return n;
}

/* ------------------------------------------------------------ asserts --- */

#define assert_stats(nbuf, nbytes, nclients, ntokens)                                   \
        do {                                                                            \
                ck_assert_uint_eq(b->stats.buffers, (nbuf));                            \
                ck_assert_uint_eq(b->stats.bytes, (nbytes));                            \
                ck_assert_uint_eq(b->stats.clients, (nclients));                        \
                ck_assert_uint_eq(b->stats.tokens, (ntokens));                          \
                ck_assert_uint_eq(count_buffers(), (nbuf));                             \
        } while (0)

/* broker_usage() may return NULL for a uid with nothing charged. */
#define assert_usage(uid_, nbuf, nbytes, ntokens)                                        \
        do {                                                                            \
                const UidUsage *_u = broker_usage(b, (uid_));                            \
                ck_assert_uint_eq(_u ? _u->buffers : 0, (nbuf));                        \
                ck_assert_uint_eq(_u ? _u->bytes : 0, (nbytes));                        \
                ck_assert_uint_eq(_u ? _u->tokens : 0, (ntokens));                      \
                if (_u)                                                                 \
                        ck_assert_uint_eq(_u->uid, (uid_));                              \
        } while (0)

/* A failure returns exactly this errno and explains itself. */
#define assert_fails(expr, errno_, err)                                                 \
        do {                                                                            \
                (err).message[0] = 0;                                                   \
                int _r = (expr);                                                        \
                ck_assert_int_eq(_r, -(errno_));                                        \
                ck_assert_msg((err).message[0] != 0, "no error message for %s", #expr); \
        } while (0)

/* ------------------------------------------------------------ actions --- */

#define create_ok(name_, uid_, bname, size, persistent, ttl)                            \
        create_ok_at(__LINE__, (name_), (uid_), (bname), (size), (persistent), (ttl), T0)

static inline Buffer *create_ok_at(int line, const char *name, uid_t uid, const char *bname,
                                   uint64_t size, bool persistent, uint64_t ttl, uint64_t now) {
        BrokerError err = {};
        Buffer *buf = NULL;
        int r;

        r = broker_create(b, CALLER(name, uid),
                                &(CreateRequest) { .name = bname, .size = size, .persistent = persistent,
                                                   .ttl_usec = ttl },
                                now, &err, &buf);
        ck_assert_msg(r == 0, "line %d: create(%s, %" PRIu64 ") = %d (%s)", line, bname, size, r,
                      err.message);
        ck_assert_msg(buf != NULL, "line %d: create returned no buffer", line);
        return buf;
}

/* Create, expecting failure; returns the error. */
#define create_err(name_, uid_, bname, size, persistent, ttl)                           \
        create_err_at(__LINE__, (name_), (uid_), (bname), (size), (persistent), (ttl))

static inline int create_err_at(int line, const char *name, uid_t uid, const char *bname, uint64_t size,
                                bool persistent, uint64_t ttl) {
        BrokerError err = {};
        Buffer *buf = NULL;
        int r;

        r = broker_create(b, CALLER(name, uid),
                                &(CreateRequest) { .name = bname, .size = size, .persistent = persistent,
                                                   .ttl_usec = ttl },
                                T0, &err, &buf);
        ck_assert_msg(r < 0, "line %d: create(%" PRIu64 ") unexpectedly succeeded: buffer %" PRIu64
                      " of %" PRIu64 " bytes", line, size, buf ? buf->id : 0, buf ? buf->size : 0);
        ck_assert_msg(err.message[0] != 0, "line %d: create(%" PRIu64 ") = %d without a message", line,
                      size, r);
        ck_assert_ptr_null(buf);        /* *ret untouched on failure */
        return r;
}

#define share_ok(buf, name_, uid_, opts, now, out)                                      \
        share_ok_at(__LINE__, (buf), (name_), (uid_), (opts), (now), (out))

static inline void share_ok_at(int line, Buffer *buf, const char *name, uid_t uid,
                               const ShareOptions *opts, uint64_t now, char out[BB_TOKEN_LEN + 1]) {
        BrokerError err = {};
        const char *t = NULL;
        int r;

        r = broker_share(b, CALLER(name, uid), buf, opts, now, &err, &t);
        ck_assert_msg(r == 0, "line %d: share = %d (%s)", line, r, err.message);
        ck_assert_msg(t != NULL, "line %d: share returned no token", line);
        ck_assert_msg(strlen(t) == BB_TOKEN_LEN, "line %d: token '%s' is not %d chars", line, t,
                      BB_TOKEN_LEN);
        memcpy(out, t, BB_TOKEN_LEN + 1);
}

static inline int share_err(Buffer *buf, const char *name, uid_t uid, const ShareOptions *opts) {
        BrokerError err = {};
        const char *t = NULL;
        int r;

        r = broker_share(b, CALLER(name, uid), buf, opts, T0, &err, &t);
        ck_assert_msg(r < 0, "share unexpectedly succeeded");
        ck_assert_msg(err.message[0] != 0, "share = %d without a message", r);
        return r;
}

/* A buffer of UID_A's, created by :1.1 and shared by it with a plain token. */
static inline Buffer *create_shared(const char *bname, uint64_t size, char tok[BB_TOKEN_LEN + 1]) {
        ShareOptions o = share_opts();
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, bname, size, false, 0);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        return buf;
}

/* The seals of fd; a failing F_GET_SEALS fails the test. */
static inline int seals(int fd) {
        int s = fcntl(fd, F_GET_SEALS);

        ck_assert_msg(s >= 0, "F_GET_SEALS: %s", strerror(errno));
        return s;
}

/* Open a token; on success *ret_fd is the (single, memfd) plane's new fd. */
static inline int open_token(const char *name, uid_t uid, const char *token, uint64_t now,
                             Buffer **ret, bool *ret_ro, int *ret_fd) {
        int fds[BB_PLANES_MAX] = FD_ARRAY_INIT;
        BrokerError err = {};
        Buffer *buf = NULL;
        bool ro = false;
        int r;

        r = broker_open(b, CALLER(name, uid), token, now, &err, &buf, &ro, fds);
        if (r < 0) {
                ck_assert_msg(err.message[0] != 0, "open = %d without a message", r);
                return r;
        }
        ck_assert_ptr_nonnull(buf);
        ck_assert_uint_eq(buf->n_planes, 1);
        ck_assert_int_ge(fds[0], 0);
        if (ret)
                *ret = buf;
        if (ret_ro)
                *ret_ro = ro;
        if (ret_fd)
                *ret_fd = fds[0];
        else
                close(fds[0]);
        return r;
}

#define open_ok(name_, uid_, token, now, ret_fd)                                        \
        ({                                                                              \
                Buffer *_b = NULL;                                                      \
                int _r = open_token((name_), (uid_), (token), (now), &_b, NULL, (ret_fd)); \
                ck_assert_msg(_r == 0, "open(%s) = %d", (token), _r);                   \
                _b;                                                                     \
        })

static inline int release(Buffer *buf, const char *name, uid_t uid) {
        BrokerError err = {};
        int r;

        r = broker_release(b, CALLER(name, uid), buf, &err);
        if (r < 0)
                ck_assert_msg(err.message[0] != 0, "release = %d without a message", r);
        return r;
}

static inline int freeze(Buffer *buf, const char *name, uid_t uid) {
        BrokerError err = {};
        int r;

        r = broker_freeze(b, CALLER(name, uid), buf, &err);
        if (r < 0)
                ck_assert_msg(err.message[0] != 0, "freeze = %d without a message", r);
        return r;
}

static inline void vanish(const char *name) {
        Client *c = broker_find_client(b, name);

        ck_assert_msg(c != NULL, "client %s not known", name);
        broker_client_vanished(b, c);
        ck_assert_ptr_null(broker_find_client(b, name));
}

static inline TCase *tcase_new(const char *name) {
        TCase *tc = tcase_create(name);

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, TEST_TIMEOUT);
        return tc;
}
