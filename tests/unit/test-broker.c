/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the broker core (daemon/broker.c) with no D-Bus: the buffer
 * registry, holders, share tokens, quotas, expiry and fd hygiene. One Suite per
 * concern; the memfd properties are in test-memfd.c.
 */
#include <ctype.h>
#include "memfd.h"
#include "test-helpers.h"

/* ========================================================== registry === */

START_TEST(test_limits_default) {
        BrokerLimits l;

        memset(&l, 0, sizeof(l));
        broker_limits_default(&l);
        /* The Limits property never shows 0: every limit is finite. */
        ck_assert_uint_ne(l.max_buffer_size, 0);
        ck_assert_uint_ne(l.max_buffers_per_uid, 0);
        ck_assert_uint_ne(l.max_bytes_per_uid, 0);
        ck_assert_uint_ne(l.max_tokens_per_uid, 0);
        ck_assert_uint_ne(l.max_buffers, 0);
        ck_assert_uint_ne(l.max_bytes, 0);
        ck_assert_uint_ne(l.max_tokens, 0);
        ck_assert_uint_ne(l.max_buffer_size, UINT64_MAX);
        ck_assert_uint_ne(l.max_bytes_per_uid, UINT64_MAX);
        ck_assert_uint_ne(l.max_bytes, UINT64_MAX);
        ck_assert_uint_ge(l.max_buffer_size, page_size());
}
END_TEST

START_TEST(test_new_is_empty) {
        BrokerError err = {};

        assert_stats(0, 0, 0, 0);
        ck_assert_ptr_null(broker_find_buffer(b, 0));
        ck_assert_ptr_null(broker_find_buffer(b, 1));
        ck_assert_ptr_null(broker_find_buffer(b, UINT64_MAX));
        ck_assert_ptr_null(broker_find_client(b, ":1.1"));
        ck_assert_uint_eq(broker_next_deadline(b), USEC_INFINITY);
        ck_assert_uint_eq(broker_expire(b, T0), USEC_INFINITY);
        assert_usage(UID_A, 0, 0, 0);
        ck_assert_int_eq(broker_validate_name("x", &err), 0);
}
END_TEST

START_TEST(test_create_basic) {
        char path[128];
        uint64_t before = realtime_usec(), after;
        struct stat st;
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "camera0", 4 * page_size(), false, 0);
        after = realtime_usec();

        ck_assert_uint_gt(buf->id, 0);
        ck_assert_ptr_eq(buf->broker, b);
        ck_assert_str_eq(buf->name, "camera0");
        ck_assert_str_eq(buf->kind, BB_KIND_MEMFD);
        snprintf(path, sizeof(path), BB_BUFFER_PATH_PREFIX "/%" PRIu64, buf->id);
        ck_assert_str_eq(buf->path, path);
        ck_assert_uint_eq(buf->size, 4 * page_size());
        ck_assert_uint_eq(buf->owner_uid, UID_A);
        ck_assert(!buf->persistent);
        ck_assert(!buf->frozen);
        ck_assert_uint_eq(buf->expire_usec, USEC_INFINITY);
        ck_assert_uint_ge(buf->created_usec, before);
        ck_assert_uint_le(buf->created_usec, after);
        ck_assert_uint_eq(buf->n_planes, 1);
        ck_assert_int_ge(buf->planes[0].fd, 0);
        ck_assert_uint_eq(buf->planes[0].length, buf->size);
        ck_assert_int_eq(fstat(buf->planes[0].fd, &st), 0);
        ck_assert_uint_eq((uint64_t) st.st_size, buf->size);
        ck_assert_int_eq(fcntl(buf->planes[0].fd, F_GETFL) & O_ACCMODE, O_RDWR);
        ck_assert(fcntl(buf->planes[0].fd, F_GETFD) & FD_CLOEXEC);
        ck_assert_uint_eq(buf->n_holds, 1);

        ck_assert_ptr_eq(broker_find_buffer(b, buf->id), buf);
        assert_stats(1, 4 * page_size(), 1, 0);
        assert_usage(UID_A, 1, 4 * page_size(), 0);
        assert_usage(UID_B, 0, 0, 0);
        ck_assert_uint_eq(rec.added, 1);
}
END_TEST

START_TEST(test_create_rounds_up_to_page) {
        const uint64_t ps = page_size();
        const struct {
                uint64_t asked, real;
        } cases[] = {
                { 1, ps },
                { ps - 1, ps },
                { ps, ps },
                { ps + 1, 2 * ps },
                { 3 * ps - 1, 3 * ps },
                { 5 * ps, 5 * ps },
        };
        uint64_t total = 0;

        for (unsigned i = 0; i < ELEMENTSOF(cases); i++) {
                struct stat st;
                Buffer *buf;

                buf = create_ok(":1.1", UID_A, "r", cases[i].asked, false, 0);
                /* The reply's size is the real size: the one charged and mapped. */
                ck_assert_uint_eq(buf->size, cases[i].real);
                ck_assert_uint_eq(buf->planes[0].length, cases[i].real);
                ck_assert_int_eq(fstat(buf->planes[0].fd, &st), 0);
                ck_assert_uint_eq((uint64_t) st.st_size, cases[i].real);
                total += cases[i].real;
                assert_stats(i + 1, total, 1, 0);
                assert_usage(UID_A, i + 1, total, 0);
        }
}
END_TEST

START_TEST(test_ids_monotonic_unique) {
        Buffer *bufs[40];
        uint64_t ids[40], max_id = 0;
        Buffer *it;
        uint64_t prev = 0;

        for (unsigned i = 0; i < ELEMENTSOF(bufs); i++) {
                bufs[i] = create_ok(":1.1", UID_A, "m", 1, false, 0);
                ids[i] = bufs[i]->id;
                ck_assert_uint_gt(ids[i], max_id);
                max_id = ids[i];
        }
        for (unsigned i = 0; i < ELEMENTSOF(bufs); i++)
                ck_assert_ptr_eq(broker_find_buffer(b, ids[i]), bufs[i]);

        /* Release every other one: their ids are gone and never come back. */
        for (unsigned i = 0; i < ELEMENTSOF(bufs); i += 2) {
                ck_assert_int_eq(release(bufs[i], ":1.1", UID_A), 0);
                ck_assert_ptr_null(broker_find_buffer(b, ids[i]));
                ck_assert_ptr_eq(broker_find_buffer(b, ids[i + 1]), bufs[i + 1]);
        }
        assert_stats(20, 20 * page_size(), 1, 0);
        for (unsigned i = 0; i < 10; i++) {
                Buffer *buf = create_ok(":1.1", UID_A, "n", 1, false, 0);

                ck_assert_uint_gt(buf->id, max_id);
                max_id = buf->id;
                ck_assert_ptr_eq(broker_find_buffer(b, buf->id), buf);
        }
        for (unsigned i = 0; i < ELEMENTSOF(bufs); i += 2)
                ck_assert_ptr_null(broker_find_buffer(b, ids[i]));

        /* The registry iterates in id order. */
        BROKER_FOREACH_BUFFER(it, b) {
                ck_assert_uint_gt(it->id, prev);
                prev = it->id;
        }
        ck_assert_ptr_null(broker_find_buffer(b, max_id + 1));
}
END_TEST

static const char *const bad_names[] = {
        "\n",
        "a\nb",
        "\x01",
        "tab\there",
        "x\x7f",
        "\x1b[31mred",
        "cr\r",
};

START_TEST(test_validate_name) {
        BrokerError err = {};
        char name[1024];
        int r;

        ck_assert_int_eq(broker_validate_name("a", &err), 0);
        ck_assert_int_eq(broker_validate_name("camera 0 / frame-pool_#1", &err), 0);
        ck_assert_int_eq(broker_validate_name("caf\xc3\xa9", &err), 0);     /* UTF-8 is not control */

        memset(name, 'a', BB_NAME_MAX);
        name[BB_NAME_MAX] = 0;
        ck_assert_int_eq(broker_validate_name(name, &err), 0);
        for (size_t len = BB_NAME_MAX + 1; len < sizeof(name); len += 300) {
                memset(name, 'a', len);
                name[len] = 0;
                assert_fails(broker_validate_name(name, &err), EINVAL, err);
        }
        for (unsigned i = 0; i < ELEMENTSOF(bad_names); i++)
                assert_fails(broker_validate_name(bad_names[i], &err), EINVAL, err);

        /* Every control character, alone and inside a name. */
        for (int c = 1; c < 0x20; c++) {
                snprintf(name, sizeof(name), "ab%ccd", c);
                assert_fails(broker_validate_name(name, &err), EINVAL, err);
        }

        /* The empty name: the contract leaves it open; it must be one of the two. */
        err.message[0] = 0;
        r = broker_validate_name("", &err);
        ck_assert(r == 0 || r == -EINVAL);
}
END_TEST

START_TEST(test_create_invalid_name_leaves_nothing) {
        BrokerError err = {};
        char name[BB_NAME_MAX + 2];
        Buffer *buf = NULL;
        int fds = count_fds(), r;

        for (unsigned i = 0; i < ELEMENTSOF(bad_names); i++) {
                ck_assert_int_eq(create_err(":1.1", UID_A, bad_names[i], page_size(), false, 0), -EINVAL);
                ck_assert_int_eq(create_err(":1.1", UID_A, bad_names[i], page_size(), true, 0), -EINVAL);
        }
        memset(name, 'n', BB_NAME_MAX + 1);
        name[BB_NAME_MAX + 1] = 0;
        ck_assert_int_eq(create_err(":1.1", UID_A, name, page_size(), false, 0), -EINVAL);

        assert_stats(0, 0, 0, 0);
        assert_usage(UID_A, 0, 0, 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.1"));
        ck_assert_uint_eq(rec.added, 0);
        ck_assert_uint_eq(rec.dropped, 0);
        ck_assert_int_eq(count_fds(), fds);

        /* Exactly BB_NAME_MAX bytes is fine. */
        name[BB_NAME_MAX] = 0;
        buf = create_ok(":1.1", UID_A, name, page_size(), false, 0);
        ck_assert_uint_eq(strlen(buf->name), BB_NAME_MAX);

        /* The empty name: create agrees with broker_validate_name. */
        buf = NULL;
        r = broker_create(b, CALLER(":1.1", UID_A),
                                &(CreateRequest) { .name = "", .size = page_size() }, T0, &err, &buf);
        ck_assert_int_eq(r, broker_validate_name("", &err));
        if (r == 0)
                assert_stats(2, 2 * page_size(), 1, 0);
        else
                assert_stats(1, page_size(), 1, 0);
}
END_TEST

START_TEST(test_create_size_zero) {
        int fds = count_fds();

        ck_assert_int_eq(create_err(":1.1", UID_A, "zero", 0, false, 0), -EINVAL);
        ck_assert_int_eq(create_err(":1.1", UID_A, "zero", 0, true, 0), -EINVAL);
        assert_stats(0, 0, 0, 0);
        assert_usage(UID_A, 0, 0, 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.1"));
        ck_assert_uint_eq(rec.added, 0);
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_create_size_over_limit) {
        const uint64_t ps = page_size();
        BrokerLimits l;
        int fds;

        limits_generous(&l);
        l.max_buffer_size = 16 * ps;
        broker_restart(&l);
        fds = count_fds();

        ck_assert_int_eq(create_err(":1.1", UID_A, "big", 16 * ps + 1, false, 0), -EDQUOT);
        ck_assert_int_eq(create_err(":1.1", UID_A, "big", 17 * ps, false, 0), -EDQUOT);
        ck_assert_int_eq(create_err(":1.1", UID_A, "big", UINT64_C(1) << 40, true, 0), -EDQUOT);
        assert_stats(0, 0, 0, 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.1"));
        ck_assert_int_eq(count_fds(), fds);

        /* The limit itself, and just under it (rounded up to it), are fine. */
        create_ok(":1.1", UID_A, "max", 16 * ps, false, 0);
        create_ok(":1.1", UID_A, "max", 15 * ps + 1, false, 0);
        assert_stats(2, 32 * ps, 1, 0);
}
END_TEST

START_TEST(test_create_size_near_2_64) {
        int fds = count_fds();

        for (unsigned i = 0; i < ELEMENTSOF(huge_sizes); i++) {
                int r = create_err(":1.1", UID_A, "huge", huge_sizes[i], false, 0);

                ck_assert_msg(r == -EDQUOT || r == -EINVAL, "size %" PRIu64 ": %d", huge_sizes[i], r);
                assert_stats(0, 0, 0, 0);
        }
        assert_usage(UID_A, 0, 0, 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.1"));
        ck_assert_uint_eq(rec.added, 0);
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_caller_without_name) {
        Buffer *buf;

        /* Not a bus client: never becomes a holder, so only persistent makes sense. */
        buf = create_ok(NULL, UID_A, "orphan", page_size(), true, 0);
        ck_assert_uint_eq(buf->n_holds, 0);
        ck_assert(buf->persistent);
        assert_stats(1, page_size(), 0, 0);
        ck_assert_uint_eq(rec.added, 0);
        ck_assert_uint_eq(broker_expire(b, T0 + USEC_PER_HOUR), USEC_INFINITY);
        ck_assert_ptr_eq(broker_find_buffer(b, buf->id), buf);

        /* The owner uid releases it: persistence ends (told), then it goes. */
        ck_assert_int_eq(release(buf, NULL, UID_A), 0);
        assert_stats(0, 0, 0, 0);
        ck_assert_uint_eq(rec.dropped, 1);
        ck_assert_int_eq(rec.last_reason, BROKER_DROP_RELEASED);
        ck_assert_uint_eq(rec.changed, 1);
        ck_assert_str_eq(rec.last_changed, BB_PROP_PERSISTENT);
}
END_TEST

START_TEST(test_strings_are_copied) {
        char *cname = strdup(":1.42"), *bname = strdup("copied");
        uint64_t id;
        Buffer *buf;

        ck_assert_ptr_nonnull(cname);
        ck_assert_ptr_nonnull(bname);
        buf = create_ok(cname, UID_A, bname, 1, false, 0);
        id = buf->id;
        memset(cname, 'X', strlen(cname));
        memset(bname, 'X', strlen(bname));
        free(cname);
        free(bname);

        ck_assert_str_eq(buf->name, "copied");
        ck_assert_ptr_nonnull(broker_find_client(b, ":1.42"));
        ck_assert_str_eq(broker_find_client(b, ":1.42")->name, ":1.42");
        ck_assert_uint_eq(broker_find_client(b, ":1.42")->uid, UID_A);
        vanish(":1.42");
        ck_assert_uint_eq(rec.dropped, 1);
        ck_assert_uint_eq(rec.dropped_ids[0], id);
        ck_assert_int_eq(rec.last_reason, BROKER_DROP_HOLDERS_GONE);
}
END_TEST

START_TEST(test_privileged_and_may_see) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf;

        ck_assert(broker_is_privileged(b, 0));
        ck_assert(broker_is_privileged(b, b->self_uid));
        ck_assert(!broker_is_privileged(b, UID_A));
        ck_assert(!broker_is_privileged(b, UID_B));

        buf = create_ok(":1.1", UID_A, "seen", 1, false, 0);
        ck_assert(broker_may_see(b, CALLER(":1.1", UID_A), buf));
        ck_assert(broker_may_see(b, CALLER(":1.9", UID_A), buf));      /* owner uid */
        ck_assert(broker_may_see(b, CALLER(":1.8", 0), buf));          /* root */
        ck_assert(broker_may_see(b, CALLER(":1.7", b->self_uid), buf));
        ck_assert(!broker_may_see(b, CALLER(":1.2", UID_B), buf));
        ck_assert(!broker_may_see(b, CALLER(NULL, UID_B), buf));

        /* A holder may see it. */
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        open_ok(":1.2", UID_B, tok, T0, NULL);
        ck_assert(broker_may_see(b, CALLER(":1.2", UID_B), buf));
        ck_assert(!broker_may_see(b, CALLER(":1.3", UID_C), buf));
}
END_TEST

static Suite *suite_registry(void) {
        Suite *s = suite_create("registry");
        TCase *tc = tcase_new("registry");

        tcase_add_test(tc, test_limits_default);
        tcase_add_test(tc, test_new_is_empty);
        tcase_add_test(tc, test_create_basic);
        tcase_add_test(tc, test_create_rounds_up_to_page);
        tcase_add_test(tc, test_ids_monotonic_unique);
        tcase_add_test(tc, test_validate_name);
        tcase_add_test(tc, test_create_invalid_name_leaves_nothing);
        tcase_add_test(tc, test_create_size_zero);
        tcase_add_test(tc, test_create_size_over_limit);
        tcase_add_test(tc, test_create_size_near_2_64);
        tcase_add_test(tc, test_caller_without_name);
        tcase_add_test(tc, test_strings_are_copied);
        tcase_add_test(tc, test_privileged_and_may_see);
        suite_add_tcase(s, tc);
        return s;
}

/* =========================================================== holders === */

START_TEST(test_creator_holds) {
        Buffer *b1, *b2;
        Client *c;

        b1 = create_ok(":1.1", UID_A, "one", 1, false, 0);
        c = broker_find_client(b, ":1.1");
        ck_assert_ptr_nonnull(c);
        ck_assert_str_eq(c->name, ":1.1");
        ck_assert_uint_eq(c->uid, UID_A);
        ck_assert_ptr_eq(c->broker, b);
        ck_assert_uint_eq(b1->n_holds, 1);
        ck_assert_ptr_eq(TAILQ_FIRST(&b1->holds)->client, c);
        ck_assert_ptr_eq(TAILQ_FIRST(&b1->holds)->buffer, b1);
        ck_assert_uint_eq(rec.added, 1);

        /* A second buffer: same client, no second client_added. */
        b2 = create_ok(":1.1", UID_A, "two", 1, false, 0);
        ck_assert_ptr_eq(broker_find_client(b, ":1.1"), c);
        ck_assert_uint_eq(b2->n_holds, 1);
        ck_assert_uint_eq(rec.added, 1);
        assert_stats(2, 2 * page_size(), 1, 0);

        /* Another connection of the same uid is another client. */
        create_ok(":1.2", UID_A, "three", 1, false, 0);
        ck_assert_uint_eq(rec.added, 2);
        assert_stats(3, 3 * page_size(), 2, 0);
        ck_assert_uint_eq(rec.removed, 0);
}
END_TEST

START_TEST(test_open_adds_holder_release_by_holders) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf, *got;
        bool ro = true;
        uint64_t id;
        int fd = -1;

        buf = create_ok(":1.1", UID_A, "shared", 2 * page_size(), false, 0);
        id = buf->id;
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        assert_stats(1, 2 * page_size(), 1, 1);

        ck_assert_int_eq(open_token(":1.2", UID_B, tok, T0, &got, &ro, &fd), 0);
        ck_assert_ptr_eq(got, buf);
        ck_assert(!ro);
        close(fd);
        ck_assert_uint_eq(buf->n_holds, 2);
        ck_assert_ptr_nonnull(broker_find_client(b, ":1.2"));
        ck_assert_uint_eq(broker_find_client(b, ":1.2")->uid, UID_B);
        ck_assert_uint_eq(rec.added, 2);
        assert_stats(1, 2 * page_size(), 2, 1);
        /* Still charged to its owner only. */
        assert_usage(UID_A, 1, 2 * page_size(), 1);
        assert_usage(UID_B, 0, 0, 0);

        /* The creator lets go: the other holder keeps it alive. */
        ck_assert_int_eq(release(buf, ":1.1", UID_A), 0);
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_uint_eq(buf->n_holds, 1);
        ck_assert_uint_eq(rec.removed, 1);
        ck_assert_str_eq(rec.last_removed, ":1.1");
        ck_assert_ptr_null(broker_find_client(b, ":1.1"));
        ck_assert_uint_eq(rec.dropped, 0);
        assert_stats(1, 2 * page_size(), 1, 1);

        /* The last holder lets go: dropped, once; its token dies with it.
         * Announced with that hold still there, so that the bus layer
         * tells that holder too. */
        ck_assert_int_eq(release(buf, ":1.2", UID_B), 0);
        ck_assert_ptr_null(broker_find_buffer(b, id));
        ck_assert_uint_eq(rec.dropped, 1);
        ck_assert_uint_eq(rec.dropped_ids[0], id);
        ck_assert_int_eq(rec.last_reason, BROKER_DROP_RELEASED);
        ck_assert_uint_eq(rec.last_dropped_holds, 1);
        ck_assert_uint_eq(rec.removed, 2);
        ck_assert_str_eq(rec.last_removed, ":1.2");
        assert_stats(0, 0, 0, 0);
        assert_usage(UID_A, 0, 0, 0);
        assert_usage(UID_B, 0, 0, 0);
        ck_assert_int_eq(open_token(":1.3", UID_C, tok, T0, NULL, NULL, NULL), -ENOKEY);
        assert_stats(0, 0, 0, 0);
}
END_TEST

START_TEST(test_client_removed_when_no_holds_left) {
        Buffer *b1, *b2;

        b1 = create_ok(":1.1", UID_A, "one", 1, false, 0);
        b2 = create_ok(":1.1", UID_A, "two", 1, true, 0);
        ck_assert_int_eq(release(b1, ":1.1", UID_A), 0);
        ck_assert_ptr_nonnull(broker_find_client(b, ":1.1"));
        ck_assert_uint_eq(rec.removed, 0);
        assert_stats(1, page_size(), 1, 0);

        /* Releasing the persistent buffer it holds: the client holds nothing. */
        ck_assert_int_eq(release(b2, ":1.1", UID_A), 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.1"));
        ck_assert_uint_eq(rec.removed, 1);
        ck_assert_uint_eq(b->stats.clients, 0);
}
END_TEST

START_TEST(test_vanish_drops_holds) {
        ShareOptions o = share_opts();
        char tok_shared[BB_TOKEN_LEN + 1], tok_p[BB_TOKEN_LEN + 1], tok_gone[BB_TOKEN_LEN + 1];
        Buffer *np[5], *p[2];
        const uint64_t ps = page_size();
        uint64_t ids[5];

        for (unsigned i = 0; i < 5; i++) {
                np[i] = create_ok(":1.1", UID_A, "np", (i + 1) * ps, false, 0);
                ids[i] = np[i]->id;
        }
        for (unsigned i = 0; i < 2; i++)
                p[i] = create_ok(":1.1", UID_A, "p", ps, true, 0);
        share_ok(np[2], ":1.1", UID_A, &o, T0, tok_shared);
        share_ok(np[3], ":1.1", UID_A, &o, T0, tok_gone);
        share_ok(p[0], ":1.1", UID_A, &o, T0, tok_p);
        open_ok(":1.2", UID_B, tok_shared, T0, NULL);
        assert_stats(7, 17 * ps, 2, 3);

        vanish(":1.1");

        /* Exactly the four unshared non-persistent buffers, each once. */
        ck_assert_uint_eq(rec.dropped, 4);
        for (unsigned i = 0; i < 5; i++)
                ck_assert_uint_eq(count_dropped(ids[i]), i == 2 ? 0 : 1);
        ck_assert_uint_eq(rec.removed, 1);
        ck_assert_str_eq(rec.last_removed, ":1.1");
        for (unsigned i = 0; i < 5; i++)
                if (i != 2)
                        ck_assert_ptr_null(broker_find_buffer(b, ids[i]));

        /* Held by another client: alive, one holder left. */
        ck_assert_ptr_eq(broker_find_buffer(b, ids[2]), np[2]);
        ck_assert_uint_eq(np[2]->n_holds, 1);
        /* Persistent: alive, nobody holds them. */
        for (unsigned i = 0; i < 2; i++) {
                ck_assert_ptr_eq(broker_find_buffer(b, p[i]->id), p[i]);
                ck_assert_uint_eq(p[i]->n_holds, 0);
        }
        assert_stats(3, 5 * ps, 1, 2);
        assert_usage(UID_A, 3, 5 * ps, 2);

        /* The dropped buffer's token died; the persistent one's still works. */
        ck_assert_int_eq(open_token(":1.3", UID_C, tok_gone, T0, NULL, NULL, NULL), -ENOKEY);
        ck_assert_ptr_eq(open_ok(":1.3", UID_C, tok_p, T0, NULL), p[0]);
        ck_assert_uint_eq(p[0]->n_holds, 1);
        assert_stats(3, 5 * ps, 2, 2);

        /* Vanishing again: each buffer is dropped once, never twice. */
        vanish(":1.2");
        ck_assert_uint_eq(rec.dropped, 5);
        ck_assert_uint_eq(count_dropped(ids[2]), 1);
        vanish(":1.3");
        ck_assert_uint_eq(rec.dropped, 5);
        ck_assert_ptr_eq(broker_find_buffer(b, p[0]->id), p[0]);
        assert_stats(2, 2 * ps, 0, 1);
        ck_assert_uint_eq(rec.removed, 3);
}
END_TEST

START_TEST(test_release_persistent_by_owner_uid) {
        Buffer *buf;
        uint64_t id;

        buf = create_ok(":1.1", UID_A, "keep", page_size(), true, 0);
        id = buf->id;
        vanish(":1.1");
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        assert_stats(1, page_size(), 0, 0);

        /* Another uid that holds nothing may not. */
        ck_assert_int_eq(release(buf, ":1.5", UID_B), -EPERM);
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        assert_stats(1, page_size(), 0, 0);
        ck_assert_uint_eq(rec.added, 1);

        /* The owner uid, from a connection that never held it, drops it. */
        ck_assert_int_eq(release(buf, ":1.9", UID_A), 0);
        ck_assert_ptr_null(broker_find_buffer(b, id));
        ck_assert_uint_eq(rec.dropped, 1);
        ck_assert_uint_eq(rec.dropped_ids[0], id);
        assert_stats(0, 0, 0, 0);
        assert_usage(UID_A, 0, 0, 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.9"));
}
END_TEST

START_TEST(test_release_persistent_by_root) {
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "keep", page_size(), true, 0);
        vanish(":1.1");
        ck_assert_int_eq(release(buf, ":1.0", 0), 0);
        ck_assert_uint_eq(rec.dropped, 1);
        assert_stats(0, 0, 0, 0);
        assert_usage(UID_A, 0, 0, 0);
}
END_TEST

START_TEST(test_release_by_stranger) {
        Buffer *np, *p;

        np = create_ok(":1.1", UID_A, "np", 1, false, 0);
        p = create_ok(":1.1", UID_A, "p", 1, true, 0);

        ck_assert_int_eq(release(np, ":1.5", UID_B), -EPERM);
        ck_assert_int_eq(release(p, ":1.5", UID_B), -EPERM);
        ck_assert_int_eq(release(np, NULL, UID_B), -EPERM);
        ck_assert_uint_eq(np->n_holds, 1);
        ck_assert_uint_eq(p->n_holds, 1);
        ck_assert(p->persistent);
        ck_assert_ptr_null(broker_find_client(b, ":1.5"));
        ck_assert_uint_eq(rec.added, 1);
        ck_assert_uint_eq(rec.dropped, 0);
        assert_stats(2, 2 * page_size(), 1, 0);
}
END_TEST

START_TEST(test_release_twice) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "twice", 1, false, 0);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        open_ok(":1.2", UID_B, tok, T0, NULL);
        ck_assert_int_eq(release(buf, ":1.2", UID_B), 0);
        ck_assert_uint_eq(buf->n_holds, 1);
        /* No longer a holder, never the owner. */
        ck_assert_int_eq(release(buf, ":1.2", UID_B), -EPERM);
        ck_assert_uint_eq(buf->n_holds, 1);
        ck_assert_uint_eq(rec.dropped, 0);
        assert_stats(1, page_size(), 1, 1);
}
END_TEST

START_TEST(test_client_added_refusal_on_create) {
        BrokerError err = {};
        Buffer *buf = NULL;
        int fds = count_fds(), r;

        rec.fail_added = -ENOMEM;
        r = broker_create(b, CALLER(":1.1", UID_A),
                                &(CreateRequest) { .name = "refused", .size = page_size() }, T0, &err, &buf);
        ck_assert_int_eq(r, -ENOMEM);
        ck_assert_ptr_null(buf);
        r = broker_create(b, CALLER(":1.1", UID_A),
                                &(CreateRequest) { .name = "refused", .size = page_size(), .persistent = true },
                                T0, &err, &buf);
        ck_assert_int_eq(r, -ENOMEM);
        ck_assert_ptr_null(buf);

        assert_stats(0, 0, 0, 0);
        assert_usage(UID_A, 0, 0, 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.1"));
        ck_assert_int_eq(count_fds(), fds);

        /* Allowed again: works, and nothing of the refused attempts shows. */
        rec.fail_added = 0;
        buf = create_ok(":1.1", UID_A, "ok", page_size(), false, 0);
        assert_stats(1, page_size(), 1, 0);
        ck_assert_uint_eq(rec.added, 1);
}
END_TEST

START_TEST(test_client_added_refusal_on_open) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf;
        int fds, fd = -1;

        buf = create_ok(":1.1", UID_A, "x", 1, false, 0);
        o.single_use = true;
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        fds = count_fds();

        rec.fail_added = -ENOMEM;
        ck_assert_int_eq(open_token(":1.2", UID_B, tok, T0, NULL, NULL, NULL), -ENOMEM);
        ck_assert_ptr_null(broker_find_client(b, ":1.2"));
        ck_assert_uint_eq(buf->n_holds, 1);
        assert_stats(1, page_size(), 1, 1);     /* the single-use token is not spent */
        ck_assert_int_eq(count_fds(), fds);

        rec.fail_added = 0;
        ck_assert_ptr_eq(open_ok(":1.2", UID_B, tok, T0, &fd), buf);
        close(fd);
        ck_assert_uint_eq(buf->n_holds, 2);
        assert_stats(1, page_size(), 2, 0);
}
END_TEST

static Suite *suite_holders(void) {
        Suite *s = suite_create("holders");
        TCase *tc = tcase_new("holders");

        tcase_add_test(tc, test_creator_holds);
        tcase_add_test(tc, test_open_adds_holder_release_by_holders);
        tcase_add_test(tc, test_client_removed_when_no_holds_left);
        tcase_add_test(tc, test_vanish_drops_holds);
        tcase_add_test(tc, test_release_persistent_by_owner_uid);
        tcase_add_test(tc, test_release_persistent_by_root);
        tcase_add_test(tc, test_release_by_stranger);
        tcase_add_test(tc, test_release_twice);
        tcase_add_test(tc, test_client_added_refusal_on_create);
        tcase_add_test(tc, test_client_added_refusal_on_open);
        suite_add_tcase(s, tc);
        return s;
}

/* ============================================================ tokens === */

START_TEST(test_share_format_distinct) {
        ShareOptions o = share_opts();
        char toks[64][BB_TOKEN_LEN + 1];
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "t", 1, false, 0);
        for (unsigned i = 0; i < ELEMENTSOF(toks); i++) {
                share_ok(buf, ":1.1", UID_A, &o, T0, toks[i]);
                for (unsigned j = 0; j < BB_TOKEN_LEN; j++)
                        ck_assert_msg((toks[i][j] >= '0' && toks[i][j] <= '9') ||
                                      (toks[i][j] >= 'a' && toks[i][j] <= 'f'),
                                      "token %s is not lower-case hex", toks[i]);
                for (unsigned j = 0; j < i; j++)
                        ck_assert_str_ne(toks[i], toks[j]);
        }
        assert_stats(1, page_size(), 1, ELEMENTSOF(toks));
        assert_usage(UID_A, 1, page_size(), ELEMENTSOF(toks));
        /* Each one opens the buffer. */
        for (unsigned i = 0; i < ELEMENTSOF(toks); i++)
                ck_assert_ptr_eq(open_ok(":1.2", UID_B, toks[i], T0, NULL), buf);
}
END_TEST

START_TEST(test_open_unknown_token) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf;
        int fds;

        buf = create_ok(":1.1", UID_A, "t", 1, false, 0);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        fds = count_fds();

        ck_assert_int_eq(open_token(":1.2", UID_B, "00000000000000000000000000000000", T0, NULL, NULL, NULL),
                         -ENOKEY);
        /* A well-formed token that differs from a real one in its last digit. */
        tok[BB_TOKEN_LEN - 1] = tok[BB_TOKEN_LEN - 1] == '0' ? '1' : '0';
        ck_assert_int_eq(open_token(":1.2", UID_B, tok, T0, NULL, NULL, NULL), -ENOKEY);

        ck_assert_ptr_null(broker_find_client(b, ":1.2"));
        ck_assert_uint_eq(buf->n_holds, 1);
        ck_assert_uint_eq(rec.added, 1);
        assert_stats(1, page_size(), 1, 1);
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_open_malformed_token) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1], bad[16][BB_TOKEN_LEN + 8];
        unsigned n = 0;
        Buffer *buf;
        int fds;

        buf = create_ok(":1.1", UID_A, "t", 1, false, 0);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        fds = count_fds();

        strcpy(bad[n++], "");
        strcpy(bad[n++], "abc");
        snprintf(bad[n++], sizeof(bad[0]), "%.*s", BB_TOKEN_LEN - 1, tok);     /* prefix */
        snprintf(bad[n++], sizeof(bad[0]), "%s0", tok);                         /* one more */
        snprintf(bad[n++], sizeof(bad[0]), "%s\n", tok);
        snprintf(bad[n++], sizeof(bad[0]), " %.*s", BB_TOKEN_LEN - 1, tok);
        snprintf(bad[n++], sizeof(bad[0]), "%.*sg", BB_TOKEN_LEN - 1, tok);     /* non-hex */
        snprintf(bad[n++], sizeof(bad[0]), "%.*sZ", BB_TOKEN_LEN - 1, tok);
        snprintf(bad[n++], sizeof(bad[0]), "%.*s\x01", BB_TOKEN_LEN - 1, tok);
        strcpy(bad[n++], "../../../../../../../etc/shadow!");
        /* Upper case: same digits, not the token. */
        strcpy(bad[n], tok);
        for (char *p = bad[n]; *p; p++)
                if (*p >= 'a' && *p <= 'f')
                        *p = (char) (*p - 'a' + 'A');
        if (strcmp(bad[n], tok) != 0)
                n++;

        for (unsigned i = 0; i < n; i++) {
                int r = open_token(":1.2", UID_B, bad[i], T0, NULL, NULL, NULL);

                /* broker.h: -EINVAL malformed input, -ENOKEY unknown token; either fits. */
                ck_assert_msg(r == -EINVAL || r == -ENOKEY, "token '%s': %d", bad[i], r);
        }

        ck_assert_ptr_null(broker_find_client(b, ":1.2"));
        ck_assert_uint_eq(buf->n_holds, 1);
        ck_assert_uint_eq(rec.added, 1);
        assert_stats(1, page_size(), 1, 1);
        ck_assert_int_eq(count_fds(), fds);
        /* The real token still works. */
        ck_assert_ptr_eq(open_ok(":1.2", UID_B, tok, T0, NULL), buf);
}
END_TEST

START_TEST(test_open_read_write_token) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1], data[6] = {};
        Buffer *buf, *got = NULL;
        struct stat st;
        bool ro = true;
        int fd = -1;

        buf = create_ok(":1.1", UID_A, "rw", 3 * page_size(), false, 0);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        ck_assert_int_eq(open_token(":1.2", UID_B, tok, T0, &got, &ro, &fd), 0);
        ck_assert_ptr_eq(got, buf);
        ck_assert(!ro);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ck_assert_int_ne(fd, buf->planes[0].fd);        /* a new fd, the caller's to close */
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq((uint64_t) st.st_size, buf->size);

        ck_assert_int_eq(pwrite(buf->planes[0].fd, "hello", 5, 100), 5);
        ck_assert_int_eq(pread(fd, data, 5, 100), 5);
        ck_assert_str_eq(data, "hello");
        ck_assert_int_eq(pwrite(fd, "HELLO", 5, 200), 5);
        ck_assert_int_eq(pread(buf->planes[0].fd, data, 5, 200), 5);
        ck_assert_str_eq(data, "HELLO");
        close(fd);

        /* A reusable token: a third client opens too, the token stays. */
        ck_assert_ptr_eq(open_ok(":1.3", UID_C, tok, T0, NULL), buf);
        ck_assert_uint_eq(buf->n_holds, 3);
        assert_stats(1, 3 * page_size(), 3, 1);
}
END_TEST

START_TEST(test_single_use_token) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "once", 1, false, 0);
        o.single_use = true;
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        assert_stats(1, page_size(), 1, 1);
        assert_usage(UID_A, 1, page_size(), 1);

        ck_assert_ptr_eq(open_ok(":1.2", UID_B, tok, T0, NULL), buf);
        assert_stats(1, page_size(), 2, 0);
        assert_usage(UID_A, 1, page_size(), 0);
        ck_assert_int_eq(open_token(":1.3", UID_C, tok, T0, NULL, NULL, NULL), -ENOKEY);
        ck_assert_int_eq(open_token(":1.2", UID_B, tok, T0, NULL, NULL, NULL), -ENOKEY);
        ck_assert_int_eq(open_token(":1.1", UID_A, tok, T0, NULL, NULL, NULL), -ENOKEY);
        ck_assert_ptr_null(broker_find_client(b, ":1.3"));
        assert_stats(1, page_size(), 2, 0);
}
END_TEST

START_TEST(test_uid_bound_token) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "bound", 1, false, 0);
        o.bound_uid = UID_B;
        o.single_use = true;
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);

        ck_assert_int_eq(open_token(":1.3", UID_C, tok, T0, NULL, NULL, NULL), -EACCES);
        ck_assert_int_eq(open_token(":1.1", UID_A, tok, T0, NULL, NULL, NULL), -EACCES);
        ck_assert_ptr_null(broker_find_client(b, ":1.3"));
        ck_assert_uint_eq(buf->n_holds, 1);
        /* A refused attempt does not spend a single-use token. */
        assert_stats(1, page_size(), 1, 1);

        ck_assert_ptr_eq(open_ok(":1.2", UID_B, tok, T0, NULL), buf);
        ck_assert_uint_eq(buf->n_holds, 2);
        assert_stats(1, page_size(), 2, 0);
}
END_TEST

START_TEST(test_expiring_token) {
        const uint64_t ttl = 10 * USEC_PER_SEC;
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1], tok2[BB_TOKEN_LEN + 1];
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "exp", 1, false, 0);
        o.ttl_usec = ttl;
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok2);
        ck_assert_uint_eq(broker_next_deadline(b), T0 + ttl);

        /* Before the deadline: usable, and expiry keeps it. */
        ck_assert_ptr_eq(open_ok(":1.2", UID_B, tok, T0 + ttl - 1, NULL), buf);
        ck_assert_uint_eq(broker_expire(b, T0 + ttl - 1), T0 + ttl);
        assert_stats(1, page_size(), 2, 2);

        /* Past it: an open refuses it even before the expiry pass ran. */
        ck_assert_int_eq(open_token(":1.3", UID_C, tok2, T0 + ttl + 1, NULL, NULL, NULL), -ENOKEY);
        ck_assert_ptr_null(broker_find_client(b, ":1.3"));

        ck_assert_uint_eq(broker_expire(b, T0 + ttl + 1), USEC_INFINITY);
        ck_assert_uint_eq(broker_next_deadline(b), USEC_INFINITY);
        assert_stats(1, page_size(), 2, 0);
        assert_usage(UID_A, 1, page_size(), 0);
        ck_assert_int_eq(open_token(":1.3", UID_C, tok, T0 + ttl + 1, NULL, NULL, NULL), -ENOKEY);
        /* Gone for good, whatever clock an open claims later. */
        ck_assert_int_eq(open_token(":1.3", UID_C, tok, T0, NULL, NULL, NULL), -ENOKEY);
        /* Token expiry does not touch the buffer. */
        ck_assert_ptr_eq(broker_find_buffer(b, buf->id), buf);
        ck_assert_uint_eq(rec.dropped, 0);
}
END_TEST

START_TEST(test_token_ttl_near_max) {
        const uint64_t ttls[] = {
                UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - T0 + 1, UINT64_MAX - T0, UINT64_MAX / 2 + 1,
        };
        ShareOptions o = share_opts();
        char tok[ELEMENTSOF(ttls)][BB_TOKEN_LEN + 1];
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "forever", 1, false, 0);
        for (unsigned i = 0; i < ELEMENTSOF(ttls); i++) {
                o.ttl_usec = ttls[i];
                share_ok(buf, ":1.1", UID_A, &o, T0, tok[i]);
        }
        ck_assert_uint_gt(broker_next_deadline(b), T0 + USEC_PER_HOUR);
        ck_assert_uint_gt(broker_expire(b, T0 + USEC_PER_HOUR), T0 + USEC_PER_HOUR);
        assert_stats(1, page_size(), 1, ELEMENTSOF(ttls));
        for (unsigned i = 0; i < ELEMENTSOF(ttls); i++)
                ck_assert_ptr_eq(open_ok(":1.2", UID_B, tok[i], T0 + USEC_PER_HOUR, NULL), buf);
}
END_TEST

START_TEST(test_read_only_token) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1], data[8] = {};
        Buffer *buf, *got = NULL;
        bool ro = false;
        void *p;
        int fd = -1;

        buf = create_ok(":1.1", UID_A, "ro", 2 * page_size(), false, 0);
        ck_assert_int_eq(pwrite(buf->planes[0].fd, "secret!", 7, 0), 7);
        o.read_only = true;
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);

        ck_assert_int_eq(open_token(":1.2", UID_B, tok, T0, &got, &ro, &fd), 0);
        ck_assert_ptr_eq(got, buf);
        ck_assert(ro);
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);

        /* Cannot be mapped writable. */
        errno = 0;
        ck_assert_ptr_eq(mmap(NULL, buf->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
        ck_assert_int_eq(errno, EACCES);
        errno = 0;
        ck_assert_ptr_eq(mmap(NULL, buf->size, PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
        ck_assert_int_eq(errno, EACCES);
        /* A read-only shared mapping cannot be upgraded either. */
        p = mmap(NULL, buf->size, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        ck_assert_int_eq(memcmp(p, "secret!", 7), 0);
        errno = 0;
        ck_assert_int_eq(mprotect(p, buf->size, PROT_READ | PROT_WRITE), -1);
        ck_assert_int_eq(errno, EACCES);
        munmap(p, buf->size);

        /* Nor written, truncated or grown. */
        ck_assert_int_eq(write(fd, "x", 1), -1);
        ck_assert_int_eq(pwrite(fd, "x", 1, 0), -1);
        ck_assert_int_eq(ftruncate(fd, 0), -1);
        ck_assert_int_eq(ftruncate(fd, (off_t) (4 * buf->size)), -1);
        ck_assert_int_eq(pread(fd, data, 7, 0), 7);
        ck_assert_str_eq(data, "secret!");
        close(fd);

        ck_assert_uint_eq(buf->n_holds, 2);
        /* The buffer itself stays writable for its owner. */
        ck_assert(!buf->frozen);
        ck_assert_int_eq(pwrite(buf->planes[0].fd, "x", 1, 0), 1);
}
END_TEST

START_TEST(test_tokens_die_with_buffer) {
        ShareOptions o = share_opts();
        char t1[BB_TOKEN_LEN + 1], t2[BB_TOKEN_LEN + 1], t3[BB_TOKEN_LEN + 1];
        Buffer *buf, *other;

        buf = create_ok(":1.1", UID_A, "dying", 1, false, 0);
        other = create_ok(":1.1", UID_A, "living", 1, false, 0);
        share_ok(buf, ":1.1", UID_A, &o, T0, t1);
        o.read_only = true;
        o.bound_uid = UID_B;
        o.ttl_usec = 60 * USEC_PER_SEC;
        share_ok(buf, ":1.1", UID_A, &o, T0, t2);
        o = share_opts();
        share_ok(other, ":1.1", UID_A, &o, T0, t3);
        assert_stats(2, 2 * page_size(), 1, 3);
        ck_assert_uint_eq(broker_next_deadline(b), T0 + 60 * USEC_PER_SEC);

        ck_assert_int_eq(release(buf, ":1.1", UID_A), 0);
        assert_stats(1, page_size(), 1, 1);
        assert_usage(UID_A, 1, page_size(), 1);
        ck_assert_uint_eq(broker_next_deadline(b), USEC_INFINITY);
        ck_assert_int_eq(open_token(":1.2", UID_B, t1, T0, NULL, NULL, NULL), -ENOKEY);
        ck_assert_int_eq(open_token(":1.2", UID_B, t2, T0, NULL, NULL, NULL), -ENOKEY);
        ck_assert_ptr_eq(open_ok(":1.2", UID_B, t3, T0, NULL), other);
}
END_TEST

START_TEST(test_share_permissions) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1], t[BB_TOKEN_LEN + 1];
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "mine", 1, false, 0);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        open_ok(":1.2", UID_B, tok, T0, NULL);
        assert_stats(1, page_size(), 2, 1);

        /* A holder of another uid, a stranger: not the owner. */
        ck_assert_int_eq(share_err(buf, ":1.2", UID_B, &o), -EPERM);
        ck_assert_int_eq(share_err(buf, ":1.3", UID_C, &o), -EPERM);
        ck_assert_int_eq(share_err(buf, NULL, UID_C, &o), -EPERM);
        assert_stats(1, page_size(), 2, 1);
        assert_usage(UID_B, 0, 0, 0);
        assert_usage(UID_C, 0, 0, 0);
        ck_assert_ptr_null(broker_find_client(b, ":1.3"));

        /* The owner uid from another connection, root, the daemon's uid: yes. */
        share_ok(buf, ":1.9", UID_A, &o, T0, t);
        share_ok(buf, ":1.0", 0, &o, T0, t);
        share_ok(buf, ":1.7", b->self_uid, &o, T0, t);
        /* Sharing makes nobody a holder. */
        ck_assert_uint_eq(buf->n_holds, 2);
        assert_stats(1, page_size(), 2, 4);
}
END_TEST

START_TEST(test_revoke_token) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1], kept[BB_TOKEN_LEN + 1];
        BrokerError err = {};
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "revoke", 1, false, 0);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        share_ok(buf, ":1.1", UID_A, &o, T0, kept);
        ck_assert_ptr_eq(open_ok(":1.2", UID_B, tok, T0, NULL), buf);
        assert_stats(1, page_size(), 2, 2);

        ck_assert_int_eq(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), buf, tok, T0, &err), 0);
        assert_stats(1, page_size(), 2, 1);
        assert_usage(UID_A, 1, page_size(), 1);
        /* Revoked: as unknown to Open, and to a second revocation. */
        ck_assert_int_eq(open_token(":1.3", UID_C, tok, T0, NULL, NULL, NULL), -ENOKEY);
        ck_assert_ptr_null(broker_find_client(b, ":1.3"));
        assert_fails(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), buf, tok, T0, &err), ENOKEY, err);
        ck_assert_str_eq(err.name, BB_ERROR_NO_SUCH_TOKEN);
        /* Whoever opened it still holds the buffer; the other token works. */
        ck_assert_uint_eq(buf->n_holds, 2);
        ck_assert_ptr_eq(open_ok(":1.3", UID_C, kept, T0, NULL), buf);

        /* Root may revoke too. */
        ck_assert_int_eq(broker_revoke_buffer_token(b, CALLER(":1.0", 0), buf, kept, T0, &err), 0);
        assert_stats(1, page_size(), 3, 0);
}
END_TEST

START_TEST(test_revoke_token_refusals) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1], other_tok[BB_TOKEN_LEN + 1], expiring[BB_TOKEN_LEN + 1];
        char unknown[BB_TOKEN_LEN + 1];
        BrokerError err = {};
        Buffer *buf, *other;

        buf = create_ok(":1.1", UID_A, "mine", 1, false, 0);
        other = create_ok(":1.2", UID_B, "theirs", 1, false, 0);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        share_ok(other, ":1.2", UID_B, &o, T0, other_tok);
        o.ttl_usec = 10;
        share_ok(buf, ":1.1", UID_A, &o, T0, expiring);
        memset(unknown, 'a', BB_TOKEN_LEN);
        unknown[BB_TOKEN_LEN] = 0;
        assert_stats(2, 2 * page_size(), 2, 3);

        /* Not the owner: refused before the token is looked at, the same
         * for a real token, an unknown and a malformed one (no oracle). */
        for (int i = 0; i < 2; i++) {
                const Caller *stranger = i == 0 ? CALLER(":1.2", UID_B) : CALLER(":1.3", UID_C);

                assert_fails(broker_revoke_buffer_token(b, stranger, buf, tok, T0, &err), EPERM, err);
                ck_assert_str_eq(err.name, BB_ERROR_NOT_OWNER);
                assert_fails(broker_revoke_buffer_token(b, stranger, buf, unknown, T0, &err), EPERM, err);
                assert_fails(broker_revoke_buffer_token(b, stranger, buf, "x", T0, &err), EPERM, err);
                assert_fails(broker_revoke_buffer_tokens(b, stranger, buf, T0, &err, &(unsigned) { 0 }), EPERM, err);
        }
        /* The owner: malformed, unknown, another buffer's, expired. */
        assert_fails(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), buf, "", T0, &err), EINVAL, err);
        assert_fails(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), buf, "ABCDEF", T0, &err), EINVAL, err);
        tok[0] = tok[0] == 'a' ? 'B' : 'A';       /* upper case: malformed */
        assert_fails(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), buf, tok, T0, &err), EINVAL, err);
        tok[0] = tolower((unsigned char) tok[0]);
        assert_fails(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), buf, unknown, T0, &err), ENOKEY, err);
        assert_fails(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), buf, other_tok, T0, &err), ENOKEY, err);
        /* the same message as for an unknown one, but for the token itself */
        ck_assert_ptr_null(strstr(err.message, "theirs"));
        assert_fails(broker_revoke_buffer_token(b, CALLER(":1.1", UID_A), buf, expiring, T0 + 10, &err), ENOKEY,
                     err);
        /* Nothing of it changed anything. */
        assert_stats(2, 2 * page_size(), 2, 3);
        ck_assert_ptr_eq(open_ok(":1.4", UID_C, other_tok, T0, NULL), other);
}
END_TEST

START_TEST(test_revoke_all_tokens) {
        ShareOptions o = share_opts();
        char t1[BB_TOKEN_LEN + 1], t2[BB_TOKEN_LEN + 1], t3[BB_TOKEN_LEN + 1], other_tok[BB_TOKEN_LEN + 1];
        BrokerError err = {};
        Buffer *buf, *other;
        unsigned n = 99;

        buf = create_ok(":1.1", UID_A, "all", 1, false, 0);
        other = create_ok(":1.1", UID_A, "other", 1, false, 0);
        ck_assert_int_eq(broker_revoke_buffer_tokens(b, CALLER(":1.1", UID_A), buf, T0, &err, &n), 0);
        ck_assert_uint_eq(n, 0);

        share_ok(buf, ":1.1", UID_A, &o, T0, t1);
        share_ok(buf, ":1.1", UID_A, &o, T0, t2);
        share_ok(other, ":1.1", UID_A, &o, T0, other_tok);
        o.ttl_usec = 10;
        share_ok(buf, ":1.1", UID_A, &o, T0, t3);
        assert_stats(2, 2 * page_size(), 1, 4);

        /* The expired one goes too, but is not counted as valid. */
        ck_assert_int_eq(broker_revoke_buffer_tokens(b, CALLER(":1.9", UID_A), buf, T0 + 10, &err, &n), 0);
        ck_assert_uint_eq(n, 2);
        assert_stats(2, 2 * page_size(), 1, 1);
        assert_usage(UID_A, 2, 2 * page_size(), 1);
        ck_assert_int_eq(open_token(":1.3", UID_C, t1, T0, NULL, NULL, NULL), -ENOKEY);
        ck_assert_int_eq(open_token(":1.3", UID_C, t2, T0, NULL, NULL, NULL), -ENOKEY);
        /* Another buffer's tokens stay. */
        ck_assert_ptr_eq(open_ok(":1.3", UID_C, other_tok, T0, NULL), other);
        ck_assert_int_eq(broker_revoke_buffer_tokens(b, CALLER(":1.0", 0), other, T0, &err, &n), 0);
        ck_assert_uint_eq(n, 1);
        assert_stats(2, 2 * page_size(), 2, 0);
}
END_TEST

static Suite *suite_tokens(void) {
        Suite *s = suite_create("tokens");
        TCase *tc = tcase_new("tokens");

        tcase_add_test(tc, test_share_format_distinct);
        tcase_add_test(tc, test_open_unknown_token);
        tcase_add_test(tc, test_open_malformed_token);
        tcase_add_test(tc, test_open_read_write_token);
        tcase_add_test(tc, test_single_use_token);
        tcase_add_test(tc, test_uid_bound_token);
        tcase_add_test(tc, test_expiring_token);
        tcase_add_test(tc, test_token_ttl_near_max);
        tcase_add_test(tc, test_read_only_token);
        tcase_add_test(tc, test_tokens_die_with_buffer);
        tcase_add_test(tc, test_share_permissions);
        tcase_add_test(tc, test_revoke_token);
        tcase_add_test(tc, test_revoke_token_refusals);
        tcase_add_test(tc, test_revoke_all_tokens);
        suite_add_tcase(s, tc);
        return s;
}

/* ============================================================ quotas === */

START_TEST(test_quota_buffers_per_uid) {
        BrokerLimits l;
        Buffer *first;

        limits_generous(&l);
        l.max_buffers_per_uid = 3;
        broker_restart(&l);

        first = create_ok(":1.1", UID_A, "q", 1, false, 0);
        create_ok(":1.1", UID_A, "q", 1, false, 0);
        create_ok(":1.1", UID_A, "q", 1, true, 0);
        ck_assert_int_eq(create_err(":1.1", UID_A, "q", 1, false, 0), -EDQUOT);
        /* Another connection of the same uid: same quota; and no client left behind. */
        ck_assert_int_eq(create_err(":1.2", UID_A, "q", 1, true, 0), -EDQUOT);
        ck_assert_ptr_null(broker_find_client(b, ":1.2"));
        assert_stats(3, 3 * page_size(), 1, 0);
        assert_usage(UID_A, 3, 3 * page_size(), 0);

        /* Another uid is still served. */
        create_ok(":1.3", UID_B, "q", 1, false, 0);
        assert_stats(4, 4 * page_size(), 2, 0);

        /* Releasing gives the quota back. */
        ck_assert_int_eq(release(first, ":1.1", UID_A), 0);
        assert_usage(UID_A, 2, 2 * page_size(), 0);
        create_ok(":1.1", UID_A, "q", 1, false, 0);
        ck_assert_int_eq(create_err(":1.1", UID_A, "q", 1, false, 0), -EDQUOT);
}
END_TEST

START_TEST(test_quota_bytes_per_uid) {
        const uint64_t ps = page_size();
        BrokerLimits l;
        Buffer *big;

        limits_generous(&l);
        l.max_bytes_per_uid = 4 * ps;
        broker_restart(&l);

        big = create_ok(":1.1", UID_A, "q", 3 * ps, false, 0);
        ck_assert_int_eq(create_err(":1.1", UID_A, "q", 2 * ps, false, 0), -EDQUOT);
        /* The request is charged rounded up: 1 byte is a page, and a page is left. */
        create_ok(":1.1", UID_A, "q", 1, false, 0);
        ck_assert_int_eq(create_err(":1.1", UID_A, "q", 1, false, 0), -EDQUOT);
        assert_stats(2, 4 * ps, 1, 0);
        assert_usage(UID_A, 2, 4 * ps, 0);

        create_ok(":1.2", UID_B, "q", 4 * ps, false, 0);
        ck_assert_int_eq(create_err(":1.2", UID_B, "q", 1, false, 0), -EDQUOT);
        assert_stats(3, 8 * ps, 2, 0);

        ck_assert_int_eq(release(big, ":1.1", UID_A), 0);
        assert_usage(UID_A, 1, ps, 0);
        create_ok(":1.1", UID_A, "q", 3 * ps, false, 0);
        assert_usage(UID_A, 2, 4 * ps, 0);
}
END_TEST

START_TEST(test_quota_tokens_per_uid) {
        ShareOptions o = share_opts();
        char t[4][BB_TOKEN_LEN + 1];
        BrokerLimits l;
        Buffer *a, *bb;

        limits_generous(&l);
        l.max_tokens_per_uid = 2;
        broker_restart(&l);

        a = create_ok(":1.1", UID_A, "a", 1, false, 0);
        bb = create_ok(":1.2", UID_B, "b", 1, false, 0);
        o.single_use = true;
        share_ok(a, ":1.1", UID_A, &o, T0, t[0]);
        o = share_opts();
        o.ttl_usec = USEC_PER_SEC;
        share_ok(a, ":1.1", UID_A, &o, T0, t[1]);
        o = share_opts();
        ck_assert_int_eq(share_err(a, ":1.1", UID_A, &o), -EDQUOT);
        assert_stats(2, 2 * page_size(), 2, 2);
        assert_usage(UID_A, 1, page_size(), 2);

        /* Another uid is still served. */
        share_ok(bb, ":1.2", UID_B, &o, T0, t[2]);
        share_ok(bb, ":1.2", UID_B, &o, T0, t[3]);
        assert_usage(UID_B, 1, page_size(), 2);

        /* A spent single-use token gives its quota back ... */
        open_ok(":1.3", UID_C, t[0], T0, NULL);
        assert_usage(UID_A, 1, page_size(), 1);
        share_ok(a, ":1.1", UID_A, &o, T0, t[0]);
        ck_assert_int_eq(share_err(a, ":1.1", UID_A, &o), -EDQUOT);
        /* ... and so does an expired one. */
        broker_expire(b, T0 + 2 * USEC_PER_SEC);
        assert_usage(UID_A, 1, page_size(), 1);
        share_ok(a, ":1.1", UID_A, &o, T0 + 2 * USEC_PER_SEC, t[1]);
        assert_stats(2, 2 * page_size(), 3, 4);
}
END_TEST

START_TEST(test_quota_global_buffers) {
        BrokerLimits l;
        Buffer *bb;

        limits_generous(&l);
        l.max_buffers = 3;
        broker_restart(&l);

        create_ok(":1.1", UID_A, "g", 1, false, 0);
        create_ok(":1.1", UID_A, "g", 1, false, 0);
        bb = create_ok(":1.2", UID_B, "g", 1, false, 0);
        ck_assert_int_eq(create_err(":1.3", UID_C, "g", 1, false, 0), -EDQUOT);
        ck_assert_int_eq(create_err(":1.1", UID_A, "g", 1, true, 0), -EDQUOT);
        ck_assert_ptr_null(broker_find_client(b, ":1.3"));
        assert_stats(3, 3 * page_size(), 2, 0);
        assert_usage(UID_C, 0, 0, 0);

        ck_assert_int_eq(release(bb, ":1.2", UID_B), 0);
        create_ok(":1.3", UID_C, "g", 1, false, 0);
        assert_stats(3, 3 * page_size(), 2, 0);
}
END_TEST

/* Global limits are shared fairly: of what the others leave, a uid may hold
 * at most an (n+1)th, rounded up, n counting the uids holding some (itself
 * included). Sizes are whole pages, which rounds some shares to nothing. */
START_TEST(test_quota_global_bytes) {
        const uint64_t ps = page_size();
        BrokerLimits l;
        Buffer *a;

        limits_generous(&l);
        l.max_bytes = 8 * ps;
        broker_restart(&l);

        /* Alone, A may have half: 8/2. */
        ck_assert_int_eq(create_err(":1.1", UID_A, "g", 5 * ps, false, 0), -EDQUOT);
        a = create_ok(":1.1", UID_A, "g", 4 * ps, false, 0);
        ck_assert_int_eq(create_err(":1.1", UID_A, "g", 1, false, 0), -EDQUOT);
        /* B: a third of the 4 left, rounded up: one page. */
        ck_assert_int_eq(create_err(":1.2", UID_B, "g", 2 * ps, false, 0), -EDQUOT);
        create_ok(":1.2", UID_B, "g", ps, false, 0);
        /* C: a quarter of 3 pages is less than a page. */
        ck_assert_int_eq(create_err(":1.3", UID_C, "g", 1, false, 0), -EDQUOT);
        ck_assert_ptr_null(broker_find_client(b, ":1.3"));
        assert_stats(2, 5 * ps, 2, 0);
        assert_usage(UID_C, 0, 0, 0);

        /* A lets go: C gets a third of the 7 pages left: two. */
        ck_assert_int_eq(release(a, ":1.1", UID_A), 0);
        ck_assert_int_eq(create_err(":1.3", UID_C, "g", 3 * ps, false, 0), -EDQUOT);
        create_ok(":1.3", UID_C, "g", 2 * ps, false, 0);
        assert_stats(2, 3 * ps, 2, 0);
}
END_TEST

/* However many uids take all they can, in turn and over and over, a uid
 * that comes later still gets some: no group can lock the others out. */
START_TEST(test_fair_share_no_group_locks_out) {
        enum { N_UIDS = 8, LIMIT = 400 };
        unsigned got[N_UIDS] = {};
        bool progress = true;
        char name[32];
        BrokerLimits l;
        Buffer *buf;

        limits_generous(&l);
        l.max_buffers = LIMIT;
        broker_restart(&l);

        while (progress) {
                progress = false;
                for (unsigned u = 0; u < N_UIDS; u++) {
                        BrokerError e = {};

                        snprintf(name, sizeof(name), ":1.%u", 10 + u);
                        if (broker_create(b, CALLER(name, UID_A + 10 + u),
                                                &(CreateRequest) { .name = "greedy", .size = 1, .persistent = true },
                                                T0, &e, &buf) == 0) {
                                got[u]++;
                                progress = true;
                        }
                }
        }
        ck_assert_uint_lt(b->stats.buffers, LIMIT);
        for (unsigned u = 0; u < N_UIDS; u++)
                ck_assert_uint_gt(got[u], 0);

        /* The greedy ones are refused, with a message that says why ... */
        BrokerError err = {};
        ck_assert_int_eq(broker_create(b, CALLER(":1.10", UID_A + 10),
                                             &(CreateRequest) { .name = "more", .size = 1, .persistent = true },
                                             T0, &err, &buf),
                         -EDQUOT);
        ck_assert_str_eq(err.name, BB_ERROR_QUOTA_EXCEEDED);
        ck_assert_ptr_nonnull(strstr(err.message, "shared fairly"));
        /* ... and a newcomer is served. */
        create_ok(":1.99", UID_B, "late", 1, false, 0);
}
END_TEST

/* A uid over a limit (limits lowered across a restart: the restore skips
 * quotas) gets nothing more; the unsigned "limit - used" must not wrap. */
START_TEST(test_quota_over_limit_no_wrap) {
        const uint64_t ps = page_size();
        BrokerLimits l;
        Buffer *buf;

        limits_generous(&l);
        l.max_buffers_per_uid = 2;
        l.max_bytes_per_uid = 2 * ps;
        broker_restart(&l);

        for (uint64_t id = 1; id <= 3; id++) {
                RestoredBuffer rb = {
                        .id = id, .name = "old", .owner = UID_A, .persistent = true,
                        .expire_usec = USEC_INFINITY, .n_planes = 1,
                };
                int fd = -1;

                ck_assert_int_eq(memfd_new_sealed(&(CreateRequest) { .name = "old", .size = ps }, &fd), 0);
                rb.planes[0] = (BufferPlane) { .fd = fd, .ro_fd = -1, .length = ps };
                ck_assert_int_eq(broker_restore_buffer(b, &rb, &buf), 0);
        }
        broker_restore_done(b, 4);
        assert_usage(UID_A, 3, 3 * ps, 0);

        ck_assert_int_eq(create_err(":1.1", UID_A, "more", 1, false, 0), -EDQUOT);
        ck_assert_int_eq(create_err(":1.1", UID_A, "more", 1, true, 0), -EDQUOT);
        assert_usage(UID_A, 3, 3 * ps, 0);

        /* Over a global limit too. */
        limits_generous(&l);
        l.max_buffers = 2;
        b->limits = l;
        ck_assert_int_eq(create_err(":1.2", UID_B, "more", 1, false, 0), -EDQUOT);
        ck_assert_int_eq(create_err(":1.1", UID_A, "more", 1, false, 0), -EDQUOT);
        assert_stats(3, 3 * ps, 0, 0);
}
END_TEST

/* The fds the broker keeps are a budget like the others (shared fairly):
 * a full budget is QuotaExceeded, never EMFILE in the middle of a call. */
START_TEST(test_quota_fd_budget) {
        BrokerError err = {};
        BrokerLimits l;
        Buffer *a, *bb;

        limits_generous(&l);
        l.max_fds = 4;
        broker_restart(&l);

        a = create_ok(":1.1", UID_A, "a", 1, false, 0);
        create_ok(":1.1", UID_A, "a", 1, false, 0);
        ck_assert_int_eq(broker_create(b, CALLER(":1.1", UID_A),
                                             &(CreateRequest) { .name = "a", .size = 1 }, T0, &err, &bb), -EDQUOT);
        ck_assert_ptr_nonnull(strstr(err.message, "file descriptors"));
        bb = create_ok(":1.2", UID_B, "b", 1, false, 0);
        ck_assert_uint_eq(b->stats.fds, 3);
        ck_assert_int_eq(release(a, ":1.1", UID_A), 0);
        ck_assert_int_eq(release(bb, ":1.2", UID_B), 0);
        ck_assert_uint_eq(b->stats.fds, 1);
}
END_TEST

START_TEST(test_quota_global_tokens) {
        ShareOptions o = share_opts();
        char t[BB_TOKEN_LEN + 1];
        BrokerLimits l;
        Buffer *a, *bb, *c;

        limits_generous(&l);
        l.max_tokens = 3;
        broker_restart(&l);

        a = create_ok(":1.1", UID_A, "a", 1, false, 0);
        bb = create_ok(":1.2", UID_B, "b", 1, false, 0);
        c = create_ok(":1.3", UID_C, "c", 1, false, 0);
        share_ok(a, ":1.1", UID_A, &o, T0, t);
        share_ok(a, ":1.1", UID_A, &o, T0, t);
        share_ok(bb, ":1.2", UID_B, &o, T0, t);
        ck_assert_int_eq(share_err(c, ":1.3", UID_C, &o), -EDQUOT);
        ck_assert_int_eq(share_err(a, ":1.1", UID_A, &o), -EDQUOT);
        assert_stats(3, 3 * page_size(), 3, 3);
        assert_usage(UID_C, 1, page_size(), 0);

        /* A dropped buffer takes its tokens, and their quota, along. */
        ck_assert_int_eq(release(a, ":1.1", UID_A), 0);
        share_ok(c, ":1.3", UID_C, &o, T0, t);
        assert_stats(2, 2 * page_size(), 2, 2);
}
END_TEST

START_TEST(test_stats_and_usage_each_step) {
        const uint64_t ps = page_size();
        ShareOptions o = share_opts();
        char t1[BB_TOKEN_LEN + 1], t2[BB_TOKEN_LEN + 1];
        Buffer *x, *y, *z;
        int fd = -1;

        x = create_ok(":1.1", UID_A, "x", ps, false, 0);
        assert_stats(1, ps, 1, 0);
        y = create_ok(":1.1", UID_A, "y", 2 * ps, false, 0);
        assert_stats(2, 3 * ps, 1, 0);
        z = create_ok(":1.2", UID_B, "z", 4 * ps, true, 0);
        assert_stats(3, 7 * ps, 2, 0);
        assert_usage(UID_A, 2, 3 * ps, 0);
        assert_usage(UID_B, 1, 4 * ps, 0);

        share_ok(x, ":1.1", UID_A, &o, T0, t1);
        assert_stats(3, 7 * ps, 2, 1);
        o.single_use = true;
        share_ok(z, ":1.2", UID_B, &o, T0, t2);
        assert_stats(3, 7 * ps, 2, 2);
        assert_usage(UID_B, 1, 4 * ps, 1);

        ck_assert_ptr_eq(open_ok(":1.3", UID_C, t1, T0, &fd), x);
        close(fd);
        assert_stats(3, 7 * ps, 3, 2);
        ck_assert_ptr_eq(open_ok(":1.3", UID_C, t2, T0, NULL), z);
        assert_stats(3, 7 * ps, 3, 1);
        assert_usage(UID_B, 1, 4 * ps, 0);
        assert_usage(UID_C, 0, 0, 0);

        ck_assert_int_eq(release(y, ":1.1", UID_A), 0);
        assert_stats(2, 5 * ps, 3, 1);
        assert_usage(UID_A, 1, ps, 1);

        vanish(":1.1");                 /* x is still held by :1.3 */
        assert_stats(2, 5 * ps, 2, 1);
        vanish(":1.2");                 /* z is persistent and held by :1.3 */
        assert_stats(2, 5 * ps, 1, 1);
        vanish(":1.3");                 /* x goes, with its token; z stays */
        assert_stats(1, 4 * ps, 0, 0);
        assert_usage(UID_A, 0, 0, 0);
        assert_usage(UID_B, 1, 4 * ps, 0);

        ck_assert_int_eq(release(z, ":1.4", UID_B), 0);
        assert_stats(0, 0, 0, 0);
        assert_usage(UID_A, 0, 0, 0);
        assert_usage(UID_B, 0, 0, 0);
        assert_usage(UID_C, 0, 0, 0);
        ck_assert_uint_eq(rec.added, rec.removed);
        ck_assert_uint_eq(rec.dropped, 3);
}
END_TEST

static Suite *suite_quotas(void) {
        Suite *s = suite_create("quotas");
        TCase *tc = tcase_new("quotas");

        tcase_add_test(tc, test_quota_buffers_per_uid);
        tcase_add_test(tc, test_quota_bytes_per_uid);
        tcase_add_test(tc, test_quota_tokens_per_uid);
        tcase_add_test(tc, test_quota_global_buffers);
        tcase_add_test(tc, test_quota_global_bytes);
        tcase_add_test(tc, test_quota_global_tokens);
        tcase_add_test(tc, test_fair_share_no_group_locks_out);
        tcase_add_test(tc, test_quota_over_limit_no_wrap);
        tcase_add_test(tc, test_quota_fd_budget);
        tcase_add_test(tc, test_stats_and_usage_each_step);
        suite_add_tcase(s, tc);
        return s;
}

/* =============================================================== ttl === */

START_TEST(test_ttl_persistent_buffer) {
        const uint64_t ttl = 5 * USEC_PER_SEC;
        Buffer *buf;
        uint64_t id;

        buf = create_ok(":1.1", UID_A, "ttl", page_size(), true, ttl);
        id = buf->id;
        ck_assert_uint_eq(buf->expire_usec, T0 + ttl);
        ck_assert_uint_eq(broker_next_deadline(b), T0 + ttl);
        vanish(":1.1");
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);

        ck_assert_uint_eq(broker_expire(b, T0), T0 + ttl);
        ck_assert_uint_eq(broker_expire(b, T0 + ttl - 1), T0 + ttl);
        ck_assert_ptr_eq(broker_find_buffer(b, id), buf);
        ck_assert_uint_eq(rec.dropped, 0);
        assert_stats(1, page_size(), 0, 0);

        ck_assert_uint_eq(broker_expire(b, T0 + ttl + 1), USEC_INFINITY);
        ck_assert_ptr_null(broker_find_buffer(b, id));
        ck_assert_uint_eq(rec.dropped, 1);
        ck_assert_uint_eq(rec.dropped_ids[0], id);
        ck_assert_int_eq(rec.last_reason, BROKER_DROP_EXPIRED);
        ck_assert_uint_eq(broker_next_deadline(b), USEC_INFINITY);
        assert_stats(0, 0, 0, 0);
        assert_usage(UID_A, 0, 0, 0);
        ck_assert_uint_eq(broker_expire(b, T0 + 2 * ttl), USEC_INFINITY);
        ck_assert_uint_eq(rec.dropped, 1);
}
END_TEST

START_TEST(test_ttl_held_buffer) {
        const uint64_t ttl = 5 * USEC_PER_SEC;
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *buf;

        /* A TTL bounds a buffer's life even while it is held. */
        buf = create_ok(":1.1", UID_A, "ttl", page_size(), false, ttl);
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        create_ok(":1.1", UID_A, "other", page_size(), false, 0);
        open_ok(":1.2", UID_B, tok, T0, NULL);
        assert_stats(2, 2 * page_size(), 2, 1);

        broker_expire(b, T0 + ttl - 1);
        assert_stats(2, 2 * page_size(), 2, 1);
        ck_assert_uint_eq(broker_expire(b, T0 + ttl + 1), USEC_INFINITY);
        ck_assert_uint_eq(rec.dropped, 1);
        /* :1.2 held only this buffer: forgotten; :1.1 still holds "other". */
        ck_assert_ptr_null(broker_find_client(b, ":1.2"));
        ck_assert_ptr_nonnull(broker_find_client(b, ":1.1"));
        ck_assert_uint_eq(rec.removed, 1);
        assert_stats(1, page_size(), 1, 0);
        ck_assert_int_eq(open_token(":1.3", UID_C, tok, T0 + ttl + 1, NULL, NULL, NULL), -ENOKEY);
}
END_TEST

START_TEST(test_next_deadline_earliest) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        Buffer *b30;

        b30 = create_ok(":1.1", UID_A, "30", 1, true, 30 * USEC_PER_SEC);
        create_ok(":1.1", UID_A, "10", 1, true, 10 * USEC_PER_SEC);
        create_ok(":1.1", UID_A, "never", 1, true, 0);
        create_ok(":1.1", UID_A, "20", 1, true, 20 * USEC_PER_SEC);
        ck_assert_uint_eq(broker_next_deadline(b), T0 + 10 * USEC_PER_SEC);
        o.ttl_usec = 5 * USEC_PER_SEC;
        share_ok(b30, ":1.1", UID_A, &o, T0, tok);
        ck_assert_uint_eq(broker_next_deadline(b), T0 + 5 * USEC_PER_SEC);

        ck_assert_uint_eq(broker_expire(b, T0 + 6 * USEC_PER_SEC), T0 + 10 * USEC_PER_SEC);
        ck_assert_uint_eq(broker_next_deadline(b), T0 + 10 * USEC_PER_SEC);
        assert_stats(4, 4 * page_size(), 1, 0);
        ck_assert_uint_eq(broker_expire(b, T0 + 25 * USEC_PER_SEC), T0 + 30 * USEC_PER_SEC);
        assert_stats(2, 2 * page_size(), 1, 0);
        ck_assert_uint_eq(rec.dropped, 2);
        ck_assert_uint_eq(broker_expire(b, T0 + 31 * USEC_PER_SEC), USEC_INFINITY);
        ck_assert_uint_eq(broker_next_deadline(b), USEC_INFINITY);
        assert_stats(1, page_size(), 1, 0);
        ck_assert_uint_eq(rec.dropped, 3);
}
END_TEST

START_TEST(test_ttl_near_max) {
        const uint64_t ttls[] = {
                UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - T0 + 1, UINT64_MAX - T0, UINT64_MAX / 2 + 1,
        };

        for (unsigned i = 0; i < ELEMENTSOF(ttls); i++) {
                Buffer *buf = create_ok(":1.1", UID_A, "long", 1, true, ttls[i]);

                /* Never expiring, or clamped: either way not within the hour. */
                ck_assert_msg(buf->expire_usec > T0 + USEC_PER_HOUR, "ttl %" PRIu64 " -> expires at %" PRIu64,
                              ttls[i], buf->expire_usec);
        }
        ck_assert_uint_gt(broker_next_deadline(b), T0 + USEC_PER_HOUR);
        ck_assert_uint_gt(broker_expire(b, T0 + USEC_PER_HOUR), T0 + USEC_PER_HOUR);
        assert_stats(ELEMENTSOF(ttls), ELEMENTSOF(ttls) * page_size(), 1, 0);
        ck_assert_uint_eq(rec.dropped, 0);
}
END_TEST

START_TEST(test_ttl_zero_is_forever) {
        Buffer *buf;

        buf = create_ok(":1.1", UID_A, "forever", 1, true, 0);
        ck_assert_uint_eq(buf->expire_usec, USEC_INFINITY);
        ck_assert_uint_eq(broker_next_deadline(b), USEC_INFINITY);
        ck_assert_uint_eq(broker_expire(b, UINT64_MAX - 1), USEC_INFINITY);
        ck_assert_ptr_eq(broker_find_buffer(b, buf->id), buf);
        assert_stats(1, page_size(), 1, 0);
}
END_TEST

static Suite *suite_ttl(void) {
        Suite *s = suite_create("ttl");
        TCase *tc = tcase_new("ttl");

        tcase_add_test(tc, test_ttl_persistent_buffer);
        tcase_add_test(tc, test_ttl_held_buffer);
        tcase_add_test(tc, test_next_deadline_earliest);
        tcase_add_test(tc, test_ttl_near_max);
        tcase_add_test(tc, test_ttl_zero_is_forever);
        suite_add_tcase(s, tc);
        return s;
}

/* ============================================================= leaks === */

/* These manage their own broker: the fd count is taken before it exists. */

START_TEST(test_fds_create_100_vanish_free) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        BrokerLimits l;
        int before, fd;

        before = count_fds();
        limits_generous(&l);
        broker_start(&l);
        for (unsigned i = 0; i < 100; i++) {
                Buffer *buf = create_ok(":1.1", UID_A, "leak", (i % 4 + 1) * page_size(), false, 0);

                if (i % 3 == 0) {
                        o.read_only = i % 2;
                        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
                        open_ok(":1.1", UID_A, tok, T0, &fd);
                        close(fd);
                }
        }
        ck_assert_int_ge(count_fds(), before + 100);
        assert_stats(100, 250 * page_size(), 1, 34);

        vanish(":1.1");
        assert_stats(0, 0, 0, 0);
        ck_assert_uint_eq(rec.dropped, 100);
        for (unsigned i = 0; i < 100; i++)
                ck_assert_uint_eq(count_dropped(rec.dropped_ids[i]), 1);
        ck_assert_int_eq(count_fds(), before);
        broker_stop();
        ck_assert_int_eq(count_fds(), before);
}
END_TEST

START_TEST(test_fds_free_with_live_buffers) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1];
        BrokerLimits l;
        int before;

        before = count_fds();
        limits_generous(&l);
        broker_start(&l);
        for (unsigned i = 0; i < 20; i++) {
                Buffer *buf = create_ok(":1.1", UID_A, "live", page_size(), i % 2, i % 3 ? 0 : USEC_PER_HOUR);

                share_ok(buf, ":1.1", UID_A, &o, T0, tok);
                if (i % 4 == 0)
                        open_ok(":1.2", UID_B, tok, T0, NULL);
        }
        /* Freed with everything alive: fds, clients, tokens, all go. */
        broker_stop();
        ck_assert_int_eq(count_fds(), before);
}
END_TEST

START_TEST(test_fds_failed_paths) {
        ShareOptions o = share_opts();
        char tok[BB_TOKEN_LEN + 1], ro[BB_TOKEN_LEN + 1];
        BrokerLimits l;
        Buffer *buf;
        int before, fds;

        before = count_fds();
        limits_generous(&l);
        l.max_buffers_per_uid = 1;
        l.max_tokens_per_uid = 2;
        broker_start(&l);

        buf = create_ok(":1.1", UID_A, "one", page_size(), false, 0);
        o.bound_uid = UID_B;
        share_ok(buf, ":1.1", UID_A, &o, T0, tok);
        o = share_opts();
        o.read_only = true;
        share_ok(buf, ":1.1", UID_A, &o, T0, ro);
        fds = count_fds();
        for (unsigned i = 0; i < 50; i++) {
                int fd = -1;

                ck_assert_int_eq(create_err(":1.1", UID_A, "q", page_size(), false, 0), -EDQUOT);
                ck_assert_int_eq(create_err(":1.2", UID_B, "a\nb", page_size(), false, 0), -EINVAL);
                ck_assert_int_eq(create_err(":1.2", UID_B, "big", UINT64_MAX, false, 0) < 0, 1);
                ck_assert_int_eq(share_err(buf, ":1.1", UID_A, &o), -EDQUOT);
                ck_assert_int_eq(open_token(":1.3", UID_C, tok, T0, NULL, NULL, NULL), -EACCES);
                ck_assert_int_eq(open_token(":1.3", UID_C, "ffffffffffffffffffffffffffffffff", T0, NULL, NULL,
                                            NULL), -ENOKEY);
                /* Read-only opens reopen the memfd: none of those fds may stay behind. */
                open_ok(":1.3", UID_C, ro, T0, &fd);
                close(fd);
        }
        ck_assert_int_eq(count_fds(), fds);
        assert_stats(1, page_size(), 2, 2);
        broker_stop();
        ck_assert_int_eq(count_fds(), before);
}
END_TEST

static Suite *suite_leaks(void) {
        Suite *s = suite_create("leaks");
        TCase *tc = tcase_create("fds");

        tcase_set_timeout(tc, TEST_TIMEOUT);
        tcase_add_test(tc, test_fds_create_100_vanish_free);
        tcase_add_test(tc, test_fds_free_with_live_buffers);
        tcase_add_test(tc, test_fds_failed_paths);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr;
        int failed;

        sr = srunner_create(suite_registry());
        srunner_add_suite(sr, suite_holders());
        srunner_add_suite(sr, suite_tokens());
        srunner_add_suite(sr, suite_quotas());
        srunner_add_suite(sr, suite_ttl());
        srunner_add_suite(sr, suite_leaks());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
