/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The asynchronous library: every *_async call succeeds and fails as its
 * blocking namesake (same errno, the broker's error name and message in the
 * callback), a cancelled call never calls back and leaves nothing behind, a
 * client closed with calls pending neither calls back nor leaks, many calls
 * may be in flight, sd-event drives a client, and a poll() loop built on
 * get_fd/get_events/get_timeout does not sleep through a signal that a
 * blocking call already read off the socket. One case reaches into the
 * library (it links its objects): the hold that bb_buffer_create_v4l2()
 * puts on callbacks while it processes the bus, without a V4L2 device.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "bufbroker.h"
#include "harness.h"
#include "libbufbroker-private.h"

/* What a callback saw. */
typedef struct Done {
        unsigned calls;         /* how often the callback ran */
        int error;
        char *error_name;
        char *error_message;
        bb_buffer *buf;         /* referenced */
        bb_buffer *bufs[BB_CREATE_BATCH_MAX];
        size_t n;
        char *token;
} Done;

static void done_clear(Done *d) {
        free(d->error_name);
        free(d->error_message);
        bb_buffer_unref(d->buf);
        for (size_t i = 0; i < d->n; i++)
                bb_buffer_unref(d->bufs[i]);
        free(d->token);
        memset(d, 0, sizeof(*d));
}

static void done_error(Done *d, int error, const char *name, const char *message) {
        d->calls++;
        d->error = error;
        d->error_name = name ? strdup(name) : NULL;
        d->error_message = message ? strdup(message) : NULL;
}

static void on_buffer(bb_client *c, int error, const char *name, const char *message, bb_buffer *buf,
                      void *userdata) {
        Done *d = userdata;

        done_error(d, error, name, message);
        ck_assert(c);
        ck_assert((error < 0) == !buf);
        d->buf = bb_buffer_ref(buf);
}

static void on_buffers(bb_client *c, int error, const char *name, const char *message, bb_buffer **bufs,
                       size_t n, void *userdata) {
        Done *d = userdata;

        done_error(d, error, name, message);
        ck_assert((error < 0) == !bufs);
        for (size_t i = 0; i < n; i++)
                d->bufs[i] = bb_buffer_ref(bufs[i]);
        d->n = n;
}

static void on_token(bb_client *c, int error, const char *name, const char *message, const char *token,
                     void *userdata) {
        Done *d = userdata;

        done_error(d, error, name, message);
        ck_assert((error < 0) == !token);
        d->token = token ? strdup(token) : NULL;
}

static void on_done(bb_client *c, int error, const char *name, const char *message, void *userdata) {
        done_error(userdata, error, name, message);
}

/* A callback that must never run. */
static void on_buffer_never(bb_client *c, int error, const char *name, const char *message, bb_buffer *buf,
                            void *userdata) {
        ck_abort_msg("callback of a cancelled call ran (error %d)", error);
}

static void on_buffers_never(bb_client *c, int error, const char *name, const char *message, bb_buffer **bufs,
                             size_t n, void *userdata) {
        ck_abort_msg("callback of a cancelled call ran (error %d)", error);
}

static bb_client *connect_lib(void) {
        bb_client *c = NULL;
        int r = bb_client_new_address(&c, H->address);

        ck_assert_msg(r == 0, "connect: %s", strerror(-r));
        return c;
}

/* Process c until every Done of the NULL-terminated list was called back
 * (or 10 s pass). */
static void drive(bb_client *c, Done *const *ds) {
        uint64_t end = now_usec() + (uint64_t) scaled_ms(10000) * 1000;

        for (;;) {
                bool all = true;

                for (size_t i = 0; ds[i]; i++)
                        all = all && ds[i]->calls > 0;
                if (all)
                        return;
                ck_assert_msg(now_usec() < end, "callbacks did not come within 10 s");
                ck_assert_int_ge(bb_client_process(c, 100 * 1000), 0);
        }
}
#define DRIVE(c, ...) drive((c), (Done *const[]) { __VA_ARGS__, NULL })

static void assert_ok(const Done *d, const char *what) {
        ck_assert_msg(d->calls == 1, "%s: called back %u times", what, d->calls);
        ck_assert_msg(d->error == 0, "%s: %s (%s: %s)", what, strerror(-d->error), d->error_name ?: "-",
                      d->error_message ?: "-");
        ck_assert_msg(!d->error_name && !d->error_message, "%s: an error name on success", what);
}

static void assert_failed(const Done *d, int error, const char *name, const char *what) {
        ck_assert_msg(d->calls == 1, "%s: called back %u times", what, d->calls);
        ck_assert_msg(d->error == error, "%s: error %d (%s), want %d (%s)", what, d->error, strerror(-d->error),
                      error, strerror(-error));
        ck_assert_msg(d->error_name && strcmp(d->error_name, name) == 0, "%s: error name %s, want %s", what,
                      d->error_name ?: "(null)", name);
        ck_assert_msg(d->error_message && *d->error_message, "%s: no error message", what);
        ck_assert(!d->buf && !d->token && d->n == 0);
}

/* Process c (for undone replies) until the daemon is back at base. */
static void drive_back_to(bb_client *c, const Snapshot *base, const char *context) {
        uint64_t end = now_usec() + (uint64_t) scaled_ms(5000) * 1000;
        Snapshot now;

        for (;;) {
                ck_assert_int_ge(bb_client_process(c, 20 * 1000), 0);
                stats_read(&now);
                if (snapshot_eq(&now, base))
                        return;
                if (now_usec() > end)
                        break;
        }
        assert_back_to(base, context);  /* fails with both snapshots printed */
}

/* create → map, write → share read-only → open on a second connection →
 * read → open_fds → freeze → release, each a callback. */
START_TEST(test_async_round_trip) {
        bb_client *a = connect_lib(), *b = connect_lib();
        Done created = { 0 }, shared = { 0 }, opened = { 0 }, by_id = { 0 }, frozen = { 0 };
        Done released = { 0 }, released_b = { 0 }, many = { 0 }, released_many = { 0 };
        bb_call *call = NULL;
        Snapshot base;
        char *p;
        size_t size;

        baseline_after_warmup(&base);

        ck_assert_int_eq(bb_buffer_create_async(a, "async", 5000, 0, 0, on_buffer, &created, &call), 0);
        ck_assert_int_eq(bb_call_is_pending(call), 1);
        DRIVE(a, &created);
        assert_ok(&created, "create");
        ck_assert_int_eq(bb_call_is_pending(call), 0);
        call = bb_call_unref(call);
        ck_assert_uint_eq(bb_buffer_size(created.buf), 8192);
        ck_assert_str_eq(bb_buffer_name(created.buf), "async");
        ck_assert_int_eq(bb_buffer_map(created.buf, (void **) &p, &size), 0);
        memcpy(p, "written before sharing", 23);

        ck_assert_int_eq(bb_buffer_share_async(created.buf, BB_SHARE_READ_ONLY, 0, 0, on_token, &shared, NULL), 0);
        DRIVE(a, &shared);
        assert_ok(&shared, "share");
        ck_assert_uint_eq(strlen(shared.token), 32);

        ck_assert_int_eq(bb_buffer_open_async(b, shared.token, on_buffer, &opened, NULL), 0);
        DRIVE(b, &opened);
        assert_ok(&opened, "open");
        ck_assert_uint_eq(bb_buffer_id(opened.buf), bb_buffer_id(created.buf));
        ck_assert_int_eq(bb_buffer_is_read_only(opened.buf), 1);
        ck_assert_int_eq(bb_buffer_map(opened.buf, (void **) &p, &size), 0);
        ck_assert_str_eq(p, "written before sharing");

        ck_assert_int_eq(bb_buffer_open_fds_async(a, bb_buffer_id(created.buf), BB_OPEN_READ_ONLY, on_buffer,
                                                  &by_id, NULL), 0);
        ck_assert_int_eq(bb_buffer_create_many_async(a, "batch", 4096, 0, 0, 3, on_buffers, &many, NULL), 0);
        DRIVE(a, &by_id, &many);
        assert_ok(&by_id, "open_fds");
        ck_assert_int_eq(bb_buffer_is_writable(by_id.buf), 0);
        assert_ok(&many, "create_many");
        ck_assert_uint_eq(many.n, 3);
        for (size_t i = 0; i < 3; i++)
                ck_assert_int_ge(bb_buffer_fd(many.bufs[i]), 3);

        /* Freeze needs no writable mapping. */
        ck_assert_int_eq(bb_buffer_unmap(created.buf), 0);
        ck_assert_int_eq(bb_buffer_freeze_async(created.buf, on_done, &frozen, NULL), 0);
        ck_assert_int_eq(bb_buffer_release_many_async(many.bufs, 3, on_done, &released_many, NULL), 0);
        DRIVE(a, &frozen, &released_many);
        assert_ok(&frozen, "freeze");
        ck_assert_int_eq(bb_buffer_is_frozen(created.buf), 1);
        assert_ok(&released_many, "release_many");

        ck_assert_int_eq(bb_buffer_release_async(created.buf, on_done, &released, NULL), 0);
        ck_assert_int_eq(bb_buffer_release_async(opened.buf, on_done, &released_b, NULL), 0);
        DRIVE(a, &released);
        DRIVE(b, &released_b);
        assert_ok(&released, "release");
        assert_ok(&released_b, "release by the opener");

        done_clear(&created);
        done_clear(&shared);
        done_clear(&opened);
        done_clear(&by_id);
        done_clear(&many);
        bb_client_unref(a);
        bb_client_unref(b);
        assert_back_to(&base, "after the round trip");
}
END_TEST

typedef struct OthersBuffer {
        uint64_t id;
        char token[64];
} OthersBuffer;

static void child_drive(bb_client *c, const Done *d) {
        uint64_t end = now_usec() + 10 * 1000 * 1000;

        while (d->calls == 0 && now_usec() < end)
                child_check(bb_client_process(c, 100 * 1000) >= 0, "process");
        child_check(d->calls == 1, "no callback within 10 s");
}

/* As nobody: the failures that need another uid (NotOwner). */
static int nobody_fails(void *userdata) {
        const OthersBuffer *other = userdata;
        bb_client *c = NULL;
        Done by_id = { 0 }, opened = { 0 }, shared = { 0 }, released = { 0 }, again = { 0 }, again_many = { 0 };
        int r;

        r = bb_client_new_address(&c, H->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_buffer_open_fds_async(c, other->id, 0, on_buffer, &by_id, NULL);
        child_check(r == 0, "open_fds_async: %s", strerror(-r));
        child_drive(c, &by_id);
        child_check(by_id.error == -EPERM, "open_fds of another uid's buffer: %d", by_id.error);
        child_check(by_id.error_name && strcmp(by_id.error_name, BB_ERROR_NOT_OWNER) == 0, "error name %s",
                    by_id.error_name ?: "(null)");
        child_check(!by_id.buf, "a handle on failure");

        /* A holder by token, but not the owner: may not share. */
        r = bb_buffer_open_async(c, other->token, on_buffer, &opened, NULL);
        child_check(r == 0, "open_async: %s", strerror(-r));
        child_drive(c, &opened);
        child_check(opened.error == 0 && opened.buf, "open by token: %d", opened.error);
        r = bb_buffer_share_async(opened.buf, 0, 0, 0, on_token, &shared, NULL);
        child_check(r == 0, "share_async: %s", strerror(-r));
        child_drive(c, &shared);
        child_check(shared.error == -EPERM, "share by a non-owner: %d", shared.error);
        child_check(shared.error_name && strcmp(shared.error_name, BB_ERROR_NOT_OWNER) == 0, "error name %s",
                    shared.error_name ?: "(null)");
        child_check(!shared.token, "a token on failure");

        /* Its hold released, it holds nothing: a second release is refused. */
        r = bb_buffer_release_async(opened.buf, on_done, &released, NULL);
        child_check(r == 0, "release_async: %s", strerror(-r));
        child_drive(c, &released);
        child_check(released.error == 0, "release of its hold: %d", released.error);
        r = bb_buffer_release_async(opened.buf, on_done, &again, NULL);
        child_check(r == 0, "release_async: %s", strerror(-r));
        r = bb_buffer_release_many_async(&opened.buf, 1, on_done, &again_many, NULL);
        child_check(r == 0, "release_many_async: %s", strerror(-r));
        child_drive(c, &again);
        child_drive(c, &again_many);
        child_check(again.error == -EPERM && again.error_name && strcmp(again.error_name, BB_ERROR_NOT_OWNER) == 0,
                    "release without a hold: %d %s", again.error, again.error_name ?: "(null)");
        child_check(again_many.error == -EPERM && again_many.error_name &&
                    strcmp(again_many.error_name, BB_ERROR_NOT_OWNER) == 0,
                    "release_many without a hold: %d %s", again_many.error, again_many.error_name ?: "(null)");
        child_check(again.error_message && strstr(again.error_message, "does not hold it"), "message: %s",
                    again.error_message ?: "(null)");
        done_clear(&released);
        done_clear(&again);
        done_clear(&again_many);
        done_clear(&by_id);
        done_clear(&opened);
        done_clear(&shared);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_async_failures) {
        bb_client *c = connect_lib();
        Done quota = { 0 }, quota_many = { 0 }, bad_token = { 0 }, no_buffer = { 0 }, created = { 0 };
        Done frozen_twice = { 0 }, released = { 0 }, freeze = { 0 };
        OthersBuffer *other = mmap(NULL, sizeof(OthersBuffer), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                                   -1, 0);
        char *token = NULL;
        Snapshot base;

        baseline_after_warmup(&base);

        /* Refused before anything is sent: no callback, ever. */
        ck_assert_int_eq(bb_buffer_create_async(NULL, "x", 1, 0, 0, on_buffer, &quota, NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_async(c, "x", 1, 0, 0, NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_async(c, "x", 1, 1U << 7, 0, on_buffer, &quota, NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_many_async(c, "x", 1, 0, 0, 0, on_buffers, &quota, NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_open_async(c, NULL, on_buffer, &quota, NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_share_async(NULL, 0, 0, 0, on_token, &quota, NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_release_many_async(NULL, 1, on_done, &quota, NULL), -EINVAL);

        ck_assert_int_eq(bb_buffer_create_async(c, "huge", UINT64_C(2) << 30, 0, 0, on_buffer, &quota, NULL), 0);
        ck_assert_int_eq(bb_buffer_create_many_async(c, "huge", UINT64_C(1) << 30, 0, 0, 16, on_buffers,
                                                     &quota_many, NULL), 0);
        ck_assert_int_eq(bb_buffer_open_async(c, "0123456789abcdef0123456789abcdef", on_buffer, &bad_token, NULL),
                         0);
        ck_assert_int_eq(bb_buffer_open_fds_async(c, UINT64_C(999999), 0, on_buffer, &no_buffer, NULL), 0);
        ck_assert_int_eq(bb_buffer_create_async(c, "frozen", 4096, 0, 0, on_buffer, &created, NULL), 0);
        DRIVE(c, &quota, &quota_many, &bad_token, &no_buffer, &created);
        assert_failed(&quota, -EDQUOT, BB_ERROR_QUOTA_EXCEEDED, "create over the size limit");
        ck_assert_msg(strstr(quota.error_message, "exceeds the limit"), "message: %s", quota.error_message);
        assert_failed(&quota_many, -EDQUOT, BB_ERROR_QUOTA_EXCEEDED, "create_many over the limit");
        assert_failed(&bad_token, -ENOKEY, BB_ERROR_NO_SUCH_TOKEN, "open of an unknown token");
        ck_assert_int_eq(no_buffer.calls, 1);
        ck_assert_int_eq(no_buffer.error, -ENOENT);
        assert_ok(&created, "create");

        ck_assert(other != MAP_FAILED);
        other->id = bb_buffer_id(created.buf);
        ck_assert_int_eq(bb_buffer_share(created.buf, 0, 0, 0, &token), 0);
        strcpy(other->token, token);
        free(token);
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_fails, other, 20000), 0);
        munmap(other, sizeof(OthersBuffer));

        ck_assert_int_eq(bb_buffer_freeze_async(created.buf, on_done, &freeze, NULL), 0);
        ck_assert_int_eq(bb_buffer_freeze_async(created.buf, on_done, &frozen_twice, NULL), 0);
        ck_assert_int_eq(bb_buffer_release_async(created.buf, on_done, &released, NULL), 0);
        DRIVE(c, &freeze, &frozen_twice, &released);
        assert_ok(&freeze, "freeze");
        assert_failed(&frozen_twice, -EALREADY, BB_ERROR_FROZEN, "freeze twice");
        assert_ok(&released, "release");

        done_clear(&created);
        done_clear(&quota);
        done_clear(&quota_many);
        done_clear(&bad_token);
        done_clear(&no_buffer);
        done_clear(&freeze);
        done_clear(&frozen_twice);
        done_clear(&released);
        bb_client_unref(c);
        assert_back_to(&base, "after the failures");
}
END_TEST

/* Cancelled before the reply: no callback; the buffers the broker made for
 * it are released, persistent or not; a cancelled open does not call back
 * either. */
START_TEST(test_async_cancel) {
        bb_client *c = connect_lib();
        bb_call *create = NULL, *persistent = NULL, *many = NULL, *open = NULL;
        _cleanup_created_ Created shared = { 0 };
        _cleanup_free_ char *token = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Done after = { 0 };
        Snapshot base;

        baseline_after_warmup(&base);

        ck_assert_int_eq(bb_buffer_create_async(c, "cancelled", 4096, 0, 0, on_buffer_never, NULL, &create), 0);
        ck_assert_int_eq(bb_buffer_create_async(c, "cancelled-persistent", 4096, BB_CREATE_PERSISTENT, 0,
                                                on_buffer_never, NULL, &persistent), 0);
        ck_assert_int_eq(bb_buffer_create_many_async(c, "cancelled-many", 4096, BB_CREATE_PERSISTENT, 0, 4,
                                                     on_buffers_never, NULL, &many), 0);
        create = bb_call_unref(create);
        persistent = bb_call_unref(persistent);
        many = bb_call_unref(many);
        ck_assert(!create && !persistent && !many);
        /* A call after them still works, and comes after their replies. */
        ck_assert_int_eq(bb_buffer_create_async(c, "after", 4096, 0, 0, on_buffer, &after, NULL), 0);
        DRIVE(c, &after);
        assert_ok(&after, "a create after the cancelled ones");
        bb_buffer_release(after.buf);
        done_clear(&after);
        drive_back_to(c, &base, "after cancelled creates");

        /* Cancel an open: the token is used, the callback never runs. */
        create_memfd(NULL, "to-open", 4096, true, 0, &shared);
        ck_assert_int_eq(call_share(NULL, shared.path, false, (uid_t) -1, false, 0, &token, &error), 1);
        ck_assert_int_eq(bb_buffer_open_async(c, token, on_buffer_never, NULL, &open), 0);
        open = bb_call_unref(open);
        ck_assert_int_eq(bb_buffer_create_async(c, "after", 4096, 0, 0, on_buffer, &after, NULL), 0);
        DRIVE(c, &after);
        assert_ok(&after, "a create after the cancelled open");
        done_clear(&after);

        bb_client_unref(c);
        ck_assert_int_ge(call_release(NULL, shared.path, &error), 0);
        created_done(&shared);          /* our fd, the buffer's lease */
        assert_back_to(&base, "after the cancelled open's connection closed");
}
END_TEST

static unsigned never_called;

static void on_buffer_count(bb_client *c, int error, const char *name, const char *message, bb_buffer *buf,
                            void *userdata) {
        never_called++;
}

/* The last reference goes with calls pending: none calls back, persistent
 * creates are released, a handle on a call outlives its client. */
START_TEST(test_async_client_unref_pending) {
        bb_client *c = connect_lib();
        bb_call *kept = NULL;
        Created other;
        _cleanup_free_ char *token = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Snapshot base;

        baseline_after_warmup(&base);
        create_memfd(NULL, "to-open", 4096, true, 0, &other);
        ck_assert_int_eq(call_share(NULL, other.path, false, (uid_t) -1, false, 0, &token, &error), 1);

        never_called = 0;
        for (unsigned i = 0; i < 8; i++)
                ck_assert_int_eq(bb_buffer_create_async(c, "pending", 4096, i % 2 ? BB_CREATE_PERSISTENT : 0, 0,
                                                        on_buffer_count, NULL, NULL), 0);
        ck_assert_int_eq(bb_buffer_open_async(c, token, on_buffer_count, NULL, &kept), 0);
        ck_assert_int_eq(bb_call_is_pending(kept), 1);
        bb_client_unref(c);
        ck_assert_int_eq(bb_call_is_pending(kept), 0);
        kept = bb_call_unref(kept);
        ck_assert_uint_eq(never_called, 0);

        ck_assert_int_ge(call_release(NULL, other.path, &error), 0);
        created_done(&other);
        assert_back_to(&base, "after a client closed with calls pending");
}
END_TEST

/* The client's last reference dropped from within a callback of its own. */
static void on_buffer_drop_client(bb_client *c, int error, const char *name, const char *message,
                                  bb_buffer *buf, void *userdata) {
        Done *d = userdata;

        on_buffer(c, error, name, message, buf, userdata);
        bb_buffer_unref(d->buf);
        d->buf = NULL;
        bb_client_unref(c);
}

START_TEST(test_async_unref_in_callback) {
        sd_event *e = NULL;
        bb_client *c = connect_lib();
        Done first = { 0 };
        Snapshot base;

        baseline_after_warmup(&base);
        ck_assert_int_eq(sd_event_new(&e), 0);
        ck_assert_int_eq(bb_client_attach_event(c, e, 0), 0);
        ck_assert_int_eq(bb_client_attach_event(c, e, 0), -EBUSY);
        never_called = 0;
        ck_assert_int_eq(bb_buffer_create_async(c, "first", 4096, 0, 0, on_buffer_drop_client, &first, NULL), 0);
        ck_assert_int_eq(bb_buffer_create_async(c, "second", 4096, 0, 0, on_buffer_count, NULL, NULL), 0);
        for (unsigned i = 0; i < 100 && first.calls == 0; i++)
                ck_assert_int_ge(sd_event_run(e, 100 * 1000), 0);
        assert_ok(&first, "create");
        /* the client is gone: the second callback never comes */
        for (unsigned i = 0; i < 3; i++)
                ck_assert_int_ge(sd_event_run(e, 20 * 1000), 0);
        ck_assert_uint_eq(never_called, 0);
        done_clear(&first);
        sd_event_unref(e);
        assert_back_to(&base, "after the client closed in its callback");
}
END_TEST

/* 24 calls in flight at once (the broker lets 32 wait per connection),
 * their replies in order; then 64 at once: each is answered, by a buffer or
 * by LimitsExceeded, none is lost. */
START_TEST(test_async_many_in_flight) {
        enum { N = 24, M = 64 };
        bb_client *c = connect_lib();
        Done d[M];
        Done *list[M + 1];
        unsigned ok = 0, limited = 0;
        Snapshot base;

        baseline_after_warmup(&base);
        memset(d, 0, sizeof(d));
        for (unsigned i = 0; i < N; i++) {
                ck_assert_int_eq(bb_buffer_create_async(c, "flight", 4096, 0, 0, on_buffer, &d[i], NULL), 0);
                list[i] = &d[i];
        }
        list[N] = NULL;
        drive(c, list);
        for (unsigned i = 0; i < N; i++) {
                assert_ok(&d[i], "a create of many");
                if (i > 0)
                        ck_assert_uint_gt(bb_buffer_id(d[i].buf), bb_buffer_id(d[i - 1].buf));
                done_clear(&d[i]);
        }
        /* The connection still holds them: they go when it closes. */

        for (unsigned i = 0; i < M; i++) {
                ck_assert_int_eq(bb_buffer_create_async(c, "flood", 4096, 0, 0, on_buffer, &d[i], NULL), 0);
                list[i] = &d[i];
        }
        list[M] = NULL;
        drive(c, list);
        for (unsigned i = 0; i < M; i++) {
                ck_assert_uint_eq(d[i].calls, 1);
                if (d[i].error == 0)
                        ok++;
                else {
                        ck_assert_msg(d[i].error == -ENOBUFS && d[i].error_name &&
                                      strcmp(d[i].error_name, BB_ERROR_LIMITS_EXCEEDED) == 0,
                                      "call %u: %s (%s)", i, strerror(-d[i].error), d[i].error_name ?: "-");
                        limited++;
                }
                done_clear(&d[i]);
        }
        ck_assert_uint_eq(ok + limited, M);
        ck_assert_uint_ge(ok, 32);
        bb_client_unref(c);
        assert_back_to(&base, "after many calls in flight");
}
END_TEST

static unsigned released_count;

static void on_released(const char *path, uint64_t id, void *userdata) {
        uint64_t *want = userdata;

        if (id == *want)
                released_count++;
}

static int poll_timeout_ms(bb_client *c) {
        struct timespec ts;
        uint64_t until, now;

        ck_assert_int_eq(bb_client_get_timeout(c, &until), 0);
        if (until == UINT64_MAX)
                return -1;
        ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        now = (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
        return until <= now ? 0 : (int) ((until - now + 999) / 1000);
}

/* The poll() loop: a blocking call reads a BufferReleased off the
 * socket while it waits for its own reply. The socket is empty then; the
 * signal waits in the library. sd-bus's events leave POLLIN out in that
 * state, so a loop that trusted the events and no timeout slept through
 * it. Now get_timeout says 0 (and the events keep POLLIN). */
START_TEST(test_poll_loop_sees_undispatched_signal) {
        bb_client *c = connect_lib(), *other = connect_lib();
        bb_buffer *buf = NULL;
        uint64_t id, stat;
        struct pollfd pfd;
        int r;

        ck_assert_int_eq(bb_client_monitor(c, on_released, &id), 0);
        ck_assert_int_eq(bb_buffer_create(other, "released", 4096, 0, 0, &buf), 0);
        id = bb_buffer_id(buf);
        released_count = 0;
        /* The broker emits BufferReleased before its reply to Release; the
         * bus delivers it to c before anything c asks after this. */
        ck_assert_int_eq(bb_buffer_release(buf), 0);
        bb_buffer_unref(buf);
        ck_assert_int_eq(bb_client_get_stat(c, "buffers", &stat), 0);

        /* The bug's state: nothing on the socket, the signal not dispatched. */
        pfd = (struct pollfd) { .fd = bb_client_get_fd(c), .events = POLLIN };
        ck_assert_int_ge(pfd.fd, 0);
        ck_assert_int_eq(poll(&pfd, 1, 200), 0);
        ck_assert_uint_eq(released_count, 0);

        /* The loop as documented: one round, and it is not sleeping. */
        ck_assert_int_ne(bb_client_get_events(c) & POLLIN, 0);
        ck_assert_int_eq(poll_timeout_ms(c), 0);
        pfd.events = (short) bb_client_get_events(c);
        r = poll(&pfd, 1, poll_timeout_ms(c));
        ck_assert_int_ge(r, 0);
        ck_assert_int_eq(bb_client_process(c, 0), 1);
        ck_assert_uint_eq(released_count, 1);

        /* Nothing left: no timeout, until a call is in flight. */
        ck_assert_int_eq(poll_timeout_ms(c), -1);
        bb_client_unref(other);
        bb_client_unref(c);
}
END_TEST

/* A reply's timeout shows in get_timeout while an asynchronous call is
 * pending. */
START_TEST(test_timeout_while_pending) {
        bb_client *c = connect_lib();
        Done d = { 0 };
        int t;

        ck_assert_int_eq(poll_timeout_ms(c), -1);
        ck_assert_int_eq(bb_buffer_create_async(c, "t", 4096, 0, 0, on_buffer, &d, NULL), 0);
        t = poll_timeout_ms(c);
        /* sd-bus's method call timeout: 25 s */
        ck_assert_msg(t > 20000 && t <= 25000, "timeout %d ms while a call is pending", t);
        DRIVE(c, &d);
        assert_ok(&d, "create");
        ck_assert_int_eq(poll_timeout_ms(c), -1);
        done_clear(&d);
        bb_client_unref(c);
}
END_TEST

/* Detached, a client's callbacks run from no loop; attached to another,
 * from that one. */
START_TEST(test_attach_detach) {
        sd_event *first = NULL, *second = NULL;
        bb_client *c = connect_lib();
        Done d = { 0 };

        ck_assert_int_eq(sd_event_new(&first), 0);
        ck_assert_int_eq(sd_event_new(&second), 0);
        ck_assert_int_eq(bb_client_attach_event(c, first, 0), 0);
        ck_assert_int_eq(bb_client_detach_event(c), 0);
        ck_assert_int_eq(bb_client_attach_event(c, second, -5), 0);
        ck_assert_int_eq(bb_buffer_create_async(c, "attached", 4096, 0, 0, on_buffer, &d, NULL), 0);
        for (unsigned i = 0; i < 5; i++)
                ck_assert_int_ge(sd_event_run(first, 20 * 1000), 0);
        ck_assert_uint_eq(d.calls, 0);
        for (unsigned i = 0; i < 100 && d.calls == 0; i++)
                ck_assert_int_ge(sd_event_run(second, 100 * 1000), 0);
        assert_ok(&d, "create from the second loop");
        done_clear(&d);
        bb_client_unref(c);
        sd_event_unref(first);
        sd_event_unref(second);
}
END_TEST

/* What ran, in order: 'c' a create callback, 'r' a BufferReleased. */
static char order[16];

static void on_buffer_order(bb_client *c, int error, const char *name, const char *message, bb_buffer *buf,
                            void *userdata) {
        on_buffer(c, error, name, message, buf, userdata);
        order[strlen(order)] = 'c';
}

/* Not the undone cancelled create's: when its signal comes, after the
 * undo's Release, depends on timing. */
static void on_released_order(const char *path, uint64_t id, const char *reason, void *userdata) {
        if (strcmp(reason, BB_REASON_UNDONE) != 0)
                order[strlen(order)] = 'r';
}

static size_t n_deferred(bb_client *c, char *kinds) {
        size_t n = 0;

        for (deferred *d = c->deferred_head; d; d = d->next)
                kinds[n++] = d->call ? 'c' : 'r';
        kinds[n] = 0;
        return n;
}

/* bb_buffer_create_v4l2() processes the bus itself while its OpenFds calls
 * are in flight (client.c's hold_callbacks). Replies and signals that come
 * meanwhile wait and run afterwards, in the order they came, from
 * bb_client_process() or from the attached sd-event loop; a held-back call
 * can still be cancelled, and a cancelled persistent create is undone. */
START_TEST(test_callbacks_held_back) {
        bb_client *c = connect_lib(), *other = connect_lib();
        Done first = { 0 }, second = { 0 }, third = { 0 }, released = { 0 };
        bb_call *cancelled = NULL;
        char kinds[16];
        bb_buffer *buf;
        sd_event *e = NULL;
        uint64_t until, end;
        Snapshot base;

        baseline_after_warmup(&base);
        ck_assert_int_eq(bb_client_monitor_reason(c, on_released_order, NULL), 0);
        ck_assert_int_eq(bb_buffer_create(other, "released", 4096, 0, 0, &buf), 0);
        memset(order, 0, sizeof(order));

        c->hold_callbacks++;
        ck_assert_int_eq(bb_buffer_create_async(c, "first", 4096, 0, 0, on_buffer_order, &first, NULL), 0);
        ck_assert_int_eq(bb_buffer_release(buf), 0);
        buf = bb_buffer_unref(buf);
        ck_assert_int_eq(bb_buffer_create_async(c, "cancelled", 4096, BB_CREATE_PERSISTENT, 0, on_buffer_never,
                                                NULL, &cancelled), 0);
        ck_assert_int_eq(bb_buffer_create_async(c, "second", 4096, 0, 0, on_buffer_order, &second, NULL), 0);
        /* as open_fds_all() does */
        end = now_usec() + (uint64_t) scaled_ms(5000) * 1000;
        while (n_deferred(c, kinds) < 4) {
                int r = sd_bus_process(c->bus, NULL);

                ck_assert_int_ge(r, 0);
                if (r == 0)
                        ck_assert_int_ge(sd_bus_wait(c->bus, 100 * 1000), 0);
                ck_assert_msg(now_usec() < end, "replies and signal not read within 5 s (%s)", kinds);
        }
        ck_assert_msg(strlen(order) == 0 && first.calls == 0, "a callback ran while held back: %s", order);
        ck_assert_int_eq(bb_call_is_pending(cancelled), 1);
        cancelled = bb_call_unref(cancelled);
        c->hold_callbacks--;

        /* Nothing on the socket, but something to do: no sleeping. */
        ck_assert_int_eq(bb_client_get_timeout(c, &until), 0);
        ck_assert_uint_eq(until, 0);
        ck_assert_int_eq(bb_client_process(c, 0), 1);
        /* In the order the messages came, less the cancelled create (the
         * creates' replies come in the order they were sent: its 'c' is the
         * second). */
        {
                char want[16], *p = want;
                unsigned creates = 0;

                for (const char *k = kinds; *k; k++)
                        if (*k != 'c' || ++creates != 2)
                                *p++ = *k;
                *p = 0;
                ck_assert_msg(strcmp(order, want) == 0, "callbacks ran as %s, messages came as %s", order, kinds);
        }
        assert_ok(&first, "held-back create");
        assert_ok(&second, "held-back create");
        ck_assert_str_eq(bb_buffer_name(first.buf), "first");
        ck_assert_str_eq(bb_buffer_name(second.buf), "second");
        /* nothing waits now (the undo's Release may still be in flight) */
        ck_assert_int_eq(bb_client_get_timeout(c, &until), 0);
        ck_assert_uint_ne(until, 0);
        ck_assert_int_eq(bb_buffer_release(first.buf), 0);
        ck_assert_int_eq(bb_buffer_release(second.buf), 0);
        done_clear(&first);
        done_clear(&second);

        /* Attached to sd-event: the loop's defer source delivers them. (The
         * two releases above send signals: not wanted here.) */
        ck_assert_int_eq(bb_client_monitor(c, NULL, NULL), 0);
        ck_assert_int_eq(sd_event_new(&e), 0);
        ck_assert_int_eq(bb_client_attach_event(c, e, 0), 0);
        ck_assert_int_eq(bb_buffer_create(c, "gone", 4096, 0, 0, &buf), 0);
        c->hold_callbacks++;
        ck_assert_int_eq(bb_buffer_create_async(c, "third", 4096, 0, 0, on_buffer, &third, NULL), 0);
        ck_assert_int_eq(bb_buffer_release_async(buf, on_done, &released, NULL), 0);
        end = now_usec() + (uint64_t) scaled_ms(5000) * 1000;
        while (n_deferred(c, kinds) < 2) {
                int r = sd_bus_process(c->bus, NULL);

                ck_assert_int_ge(r, 0);
                if (r == 0)
                        ck_assert_int_ge(sd_bus_wait(c->bus, 100 * 1000), 0);
                ck_assert_msg(now_usec() < end, "reply not read within 5 s");
        }
        /* The release's handle goes before its reply is delivered. */
        buf = bb_buffer_unref(buf);
        c->hold_callbacks--;
        ck_assert_uint_eq(third.calls, 0);
        /* sd_event_run() dispatches one source per iteration */
        for (unsigned i = 0; i < 5 && released.calls == 0; i++)
                ck_assert_int_ge(sd_event_run(e, 0), 0);
        assert_ok(&third, "a held-back create, from sd-event");
        assert_ok(&released, "a held-back release whose handle went");
        ck_assert_int_eq(bb_buffer_release(third.buf), 0);
        done_clear(&third);

        bb_client_unref(other);
        bb_client_unref(c);
        sd_event_unref(e);
        assert_back_to(&base, "after held-back callbacks");
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_async_round_trip);
        tcase_add_test(tc, test_async_failures);
        tcase_add_test(tc, test_async_cancel);
        tcase_add_test(tc, test_async_client_unref_pending);
        tcase_add_test(tc, test_async_unref_in_callback);
        tcase_add_test(tc, test_async_many_in_flight);
        tcase_add_test(tc, test_poll_loop_sees_undispatched_signal);
        tcase_add_test(tc, test_timeout_while_pending);
        tcase_add_test(tc, test_attach_detach);
        tcase_add_test(tc, test_callbacks_held_back);
}

int main(void) {
        Suite *s = suite_create("async");

        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
