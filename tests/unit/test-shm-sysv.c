/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the sysv allocator (daemon/shm-sysv.h): segments made by a
 * creator that keeps its rights and given to an owner uid, what the kernel
 * then lets each uid do, and the checks the daemon relies on (attachments,
 * verify across a restart, resident bytes, the limits' errors). No D-Bus.
 *
 *   test-shm-sysv          the allocator as whoever runs it
 *   test-shm-sysv uids     as the daemon's uid with no capabilities (65534)
 *                          and as other uids: root only, else exit 77 (SKIP)
 */
#include <check.h>
#include <grp.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "macro.h"
#include "memfd.h"
#include "shm-sysv.h"

/* The daemon's situation: an unprivileged uid with no capabilities. */
#define UID_DAEMON ((uid_t) 65534)
#define UID_A ((uid_t) 1000001)
#define UID_B ((uid_t) 1000002)

#define TEST_TIMEOUT 120

static uint64_t page(void) {
        return (uint64_t) sysconf(_SC_PAGESIZE);
}

/* The segments a test made, kept where the runner sees them: a failed
 * check ends the test's process at once, and segments outlive processes, so
 * the runner removes them after the test case (an unchecked fixture). Each with
 * the pid that made it: an id from a test's own IPC namespace may name
 * another segment out here. */
typedef struct Made {
        unsigned n;
        struct {
                int shmid;
                pid_t pid;
        } segments[128];
} Made;
static Made *made;

static int new_ok_at(int line, const ShmSysvRequest *req) {
        const char *why = NULL;
        int shmid = -1, r;

        r = shm_sysv_new(req, &shmid, &why);
        ck_assert_msg(r == 0, "line %d: shm_sysv_new(%" PRIu64 ") = %d (%s)", line, req->size, r,
                      why ? why : "");
        ck_assert_int_ge(shmid, 0);
        ck_assert_uint_lt(made->n, ELEMENTSOF(made->segments));
        made->segments[made->n].shmid = shmid;
        made->segments[made->n].pid = getpid();
        made->n++;
        return shmid;
}
#define new_ok(...) new_ok_at(__LINE__, &(ShmSysvRequest) { __VA_ARGS__ })

static void remove_made(void) {
        for (unsigned i = 0; i < made->n; i++) {
                struct shmid_ds ds;

                if (shmctl(made->segments[i].shmid, IPC_STAT, &ds) == 0 && ds.shm_cpid == made->segments[i].pid)
                        (void) shmctl(made->segments[i].shmid, IPC_RMID, NULL);
        }
        made->n = 0;
}

static struct shmid_ds stat_ok(int shmid) {
        struct shmid_ds ds;

        ck_assert_msg(shmctl(shmid, IPC_STAT, &ds) == 0, "IPC_STAT %d: %s", shmid, strerror(errno));
        return ds;
}

static bool segment_gone(int shmid) {
        struct shmid_ds ds;

        if (shmctl(shmid, IPC_STAT, &ds) == 0)
                return false;
        ck_assert_msg(errno == EINVAL || errno == EIDRM, "IPC_STAT %d: %s", shmid, strerror(errno));
        return true;
}

/* Segments of this process (by creator pid) in /proc/sysvipc/shm: other
 * tests may make segments of their own at the same time. */
static unsigned count_my_segments(void) {
        FILE *f = fopen("/proc/sysvipc/shm", "re");
        char line[512];
        unsigned n = 0;

        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
        while (fgets(line, sizeof(line), f)) {
                int key, id;
                unsigned perms, cpid;
                unsigned long long size;

                ck_assert_int_eq(sscanf(line, "%d %d %o %llu %u", &key, &id, &perms, &size, &cpid), 5);
                if (cpid == (unsigned) getpid())
                        n++;
        }
        fclose(f);
        return n;
}

/* ====================================================== as whoever runs === */

START_TEST(test_new_owner_mode_size) {
        uid_t owner = UID_A;
        struct shmid_ds ds;
        int shmid;

        shmid = new_ok(.size = 3 * page(), .owner_uid = owner);
        ds = stat_ok(shmid);
        ck_assert_uint_eq(ds.shm_segsz, 3 * page());
        ck_assert_uint_eq(ds.shm_perm.uid, owner);
        ck_assert_uint_eq(ds.shm_perm.gid, getegid());
        ck_assert_uint_eq(ds.shm_perm.cuid, geteuid());
        ck_assert_uint_eq(ds.shm_perm.mode & 0777, 0600);
        ck_assert_uint_eq(ds.shm_nattch, 0);
        ck_assert_int_eq(shm_sysv_attachments(shmid), 0);
        /* Nothing allocated yet without a prefault. */
        ck_assert_uint_eq(shm_sysv_resident_bytes(shmid), 0);

        ck_assert_int_eq(shm_sysv_remove(shmid), 0);
        ck_assert(segment_gone(shmid));
        ck_assert_int_eq(shm_sysv_attachments(shmid), -EIDRM);
        /* Gone already is not an error: the daemon may race its owner. */
        ck_assert_int_eq(shm_sysv_remove(shmid), 0);
}
END_TEST

START_TEST(test_new_read_only_mode) {
        int shmid;

        shmid = new_ok(.size = page(), .owner_uid = UID_A, .read_only = true);
        ck_assert_uint_eq(stat_ok(shmid).shm_perm.mode & 0777, 0400);
        ck_assert_int_eq(shm_sysv_set_owner(shmid, UID_B, false), 0);
        ck_assert_uint_eq(stat_ok(shmid).shm_perm.mode & 0777, 0600);
        ck_assert_uint_eq(stat_ok(shmid).shm_perm.uid, UID_B);
}
END_TEST

START_TEST(test_new_bad_sizes) {
        const uint64_t too_large[] = { UINT64_MAX, UINT64_MAX - 4095, UINT64_C(1) << 63 };
        unsigned before = count_my_segments();
        const char *why = NULL;
        int shmid = -42;

        ck_assert_int_eq(shm_sysv_new(&(ShmSysvRequest) { .size = 0, .owner_uid = UID_A }, &shmid, &why), -EINVAL);
        ck_assert_int_eq(shmid, -42);

        for (unsigned i = 0; i < ELEMENTSOF(too_large); i++) {
                why = NULL;
                ck_assert_int_eq(shm_sysv_new(&(ShmSysvRequest) { .size = too_large[i], .owner_uid = UID_A,
                                                                  .prefault = true },
                                              &shmid, &why),
                                 -ENOSPC);
                ck_assert_int_eq(shmid, -42);   /* untouched on failure */
                ck_assert_ptr_nonnull(why);
                ck_assert_msg(strstr(why, "kernel.shmmax"), "why: %s", why);
        }
        ck_assert_uint_eq(count_my_segments(), before);
}
END_TEST

START_TEST(test_prefault_makes_resident) {
        uint64_t size = 64 * page();
        int shmid;

        shmid = new_ok(.size = size, .owner_uid = UID_A, .prefault = true);
        ck_assert_uint_eq(shm_sysv_resident_bytes(shmid), size);
        /* The daemon's own attachment is gone again. */
        ck_assert_int_eq(shm_sysv_attachments(shmid), 0);

        /* On its own, on a segment nothing touched; and a read-only one
         * (the daemon attaches before it gives the segment away). */
        shmid = new_ok(.size = size, .owner_uid = UID_A);
        ck_assert_uint_eq(shm_sysv_resident_bytes(shmid), 0);
        ck_assert_int_eq(shm_sysv_prefault(shmid, size), 0);
        ck_assert_uint_eq(shm_sysv_resident_bytes(shmid), size);

        shmid = new_ok(.size = size, .owner_uid = UID_A, .read_only = true, .prefault = true);
        ck_assert_uint_eq(shm_sysv_resident_bytes(shmid), size);
        ck_assert_uint_eq(stat_ok(shmid).shm_perm.mode & 0777, 0400);

        ck_assert_int_eq(shm_sysv_prefault(-1, size), -EINVAL);
        ck_assert_uint_eq(shm_sysv_resident_bytes(-1), 0);
}
END_TEST

/* One read serves many lookups until forgotten; a new segment forgets. */
START_TEST(test_resident_cached) {
        uint64_t size = 8 * page();
        int a, c;

        a = new_ok(.size = size, .owner_uid = UID_A);
        ck_assert_uint_eq(shm_sysv_resident_bytes_cached(a), 0);
        ck_assert_int_eq(shm_sysv_prefault(a, size), 0);
        ck_assert_uint_eq(shm_sysv_resident_bytes_cached(a), 0);       /* the copy */
        ck_assert_uint_eq(shm_sysv_resident_bytes(a), size);           /* the file */
        shm_sysv_resident_forget();
        ck_assert_uint_eq(shm_sysv_resident_bytes_cached(a), size);

        c = new_ok(.size = size, .owner_uid = UID_A, .prefault = true);
        ck_assert_uint_eq(shm_sysv_resident_bytes_cached(c), size);
        ck_assert_uint_eq(shm_sysv_resident_bytes_cached(a), size);
        ck_assert_uint_eq(shm_sysv_resident_bytes_cached(-1), 0);
        ck_assert_int_eq(shm_sysv_remove(c), 0);
        shm_sysv_resident_forget();
        ck_assert_uint_eq(shm_sysv_resident_bytes_cached(c), 0);
        shm_sysv_resident_forget();
}
END_TEST

START_TEST(test_attachments_count) {
        void *p, *q;
        int shmid;

        shmid = new_ok(.size = page(), .owner_uid = geteuid());
        p = shmat(shmid, NULL, 0);
        ck_assert_ptr_ne(p, (void *) -1);
        ck_assert_int_eq(shm_sysv_attachments(shmid), 1);
        q = shmat(shmid, NULL, SHM_RDONLY);
        ck_assert_ptr_ne(q, (void *) -1);
        ck_assert_int_eq(shm_sysv_attachments(shmid), 2);
        ck_assert_int_eq(shmdt(p), 0);
        ck_assert_int_eq(shm_sysv_attachments(shmid), 1);
        ck_assert_int_eq(shmdt(q), 0);
        ck_assert_int_eq(shm_sysv_attachments(shmid), 0);
}
END_TEST

START_TEST(test_remove_keeps_mapping) {
        char *p;
        int shmid;

        shmid = new_ok(.size = 2 * page(), .owner_uid = geteuid());
        p = shmat(shmid, NULL, 0);
        ck_assert_ptr_ne(p, (void *) -1);
        memset(p, 'x', 2 * page());

        ck_assert_int_eq(shm_sysv_remove(shmid), 0);
        /* Marked for removal, still there while attached. */
        ck_assert_int_eq(shm_sysv_attachments(shmid), 1);
        ck_assert(stat_ok(shmid).shm_perm.mode & SHM_DEST);
        ck_assert_int_eq(p[0], 'x');
        ck_assert_int_eq(p[2 * page() - 1], 'x');
        p[page()] = 'y';
        ck_assert_int_eq(p[page()], 'y');

        ck_assert_int_eq(shmdt(p), 0);
        ck_assert(segment_gone(shmid));
        ck_assert_int_eq(shm_sysv_attachments(shmid), -EIDRM);
}
END_TEST

START_TEST(test_verify) {
        uint64_t size = 4 * page();
        int shmid, other;

        shmid = new_ok(.size = size, .owner_uid = UID_A);
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_A, size), 0);
        /* Not the size the journal says, not the owner it says. */
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_A, size + page()), -EPERM);
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_A, size - page()), -EPERM);
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_B, size), -EPERM);

        /* The owner gave it away (it may: IPC_SET). */
        ck_assert_int_eq(shm_sysv_set_owner(shmid, UID_B, false), 0);
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_A, size), -EPERM);

        /* Another segment of the daemon's under the journal's id. */
        other = new_ok(.size = 2 * size, .owner_uid = UID_A);
        ck_assert_int_eq(shm_sysv_verify(other, UID_A, size), -EPERM);

        ck_assert_int_eq(shm_sysv_remove(shmid), 0);
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_A, size), -EIDRM);
        ck_assert_int_eq(shm_sysv_verify(-1, UID_A, size), -EIDRM);
        ck_assert_int_eq(shm_sysv_verify(INT32_MAX, UID_A, size), -EIDRM);
}
END_TEST

/* =========================================== as the daemon and other uids === */

/* Be the daemon for a while: its uid, effective, with no capabilities (the
 * kernel clears the effective set when the euid leaves 0); back to root
 * after, from the saved uid. */
static void become_daemon(uid_t uid) {
        ck_assert_int_eq(setegid(uid), 0);
        ck_assert_int_eq(seteuid(uid), 0);
}

static void become_root(void) {
        ck_assert_int_eq(seteuid(0), 0);
        ck_assert_int_eq(setegid(0), 0);
}

/* Failures in a child are reported as its exit status: the line. */
#define CHILD_CHECK(cond)                                                                       \
        do {                                                                                    \
                if (!(cond)) {                                                                  \
                        fprintf(stderr, "%s:%d: %s failed (errno: %s)\n", __FILE__, __LINE__,   \
                                #cond, strerror(errno));                                        \
                        return __LINE__ & 0xff ? __LINE__ & 0xff : 1;                           \
                }                                                                               \
        } while (0)

/* Run @fn(@shmid) in a child that is @uid for good (its gid too, no
 * supplementary groups, no capabilities); its exit status. */
static int run_as(uid_t uid, int (*fn)(int shmid), int shmid) {
        int status;
        pid_t pid;

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0)
                        _exit(250);
                _exit(fn(shmid));
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        return WEXITSTATUS(status);
}

static int attach_rw_and_write(int shmid) {
        char *p = shmat(shmid, NULL, 0);

        CHILD_CHECK(p != (void *) -1);
        memcpy(p, "owner wrote this", 17);
        CHILD_CHECK(shmdt(p) == 0);
        return 0;
}

/* The kernel refuses with EACCES. Under valgrind shmat() is valgrind's,
 * which first asks IPC_STAT for the size, is refused too, and fails with
 * EINVAL before the kernel is asked: a refusal either way. */
static bool attach_was_refused(void *p) {
        return p == (void *) -1 && (errno == EACCES || errno == EINVAL);
}

static int attach_refused(int shmid) {
        struct shmid_ds ds = {};        /* IPC_STAT is refused: nothing fills it */

        CHILD_CHECK(attach_was_refused(shmat(shmid, NULL, 0)));
        CHILD_CHECK(attach_was_refused(shmat(shmid, NULL, SHM_RDONLY)));
        CHILD_CHECK(shmctl(shmid, IPC_STAT, &ds) < 0 && errno == EACCES);
        /* Neither owner nor creator: no say over it. */
        CHILD_CHECK(shmctl(shmid, IPC_RMID, NULL) < 0 && errno == EPERM);
        ds.shm_perm.uid = getuid();
        ds.shm_perm.gid = getgid();
        ds.shm_perm.mode = 0666;
        CHILD_CHECK(shmctl(shmid, IPC_SET, &ds) < 0 && errno == EPERM);
        return 0;
}

static int attach_read_only_only(int shmid) {
        char *p;

        CHILD_CHECK(shmat(shmid, NULL, 0) == (void *) -1 && errno == EACCES);
        p = shmat(shmid, NULL, SHM_RDONLY);
        CHILD_CHECK(p != (void *) -1);
        CHILD_CHECK(p[0] == 0);
        CHILD_CHECK(shmdt(p) == 0);
        return 0;
}

/* The owner's power SysV gives and no design can take away: it may change
 * the mode (and owner) of its segment, read-only or not. */
static int owner_makes_writable(int shmid) {
        struct shmid_ds ds;

        CHILD_CHECK(shmctl(shmid, IPC_STAT, &ds) == 0);
        ds.shm_perm.mode = 0600;
        CHILD_CHECK(shmctl(shmid, IPC_SET, &ds) == 0);
        return attach_rw_and_write(shmid);
}

static int owner_takes_read_bit(int shmid) {
        struct shmid_ds ds;

        CHILD_CHECK(shmctl(shmid, IPC_STAT, &ds) == 0);
        ds.shm_perm.mode = 0;
        CHILD_CHECK(shmctl(shmid, IPC_SET, &ds) == 0);
        return 0;
}

START_TEST(test_unprivileged_creator_gives_away) {
        uint64_t size = 2 * page();
        struct shmid_ds ds;
        int shmid;

        become_daemon(UID_DAEMON);
        shmid = new_ok(.size = size, .owner_uid = UID_A, .prefault = true);
        ds = stat_ok(shmid);    /* the creator keeps the owner's bits */
        ck_assert_uint_eq(ds.shm_perm.cuid, UID_DAEMON);
        ck_assert_uint_eq(ds.shm_perm.uid, UID_A);
        ck_assert_uint_eq(ds.shm_perm.gid, UID_DAEMON);
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_A, size), 0);
        ck_assert_uint_eq(shm_sysv_resident_bytes(shmid), size);
        /* And may give it away again, and remove it, whoever owns it. */
        ck_assert_int_eq(shm_sysv_set_owner(shmid, UID_B, true), 0);
        ck_assert_int_eq(shm_sysv_set_owner(shmid, UID_A, false), 0);
        become_root();

        ck_assert_int_eq(run_as(UID_A, attach_rw_and_write, shmid), 0);
        become_daemon(UID_DAEMON);
        ck_assert_int_eq(shm_sysv_remove(shmid), 0);
        become_root();
        ck_assert(segment_gone(shmid));
}
END_TEST

START_TEST(test_owner_attaches_other_uid_cannot) {
        char *p;
        int shmid;

        become_daemon(UID_DAEMON);
        shmid = new_ok(.size = page(), .owner_uid = UID_A);
        become_root();

        ck_assert_int_eq(run_as(UID_A, attach_rw_and_write, shmid), 0);
        ck_assert_int_eq(run_as(UID_B, attach_refused, shmid), 0);

        p = shmat(shmid, NULL, SHM_RDONLY);
        ck_assert_ptr_ne(p, (void *) -1);
        ck_assert_str_eq(p, "owner wrote this");
        ck_assert_int_eq(shmdt(p), 0);
}
END_TEST

START_TEST(test_read_only_refuses_rw_attach) {
        int shmid;

        become_daemon(UID_DAEMON);
        shmid = new_ok(.size = page(), .owner_uid = UID_A, .read_only = true, .prefault = true);
        become_root();
        ck_assert_int_eq(run_as(UID_A, attach_read_only_only, shmid), 0);
        ck_assert_int_eq(run_as(UID_B, attach_refused, shmid), 0);
        /* What the man page warns about. */
        ck_assert_int_eq(run_as(UID_A, owner_makes_writable, shmid), 0);
}
END_TEST

START_TEST(test_verify_rejects_foreign) {
        uint64_t size = page();
        int shmid;

        /* Made by another uid, owned by the right one, the right size. */
        become_daemon(UID_B);
        shmid = new_ok(.size = size, .owner_uid = UID_A);
        become_root();

        become_daemon(UID_DAEMON);
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_A, size), -EPERM);
        /* Not the daemon's to remove either. */
        ck_assert_int_eq(shm_sysv_remove(shmid), -EPERM);
        become_root();
        ck_assert(!segment_gone(shmid));
}
END_TEST

START_TEST(test_owner_takes_daemon_read_permission) {
        uint64_t size = 3 * page();
        struct shmid_ds ds;
        void *p;
        int shmid;

        become_daemon(UID_DAEMON);
        shmid = new_ok(.size = size, .owner_uid = UID_A, .prefault = true);
        become_root();
        ck_assert_int_eq(run_as(UID_A, owner_takes_read_bit, shmid), 0);
        p = shmat(shmid, NULL, SHM_RDONLY);    /* root: an attachment to count */
        ck_assert_ptr_ne(p, (void *) -1);

        become_daemon(UID_DAEMON);
        ck_assert_int_lt(shmctl(shmid, IPC_STAT, &ds), 0);
        ck_assert_int_eq(errno, EACCES);
        /* What the daemon asks still has an answer (/proc/sysvipc/shm). */
        ck_assert_int_eq(shm_sysv_attachments(shmid), 1);
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_A, size), 0);
        ck_assert_int_eq(shm_sysv_verify(shmid, UID_B, size), -EPERM);
        ck_assert_uint_eq(shm_sysv_resident_bytes(shmid), size);
        /* Nor can the owner keep the daemon from taking it back. */
        ck_assert_int_eq(shm_sysv_set_owner(shmid, UID_A, false), 0);
        ck_assert_int_eq(shm_sysv_remove(shmid), 0);
        become_root();
        ck_assert_int_eq(shmdt(p), 0);
        ck_assert(segment_gone(shmid));
}
END_TEST

static void write_sysctl(const char *name, uint64_t value) {
        char path[128];
        FILE *f;

        snprintf(path, sizeof(path), "/proc/sys/kernel/%s", name);
        f = fopen(path, "we");
        ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
        ck_assert_int_gt(fprintf(f, "%" PRIu64 "\n", value), 0);
        ck_assert_int_eq(fclose(f), 0);
}

static void new_refused(uint64_t size, const char *limit) {
        const char *why = NULL;
        int shmid = -42;

        ck_assert_int_eq(shm_sysv_new(&(ShmSysvRequest) { .size = size, .owner_uid = UID_A }, &shmid, &why), -ENOSPC);
        ck_assert_int_eq(shmid, -42);
        ck_assert_ptr_nonnull(why);
        ck_assert_msg(strstr(why, limit), "%s: why: %s", limit, why);
}

static uint64_t meminfo_kib(const char *field) {
        FILE *f = fopen("/proc/meminfo", "re");
        char line[256];
        unsigned long long v = 0;
        size_t n = strlen(field);

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, n) == 0 && line[n] == ':')
                        ck_assert_int_eq(sscanf(line + n + 1, "%llu", &v), 1);
        fclose(f);
        return v;
}

START_TEST(test_limits_named) {
        uint64_t size = 4 * page();
        int a, overcommit = -1;
        FILE *f;

        /* A new IPC namespace: its own limits and segments, nothing of the
         * machine's changed. The test's process is the only one in it. */
        ck_assert_int_eq(unshare(CLONE_NEWIPC), 0);

        write_sysctl("shmmax", size);
        new_refused(size + page(), "kernel.shmmax");
        a = new_ok(.size = size, .owner_uid = UID_A);

        write_sysctl("shmall", 6);      /* pages; 4 taken */
        new_refused(3 * page(), "kernel.shmall");
        new_ok(.size = 2 * page(), .owner_uid = UID_A);
        new_refused(page(), "kernel.shmall");
        ck_assert_int_eq(shm_sysv_remove(a), 0);

        write_sysctl("shmall", 1000);
        write_sysctl("shmmni", 2);      /* 1 left */
        new_ok(.size = page(), .owner_uid = UID_A);
        new_refused(page(), "kernel.shmmni");
        write_sysctl("shmmni", 4096);

        /* More than the memory there is: refused when the kernel counts
         * it; made with vm.overcommit_memory=1, which promises anything. */
        f = fopen("/proc/sys/vm/overcommit_memory", "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%d", &overcommit), 1);
        fclose(f);
        {
                uint64_t ram = (meminfo_kib("MemTotal") + meminfo_kib("SwapTotal")) * 1024;

                write_sysctl("shmmax", UINT64_C(1) << 50);
                write_sysctl("shmall", UINT64_C(1) << 40);
                if (overcommit != 1)
                        new_refused(2 * ram, "memory");
                else
                        ck_assert_int_eq(shm_sysv_remove(new_ok(.size = 2 * ram, .owner_uid = UID_A)), 0);
        }
}
END_TEST

/* The broker's sysv branch says which limit, as NoSpace. */
START_TEST(test_broker_names_the_limit) {
        const Caller caller = { .name = ":1.1", .uid = UID_A };
        BrokerLimits limits;
        BrokerError err = {};
        Buffer *buf = NULL;
        Broker *b = NULL;

        ck_assert_int_eq(unshare(CLONE_NEWIPC), 0);
        write_sysctl("shmmax", page());
        broker_limits_default(&limits);
        ck_assert_int_eq(broker_new(&b, &limits, NULL, NULL), 0);
        ck_assert_int_eq(broker_create(b, &caller,
                                       &(CreateRequest) { .kind = "sysv", .name = "big", .size = 2 * page() },
                                       1, &err, &buf),
                         -ENOSPC);
        ck_assert_ptr_null(buf);
        ck_assert_str_eq(err.name, BB_ERROR_NO_SPACE);
        ck_assert_msg(strstr(err.message, "kernel.shmmax") && strstr(err.message, "SysV segment"), "%s",
                      err.message);
        ck_assert_uint_eq(b->stats.buffers, 0);
        ck_assert_uint_eq(b->stats.bytes, 0);

        ck_assert_int_eq(broker_create(b, &caller,
                                       &(CreateRequest) { .kind = "sysv", .name = "fits", .size = page() },
                                       1, &err, &buf),
                         0);
        ck_assert_int_ge(buf->shmid, 0);
        ck_assert_uint_eq(buf->n_fds, 0);
        write_sysctl("shmmni", 1);
        buf = NULL;
        ck_assert_int_eq(broker_create(b, &caller,
                                       &(CreateRequest) { .kind = "sysv", .name = "one-more", .size = page() },
                                       1, &err, &buf),
                         -ENOSPC);
        ck_assert_msg(strstr(err.message, "kernel.shmmni"), "%s", err.message);
        ck_assert_uint_eq(b->stats.buffers, 1);
        b = broker_free(b);
}
END_TEST

/* Where /proc/sysvipc is hidden (the system unit's ProcSubset=pid): the
 * resident bytes come from mincore() on a moment's attachment, which is
 * gone again. Hidden here as the unit hides it: a mount over it, in a mount
 * namespace of this test's own. */
START_TEST(test_resident_without_proc_sysvipc) {
        uint64_t size = 16 * page();
        int touched, untouched;

        ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
        ck_assert_int_eq(mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL), 0);
        ck_assert_int_eq(mount("tmpfs", "/proc/sysvipc", "tmpfs", 0, NULL), 0);
        ck_assert_int_lt(access("/proc/sysvipc/shm", F_OK), 0);
        shm_sysv_resident_forget();
        /* As the unit's daemon: no capability, the segments given away. */
        become_daemon(UID_DAEMON);
        touched = new_ok(.size = size, .owner_uid = UID_A, .prefault = true);
        untouched = new_ok(.size = size, .owner_uid = UID_A);

        ck_assert_uint_eq(shm_sysv_resident_bytes(touched), size);
        ck_assert_uint_eq(shm_sysv_resident_bytes(untouched), 0);
        ck_assert_uint_eq(shm_sysv_resident_bytes_cached(touched), size);
        ck_assert_uint_eq(shm_sysv_resident_bytes_cached(untouched), 0);
        ck_assert_uint_eq(shm_sysv_resident_bytes(-1), 0);
        ck_assert_int_eq(shm_sysv_attachments(touched), 0);
        ck_assert_int_eq(shm_sysv_attachments(untouched), 0);
        shm_sysv_resident_forget();
        become_root();
}
END_TEST

static Suite *suite_sysv(void) {
        Suite *s = suite_create("sysv");
        TCase *tc = tcase_create("allocator");

        tcase_add_unchecked_fixture(tc, NULL, remove_made);
        tcase_set_timeout(tc, TEST_TIMEOUT);
        tcase_add_test(tc, test_new_owner_mode_size);
        tcase_add_test(tc, test_new_read_only_mode);
        tcase_add_test(tc, test_new_bad_sizes);
        tcase_add_test(tc, test_prefault_makes_resident);
        tcase_add_test(tc, test_resident_cached);
        tcase_add_test(tc, test_attachments_count);
        tcase_add_test(tc, test_remove_keeps_mapping);
        tcase_add_test(tc, test_verify);
        suite_add_tcase(s, tc);
        return s;
}

static Suite *suite_sysv_uids(void) {
        Suite *s = suite_create("sysv-uids");
        TCase *tc = tcase_create("uids");

        tcase_add_unchecked_fixture(tc, NULL, remove_made);
        tcase_set_timeout(tc, TEST_TIMEOUT);
        tcase_add_test(tc, test_unprivileged_creator_gives_away);
        tcase_add_test(tc, test_owner_attaches_other_uid_cannot);
        tcase_add_test(tc, test_read_only_refuses_rw_attach);
        tcase_add_test(tc, test_verify_rejects_foreign);
        tcase_add_test(tc, test_owner_takes_daemon_read_permission);
        tcase_add_test(tc, test_limits_named);
        tcase_add_test(tc, test_broker_names_the_limit);
        tcase_add_test(tc, test_resident_without_proc_sysvipc);
        suite_add_tcase(s, tc);
        return s;
}

int main(int argc, char *argv[]) {
        SRunner *sr;
        int failed;

        made = mmap(NULL, sizeof(Made), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (made == MAP_FAILED)
                return EXIT_FAILURE;

        if (argc == 2 && strcmp(argv[1], "uids") == 0) {
                if (geteuid() != 0) {
                        printf("SKIPPED: not root: cannot be other uids\n");
                        return 77;
                }
                sr = srunner_create(suite_sysv_uids());
        } else if (argc == 1)
                sr = srunner_create(suite_sysv());
        else {
                fprintf(stderr, "usage: %s [uids]\n", argv[0]);
                return 2;
        }
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
