/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the file-buffer allocator (daemon/tmpfile.h): unnamed files
 * in a directory the daemon alone controls, sparse or allocated up front,
 * reopenable through /proc/self/fd, never linkable, their blocks given back
 * when the last descriptor closes. No D-Bus.
 *   test-tmpfile                 the allocator in a fresh directory under
 *                                $TMPDIR (else /var/tmp): a disk filesystem
 *   test-tmpfile private-tmpfs   (root) space accounting on a 4 MiB tmpfs in
 *                                a private mount namespace, and a directory
 *                                of another uid
 *   test-tmpfile no-tmpfile-fs   (root) a filesystem without O_TMPFILE (bpf)
 * Each exits 77 (meson: SKIP) saying why when its precondition fails.
 */
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>

#include "test-helpers.h"
#include "tmpfile.h"

#define MiB (UINT64_C(1) << 20)
#define TINY_FS_SIZE (4 * MiB)

/* The directory the mode's tests work in (a fresh one below it per test). */
static char base[256];
static char dir[300];
static int dir_fd = -1;

static void dir_setup(void) {
        snprintf(dir, sizeof(dir), "%s/tmpfile-XXXXXX", base);
        ck_assert_ptr_nonnull(mkdtemp(dir));
        dir_fd = tmpfile_dir_open(dir, false);
        ck_assert_int_ge(dir_fd, 0);
}

static void dir_teardown(void) {
        dir_fd = safe_close(dir_fd);
        /* Empty: every file the test made had no name. */
        ck_assert_msg(rmdir(dir) == 0, "rmdir %s: %s", dir, strerror(errno));
}

static uint64_t allocated(int fd) {
        uint64_t n = UINT64_MAX;

        ck_assert_int_eq(tmpfile_allocated_bytes(fd, &n), 0);
        return n;
}

static int reopen(int fd, int flags) {
        char path[64];

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        return open(path, flags | O_CLOEXEC);
}

static int new_file(uint64_t size, bool prefault) {
        int fd = -1;

        ck_assert_int_eq(tmpfile_new(dir_fd, size, prefault, &fd), 0);
        ck_assert_int_ge(fd, 0);
        return fd;
}

/* ========================================================= allocator === */

START_TEST(test_sparse_without_prefault) {
        struct stat st;
        int fd = new_file(64 * MiB, false);

        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_int_eq(st.st_size, 64 * MiB);
        ck_assert_int_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(st.st_uid, geteuid());
        ck_assert_int_eq(st.st_nlink, 0);               /* no name anywhere */
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
        ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ck_assert_uint_eq(allocated(fd), 0);

        /* A write allocates only what it touches. */
        ck_assert_int_eq(pwrite(fd, "x", 1, (off_t) (32 * MiB)), 1);
        ck_assert_uint_gt(allocated(fd), 0);
        ck_assert_uint_le(allocated(fd), MiB);
        close(fd);
}
END_TEST

START_TEST(test_allocated_with_prefault) {
        const uint64_t size = 8 * MiB;
        uint8_t *p;
        int fd = new_file(size, true);

        ck_assert_uint_ge(allocated(fd), size);
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        ck_assert_int_eq(p[size - 1], 0);
        p[size - 1] = 0x5a;
        ck_assert_int_eq(munmap(p, size), 0);
        ck_assert_uint_ge(allocated(fd), size);
        close(fd);
}
END_TEST

START_TEST(test_reopen_rw_and_read_only) {
        const uint64_t size = page_size();
        uint8_t *p, *q, c = 0;
        int fd = new_file(size, false), rw, ro;

        rw = reopen(fd, O_RDWR);
        ck_assert_int_ge(rw, 0);
        ck_assert_int_eq(pwrite(rw, "hello", 5, 0), 5);
        p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        ck_assert_int_eq(memcmp(p, "hello", 5), 0);     /* one file, two opens */
        close(rw);

        ro = reopen(fd, O_RDONLY);
        ck_assert_int_ge(ro, 0);
        ck_assert_int_eq(fcntl(ro, F_GETFL) & O_ACCMODE, O_RDONLY);
        ck_assert_int_eq(pread(ro, &c, 1, 4), 1);
        ck_assert_int_eq(c, 'o');
        errno = 0;
        ck_assert_int_eq(pwrite(ro, "x", 1, 0), -1);
        ck_assert_int_eq(errno, EBADF);
        errno = 0;
        ck_assert_ptr_eq(mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0), MAP_FAILED);
        ck_assert_int_eq(errno, EACCES);
        ck_assert_int_ne(ftruncate(ro, 0), 0);
        errno = 0;
        ck_assert_int_eq(fallocate(ro, 0, 0, (off_t) size), -1);
        ck_assert_int_eq(errno, EBADF);
        /* A private writable mapping is the holder's own copy. */
        q = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0);
        ck_assert_ptr_ne(q, MAP_FAILED);
        q[0] = 'J';
        ck_assert_int_eq(p[0], 'h');
        munmap(q, size);
        munmap(p, size);
        close(ro);
        close(fd);
}
END_TEST

/* Without O_EXCL a holder could give the file a name and keep its blocks
 * past the buffer's end. */
START_TEST(test_never_linkable) {
        char path[64];
        int fd = new_file(page_size(), false), rw = -1;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        errno = 0;
        ck_assert_int_eq(linkat(AT_FDCWD, path, dir_fd, "named", AT_SYMLINK_FOLLOW), -1);
        ck_assert_int_eq(errno, ENOENT);
        rw = reopen(fd, O_RDWR);
        ck_assert_int_ge(rw, 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
        errno = 0;
        ck_assert_int_eq(linkat(AT_FDCWD, path, dir_fd, "named", AT_SYMLINK_FOLLOW), -1);
        ck_assert_int_eq(errno, ENOENT);
        errno = 0;
        ck_assert_int_eq(faccessat(dir_fd, "named", F_OK, 0), -1);
        ck_assert_int_eq(errno, ENOENT);
        close(rw);
        close(fd);
}
END_TEST

/* Not sealable: a writable holder can allocate blocks past the end
 * without changing the size (FALLOC_FL_KEEP_SIZE). A truncate to the same
 * size gives them back, which is what a size guard can do about it. */
START_TEST(test_blocks_past_end_given_back_by_truncate) {
        const uint64_t size = 64 * 1024;
        struct stat st;
        int fd = new_file(size, true);
        uint64_t before = allocated(fd);

        ck_assert_int_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t) size, (off_t) MiB), 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, size);
        ck_assert_uint_ge(allocated(fd), before + MiB);
        ck_assert_int_eq(ftruncate(fd, (off_t) size), 0);
        ck_assert_uint_eq(allocated(fd), before);
        close(fd);
}
END_TEST

/* The daemon's umask takes bits from the mode asked for; the file still
 * is 0600: the daemon itself must be able to reopen it. */
START_TEST(test_mode_despite_umask) {
        struct stat st;
        mode_t old = umask(0777);
        int fd = new_file(page_size(), false), rw;

        umask(old);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0600);
        rw = reopen(fd, O_RDWR);
        ck_assert_int_ge(rw, 0);
        close(rw);
        close(fd);
}
END_TEST

START_TEST(test_size_too_large) {
        const uint64_t sizes[] = { UINT64_MAX, UINT64_MAX - 4095, UINT64_C(1) << 63, (UINT64_C(1) << 63) - 4096 };
        int fds = count_fds();

        for (unsigned i = 0; i < ELEMENTSOF(sizes); i++) {
                int fd = -42, r;

                r = tmpfile_new(dir_fd, sizes[i], false, &fd);
                ck_assert_msg(r == -EFBIG || r == -EINVAL, "size %" PRIu64 ": %d", sizes[i], r);
                ck_assert_int_eq(fd, -42);      /* *ret_fd untouched on failure */
                r = tmpfile_new(dir_fd, sizes[i], true, &fd);
                ck_assert_msg(r < 0, "size %" PRIu64 " prefaulted", sizes[i]);
                ck_assert_int_eq(fd, -42);
        }
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_bad_dir_fd) {
        int fd = -42, fds = count_fds();

        ck_assert_int_eq(tmpfile_new(-1, page_size(), false, &fd), -EBADF);
        ck_assert_int_eq(fd, -42);
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ========================================================= directory === */

START_TEST(test_dir_open_fresh) {
        char sub[sizeof(dir) + 16];
        struct stat st;
        int fd, fds = count_fds();

        ck_assert(fcntl(dir_fd, F_GETFD) & FD_CLOEXEC);
        ck_assert_int_eq(fstat(dir_fd, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));

        /* Missing: made 0700 only when asked to. */
        snprintf(sub, sizeof(sub), "%s/files", dir);
        ck_assert_int_eq(tmpfile_dir_open(sub, false), -ENOENT);
        ck_assert_int_eq(count_fds(), fds);
        fd = tmpfile_dir_open(sub, true);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(stat(sub, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0700);
        close(fd);
        /* There already: taken as it is. */
        fd = tmpfile_dir_open(sub, true);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(rmdir(sub), 0);
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_dir_writable_by_others_refused) {
        static const mode_t modes[] = { 0777, 0770, 0730, 0702, 01777 };
        int fd, fds = count_fds();

        for (unsigned i = 0; i < ELEMENTSOF(modes); i++) {
                ck_assert_int_eq(chmod(dir, modes[i]), 0);
                ck_assert_msg(tmpfile_dir_open(dir, false) == -EPERM, "mode %04o taken", (unsigned) modes[i]);
                ck_assert_msg(tmpfile_dir_open(dir, true) == -EPERM, "mode %04o taken", (unsigned) modes[i]);
        }
        /* Readable by others is fine: there are no names to read. */
        ck_assert_int_eq(chmod(dir, 0755), 0);
        fd = tmpfile_dir_open(dir, false);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

START_TEST(test_dir_not_a_directory) {
        char file[sizeof(dir) + 16];
        int fd, fds = count_fds();

        snprintf(file, sizeof(file), "%s/plain", dir);
        fd = open(file, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(tmpfile_dir_open(file, false), -ENOTDIR);
        ck_assert_int_eq(tmpfile_dir_open(file, true), -ENOTDIR);
        ck_assert_int_eq(tmpfile_dir_open("", false), -ENOENT);
        ck_assert_int_eq(count_fds(), fds);
        ck_assert_int_eq(unlink(file), 0);
}
END_TEST

/* ============================================ private tmpfs (root) === */

/* Free bytes of the filesystem of @fd. */
static uint64_t free_bytes(int fd) {
        struct statfs s;

        ck_assert_int_eq(fstatfs(fd, &s), 0);
        return (uint64_t) s.f_bfree * (uint64_t) s.f_bsize;
}

START_TEST(test_space_freed_on_last_close) {
        const uint64_t size = 2 * MiB;
        uint64_t before = free_bytes(dir_fd);
        int fd = new_file(size, true), rw;

        ck_assert_uint_le(free_bytes(dir_fd), before - size);
        rw = reopen(fd, O_RDWR);
        ck_assert_int_ge(rw, 0);
        close(fd);
        /* Another description still open: the blocks stay. */
        ck_assert_uint_le(free_bytes(dir_fd), before - size);
        ck_assert_uint_ge(allocated(rw), size);
        close(rw);
        ck_assert_uint_eq(free_bytes(dir_fd), before);

        /* Written, not prefaulted: the same. */
        fd = new_file(size, false);
        ck_assert_uint_eq(free_bytes(dir_fd), before);
        for (uint64_t off = 0; off < size; off += page_size())
                ck_assert_int_eq(pwrite(fd, "y", 1, (off_t) off), 1);
        ck_assert_uint_le(free_bytes(dir_fd), before - size);
        close(fd);
        ck_assert_uint_eq(free_bytes(dir_fd), before);
}
END_TEST

START_TEST(test_prefault_no_space) {
        uint64_t before = free_bytes(dir_fd);
        int fd = -42, fds = count_fds();

        ck_assert_int_eq(tmpfile_new(dir_fd, 2 * TINY_FS_SIZE, true, &fd), -ENOSPC);
        ck_assert_int_eq(fd, -42);
        ck_assert_int_eq(count_fds(), fds);
        /* What the failed fallocate got went back with the file. */
        ck_assert_uint_eq(free_bytes(dir_fd), before);
}
END_TEST

/* Sparse, a file may be larger than its filesystem: only writes need room. */
START_TEST(test_sparse_larger_than_filesystem) {
        int fd = new_file(64 * TINY_FS_SIZE, false);
        struct stat st;

        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, 64 * TINY_FS_SIZE);
        ck_assert_uint_eq(allocated(fd), 0);
        close(fd);
}
END_TEST

START_TEST(test_dir_of_another_uid_refused) {
        int fds = count_fds();

        ck_assert_int_eq(chown(dir, 65534, 65534), 0);
        ck_assert_int_eq(tmpfile_dir_open(dir, false), -EPERM);
        ck_assert_int_eq(tmpfile_dir_open(dir, true), -EPERM);
        ck_assert_int_eq(count_fds(), fds);
        ck_assert_int_eq(chown(dir, geteuid(), getegid()), 0);
}
END_TEST

/* =============================================== no O_TMPFILE (root) === */

START_TEST(test_filesystem_without_tmpfile) {
        int fd = -42, fds = count_fds();

        /* The mount point itself is the directory: bpf makes no subdirectories. */
        ck_assert_int_eq(tmpfile_dir_open(base, false), -EOPNOTSUPP);
        ck_assert_int_eq(count_fds(), fds);

        /* And one opened anyway (say, the filesystem changed under it). */
        dir_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dir_fd, 0);
        ck_assert_int_eq(tmpfile_new(dir_fd, page_size(), false, &fd), -EOPNOTSUPP);
        ck_assert_int_eq(fd, -42);
        dir_fd = safe_close(dir_fd);
        ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* ====================================================== preconditions === */

static int pick_base(const char **why) {
        static char msg[512];
        const char *t = getenv("TMPDIR");
        int d, fd;

        snprintf(base, sizeof(base), "%s", t && t[0] ? t : "/var/tmp");
        d = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d < 0) {
                snprintf(msg, sizeof(msg), "cannot open %s: %s", base, strerror(errno));
                *why = msg;
                return 1;
        }
        fd = openat(d, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
                snprintf(msg, sizeof(msg), "the filesystem of %s makes no O_TMPFILE files (set TMPDIR)", base);
                *why = msg;
                close(d);
                return 77;
        }
        close(d);
        if (fd < 0) {
                snprintf(msg, sizeof(msg), "O_TMPFILE in %s: %s", base, strerror(errno));
                *why = msg;
                return 1;
        }
        close(fd);
        return 0;
}

/* Root, a mount namespace of our own (the forked tests inherit it) and
 * @fstype mounted with @opts on a fresh directory, which becomes base. */
static int private_mount(const char *fstype, const char *opts, const char **why) {
        static char msg[256];

        if (geteuid() != 0) {
                *why = "not root: cannot mount a filesystem of our own";
                return 77;
        }
        if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0) {
                snprintf(msg, sizeof(msg), "no private mount namespace: %s", strerror(errno));
                *why = msg;
                return 77;
        }
        snprintf(base, sizeof(base), "/tmp/test-tmpfile-XXXXXX");
        if (!mkdtemp(base)) {
                snprintf(msg, sizeof(msg), "mkdtemp: %s", strerror(errno));
                *why = msg;
                return 1;
        }
        if (mount(fstype, base, fstype, MS_NOSUID | MS_NODEV, opts) < 0) {
                snprintf(msg, sizeof(msg), "cannot mount %s: %s", fstype, strerror(errno));
                *why = msg;
                (void) rmdir(base);
                return 77;
        }
        return 0;
}

static void private_unmount(void) {
        (void) umount2(base, MNT_DETACH);
        (void) rmdir(base);
}

static int need_private_tmpfs(const char **why) {
        return private_mount("tmpfs", "size=4m,mode=0700", why);
}

static int need_bpf_fs(const char **why) {
        return private_mount("bpf", "mode=0700", why);
}

static void add_default(Suite *s) {
        TCase *tc = tcase_new("allocator");

        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_add_test(tc, test_sparse_without_prefault);
        tcase_add_test(tc, test_allocated_with_prefault);
        tcase_add_test(tc, test_reopen_rw_and_read_only);
        tcase_add_test(tc, test_never_linkable);
        tcase_add_test(tc, test_blocks_past_end_given_back_by_truncate);
        tcase_add_test(tc, test_mode_despite_umask);
        tcase_add_test(tc, test_size_too_large);
        tcase_add_test(tc, test_bad_dir_fd);
        suite_add_tcase(s, tc);

        tc = tcase_new("directory");
        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_add_test(tc, test_dir_open_fresh);
        tcase_add_test(tc, test_dir_writable_by_others_refused);
        tcase_add_test(tc, test_dir_not_a_directory);
        suite_add_tcase(s, tc);
}

static void add_private_tmpfs(Suite *s) {
        TCase *tc = tcase_new("private tmpfs");

        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_add_test(tc, test_space_freed_on_last_close);
        tcase_add_test(tc, test_prefault_no_space);
        tcase_add_test(tc, test_sparse_larger_than_filesystem);
        tcase_add_test(tc, test_blocks_past_end_given_back_by_truncate);
        tcase_add_test(tc, test_dir_of_another_uid_refused);
        suite_add_tcase(s, tc);
}

static void add_no_tmpfile_fs(Suite *s) {
        TCase *tc = tcase_new("no O_TMPFILE");

        tcase_add_test(tc, test_filesystem_without_tmpfile);
        suite_add_tcase(s, tc);
}

int main(int argc, char *argv[]) {
        const struct {
                const char *name;
                int (*precondition)(const char **why);
                void (*add)(Suite *s);
                bool unmount;
        } modes[] = {
                { "default", pick_base, add_default, false },
                { "private-tmpfs", need_private_tmpfs, add_private_tmpfs, true },
                { "no-tmpfile-fs", need_bpf_fs, add_no_tmpfile_fs, true },
        };
        const char *mode = argc > 1 ? argv[1] : "default", *why = "";

        for (unsigned i = 0; argc <= 2 && i < ELEMENTSOF(modes); i++) {
                SRunner *sr;
                Suite *s;
                int failed, r;

                if (strcmp(mode, modes[i].name) != 0)
                        continue;
                r = modes[i].precondition(&why);
                if (r == 77) {
                        printf("SKIPPED: %s: %s\n", mode, why);
                        return 77;
                }
                if (r != 0) {
                        printf("FAILED: %s: precondition probe: %s\n", mode, why);
                        return EXIT_FAILURE;
                }
                s = suite_create("tmpfile");
                modes[i].add(s);
                sr = srunner_create(s);
                srunner_run_all(sr, CK_NORMAL);
                failed = srunner_ntests_failed(sr);
                srunner_free(sr);
                if (modes[i].unmount)
                        private_unmount();
                return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        }
        fprintf(stderr, "usage: %s [default|private-tmpfs|no-tmpfile-fs]\n", argv[0]);
        return 2;
}
