/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the state kept across a restart (daemon/broker-state.c):
 * what one broker writes, a new one reads back whole (every field of
 * buffers, holds and tokens); a state that is cut short, hostile or of an
 * unknown version restores nothing it cannot vouch for, leaks no fd and
 * leaves no stale fd in the store; quotas are not enforced on restore, but
 * a uid that is over one afterwards gets nothing more. The journal of
 * changes restores what a snapshot does, whatever it was cut short at,
 * and of two stored states the newest whole one is read.
 *
 * The fd store is played by an array of (fd, name) and a recorder of the
 * names the restore asks to unstore.
 */
#include "broker-state.h"
#include "memfd.h"
#include "test-helpers.h"

#define STORE_MAX 64

typedef struct Store {
        int fds[STORE_MAX];
        char *names[STORE_MAX];
        unsigned n;
        char unstored[STORE_MAX][BROKER_STATE_FDNAME_MAX];
        unsigned n_unstored;
        const char *const *on_bus;      /* NULL-terminated; NULL: everyone is */
} Store;

static void store_add(Store *s, int fd, const char *name) {
        ck_assert_uint_lt(s->n, STORE_MAX);
        s->fds[s->n] = fd;
        s->names[s->n] = strdup(name);
        ck_assert_ptr_nonnull(s->names[s->n]);
        s->n++;
}

/* A memfd of one page stored as plane 0 of buffer @id. */
static int store_memfd(Store *s, uint64_t id) {
        char name[BROKER_STATE_FDNAME_MAX];
        int fd = -1;

        ck_assert_int_eq(memfd_new_sealed(&(CreateRequest) { .name = "stored", .size = page_size() }, &fd), 0);
        broker_state_plane_fdname(name, id, 0, false);
        store_add(s, fd, name);
        return fd;
}

/* Every plane fd of every buffer of @from, duplicated, under its name. */
static void store_buffers_of(Store *s, Broker *from) {
        char name[BROKER_STATE_FDNAME_MAX];
        Buffer *buf;

        BROKER_FOREACH_BUFFER(buf, from)
                for (unsigned i = 0; i < buf->n_planes; i++) {
                        int fd = fcntl(buf->planes[i].fd, F_DUPFD_CLOEXEC, 3);

                        ck_assert_int_ge(fd, 0);
                        broker_state_plane_fdname(name, buf->id, i, false);
                        store_add(s, fd, name);
                }
}

static void store_done(Store *s) {
        for (unsigned i = 0; i < s->n; i++) {
                safe_close(s->fds[i]);
                free(s->names[i]);
        }
        s->n = 0;
}

static bool was_unstored(const Store *s, const char *name) {
        for (unsigned i = 0; i < s->n_unstored; i++)
                if (strcmp(s->unstored[i], name) == 0)
                        return true;
        return false;
}

static bool store_on_bus(const char *name, void *userdata) {
        const Store *s = userdata;

        if (!s->on_bus)
                return true;
        for (const char *const *n = s->on_bus; *n; n++)
                if (strcmp(*n, name) == 0)
                        return true;
        return false;
}

static void store_unstore(const char *fdname, void *userdata) {
        Store *s = userdata;

        ck_assert_uint_lt(s->n_unstored, STORE_MAX);
        snprintf(s->unstored[s->n_unstored++], BROKER_STATE_FDNAME_MAX, "%s", fdname);
}

/* Restore @text into @into (a new broker) from the store @s. */
static int restore_text(Broker *into, const char *text, Store *s) {
        FILE *f = fmemopen((void *) text, strlen(text), "r");
        int r;

        ck_assert_ptr_nonnull(f);
        r = broker_state_read(into, f, &(BrokerStateSource) {
                .fds = s->fds,
                .fd_names = s->names,
                .n_fds = s->n,
                .on_bus = store_on_bus,
                .unstore = store_unstore,
                .userdata = s,
        });
        fclose(f);
        /* Every stored fd was claimed or closed. */
        for (unsigned i = 0; i < s->n; i++)
                ck_assert_int_eq(s->fds[i], -1);
        return r;
}

/* The state of @from as a malloc()ed string. */
static char *state_text(Broker *from) {
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(broker_state_write(from, 1, f), 0);
        fclose(f);
        return text;
}

static Broker *new_broker(const BrokerLimits *l) {
        BrokerLimits generous;
        Broker *nb = NULL;

        if (!l) {
                limits_generous(&generous);
                l = &generous;
        }
        ck_assert_int_eq(broker_new(&nb, l, NULL, NULL), 0);
        return nb;
}

/* A persistent memfd buffer restored into @into: @id, @owner, a page. */
static Buffer *restore_one(Broker *into, uint64_t id, uid_t owner, const char *name, bool read_only) {
        RestoredBuffer rb = {
                .id = id, .name = name, .owner = owner, .persistent = true, .read_only = read_only,
                .expire_usec = USEC_INFINITY, .created_usec = 1700000000000000, .n_planes = 1,
        };
        Buffer *buf = NULL;
        int fd = -1;

        ck_assert_int_eq(memfd_new_sealed(&(CreateRequest) { .name = name, .size = page_size() }, &fd), 0);
        rb.planes[0] = (BufferPlane) { .fd = fd, .ro_fd = -1, .length = page_size(), .bytesperline = 7, .offset = 3 };
        ck_assert_int_eq(broker_restore_buffer(into, &rb, &buf), 0);
        return buf;
}

static void assert_same_buffer(const Buffer *x, const Buffer *y) {
        ck_assert_uint_eq(x->id, y->id);
        ck_assert_str_eq(x->name, y->name);
        ck_assert_str_eq(x->kind, y->kind);
        ck_assert_str_eq(x->path, y->path);
        ck_assert_uint_eq(x->size, y->size);
        ck_assert_uint_eq(x->owner_uid, y->owner_uid);
        ck_assert_int_eq(x->persistent, y->persistent);
        ck_assert_int_eq(x->frozen, y->frozen);
        ck_assert_int_eq(x->read_only, y->read_only);
        ck_assert_int_eq(x->prefaulted, y->prefaulted);
        ck_assert_uint_eq(x->page_size, y->page_size);
        ck_assert_uint_eq(x->expire_usec, y->expire_usec);
        ck_assert_uint_eq(x->created_usec, y->created_usec);
        ck_assert_uint_eq(x->n_planes, y->n_planes);
        ck_assert_uint_eq(x->n_fds, y->n_fds);
        ck_assert_uint_eq(x->v4l2_index, y->v4l2_index);
        ck_assert_uint_eq(x->n_holds, y->n_holds);
        for (unsigned i = 0; i < x->n_planes; i++) {
                ck_assert_uint_eq(x->planes[i].length, y->planes[i].length);
                ck_assert_uint_eq(x->planes[i].bytesperline, y->planes[i].bytesperline);
                ck_assert_uint_eq(x->planes[i].offset, y->planes[i].offset);
                ck_assert_int_ge(y->planes[i].fd, 0);
        }
}

static void assert_same_token(const Token *x, const Token *y) {
        ck_assert_str_eq(x->id, y->id);
        ck_assert_uint_eq(x->buffer->id, y->buffer->id);
        ck_assert_uint_eq(x->owner_uid, y->owner_uid);
        ck_assert_uint_eq(x->bound_uid, y->bound_uid);
        ck_assert_int_eq(x->read_only, y->read_only);
        ck_assert_int_eq(x->single_use, y->single_use);
        ck_assert_uint_eq(x->expire_usec, y->expire_usec);
}

/* ======================================================== round trip === */

/* Every field of every record, every flag both ways: what is read back is
 * what was written, and writing it again gives the same text. */
START_TEST(test_round_trip_every_field) {
        char longest[BB_NAME_MAX + 1], tok[BB_TOKEN_LEN + 1];
        const char *const both[] = { ":1.1", ":1.2", NULL };
        _cleanup_free_ char *text = NULL, *again = NULL;
        const ShareOptions every_flag = { .read_only = true, .single_use = true, .bound_uid = UID_C, .ttl_usec = 9 };
        Store s = { .on_bus = both };
        Buffer *x, *y, *z, *fr;
        Broker *nb;
        const Buffer *bx, *by;
        const Token *tx, *ty;

        memset(longest, 'n', BB_NAME_MAX);
        longest[BB_NAME_MAX] = 0;
        longest[0] = '\xc3';            /* UTF-8 and blanks go through hex */
        longest[1] = '\xa9';
        longest[2] = ' ';

        x = create_ok(":1.1", UID_A, longest, 2 * page_size(), true, 5 * USEC_PER_SEC);
        ck_assert_uint_eq(strlen(x->name), BB_NAME_MAX);
        x->prefaulted = true;           /* the flag is what is kept, not the pages */
        share_ok(x, ":1.1", UID_A, &(ShareOptions) { .bound_uid = UID_ANY }, T0, tok);
        open_ok(":1.2", UID_B, tok, T0, NULL);          /* a second holder, of another uid */
        share_ok(x, ":1.1", UID_A, &every_flag, T0 + 1, tok);
        fr = create_ok(":1.1", UID_B, "", page_size(), false, 0);
        ck_assert_int_eq(freeze(fr, ":1.1", UID_B), 0);
        y = restore_one(b, 40, UID_C, "read-only", true);
        share_ok(y, ":1.3", 0, &(ShareOptions) { .bound_uid = UID_A }, T0, tok);
        z = create_ok(NULL, UID_A, "nobody holds it", page_size(), true, 0);
        (void) z;

        text = state_text(b);
        ck_assert_ptr_nonnull(strstr(text, "bufbroker-state 5 42 1\n"));

        nb = new_broker(NULL);
        store_buffers_of(&s, b);
        ck_assert_int_eq(restore_text(nb, text, &s), 0);
        ck_assert_uint_eq(s.n_unstored, 0);

        ck_assert_uint_eq(nb->next_id, b->next_id);
        ck_assert_uint_eq(nb->stats.buffers, b->stats.buffers);
        ck_assert_uint_eq(nb->stats.bytes, b->stats.bytes);
        ck_assert_uint_eq(nb->stats.tokens, b->stats.tokens);
        ck_assert_uint_eq(nb->stats.clients, b->stats.clients);
        ck_assert_uint_eq(nb->stats.fds, b->stats.fds);
        for (bx = TAILQ_FIRST(&b->buffers), by = TAILQ_FIRST(&nb->buffers); bx || by;
             bx = TAILQ_NEXT(bx, link), by = TAILQ_NEXT(by, link)) {
                ck_assert_ptr_nonnull(bx);
                ck_assert_ptr_nonnull(by);
                assert_same_buffer(bx, by);
        }
        for (tx = TAILQ_FIRST(&b->tokens); tx; tx = TAILQ_NEXT(tx, link)) {
                ty = broker_find_token(nb, tx->id, 0);
                ck_assert_ptr_nonnull(ty);
                assert_same_token(tx, ty);
        }
        ck_assert(broker_holds(nb, broker_find_buffer(nb, x->id), ":1.1"));
        ck_assert(broker_holds(nb, broker_find_buffer(nb, x->id), ":1.2"));
        ck_assert_uint_eq(broker_find_client(nb, ":1.2")->uid, UID_B);
        assert_usage(UID_C, 1, page_size(), 0);

        /* Written again: the same text, line for line. */
        again = state_text(nb);
        ck_assert_str_eq(again, text);

        /* The restored fds are the stored ones: what is written is there. */
        ck_assert_int_eq(pwrite(x->planes[0].fd, "kept", 4, 0), 4);
        {
                char got[4] = {};
                ck_assert_int_eq(pread(broker_find_buffer(nb, x->id)->planes[0].fd, got, 4, 0), 4);
                ck_assert_mem_eq(got, "kept", 4);
        }
        broker_free(nb);
        store_done(&s);
}
END_TEST

/* Holders that left while the daemon was down have let go: a buffer only
 * they held is dropped (and its fd unstored), one still held stays. */
START_TEST(test_round_trip_holders_gone) {
        const char *const only_one[] = { ":1.1", NULL };
        _cleanup_free_ char *text = NULL;
        int fds[BB_PLANES_MAX] = FD_ARRAY_INIT;
        Store s = { .on_bus = only_one };
        Buffer *kept, *gone, *both;
        Broker *nb;

        kept = create_ok(":1.1", UID_A, "kept", page_size(), false, 0);
        gone = create_ok(":1.2", UID_A, "gone", page_size(), false, 0);
        both = create_ok(":1.2", UID_A, "both", page_size(), false, 0);
        ck_assert_int_eq(broker_open_fds(b, CALLER(":1.1", UID_A), both, false, NULL, fds), 0);
        close(fds[0]);
        text = state_text(b);

        nb = new_broker(NULL);
        store_buffers_of(&s, b);
        ck_assert_int_eq(restore_text(nb, text, &s), 0);
        ck_assert_ptr_nonnull(broker_find_buffer(nb, kept->id));
        ck_assert_ptr_null(broker_find_buffer(nb, gone->id));
        ck_assert_ptr_nonnull(broker_find_buffer(nb, both->id));
        ck_assert(!broker_holds(nb, broker_find_buffer(nb, both->id), ":1.2"));
        ck_assert_ptr_null(broker_find_client(nb, ":1.2"));
        ck_assert_uint_eq(nb->stats.buffers, 2);
        ck_assert_uint_eq(nb->next_id, b->next_id);
        broker_free(nb);
        store_done(&s);
}
END_TEST

/* ============================================================ hostile === */

#define HEADER "bufbroker-state 2 10\n"
#define HEADER_V3 "bufbroker-state 3 10 1\n"
#define HEADER_V5 "bufbroker-state 5 10 1\n"
/* A version 5 buffer line up to its <kind> <handle> <name>. */
#define BUFFER_7_V5 "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 0 "
/* Hostile lines are met the same in a snapshot of version 2 and in a
 * journal (version 3). */
static const char *const both_headers[] = { HEADER, HEADER_V3 };
#define GOOD_BUFFER "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b657074\n"
#define GOOD_TOKEN "token 7 0123456789abcdef0123456789abcdef 1000 4294967295 0 0 18446744073709551615\n"

/* Restore @text with buffer 7's fd in the store; returns the new broker. */
static Broker *restore_with_buffer_7(const char *text, Store *s, int *ret_r) {
        Broker *nb = new_broker(NULL);

        store_memfd(s, 7);
        *ret_r = restore_text(nb, text, s);
        return nb;
}

/* The same, of the state @before @line @after. */
static Broker *restore_line_in(const char *before, const char *line, const char *after, Store *s, int *ret_r) {
        _cleanup_free_ char *text = NULL;

        ck_assert_int_ge(asprintf(&text, "%s%s%s", before, line, after), 0);
        return restore_with_buffer_7(text, s, ret_r);
}

/* Buffer lines that are cut short, overflow, or lie: each is dropped whole,
 * its fd closed and unstored, and what follows is still read (in a journal
 * too: the token for it is not restored either, its buffer being gone). */
START_TEST(test_hostile_buffer_lines) {
        static const char *const bad[] = {
                "buffer\n",
                "buffer 7\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b65 extra\n",
                "buffer 7 4294967296 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b\n",
                "buffer 7 -1 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b\n",
                "buffer 7 +1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b\n",
                "buffer 7 1000 2 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b\n",
                "buffer 7 1000 1 0 x 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b\n",
                "buffer 7 1000 1 0 0 18446744073709551616 1700000000000000 0 0 1 4096 0 0 6b\n",
                "buffer 7 1000 1 0 0 99999999999999999999999999 1700000000000000 0 0 1 4096 0 0 6b\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 0 6b\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 9 4096 0 0 6b\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 4294967297 4096 0 0 6b\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 2 4096 0 0 6b\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 4294967296 0 6b\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6g\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 +f\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b00\n",
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 0a\n",
                "buffer 0 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b\n",
                /* a V4L2 queue that was not restored */
                "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 3 0 1 4096 0 0 6b\n",
        };

        for (unsigned k = 0; k < 2 * ELEMENTSOF(bad); k++) {
                const char *header = both_headers[k / ELEMENTSOF(bad)];
                unsigned i = k % ELEMENTSOF(bad);
                Store s = {};
                Broker *nb;
                int r;

                /* The bad line, then a good token for it and a good buffer
                 * of another id: reading goes on. */
                store_memfd(&s, 8);
                nb = restore_line_in(header, bad[i],
                                     GOOD_TOKEN "buffer 8 1000 1 0 0 18446744073709551615 1 0 0 1 4096 0 0 -\n",
                                     &s, &r);
                ck_assert_msg(r == 0, "line %u: %d", i, r);
                ck_assert_msg(broker_find_buffer(nb, 7) == NULL, "line %u restored: %s", i, bad[i]);
                ck_assert_msg(broker_find_buffer(nb, 8) != NULL, "line %u stopped the restore", i);
                ck_assert_str_eq(broker_find_buffer(nb, 8)->name, "");
                ck_assert_uint_eq(nb->stats.buffers, 1);
                ck_assert_uint_eq(nb->stats.tokens, 0);
                ck_assert_msg(was_unstored(&s, "buf-7-0"), "line %u: the fd stays in the store", i);
                ck_assert(!was_unstored(&s, "buf-8-0"));
                broker_free(nb);
                store_done(&s);
        }
}
END_TEST

/* Hold and token lines that are cut short or lie restore nothing; the
 * buffer they name stays. */
START_TEST(test_hostile_hold_and_token_lines) {
        static const char *const bad[] = {
                "hold\n",
                "hold 7\n",
                "hold 7 1000\n",
                "hold 7 4294967296 :1.1\n",
                "hold 7 1000 1.1\n",
                "hold 7 1000 :1.1 extra\n",
                "hold 99999999999999999999 1000 :1.1\n",
                "hold 8 1000 :1.1\n",
                "token 7\n",
                "token 7 0123456789abcdef0123456789abcdef 1000 4294967295 0 0\n",
                "token 7 0123456789abcdef0123456789abcdef 1000 4294967295 0 0 1 extra\n",
                "token 7 0123456789ABCDEF0123456789ABCDEF 1000 4294967295 0 0 1\n",
                "token 7 0123456789abcdef0123456789abcde 1000 4294967295 0 0 1\n",
                "token 7 0123456789abcdef0123456789abcdef0 1000 4294967295 0 0 1\n",
                "token 7 0123456789abcdef0123456789abcdeg 1000 4294967295 0 0 1\n",
                "token 7 0123456789abcdef0123456789abcdef 4294967296 4294967295 0 0 1\n",
                "token 7 0123456789abcdef0123456789abcdef 1000 4294967295 2 0 1\n",
                "token 7 0123456789abcdef0123456789abcdef 1000 4294967295 0 -1 1\n",
                "token 7 0123456789abcdef0123456789abcdef 1000 4294967295 0 0 18446744073709551616\n",
                "token 8 0123456789abcdef0123456789abcdef 1000 4294967295 0 0 1\n",
                "frobnicate 7 1 2 3\n",
                "\n",
                "bufbroker-state 2 99\n",
        };

        for (unsigned k = 0; k < 2 * ELEMENTSOF(bad); k++) {
                unsigned i = k % ELEMENTSOF(bad);
                Store s = {};
                int r;
                Broker *nb = restore_line_in(both_headers[k / ELEMENTSOF(bad)], GOOD_BUFFER, bad[i], &s, &r);

                ck_assert_int_eq(r, 0);
                ck_assert_msg(broker_find_buffer(nb, 7) != NULL, "line %u: %s", i, bad[i]);
                ck_assert_msg(nb->stats.tokens == 0 && nb->stats.clients == 0, "line %u restored: %s", i, bad[i]);
                ck_assert_uint_eq(nb->next_id, 10);
                ck_assert_uint_eq(s.n_unstored, 0);
                broker_free(nb);
                store_done(&s);
        }
}
END_TEST

/* Version 4 keeps a buffer's <prefaulted> before its name; versions 2 and
 * 3 have none (not prefaulted), and a line of one version under the
 * header of another is dropped, as is a flag that is not 0 or 1. */
START_TEST(test_prefaulted_by_version) {
        static const struct {
                const char *text;
                int restored;           /* -1: dropped */
        } cases[] = {
                { "bufbroker-state 4 10 1\n"
                  "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 1 6b\n", 1 },
                { "bufbroker-state 4 10 1\n"
                  "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 0 6b\n", 0 },
                { HEADER_V3 GOOD_BUFFER, 0 },
                { HEADER GOOD_BUFFER, 0 },
                { "bufbroker-state 4 10 1\n" GOOD_BUFFER, -1 },
                { HEADER_V3 "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 1 6b\n", -1 },
                { "bufbroker-state 4 10 1\n"
                  "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 2 6b\n", -1 },
                { "bufbroker-state 4 10 1\n"
                  "buffer 7 1000 1 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 x 6b\n", -1 },
        };

        for (unsigned i = 0; i < ELEMENTSOF(cases); i++) {
                Store s = {};
                Buffer *buf;
                int r;
                Broker *nb = restore_with_buffer_7(cases[i].text, &s, &r);

                ck_assert_msg(r == 0, "case %u: %d", i, r);
                buf = broker_find_buffer(nb, 7);
                if (cases[i].restored < 0) {
                        ck_assert_msg(!buf, "case %u restored", i);
                        ck_assert_msg(was_unstored(&s, "buf-7-0"), "case %u: the fd stays in the store", i);
                } else {
                        ck_assert_msg(buf, "case %u not restored", i);
                        ck_assert_int_eq(buf->prefaulted, cases[i].restored);
                        /* Not kept: the file's block size. */
                        ck_assert_uint_eq(buf->page_size, page_size());
                }
                broker_free(nb);
                store_done(&s);
        }
}
END_TEST

/* Version 5 keeps a buffer's <kind> <handle> before its name: a posix
 * buffer comes back with its name; a kind or handle that does not fit is
 * dropped (an unknown kind, v4l2 without a queue, posix without a name). */
START_TEST(test_kind_by_version) {
        static const struct {
                const char *text;
                const char *kind;       /* NULL: dropped */
                const char *shm_name;
        } cases[] = {
                { HEADER_V5 BUFFER_7_V5 "memfd - 6b\n", BB_KIND_MEMFD, NULL },
                { HEADER_V5 BUFFER_7_V5 "posix 2f62 6b\n", BB_KIND_POSIX, "/b" },
                { HEADER_V5 BUFFER_7_V5 "posix - 6b\n", NULL, NULL },
                { HEADER_V5 BUFFER_7_V5 "posix 62 6b\n", NULL, NULL },
                { HEADER_V5 BUFFER_7_V5 "posix 2fz 6b\n", NULL, NULL },
                { HEADER_V5 BUFFER_7_V5 "v4l2 - 6b\n", NULL, NULL },
                { HEADER_V5 BUFFER_7_V5 "bogus - 6b\n", NULL, NULL },
                { HEADER_V5 BUFFER_7_V5 "memfd 6b\n", NULL, NULL },
                { "bufbroker-state 4 10 1\n" BUFFER_7_V5 "memfd - 6b\n", NULL, NULL },
        };

        for (unsigned i = 0; i < ELEMENTSOF(cases); i++) {
                Store s = {};
                Buffer *buf;
                int r;
                Broker *nb = restore_with_buffer_7(cases[i].text, &s, &r);

                ck_assert_msg(r == 0, "case %u: %d", i, r);
                buf = broker_find_buffer(nb, 7);
                if (!cases[i].kind) {
                        ck_assert_msg(!buf, "case %u restored", i);
                        ck_assert_msg(was_unstored(&s, "buf-7-0"), "case %u: the fd stays in the store", i);
                } else {
                        ck_assert_msg(buf, "case %u not restored", i);
                        ck_assert_str_eq(buf->kind, cases[i].kind);
                        if (cases[i].shm_name)
                                ck_assert_str_eq(buf->shm_name, cases[i].shm_name);
                        else
                                ck_assert_ptr_null(buf->shm_name);
                        ck_assert_int_eq(buf->shmid, -1);
                        /* The restore is not a drop: the teardown keeps the name. */
                        nb->keep_objects = true;
                }
                broker_free(nb);
                store_done(&s);
        }
}
END_TEST

/* A state of another version (or none we know) is not parsed on: nothing
 * of it comes back, and every stored fd is let go. */
START_TEST(test_unknown_version_stops) {
        static const char *const headers[] = {
                "bufbroker-state 6 10 1\n",
                "bufbroker-state 3 10\n",
                "bufbroker-state 3 10 1 extra\n",
                "bufbroker-state 3 ten 1\n",
                "bufbroker-state 1 10\n",
                "bufbroker-state 4294967298 10\n",
                "bufbroker-state 2\n",
                "bufbroker-state 2 ten\n",
                "bufbroker-state 2 10 extra\n",
                "bufbroker-state\n",
                "bufbroker-statf 2 10\n",
                "\n",
                "",
        };

        for (unsigned i = 0; i < ELEMENTSOF(headers); i++) {
                Store s = {};
                int r;
                Broker *nb = restore_line_in("", headers[i], GOOD_BUFFER GOOD_TOKEN, &s, &r);

                ck_assert_msg(r == -EPROTO, "header %u: %d", i, r);
                ck_assert_msg(nb->stats.buffers == 0 && nb->stats.tokens == 0, "header %u: parsed on", i);
                ck_assert_uint_eq(nb->next_id, 1);
                ck_assert(was_unstored(&s, "buf-7-0"));
                broker_free(nb);
                store_done(&s);
        }
}
END_TEST

/* A line far longer than any we write is dropped without a look; the
 * lines after it are read. A name of BB_NAME_MAX bytes comes back, one
 * byte more does not. */
START_TEST(test_huge_lines_and_longest_names) {
        _cleanup_free_ char *text = NULL, *huge = NULL, *hex_max = NULL, *hex_over = NULL;
        const size_t huge_len = 1 << 20;
        Store s = {};
        Broker *nb;
        int r;

        huge = malloc(huge_len + 1);
        ck_assert_ptr_nonnull(huge);
        memset(huge, 'a', huge_len);
        memcpy(huge, "buffer 9 ", 9);
        huge[huge_len] = 0;
        hex_max = malloc(2 * BB_NAME_MAX + 1);
        hex_over = malloc(2 * BB_NAME_MAX + 3);
        ck_assert(hex_max && hex_over);
        for (unsigned i = 0; i < BB_NAME_MAX + 1; i++) {
                if (i < BB_NAME_MAX)
                        memcpy(hex_max + 2 * i, "6e", 2);
                memcpy(hex_over + 2 * i, "6e", 2);
        }
        hex_max[2 * BB_NAME_MAX] = 0;
        hex_over[2 * BB_NAME_MAX + 2] = 0;

        ck_assert_int_ge(asprintf(&text, HEADER "%s\n"
                                  "buffer 7 1000 1 0 0 18446744073709551615 1 0 0 1 4096 0 0 %s\n"
                                  "buffer 8 1000 1 0 0 18446744073709551615 1 0 0 1 4096 0 0 %s\n"
                                  "buffer 9 1000 1 0 0 18446744073709551615 1 0 0 1 4096 0 0 %s\n",
                                  huge, hex_max, hex_over, huge + 9), 0);
        store_memfd(&s, 8);
        store_memfd(&s, 9);
        nb = restore_with_buffer_7(text, &s, &r);
        ck_assert_int_eq(r, 0);
        ck_assert_ptr_nonnull(broker_find_buffer(nb, 7));
        ck_assert_uint_eq(strlen(broker_find_buffer(nb, 7)->name), BB_NAME_MAX);
        ck_assert_ptr_null(broker_find_buffer(nb, 8));
        ck_assert_ptr_null(broker_find_buffer(nb, 9));
        ck_assert(was_unstored(&s, "buf-8-0"));
        ck_assert(was_unstored(&s, "buf-9-0"));
        broker_free(nb);
        store_done(&s);
}
END_TEST

/* No state at all: every stored fd is stale. Fds nobody names go too; a
 * buffer without its fd is not restored, nor one whose id is taken. */
START_TEST(test_stale_and_missing_fds) {
        Store s = {};
        Broker *nb = new_broker(NULL);
        int r;

        store_memfd(&s, 7);
        ck_assert_int_eq(broker_state_read(nb, NULL, &(BrokerStateSource) {
                .fds = s.fds, .fd_names = s.names, .n_fds = s.n, .unstore = store_unstore, .userdata = &s,
        }), 0);
        ck_assert_int_eq(s.fds[0], -1);
        ck_assert(was_unstored(&s, "buf-7-0"));
        ck_assert_uint_eq(nb->stats.buffers, 0);
        broker_free(nb);
        store_done(&s);

        /* A stray fd and a buffer whose fd is missing. */
        s = (Store) {};
        store_memfd(&s, 5);
        nb = new_broker(NULL);
        r = restore_text(nb, HEADER "buffer 6 1000 1 0 0 18446744073709551615 1 0 0 1 4096 0 0 -\n", &s);
        ck_assert_int_eq(r, 0);
        ck_assert_uint_eq(nb->stats.buffers, 0);
        ck_assert(was_unstored(&s, "buf-5-0"));
        broker_free(nb);
        store_done(&s);

        /* The same id twice: the second is dropped. */
        s = (Store) {};
        store_memfd(&s, 7);
        nb = new_broker(NULL);
        r = restore_text(nb, HEADER GOOD_BUFFER GOOD_BUFFER, &s);
        ck_assert_int_eq(r, 0);
        ck_assert_uint_eq(nb->stats.buffers, 1);
        ck_assert_uint_eq(s.n_unstored, 0);
        broker_free(nb);
        store_done(&s);
}
END_TEST

/* ============================================================ journal === */

/* A journal on a new memfd, started from the state of the test's broker
 * (sequence 1), attached to it; its fd in *ret_fd. */
static BrokerJournal *journal_start(int *ret_fd) {
        BrokerJournal *j = NULL;
        int fd = memfd_create("test-journal", MFD_CLOEXEC);
        FILE *f;
        off_t size;

        ck_assert_int_ge(fd, 0);
        f = fdopen(fcntl(fd, F_DUPFD_CLOEXEC, 3), "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(broker_state_write(b, 1, f), 0);
        size = ftello(f);
        ck_assert_int_gt(size, 0);
        fclose(f);
        ck_assert_int_eq(broker_journal_new(b, fd, 1, (uint64_t) size, &j), 0);
        *ret_fd = fd;
        return j;
}

/* The whole of @fd, read at offsets (never its file position). */
static char *fd_text(int fd) {
        struct stat st;
        char *text;

        ck_assert_int_eq(fstat(fd, &st), 0);
        text = malloc((size_t) st.st_size + 1);
        ck_assert_ptr_nonnull(text);
        ck_assert_int_eq(pread(fd, text, (size_t) st.st_size, 0), st.st_size);
        text[st.st_size] = 0;
        return text;
}

/* @text restored into a new broker (with the fds of the test's broker),
 * written again. */
static char *restored_text(const char *text) {
        Store s = {};
        Broker *nb = new_broker(NULL);
        char *again;

        store_buffers_of(&s, b);
        ck_assert_int_eq(restore_text(nb, text, &s), 0);
        again = state_text(nb);
        broker_free(nb);
        store_done(&s);
        return again;
}

static size_t count_lines_starting(const char *text, const char *prefix) {
        size_t n = 0, len = strlen(prefix);

        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
                if (strncmp(p, prefix, len) == 0)
                        n++;
        return n;
}

/* Every kind of record: buffers added, changed (persistence ended, frozen)
 * and dropped; holds added and dropped; tokens added, used up and expired.
 * The journal restores the very state a snapshot of the broker does. */
START_TEST(test_journal_replay_every_kind) {
        _cleanup_free_ char *journal = NULL, *snapshot = NULL, *from_journal = NULL, *from_snapshot = NULL;
        const ShareOptions once = { .bound_uid = UID_ANY, .single_use = true };
        const ShareOptions briefly = { .bound_uid = UID_ANY, .ttl_usec = 5 };
        char tok[BB_TOKEN_LEN + 1];
        Buffer *before, *x, *y, *z;
        uint64_t before_id;
        BrokerJournal *j;
        int fd;

        /* Some state before the journal starts: it is in its snapshot. */
        before = create_ok(":1.1", UID_A, "before", page_size(), true, 0);
        share_ok(before, ":1.1", UID_A, &(ShareOptions) { .bound_uid = UID_ANY }, T0, tok);
        j = journal_start(&fd);

        x = create_ok(":1.1", UID_A, "x", page_size(), true, 0);
        share_ok(x, ":1.1", UID_A, &(ShareOptions) { .bound_uid = UID_ANY }, T0, tok);
        open_ok(":1.2", UID_B, tok, T0, NULL);                          /* hold added */
        share_ok(x, ":1.1", UID_A, &once, T0, tok);
        open_ok(":1.3", UID_B, tok, T0, NULL);                          /* token used up */
        share_ok(x, ":1.1", UID_A, &briefly, T0, tok);
        (void) broker_expire(b, T0 + 10);                               /* token expired */
        ck_assert_int_eq(release(x, ":1.1", UID_A), 0);                 /* persistence ended, hold dropped */
        ck_assert_ptr_nonnull(broker_find_buffer(b, x->id));            /* :1.2 and :1.3 hold it */
        y = create_ok(":1.1", UID_B, "y", page_size(), false, 0);
        ck_assert_int_eq(freeze(y, ":1.1", UID_B), 0);                  /* frozen */
        z = create_ok(":1.4", UID_A, "z", page_size(), false, 0);
        vanish(":1.4");                                                  /* buffer dropped */
        (void) z;
        before_id = before->id;
        ck_assert_int_eq(release(before, ":1.1", UID_A), 0);            /* one from the snapshot goes */
        ck_assert_ptr_null(broker_find_buffer(b, before_id));

        journal = fd_text(fd);
        snapshot = state_text(b);
        ck_assert_uint_ge(count_lines_starting(journal, "buffer "), 5);
        ck_assert_uint_ge(count_lines_starting(journal, "-buffer "), 2);
        ck_assert_uint_ge(count_lines_starting(journal, "-hold "), 2);
        ck_assert_uint_ge(count_lines_starting(journal, "-token "), 3);
        ck_assert_uint_ge(count_lines_starting(journal, "hold "), 4);
        ck_assert_uint_ge(count_lines_starting(journal, "token "), 4);

        from_journal = restored_text(journal);
        from_snapshot = restored_text(snapshot);
        ck_assert_str_eq(from_snapshot, snapshot);
        ck_assert_str_eq(from_journal, snapshot);

        broker_journal_free(j);
        ck_assert_ptr_null(b->state_changed);
        close(fd);
}
END_TEST

/* Revoked tokens (one, and all of a buffer; some from the snapshot, some
 * from the journal) are gone after a restart; the others are back. */
START_TEST(test_journal_revocation) {
        _cleanup_free_ char *journal = NULL, *snapshot = NULL, *from_journal = NULL;
        const ShareOptions any = { .bound_uid = UID_ANY };
        char old_kept[BB_TOKEN_LEN + 1], old_revoked[BB_TOKEN_LEN + 1], kept[BB_TOKEN_LEN + 1];
        char revoked[BB_TOKEN_LEN + 1], all1[BB_TOKEN_LEN + 1], all2[BB_TOKEN_LEN + 1];
        BrokerError err = {};
        Buffer *x, *y;
        BrokerJournal *j;
        unsigned n;
        Store s = {};
        Broker *nb;
        int fd;

        x = create_ok(":1.1", UID_A, "x", page_size(), true, 0);
        y = create_ok(":1.1", UID_A, "y", page_size(), true, 0);
        share_ok(x, ":1.1", UID_A, &any, T0, old_kept);
        share_ok(x, ":1.1", UID_A, &any, T0, old_revoked);
        share_ok(y, ":1.1", UID_A, &any, T0, all1);
        j = journal_start(&fd);

        share_ok(x, ":1.1", UID_A, &any, T0, kept);
        share_ok(x, ":1.1", UID_A, &any, T0, revoked);
        share_ok(y, ":1.1", UID_A, &any, T0, all2);
        ck_assert_int_eq(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), x, old_revoked, T0, &err), 0);
        ck_assert_int_eq(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), x, revoked, T0, &err), 0);
        ck_assert_int_eq(broker_revoke_buffer_tokens(b, CALLER(":1.1", UID_A), y, T0, &err, &n), 0);
        ck_assert_uint_eq(n, 2);

        journal = fd_text(fd);
        snapshot = state_text(b);
        ck_assert_uint_eq(count_lines_starting(journal, "-token "), 4);
        from_journal = restored_text(journal);
        ck_assert_str_eq(from_journal, snapshot);

        /* And in a restored broker: revoked ones are unknown, the rest open. */
        nb = new_broker(NULL);
        store_buffers_of(&s, b);
        ck_assert_int_eq(restore_text(nb, journal, &s), 0);
        ck_assert_ptr_nonnull(broker_find_token(nb, old_kept, T0));
        ck_assert_ptr_nonnull(broker_find_token(nb, kept, T0));
        ck_assert_ptr_null(broker_find_token(nb, old_revoked, T0));
        ck_assert_ptr_null(broker_find_token(nb, revoked, T0));
        ck_assert_ptr_null(broker_find_token(nb, all1, T0));
        ck_assert_ptr_null(broker_find_token(nb, all2, T0));
        broker_free(nb);
        store_done(&s);

        broker_journal_free(j);
        close(fd);
}
END_TEST

/* A record cut short by a crash (no newline) is not read; what came
 * before it is. */
START_TEST(test_journal_torn_record) {
        static const char *const torn[] = {
                GOOD_TOKEN,
                "-buffer 7\n",
                "buffer 7 1000 0 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b657074\n",
                "hold 7 1000 :1.1\n",
        };

        for (unsigned i = 0; i < ELEMENTSOF(torn); i++) {
                _cleanup_free_ char *cut = strndup(torn[i], strlen(torn[i]) - 1);
                Store s = {};
                Broker *nb;
                int r;

                nb = restore_line_in(HEADER_V3, GOOD_BUFFER, cut, &s, &r);
                ck_assert_int_eq(r, 0);
                ck_assert_msg(broker_find_buffer(nb, 7) != NULL, "record %u", i);
                ck_assert(broker_find_buffer(nb, 7)->persistent);
                ck_assert_uint_eq(nb->stats.tokens, 0);
                ck_assert_uint_eq(nb->stats.clients, 0);
                broker_free(nb);
                store_done(&s);
        }
}
END_TEST

/* The journal is full past twice its snapshot and the slack, not before;
 * the snapshot written then (the new state) restores what the journal
 * does. */
START_TEST(test_journal_compaction) {
        _cleanup_free_ char *journal = NULL, *snapshot = NULL, *from_journal = NULL, *from_snapshot = NULL;
        char tok[BB_TOKEN_LEN + 1];
        BrokerJournal *j;
        struct stat st;
        off_t start;
        unsigned rounds = 0;
        int fd;

        for (unsigned i = 0; i < 50; i++)
                create_ok(":1.1", UID_A, "kept", page_size(), true, 0);
        j = journal_start(&fd);
        ck_assert_int_eq(fstat(fd, &st), 0);
        start = st.st_size;
        ck_assert_uint_eq(broker_journal_seq(j), 1);

        while (!broker_journal_full(j)) {
                Buffer *buf = create_ok(":1.1", UID_A, "churn", page_size(), false, 0);

                share_ok(buf, ":1.1", UID_A, &(ShareOptions) { .bound_uid = UID_ANY }, T0, tok);
                ck_assert_int_eq(release(buf, ":1.1", UID_A), 0);
                ck_assert_int_eq(fstat(fd, &st), 0);
                ck_assert_int_le(st.st_size, 2 * start + BROKER_JOURNAL_SLACK + 4096);
                rounds++;
        }
        ck_assert_int_gt(st.st_size, 2 * start + BROKER_JOURNAL_SLACK);
        ck_assert_uint_gt(rounds, 10);

        journal = fd_text(fd);
        snapshot = state_text(b);                       /* the compacted state */
        ck_assert_uint_eq(count_lines_starting(snapshot, "buffer "), 50);
        ck_assert_uint_lt(strlen(snapshot), strlen(journal) / 2);
        from_journal = restored_text(journal);
        from_snapshot = restored_text(snapshot);
        ck_assert_str_eq(from_snapshot, snapshot);
        ck_assert_str_eq(from_journal, snapshot);
        broker_journal_free(j);
        close(fd);
}
END_TEST

/* A record that cannot be appended stops the journal (no gap), and asks
 * for a new snapshot. */
START_TEST(test_journal_write_failure) {
        _cleanup_free_ char *text = NULL;
        BrokerJournal *j;
        int fd;

        /* Sealed against writes: every pwrite() fails. */
        fd = memfd_create("test-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
        ck_assert_int_eq(broker_journal_new(b, fd, 1, 0, &j), 0);
        ck_assert_int_eq(broker_journal_new(b, fd, 1, 0, &(BrokerJournal *) { NULL }), -EBUSY);
        ck_assert(!broker_journal_full(j));
        create_ok(":1.1", UID_A, "unjournaled", page_size(), false, 0);
        ck_assert(broker_journal_full(j));
        text = fd_text(fd);
        ck_assert_str_eq(text, "");
        broker_journal_free(j);
        close(fd);
}
END_TEST

static FILE *text_file(const char *text) {
        FILE *f = fmemopen((void *) text, strlen(text), "r");

        ck_assert_ptr_nonnull(f);
        return f;
}

/* Of the states stored (two names, and "state" of version 2), the valid
 * one with the highest sequence is read; one not valid (never completely
 * stored) is passed over; one of an unknown version stops everything. */
START_TEST(test_two_slots_sequence) {
        static const struct {
                const char *a, *b;
                int pick;
        } cases[] = {
                { "bufbroker-state 3 10 4\n", "bufbroker-state 3 12 5\n", 1 },
                { "bufbroker-state 3 12 5\n", "bufbroker-state 3 10 4\n", 0 },
                { "bufbroker-state 3 10 4\n" GOOD_BUFFER, "bufbroker-state 3 12 5", 0 },
                { "bufbroker-state 3 10 4\n", "bufbroker-state 3 12\n", 0 },
                { "garbage\n", "bufbroker-state 3 10 4\n", 1 },
                { "bufbroker-state 3 10 4\n", "", 0 },
                { "bufbroker-state 2 10\n", "bufbroker-state 3 10 1\n", 1 },
                { "bufbroker-state 3 10 1\n", "bufbroker-state 2 10\n", 0 },
                { "bufbroker-state 2 10\n" GOOD_BUFFER, "", 0 },
                { "bufbroker-state 3 10 4\n", "bufbroker-state 6 12 5\n", -EPROTO },
                { "bufbroker-state 9\n", "bufbroker-state 3 12 5\n", -EPROTO },
                { "", "garbage", -ENOENT },
        };

        for (unsigned i = 0; i < ELEMENTSOF(cases); i++) {
                FILE *f[2] = { text_file(cases[i].a), text_file(cases[i].b) };

                ck_assert_msg(broker_state_pick(f, 2) == cases[i].pick, "case %u: %d", i, broker_state_pick(f, 2));
                fclose(f[0]);
                fclose(f[1]);
        }
        {
                FILE *f = text_file("bufbroker-state 3 10 77\n");
                unsigned version;
                uint64_t seq;

                ck_assert_int_eq(broker_state_header(f, &version, &seq), 0);
                ck_assert_uint_eq(version, 3);
                ck_assert_uint_eq(seq, 77);
                ck_assert_int_eq(broker_state_pick(&f, 1), 0);
                fclose(f);
        }
}
END_TEST

/* @text with each buffer line as version 2 and 3 wrote it: without its
 * <prefaulted> <kind> <handle>, the fields before the name. */
static char *without_prefaulted(const char *text) {
        char *out = calloc(1, strlen(text) + 1), *o = out;

        ck_assert_ptr_nonnull(out);
        for (const char *line = text, *end; *line; line = end + 1) {
                end = strchr(line, '\n');
                ck_assert_ptr_nonnull(end);
                if (strncmp(line, "buffer ", 7) == 0) {
                        const char *name = memrchr(line, ' ', end - line);
                        const char *handle = memrchr(line, ' ', name - line);
                        const char *kind = memrchr(line, ' ', handle - line);
                        const char *flag = memrchr(line, ' ', kind - line);

                        ck_assert(flag && kind - flag == 2);
                        ck_assert(strncmp(kind, " memfd -", name - kind) == 0);
                        memcpy(o, line, flag - line);
                        o += flag - line;
                        line = name;
                }
                memcpy(o, line, end + 1 - line);
                o += end + 1 - line;
        }
        return out;
}

/* A state of version 2 (a daemon upgraded across a restart) comes back:
 * the snapshot we write now, with the old header, restores the same. */
START_TEST(test_version_2_restores) {
        _cleanup_free_ char *text = NULL, *old = NULL, *again = NULL, *v2 = NULL;
        const ShareOptions to_b = { .bound_uid = UID_B, .read_only = true };
        char tok[BB_TOKEN_LEN + 1];
        Buffer *x;

        x = create_ok(":1.1", UID_A, "old", page_size(), true, 0);
        share_ok(x, ":1.1", UID_A, &to_b, T0, tok);
        open_ok(":1.2", UID_B, tok, T0, NULL);
        create_ok(":1.2", UID_B, "other", page_size(), false, 0);
        text = state_text(b);
        v2 = without_prefaulted(strchr(text, '\n') + 1);
        ck_assert_int_ge(asprintf(&old, "bufbroker-state 2 %" PRIu64 "\n%s", b->next_id, v2), 0);
        again = restored_text(old);
        ck_assert_str_eq(again, text);
}
END_TEST

/* Journal records that name nothing, or are of no kind we know, are
 * skipped; a record adding what is there replaces it (last one wins). */
START_TEST(test_hostile_journal_records) {
        static const char *const skipped[] = {
                "-buffer 99\n",
                "-buffer\n",
                "-buffer x\n",
                "-buffer 7 extra\n",
                "-hold 7 :1.9\n",
                "-hold 7\n",
                "-token ffffffffffffffffffffffffffffffff\n",
                "-token\n",
                "-frobnicate 7\n",
                "frobnicate 7 1 2 3\n",
                "-\n",
                "+buffer 7\n",
        };

        for (unsigned i = 0; i < ELEMENTSOF(skipped); i++) {
                Store s = {};
                int r;
                Broker *nb = restore_line_in(HEADER_V3 GOOD_BUFFER GOOD_TOKEN "hold 7 1000 :1.1\n", skipped[i], "", &s,
                                             &r);

                ck_assert_int_eq(r, 0);
                ck_assert_msg(broker_find_buffer(nb, 7) != NULL, "record %u: %s", i, skipped[i]);
                ck_assert_msg(nb->stats.tokens == 1 && nb->stats.clients == 1, "record %u: %s", i, skipped[i]);
                ck_assert_uint_eq(s.n_unstored, 0);
                ck_assert_uint_eq(nb->next_id, i == 0 ? 100 : 10);
                broker_free(nb);
                store_done(&s);
        }

        /* Added twice: the last one counts. */
        {
                Store s = {};
                int r;
                Broker *nb = restore_line_in(HEADER_V3 GOOD_BUFFER GOOD_TOKEN "hold 7 1000 :1.1\n",
                                             "buffer 7 1000 0 1 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6e6577\n"
                                             "token 7 0123456789abcdef0123456789abcdef 1000 4294967295 1 0 18446744073709551615\n"
                                             "hold 7 1000 :1.1\n",
                                             "", &s, &r);
                Buffer *buf = broker_find_buffer(nb, 7);
                const Token *t = broker_find_token(nb, "0123456789abcdef0123456789abcdef", 0);

                ck_assert_int_eq(r, 0);
                ck_assert_ptr_nonnull(buf);
                ck_assert_str_eq(buf->name, "new");
                ck_assert(!buf->persistent);
                ck_assert(buf->frozen);
                ck_assert_uint_eq(buf->n_holds, 1);
                ck_assert_ptr_nonnull(t);
                ck_assert(t->read_only);
                ck_assert_uint_eq(nb->stats.tokens, 1);
                broker_free(nb);
                store_done(&s);
        }

        /* Deleted, then added again: there again (a hostile journal; ids
         * are never reused by the daemon). Its hold of before is not. */
        {
                Store s = {};
                int r;
                Broker *nb = restore_line_in(HEADER_V3 GOOD_BUFFER "hold 7 1000 :1.1\n",
                                             "-buffer 7\n-hold 7 :1.1\n", GOOD_BUFFER, &s, &r);

                ck_assert_int_eq(r, 0);
                ck_assert_ptr_nonnull(broker_find_buffer(nb, 7));
                ck_assert_uint_eq(nb->stats.clients, 0);
                broker_free(nb);
                store_done(&s);
        }
}
END_TEST

/* ============================================================= quotas === */

/* Restore ignores today's quotas (the buffers and tokens existed), but the
 * uid is then over its limits and gets nothing more until it is under. */
START_TEST(test_restore_over_quota) {
        _cleanup_free_ char *text = NULL;
        BrokerLimits l;
        Store s = { .on_bus = NULL };
        char tok[BB_TOKEN_LEN + 1];
        Broker *old_b = b;
        Buffer *buf = NULL;

        for (uint64_t id = 1; id <= 3; id++)
                buf = create_ok(":1.1", UID_A, "old", page_size(), true, 0);
        share_ok(buf, ":1.1", UID_A, &(ShareOptions) { .bound_uid = UID_ANY }, T0, tok);
        share_ok(buf, ":1.1", UID_A, &(ShareOptions) { .bound_uid = UID_ANY }, T0, tok);
        text = state_text(b);

        limits_generous(&l);
        l.max_buffers_per_uid = 2;
        l.max_tokens_per_uid = 1;
        b = new_broker(&l);
        store_buffers_of(&s, old_b);
        ck_assert_int_eq(restore_text(b, text, &s), 0);
        assert_usage(UID_A, 3, 3 * page_size(), 2);
        ck_assert(broker_holds(b, broker_find_buffer(b, 1), ":1.1"));

        ck_assert_int_eq(create_err(":1.1", UID_A, "more", 1, false, 0), -EDQUOT);
        ck_assert_int_eq(share_err(broker_find_buffer(b, 3), ":1.1", UID_A, &(ShareOptions) { .bound_uid = UID_ANY }),
                         -EDQUOT);
        assert_usage(UID_A, 3, 3 * page_size(), 2);
        /* Another uid is not held back by it. */
        create_ok(":1.2", UID_B, "fine", 1, false, 0);

        /* Under the limit again, it is served again. */
        ck_assert_int_eq(release(broker_find_buffer(b, 1), ":1.1", UID_A), 0);
        ck_assert_int_eq(release(broker_find_buffer(b, 2), ":1.1", UID_A), 0);
        create_ok(":1.1", UID_A, "again", 1, false, 0);

        broker_free(b);
        b = old_b;
        store_done(&s);
}
END_TEST

static Suite *suite_state(void) {
        Suite *s = suite_create("state");
        TCase *tc;

        tc = tcase_new("round trip");
        tcase_add_test(tc, test_round_trip_every_field);
        tcase_add_test(tc, test_round_trip_holders_gone);
        suite_add_tcase(s, tc);

        tc = tcase_new("hostile");
        tcase_add_test(tc, test_hostile_buffer_lines);
        tcase_add_test(tc, test_hostile_hold_and_token_lines);
        tcase_add_test(tc, test_unknown_version_stops);
        tcase_add_test(tc, test_prefaulted_by_version);
        tcase_add_test(tc, test_kind_by_version);
        tcase_add_test(tc, test_huge_lines_and_longest_names);
        tcase_add_test(tc, test_stale_and_missing_fds);
        suite_add_tcase(s, tc);

        tc = tcase_new("journal");
        tcase_add_test(tc, test_journal_replay_every_kind);
        tcase_add_test(tc, test_journal_revocation);
        tcase_add_test(tc, test_journal_torn_record);
        tcase_add_test(tc, test_journal_compaction);
        tcase_add_test(tc, test_journal_write_failure);
        tcase_add_test(tc, test_two_slots_sequence);
        tcase_add_test(tc, test_version_2_restores);
        tcase_add_test(tc, test_hostile_journal_records);
        suite_add_tcase(s, tc);

        tc = tcase_new("quotas");
        tcase_add_test(tc, test_restore_over_quota);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr;
        int failed;

        sr = srunner_create(suite_state());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
