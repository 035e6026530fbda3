/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hostile input on every method and property. Each case sends one bad call
 * and asserts the exact D-Bus error name, that the message names the bad
 * value, and that the daemon is alive, still owns its name, and is back at
 * its baseline: Stats (buffers, bytes, clients, tokens) and its fd count.
 * Malformed messages are built with sd-bus (which does not check them
 * against the remote signature) and sent with busctl; an fd sent to the
 * daemon must be refused by the bus policy before the daemon sees it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define INVALID_ARGS "org.freedesktop.DBus.Error.InvalidArgs"
#define UNKNOWN_METHOD "org.freedesktop.DBus.Error.UnknownMethod"
#define UNKNOWN_PROPERTY "org.freedesktop.DBus.Error.UnknownProperty"
#define PROPERTY_READ_ONLY "org.freedesktop.DBus.Error.PropertyReadOnly"
#define ACCESS_DENIED "org.freedesktop.DBus.Error.AccessDenied"

#define MAX_NEEDLES 3

/* Send m (consumed) on the test's connection; assert the error name, that
 * the message contains every needle, and the baseline. */
static void expect_error(sd_bus_message *m, const char *name, const char *const *needles,
                         const Snapshot *base, const char *context) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(test_bus(), m, 0, &error, NULL);
        sd_bus_message_unref(m);
        assert_bus_error(&error, r, name, NULL, context);
        for (size_t i = 0; needles && needles[i]; i++)
                ck_assert_msg(error.message && strstr(error.message, needles[i]),
                              "%s: error message \"%s\" does not name \"%s\"", context,
                              error.message ? error.message : "", needles[i]);
        sd_bus_error_free(&error);
        assert_back_to(base, context);
}

#define NEEDLES(...) ((const char *const[]) { __VA_ARGS__, NULL })

static sd_bus_message *new_call(const char *path, const char *iface, const char *member) {
        sd_bus_message *m = NULL;

        ck_assert(sd_bus_message_new_method_call(test_bus(), &m, BB_BUS_NAME, path, iface,
                                                 member) >= 0);
        return m;
}

static sd_bus_message *create_call(const char *name, uint64_t size) {
        sd_bus_message *m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd");

        ck_assert(sd_bus_message_append(m, "st", name, size) >= 0);
        return m;
}

static void append_empty_dict(sd_bus_message *m) {
        ck_assert(sd_bus_message_append(m, "a{sv}", 0) >= 0);
}

/* ---- CreateMemfd -------------------------------------------------------- */

START_TEST(test_create_bad_sizes) {
        static const struct {
                uint64_t size;
                const char *error;
                const char *needle;
        } cases[] = {
                { 0, INVALID_ARGS, "0" },
                { (UINT64_C(1) << 30) + 1, BB_ERROR_QUOTA_EXCEEDED, "1073741825" },
                { UINT64_C(1) << 40, BB_ERROR_QUOTA_EXCEEDED, "1099511627776" },
                { UINT64_MAX, BB_ERROR_QUOTA_EXCEEDED, "18446744073709551615" },
                { UINT64_MAX - 4094, BB_ERROR_QUOTA_EXCEEDED, "18446744073709547521" },
                { UINT64_C(1) << 63, BB_ERROR_QUOTA_EXCEEDED, "9223372036854775808" },
        };
        Snapshot base;

        baseline_after_warmup(&base);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char ctx[96];
                sd_bus_message *m = create_call("hostile", cases[i].size);

                append_empty_dict(m);
                snprintf(ctx, sizeof(ctx), "CreateMemfd size %" PRIu64, cases[i].size);
                expect_error(m, cases[i].error, NEEDLES("size", cases[i].needle), &base, ctx);
        }
}
END_TEST

START_TEST(test_create_bad_names) {
        char long_name[257], max_name[256];
        static const struct {
                const char *name;
                const char *needle;
        } cases[] = {
                { "bad\001name", "0x01" },
                { "tab\there", "0x09" },
                { "new\nline", "0x0a" },
                { "escape\033[31m", "0x1b" },
                { "del\177", "0x7f" },
        };
        Snapshot base;

        baseline_after_warmup(&base);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                sd_bus_message *m = create_call(cases[i].name, 4096);
                char ctx[64];

                append_empty_dict(m);
                snprintf(ctx, sizeof(ctx), "CreateMemfd name with %s", cases[i].needle);
                expect_error(m, INVALID_ARGS, NEEDLES(cases[i].needle), &base, ctx);
        }

        memset(long_name, 'n', 256);
        long_name[256] = 0;
        {
                sd_bus_message *m = create_call(long_name, 4096);

                append_empty_dict(m);
                expect_error(m, INVALID_ARGS, NEEDLES("256", "255"), &base,
                             "CreateMemfd with a 256-byte name");
        }

        /* the boundary: 255 bytes is fine (and is released again) */
        memset(max_name, 'm', 255);
        max_name[255] = 0;
        {
                _cleanup_created_ Created cr = { .fd = -1 };
                sd_bus_error error = SD_BUS_ERROR_NULL;
                char *got = NULL;

                create_memfd(NULL, max_name, 4096, false, 0, &cr);
                ck_assert(sd_bus_get_property_string(test_bus(), BB_BUS_NAME, cr.path,
                                                     BB_BUFFER_INTERFACE, "Name", &error, &got) >= 0);
                ck_assert_str_eq(got, max_name);
                free(got);
                ck_assert(call_release(NULL, cr.path, &error) >= 0);
                created_done(&cr);
                assert_back_to(&base, "after a 255-byte name");
        }
}
END_TEST

/* One bad option entry: key with a value of type `type`. */
static sd_bus_message *create_with_option(const char *key, char type, const void *value) {
        sd_bus_message *m = create_call("hostile", 4096);

        ck_assert(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        ck_assert(sd_bus_message_open_container(m, 'e', "sv") >= 0);
        ck_assert(sd_bus_message_append(m, "s", key) >= 0);
        switch (type) {
        case 's':
                ck_assert(sd_bus_message_append(m, "v", "s", (const char *) value) >= 0);
                break;
        case 'u':
                ck_assert(sd_bus_message_append(m, "v", "u", *(const uint32_t *) value) >= 0);
                break;
        case 'i':
                ck_assert(sd_bus_message_append(m, "v", "i", *(const int32_t *) value) >= 0);
                break;
        case 't':
                ck_assert(sd_bus_message_append(m, "v", "t", *(const uint64_t *) value) >= 0);
                break;
        case 'y':
                ck_assert(sd_bus_message_append(m, "v", "y", *(const uint8_t *) value) >= 0);
                break;
        case 'n':
                ck_assert(sd_bus_message_append(m, "v", "n", *(const int16_t *) value) >= 0);
                break;
        case 'q':
                ck_assert(sd_bus_message_append(m, "v", "q", *(const uint16_t *) value) >= 0);
                break;
        case 'x':
                ck_assert(sd_bus_message_append(m, "v", "x", *(const int64_t *) value) >= 0);
                break;
        case 'b':
                ck_assert(sd_bus_message_append(m, "v", "b", *(const int *) value) >= 0);
                break;
        case 'V':       /* a variant inside the variant */
                ck_assert(sd_bus_message_append(m, "v", "v", "b", 1) >= 0);
                break;
        case 'A':       /* an array of booleans */
                ck_assert(sd_bus_message_append(m, "v", "ab", 1, 1) >= 0);
                break;
        default:
                ck_abort();
        }
        ck_assert(sd_bus_message_close_container(m) >= 0);
        ck_assert(sd_bus_message_close_container(m) >= 0);
        return m;
}

/* Dynamic bindings send the integer type their language has: a Python int
 * is 'i', gdbus' <1000000> too. Any integer type whose value fits is taken;
 * a negative one, or one out of the option's range, is InvalidArgs naming
 * the range. */
START_TEST(test_integer_options_of_any_type) {
        static const uint8_t y = 100;
        static const int16_t n = 100, nneg = -5;
        static const uint16_t q = 100;
        static const int32_t i = 100;
        static const uint32_t u = 100;
        static const int64_t x = 100, xneg = INT64_MIN;
        static const uint64_t t = 100;
        static const struct {
                char type;
                const void *value;
        } ok[] = { { 'y', &y }, { 'n', &n }, { 'q', &q }, { 'i', &i }, { 'u', &u }, { 'x', &x }, { 't', &t } };
        Snapshot base;

        baseline_after_warmup(&base);
        released_watch();
        for (size_t k = 0; k < ELEMENTSOF(ok); k++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                const char *path;
                uint64_t size;
                int fd;

                sd_bus_message *m = create_with_option(BB_OPT_TTL_USEC, ok[k].type, ok[k].value);

                ck_assert_msg(sd_bus_call(test_bus(), m, 0, &error, &reply) >= 0,
                              "ttl-usec of type %c: %s", ok[k].type, error.message);
                sd_bus_message_unref(m);
                ck_assert(sd_bus_message_read(reply, "oht", &path, &fd, &size) > 0);
                /* 100 us: it expires at once */
                ck_assert_msg(released_wait(buffer_id_from_path(path), scaled_ms(5000)),
                              "ttl-usec of type %c was not applied", ok[k].type);
                sd_bus_message_unref(reply);
        }
        expect_error(create_with_option(BB_OPT_TTL_USEC, 'n', &nneg), INVALID_ARGS, NEEDLES("not -5"), &base,
                     "ttl-usec -5 as 'n'");
        expect_error(create_with_option(BB_OPT_TTL_USEC, 'x', &xneg), INVALID_ARGS,
                     NEEDLES("not -9223372036854775808"), &base, "ttl-usec INT64_MIN as 'x'");
        assert_back_to(&base, "after options of every integer type");
}
END_TEST

START_TEST(test_create_bad_options) {
        static const uint32_t u32 = 1;
        static const int32_t i32 = -1;
        (void) u32;
        static const uint64_t t0 = 0, t1 = 1;
        static const int btrue = 1;
        static const struct {
                const char *key;
                char type;
                const void *value;
                const char *needle;
        } cases[] = {
                { "bogus", 'b', &btrue, "bogus" },
                { "Persistent", 'b', &btrue, "Persistent" },   /* keys are case-sensitive */
                { "", 'b', &btrue, "''" },
                { BB_OPT_PERSISTENT, 's', "true", BB_OPT_PERSISTENT },
                { BB_OPT_PERSISTENT, 'u', &u32, BB_OPT_PERSISTENT },
                { BB_OPT_PERSISTENT, 't', &t1, BB_OPT_PERSISTENT },
                { BB_OPT_PERSISTENT, 'V', NULL, BB_OPT_PERSISTENT },
                { BB_OPT_PERSISTENT, 'A', NULL, BB_OPT_PERSISTENT },
                /* any integer type, but not a negative value */
                { BB_OPT_TTL_USEC, 'i', &i32, "not -1" },
                { BB_OPT_TTL_USEC, 's', "10s", BB_OPT_TTL_USEC },
                { BB_OPT_TTL_USEC, 'b', &btrue, BB_OPT_TTL_USEC },
                { BB_OPT_TTL_USEC, 't', &t0, BB_OPT_TTL_USEC },
                /* Share's keys are not CreateMemfd's */
                { BB_OPT_READ_ONLY, 'b', &btrue, BB_OPT_READ_ONLY },
                { BB_OPT_UID, 'u', &u32, BB_OPT_UID },
        };
        Snapshot base;

        baseline_after_warmup(&base);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char ctx[96];

                snprintf(ctx, sizeof(ctx), "CreateMemfd option '%s' of type %c", cases[i].key,
                         cases[i].type);
                expect_error(create_with_option(cases[i].key, cases[i].type, cases[i].value),
                             INVALID_ARGS, NEEDLES(cases[i].needle), &base, ctx);
        }

        /* the same key twice */
        {
                sd_bus_message *m = create_call("hostile", 4096);

                ck_assert(sd_bus_message_append(m, "a{sv}", 2, BB_OPT_PERSISTENT, "b", 1,
                                                BB_OPT_PERSISTENT, "b", 0) >= 0);
                expect_error(m, INVALID_ARGS, NEEDLES(BB_OPT_PERSISTENT), &base,
                             "CreateMemfd with a duplicated option");
        }
}
END_TEST

/* ---- Open ------------------------------------------------------------------ */

static sd_bus_message *open_call(const char *token) {
        sd_bus_message *m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open");

        ck_assert(sd_bus_message_append(m, "s", token) >= 0);
        append_empty_dict(m);
        return m;
}

START_TEST(test_open_malformed_tokens) {
        char long_token[4097], upper[BB_TOKEN_LEN + 1], nonhex[BB_TOKEN_LEN + 1],
                longer[BB_TOKEN_LEN + 2], short_token[BB_TOKEN_LEN];
        Snapshot base;
        struct {
                const char *token;
                const char *needle;
                const char *what;
        } cases[] = {
                { "", "''", "empty token" },
                { "abc", "abc", "short token" },
                { short_token, short_token, "31-digit token" },
                { longer, longer, "33-digit token" },
                { upper, upper, "upper-case token" },
                { nonhex, nonhex, "non-hex token" },
                { long_token, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "4096-byte token" },
                { "0123456789abcdef0123456789abcde ", "0123456789abcdef", "token with a space" },
                { "../../../../etc/passwd", "etc/passwd", "path as token" },
        };

        memset(long_token, 'a', sizeof(long_token) - 1);
        long_token[sizeof(long_token) - 1] = 0;
        memset(upper, 'A', BB_TOKEN_LEN);
        upper[BB_TOKEN_LEN] = 0;
        memset(nonhex, 'z', BB_TOKEN_LEN);
        nonhex[BB_TOKEN_LEN] = 0;
        memset(longer, 'b', BB_TOKEN_LEN + 1);
        longer[BB_TOKEN_LEN + 1] = 0;
        memset(short_token, 'c', BB_TOKEN_LEN - 1);
        short_token[BB_TOKEN_LEN - 1] = 0;

        baseline_after_warmup(&base);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char ctx[64];

                snprintf(ctx, sizeof(ctx), "Open with %s", cases[i].what);
                expect_error(open_call(cases[i].token), INVALID_ARGS, NEEDLES(cases[i].needle),
                             &base, ctx);
        }
}
END_TEST

/* Well-formed tokens that do not open anything: NoSuchToken naming the token
 * (its first 8 digits at least, so that a user can tell which one failed). */
START_TEST(test_open_dead_tokens) {
        _cleanup_created_ Created cr = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *expired = NULL, *used = NULL, *released = NULL, prefix[9];
        const char *unknown = "0123456789abcdef0123456789abcdef";
        Snapshot base;

        baseline_after_warmup(&base);

        snprintf(prefix, sizeof(prefix), "%.8s", unknown);
        expect_error(open_call(unknown), BB_ERROR_NO_SUCH_TOKEN, NEEDLES(prefix), &base,
                     "Open with an unknown token");

        /* expired: 1 ms ttl, wait until the daemon dropped it */
        create_memfd(NULL, "dead-tokens", 4096, false, 0, &cr);
        ck_assert(call_share(NULL, cr.path, false, (uid_t) -1, false, 1000, &expired, &error) >= 0);
        ck_assert(call_share(NULL, cr.path, false, (uid_t) -1, true, 0, &used, &error) >= 0);
        ck_assert_msg(call_open(NULL, used, NULL, NULL, NULL, &error) >= 0, "first use: %s",
                      error.message);
        {
                uint64_t deadline = now_usec() + 3000000u;

                while (stats_get(BB_STAT_TOKENS) != 0) {
                        ck_assert_msg(now_usec() < deadline, "expired token never dropped");
                        msleep(5);
                }
        }
        {
                Snapshot with_buffer;

                stats_read(&with_buffer);
                snprintf(prefix, sizeof(prefix), "%.8s", expired);
                expect_error(open_call(expired), BB_ERROR_NO_SUCH_TOKEN, NEEDLES(prefix),
                             &with_buffer, "Open with an expired token");
                snprintf(prefix, sizeof(prefix), "%.8s", used);
                expect_error(open_call(used), BB_ERROR_NO_SUCH_TOKEN, NEEDLES(prefix),
                             &with_buffer, "Open with a used single-use token");
        }
        /* a released buffer's tokens are gone too */
        ck_assert(call_share(NULL, cr.path, false, (uid_t) -1, false, 0, &released, &error) >= 0);
        released_watch();
        ck_assert(call_release(NULL, cr.path, &error) >= 0);
        /* released, and our fd (the lease) closed: gone */
        cr.fd = safe_close(cr.fd);
        ck_assert(released_wait(cr.id, 5000));
        snprintf(prefix, sizeof(prefix), "%.8s", released);
        expect_error(open_call(released), BB_ERROR_NO_SUCH_TOKEN, NEEDLES(prefix), &base,
                     "Open with the token of a released buffer");
        free(expired);
        free(used);
        free(released);
        sd_bus_error_free(&error);
}
END_TEST

START_TEST(test_open_bad_options) {
        _cleanup_created_ Created cr = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL;
        Snapshot base;
        static const char *const keys[] = { "bogus", BB_OPT_READ_ONLY, BB_OPT_PERSISTENT };

        create_memfd(NULL, "open-options", 4096, false, 0, &cr);
        ck_assert(call_share(NULL, cr.path, false, (uid_t) -1, false, 0, &token, &error) >= 0);
        stats_read(&base);
        /* Open defines no options: every key is unknown, and a refused Open
         * must not consume or hold anything */
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                sd_bus_message *m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open");
                char ctx[64];

                ck_assert(sd_bus_message_append(m, "sa{sv}", token, 1, keys[i], "b", 1) >= 0);
                snprintf(ctx, sizeof(ctx), "Open with option '%s'", keys[i]);
                expect_error(m, INVALID_ARGS, NEEDLES(keys[i]), &base, ctx);
        }
        /* the token still works */
        ck_assert_msg(call_open(NULL, token, NULL, NULL, NULL, &error) >= 0, "Open: %s",
                      error.message);
        free(token);
        sd_bus_error_free(&error);
}
END_TEST

/* ---- Share ------------------------------------------------------------------ */

static sd_bus_message *share_with_option(const char *path, const char *key, char type,
                                         const void *value) {
        sd_bus_message *m = new_call(path, BB_BUFFER_INTERFACE, "Share");

        ck_assert(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        ck_assert(sd_bus_message_open_container(m, 'e', "sv") >= 0);
        ck_assert(sd_bus_message_append(m, "s", key) >= 0);
        switch (type) {
        case 's':
                ck_assert(sd_bus_message_append(m, "v", "s", (const char *) value) >= 0);
                break;
        case 'u':
                ck_assert(sd_bus_message_append(m, "v", "u", *(const uint32_t *) value) >= 0);
                break;
        case 'i':
                ck_assert(sd_bus_message_append(m, "v", "i", *(const int32_t *) value) >= 0);
                break;
        case 't':
                ck_assert(sd_bus_message_append(m, "v", "t", *(const uint64_t *) value) >= 0);
                break;
        case 'b':
                ck_assert(sd_bus_message_append(m, "v", "b", *(const int *) value) >= 0);
                break;
        default:
                ck_abort();
        }
        ck_assert(sd_bus_message_close_container(m) >= 0);
        ck_assert(sd_bus_message_close_container(m) >= 0);
        return m;
}

START_TEST(test_share_bad_options) {
        static const uint32_t u1 = 1, umax = UINT32_MAX;
        static const int32_t im1 = -1;
        static const uint64_t t0 = 0, t2_32 = UINT64_C(1) << 32;
        static const int btrue = 1;
        static const struct {
                const char *key;
                char type;
                const void *value;
                const char *needle;
        } cases[] = {
                { "bogus", 'b', &btrue, "bogus" },
                { BB_OPT_PERSISTENT, 'b', &btrue, BB_OPT_PERSISTENT },
                { BB_OPT_READ_ONLY, 's', "yes", BB_OPT_READ_ONLY },
                { BB_OPT_READ_ONLY, 'u', &u1, BB_OPT_READ_ONLY },
                { BB_OPT_UID, 't', &t2_32, "from 0 to 4294967295, not 4294967296" },
                { BB_OPT_UID, 'i', &im1, "not -1" },
                { BB_OPT_UID, 's', "nobody", BB_OPT_UID },
                { BB_OPT_UID, 'u', &umax, "4294967295" },
                { BB_OPT_SINGLE_USE, 'u', &u1, BB_OPT_SINGLE_USE },
                { BB_OPT_SINGLE_USE, 's', "true", BB_OPT_SINGLE_USE },
                { BB_OPT_TTL_USEC, 'i', &im1, BB_OPT_TTL_USEC },
                { BB_OPT_TTL_USEC, 'b', &btrue, BB_OPT_TTL_USEC },
                { BB_OPT_TTL_USEC, 't', &t0, BB_OPT_TTL_USEC },
        };
        _cleanup_created_ Created cr = { .fd = -1 };
        Snapshot base;

        create_memfd(NULL, "share-options", 4096, false, 0, &cr);
        stats_read(&base);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char ctx[96];

                snprintf(ctx, sizeof(ctx), "Share option '%s' of type %c", cases[i].key,
                         cases[i].type);
                expect_error(share_with_option(cr.path, cases[i].key, cases[i].type,
                                               cases[i].value),
                             INVALID_ARGS, NEEDLES(cases[i].needle), &base, ctx);
        }
        /* no token was created by any of them */
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens);
}
END_TEST

/* ---- CreateV4L2: device and argument checks (no V4L2 needed on the host:
 * every refusal here happens before a driver is involved). The test's own
 * connection is root's, who may open anything that exists: what it is
 * decides. ---------------------------------------------------------------- */

static sd_bus_message *v4l2_call(const char *device, uint32_t count) {
        sd_bus_message *m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateV4L2");

        ck_assert(sd_bus_message_append(m, "su", device, count) >= 0);
        return m;
}

START_TEST(test_create_v4l2_bad_devices) {
        static const struct {
                const char *device;
                const char *error;
                const char *needle;
        } cases[] = {
                { "/etc/shadow", BB_ERROR_DEVICE_NOT_SUPPORTED, "/etc/shadow" },
                { "/dev/null", BB_ERROR_DEVICE_NOT_SUPPORTED, "/dev/null" },
                { "/dev/zero", BB_ERROR_DEVICE_NOT_SUPPORTED, "not a video4linux device" },
                { "/tmp", BB_ERROR_DEVICE_NOT_SUPPORTED, "not a character device" },
                /* nothing there: the one answer for "the caller cannot
                 * open it", whoever asks */
                { "/dev/video-does-not-exist", BB_ERROR_ACCESS_DENIED, "'/dev/video-does-not-exist'" },
                { "/proc/self/fd/0", BB_ERROR_DEVICE_NOT_SUPPORTED, "/proc/self/fd/0" },
                { "dev/video0", INVALID_ARGS, "not absolute" },
                { "", INVALID_ARGS, "not absolute" },
                { "/dev/../etc/shadow", INVALID_ARGS, ".." },
                { "/dev/video0/..", INVALID_ARGS, ".." },
        };
        char fifo[128], link[128];
        Snapshot base;

        baseline_after_warmup(&base);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                sd_bus_message *m = v4l2_call(cases[i].device, 2);
                char ctx[160];

                append_empty_dict(m);
                append_empty_dict(m);
                snprintf(ctx, sizeof(ctx), "CreateV4L2 on '%s'", cases[i].device);
                expect_error(m, cases[i].error, NEEDLES(cases[i].needle), &base, ctx);
        }

        /* A FIFO would block a plain open(); a symlink must not lead past the
         * checks. Both live in the fixture's directory. */
        snprintf(fifo, sizeof(fifo), "%s/fifo", H->dir);
        ck_assert_int_eq(mkfifo(fifo, 0666), 0);
        snprintf(link, sizeof(link), "%s/video-link", H->dir);
        ck_assert_int_eq(symlink("/etc/shadow", link), 0);
        for (const char *const *d = (const char *const[]) { fifo, link, NULL }; *d; d++) {
                sd_bus_message *m = v4l2_call(*d, 2);

                append_empty_dict(m);
                append_empty_dict(m);
                expect_error(m, BB_ERROR_DEVICE_NOT_SUPPORTED, NEEDLES(*d, "not a character device"),
                             &base, *d);
        }

        /* A path longer than PATH_MAX. */
        {
                char *longpath = malloc(5000);
                sd_bus_message *m;

                ck_assert(longpath);
                memset(longpath, 'a', 4999);
                longpath[0] = '/';
                longpath[4999] = 0;
                m = v4l2_call(longpath, 2);
                append_empty_dict(m);
                append_empty_dict(m);
                expect_error(m, INVALID_ARGS, NEEDLES("4999"), &base, "CreateV4L2 on a 4999-byte path");
                free(longpath);
        }
}
END_TEST

/* What uid 65534 learns about paths it cannot open: one error, one message,
 * naming the path and the uid and nothing else, whether the path exists,
 * is readable only by others, or lies behind a directory it cannot search. */
#define NOBODY_CASES 6

typedef struct NobodyCalls {
        char device[NOBODY_CASES][128];
        char name[NOBODY_CASES][128];
        char message[NOBODY_CASES][512];
} NobodyCalls;

static int nobody_create_v4l2(void *userdata) {
        NobodyCalls *c = userdata;
        sd_bus *bus = NULL;

        child_check(bus_connect(&bus) >= 0, "connect");
        for (unsigned i = 0; i < NOBODY_CASES && c->device[i][0]; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r;

                r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateV4L2",
                                       &error, NULL, "sua{sv}a{sv}", c->device[i], 2, 0, 0);
                child_check(r < 0, "CreateV4L2 on %s succeeded", c->device[i]);
                snprintf(c->name[i], sizeof(c->name[i]), "%s", error.name ?: "");
                snprintf(c->message[i], sizeof(c->message[i]), "%s", error.message ?: "");
                sd_bus_error_free(&error);
        }
        sd_bus_flush_close_unref(bus);
        return 0;
}

/* @message with @path replaced by "PATH". */
static void without_path(const char *message, const char *path, char *buf, size_t size) {
        const char *p = strstr(message, path);

        if (!p) {
                snprintf(buf, size, "%s", message);
                return;
        }
        snprintf(buf, size, "%.*sPATH%s", (int) (p - message), message, p + strlen(path));
}

START_TEST(test_create_v4l2_access_denied_as_nobody) {
        static const char *const leaks[] = {
                "No such", "ermission", "directory", "character", "exist:", "shadow", "root:", "0700", "0640",
        };
        char secret_dir[96], secret_file[128], first[512] = "";
        NobodyCalls *calls;
        const char *devices[NOBODY_CASES];
        unsigned n = 0;
        Snapshot base;
        int fd;

        /* Exists and is world read-write, but its directory is root's 0700. */
        snprintf(secret_dir, sizeof(secret_dir), "%s/secret-dir", H->dir);
        snprintf(secret_file, sizeof(secret_file), "%s/video-like", secret_dir);
        ck_assert_int_eq(mkdir(secret_dir, 0700), 0);
        fd = open(secret_file, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(chmod(secret_file, 0666), 0);

        devices[n++] = "/etc/shadow";
        devices[n++] = "/root/bb-does-not-exist";
        devices[n++] = "/dev/video-does-not-exist";
        devices[n++] = secret_file;
        devices[n++] = "/dev/null";             /* nobody may open it: the device check speaks */

        calls = mmap(NULL, sizeof(*calls), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ck_assert(calls != MAP_FAILED);
        memset(calls, 0, sizeof(*calls));
        for (unsigned i = 0; i < n; i++)
                snprintf(calls->device[i], sizeof(calls->device[i]), "%s", devices[i]);

        baseline_after_warmup(&base);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_create_v4l2, calls, 20000), 0);

        for (unsigned i = 0; i + 1 < n; i++) {
                char shape[512];

                ck_assert_msg(strcmp(calls->name[i], BB_ERROR_ACCESS_DENIED) == 0,
                              "uid 65534, CreateV4L2 on %s: %s (%s), expected %s", devices[i], calls->name[i],
                              calls->message[i], BB_ERROR_ACCESS_DENIED);
                ck_assert_msg(strstr(calls->message[i], devices[i]) && strstr(calls->message[i], "65534"),
                              "uid 65534, CreateV4L2 on %s: the message does not name the path and the uid: %s",
                              devices[i], calls->message[i]);
                without_path(calls->message[i], devices[i], shape, sizeof(shape));
                for (size_t k = 0; k < ELEMENTSOF(leaks); k++)
                        ck_assert_msg(!strstr(shape, leaks[k]), "uid 65534, CreateV4L2 on %s: \"%s\" tells \"%s\"",
                                      devices[i], calls->message[i], leaks[k]);
                if (i == 0)
                        snprintf(first, sizeof(first), "%s", shape);
                else
                        ck_assert_msg(strcmp(shape, first) == 0,
                                      "uid 65534: the refusals differ beyond the path: \"%s\" and \"%s\"", first,
                                      shape);
        }
        ck_assert_msg(strcmp(calls->name[n - 1], BB_ERROR_DEVICE_NOT_SUPPORTED) == 0 &&
                      strstr(calls->message[n - 1], "not a video4linux"),
                      "uid 65534, CreateV4L2 on /dev/null (0666): %s (%s), expected %s naming the device class",
                      calls->name[n - 1], calls->message[n - 1], BB_ERROR_DEVICE_NOT_SUPPORTED);
        assert_back_to(&base, "CreateV4L2 refusals for uid 65534");
        munmap(calls, sizeof(*calls));
        unlink(secret_file);
        rmdir(secret_dir);
}
END_TEST

/* Error messages quote the caller's path and are cut at 255 bytes; a cut
 * through a multi-byte character made the reply invalid UTF-8, which D-Bus
 * cannot send: the caller waited for its timeout. Every offset of the cut
 * into a 2-, 3- and 4-byte character. */
START_TEST(test_create_v4l2_long_utf8_path) {
        static const char *const chars[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x93\xb7" };
        Snapshot base;

        baseline_after_warmup(&base);
        for (size_t c = 0; c < ELEMENTSOF(chars); c++)
                for (unsigned pad = 0; pad < 4; pad++) {
                        sd_bus_error error = SD_BUS_ERROR_NULL;
                        sd_bus_message *m;
                        char path[1024] = "/";
                        char ctx[64];
                        int r;

                        for (unsigned i = 0; i < pad; i++)
                                strcat(path, "a");
                        while (strlen(path) + strlen(chars[c]) < 600)
                                strcat(path, chars[c]);
                        snprintf(ctx, sizeof(ctx), "%zu-byte characters after %u ASCII", strlen(chars[c]), pad);
                        m = v4l2_call(path, 2);
                        append_empty_dict(m);
                        append_empty_dict(m);
                        r = sd_bus_call(test_bus(), m, 10 * 1000000ULL, &error, NULL);
                        sd_bus_message_unref(m);
                        ck_assert_msg(r != -ETIMEDOUT, "%s: no reply (the error message was not valid UTF-8?)", ctx);
                        assert_bus_error(&error, r, BB_ERROR_ACCESS_DENIED, "uid 0", ctx);
                        sd_bus_error_free(&error);
                }
        assert_back_to(&base, "CreateV4L2 on long UTF-8 paths");
}
END_TEST

START_TEST(test_create_v4l2_bad_arguments) {
        static const uint32_t u640 = 640;
        static const uint64_t t0 = 0, t2_32 = UINT64_C(1) << 32;
        static const int btrue = 1;
        static const struct {
                uint32_t count;
                const char *dict;       /* "format" or "options" */
                const char *key;
                char type;
                const void *value;
                const char *needle;
        } cases[] = {
                { 0, NULL, NULL, 0, NULL, "count 0" },
                { 33, NULL, NULL, 0, NULL, "count 33" },
                { UINT32_MAX, NULL, NULL, 0, NULL, "4294967295" },
                { 2, "format", "depth", 'u', &u640, "depth" },
                { 2, "format", BB_FMT_WIDTH, 's', "640", BB_FMT_WIDTH },
                { 2, "format", BB_FMT_HEIGHT, 't', &t2_32, "not 4294967296" },
                { 2, "format", BB_FMT_FOURCC, 's', "YUYV2", "YUYV2" },
                { 2, "format", BB_FMT_FOURCC, 's', "", BB_FMT_FOURCC },
                { 2, "format", BB_FMT_FOURCC, 'b', &btrue, BB_FMT_FOURCC },
                { 2, "format", BB_FMT_TYPE, 's', "sideways", "sideways" },
                { 2, "options", "bogus", 'b', &btrue, "bogus" },
                { 2, "options", BB_OPT_PERSISTENT, 's', "yes", BB_OPT_PERSISTENT },
                { 2, "options", BB_OPT_READ_ONLY, 'u', &u640, BB_OPT_READ_ONLY },
                { 2, "options", BB_OPT_TTL_USEC, 't', &t0, BB_OPT_TTL_USEC },
                { 2, "options", BB_OPT_NAME, 'b', &btrue, BB_OPT_NAME },
                { 2, "options", BB_OPT_NAME, 's', "bad\nname", "control character" },
        };
        Snapshot base;

        baseline_after_warmup(&base);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                /* A device that passes the path checks: the argument checks
                 * come first, so no device is opened for any of these. */
                sd_bus_message *m = v4l2_call("/dev/video0", cases[i].count);
                char ctx[128];

                for (int dict = 0; dict < 2; dict++) {
                        const char *which = dict == 0 ? "format" : "options";

                        if (cases[i].dict && strcmp(cases[i].dict, which) == 0) {
                                char sig[2] = { cases[i].type, 0 };

                                ck_assert(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
                                ck_assert(sd_bus_message_open_container(m, 'e', "sv") >= 0);
                                ck_assert(sd_bus_message_append(m, "s", cases[i].key) >= 0);
                                ck_assert(sd_bus_message_open_container(m, 'v', sig) >= 0);
                                if (cases[i].type == 's')
                                        ck_assert(sd_bus_message_append_basic(m, 's', cases[i].value) >= 0);
                                else
                                        ck_assert(sd_bus_message_append_basic(m, cases[i].type, cases[i].value) >= 0);
                                ck_assert(sd_bus_message_close_container(m) >= 0);
                                ck_assert(sd_bus_message_close_container(m) >= 0);
                                ck_assert(sd_bus_message_close_container(m) >= 0);
                        } else
                                append_empty_dict(m);
                }
                snprintf(ctx, sizeof(ctx), "CreateV4L2 count %u %s '%s'", cases[i].count,
                         cases[i].dict ?: "", cases[i].key ?: "");
                expect_error(m, INVALID_ARGS, NEEDLES(cases[i].needle), &base, ctx);
        }
}
END_TEST

/* ---- OpenFds -------------------------------------------------------------- */

START_TEST(test_open_fds_bad_calls) {
        static const uint32_t u1 = 1;
        _cleanup_created_ Created cr = { .fd = -1 };
        _cleanup_run_result_ RunResult r = {};
        Snapshot base;

        create_memfd(NULL, "open-fds", 4096, true, 0, &cr);
        stats_read(&base);

        {
                sd_bus_message *m = new_call(cr.path, BB_BUFFER_INTERFACE, "OpenFds");

                ck_assert(sd_bus_message_append(m, "a{sv}", 1, "bogus", "b", 1) >= 0);
                expect_error(m, INVALID_ARGS, NEEDLES("bogus"), &base, "OpenFds unknown option");
        }
        {
                sd_bus_message *m = new_call(cr.path, BB_BUFFER_INTERFACE, "OpenFds");

                ck_assert(sd_bus_message_append(m, "a{sv}", 1, BB_OPT_READ_ONLY, "u", u1) >= 0);
                expect_error(m, INVALID_ARGS, NEEDLES(BB_OPT_READ_ONLY), &base, "OpenFds read-only as u");
        }
        {
                sd_bus_message *m = new_call("/org/bufbroker/Broker1/buffer/987654", BB_BUFFER_INTERFACE, "OpenFds");

                ck_assert(sd_bus_message_append(m, "a{sv}", 0) >= 0);
                expect_error(m, BB_ERROR_NO_SUCH_BUFFER, NEEDLES("987654"), &base, "OpenFds on no buffer");
        }

        /* Another uid gets no fds of root's buffer, and is not made a holder. */
        ck_assert_int_eq(busctl(&r, NOBODY_UID, "call", BB_BUS_NAME, cr.path, BB_BUFFER_INTERFACE,
                                "OpenFds", "a{sv}", "0"), 0);
        ck_assert_msg(r.status != 0, "OpenFds by uid 65534 on root's buffer succeeded: %s", r.out);
        ck_assert_msg(strstr(r.err, "belongs to uid 0"), "busctl stderr: %s", r.err);
        assert_back_to(&base, "OpenFds by another uid");
}
END_TEST

/* ---- nonexistent buffers ------------------------------------------------- */

START_TEST(test_nonexistent_buffers) {
        _cleanup_created_ Created cr = { .fd = -1 };
        char leading_zero[128], below[128], beyond[128];
        const char *paths[] = {
                BB_BUFFER_PATH_PREFIX "/999",
                BB_BUFFER_PATH_PREFIX "/abc",
                BB_BUFFER_PATH_PREFIX "/0",
                BB_BUFFER_PATH_PREFIX "/_1",
                BB_BUFFER_PATH_PREFIX "/18446744073709551615",
                BB_BUFFER_PATH_PREFIX "/18446744073709551616",
                leading_zero,
                below,
                beyond,
        };
        Snapshot base;

        baseline_after_warmup(&base);
        create_memfd(NULL, "exists", 4096, false, 0, &cr);
        /* near misses of a live buffer's path */
        snprintf(leading_zero, sizeof(leading_zero), "%s/0%" PRIu64, BB_BUFFER_PATH_PREFIX, cr.id);
        snprintf(below, sizeof(below), "%s/%" PRIu64 "/2", BB_BUFFER_PATH_PREFIX, cr.id);
        snprintf(beyond, sizeof(beyond), "%s/%" PRIu64, BB_BUFFER_PATH_PREFIX, cr.id + 1);
        stats_read(&base);
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                char ctx[160];
                sd_bus_message *m;

                snprintf(ctx, sizeof(ctx), "Release on %s", paths[i]);
                expect_error(new_call(paths[i], BB_BUFFER_INTERFACE, "Release"),
                             BB_ERROR_NO_SUCH_BUFFER, NEEDLES(paths[i]), &base, ctx);
                snprintf(ctx, sizeof(ctx), "Freeze on %s", paths[i]);
                expect_error(new_call(paths[i], BB_BUFFER_INTERFACE, "Freeze"),
                             BB_ERROR_NO_SUCH_BUFFER, NEEDLES(paths[i]), &base, ctx);
                snprintf(ctx, sizeof(ctx), "Share on %s", paths[i]);
                m = new_call(paths[i], BB_BUFFER_INTERFACE, "Share");
                append_empty_dict(m);
                expect_error(m, BB_ERROR_NO_SUCH_BUFFER, NEEDLES(paths[i]), &base, ctx);
                snprintf(ctx, sizeof(ctx), "Properties.Get on %s", paths[i]);
                m = new_call(paths[i], "org.freedesktop.DBus.Properties", "Get");
                ck_assert(sd_bus_message_append(m, "ss", BB_BUFFER_INTERFACE, "Size") >= 0);
                expect_error(m, BB_ERROR_NO_SUCH_BUFFER, NEEDLES(paths[i]), &base, ctx);
                snprintf(ctx, sizeof(ctx), "Properties.GetAll on %s", paths[i]);
                m = new_call(paths[i], "org.freedesktop.DBus.Properties", "GetAll");
                ck_assert(sd_bus_message_append(m, "s", BB_BUFFER_INTERFACE) >= 0);
                expect_error(m, BB_ERROR_NO_SUCH_BUFFER, NEEDLES(paths[i]), &base, ctx);
        }
        ck_assert(list_has(NULL, cr.id));
}
END_TEST

/* ---- wrong signatures, unknown members, properties ---------------------- */

START_TEST(test_wrong_signatures) {
        _cleanup_created_ Created cr = { .fd = -1 };
        Snapshot base;
        sd_bus_message *m;

        create_memfd(NULL, "signatures", 4096, false, 0, &cr);
        stats_read(&base);

        m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd");
        ck_assert(sd_bus_message_append(m, "st", "x", (uint64_t) 4096) >= 0);
        expect_error(m, INVALID_ARGS, NEEDLES("'st'"), &base, "CreateMemfd(st)");
        m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd");
        ck_assert(sd_bus_message_append(m, "ssa{sv}", "x", "4096", 0) >= 0);
        expect_error(m, INVALID_ARGS, NEEDLES("'ssa{sv}'"), &base, "CreateMemfd(ssa{sv})");
        m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd");
        ck_assert(sd_bus_message_append(m, "sta{sv}u", "x", (uint64_t) 4096, 0, 1) >= 0);
        expect_error(m, INVALID_ARGS, NEEDLES("'sta{sv}u'"), &base, "CreateMemfd(sta{sv}u)");
        m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "CreateMemfd");
        ck_assert(sd_bus_message_append(m, "sta{ss}", "x", (uint64_t) 4096, 1, "persistent",
                                        "true") >= 0);
        expect_error(m, INVALID_ARGS, NEEDLES("'sta{ss}'"), &base, "CreateMemfd(sta{ss})");
        m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open");
        ck_assert(sd_bus_message_append(m, "i", 5) >= 0);
        expect_error(m, INVALID_ARGS, NEEDLES("'i'"), &base, "Open(i)");
        m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open");
        expect_error(m, INVALID_ARGS, NEEDLES("Open"), &base, "Open()");
        m = new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "ListBuffers");
        ck_assert(sd_bus_message_append(m, "s", "all") >= 0);
        expect_error(m, INVALID_ARGS, NEEDLES("'s'"), &base, "ListBuffers(s)");
        m = new_call(cr.path, BB_BUFFER_INTERFACE, "Share");
        ck_assert(sd_bus_message_append(m, "s", "read-only") >= 0);
        expect_error(m, INVALID_ARGS, NEEDLES("'s'"), &base, "Share(s)");
        m = new_call(cr.path, BB_BUFFER_INTERFACE, "Release");
        ck_assert(sd_bus_message_append(m, "b", 1) >= 0);
        expect_error(m, INVALID_ARGS, NEEDLES("'b'"), &base, "Release(b)");
        m = new_call(cr.path, BB_BUFFER_INTERFACE, "Freeze");
        ck_assert(sd_bus_message_append(m, "u", 1) >= 0);
        expect_error(m, INVALID_ARGS, NEEDLES("'u'"), &base, "Freeze(u)");
        ck_assert(list_has(NULL, cr.id));
}
END_TEST

/* The same through busctl, as root and as nobody: busctl exits 1 and
 * prints the daemon's message. */
START_TEST(test_wrong_signatures_busctl) {
        static const uid_t uids[] = { AS_ROOT, NOBODY_UID };
        Snapshot base;

        baseline_after_warmup(&base);
        for (size_t u = 0; u < ELEMENTSOF(uids); u++) {
                _cleanup_run_result_ RunResult r1 = { 0 }, r2 = { 0 }, r3 = { 0 }, r4 = { 0 },
                                               r5 = { 0 }, r6 = { 0 };

                busctl(&r1, uids[u], "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                       "CreateMemfd", "st", "x", "4096");
                ck_assert_run_status(&r1, 1);
                ck_assert_msg(strstr(r1.err, "'st'") && strstr(r1.err, "sta{sv}"),
                              "busctl stderr: %s", r1.err);
                busctl(&r2, uids[u], "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                       "CreateMemfd", "sta{sv}", "x", "0", "0");
                ck_assert_run_status(&r2, 1);
                ck_assert_msg(strstr(r2.err, "size"), "busctl stderr: %s", r2.err);
                busctl(&r3, uids[u], "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                       "CreateMemfd", "sta{sv}", "x", "4096", "1", "persistent", "s", "yes");
                ck_assert_run_status(&r3, 1);
                ck_assert_msg(strstr(r3.err, "persistent"), "busctl stderr: %s", r3.err);
                busctl(&r4, uids[u], "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                       "Open", "sa{sv}", "nonsense", "0");
                ck_assert_run_status(&r4, 1);
                ck_assert_msg(strstr(r4.err, "nonsense"), "busctl stderr: %s", r4.err);
                busctl(&r5, uids[u], "call", BB_BUS_NAME, BB_BUFFER_PATH_PREFIX "/999",
                       BB_BUFFER_INTERFACE, "Release");
                ck_assert_run_status(&r5, 1);
                ck_assert_msg(strstr(r5.err, "/999"), "busctl stderr: %s", r5.err);
                busctl(&r6, uids[u], "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                       "ListBuffers", "u", "7");
                ck_assert_run_status(&r6, 1);
                ck_assert_msg(strstr(r6.err, "'u'"), "busctl stderr: %s", r6.err);
                assert_back_to(&base, "after bad busctl calls");
        }
}
END_TEST

START_TEST(test_unknown_members_and_properties) {
        _cleanup_created_ Created cr = { .fd = -1 };
        Snapshot base;
        sd_bus_message *m;
        static const char *const manager_props[] = { "Version", "Limits", "Stats" };
        static const char *const buffer_props[] = { "Id", "Name", "Kind", "Size", "OwnerUid",
                                                    "Persistent", "Frozen", "CreatedUsec" };

        create_memfd(NULL, "props", 4096, false, 0, &cr);
        stats_read(&base);

        expect_error(new_call(BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Frobnicate"),
                     UNKNOWN_METHOD, NEEDLES("Frobnicate"), &base, "unknown method");
        expect_error(new_call(cr.path, BB_BUFFER_INTERFACE, "Resize"), UNKNOWN_METHOD,
                     NEEDLES("Resize"), &base, "unknown buffer method");
        /* a manager method on a buffer object and the reverse (sd-bus answers
         * UnknownMethod naming member and interface) */
        expect_error(new_call(cr.path, BB_MANAGER_INTERFACE, "ListBuffers"), UNKNOWN_METHOD,
                     NEEDLES("ListBuffers", BB_MANAGER_INTERFACE), &base,
                     "ListBuffers on a buffer");
        expect_error(new_call(BB_MANAGER_PATH, BB_BUFFER_INTERFACE, "Release"), UNKNOWN_METHOD,
                     NEEDLES("Release", BB_BUFFER_INTERFACE), &base, "Release on the manager");

        m = new_call(BB_MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get");
        ck_assert(sd_bus_message_append(m, "ss", BB_MANAGER_INTERFACE, "Nope") >= 0);
        expect_error(m, UNKNOWN_PROPERTY, NEEDLES("Nope"), &base, "Get unknown property");
        m = new_call(BB_MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get");
        ck_assert(sd_bus_message_append(m, "ss", "org.bufbroker.Nope", "Version") >= 0);
        expect_error(m, UNKNOWN_PROPERTY, NEEDLES("org.bufbroker.Nope"), &base,
                     "Get on unknown interface");
        m = new_call(cr.path, "org.freedesktop.DBus.Properties", "Get");
        ck_assert(sd_bus_message_append(m, "ss", BB_BUFFER_INTERFACE, "Stats") >= 0);
        expect_error(m, UNKNOWN_PROPERTY, NEEDLES("Stats"), &base, "Get Stats on a buffer");

        /* every property is read-only */
        for (size_t i = 0; i < ELEMENTSOF(manager_props); i++) {
                char ctx[64];

                m = new_call(BB_MANAGER_PATH, "org.freedesktop.DBus.Properties", "Set");
                ck_assert(sd_bus_message_append(m, "ssv", BB_MANAGER_INTERFACE, manager_props[i],
                                                "s", "x") >= 0);
                snprintf(ctx, sizeof(ctx), "Set %s", manager_props[i]);
                expect_error(m, PROPERTY_READ_ONLY, NEEDLES(manager_props[i]), &base, ctx);
        }
        for (size_t i = 0; i < ELEMENTSOF(buffer_props); i++) {
                char ctx[64];

                m = new_call(cr.path, "org.freedesktop.DBus.Properties", "Set");
                ck_assert(sd_bus_message_append(m, "ssv", BB_BUFFER_INTERFACE, buffer_props[i],
                                                "t", (uint64_t) 1) >= 0);
                snprintf(ctx, sizeof(ctx), "Set %s", buffer_props[i]);
                expect_error(m, PROPERTY_READ_ONLY, NEEDLES(buffer_props[i]), &base, ctx);
        }
        ck_assert(list_has(NULL, cr.id));
}
END_TEST

/* ---- fds sent to the daemon ----------------------------------------------- */

typedef struct FdArgs {
        const char *address;
} FdArgs;

static int send_fds(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        int fds[4], r;

        for (int i = 0; i < 4; i++) {
                fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                child_check(fds[i] >= 0, "open: %s", strerror(errno));
        }
        /* an fd tacked onto a real method, an fd-only call, an fd array */
        r = sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, BB_MANAGER_PATH,
                                           BB_MANAGER_INTERFACE, "CreateMemfd");
        child_check(r >= 0, "new: %s", strerror(-r));
        r = sd_bus_message_append(m, "sta{sv}h", "fd", (uint64_t) 4096, 0, fds[0]);
        child_check(r >= 0, "append: %s", strerror(-r));
        r = sd_bus_call(bus, m, 0, &error, NULL);
        child_check(r < 0 && sd_bus_error_has_name(&error, ACCESS_DENIED),
                    "CreateMemfd with an fd: %s (%s), want %s", error.name ?: "success",
                    error.message ?: "", ACCESS_DENIED);
        sd_bus_error_free(&error);
        m = sd_bus_message_unref(m);

        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open",
                               &error, NULL, "sa{sv}ah", "0123456789abcdef0123456789abcdef", 0, 3,
                               fds[1], fds[2], fds[3]);
        child_check(r < 0 && sd_bus_error_has_name(&error, ACCESS_DENIED),
                    "Open with fds: %s (%s), want %s", error.name ?: "success",
                    error.message ?: "", ACCESS_DENIED);
        sd_bus_error_free(&error);

        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, "org.freedesktop.DBus.Peer",
                               "Ping", &error, NULL, "h", fds[0]);
        child_check(r < 0 && sd_bus_error_has_name(&error, ACCESS_DENIED),
                    "Peer.Ping with an fd: %s (%s), want %s", error.name ?: "success",
                    error.message ?: "", ACCESS_DENIED);
        sd_bus_error_free(&error);
        for (int i = 0; i < 4; i++)
                close(fds[i]);
        return 0;
}

static int nobody_sends_fds(void *userdata) {
        sd_bus *bus = NULL;
        int r;

        r = bus_connect(&bus);
        child_check(r >= 0, "connect: %s", strerror(-r));
        r = send_fds(bus);
        sd_bus_flush_close_unref(bus);
        return r;
}

START_TEST(test_fd_sent_to_daemon) {
        Snapshot base;

        baseline_after_warmup(&base);
        ck_assert_int_eq(send_fds(test_bus()), 0);
        assert_back_to(&base, "after root sent fds");
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_sends_fds, NULL, 10000), 0);
        assert_back_to(&base, "after nobody sent fds");
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_create_bad_sizes);
        tcase_add_test(tc, test_create_bad_names);
        tcase_add_test(tc, test_create_bad_options);
        tcase_add_test(tc, test_integer_options_of_any_type);
        tcase_add_test(tc, test_open_malformed_tokens);
        tcase_add_test(tc, test_open_dead_tokens);
        tcase_add_test(tc, test_open_bad_options);
        tcase_add_test(tc, test_share_bad_options);
        tcase_add_test(tc, test_create_v4l2_bad_devices);
        tcase_add_test(tc, test_create_v4l2_access_denied_as_nobody);
        tcase_add_test(tc, test_create_v4l2_long_utf8_path);
        tcase_add_test(tc, test_create_v4l2_bad_arguments);
        tcase_add_test(tc, test_open_fds_bad_calls);
        tcase_add_test(tc, test_nonexistent_buffers);
        tcase_add_test(tc, test_wrong_signatures);
        tcase_add_test(tc, test_wrong_signatures_busctl);
        tcase_add_test(tc, test_unknown_members_and_properties);
        tcase_add_test(tc, test_fd_sent_to_daemon);
}

int main(void) {
        Suite *s = suite_create("hostile input");

        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
