/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The posix, sysv and file kinds from the client side, against the real
 * daemon on both buses: libbufbroker's bb_buffer_create_kind() (blocking and
 * asynchronous), its handles (bb_buffer_shm_name(), bb_buffer_shmid(),
 * bb_buffer_get_allocated_bytes()), mapping and writing each kind (a sysv
 * segment through shmat(), read-only when the handle is), and bufbrokerctl's
 * create --kind, write, cat, info, list and exec for each; every buffer is
 * also reached by its native handle (shm_open(), shmat()) from outside the
 * library, and is gone once released. The daemon's own side of each kind
 * (ACLs, IPC_SET, quotas, restarts) is tested in test-kind-*.c.
 *
 * The file kind needs a directory: its cases run on a daemon started with
 * --file-dir (TCases "file dbus-daemon", "file dbus-broker"); the others on
 * the default daemon, which has none and refuses file buffers.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bufbroker.h>

#include "harness.h"

/* The file buffers' directory of the "file" TCases (made by main()). */
static char file_dir[64];
static char file_dir_arg[96];
static const char *file_daemon_args[] = { file_dir_arg, NULL };

/* ---- helpers ------------------------------------------------------------- */

static bb_client *lib_client(void) {
        bb_client *c = NULL;
        int r = bb_client_new_address(&c, H->address);

        ck_assert_msg(r == 0, "bb_client_new_address: %s", strerror(-r));
        return c;
}

static char *ids(uint64_t id) {
        static char buf[4][32];
        static int k;

        k = (k + 1) % 4;
        snprintf(buf[k], sizeof(buf[k]), "%" PRIu64, id);
        return buf[k];
}

static void assert_err_mentions(const RunResult *r, const char *needle, const char *context) {
        ck_assert_msg(r->err && strstr(r->err, needle), "%s: stderr does not mention '%s': %s", context, needle,
                      r->err ? r->err : "");
}

/* "/bufbroker-" and 32 lower-case hex digits, as the design names them. */
static bool is_shm_name(const char *s) {
        static const char prefix[] = "/bufbroker-";

        if (!s || strncmp(s, prefix, strlen(prefix)) != 0)
                return false;
        s += strlen(prefix);
        for (size_t i = 0; i < 32; i++)
                if (!isxdigit((unsigned char) s[i]) || isupper((unsigned char) s[i]))
                        return false;
        return s[32] == 0;
}

/* bufbrokerctl's SIZE column rule (ctl-util.c format_size()), for the
 * sizes these tests meet. */
static void size_word(char buf[32], uint64_t v) {
        if (v >= (UINT64_C(1) << 20) && v % (UINT64_C(1) << 20) == 0)
                snprintf(buf, 32, "%" PRIu64 "M", v >> 20);
        else if (v >= 1024 && v % 1024 == 0)
                snprintf(buf, 32, "%" PRIu64 "K", v >> 10);
        else
                snprintf(buf, 32, "%" PRIu64, v);
}

/* Poll until the buffer is gone from the daemon's list. */
static bool wait_gone(uint64_t id, int timeout_ms) {
        for (int waited = 0; waited < scaled_ms(timeout_ms); waited += 20) {
                if (!list_has(NULL, id))
                        return true;
                msleep(20);
        }
        return !list_has(NULL, id);
}

static bool wait_shm_name_gone(const char *name, int timeout_ms) {
        char path[128];

        snprintf(path, sizeof(path), "/dev/shm%s", name);
        for (int waited = 0; waited < scaled_ms(timeout_ms); waited += 20) {
                if (access(path, F_OK) < 0 && errno == ENOENT)
                        return true;
                msleep(20);
        }
        return false;
}

static bool wait_segment_gone(int shmid, int timeout_ms) {
        struct shmid_ds ds;

        for (int waited = 0; waited < scaled_ms(timeout_ms); waited += 20) {
                if (shmctl(shmid, IPC_STAT, &ds) < 0 && (errno == EINVAL || errno == EIDRM))
                        return true;
                msleep(20);
        }
        return false;
}

/* A child writes a byte at p: 0 when it could, the signal's number when the
 * write faulted. */
static int write_in_child(volatile char *p) {
        int status;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* The kernel's verdict, not a sanitizer's handler's. */
                signal(SIGSEGV, SIG_DFL);
                p[0] = 'x';
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status);
}

/* ---- the library: arguments and refusals -------------------------------- */

static void on_created(bb_client *c, int error, const char *error_name, const char *error_message, bb_buffer *buf,
                       void *userdata) {
        struct {
                bool done;
                int error;
                bb_buffer *buf;
                char *error_name;
        } *out = userdata;

        out->done = true;
        out->error = error;
        out->buf = bb_buffer_ref(buf);
        out->error_name = error_name ? strdup(error_name) : NULL;
}

START_TEST(test_lib_refusals) {
        bb_client *c = lib_client();
        bb_buffer *b = NULL;
        Snapshot base;

        stats_read(&base);
        /* caught before any bus traffic */
        ck_assert_int_eq(bb_buffer_create_kind(c, NULL, "x", 4096, 0, 0, &b), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_kind(c, "", "x", 4096, 0, 0, &b), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_POSIX, "x", 4096, 0, 0, NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_POSIX, "x", 4096, BB_CREATE_READ_ONLY, 0, &b), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_POSIX, "x", 4096, 1U << 9, 0, &b), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_kind_async(c, BB_KIND_SYSV, "x", 4096, 0, 0, NULL, NULL, NULL), -EINVAL);
        ck_assert_int_eq(bb_buffer_create_kind_async(c, NULL, "x", 4096, 0, 0, on_created, NULL, NULL), -EINVAL);
        ck_assert_ptr_null(b);

        /* the broker's refusals, as errnos with the error's name */
        ck_assert_int_eq(bb_buffer_create_kind(c, "bogus", "x", 4096, 0, 0, &b), -EINVAL);
        ck_assert_str_eq(bb_client_error_name(c), BB_ERROR_INVALID_ARGS);
        ck_assert_msg(strstr(bb_client_error_message(c), "bogus"), "message: %s", bb_client_error_message(c));
        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_V4L2, "x", 4096, 0, 0, &b), -EINVAL);
        /* huge pages are a memfd's only */
        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_POSIX, "x", 4096, BB_CREATE_HUGETLB, 0, &b), -EOPNOTSUPP);
        ck_assert_str_eq(bb_client_error_name(c), BB_ERROR_NOT_SUPPORTED);
        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_SYSV, "x", 4096, BB_CREATE_HUGETLB, 0, &b),
                         -EOPNOTSUPP);
        ck_assert_ptr_null(b);
        bb_client_unref(c);
        assert_back_to(&base, "after refused creates by kind");
}
END_TEST

/* This daemon has no --file-dir: the file kind is NotSupported, saying why. */
START_TEST(test_lib_file_without_dir) {
        bb_client *c = lib_client();
        bb_buffer *b = NULL;
        Snapshot base;

        stats_read(&base);
        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_FILE, "x", 4096, BB_CREATE_PERSISTENT, 0, &b),
                         -EOPNOTSUPP);
        ck_assert_str_eq(bb_client_error_name(c), BB_ERROR_NOT_SUPPORTED);
        ck_assert_msg(bb_client_error_message(c) && strstr(bb_client_error_message(c), "file"), "message: %s",
                      bb_client_error_message(c) ?: "(none)");
        ck_assert_ptr_null(b);
        bb_client_unref(c);
        assert_back_to(&base, "after a refused file buffer");
}
END_TEST

/* ---- the library: each kind ------------------------------------------------ */

START_TEST(test_lib_memfd) {
        struct {
                bool done;
                int error;
                bb_buffer *buf;
                char *error_name;
        } async = { 0 };
        bb_client *c = lib_client();
        bb_buffer *b = NULL, *b2 = NULL, *d = NULL;
        uint64_t allocated = 0;
        void *p, *p2;
        size_t size;
        Snapshot base;

        stats_read(&base);
        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_MEMFD, "lib-memfd", 5000, BB_CREATE_PREFAULT, 0, &b), 0);
        ck_assert_str_eq(bb_buffer_kind(b), BB_KIND_MEMFD);
        ck_assert_str_eq(bb_buffer_name(b), "lib-memfd");
        ck_assert_uint_eq(bb_buffer_size(b), 8192);
        ck_assert_uint_eq(bb_buffer_owner_uid(b), 0);
        ck_assert_int_eq(bb_buffer_is_prefaulted(b), 1);
        ck_assert_int_eq(bb_buffer_is_persistent(b), 0);
        ck_assert_ptr_null(bb_buffer_shm_name(b));
        ck_assert_int_eq(bb_buffer_shmid(b), -ENODATA);
        ck_assert_int_ge(bb_buffer_fd(b), 3);
        ck_assert_int_eq(bb_buffer_map(b, &p, &size), 0);
        ck_assert_uint_eq(size, 8192);
        memcpy(p, "memfd by kind", 14);

        /* the same memory through a second handle */
        ck_assert_int_eq(bb_buffer_open_fds(c, bb_buffer_id(b), BB_OPEN_READ_ONLY, &b2), 0);
        ck_assert_int_eq(bb_buffer_map(b2, &p2, &size), 0);
        ck_assert_str_eq(p2, "memfd by kind");
        /* the property: prefaulted, every page is there */
        ck_assert_int_eq(bb_buffer_get(c, bb_buffer_id(b), &d), 0);
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(d, &allocated), 0);
        ck_assert_uint_eq(allocated, 8192);

        /* asynchronously */
        ck_assert_int_eq(bb_buffer_create_kind_async(c, BB_KIND_MEMFD, "lib-async", 4096, 0, 0, on_created, &async,
                                                     NULL), 0);
        for (int i = 0; !async.done && i < 100; i++)
                ck_assert_int_ge(bb_client_process(c, 100000), 0);
        ck_assert_msg(async.done && async.error == 0, "async create: %d (%s)", async.error,
                      async.error_name ?: "");
        ck_assert_str_eq(bb_buffer_kind(async.buf), BB_KIND_MEMFD);
        ck_assert_int_ge(bb_buffer_fd(async.buf), 3);
        ck_assert(list_has(NULL, bb_buffer_id(async.buf)));

        bb_buffer_unref(async.buf);
        bb_buffer_unref(d);
        bb_buffer_unref(b2);
        bb_buffer_unref(b);
        bb_client_unref(c);
        assert_back_to(&base, "after memfd buffers by kind");
}
END_TEST

START_TEST(test_lib_posix) {
        bb_client *c = lib_client();
        bb_buffer *b = NULL, *d = NULL, **list = NULL;
        _cleanup_free_ char *name = NULL;
        uint64_t id, allocated = 0;
        _cleanup_close_ int fd = -1;
        size_t size, n = 0;
        bool listed = false;
        char *p, *q;

        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_POSIX, "lib-posix", 10000, BB_CREATE_PERSISTENT, 0, &b), 0);
        id = bb_buffer_id(b);
        ck_assert_str_eq(bb_buffer_kind(b), BB_KIND_POSIX);
        ck_assert_uint_eq(bb_buffer_size(b), 12288);
        ck_assert_int_eq(bb_buffer_is_persistent(b), 1);
        ck_assert_msg(is_shm_name(bb_buffer_shm_name(b)), "shm name '%s'", bb_buffer_shm_name(b) ?: "(null)");
        name = strdup(bb_buffer_shm_name(b));
        ck_assert_int_eq(bb_buffer_shmid(b), -ENODATA);
        ck_assert_int_ge(bb_buffer_fd(b), 3);
        ck_assert_int_eq(bb_buffer_is_writable(b), 1);
        ck_assert_int_eq(bb_buffer_map(b, (void **) &p, &size), 0);
        ck_assert_uint_eq(size, 12288);
        memcpy(p, "through the library", 20);

        /* the name opens the same memory, both ways */
        fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
        ck_assert_msg(fd >= 0, "shm_open(%s): %m", name);
        q = mmap(NULL, 12288, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(q, MAP_FAILED);
        ck_assert_str_eq(q, "through the library");
        memcpy(q + 8000, "by name", 8);
        ck_assert_str_eq(p + 8000, "by name");
        ck_assert_int_eq(munmap(q, 12288), 0);

        /* the properties say the same */
        ck_assert_int_eq(bb_buffer_get(c, id, &d), 0);
        ck_assert_str_eq(bb_buffer_shm_name(d), name);
        ck_assert_int_eq(bb_buffer_shmid(d), -ENODATA);
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(d, &allocated), 0);
        ck_assert_msg(allocated >= 8192 && allocated <= 12288, "AllocatedBytes %" PRIu64 " after writing 2 pages",
                      allocated);
        ck_assert_int_eq(bb_client_list_buffers(c, &list, &n), 0);
        for (size_t i = 0; i < n; i++)
                if (bb_buffer_id(list[i]) == id) {
                        ck_assert_str_eq(bb_buffer_shm_name(list[i]), name);
                        listed = true;
                }
        ck_assert(listed);
        bb_buffer_list_free(list, n);

        /* released, unmapped, closed: gone, name and all */
        ck_assert_int_eq(bb_buffer_release(b), 0);
        bb_buffer_unref(b);
        bb_buffer_unref(d);
        fd = safe_close(fd);
        ck_assert_msg(wait_gone(id, 5000), "posix buffer %" PRIu64 " still listed", id);
        ck_assert_msg(wait_shm_name_gone(name, 5000), "/dev/shm%s still there", name);
        bb_client_unref(c);
}
END_TEST

START_TEST(test_lib_sysv) {
        bb_client *c = lib_client();
        bb_buffer *b = NULL, *ro = NULL, *d = NULL;
        struct shmid_ds ds;
        uint64_t id;
        char *p, *p2, *mine;
        size_t size;
        int shmid;

        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_SYSV, "lib-sysv", 10000, 0, 0, &b), 0);
        id = bb_buffer_id(b);
        ck_assert_str_eq(bb_buffer_kind(b), BB_KIND_SYSV);
        ck_assert_uint_eq(bb_buffer_size(b), 12288);
        shmid = bb_buffer_shmid(b);
        ck_assert_int_ge(shmid, 0);
        ck_assert_ptr_null(bb_buffer_shm_name(b));
        /* a segment has no fd */
        ck_assert_int_eq(bb_buffer_fd(b), -EOPNOTSUPP);
        ck_assert_uint_eq(bb_buffer_n_planes(b), 1);
        ck_assert_int_eq(bb_buffer_is_writable(b), 1);

        /* given to its owner, 0600 */
        ck_assert_int_eq(shmctl(shmid, IPC_STAT, &ds), 0);
        ck_assert_uint_eq(ds.shm_perm.uid, 0);
        ck_assert_uint_eq(ds.shm_perm.mode & 0777, 0600);
        ck_assert_uint_ge(ds.shm_segsz, 12288);

        /* mapped is attached */
        ck_assert_int_eq(bb_buffer_map(b, (void **) &p, &size), 0);
        ck_assert_uint_eq(size, 12288);
        memcpy(p, "attached by the library", 24);
        mine = shmat(shmid, NULL, SHM_RDONLY);
        ck_assert_ptr_ne(mine, (void *) -1);
        ck_assert_str_eq(mine, "attached by the library");
        ck_assert_int_eq(shmctl(shmid, IPC_STAT, &ds), 0);
        ck_assert_uint_eq(ds.shm_nattch, 2);

        /* no read-only opens of a segment (its owner may attach it read-write
         * anyway): refused, and the handle-less call changed nothing */
        ck_assert_int_eq(bb_buffer_open_fds(c, id, BB_OPEN_READ_ONLY, &ro), -EOPNOTSUPP);
        ck_assert_str_eq(bb_client_error_name(c), BB_ERROR_NOT_SUPPORTED);
        ck_assert_ptr_null(ro);
        /* a second handle attaches the same segment (the read-only attach is
         * tests/api's, on a read-only info) */
        ck_assert_int_eq(bb_buffer_open_fds(c, id, 0, &ro), 0);
        ck_assert_int_eq(bb_buffer_shmid(ro), shmid);
        ck_assert_int_eq(bb_buffer_fd(ro), -EOPNOTSUPP);
        ck_assert_int_eq(bb_buffer_map(ro, (void **) &p2, &size), 0);
        ck_assert_ptr_ne(p2, p);
        ck_assert_str_eq(p2, "attached by the library");
        ck_assert_int_eq(shmctl(shmid, IPC_STAT, &ds), 0);
        ck_assert_uint_eq(ds.shm_nattch, 3);
        ck_assert_int_eq(write_in_child(p2), 0);
        ck_assert_int_eq(mine[0], 'x');
        /* the caller's own read-only attach faults on a write */
        ck_assert_int_eq(write_in_child(mine), SIGSEGV);

        /* unmapped is detached */
        ck_assert_int_eq(bb_buffer_unmap(ro), 0);
        ck_assert_int_eq(shmctl(shmid, IPC_STAT, &ds), 0);
        ck_assert_uint_eq(ds.shm_nattch, 2);

        /* a handle that only describes it knows the shmid, and attaches nothing */
        ck_assert_int_eq(bb_buffer_get(c, id, &d), 0);
        ck_assert_int_eq(bb_buffer_shmid(d), shmid);
        ck_assert_int_eq(bb_buffer_map(d, (void **) &p2, &size), -ENODATA);

        /* released and detached everywhere: removed */
        ck_assert_int_eq(bb_buffer_release(b), 0);
        bb_buffer_unref(ro);
        bb_buffer_unref(d);
        bb_buffer_unref(b);
        ck_assert_int_eq(shmdt(mine), 0);
        ck_assert_msg(wait_gone(id, 5000), "sysv buffer %" PRIu64 " still listed", id);
        ck_assert_msg(wait_segment_gone(shmid, 5000), "segment %d still there", shmid);
        bb_client_unref(c);
}
END_TEST

/* As an unprivileged owner: the segment is its own, and shmat() by id
 * works outside the library too. */
static int nobody_sysv(void *userdata) {
        const char *address = userdata;
        bb_client *c = NULL;
        bb_buffer *b = NULL;
        struct shmid_ds ds;
        char *p, *q;
        size_t size;
        int r, shmid;

        r = bb_client_new_address(&c, address);
        child_check(r == 0, "connect: %s", strerror(-r));
        r = bb_buffer_create_kind(c, BB_KIND_SYSV, "nobody-sysv", 4096, 0, 0, &b);
        child_check(r == 0, "create sysv: %s (%s)", strerror(-r), bb_client_error_message(c) ?: "");
        shmid = bb_buffer_shmid(b);
        child_check(shmid >= 0, "shmid %d", shmid);
        child_check(shmctl(shmid, IPC_STAT, &ds) == 0, "IPC_STAT: %m");
        child_check(ds.shm_perm.uid == NOBODY_UID && (ds.shm_perm.mode & 0777) == 0600,
                    "segment uid %u mode %o", (unsigned) ds.shm_perm.uid, ds.shm_perm.mode & 0777);
        r = bb_buffer_map(b, (void **) &p, &size);
        child_check(r == 0 && size == 4096, "map: %s, %zu bytes", strerror(-r), size);
        memcpy(p, "nobody's segment", 17);
        q = shmat(shmid, NULL, SHM_RDONLY);
        child_check(q != (void *) -1, "shmat: %m");
        child_check(strcmp(q, "nobody's segment") == 0, "shmat sees '%.16s'", q);
        child_check(shmdt(q) == 0, "shmdt: %m");
        bb_buffer_unref(b);
        bb_client_unref(c);
        return 0;
}

START_TEST(test_lib_sysv_as_owner) {
        ck_assert_int_eq(run_as(NOBODY_UID, nobody_sysv, H->address, scaled_ms(10000)), 0);
}
END_TEST

START_TEST(test_lib_file) {
        bb_client *c = lib_client();
        bb_buffer *b = NULL, *pf = NULL, *d = NULL;
        uint64_t id, allocated = UINT64_MAX;
        struct stat st;
        char *p;
        size_t size;

        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_FILE, "lib-file", 1 << 20, 0, 0, &b), 0);
        id = bb_buffer_id(b);
        ck_assert_str_eq(bb_buffer_kind(b), BB_KIND_FILE);
        ck_assert_uint_eq(bb_buffer_size(b), 1 << 20);
        ck_assert_ptr_null(bb_buffer_shm_name(b));
        ck_assert_int_eq(bb_buffer_shmid(b), -ENODATA);
        ck_assert_int_ge(bb_buffer_fd(b), 3);
        ck_assert_int_eq(fstat(bb_buffer_fd(b), &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_eq(bb_buffer_map(b, (void **) &p, &size), 0);
        ck_assert_uint_eq(size, 1 << 20);
        memcpy(p + 4096, "on disk", 8);
        ck_assert_int_eq(msync(p, size, MS_SYNC), 0);

        /* sparse: what was written, not the size */
        ck_assert_int_eq(bb_buffer_get(c, id, &d), 0);
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(d, &allocated), 0);
        ck_assert_msg(allocated >= 4096 && allocated < (1 << 20), "AllocatedBytes %" PRIu64 " of a sparse file",
                      allocated);
        /* prefaulted: all of it */
        ck_assert_int_eq(bb_buffer_create_kind(c, BB_KIND_FILE, "lib-file-pf", 1 << 20, BB_CREATE_PREFAULT, 0, &pf),
                         0);
        ck_assert_int_eq(bb_buffer_is_prefaulted(pf), 1);
        ck_assert_int_eq(bb_buffer_refresh(pf), 0);
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(pf, &allocated), 0);
        ck_assert_uint_ge(allocated, 1 << 20);

        bb_buffer_unref(d);
        bb_buffer_unref(pf);
        bb_buffer_unref(b);
        bb_client_unref(c);
        ck_assert_msg(wait_gone(id, 5000), "file buffer %" PRIu64 " still listed", id);
}
END_TEST

/* A persistent create by kind, cancelled before its reply: the library
 * releases what the broker made when the reply comes, also when the client
 * closes meanwhile (bufbroker.h, asynchronous calls). One loop iteration
 * per kind. */
static const char *const cancel_kinds[] = { BB_KIND_MEMFD, BB_KIND_POSIX, BB_KIND_SYSV };

START_TEST(test_lib_async_cancelled) {
        const char *kind = cancel_kinds[_i];
        bb_client *c = lib_client();
        bb_call *call = NULL, *kept = NULL;
        struct {
                bool done;
                int error;
                bb_buffer *buf;
                char *error_name;
        } out = { 0 };
        Snapshot base;

        stats_read(&base);
        /* cancelled at once, then the client processes the reply */
        ck_assert_int_eq(bb_buffer_create_kind_async(c, kind, "cancelled", 4096, BB_CREATE_PERSISTENT, 0, on_created,
                                                     &out, &call), 0);
        ck_assert_int_eq(bb_call_is_pending(call), 1);
        call = bb_call_unref(call);
        /* a second call behind it: once its reply is here, so is the first's */
        ck_assert_int_eq(bb_buffer_create_kind_async(c, kind, "kept", 4096, 0, 0, on_created, &out, &kept), 0);
        for (int i = 0; !out.done && i < 100; i++)
                ck_assert_int_ge(bb_client_process(c, 100000), 0);
        ck_assert_msg(out.done && out.error == 0, "%s: the second create: %d (%s)", kind, out.error,
                      out.error_name ?: "");
        ck_assert_str_eq(bb_buffer_name(out.buf), "kept");
        out.buf = bb_buffer_unref(out.buf);
        kept = bb_call_unref(kept);

        /* cancelled, and the client closes before the reply came */
        ck_assert_int_eq(bb_buffer_create_kind_async(c, kind, "closed", 4096, BB_CREATE_PERSISTENT, 0, on_created,
                                                     &out, &call), 0);
        call = bb_call_unref(call);
        bb_client_unref(c);
        assert_back_to(&base, kind);
}
END_TEST

/* ---- bufbrokerctl: each kind ---------------------------------------------- */

static uint64_t ctl_create_kind(uid_t uid, const char *kind, const char *size, const char *name) {
        _cleanup_run_result_ RunResult r = { 0 };
        uint64_t id;
        char *end;

        ctl(&r, uid, NULL, "create", "--kind", kind, "--size", size, "--name", name, "--persistent");
        ck_assert_run_status(&r, 0);
        errno = 0;
        id = strtoull(r.out, &end, 10);
        ck_assert_msg(errno == 0 && id > 0 && *end == '\n' && end[1] == 0, "create --kind %s printed '%s'", kind,
                      r.out);
        return id;
}

static char *table_row(const char *out, uint64_t id) {
        char prefix[32];
        size_t len = (size_t) snprintf(prefix, sizeof(prefix), "%" PRIu64 " ", id);

        for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (strncmp(p, prefix, len) == 0)
                        return strndup(p, strchrnul(p, '\n') - p);
        return NULL;
}

/* The row's n-th whitespace-separated field (from 0), copied. */
static char *row_field(const char *row, unsigned n) {
        const char *p = row;

        for (unsigned i = 0;; i++) {
                size_t len;

                p += strspn(p, " ");
                len = strcspn(p, " ");
                if (len == 0)
                        return NULL;
                if (i == n)
                        return strndup(p, len);
                p += len;
        }
}

/* create --kind, write, cat, info, list (text and JSON), the native handle
 * from outside, exec, release: all as uid 65534, the owner. */
static void cli_kind(const char *kind) {
        _cleanup_run_result_ RunResult w = { 0 }, c = { 0 }, inf = { 0 }, ls = { 0 }, js = { 0 }, ex = { 0 },
                                       rel = { 0 };
        _cleanup_free_ char *row = NULL, *handle = NULL, *name = NULL, *want = NULL, *data = NULL,
                            *json_key = NULL;
        bb_client *lc = lib_client();
        bb_buffer *d = NULL;
        uint64_t id, allocated = 0;
        char word[32];
        int shmid = -1;

        ck_assert(asprintf(&name, "cli-%s", kind) > 0);
        ck_assert(asprintf(&data, "hello %s", kind) > 0);
        id = ctl_create_kind(NOBODY_UID, kind, "6000", name);

        ctl(&w, NOBODY_UID, data, "write", ids(id));
        ck_assert_run_status(&w, 0);
        ctl(&c, NOBODY_UID, NULL, "cat", ids(id));
        ck_assert_run_status(&c, 0);
        ck_assert_uint_eq(c.out_len, 8192);
        ck_assert(memcmp(c.out, data, strlen(data)) == 0);
        for (size_t i = strlen(data); i < c.out_len; i++)
                ck_assert_msg(c.out[i] == 0, "byte %zu is %d", i, c.out[i]);

        /* what the daemon says, through the library (root sees all) */
        ck_assert_int_eq(bb_buffer_get(lc, id, &d), 0);
        ck_assert_str_eq(bb_buffer_kind(d), kind);
        ck_assert_int_eq(bb_buffer_get_allocated_bytes(d, &allocated), 0);
        if (strcmp(kind, BB_KIND_POSIX) == 0) {
                ck_assert(is_shm_name(bb_buffer_shm_name(d)));
                handle = strdup(bb_buffer_shm_name(d));
                ck_assert(asprintf(&want, "ShmName:    %s\n", handle) > 0);
                ck_assert(asprintf(&json_key, "\"shm_name\":\"%s\"", handle) > 0);
        } else if (strcmp(kind, BB_KIND_SYSV) == 0) {
                shmid = bb_buffer_shmid(d);
                ck_assert_int_ge(shmid, 0);
                ck_assert(asprintf(&handle, "%d", shmid) > 0);
                ck_assert(asprintf(&want, "ShmId:      %d\n", shmid) > 0);
                ck_assert(asprintf(&json_key, "\"shmid\":%d", shmid) > 0);
        } else {
                size_word(word, allocated);
                handle = strdup(word);
                want = strdup("Kind:       file\n");
                ck_assert(asprintf(&json_key, "\"allocated_bytes\":%" PRIu64, allocated) > 0);
        }
        bb_buffer_unref(d);

        /* info: the kind, its handle, the allocated bytes */
        ctl(&inf, NOBODY_UID, NULL, "info", ids(id));
        ck_assert_run_status(&inf, 0);
        ck_assert_msg(strstr(inf.out, want), "info lacks '%s':\n%s", want, inf.out);
        free(want);
        ck_assert(asprintf(&want, "Kind:       %s\n", kind) > 0);
        ck_assert_msg(strstr(inf.out, want), "info:\n%s", inf.out);
        free(want);
        ck_assert(asprintf(&want, "Allocated:  %" PRIu64 " (", allocated) > 0);
        ck_assert_msg(strstr(inf.out, want), "info lacks '%s':\n%s", want, inf.out);

        /* list: HANDLE before NAME */
        ctl(&ls, NOBODY_UID, NULL, "list");
        ck_assert_run_status(&ls, 0);
        row = table_row(ls.out, id);
        ck_assert_msg(row, "no row for %" PRIu64 ":\n%s", id, ls.out);
        {
                _cleanup_free_ char *k = row_field(row, 1), *h = row_field(row, 10), *n = row_field(row, 11);

                ck_assert_msg(k && strcmp(k, kind) == 0, "KIND of %s", row);
                ck_assert_msg(h && strcmp(h, handle) == 0, "HANDLE of '%s' is not '%s'", row, handle);
                ck_assert_msg(n && strcmp(n, name) == 0, "NAME of %s", row);
        }
        ctl(&js, NOBODY_UID, NULL, "--json=short", "list");
        ck_assert_run_status(&js, 0);
        ck_assert_msg(strstr(js.out, json_key), "list --json lacks %s:\n%s", json_key, js.out);

        /* the native handle, from outside the library and the broker */
        if (strcmp(kind, BB_KIND_POSIX) == 0) {
                _cleanup_close_ int fd = shm_open(handle, O_RDONLY | O_CLOEXEC, 0);
                char buf[32] = "";

                ck_assert_msg(fd >= 0, "shm_open(%s): %m", handle);
                ck_assert_int_eq(pread(fd, buf, strlen(data), 0), (ssize_t) strlen(data));
                ck_assert(memcmp(buf, data, strlen(data)) == 0);
        } else if (strcmp(kind, BB_KIND_SYSV) == 0) {
                char *p = shmat(shmid, NULL, SHM_RDONLY);

                ck_assert_ptr_ne(p, (void *) -1);
                ck_assert(memcmp(p, data, strlen(data)) == 0);
                ck_assert_int_eq(shmdt(p), 0);
        }

        /* exec: the kind's handle in the environment, usable by the command */
        if (strcmp(kind, BB_KIND_POSIX) == 0) {
                ctl(&ex, NOBODY_UID, NULL, "exec", "--kind", kind, "--size", "4K", "--", "sh", "-c",
                    "printf posix-exec >&\"$BUFBROKER_FD\" && echo \"$BUFBROKER_KIND $BUFBROKER_SHM_NAME "
                    "${BUFBROKER_SHMID-none}\" && head -c 10 \"/dev/shm/${BUFBROKER_SHM_NAME#/}\"");
                ck_assert_run_status(&ex, 0);
                ck_assert_msg(strncmp(ex.out, "posix /bufbroker-", 17) == 0 && strstr(ex.out, " none\nposix-exec") &&
                                      strlen(ex.out) == strlen("posix ") + 43 + strlen(" none\nposix-exec"),
                              "exec printed '%s'", ex.out);
        } else if (strcmp(kind, BB_KIND_SYSV) == 0) {
                /* /proc/sysvipc/shm: key shmid perms size cpid lpid nattch uid ... */
                ctl(&ex, NOBODY_UID, NULL, "exec", "--kind", kind, "--size", "4K", "--", "sh", "-c",
                    "echo \"$BUFBROKER_KIND ${BUFBROKER_FD-unset} ${BUFBROKER_SHM_NAME-none}\" && "
                    "awk -v id=\"$BUFBROKER_SHMID\" '$2 == id { print \"segment\", $8, $3, $4 }' /proc/sysvipc/shm");
                ck_assert_run_status(&ex, 0);
                ck_assert_str_eq(ex.out, "sysv unset none\nsegment 65534 600 4096\n");
        } else {
                /* The inherited fd itself: another uid cannot reopen the daemon's 0600
                 * file through /proc/self/fd, as it could a memfd. */
                ctl(&ex, NOBODY_UID, NULL, "exec", "--kind", kind, "--size", "4K", "--", "sh", "-c",
                    "echo \"$BUFBROKER_KIND ${BUFBROKER_SHM_NAME-none} ${BUFBROKER_SHMID-none}\" && "
                    "exec python3 -c 'import os; fd = int(os.environ[\"BUFBROKER_FD\"]); "
                    "os.pwrite(fd, b\"file-exec\", 0); print(os.pread(fd, 9, 0).decode(), end=\"\")'");
                ck_assert_run_status(&ex, 0);
                ck_assert_str_eq(ex.out, "file none none\nfile-exec");
        }

        ctl(&rel, NOBODY_UID, NULL, "release", ids(id));
        ck_assert_run_status(&rel, 0);
        ck_assert_msg(wait_gone(id, 5000), "%s buffer %" PRIu64 " still listed", kind, id);
        if (strcmp(kind, BB_KIND_POSIX) == 0)
                ck_assert_msg(wait_shm_name_gone(handle, 5000), "/dev/shm%s still there", handle);
        else if (strcmp(kind, BB_KIND_SYSV) == 0)
                ck_assert_msg(wait_segment_gone(shmid, 5000), "segment %d still there", shmid);
        bb_client_unref(lc);
}

START_TEST(test_cli_posix) {
        cli_kind(BB_KIND_POSIX);
}
END_TEST

START_TEST(test_cli_sysv) {
        cli_kind(BB_KIND_SYSV);
}
END_TEST

START_TEST(test_cli_file) {
        cli_kind(BB_KIND_FILE);
}
END_TEST

/* Sharing a sysv buffer: within its owner's uid a token opens it, cat and
 * write attach it; a read-only share is refused, saying why. */
START_TEST(test_cli_sysv_share) {
        _cleanup_run_result_ RunResult sh = { 0 }, ro = { 0 }, w = { 0 }, c = { 0 }, w2 = { 0 }, c2 = { 0 },
                                       rel = { 0 };
        _cleanup_free_ char *token = NULL;
        uint64_t id = ctl_create_kind(NOBODY_UID, BB_KIND_SYSV, "4K", "sysv-share");

        ctl(&w, NOBODY_UID, "by id", "write", ids(id));
        ck_assert_run_status(&w, 0);
        ctl(&ro, NOBODY_UID, NULL, "share", ids(id), "--read-only");
        ck_assert_run_status(&ro, 1);
        assert_err_mentions(&ro, "Not supported", "read-only share of a sysv buffer");
        ck_assert_uint_eq(ro.out_len, 0);

        ctl(&sh, NOBODY_UID, NULL, "share", ids(id));
        ck_assert_run_status(&sh, 0);
        token = strndup(sh.out, BB_TOKEN_LEN);
        ctl(&c, NOBODY_UID, NULL, "cat", token);
        ck_assert_run_status(&c, 0);
        ck_assert_uint_eq(c.out_len, 4096);
        ck_assert(memcmp(c.out, "by id", 5) == 0);
        ctl(&w2, NOBODY_UID, "by token", "write", token);
        ck_assert_run_status(&w2, 0);
        ctl(&c2, NOBODY_UID, NULL, "cat", ids(id));
        ck_assert_run_status(&c2, 0);
        ck_assert(memcmp(c2.out, "by token", 8) == 0);
        ctl(&rel, NOBODY_UID, NULL, "release", ids(id));
        ck_assert_run_status(&rel, 0);
        ck_assert(wait_gone(id, 5000));
}
END_TEST

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_lib_refusals);
        tcase_add_test(tc, test_lib_file_without_dir);
        tcase_add_test(tc, test_lib_memfd);
        tcase_add_test(tc, test_lib_posix);
        tcase_add_test(tc, test_lib_sysv);
        tcase_add_test(tc, test_lib_sysv_as_owner);
        tcase_add_loop_test(tc, test_lib_async_cancelled, 0, ELEMENTSOF(cancel_kinds));
        tcase_add_test(tc, test_cli_posix);
        tcase_add_test(tc, test_cli_sysv);
        tcase_add_test(tc, test_cli_sysv_share);
}

static void add_file_tests(TCase *tc) {
        tcase_add_test(tc, test_lib_file);
        tcase_add_test(tc, test_cli_file);
}

static void setup_file_dbus_daemon(void) {
        harness_start(BUS_DBUS_DAEMON, true, file_daemon_args);
}

static void setup_file_dbus_broker(void) {
        harness_start(BUS_DBUS_BROKER, true, file_daemon_args);
}

int main(void) {
        Suite *s = suite_create("Kinds from the client side");
        int r;

        /* Made here, once, so every forked test knows it; files in it are
         * unnamed (O_TMPFILE), so it stays empty and goes at the end. */
        strcpy(file_dir, "/tmp/bufbroker-kinds-client.XXXXXX");
        if (!mkdtemp(file_dir)) {
                perror("mkdtemp");
                return 1;
        }
        snprintf(file_dir_arg, sizeof(file_dir_arg), "--file-dir=%s", file_dir);

        harness_add_tcases(s, NULL, add_tests);
        harness_add_tcase(s, "file dbus-daemon", setup_file_dbus_daemon, add_file_tests);
        harness_add_tcase(s, "file dbus-broker", setup_file_dbus_broker, add_file_tests);
        r = harness_main(s);
        (void) rmdir(file_dir);
        return r;
}
