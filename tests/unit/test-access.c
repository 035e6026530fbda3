/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of daemon/access.c: could a process with these credentials open
 * this path read-write? Files and directories are made as root with
 * chown/chmod and real POSIX ACLs (the system.posix_acl_access xattr, written
 * in its binary form), then asked about for several uids and group sets.
 *
 * Every expected answer is also put to the kernel: a child process takes the
 * credentials (setgroups, setresgid, setresuid) and open()s the path. So the
 * table is not only what we believe the rules are, it is what the running
 * kernel does. Needs root (exit 77 otherwise).
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "access.h"
#include "macro.h"

#define UID_OWNER ((uid_t) 1000001)
#define UID_MEMBER ((uid_t) 1000002)    /* in GID_G */
#define UID_NAMED ((uid_t) 1000003)     /* has ACL user entries */
#define UID_OTHER ((uid_t) 1000004)
#define GID_G ((gid_t) 2000001)         /* the files' owning group */
#define GID_NAMED ((gid_t) 2000002)     /* has ACL group entries */
#define GID_NONE ((gid_t) 2000003)      /* everybody's primary group */

static const gid_t groups_none[] = { GID_NONE };
static const gid_t groups_g[] = { GID_NONE, GID_G };
static const gid_t groups_named[] = { GID_NONE, GID_NAMED };
static const gid_t groups_both[] = { GID_NONE, GID_G, GID_NAMED };

#define CREDS(u, g) (&(AccessCreds) { .uid = (u), .groups = (g), .n_groups = ELEMENTSOF(g) })
#define OWNER CREDS(UID_OWNER, groups_none)
#define MEMBER CREDS(UID_MEMBER, groups_g)
#define NAMED CREDS(UID_NAMED, groups_none)
#define NAMED_GROUP CREDS(UID_OTHER, groups_named)
#define BOTH_GROUPS CREDS(UID_OTHER, groups_both)
#define OTHER CREDS(UID_OTHER, groups_none)
#define ROOT (&(AccessCreds) { .uid = 0 })

static char dir[64];

/* ---------------------------------------------------------------- setup --- */

static void setup(void) {
        snprintf(dir, sizeof(dir), "/tmp/bb-access-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_int_eq(chmod(dir, 0755), 0);
}

static void teardown(void) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}

static const char *at(const char *name) {
        static char buf[4][256];
        static unsigned k;
        char *p = buf[k++ % ELEMENTSOF(buf)];

        snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
        return p;
}

static void own(const char *path, uid_t uid, gid_t gid, mode_t mode) {
        ck_assert_msg(lchown(path, uid, gid) == 0, "chown %s: %s", path, strerror(errno));
        ck_assert_msg(chmod(path, mode) == 0, "chmod %s: %s", path, strerror(errno));
}

static void mkfile(const char *name, uid_t uid, gid_t gid, mode_t mode) {
        int fd = open(at(name), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);

        ck_assert_msg(fd >= 0, "create %s: %s", at(name), strerror(errno));
        close(fd);
        own(at(name), uid, gid, mode);
}

static void mkdir_as(const char *name, uid_t uid, gid_t gid, mode_t mode) {
        ck_assert_msg(mkdir(at(name), 0700) == 0, "mkdir %s: %s", at(name), strerror(errno));
        own(at(name), uid, gid, mode);
}

/* ACL entries as setfacl would store them: the binary xattr form. */
#define A_USER_OBJ 0x01
#define A_USER 0x02
#define A_GROUP_OBJ 0x04
#define A_GROUP 0x08
#define A_MASK 0x10
#define A_OTHER 0x20
#define NO_ID UINT32_MAX

typedef struct AclEntry {
        uint16_t tag, perm;
        uint32_t id;
} AclEntry;

/* Entries must be given in the kernel's order (it refuses others). The
 * mode's group bits become the mask, as chmod keeps them in step. */
static void set_acl(const char *path, const AclEntry *e, size_t n) {
        uint8_t buf[4 + 8 * 16];
        uint32_t v32 = htole32(2);
        size_t size = 4;

        ck_assert_uint_le(n, 16);
        memcpy(buf, &v32, 4);
        for (size_t i = 0; i < n; i++, size += 8) {
                uint16_t tag = htole16(e[i].tag), perm = htole16(e[i].perm);
                uint32_t id = htole32(e[i].id);

                memcpy(buf + size, &tag, 2);
                memcpy(buf + size + 2, &perm, 2);
                memcpy(buf + size + 4, &id, 4);
        }
        ck_assert_msg(setxattr(path, "system.posix_acl_access", buf, size, 0) == 0, "setxattr %s: %s", path,
                      strerror(errno));
}
#define SET_ACL(path, ...) set_acl((path), (const AclEntry[]) { __VA_ARGS__ }, \
                                   sizeof((const AclEntry[]) { __VA_ARGS__ }) / sizeof(AclEntry))

/* ------------------------------------------------------------- the oracle --- */

/* What the kernel says: a child with @c's credentials opens @path with
 * @flags. 1 opened, 0 EACCES, -errno otherwise. */
static int kernel_open(const char *path, const AccessCreds *c, int flags) {
        int p[2], r = -EIO;
        pid_t pid;

        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                gid_t gid = c->n_groups > 0 ? c->groups[0] : 0;
                int fd, res;

                if (setgroups(c->n_groups, c->groups) < 0 || setresgid(gid, gid, gid) < 0 ||
                    setresuid(c->uid, c->uid, c->uid) < 0)
                        res = -1000 - errno;
                else {
                        fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                        res = fd >= 0 ? 1 : errno == EACCES ? 0 : -errno;
                }
                _exit(write(p[1], &res, sizeof(res)) == sizeof(res) ? 0 : 1);
        }
        close(p[1]);
        ck_assert_int_eq(read(p[0], &r, sizeof(r)), (ssize_t) sizeof(r));
        close(p[0]);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        return r;
}

/* Our answer for read-write: 1 yes, 0 no, -errno if the path is unresolved. */
static int ours(const char *path, const AccessCreds *c) {
        int fd = -1, r;

        r = access_open_path(path, c, &fd);
        if (r == -EACCES)
                return 0;
        if (r < 0)
                return r;
        ck_assert_int_ge(fd, 0);
        r = access_inode(fd, c, ACCESS_READ | ACCESS_WRITE);
        close(fd);
        return r;
}

/* Assert our answer and the kernel's for read-write on @path. */
#define expect_rw(path, c, want) expect_rw_at(__LINE__, (path), (c), #c, (want))
static void expect_rw_at(int line, const char *path, const AccessCreds *c, const char *who, int want) {
        int got = ours(path, c), k = kernel_open(path, c, O_RDWR);

        ck_assert_msg(got == want, "line %d: %s (uid %u) read-write on %s: access.c says %d, expected %d", line,
                      who, (unsigned) c->uid, path, got, want);
        ck_assert_msg(k == want, "line %d: %s (uid %u) read-write on %s: the kernel says %d, the test expected %d",
                      line, who, (unsigned) c->uid, path, k, want);
}

/* The same for one mode of access to the inode alone (no walk). */
#define expect_inode(path, c, mask, want) expect_inode_at(__LINE__, (path), (c), #c, (mask), (want))
static void expect_inode_at(int line, const char *path, const AccessCreds *c, const char *who, int mask, int want) {
        int fd = open(path, O_PATH | O_CLOEXEC), got, k;
        int flags = (mask & ACCESS_READ) && (mask & ACCESS_WRITE) ? O_RDWR : mask & ACCESS_WRITE ? O_WRONLY : O_RDONLY;

        ck_assert_int_ge(fd, 0);
        got = access_inode(fd, c, mask);
        close(fd);
        k = kernel_open(path, c, flags);
        ck_assert_msg(got == want, "line %d: %s mask %d on %s: access.c says %d, expected %d", line, who, mask, path,
                      got, want);
        ck_assert_msg(k == want, "line %d: %s mask %d on %s: the kernel says %d, the test expected %d", line, who,
                      mask, path, k, want);
}

/* ------------------------------------------------------------ mode bits --- */

START_TEST(test_owner_group_other) {
        mkfile("f0640", UID_OWNER, GID_G, 0640);
        expect_rw(at("f0640"), OWNER, 1);
        expect_rw(at("f0640"), MEMBER, 0);
        expect_inode(at("f0640"), MEMBER, ACCESS_READ, 1);
        expect_rw(at("f0640"), OTHER, 0);
        expect_inode(at("f0640"), OTHER, ACCESS_READ, 0);

        mkfile("f0660", UID_OWNER, GID_G, 0660);
        expect_rw(at("f0660"), MEMBER, 1);
        expect_rw(at("f0660"), BOTH_GROUPS, 1);
        expect_rw(at("f0660"), OTHER, 0);
        expect_rw(at("f0660"), NAMED_GROUP, 0);

        mkfile("f0666", UID_OWNER, GID_G, 0666);
        expect_rw(at("f0666"), OTHER, 1);
}
END_TEST

START_TEST(test_owner_gets_owner_bits_only) {
        /* The owner class is exclusive: what group and other may do does
         * not help the owner, and a group that may not does not fall back
         * to other. */
        mkfile("f0066", UID_OWNER, GID_G, 0066);
        expect_rw(at("f0066"), OWNER, 0);
        expect_rw(at("f0066"), MEMBER, 1);

        mkfile("f0606", UID_OWNER, GID_G, 0606);
        expect_rw(at("f0606"), MEMBER, 0);
        expect_rw(at("f0606"), OTHER, 1);
}
END_TEST

START_TEST(test_root) {
        mkfile("f0000", UID_OWNER, GID_G, 0000);
        mkdir_as("d0000", UID_OWNER, GID_G, 0000);
        mkfile("d0000/f", UID_OWNER, GID_G, 0000);
        expect_rw(at("f0000"), ROOT, 1);
        expect_rw(at("d0000/f"), ROOT, 1);
        expect_rw(at("d0000/f"), OWNER, 0);
        /* root without any group list at all */
        ck_assert_int_eq(ours(at("d0000/f"), &(AccessCreds) { .uid = 0, .groups = NULL, .n_groups = 0 }), 1);
}
END_TEST

/* ----------------------------------------------------------------- ACLs --- */

START_TEST(test_acl_named_user) {
        /* What logind's uaccess does to /dev/video*: root:video 0660 and
         * one user entry for the seat's user. */
        mkfile("uaccess", 0, GID_G, 0660);
        SET_ACL(at("uaccess"),
                { A_USER_OBJ, 6, NO_ID }, { A_USER, 6, UID_NAMED }, { A_GROUP_OBJ, 6, NO_ID },
                { A_MASK, 6, NO_ID }, { A_OTHER, 0, NO_ID });
        expect_rw(at("uaccess"), NAMED, 1);
        expect_rw(at("uaccess"), MEMBER, 1);
        expect_rw(at("uaccess"), OTHER, 0);

        /* a user entry for read only */
        mkfile("ro", UID_OWNER, GID_G, 0640);
        SET_ACL(at("ro"),
                { A_USER_OBJ, 6, NO_ID }, { A_USER, 4, UID_NAMED }, { A_GROUP_OBJ, 4, NO_ID },
                { A_MASK, 4, NO_ID }, { A_OTHER, 0, NO_ID });
        expect_rw(at("ro"), NAMED, 0);
        expect_inode(at("ro"), NAMED, ACCESS_READ, 1);

        /* a user entry with nothing beats "other" that grants */
        mkfile("none", UID_OWNER, GID_G, 0666);
        SET_ACL(at("none"),
                { A_USER_OBJ, 6, NO_ID }, { A_USER, 0, UID_NAMED }, { A_GROUP_OBJ, 6, NO_ID },
                { A_MASK, 6, NO_ID }, { A_OTHER, 6, NO_ID });
        expect_rw(at("none"), NAMED, 0);
        expect_rw(at("none"), OTHER, 1);
}
END_TEST

START_TEST(test_acl_named_group) {
        mkfile("g", UID_OWNER, GID_G, 0660);
        SET_ACL(at("g"),
                { A_USER_OBJ, 6, NO_ID }, { A_GROUP_OBJ, 0, NO_ID }, { A_GROUP, 6, GID_NAMED },
                { A_MASK, 6, NO_ID }, { A_OTHER, 0, NO_ID });
        expect_rw(at("g"), NAMED_GROUP, 1);
        /* the owning group has no rights any more: the mode's group bits
         * are the mask, not the owning group's entry */
        expect_rw(at("g"), MEMBER, 0);
        /* in both: any group entry that grants wins */
        expect_rw(at("g"), BOTH_GROUPS, 1);
        expect_rw(at("g"), OTHER, 0);

        /* a matching group that does not grant denies, even when other
         * would grant */
        mkfile("g-deny", UID_OWNER, GID_G, 0666);
        SET_ACL(at("g-deny"),
                { A_USER_OBJ, 6, NO_ID }, { A_GROUP_OBJ, 6, NO_ID }, { A_GROUP, 4, GID_NAMED },
                { A_MASK, 6, NO_ID }, { A_OTHER, 6, NO_ID });
        expect_rw(at("g-deny"), NAMED_GROUP, 0);
        expect_inode(at("g-deny"), NAMED_GROUP, ACCESS_READ, 1);
        expect_rw(at("g-deny"), OTHER, 1);
        expect_rw(at("g-deny"), BOTH_GROUPS, 1);
}
END_TEST

START_TEST(test_acl_mask) {
        /* The mask limits named users, the owning group and named groups;
         * not the owner, not other. */
        mkfile("m", UID_OWNER, GID_G, 0646);
        SET_ACL(at("m"),
                { A_USER_OBJ, 6, NO_ID }, { A_USER, 6, UID_NAMED }, { A_GROUP_OBJ, 6, NO_ID },
                { A_GROUP, 6, GID_NAMED }, { A_MASK, 4, NO_ID }, { A_OTHER, 6, NO_ID });
        expect_rw(at("m"), NAMED, 0);
        expect_inode(at("m"), NAMED, ACCESS_READ, 1);
        expect_rw(at("m"), MEMBER, 0);
        expect_rw(at("m"), NAMED_GROUP, 0);
        expect_rw(at("m"), OWNER, 1);
        expect_rw(at("m"), OTHER, 1);

        /* A mask of nothing: the kernel does not look at the ACL at all
         * then, and a named user is judged as "other". */
        mkfile("m0", UID_OWNER, GID_G, 0606);
        SET_ACL(at("m0"),
                { A_USER_OBJ, 6, NO_ID }, { A_USER, 6, UID_NAMED }, { A_GROUP_OBJ, 6, NO_ID },
                { A_MASK, 0, NO_ID }, { A_OTHER, 6, NO_ID });
        expect_rw(at("m0"), NAMED, 1);
        expect_rw(at("m0"), MEMBER, 0);

        /* chmod moves the mask: g-rw takes the named user's rights away */
        mkfile("chmod", UID_OWNER, GID_G, 0660);
        SET_ACL(at("chmod"),
                { A_USER_OBJ, 6, NO_ID }, { A_USER, 6, UID_NAMED }, { A_GROUP_OBJ, 6, NO_ID },
                { A_MASK, 6, NO_ID }, { A_OTHER, 0, NO_ID });
        expect_rw(at("chmod"), NAMED, 1);
        ck_assert_int_eq(chmod(at("chmod"), 0610), 0);
        expect_rw(at("chmod"), NAMED, 0);
}
END_TEST

START_TEST(test_acl_without_named_entries) {
        /* An ACL with only the three base entries is the mode: the kernel
         * stores none. A mask alone still counts. */
        mkfile("base", UID_OWNER, GID_G, 0660);
        SET_ACL(at("base"), { A_USER_OBJ, 6, NO_ID }, { A_GROUP_OBJ, 6, NO_ID }, { A_OTHER, 0, NO_ID });
        expect_rw(at("base"), MEMBER, 1);
        expect_rw(at("base"), OTHER, 0);

        mkfile("masked", UID_OWNER, GID_G, 0660);
        SET_ACL(at("masked"),
                { A_USER_OBJ, 6, NO_ID }, { A_GROUP_OBJ, 6, NO_ID }, { A_MASK, 4, NO_ID }, { A_OTHER, 0, NO_ID });
        expect_rw(at("masked"), MEMBER, 0);
        expect_inode(at("masked"), MEMBER, ACCESS_READ, 1);
}
END_TEST

/* -------------------------------------------------------------- the walk --- */

START_TEST(test_directory_without_search) {
        mkdir_as("closed", UID_OWNER, GID_G, 0750);
        mkfile("closed/f", UID_OWNER, GID_G, 0666);
        expect_rw(at("closed/f"), OWNER, 1);
        expect_rw(at("closed/f"), MEMBER, 1);
        expect_rw(at("closed/f"), OTHER, 0);

        /* read and write on a directory without x are no way through */
        mkdir_as("rw-only", UID_OWNER, GID_G, 0776);
        mkfile("rw-only/f", UID_OWNER, GID_G, 0666);
        expect_rw(at("rw-only/f"), OTHER, 0);
        expect_rw(at("rw-only/f"), MEMBER, 1);

        /* deeper: the middle directory is the closed one */
        mkdir_as("a", UID_OWNER, GID_G, 0755);
        mkdir_as("a/b", UID_OWNER, GID_G, 0700);
        mkdir_as("a/b/c", UID_OWNER, GID_G, 0777);
        mkfile("a/b/c/f", UID_OWNER, GID_G, 0666);
        expect_rw(at("a/b/c/f"), OTHER, 0);
        expect_rw(at("a/b/c/f"), OWNER, 1);

        /* search permission through an ACL entry */
        mkdir_as("acl-dir", UID_OWNER, GID_G, 0710);
        SET_ACL(at("acl-dir"),
                { A_USER_OBJ, 7, NO_ID }, { A_USER, 1, UID_NAMED }, { A_GROUP_OBJ, 0, NO_ID },
                { A_MASK, 1, NO_ID }, { A_OTHER, 0, NO_ID });
        mkfile("acl-dir/f", UID_OWNER, GID_G, 0666);
        expect_rw(at("acl-dir/f"), NAMED, 1);
        expect_rw(at("acl-dir/f"), MEMBER, 0);
        expect_rw(at("acl-dir/f"), OTHER, 0);

        /* even "." and ".." need search permission where they are looked up */
        mkfile("f", UID_OWNER, GID_G, 0666);
        expect_rw(at("closed/../f"), OTHER, 0);
        expect_rw(at("closed/../f"), MEMBER, 1);
        expect_rw(at("a/./f"), OTHER, -ENOENT);
}
END_TEST

START_TEST(test_symlinks) {
        struct stat st1, st2;
        int fd = -1;

        mkdir_as("open", UID_OWNER, GID_G, 0755);
        mkdir_as("secret", UID_OWNER, GID_G, 0700);
        mkfile("secret/dev", UID_OWNER, GID_G, 0666);
        mkfile("open/dev", UID_OWNER, GID_G, 0666);
        ck_assert_int_eq(symlink(at("secret/dev"), at("open/abs-link")), 0);
        ck_assert_int_eq(symlink("../secret/dev", at("open/rel-link")), 0);
        ck_assert_int_eq(symlink("dev", at("open/same-dir-link")), 0);
        /* a link to the directory, then the file through it */
        ck_assert_int_eq(symlink("../secret", at("open/dir-link")), 0);

        /* the link is in an open directory, its target's directory is not
         * searchable: refused, whichever way the link is written */
        expect_rw(at("open/abs-link"), OTHER, 0);
        expect_rw(at("open/rel-link"), OTHER, 0);
        expect_rw(at("open/dir-link/dev"), OTHER, 0);
        expect_rw(at("open/abs-link"), OWNER, 1);
        expect_rw(at("open/dir-link/dev"), OWNER, 1);
        expect_rw(at("open/same-dir-link"), OTHER, 1);

        /* the fd is the target, not the link */
        ck_assert_int_eq(access_open_path(at("open/rel-link"), OWNER, &fd), 0);
        ck_assert_int_eq(fstat(fd, &st1), 0);
        close(fd);
        ck_assert_int_eq(stat(at("secret/dev"), &st2), 0);
        ck_assert(st1.st_ino == st2.st_ino && st1.st_dev == st2.st_dev);

        /* a link chain, the last one relative to its own directory */
        ck_assert_int_eq(symlink(at("open/rel-link"), at("chain")), 0);
        expect_rw(at("chain"), OTHER, 0);
        expect_rw(at("chain"), OWNER, 1);
}
END_TEST

START_TEST(test_unresolved_paths) {
        int fd = -1;

        mkfile("f", UID_OWNER, GID_G, 0666);
        ck_assert_int_eq(symlink("loop-b", at("loop-a")), 0);
        ck_assert_int_eq(symlink("loop-a", at("loop-b")), 0);

        ck_assert_int_eq(access_open_path(at("missing"), ROOT, &fd), -ENOENT);
        ck_assert_int_eq(access_open_path(at("f/x"), ROOT, &fd), -ENOTDIR);
        ck_assert_int_eq(access_open_path(at("f/"), ROOT, &fd), -ENOTDIR);
        ck_assert_int_eq(access_open_path(at("loop-a"), ROOT, &fd), -ELOOP);
        ck_assert_int_eq(access_open_path("relative/path", ROOT, &fd), -EINVAL);
        ck_assert_int_eq(fd, -1);

        /* A missing file behind a closed directory is refused, not missing:
         * the caller must not learn what is there. */
        mkdir_as("closed", UID_OWNER, GID_G, 0700);
        ck_assert_int_eq(access_open_path(at("closed/missing"), OTHER, &fd), -EACCES);
        ck_assert_int_eq(access_open_path(at("closed/missing"), OWNER, &fd), -ENOENT);

        /* slashes: doubled and trailing ones on a directory are fine */
        ck_assert_int_eq(access_open_path(at("//f"), OTHER, &fd), 0);
        close(fd);
        ck_assert_int_eq(access_open_path("/", OTHER, &fd), 0);
        close(fd);
}
END_TEST

START_TEST(test_protected_symlinks) {
        /* A link planted by someone else in a sticky world-writable
         * directory is not followed, whatever fs.protected_symlinks says
         * on this machine (no kernel oracle here). */
        int fd = -1;

        mkdir_as("sticky", 0, 0, 01777);
        mkfile("target", UID_OWNER, GID_G, 0666);
        ck_assert_int_eq(symlink(at("target"), at("sticky/by-other")), 0);
        ck_assert_int_eq(lchown(at("sticky/by-other"), UID_NAMED, UID_NAMED), 0);
        ck_assert_int_eq(access_open_path(at("sticky/by-other"), OTHER, &fd), -EACCES);
        /* its owner may follow it, and so may anyone a link by the
         * directory's owner */
        ck_assert_int_eq(access_open_path(at("sticky/by-other"), NAMED, &fd), 0);
        close(fd);
        ck_assert_int_eq(symlink(at("target"), at("sticky/by-root")), 0);
        ck_assert_int_eq(access_open_path(at("sticky/by-root"), OTHER, &fd), 0);
        close(fd);
}
END_TEST

static TCase *access_tcase(const char *name) {
        TCase *tc = tcase_create(name);

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        return tc;
}

static Suite *suite_access(void) {
        Suite *s = suite_create("access");
        TCase *tc;

        tc = access_tcase("mode bits");
        tcase_add_test(tc, test_owner_group_other);
        tcase_add_test(tc, test_owner_gets_owner_bits_only);
        tcase_add_test(tc, test_root);
        suite_add_tcase(s, tc);

        tc = access_tcase("ACLs");
        tcase_add_test(tc, test_acl_named_user);
        tcase_add_test(tc, test_acl_named_group);
        tcase_add_test(tc, test_acl_mask);
        tcase_add_test(tc, test_acl_without_named_entries);
        suite_add_tcase(s, tc);

        tc = access_tcase("walk");
        tcase_add_test(tc, test_directory_without_search);
        tcase_add_test(tc, test_symlinks);
        tcase_add_test(tc, test_unresolved_paths);
        tcase_add_test(tc, test_protected_symlinks);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr;
        int failed;

        if (geteuid() != 0) {
                fprintf(stderr, "test-access needs root (chown, and set*id for the kernel's own answers)\n");
                return 77;
        }
        sr = srunner_create(suite_access());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
