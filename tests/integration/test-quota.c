/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Limits: per-uid buffers, bytes and tokens, the largest buffer, and the
 * global totals. Exceeding one is org.bufbroker.Error.QuotaExceeded (-EDQUOT
 * in the library), leaves nothing behind, and leaves other uids served (for
 * per-uid limits). The daemon runs with small limits set by its options,
 * which the Limits property must show.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bufbroker.h"
#include "harness.h"

#define K 1024u

static const char *const per_uid_args[] = {
        "--max-buffer-size=64K",
        "--max-buffers-per-uid=3",
        "--max-bytes-per-uid=128K",
        "--max-tokens-per-uid=2",
        "--max-buffers=100",
        "--max-bytes=100M",
        "--max-tokens=100",
        NULL,
};

static const char *const global_args[] = {
        "--max-buffers=8",
        "--max-bytes=1M",
        "--max-tokens=4",
        NULL,
};

static bb_client *lib_connect(void) {
        bb_client *c = NULL;
        int r = bb_client_new_address(&c, H->address);

        ck_assert_msg(r == 0, "bb_client_new_address: %s", strerror(-r));
        return c;
}

/* Create through the library and expect -EDQUOT with the error name and a
 * message containing needle. */
static void expect_create_quota(bb_client *c, uint64_t size, const char *needle) {
        bb_buffer *buf = NULL;
        int r = bb_buffer_create(c, "over", size, 0, 0, &buf);

        ck_assert_msg(r == -EDQUOT, "create of %" PRIu64 " bytes: %d (%s), want -EDQUOT", size, r,
                      strerror(-r));
        ck_assert_str_eq(bb_client_error_name(c), BB_ERROR_QUOTA_EXCEEDED);
        ck_assert_msg(strstr(bb_client_error_message(c), needle),
                      "quota message '%s' does not mention '%s'", bb_client_error_message(c),
                      needle);
}

/* uid 65534 is still served: it creates, shares and releases one buffer. */
static int nobody_is_served(void *userdata) {
        bb_client *c = NULL;
        bb_buffer *buf = NULL;
        char *token = NULL;
        int r;

        r = bb_client_new_address(&c, H->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_buffer_create(c, "nobody-served", 64 * K, 0, 0, &buf);
        child_check(r == 0, "uid %u not served: %s (%s)", (unsigned) getuid(), strerror(-r),
                    bb_client_error_message(c) ?: "");
        r = bb_buffer_share(buf, 0, 0, 0, &token);
        child_check(r == 0, "uid %u cannot share: %s (%s)", (unsigned) getuid(), strerror(-r),
                    bb_client_error_message(c) ?: "");
        free(token);
        r = bb_buffer_release(buf);
        child_check(r == 0, "release: %s", strerror(-r));
        bb_buffer_unref(buf);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_limits_property) {
        static const struct {
                const char *key;
                uint64_t value;
        } want[] = {
                { BB_LIMIT_MAX_BUFFER_SIZE, 64 * K },
                { BB_LIMIT_MAX_BUFFERS_PER_UID, 3 },
                { BB_LIMIT_MAX_BYTES_PER_UID, 128 * K },
                { BB_LIMIT_MAX_TOKENS_PER_UID, 2 },
                { BB_LIMIT_MAX_BUFFERS, 100 },
                { BB_LIMIT_MAX_BYTES, 100 * K * K },
                { BB_LIMIT_MAX_TOKENS, 100 },
                { BB_LIMIT_MAX_PRIVATE_PER_UID, 16 },
                { BB_LIMIT_MAX_PRIVATE, 128 },
                { BB_LIMIT_MAX_LISTENERS_PER_UID, 64 },
                { BB_LIMIT_MAX_LISTENERS, 1024 },
        };
        bb_client *c = lib_connect();
        bb_key_value *kv = NULL;
        size_t n = 0;

        ck_assert_int_eq(bb_client_get_limits(c, &kv, &n), 0);
        ck_assert_uint_eq(n, ELEMENTSOF(want) + 1);
        {
                /* Fitted to the daemon's RLIMIT_NOFILE (ours, inherited). */
                struct rlimit rl;
                uint64_t fds = 0;

                ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
                ck_assert_int_eq(bb_client_get_limit(c, BB_LIMIT_MAX_FDS, &fds), 0);
                ck_assert_uint_gt(fds, 0);
                ck_assert_uint_lt(fds, rl.rlim_max);
        }
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                uint64_t v = 0;

                ck_assert_int_eq(bb_client_get_limit(c, want[i].key, &v), 0);
                ck_assert_msg(v == want[i].value, "Limits[%s] = %" PRIu64 ", want %" PRIu64,
                              want[i].key, v, want[i].value);
        }
        free(kv);
        bb_client_unref(c);
}
END_TEST

START_TEST(test_max_buffer_size) {
        bb_client *c = lib_connect();
        bb_buffer *buf = NULL;
        Snapshot base;

        stats_read(&base);
        expect_create_quota(c, 64 * K + 1, "65537");
        assert_back_to(&base, "after a too large buffer");
        ck_assert_int_eq(bb_buffer_create(c, "largest", 64 * K, 0, 0, &buf), 0);
        ck_assert_int_eq(bb_buffer_release(buf), 0);
        bb_buffer_unref(buf);
        bb_client_unref(c);
}
END_TEST

START_TEST(test_per_uid_buffers) {
        bb_client *c = lib_connect();
        bb_buffer *bufs[3] = { NULL };
        Snapshot full;

        for (size_t i = 0; i < 3; i++)
                ck_assert_int_eq(bb_buffer_create(c, "mine", 4 * K, 0, 0, &bufs[i]), 0);
        stats_read(&full);
        expect_create_quota(c, 4 * K, "buffers");
        assert_back_to(&full, "after the 4th buffer was refused");
        /* busctl (another connection, same uid) is refused as well */
        {
                _cleanup_run_result_ RunResult r = { 0 };

                busctl(&r, AS_ROOT, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                       "CreateMemfd", "sta{sv}", "busctl", "4096", "0");
                ck_assert_run_status(&r, 1);
                ck_assert_msg(strstr(r.err, "buffers"), "busctl: %s", r.err);
        }
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_is_served, NULL, 10000), 0);
        assert_back_to(&full, "after nobody was served");

        /* releasing one frees the slot */
        ck_assert_int_eq(bb_buffer_release(bufs[0]), 0);
        bufs[0] = bb_buffer_unref(bufs[0]);
        ck_assert_int_eq(bb_buffer_create(c, "again", 4 * K, 0, 0, &bufs[0]), 0);
        for (size_t i = 0; i < 3; i++)
                bb_buffer_unref(bufs[i]);
        bb_client_unref(c);
}
END_TEST

START_TEST(test_per_uid_bytes) {
        bb_client *c = lib_connect();
        bb_buffer *a = NULL, *b = NULL;
        Snapshot full;

        ck_assert_int_eq(bb_buffer_create(c, "a", 64 * K, 0, 0, &a), 0);
        ck_assert_int_eq(bb_buffer_create(c, "b", 60 * K, 0, 0, &b), 0);
        stats_read(&full);
        ck_assert_uint_eq(full.bytes, 124 * K);
        /* 4K more fits exactly; 4K + 1 rounds to 8K and does not */
        expect_create_quota(c, 4 * K + 1, "131072");
        assert_back_to(&full, "after a byte quota refusal");
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_is_served, NULL, 10000), 0);
        {
                bb_buffer *d = NULL;

                ck_assert_int_eq(bb_buffer_create(c, "exact", 4 * K, 0, 0, &d), 0);
                bb_buffer_unref(d);
        }
        bb_buffer_unref(a);
        bb_buffer_unref(b);
        bb_client_unref(c);
}
END_TEST

START_TEST(test_per_uid_tokens) {
        bb_client *c = lib_connect();
        bb_buffer *buf = NULL;
        char *t1 = NULL, *t2 = NULL, *t3 = NULL;
        Snapshot full;
        int r;

        ck_assert_int_eq(bb_buffer_create(c, "tokens", 4 * K, 0, 0, &buf), 0);
        ck_assert_int_eq(bb_buffer_share(buf, BB_SHARE_SINGLE_USE, 0, 0, &t1), 0);
        ck_assert_int_eq(bb_buffer_share(buf, 0, 0, 0, &t2), 0);
        stats_read(&full);
        r = bb_buffer_share(buf, 0, 0, 0, &t3);
        ck_assert_int_eq(r, -EDQUOT);
        ck_assert_str_eq(bb_client_error_name(c), BB_ERROR_QUOTA_EXCEEDED);
        ck_assert_msg(strstr(bb_client_error_message(c), "tokens"), "message: %s",
                      bb_client_error_message(c));
        assert_back_to(&full, "after a token quota refusal");
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_is_served, NULL, 10000), 0);

        /* a used single-use token gives its slot back */
        {
                bb_buffer *o = NULL;

                ck_assert_int_eq(bb_buffer_open(c, t1, &o), 0);
                bb_buffer_unref(o);
        }
        ck_assert_int_eq(bb_buffer_share(buf, 0, 0, 0, &t3), 0);
        free(t1);
        free(t2);
        free(t3);
        bb_buffer_unref(buf);
        bb_client_unref(c);
}
END_TEST

/* The quota follows the owner: root's Release of nobody's persistent buffers
 * gives nobody its slots back. */
static int nobody_fills_quota(void *userdata) {
        bb_client *c = NULL;
        bb_buffer *buf = NULL;
        int r;

        r = bb_client_new_address(&c, H->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        for (int i = 0; i < 3; i++) {
                r = bb_buffer_create(c, "persist", 4 * K, BB_CREATE_PERSISTENT, 0, &buf);
                child_check(r == 0, "create #%d: %s", i, strerror(-r));
                bb_buffer_unref(buf);
        }
        r = bb_buffer_create(c, "one-too-many", 4 * K, BB_CREATE_PERSISTENT, 0, &buf);
        child_check(r == -EDQUOT, "4th persistent buffer: %d", r);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_quota_follows_owner) {
        bb_client *c = lib_connect();
        bb_buffer **list = NULL;
        size_t n = 0;

        ck_assert_int_eq(run_as(NOBODY_UID, nobody_fills_quota, NULL, 10000), 0);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), 3);
        /* root's own quota is untouched by nobody's */
        {
                bb_buffer *mine = NULL;

                ck_assert_int_eq(bb_buffer_create(c, "roots", 4 * K, 0, 0, &mine), 0);
                ck_assert_int_eq(bb_buffer_release(mine), 0);
                bb_buffer_unref(mine);
        }
        ck_assert_int_eq(bb_client_list_buffers(c, &list, &n), 0);
        ck_assert_uint_eq(n, 3);
        for (size_t i = 0; i < n; i++) {
                ck_assert_uint_eq(bb_buffer_owner_uid(list[i]), NOBODY_UID);
                ck_assert_int_eq(bb_buffer_release(list[i]), 0);
        }
        bb_buffer_list_free(list, n);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), 0);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_fills_quota, NULL, 10000), 0);
        bb_client_unref(c);
}
END_TEST

/* ---- global limits ----------------------------------------------------------- */
/* Global limits are shared fairly: of what the others leave, a uid may hold at
 * most an (n+1)th (rounded up), n counting the uids that hold some, itself
 * included. So the first uid gets half, and later ones still get some. */

/* As the uid it runs as: create persistent 4K buffers until refused; the
 * exit status is how many it got (the buffers outlive the process). */
static int take_all_buffers(void *userdata) {
        bb_client *c = NULL;
        int r, n = 0;

        r = bb_client_new_address(&c, H->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        for (;;) {
                bb_buffer *buf = NULL;

                r = bb_buffer_create(c, "share", 4 * K, BB_CREATE_PERSISTENT, 0, &buf);
                if (r < 0)
                        break;
                bb_buffer_unref(buf);
                n++;
        }
        child_check(r == -EDQUOT, "uid %u: %s", (unsigned) getuid(), strerror(-r));
        child_check(strstr(bb_client_error_message(c), "shared fairly"), "message: %s",
                    bb_client_error_message(c));
        bb_client_unref(c);
        return n;
}

static void release_everything(bb_client *c) {
        bb_buffer **list = NULL;
        size_t n = 0;

        ck_assert_int_eq(bb_client_list_buffers(c, &list, &n), 0);
        for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(bb_buffer_release(list[i]), 0);
        bb_buffer_list_free(list, n);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), 0);
}

START_TEST(test_global_limits) {
        bb_client *c = lib_connect();
        bb_buffer *bufs[4] = { NULL };
        char *tokens[2] = { NULL };
        char *extra = NULL;
        Snapshot full;

        /* Alone, root gets half of the 8 buffers and of the 4 tokens. */
        for (size_t i = 0; i < 4; i++)
                ck_assert_int_eq(bb_buffer_create(c, "global", 4 * K, 0, 0, &bufs[i]), 0);
        expect_create_quota(c, 4 * K, "shared fairly");
        for (size_t i = 0; i < 2; i++)
                ck_assert_int_eq(bb_buffer_share(bufs[0], 0, 0, 0, &tokens[i]), 0);
        ck_assert_int_eq(bb_buffer_share(bufs[1], 0, 0, 0, &extra), -EDQUOT);
        ck_assert_str_eq(bb_client_error_name(c), BB_ERROR_QUOTA_EXCEEDED);
        stats_read(&full);
        ck_assert_uint_eq(full.buffers, 4);
        ck_assert_uint_eq(full.tokens, 2);

        /* Other uids are still served (with first come, first served they
         * were all refused), and the shares shrink as more uids hold some:
         * 65534 gets a third of the 4 left (2), the next ones 1 each. */
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_is_served, NULL, 10000), 0);
        assert_back_to(&full, "after nobody was served");
        ck_assert_int_eq(run_as(NOBODY_UID, take_all_buffers, NULL, 10000), 2);
        ck_assert_int_eq(run_as(system_uid("daemon"), take_all_buffers, NULL, 10000), 1);
        ck_assert_int_eq(run_as(system_uid("bin"), take_all_buffers, NULL, 10000), 1);
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), 8);
        ck_assert_int_eq(run_as(system_uid("sys"), take_all_buffers, NULL, 10000), 0);

        /* Room again once some go: a fifth of the 4 left, rounded up. */
        for (size_t i = 0; i < 4; i++) {
                ck_assert_int_eq(bb_buffer_release(bufs[i]), 0);
                bb_buffer_unref(bufs[i]);
        }
        ck_assert_int_eq(run_as(system_uid("sys"), take_all_buffers, NULL, 10000), 1);
        release_everything(c);
        for (size_t i = 0; i < 2; i++)
                free(tokens[i]);
        bb_client_unref(c);
}
END_TEST

START_TEST(test_global_bytes) {
        bb_client *c = lib_connect();
        bb_buffer *big = NULL;
        Snapshot full;

        /* The default largest buffer is 1 GiB: here the global 1M refuses
         * more than root's half of it. */
        expect_create_quota(c, 1020 * K, "shared fairly");
        ck_assert_int_eq(bb_buffer_create(c, "most", 512 * K, 0, 0, &big), 0);
        expect_create_quota(c, 1, "bytes in use");
        stats_read(&full);
        ck_assert_uint_eq(full.bytes, 512 * K);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_is_served, NULL, 10000), 0);
        assert_back_to(&full, "after nobody was served");
        ck_assert_int_eq(bb_buffer_release(big), 0);
        bb_buffer_unref(big);
        bb_client_unref(c);
}
END_TEST

/* ---- the daemon's own option parsing --------------------------------------- */

START_TEST(test_daemon_rejects_bad_limits) {
        static const char *const bad[][2] = {
                { "--max-buffers-per-uid", "abc" },
                { "--max-buffers-per-uid", "-1" },
                { "--max-bytes-per-uid", "12Q" },
                { "--max-buffer-size", "18446744073709551616" },
                { "--max-tokens", "" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_run_result_ RunResult r = { 0 };
                const char *argv[] = { harness_env("BUFBROKERD"), bad[i][0], bad[i][1], NULL };
                const char *env[] = { "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent", NULL };

                ck_assert(run_argv(&r, AS_ROOT, NULL, 0, env, argv) == 0);
                ck_assert_msg(r.status != 0, "bufbrokerd %s '%s' exited 0", bad[i][0], bad[i][1]);
                ck_assert_msg(r.status != -1 && r.status < 128, "bufbrokerd %s '%s' status %d",
                              bad[i][0], bad[i][1], r.status);
                ck_assert_msg(*bad[i][1] == 0 || strstr(r.err, bad[i][1]),
                              "bufbrokerd's complaint does not name '%s': %s", bad[i][1], r.err);
        }
}
END_TEST

static void setup_per_uid_daemon(void) {
        harness_start(BUS_DBUS_DAEMON, true, per_uid_args);
}
static void setup_per_uid_broker(void) {
        harness_start(BUS_DBUS_BROKER, true, per_uid_args);
}
static void setup_global_daemon(void) {
        harness_start(BUS_DBUS_DAEMON, true, global_args);
}
static void setup_global_broker(void) {
        harness_start(BUS_DBUS_BROKER, true, global_args);
}

static void add_per_uid(TCase *tc) {
        tcase_add_test(tc, test_limits_property);
        tcase_add_test(tc, test_max_buffer_size);
        tcase_add_test(tc, test_per_uid_buffers);
        tcase_add_test(tc, test_per_uid_bytes);
        tcase_add_test(tc, test_per_uid_tokens);
        tcase_add_test(tc, test_quota_follows_owner);
        tcase_add_test(tc, test_daemon_rejects_bad_limits);
}

static void add_global(TCase *tc) {
        tcase_add_test(tc, test_global_limits);
        tcase_add_test(tc, test_global_bytes);
}

int main(void) {
        Suite *s = suite_create("quotas");

        harness_add_tcase(s, "per-uid dbus-daemon", setup_per_uid_daemon, add_per_uid);
        harness_add_tcase(s, "per-uid dbus-broker", setup_per_uid_broker, add_per_uid);
        harness_add_tcase(s, "global dbus-daemon", setup_global_daemon, add_global);
        harness_add_tcase(s, "global dbus-broker", setup_global_broker, add_global);
        return harness_main(s);
}
