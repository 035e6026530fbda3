/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the POSIX shared memory allocator (daemon/shm-posix.h): the
 * names, sizes, prefault and unlink, and the ACL written by hand, first as
 * bytes and then as the kernel enforces it on other uids. No D-Bus, no
 * broker.
 *   test-shm-posix           the allocator and the ACL's bytes (any user)
 *   test-shm-posix acl       other uids opening by name: needs root (to
 *                            switch uid) and ACLs on /dev/shm, else exits 77
 */
#include <check.h>
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "macro.h"
#include "shm-posix.h"

#define TEST_TIMEOUT 120
#define UID_NOBODY ((uid_t) 65534)
#define UID_A ((uid_t) 1000001)
#define UID_B ((uid_t) 1000002)
#define UID_C ((uid_t) 1000003)

/* The path of @name under /dev/shm. */
static const char *shm_path(const char *name, char buf[64]) {
        snprintf(buf, 64, "/dev/shm%s", name);
        return buf;
}

static bool shm_exists(const char *name) {
        char path[64];
        struct stat st;

        return stat(shm_path(name, path), &st) == 0;
}

/* bufbroker-* entries in /dev/shm: none may be left behind by a failure. */
static unsigned count_shm_entries(void) {
        DIR *d = opendir("/dev/shm");
        struct dirent *de;
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (strncmp(de->d_name, "bufbroker-", 10) == 0)
                        n++;
        closedir(d);
        return n;
}

static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;
}

typedef struct Shm {
        char *name;
        int fd;
} Shm;

/* The names the tests made and have not unlinked yet, in memory shared
 * with main(): a failed check ends its test's process at once (_exit), and
 * main() unlinks what it left, so that a failure leaves nothing in
 * /dev/shm either. */
#define MADE_MAX 128
static char (*made)[SHM_POSIX_NAME_LEN + 1];

static void made_add(const char *name) {
        for (unsigned i = 0; i < MADE_MAX; i++)
                if (!made[i][0]) {
                        snprintf(made[i], sizeof(made[i]), "%s", name);
                        return;
                }
}

static void made_remove(const char *name) {
        for (unsigned i = 0; i < MADE_MAX; i++)
                if (strcmp(made[i], name) == 0)
                        made[i][0] = 0;
}

static void made_unlink_all(void) {
        for (unsigned i = 0; i < MADE_MAX; i++)
                if (made[i][0])
                        (void) shm_posix_unlink(made[i]);
}

#define new_ok(size, prefault) new_ok_at(__LINE__, (size), (prefault))
static Shm new_ok_at(int line, uint64_t size, bool prefault) {
        Shm s = { .fd = -1 };
        int r;

        r = shm_posix_new(size, prefault, &s.name, &s.fd);
        ck_assert_msg(r == 0, "line %d: shm_posix_new(%" PRIu64 ") = %s", line, size, strerror(-r));
        ck_assert_ptr_nonnull(s.name);
        made_add(s.name);
        ck_assert_int_ge(s.fd, 0);
        return s;
}

static void shm_done(Shm *s) {
        if (s->name) {
                (void) shm_posix_unlink(s->name);
                made_remove(s->name);
        }
        free(s->name);
        s->name = NULL;
        s->fd = safe_close(s->fd);
}

/* ========================================================= allocator === */

START_TEST(test_name_format_and_unique) {
        enum { N = 64 };
        Shm s[N];

        for (unsigned i = 0; i < N; i++) {
                const char *hex;
                struct stat st;
                char path[64];

                s[i] = new_ok(4096, false);
                ck_assert_uint_eq(strlen(s[i].name), SHM_POSIX_NAME_LEN);
                ck_assert_uint_eq(strlen(s[i].name), strlen("/bufbroker-") + 32);
                ck_assert_msg(strncmp(s[i].name, "/bufbroker-", 11) == 0, "named %s", s[i].name);
                hex = s[i].name + 11;
                ck_assert_uint_eq(strspn(hex, "0123456789abcdef"), 32);
                ck_assert(shm_posix_name_valid(s[i].name));
                for (unsigned j = 0; j < i; j++)
                        ck_assert_str_ne(s[i].name, s[j].name);

                /* The entry under /dev/shm, owned by us, open to nobody else. */
                ck_assert_int_eq(stat(shm_path(s[i].name, path), &st), 0);
                ck_assert(S_ISREG(st.st_mode));
                ck_assert_uint_eq(st.st_uid, geteuid());
                ck_assert_uint_eq(st.st_mode & 07777, 0600);
                ck_assert_int_eq(fgetxattr(s[i].fd, "system.posix_acl_access", NULL, 0), -1);
                ck_assert_int_eq(errno, ENODATA);

                ck_assert_int_eq(fcntl(s[i].fd, F_GETFL) & O_ACCMODE, O_RDWR);
                ck_assert(fcntl(s[i].fd, F_GETFD) & FD_CLOEXEC);
                /* The fd is that entry. */
                {
                        struct stat fst;

                        ck_assert_int_eq(fstat(s[i].fd, &fst), 0);
                        ck_assert_uint_eq(fst.st_ino, st.st_ino);
                        ck_assert_uint_eq(fst.st_dev, st.st_dev);
                }
        }
        for (unsigned i = 0; i < N; i++)
                shm_done(&s[i]);
}
END_TEST

START_TEST(test_name_valid) {
        static const char *const bad[] = {
                "",
                "/",
                "/bufbroker-",
                "bufbroker-0123456789abcdef0123456789abcdef",           /* no '/' */
                "/bufbroker-0123456789abcdef0123456789abcde",           /* 31 digits */
                "/bufbroker-0123456789abcdef0123456789abcdef0",         /* 33 */
                "/bufbroker-0123456789ABCDEF0123456789abcdef",          /* not ours: upper case */
                "/bufbroker-0123456789abcdef0123456789abcdeg",
                "/bufbroker-../../../../etc/passwd0123456789abc",
                "/bufbroker-0123456789abcdef/123456789abcdef0",
                "/other-0123456789abcdef0123456789abcdef0000",
        };

        ck_assert(shm_posix_name_valid("/bufbroker-0123456789abcdef0123456789abcdef"));
        ck_assert(!shm_posix_name_valid(NULL));
        for (unsigned i = 0; i < ELEMENTSOF(bad); i++) {
                ck_assert_msg(!shm_posix_name_valid(bad[i]), "'%s' taken as valid", bad[i]);
                ck_assert_int_eq(shm_posix_unlink(bad[i]), -EINVAL);
        }
}
END_TEST

START_TEST(test_size_sparse) {
        const uint64_t sizes[] = { 1, 4095, 4096, 12345, UINT64_C(1) << 20, UINT64_C(64) << 20 };

        for (unsigned i = 0; i < ELEMENTSOF(sizes); i++) {
                Shm s = new_ok(sizes[i], false);
                struct stat st;
                char path[64];

                ck_assert_int_eq(fstat(s.fd, &st), 0);
                ck_assert_int_eq(st.st_size, (off_t) sizes[i]);
                /* Sparse: nothing allocated before a page is touched. */
                ck_assert_int_eq(st.st_blocks, 0);
                ck_assert_int_eq(stat(shm_path(s.name, path), &st), 0);
                ck_assert_int_eq(st.st_size, (off_t) sizes[i]);
                shm_done(&s);
        }
}
END_TEST

START_TEST(test_prefault_allocates) {
        const uint64_t size = UINT64_C(4) << 20;
        Shm s = new_ok(size, true);
        struct stat st;

        ck_assert_int_eq(fstat(s.fd, &st), 0);
        ck_assert_int_eq(st.st_size, (off_t) size);
        ck_assert_msg((uint64_t) st.st_blocks * 512 >= size, "%" PRIu64 " bytes allocated of %" PRIu64,
                      (uint64_t) st.st_blocks * 512, size);
        shm_done(&s);
}
END_TEST

START_TEST(test_prefault_no_space) {
        unsigned before = count_shm_entries();
        int fds = count_fds(), fd = -42;
        char *name = (char *) "untouched";
        struct statvfs vfs;
        uint64_t size;

        /* More than the whole tmpfs holds: the kernel refuses up front. */
        ck_assert_int_eq(statvfs("/dev/shm", &vfs), 0);
        size = (uint64_t) vfs.f_blocks * vfs.f_frsize + (UINT64_C(1) << 30);
        ck_assert_int_eq(shm_posix_new(size, true, &name, &fd), -ENOSPC);
        ck_assert_str_eq(name, "untouched");
        ck_assert_int_eq(fd, -42);
        ck_assert_uint_eq(count_shm_entries(), before);
        ck_assert_int_eq(count_fds(), fds);

        /* Without prefault the same size is a sparse file. */
        {
                Shm s = new_ok(size, false);
                struct stat st;

                ck_assert_int_eq(fstat(s.fd, &st), 0);
                ck_assert_int_eq(st.st_size, (off_t) size);
                shm_done(&s);
        }
}
END_TEST

START_TEST(test_huge_size) {
        const uint64_t sizes[] = { UINT64_MAX, UINT64_MAX - 4095, UINT64_C(1) << 63 };
        unsigned before = count_shm_entries();
        int fds = count_fds();

        for (unsigned i = 0; i < ELEMENTSOF(sizes); i++) {
                char *name = NULL;
                int fd = -42;

                ck_assert_int_eq(shm_posix_new(sizes[i], false, &name, &fd), -EFBIG);
                ck_assert_ptr_null(name);
                ck_assert_int_eq(fd, -42);
        }
        ck_assert_uint_eq(count_shm_entries(), before);
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_unlink_removes_entry) {
        Shm s = new_ok(8192, false);
        char path[64];
        struct stat st;
        void *p;

        p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, s.fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        memcpy(p, "still here", 11);

        ck_assert(shm_exists(s.name));
        ck_assert_int_eq(shm_posix_unlink(s.name), 0);
        ck_assert_int_eq(stat(shm_path(s.name, path), &st), -1);
        ck_assert_int_eq(errno, ENOENT);
        ck_assert_int_eq(shm_open(s.name, O_RDONLY | O_CLOEXEC, 0), -1);
        ck_assert_int_eq(errno, ENOENT);
        ck_assert_int_eq(shm_posix_unlink(s.name), -ENOENT);

        /* Who has it mapped or open keeps the memory, as with any file. */
        ck_assert_str_eq(p, "still here");
        ck_assert_int_eq(fstat(s.fd, &st), 0);
        ck_assert_int_eq(st.st_nlink, 0);
        munmap(p, 8192);
        made_remove(s.name);
        free(s.name);
        s.name = NULL;
        shm_done(&s);
}
END_TEST

/* ===================================================== the ACL bytes === */

typedef struct RawEntry {
        uint16_t tag, perm;
        uint32_t id;
} RawEntry;

/* The ACL of @fd as stored: *n entries after a checked version 2 header. */
static unsigned read_acl(int fd, RawEntry *ret, unsigned max) {
        uint8_t raw[4 + 64 * 8];
        uint32_t version;
        ssize_t n;
        unsigned count;

        n = fgetxattr(fd, "system.posix_acl_access", raw, sizeof(raw));
        ck_assert_msg(n >= 4, "no ACL: %s", strerror(errno));
        ck_assert_int_eq((n - 4) % 8, 0);
        memcpy(&version, raw, 4);
        ck_assert_uint_eq(le32toh(version), 2);
        count = (unsigned) (n - 4) / 8;
        ck_assert_uint_le(count, max);
        for (unsigned i = 0; i < count; i++) {
                memcpy(&ret[i].tag, raw + 4 + i * 8, 2);
                memcpy(&ret[i].perm, raw + 4 + i * 8 + 2, 2);
                memcpy(&ret[i].id, raw + 4 + i * 8 + 4, 4);
                ret[i].tag = le16toh(ret[i].tag);
                ret[i].perm = le16toh(ret[i].perm);
                ret[i].id = le32toh(ret[i].id);
        }
        return count;
}

/* The ACL must be exactly USER_OBJ rw, the @n (uid, perm) pairs given, in
 * that order, GROUP_OBJ ---, MASK rw, OTHER ---. */
static void assert_acl(int line, int fd, unsigned n, const RawEntry *users) {
        RawEntry e[64];
        unsigned count = read_acl(fd, e, ELEMENTSOF(e));
        struct stat st;

        ck_assert_msg(count == n + 4, "line %d: %u entries, expected %u", line, count, n + 4);
        ck_assert_uint_eq(e[0].tag, 0x01);
        ck_assert_uint_eq(e[0].perm, 6);
        for (unsigned i = 0; i < n; i++) {
                ck_assert_msg(e[1 + i].tag == 0x02 && e[1 + i].id == users[i].id && e[1 + i].perm == users[i].perm,
                              "line %d: entry %u is tag %#x uid %" PRIu32 " perm %o, expected user %" PRIu32 " perm %o",
                              line, 1 + i, e[1 + i].tag, e[1 + i].id, e[1 + i].perm, users[i].id, users[i].perm);
        }
        ck_assert_uint_eq(e[n + 1].tag, 0x04);
        ck_assert_uint_eq(e[n + 1].perm, 0);
        ck_assert_uint_eq(e[n + 2].tag, 0x10);
        ck_assert_uint_eq(e[n + 2].perm, 6);
        ck_assert_uint_eq(e[n + 3].tag, 0x20);
        ck_assert_uint_eq(e[n + 3].perm, 0);

        /* The mode the kernel derives: the group bits show the mask, others
         * nothing, no execute anywhere. */
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0660);
}

#define ACL_IS(fd, ...)                                                                         \
        do {                                                                                    \
                const RawEntry _u[] = { __VA_ARGS__ };                                          \
                assert_acl(__LINE__, (fd), ELEMENTSOF(_u), _u);                                  \
        } while (0)
#define U(uid_, perm_) { .tag = 0x02, .id = (uid_), .perm = (perm_) }

START_TEST(test_grant_sorted_and_kept) {
        Shm s = new_ok(4096, false);

        ck_assert_int_eq(shm_posix_granted(s.fd, UID_A), 0);
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_B, true), 0);
        ACL_IS(s.fd, U(UID_B, 6));
        /* A lower uid goes before, a higher one after; earlier ones stay. */
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_A, false), 0);
        ACL_IS(s.fd, U(UID_A, 4), U(UID_B, 6));
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_C, true), 0);
        ACL_IS(s.fd, U(UID_A, 4), U(UID_B, 6), U(UID_C, 6));
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_NOBODY, false), 0);
        ACL_IS(s.fd, U(UID_NOBODY, 4), U(UID_A, 4), U(UID_B, 6), U(UID_C, 6));

        ck_assert_int_eq(shm_posix_granted(s.fd, UID_A), R_OK);
        ck_assert_int_eq(shm_posix_granted(s.fd, UID_B), R_OK | W_OK);
        ck_assert_int_eq(shm_posix_granted(s.fd, UID_A + 100), 0);

        /* Rights only grow: read-write stays read-write, read-only can
         * become read-write, and granting again changes nothing. */
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_B, false), 0);
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_A, true), 0);
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_C, true), 0);
        ACL_IS(s.fd, U(UID_NOBODY, 4), U(UID_A, 6), U(UID_B, 6), U(UID_C, 6));
        ck_assert_int_eq(shm_posix_granted(s.fd, UID_A), R_OK | W_OK);

        /* The file's owner has USER_OBJ already: no entry of its own. */
        ck_assert_int_eq(shm_posix_grant(s.fd, geteuid(), false), 0);
        ACL_IS(s.fd, U(UID_NOBODY, 4), U(UID_A, 6), U(UID_B, 6), U(UID_C, 6));

        /* (uid_t) -1 is ACL_UNDEFINED_ID, no uid. */
        ck_assert_int_eq(shm_posix_grant(s.fd, (uid_t) -1, true), -EINVAL);
        ACL_IS(s.fd, U(UID_NOBODY, 4), U(UID_A, 6), U(UID_B, 6), U(UID_C, 6));
        shm_done(&s);
}
END_TEST

START_TEST(test_grant_many) {
        Shm s = new_ok(4096, false);
        RawEntry e[64];
        unsigned n;

        /* In descending order, so that every grant inserts at the front. */
        for (uid_t u = 1000050; u > 1000000; u--)
                ck_assert_int_eq(shm_posix_grant(s.fd, u, u % 2), 0);
        n = read_acl(s.fd, e, ELEMENTSOF(e));
        ck_assert_uint_eq(n, 50 + 4);
        for (unsigned i = 0; i < 50; i++) {
                ck_assert_uint_eq(e[1 + i].tag, 0x02);
                ck_assert_uint_eq(e[1 + i].id, 1000001 + i);
                ck_assert_uint_eq(e[1 + i].perm, (1000001 + i) % 2 ? 6 : 4);
        }
        shm_done(&s);
}
END_TEST

START_TEST(test_grant_bad_fd) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        ck_assert_int_eq(shm_posix_grant(-1, UID_A, true), -EBADF);
        /* Not the owner of /dev/null (unless root): no ACL written there. */
        ck_assert_int_ge(fd, 0);
        if (geteuid() != 0)
                ck_assert_int_lt(shm_posix_grant(fd, UID_A, true), 0);
        close(fd);
}
END_TEST

/* ======================================== other uids, by the kernel === */

/* In a child switched to @uid and @gid (no other groups): shm_open(@name,
 * @flags), and with O_RDWR write @data at 0, with O_RDONLY read back @data
 * and fail to write. Returns 0 when all of that worked, else the errno of
 * the first failure. */
static int open_as_ids(uid_t uid, gid_t gid, const char *name, int flags, const char *data) {
        pid_t pid;
        int status;

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char got[64] = {};
                int fd;

                if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                        _exit(100);
                fd = shm_open(name, flags | O_CLOEXEC, 0);
                if (fd < 0)
                        _exit(errno);
                if (data && (flags & O_ACCMODE) == O_RDWR &&
                    pwrite(fd, data, strlen(data), 0) != (ssize_t) strlen(data))
                        _exit(errno ? errno : 101);
                if (data && (flags & O_ACCMODE) == O_RDONLY) {
                        if (pread(fd, got, sizeof(got) - 1, 0) < 0)
                                _exit(errno);
                        if (strcmp(got, data) != 0)
                                _exit(102);
                        /* Read-only stays read-only. */
                        if (ftruncate(fd, 0) == 0 || pwrite(fd, "x", 1, 0) == 1)
                                _exit(103);
                }
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_msg(WEXITSTATUS(status) < 100, "child failed at step %d", WEXITSTATUS(status));
        return WEXITSTATUS(status);
}

static int open_as(uid_t uid, const char *name, int flags, const char *data) {
        return open_as_ids(uid, (gid_t) uid, name, flags, data);
}

START_TEST(test_granted_uid_opens_read_write) {
        Shm s = new_ok(4096, false);
        char got[16] = {};

        ck_assert_int_eq(shm_posix_grant(s.fd, UID_NOBODY, true), 0);
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDWR, "from nobody"), 0);
        ck_assert_int_eq(pread(s.fd, got, sizeof(got) - 1, 0), 15);
        ck_assert_str_eq(got, "from nobody");
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDONLY, "from nobody"), 0);
        shm_done(&s);
}
END_TEST

START_TEST(test_ungranted_uid_refused) {
        Shm s = new_ok(4096, false);

        /* Before any ACL: mode 0600. */
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDONLY, NULL), EACCES);
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDWR, NULL), EACCES);
        /* With an ACL for others (and a neighbour uid) only. */
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_NOBODY - 1, true), 0);
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_NOBODY + 1, true), 0);
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_A, true), 0);
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDONLY, NULL), EACCES);
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDWR, NULL), EACCES);
        /* Nor does the file's group (the daemon's): GROUP_OBJ is empty. */
        {
                struct stat st;

                ck_assert_int_eq(fstat(s.fd, &st), 0);
                ck_assert_int_eq(open_as_ids(UID_NOBODY, st.st_gid, s.name, O_RDONLY, NULL), EACCES);
        }
        ck_assert_int_eq(open_as(UID_A, s.name, O_RDWR, NULL), 0);
        shm_done(&s);
}
END_TEST

START_TEST(test_read_only_grant_refuses_rdwr) {
        Shm s = new_ok(4096, false);

        ck_assert_int_eq(pwrite(s.fd, "shared", 6, 0), 6);
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_NOBODY, false), 0);
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDWR, NULL), EACCES);
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDONLY, "shared"), 0);
        /* Upgraded by a later read-write grant. */
        ck_assert_int_eq(shm_posix_grant(s.fd, UID_NOBODY, true), 0);
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDWR, "rewritten"), 0);
        shm_done(&s);
}
END_TEST

START_TEST(test_granted_uid_cannot_unlink_or_chmod) {
        Shm s = new_ok(4096, false);
        pid_t pid;
        int status;

        ck_assert_int_eq(shm_posix_grant(s.fd, UID_NOBODY, true), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd;

                if (setgroups(0, NULL) < 0 || setresgid(UID_NOBODY, UID_NOBODY, UID_NOBODY) < 0 ||
                    setresuid(UID_NOBODY, UID_NOBODY, UID_NOBODY) < 0)
                        _exit(100);
                fd = shm_open(s.name, O_RDWR | O_CLOEXEC, 0);
                if (fd < 0)
                        _exit(101);
                /* Only the owner changes the mode or the ACL; the sticky
                 * /dev/shm lets only the owner unlink. */
                if (fchmod(fd, 0666) == 0)
                        _exit(102);
                if (fsetxattr(fd, "system.posix_acl_access", "\2\0\0\0", 4, 0) == 0)
                        _exit(103);
                if (shm_unlink(s.name) == 0)
                        _exit(104);
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        ck_assert(shm_exists(s.name));
        shm_done(&s);
}
END_TEST

START_TEST(test_unlinked_name_opens_nothing) {
        Shm s = new_ok(4096, false);

        ck_assert_int_eq(shm_posix_grant(s.fd, UID_NOBODY, true), 0);
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDWR, NULL), 0);
        ck_assert_int_eq(shm_posix_unlink(s.name), 0);
        ck_assert_int_eq(open_as(UID_NOBODY, s.name, O_RDWR, NULL), ENOENT);
        made_remove(s.name);
        free(s.name);
        s.name = NULL;
        shm_done(&s);
}
END_TEST

static TCase *tcase_new(const char *name) {
        TCase *tc = tcase_create(name);

        tcase_set_timeout(tc, TEST_TIMEOUT);
        return tc;
}

static Suite *suite_allocator(void) {
        Suite *s = suite_create("shm-posix");
        TCase *tc = tcase_new("allocator");

        tcase_add_test(tc, test_name_format_and_unique);
        tcase_add_test(tc, test_name_valid);
        tcase_add_test(tc, test_size_sparse);
        tcase_add_test(tc, test_prefault_allocates);
        tcase_add_test(tc, test_prefault_no_space);
        tcase_add_test(tc, test_huge_size);
        tcase_add_test(tc, test_unlink_removes_entry);
        suite_add_tcase(s, tc);

        tc = tcase_new("acl bytes");
        tcase_add_test(tc, test_grant_sorted_and_kept);
        tcase_add_test(tc, test_grant_many);
        tcase_add_test(tc, test_grant_bad_fd);
        suite_add_tcase(s, tc);
        return s;
}

static Suite *suite_acl(void) {
        Suite *s = suite_create("shm-posix acl");
        TCase *tc = tcase_new("other uids");

        tcase_add_test(tc, test_granted_uid_opens_read_write);
        tcase_add_test(tc, test_ungranted_uid_refused);
        tcase_add_test(tc, test_read_only_grant_refuses_rdwr);
        tcase_add_test(tc, test_granted_uid_cannot_unlink_or_chmod);
        tcase_add_test(tc, test_unlinked_name_opens_nothing);
        suite_add_tcase(s, tc);
        return s;
}

/* 0 when the ACL cases can run, 77 (and why) when they cannot here. */
static int acl_precondition(const char **why) {
        char *name = NULL;
        int fd = -1, r;

        if (geteuid() != 0) {
                *why = "not root: cannot switch to another uid";
                return 77;
        }
        r = shm_posix_new(4096, false, &name, &fd);
        if (r < 0) {
                *why = "cannot create a POSIX shared memory object";
                return 1;
        }
        r = shm_posix_grant(fd, UID_NOBODY, true);
        (void) shm_posix_unlink(name);
        free(name);
        close(fd);
        if (r == -EOPNOTSUPP) {
                *why = "/dev/shm takes no POSIX ACLs (a kernel without CONFIG_TMPFS_POSIX_ACL)";
                return 77;
        }
        if (r < 0) {
                *why = "writing an ACL failed";
                return 1;
        }
        return 0;
}

int main(int argc, char *argv[]) {
        SRunner *sr;
        int failed;

        made = mmap(NULL, MADE_MAX * sizeof(*made), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (made == MAP_FAILED) {
                perror("mmap");
                return EXIT_FAILURE;
        }
        if (argc == 2 && strcmp(argv[1], "acl") == 0) {
                const char *why = "";
                int r = acl_precondition(&why);

                if (r == 77) {
                        printf("SKIPPED: %s\n", why);
                        return 77;
                }
                if (r != 0) {
                        printf("FAILED: precondition probe: %s\n", why);
                        return EXIT_FAILURE;
                }
                sr = srunner_create(suite_acl());
        } else if (argc == 1)
                sr = srunner_create(suite_allocator());
        else {
                fprintf(stderr, "usage: %s [acl]\n", argv[0]);
                return 2;
        }
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        made_unlink_all();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
