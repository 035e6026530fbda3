/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A buffer's life: create → write → share → open read-only as another uid in
 * a second process → read → release, with BufferReleased; holders tracked
 * per connection (a SIGKILLed client with 100 buffers leaves nothing); the
 * seals (no truncate/grow); Freeze; persistent buffers and TTLs through
 * busctl.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bufbroker.h"
#include "harness.h"

#define PATTERN "bufbroker integration pattern: 0123456789abcdef"

static bb_client *lib_connect(void) {
        bb_client *c = NULL;
        int r = bb_client_new_address(&c, H->address);

        ck_assert_msg(r == 0, "bb_client_new_address(%s): %s", H->address, strerror(-r));
        return c;
}

/* ---- create → write → share → open RO as nobody → read → release ------- */

typedef struct OpenArgs {
        const char *address;
        const char *token;
        uint64_t id;
        uint64_t size;
} OpenArgs;

static int nobody_opens_read_only(void *userdata) {
        const OpenArgs *a = userdata;
        bb_client *c = NULL;
        bb_buffer *buf = NULL;
        void *addr;
        size_t size;
        int r, fd;

        r = bb_client_new_address(&c, a->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_buffer_open(c, a->token, &buf);
        child_check(r == 0, "bb_buffer_open as uid %u: %s (%s)", (unsigned) getuid(), strerror(-r),
                    bb_client_error_message(c) ?: "");
        child_check(bb_buffer_id(buf) == a->id, "opened id %" PRIu64 ", want %" PRIu64,
                    bb_buffer_id(buf), a->id);
        child_check(bb_buffer_size(buf) == a->size, "size %" PRIu64, bb_buffer_size(buf));
        child_check(bb_buffer_is_read_only(buf) == 1, "handle is not read-only");
        child_check(bb_buffer_owner_uid(buf) == 0, "owner uid %u", (unsigned) bb_buffer_owner_uid(buf));
        child_check(strcmp(bb_buffer_name(buf), "roundtrip") == 0, "name %s", bb_buffer_name(buf));
        r = bb_buffer_map(buf, &addr, &size);
        child_check(r == 0, "map: %s", strerror(-r));
        child_check(size == a->size, "mapped %zu bytes", size);
        child_check(memcmp(addr, PATTERN, sizeof(PATTERN)) == 0, "contents differ: '%.*s'",
                    (int) sizeof(PATTERN), (const char *) addr);

        /* the fd really is read-only: no writable shared mapping, no write() */
        fd = bb_buffer_fd(buf);
        child_check(fd >= 0, "fd: %s", strerror(-fd));
        child_check((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY, "fd is not O_RDONLY");
        child_check(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED &&
                            errno == EACCES,
                    "writable mmap of a read-only share: %s", strerror(errno));
        child_check(write(fd, "x", 1) < 0 && errno == EBADF, "write() to a read-only share: %s",
                    strerror(errno));
        child_check(pwrite(fd, "x", 1, 0) < 0, "pwrite() to a read-only share succeeded");

        r = bb_buffer_release(buf);
        child_check(r == 0, "release of our own hold: %s", strerror(-r));
        bb_buffer_unref(buf);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_roundtrip_read_only_other_uid) {
        bb_client *c = lib_connect();
        bb_buffer *buf = NULL;
        Snapshot base;
        char *token = NULL;
        void *addr;
        size_t size;
        uint64_t id;
        OpenArgs a;

        stats_read(&base);
        released_watch();
        ck_assert_int_eq(bb_buffer_create(c, "roundtrip", 5000, 0, 0, &buf), 0);
        ck_assert_uint_eq(bb_buffer_size(buf), 8192);          /* page-rounded */
        ck_assert_int_eq(bb_buffer_map(buf, &addr, &size), 0);
        memcpy(addr, PATTERN, sizeof(PATTERN));
        ck_assert_int_eq(bb_buffer_share(buf, BB_SHARE_READ_ONLY, 0, 0, &token), 0);
        ck_assert_uint_eq(strlen(token), BB_TOKEN_LEN);
        ck_assert_uint_eq(stats_get(BB_STAT_TOKENS), base.tokens + 1);

        a = (OpenArgs) { .address = H->address, .token = token, .id = bb_buffer_id(buf),
                         .size = bb_buffer_size(buf) };
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_opens_read_only, &a, 20000), 0);
        id = bb_buffer_id(buf);

        /* nobody released its hold; ours keeps the buffer */
        ck_assert(!released_seen(bb_buffer_id(buf)));
        ck_assert(list_has(NULL, bb_buffer_id(buf)));
        ck_assert_int_eq(bb_buffer_release(buf), 0);
        /* our mapping outlives the release, and the buffer with it (the fd
         * is the lease: it is charged while its memory is alive) */
        ck_assert(memcmp(addr, PATTERN, sizeof(PATTERN)) == 0);
        ck_assert(!released_wait(bb_buffer_id(buf), 300));
        ck_assert(list_has(NULL, bb_buffer_id(buf)));
        /* unmapped and closed: gone */
        bb_buffer_unref(buf);
        ck_assert_msg(released_wait(id, 5000), "no BufferReleased for %" PRIu64, id);
        /* the released buffer's token died with it */
        {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r = call_open(NULL, token, NULL, NULL, NULL, &error);

                assert_bus_error(&error, r, BB_ERROR_NO_SUCH_TOKEN, NULL,
                                 "Open of a released buffer's token");
                sd_bus_error_free(&error);
        }
        bb_client_unref(c);
        free(token);
        assert_back_to(&base, "after the round trip");
}
END_TEST

/* ---- a client SIGKILLed while holding 100 buffers ---------------------- */

typedef struct HoarderArgs {
        const char *address;
        int ready_fd;
        unsigned n;
} HoarderArgs;

static int hoarder(void *userdata) {
        const HoarderArgs *a = userdata;
        bb_buffer **bufs = calloc(a->n, sizeof(bb_buffer *));
        bb_client *c = NULL;
        int r;

        child_check(bufs, "oom");
        r = bb_client_new_address(&c, a->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        for (unsigned i = 0; i < a->n; i++) {
                void *addr;
                size_t size;

                r = bb_buffer_create(c, "hoard", 4096, 0, 0, &bufs[i]);
                child_check(r == 0, "create #%u: %s (%s)", i, strerror(-r),
                            bb_client_error_message(c) ?: "");
                /* touch it, so it is really in use */
                r = bb_buffer_map(bufs[i], &addr, &size);
                child_check(r == 0, "map #%u: %s", i, strerror(-r));
                memset(addr, 0xa5, size);
        }
        child_check(write(a->ready_fd, "R", 1) == 1, "ready: %s", strerror(errno));
        for (;;)
                pause();
}

static void sigkill_hoarder(uid_t uid) {
        HoarderArgs a = { .address = H->address, .n = 100 };
        Snapshot base, full;
        int pipefd[2];
        char c;
        pid_t pid;

        baseline_after_warmup(&base);
        ck_assert(pipe2(pipefd, O_CLOEXEC) == 0);
        a.ready_fd = pipefd[1];
        pid = fork_as(uid, hoarder, &a);
        close(pipefd[1]);
        ck_assert_msg(read(pipefd[0], &c, 1) == 1, "the hoarder died before holding %u buffers",
                      a.n);
        close(pipefd[0]);

        stats_read(&full);
        ck_assert_uint_eq(full.buffers, base.buffers + a.n);
        ck_assert_uint_eq(full.bytes, base.bytes + a.n * 4096);
        ck_assert_uint_eq(full.clients, base.clients + 1);
        /* one fd per buffer in the daemon, no more */
        ck_assert_int_eq(full.fds, base.fds + (int) a.n);

        ck_assert(kill(pid, SIGKILL) == 0);
        ck_assert_int_eq(wait_child(pid, 5000), 128 + SIGKILL);
        assert_back_to(&base, "after SIGKILL of a client holding 100 buffers");
}

START_TEST(test_sigkill_client_with_100_buffers) {
        sigkill_hoarder(AS_ROOT);
}
END_TEST

START_TEST(test_sigkill_nobody_client_with_100_buffers) {
        sigkill_hoarder(NOBODY_UID);
}
END_TEST

/* ---- seals ----------------------------------------------------------- */

static void assert_sealed_size(int fd, uint64_t size, const char *what) {
        struct stat st;
        int seals = fcntl(fd, F_GET_SEALS);

        ck_assert_msg(seals >= 0, "%s: F_GET_SEALS: %s", what, strerror(errno));
        ck_assert_msg((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW),
                      "%s: seals 0x%x lack SHRINK|GROW", what, seals);
        ck_assert_msg(ftruncate(fd, 0) < 0 && errno == EPERM, "%s: truncate to 0: %s", what,
                      strerror(errno));
        ck_assert_msg(ftruncate(fd, (off_t) size - 1) < 0 && errno == EPERM,
                      "%s: shrink by one byte: %s", what, strerror(errno));
        ck_assert_msg(ftruncate(fd, (off_t) size + 4096) < 0 && errno == EPERM,
                      "%s: grow: %s", what, strerror(errno));
        ck_assert_msg(fallocate(fd, 0, (off_t) size, 4096) < 0 && errno == EPERM,
                      "%s: fallocate beyond the end: %s", what, strerror(errno));
        ck_assert_msg(pwrite(fd, "x", 1, (off_t) size) < 0 && errno == EPERM,
                      "%s: write beyond the end: %s", what, strerror(errno));
        ck_assert(fstat(fd, &st) == 0);
        ck_assert_uint_eq((uint64_t) st.st_size, size);
        /* a memfd: anonymous, not a file somewhere */
        ck_assert(S_ISREG(st.st_mode));
}

typedef struct SealArgs {
        const char *address;
        const char *token;
        uint64_t size;
} SealArgs;

static int nobody_tries_resize(void *userdata) {
        const SealArgs *a = userdata;
        bb_client *c = NULL;
        bb_buffer *buf = NULL;
        int r, fd;

        r = bb_client_new_address(&c, a->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_buffer_open(c, a->token, &buf);
        child_check(r == 0, "open: %s", strerror(-r));
        fd = bb_buffer_fd(buf);
        child_check((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR, "writable share is not O_RDWR");
        child_check(ftruncate(fd, 0) < 0 && errno == EPERM, "truncate: %s", strerror(errno));
        child_check(ftruncate(fd, (off_t) a->size * 2) < 0 && errno == EPERM, "grow: %s",
                    strerror(errno));
        child_check(pwrite(fd, "ok", 2, 0) == 2, "writing inside: %s", strerror(errno));
        bb_buffer_unref(buf);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_seals_forbid_resize) {
        _cleanup_created_ Created cr = { .fd = -1 };
        char *token = NULL;
        int fd = -1;
        bool ro;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        SealArgs a;

        create_memfd(NULL, "sealed", 3 * 4096, false, 0, &cr);
        ck_assert_uint_eq(cr.size, 3 * 4096);
        assert_sealed_size(cr.fd, cr.size, "creator's fd");

        /* the fd a writable Open hands out carries the same seals */
        ck_assert_msg(call_share(NULL, cr.path, false, (uid_t) -1, false, 0, &token, &error) >= 0,
                      "Share: %s", error.message);
        ck_assert_msg(call_open(NULL, token, NULL, &fd, &ro, &error) >= 0, "Open: %s",
                      error.message);
        ck_assert(!ro);
        assert_sealed_size(fd, cr.size, "opened fd");
        close(fd);

        /* and in another uid's hands */
        a = (SealArgs) { .address = H->address, .token = token, .size = cr.size };
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_tries_resize, &a, 20000), 0);
        {
                char b[2];

                ck_assert(pread(cr.fd, b, 2, 0) == 2 && memcmp(b, "ok", 2) == 0);
        }
        free(token);
        sd_bus_error_free(&error);
}
END_TEST

/* Every holder gets its own open file description: one holder's file offset
 * or status flags never move under another's feet. */
START_TEST(test_holders_do_not_share_offsets) {
        _cleanup_created_ Created cr = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL;
        int fd = -1;

        create_memfd(NULL, "offsets", 4096, false, 0, &cr);
        ck_assert(call_share(NULL, cr.path, false, (uid_t) -1, false, 0, &token, &error) >= 0);
        ck_assert_msg(call_open(NULL, token, NULL, &fd, NULL, &error) >= 0, "Open: %s",
                      error.message);
        ck_assert(lseek(cr.fd, 1000, SEEK_SET) == 1000);
        ck_assert_msg(lseek(fd, 0, SEEK_CUR) == 0, "the opened fd shares the creator's offset");
        ck_assert(write(fd, "abc", 3) == 3);
        ck_assert_msg(lseek(cr.fd, 0, SEEK_CUR) == 1000, "a write through another fd moved ours");
        ck_assert(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
        ck_assert_msg(!(fcntl(cr.fd, F_GETFL) & O_NONBLOCK), "status flags are shared");
        close(fd);
        free(token);
        sd_bus_error_free(&error);
}
END_TEST

/* ---- Freeze ------------------------------------------------------------ */

START_TEST(test_freeze) {
        bb_client *c = lib_connect();
        bb_buffer *buf = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        void *addr;
        size_t size;
        int r, fd;

        ck_assert_int_eq(bb_buffer_create(c, "freeze-me", 4096, 0, 0, &buf), 0);
        ck_assert_int_eq(bb_buffer_map(buf, &addr, &size), 0);
        memcpy(addr, "frozen", 6);

        /* mapped writable: Busy, by exact error name over the bus too */
        r = call_freeze(NULL, bb_buffer_path(buf), &error);
        assert_bus_error(&error, r, BB_ERROR_BUSY, NULL, "Freeze while mapped writable");
        sd_bus_error_free(&error);
        ck_assert_int_eq(bb_buffer_freeze(buf), -ETXTBSY);
        ck_assert_str_eq(bb_client_error_name(c), BB_ERROR_BUSY);
        ck_assert_int_eq(bb_buffer_is_frozen(buf), 0);

        ck_assert_int_eq(bb_buffer_unmap(buf), 0);
        ck_assert_int_eq(bb_buffer_freeze(buf), 0);
        ck_assert_int_eq(bb_buffer_is_frozen(buf), 1);

        fd = bb_buffer_fd(buf);
        ck_assert_msg(fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE, "no F_SEAL_WRITE after Freeze");
        ck_assert_msg(pwrite(fd, "x", 1, 0) < 0 && errno == EPERM, "write after Freeze: %s",
                      strerror(errno));
        ck_assert_msg(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED &&
                              errno == EPERM,
                      "writable mmap after Freeze: %s", strerror(errno));
        /* contents kept, readable */
        ck_assert_int_eq(bb_buffer_map(buf, &addr, &size), 0);
        ck_assert(memcmp(addr, "frozen", 6) == 0);

        /* twice: Frozen; and the property says so */
        r = call_freeze(NULL, bb_buffer_path(buf), &error);
        assert_bus_error(&error, r, BB_ERROR_FROZEN, NULL, "second Freeze");
        sd_bus_error_free(&error);
        {
                int frozen = 0;

                ck_assert(sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, bb_buffer_path(buf),
                                                      BB_BUFFER_INTERFACE, "Frozen", &error, 'b',
                                                      &frozen) >= 0);
                ck_assert(frozen);
        }
        bb_buffer_unref(buf);
        bb_client_unref(c);
}
END_TEST

/* ---- persistence and TTL through busctl ------------------------------ */

/* busctl call CreateMemfd; returns the buffer id. */
static uint64_t busctl_create(uid_t uid, const char *name, bool persistent, const char *ttl) {
        _cleanup_run_result_ RunResult r = { 0 };
        char path[256];

        if (ttl)
                busctl(&r, uid, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                       "CreateMemfd", "sta{sv}", name, "4096", "2", BB_OPT_PERSISTENT, "b",
                       persistent ? "true" : "false", BB_OPT_TTL_USEC, "t", ttl);
        else
                busctl(&r, uid, "call", BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                       "CreateMemfd", "sta{sv}", name, "4096", "1", BB_OPT_PERSISTENT, "b",
                       persistent ? "true" : "false");
        ck_assert_run_status(&r, 0);
        ck_assert_msg(sscanf(r.out, "oht \"%255[^\"]\"", path) == 1, "busctl printed: %s", r.out);
        return buffer_id_from_path(path);
}

START_TEST(test_busctl_persistent_survives_creator) {
        _cleanup_run_result_ RunResult rel = { 0 };
        Snapshot base;
        uint64_t id;
        char *path;

        baseline_after_warmup(&base);
        released_watch();
        id = busctl_create(AS_ROOT, "persistent", true, NULL);
        /* busctl has exited: the buffer lives on, with no holder */
        ck_assert(list_has(NULL, id));
        ck_assert(!released_seen(id));
        ck_assert_uint_eq(stats_get(BB_STAT_BUFFERS), base.buffers + 1);
        ck_assert_uint_eq(stats_get(BB_STAT_CLIENTS), base.clients);
        {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int persistent = 0;

                path = buffer_path(id);
                ck_assert(sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, path,
                                                      BB_BUFFER_INTERFACE, "Persistent", &error,
                                                      'b', &persistent) >= 0);
                ck_assert(persistent);
        }
        /* Release by the owner (busctl, another connection of the same uid) drops it */
        busctl(&rel, AS_ROOT, "call", BB_BUS_NAME, path, BB_BUFFER_INTERFACE, "Release");
        ck_assert_run_status(&rel, 0);
        ck_assert_msg(released_wait(id, 5000), "no BufferReleased after Release");
        ck_assert(!list_has(NULL, id));
        assert_back_to(&base, "after releasing a persistent buffer");
        free(path);
}
END_TEST

START_TEST(test_busctl_transient_dies_with_creator) {
        Snapshot base;
        uint64_t id;

        baseline_after_warmup(&base);
        released_watch();
        id = busctl_create(AS_ROOT, "transient", false, NULL);
        ck_assert_msg(released_wait(id, 5000),
                      "a non-persistent buffer outlived the busctl that created it");
        assert_back_to(&base, "after the creator of a transient buffer exited");
}
END_TEST

START_TEST(test_busctl_ttl_expiry) {
        const uint64_t ttl = (uint64_t) scaled_ms(600) * 1000u;
        char ttlstr[32];
        uint64_t start, id, gone;
        Snapshot base;

        baseline_after_warmup(&base);
        released_watch();
        snprintf(ttlstr, sizeof(ttlstr), "%" PRIu64, ttl);
        start = now_usec();
        id = busctl_create(NOBODY_UID, "short-lived", true, ttlstr);
        ck_assert_msg(list_has(NULL, id), "the buffer is gone before its ttl");
        ck_assert_msg(released_wait(id, 10000), "the buffer outlived its ttl");
        gone = now_usec();
        ck_assert_msg(gone - start >= ttl, "dropped after %" PRIu64 " us, before its ttl",
                      gone - start);
        ck_assert_msg(!list_has(NULL, id), "still listed after BufferReleased");
        assert_back_to(&base, "after ttl expiry");
}
END_TEST

/* A token's ttl: Open works before, NoSuchToken after. */
START_TEST(test_token_ttl_expiry) {
        _cleanup_created_ Created cr = { .fd = -1 };
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *token = NULL, *token2 = NULL;
        uint64_t ttl = (uint64_t) scaled_ms(400) * 1000u, shared;
        int r;

        create_memfd(NULL, "token-ttl", 4096, false, 0, &cr);
        ck_assert(call_share(NULL, cr.path, false, (uid_t) -1, false, ttl, &token, &error) >= 0);
        ck_assert(call_share(NULL, cr.path, false, (uid_t) -1, false, ttl, &token2, &error) >= 0);
        /* both expire at the latest ttl after this instant */
        shared = now_usec();
        ck_assert_msg(call_open(NULL, token, NULL, NULL, NULL, &error) >= 0,
                      "Open before the token's ttl: %s", error.message);
        while (now_usec() - shared < ttl + 50000)
                msleep(10);
        r = call_open(NULL, token2, NULL, NULL, NULL, &error);
        assert_bus_error(&error, r, BB_ERROR_NO_SUCH_TOKEN, NULL, "Open after the token's ttl");
        sd_bus_error_free(&error);
        /* expired tokens are dropped by the daemon's timer, not only on use */
        {
                uint64_t deadline = now_usec() + (uint64_t) scaled_ms(3000) * 1000u;

                while (stats_get(BB_STAT_TOKENS) != 0) {
                        ck_assert_msg(now_usec() < deadline, "expired tokens still counted");
                        msleep(10);
                }
        }
        free(token);
        free(token2);
}
END_TEST

/* ---- the library's local failures leave nothing behind ------------------ */

/* In a child: fill the fd table but one slot, so that the reply's fd arrives
 * and the library's dup of it fails (EMFILE); the persistent buffer the
 * daemon made must not outlive that. Exit 0 if create says -EMFILE. */
static int create_at_fd_limit(void *userdata) {
        struct rlimit rl = { .rlim_cur = 64, .rlim_max = 64 };
        bb_client *c = NULL;
        bb_buffer *buf = NULL;
        int fd, last = -1, r;

        r = bb_client_new_address(&c, H->address);
        child_check(r == 0, "connect: %s", strerror(-r));
        /* A small table fills fast; valgrind does not let us change the
         * limit (EPERM), and then the whole table is filled. */
        child_check(setrlimit(RLIMIT_NOFILE, &rl) == 0 || errno == EPERM, "setrlimit: %m");
        while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
                last = fd;
        child_check(errno == EMFILE && last >= 0, "filling the fd table: %m");
        close(last);
        r = bb_buffer_create(c, "emfile", 4096, BB_CREATE_PERSISTENT, 0, &buf);
        child_check(r == -EMFILE, "create with one free fd slot: %d (%s)", r, strerror(-r));
        bb_client_unref(c);
        return 0;
}

START_TEST(test_create_fails_locally_leaves_nothing) {
        Snapshot base;

        baseline_after_warmup(&base);
        ck_assert_int_eq(run_as(NOBODY_UID, create_at_fd_limit, NULL, 10000), 0);
        ck_assert_int_eq(run_as(AS_ROOT, create_at_fd_limit, NULL, 10000), 0);
        assert_back_to(&base, "after creates that failed in the library");
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_create_fails_locally_leaves_nothing);
        tcase_add_test(tc, test_roundtrip_read_only_other_uid);
        tcase_add_test(tc, test_sigkill_client_with_100_buffers);
        tcase_add_test(tc, test_sigkill_nobody_client_with_100_buffers);
        tcase_add_test(tc, test_seals_forbid_resize);
        tcase_add_test(tc, test_holders_do_not_share_offsets);
        tcase_add_test(tc, test_freeze);
        tcase_add_test(tc, test_busctl_persistent_survives_creator);
        tcase_add_test(tc, test_busctl_transient_dies_with_creator);
        tcase_add_test(tc, test_busctl_ttl_expiry);
        tcase_add_test(tc, test_token_ttl_expiry);
}

int main(void) {
        Suite *s = suite_create("lifecycle");

        harness_add_tcases(s, NULL, add_tests);
        return harness_main(s);
}
