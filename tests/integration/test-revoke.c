/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Revoking tokens: Buffer1.RevokeToken(s) and RevokeTokens() → u, through
 * sd-bus, the library and bufbrokerctl, on both buses. A revoked token
 * fails Open() as an unknown one does; only the owner uid and root may
 * revoke, and nobody else learns from trying whether a token exists; fds
 * opened before stay. (Across a restart: test-fdstore.c.)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bufbroker.h"
#include "harness.h"

#define EXIT_USAGE 2

static int revoke_token(sd_bus *bus, const char *path, const char *token, sd_bus_error *error) {
        return sd_bus_call_method(bus ?: test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "RevokeToken", error,
                                  NULL, "s", token);
}

static int revoke_tokens(sd_bus *bus, const char *path, uint32_t *ret_count, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus ?: test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "RevokeTokens", error,
                               &reply, "");
        if (r >= 0) {
                ck_assert_int_ge(sd_bus_message_read(reply, "u", ret_count), 0);
                sd_bus_message_unref(reply);
        }
        return r;
}

static char *share(const Created *c) {
        char *token = NULL;

        ck_assert_int_ge(call_share(NULL, c->path, false, (uid_t) -1, false, 0, &token, NULL), 0);
        return token;
}

static void assert_open_fails(const char *token, const char *context) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = call_open(NULL, token, NULL, NULL, NULL, &error);

        assert_bus_error(&error, r, BB_ERROR_NO_SUCH_TOKEN, NULL, context);
        sd_bus_error_free(&error);
}

START_TEST(test_revoke_one) {
        _cleanup_created_ Created c = {};
        _cleanup_free_ char *t1 = NULL, *t2 = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_error unknown = SD_BUS_ERROR_NULL;
        sd_bus *other = NULL;
        Snapshot base;
        char got[8] = "";
        int fd = -1;

        baseline_after_warmup(&base);
        create_memfd(NULL, "one", 4096, false, 0, &c);
        ck_assert_int_eq(pwrite(c.fd, "data", 4, 0), 4);
        t1 = share(&c);
        t2 = share(&c);
        /* Another connection opens with t1 before it is revoked. */
        ck_assert_int_ge(bus_connect(&other), 0);
        ck_assert_int_ge(call_open(other, t1, NULL, &fd, NULL, NULL), 0);
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens + 2);

        ck_assert_msg(revoke_token(NULL, c.path, t1, &error) >= 0, "RevokeToken: %s", error.message);
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens + 1);
        assert_open_fails(t1, "Open with a revoked token");
        /* The same answer as for a token that never was: no oracle. */
        {
                char never[BB_TOKEN_LEN + 1];
                int r;

                memset(never, 'e', BB_TOKEN_LEN);
                never[BB_TOKEN_LEN] = 0;
                r = call_open(NULL, never, NULL, NULL, NULL, &unknown);
                assert_bus_error(&unknown, r, BB_ERROR_NO_SUCH_TOKEN, NULL, "Open with an unknown token");
        }
        /* Revoked once, it is gone: a second revocation says so. */
        sd_bus_error_free(&error);
        assert_bus_error(&error, revoke_token(NULL, c.path, t1, &error), BB_ERROR_NO_SUCH_TOKEN, t1,
                         "revoking it again");
        sd_bus_error_free(&error);
        /* The other token works; the fd opened before stays, and reads. */
        ck_assert_int_ge(call_open(NULL, t2, NULL, NULL, NULL, NULL), 0);
        ck_assert_int_eq(pread(fd, got, 4, 0), 4);
        ck_assert_str_eq(got, "data");
        close(fd);
        sd_bus_flush_close_unref(other);
        sd_bus_error_free(&unknown);

        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        created_done(&c);       /* the fd is the lease */
        assert_back_to(&base, "after revoking and releasing");
}
END_TEST

START_TEST(test_revoke_all) {
        _cleanup_created_ Created c = {}, d = {};
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL, *other = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint32_t count = 99;
        Snapshot base;

        baseline_after_warmup(&base);
        create_memfd(NULL, "all", 4096, false, 0, &c);
        create_memfd(NULL, "other", 4096, false, 0, &d);
        ck_assert_msg(revoke_tokens(NULL, c.path, &count, &error) >= 0, "RevokeTokens: %s", error.message);
        ck_assert_uint_eq(count, 0);
        t1 = share(&c);
        t2 = share(&c);
        t3 = share(&c);
        other = share(&d);

        ck_assert_msg(revoke_tokens(NULL, c.path, &count, &error) >= 0, "RevokeTokens: %s", error.message);
        ck_assert_uint_eq(count, 3);
        assert_open_fails(t1, "t1 after RevokeTokens");
        assert_open_fails(t2, "t2 after RevokeTokens");
        assert_open_fails(t3, "t3 after RevokeTokens");
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens + 1);
        /* Another buffer's token stays. */
        ck_assert_int_ge(call_open(NULL, other, NULL, NULL, NULL, NULL), 0);

        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        ck_assert_int_ge(call_release(NULL, d.path, NULL), 0);
        created_done(&c);       /* the fds are the leases */
        created_done(&d);
        assert_back_to(&base, "after RevokeTokens");
}
END_TEST

/* Another uid may not revoke, and learns nothing about tokens: the same
 * NotOwner for a real token, an unknown one and garbage. */
START_TEST(test_revoke_by_another_uid) {
        _cleanup_created_ Created c = {};
        _cleanup_free_ char *token = NULL;
        _cleanup_run_result_ RunResult r1 = {}, r2 = {}, r3 = {}, r4 = {};
        char never[BB_TOKEN_LEN + 1];
        Snapshot base;

        baseline_after_warmup(&base);
        create_memfd(NULL, "mine", 4096, false, 0, &c);
        token = share(&c);
        memset(never, 'b', BB_TOKEN_LEN);
        never[BB_TOKEN_LEN] = 0;

        busctl(&r1, NOBODY_UID, "call", BB_BUS_NAME, c.path, BB_BUFFER_INTERFACE, "RevokeToken", "s", token);
        busctl(&r2, NOBODY_UID, "call", BB_BUS_NAME, c.path, BB_BUFFER_INTERFACE, "RevokeToken", "s", never);
        busctl(&r3, NOBODY_UID, "call", BB_BUS_NAME, c.path, BB_BUFFER_INTERFACE, "RevokeToken", "s", "garbage");
        busctl(&r4, NOBODY_UID, "call", BB_BUS_NAME, c.path, BB_BUFFER_INTERFACE, "RevokeTokens");
        ck_assert_msg(r1.status != 0 && strstr(r1.err, "belongs to uid 0"), "real token: %s", r1.err);
        /* The same words, whatever the token: nothing to tell them apart. */
        ck_assert_str_eq(r1.err, r2.err);
        ck_assert_str_eq(r1.err, r3.err);
        ck_assert_msg(r4.status != 0 && strstr(r4.err, "belongs to uid 0"), "RevokeTokens: %s", r4.err);

        /* Nothing changed: the token still opens. */
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens + 1);
        ck_assert_int_ge(call_open(NULL, token, NULL, NULL, NULL, NULL), 0);
        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        created_done(&c);       /* the fd is the lease */
        assert_back_to(&base, "after another uid tried");
}
END_TEST

START_TEST(test_revoke_bad_tokens) {
        static const char *const malformed[] = {
                "", "x", "0123456789abcdef0123456789abcde",         /* one short */
                "0123456789abcdef0123456789abcdef0",                  /* one long */
                "0123456789ABCDEF0123456789ABCDEF",                   /* upper case */
                "0123456789abcdef0123456789abcdeg",
                "0123456789abcdef 123456789abcdef",
        };
        _cleanup_created_ Created c = {}, d = {};
        _cleanup_free_ char *mine = NULL, *theirs = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char never[BB_TOKEN_LEN + 1];
        Snapshot base, before;

        baseline_after_warmup(&base);
        create_memfd(NULL, "bad", 4096, false, 0, &c);
        create_memfd(NULL, "another", 4096, false, 0, &d);
        mine = share(&c);
        theirs = share(&d);
        stats_read(&before);

        for (size_t i = 0; i < ELEMENTSOF(malformed); i++) {
                assert_bus_error(&error, revoke_token(NULL, c.path, malformed[i], &error), SD_BUS_ERROR_INVALID_ARGS,
                                 "malformed", malformed[i]);
                sd_bus_error_free(&error);
        }
        memset(never, 'c', BB_TOKEN_LEN);
        never[BB_TOKEN_LEN] = 0;
        assert_bus_error(&error, revoke_token(NULL, c.path, never, &error), BB_ERROR_NO_SUCH_TOKEN, never,
                         "an unknown token");
        sd_bus_error_free(&error);
        /* Another buffer's token, through this buffer: unknown here, and left alone. */
        assert_bus_error(&error, revoke_token(NULL, c.path, theirs, &error), BB_ERROR_NO_SUCH_TOKEN, theirs,
                         "another buffer's token");
        sd_bus_error_free(&error);
        /* A buffer that does not exist. */
        assert_bus_error(&error, revoke_token(NULL, BB_BUFFER_PATH_PREFIX "/999999", mine, &error),
                         BB_ERROR_NO_SUCH_BUFFER, NULL, "no such buffer");
        sd_bus_error_free(&error);
        /* Wrong signatures. */
        ck_assert_int_lt(sd_bus_call_method(test_bus(), BB_BUS_NAME, c.path, BB_BUFFER_INTERFACE, "RevokeToken",
                                            &error, NULL, "u", 7), 0);
        sd_bus_error_free(&error);
        ck_assert_int_lt(sd_bus_call_method(test_bus(), BB_BUS_NAME, c.path, BB_BUFFER_INTERFACE, "RevokeTokens",
                                            &error, NULL, "s", mine), 0);
        sd_bus_error_free(&error);

        assert_back_to(&before, "bad revocations changed nothing");
        ck_assert_int_ge(call_open(NULL, mine, NULL, NULL, NULL, NULL), 0);
        ck_assert_int_ge(call_open(NULL, theirs, NULL, NULL, NULL, NULL), 0);
        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        ck_assert_int_ge(call_release(NULL, d.path, NULL), 0);
        created_done(&c);       /* the fds are the leases */
        created_done(&d);
        assert_back_to(&base, "released");
}
END_TEST

/* The library, as another uid (refused) and as the owner. */
typedef struct LibArgs {
        uint64_t id;
        const char *t1, *t2;
        bool owner;
} LibArgs;

static int lib_revoke(void *userdata) {
        const LibArgs *a = userdata;
        bb_client *c = NULL;
        bb_buffer *buf = NULL, *opened = NULL;
        unsigned count = 99;
        int r;

        r = bb_client_new_address(&c, H->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_buffer_get(c, a->id, &buf);
        child_check(r == 0 || (!a->owner && r == -EPERM), "get: %s", strerror(-r));
        if (!a->owner) {
                /* Not even a handle: open one through the token. */
                if (r < 0) {
                        r = bb_buffer_open(c, a->t2, &opened);
                        child_check(r == 0, "open: %s", strerror(-r));
                        buf = opened;
                }
                r = bb_buffer_revoke_token(buf, a->t1);
                child_check(r == -EPERM, "revoke as another uid: %d, want -EPERM", r);
                r = bb_buffer_revoke_tokens(buf, &count);
                child_check(r == -EPERM && count == 99, "revoke all as another uid: %d", r);
        } else {
                child_check(bb_buffer_revoke_token(NULL, a->t1) == -EINVAL, "NULL buffer");
                child_check(bb_buffer_revoke_token(buf, NULL) == -EINVAL, "NULL token");
                child_check(bb_buffer_revoke_tokens(NULL, NULL) == -EINVAL, "NULL buffer (all)");
                r = bb_buffer_revoke_token(buf, "nope");
                child_check(r == -EINVAL, "malformed: %d", r);
                r = bb_buffer_revoke_token(buf, a->t1);
                child_check(r == 0, "revoke: %s", strerror(-r));
                r = bb_buffer_revoke_token(buf, a->t1);
                child_check(r == -ENOKEY, "revoke again: %d, want -ENOKEY", r);
                r = bb_buffer_open(c, a->t1, &opened);
                child_check(r == -ENOKEY, "open a revoked token: %d", r);
                r = bb_buffer_revoke_tokens(buf, &count);
                child_check(r == 0 && count == 1, "revoke all: %d, %u", r, count);
                r = bb_buffer_revoke_tokens(buf, NULL);
                child_check(r == 0, "revoke all again, count NULL: %d", r);
        }
        bb_buffer_unref(buf);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_revoke_library) {
        _cleanup_created_ Created c = {};
        _cleanup_free_ char *t1 = NULL, *t2 = NULL;
        LibArgs a;
        Snapshot base;

        baseline_after_warmup(&base);
        create_memfd(NULL, "lib", 4096, false, 0, &c);
        t1 = share(&c);
        t2 = share(&c);
        a = (LibArgs) { .id = c.id, .t1 = t1, .t2 = t2, .owner = false };
        ck_assert_int_eq(run_as(NOBODY_UID, lib_revoke, &a, scaled_ms(10000)), 0);
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens + 2);
        a.owner = true;
        ck_assert_int_eq(run_as(AS_ROOT, lib_revoke, &a, scaled_ms(10000)), 0);
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens);
        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        created_done(&c);       /* the fd is the lease */
        assert_back_to(&base, "after the library revoked");
}
END_TEST

START_TEST(test_revoke_cli) {
        _cleanup_created_ Created c = {};
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL;
        char id[24], never[BB_TOKEN_LEN + 1];
        Snapshot base;

        baseline_after_warmup(&base);
        create_memfd(NULL, "cli", 4096, false, 0, &c);
        snprintf(id, sizeof(id), "%" PRIu64, c.id);
        t1 = share(&c);
        t2 = share(&c);
        t3 = share(&c);
        memset(never, 'd', BB_TOKEN_LEN);
        never[BB_TOKEN_LEN] = 0;

        /* Usage errors: nothing to revoke, both, a bad token, no id. */
        {
                _cleanup_run_result_ RunResult a = {}, b = {}, d = {}, e = {}, f = {};

                ctl(&a, AS_ROOT, NULL, "revoke", id);
                ctl(&b, AS_ROOT, NULL, "revoke", id, t1, "--all");
                ctl(&d, AS_ROOT, NULL, "revoke", id, "not-a-token");
                ctl(&e, AS_ROOT, NULL, "revoke");
                ctl(&f, AS_ROOT, NULL, "list", "--all");
                ck_assert_run_status(&a, EXIT_USAGE);
                ck_assert_run_status(&b, EXIT_USAGE);
                ck_assert_run_status(&d, EXIT_USAGE);
                ck_assert_run_status(&e, EXIT_USAGE);
                ck_assert_run_status(&f, EXIT_USAGE);
                ck_assert_msg(strstr(d.err, "not-a-token"), "bad token not named: %s", d.err);
        }
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens + 3);
        /* Another uid: refused, nothing changes. */
        {
                _cleanup_run_result_ RunResult r = {};

                ctl(&r, NOBODY_UID, NULL, "revoke", id, t1);
                ck_assert_msg(r.status != 0 && strstr(r.err, "belongs to uid 0"), "nobody: %d %s", r.status, r.err);
        }
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens + 3);
        /* One good, one unknown: the good one goes, the failure is reported. */
        {
                _cleanup_run_result_ RunResult r = {};

                ctl(&r, AS_ROOT, NULL, "revoke", id, never, t1);
                ck_assert_msg(r.status == 1 && strstr(r.err, never), "mixed: %d %s", r.status, r.err);
        }
        assert_open_fails(t1, "a token revoked by bufbrokerctl");
        /* --all: the two left. */
        {
                _cleanup_run_result_ RunResult r = {};

                ctl(&r, AS_ROOT, NULL, "revoke", id, "--all");
                ck_assert_run_status(&r, 0);
                ck_assert_str_eq(r.out, "2\n");
        }
        assert_open_fails(t2, "t2 after revoke --all");
        assert_open_fails(t3, "t3 after revoke --all");
        ck_assert_int_ge(call_release(NULL, c.path, NULL), 0);
        created_done(&c);       /* the fd is the lease */
        assert_back_to(&base, "after bufbrokerctl revoked");
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_revoke_one);
        tcase_add_test(tc, test_revoke_all);
        tcase_add_test(tc, test_revoke_by_another_uid);
        tcase_add_test(tc, test_revoke_bad_tokens);
        tcase_add_test(tc, test_revoke_library);
        tcase_add_test(tc, test_revoke_cli);
}

int main(void) {
        Suite *s = suite_create("revoke");

        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
