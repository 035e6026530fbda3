/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Access checks for another process's credentials (see access.h).
 *
 * The inode check is the kernel's generic_permission() without
 * capabilities: the owner gets the owner bits and nothing else; anyone else
 * goes through the POSIX access ACL if there is one, else the group bits if
 * in the owning group, else the other bits.
 *
 * The path walk resolves one component at a time with O_PATH|O_NOFOLLOW
 * opens, checks search permission on each directory before looking a name up
 * in it, and splices symlink targets into what is left of the path, so the
 * directories checked are exactly the ones the kernel would look names up in
 * for the caller, and the fd returned is the inode those checks led to (a
 * rename between check and use cannot swap in another one).
 */
#include <endian.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "access.h"
#include "macro.h"

/* The xattr form of a POSIX ACL (linux/posix_acl_xattr.h): a little-endian
 * header { u32 version }, then entries { u16 tag, u16 perm, u32 id }. */
#define ACL_XATTR_NAME "system.posix_acl_access"
#define ACL_XATTR_VERSION 2
#define ACL_HEADER_SIZE 4
#define ACL_ENTRY_SIZE 8
#define ACL_USER_OBJ 0x01
#define ACL_USER 0x02
#define ACL_GROUP_OBJ 0x04
#define ACL_GROUP 0x08
#define ACL_MASK 0x10
#define ACL_OTHER 0x20

/* The kernel's MAXSYMLINKS: symlinks followed in one lookup. */
#define FOLLOW_MAX 40

static bool in_groups(const AccessCreds *c, gid_t gid) {
        for (size_t i = 0; i < c->n_groups; i++)
                if (c->groups[i] == gid)
                        return true;
        return false;
}

static uint16_t get_le16(const uint8_t *p) {
        uint16_t v;

        memcpy(&v, p, sizeof(v));
        return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p) {
        uint32_t v;

        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

/* The kernel's posix_acl_permission() for someone who is not the owner (the
 * owner was decided on the mode bits, which mirror ACL_USER_OBJ). Entries are
 * not assumed to be in order: a named user entry wins over the groups, a
 * group entry (owning or named) that grants @want is limited by the mask, a
 * matching group that does not grant means no, and "other" is for those no
 * entry matched. 1 yes, 0 no, -EINVAL malformed. */
static int acl_permission(const uint8_t *acl, size_t size, const struct stat *st, const AccessCreds *c,
                          int want) {
        bool user_obj = false, group_obj = false, named = false, group_matched = false, group_grants = false;
        int user = -1, mask = -1, other = -1;

        if (size < ACL_HEADER_SIZE || (size - ACL_HEADER_SIZE) % ACL_ENTRY_SIZE != 0 ||
            get_le32(acl) != ACL_XATTR_VERSION)
                return -EINVAL;

        for (size_t i = ACL_HEADER_SIZE; i < size; i += ACL_ENTRY_SIZE) {
                uint16_t tag = get_le16(acl + i);
                int perm = get_le16(acl + i + 2) & 7;
                uint32_t id = get_le32(acl + i + 4);

                switch (tag) {
                case ACL_USER_OBJ:
                        user_obj = true;
                        break;
                case ACL_USER:
                        named = true;
                        if (id == (uint32_t) c->uid)
                                user = perm;
                        break;
                case ACL_GROUP_OBJ:
                case ACL_GROUP:
                        if (tag == ACL_GROUP_OBJ)
                                group_obj = true;
                        else
                                named = true;
                        if (in_groups(c, tag == ACL_GROUP_OBJ ? st->st_gid : (gid_t) id)) {
                                group_matched = true;
                                if ((perm & want) == want)
                                        group_grants = true;
                        }
                        break;
                case ACL_MASK:
                        mask = perm;
                        break;
                case ACL_OTHER:
                        other = perm;
                        break;
                default:
                        return -EINVAL;
                }
        }
        /* What the kernel would never have stored. */
        if (!user_obj || !group_obj || other < 0 || (named && mask < 0))
                return -EINVAL;
        if (mask < 0)
                mask = 7;

        if (user >= 0)
                return (user & mask & want) == want;
        if (group_grants)
                return (mask & want) == want;
        if (group_matched)
                return 0;
        return (other & want) == want;
}

/* The access ACL of the inode behind @fd: 1 and a malloc()ed copy, 0 if it
 * has none (or the file system knows no ACLs). fgetxattr() refuses O_PATH
 * fds; the /proc/self/fd link reaches the inode all the same. */
static int read_acl(int fd, uint8_t **ret, size_t *ret_size) {
        char path[sizeof("/proc/self/fd/") + 12];

        snprintf(path, sizeof(path), "/proc/self/fd/%i", fd);
        /* The ACL may change between asking its size and reading it. */
        for (unsigned attempt = 0; attempt < 3; attempt++) {
                _cleanup_free_ uint8_t *buf = NULL;
                ssize_t n;

                n = getxattr(path, ACL_XATTR_NAME, NULL, 0);
                if (n < 0)
                        return errno == ENODATA || errno == EOPNOTSUPP ? 0 : negative_errno();
                if (n == 0)
                        return -EINVAL;
                buf = malloc((size_t) n);
                if (!buf)
                        return -ENOMEM;
                n = getxattr(path, ACL_XATTR_NAME, buf, (size_t) n);
                if (n < 0 && errno == ERANGE)
                        continue;
                if (n < 0)
                        return errno == ENODATA ? 0 : negative_errno();
                *ret = TAKE_PTR(buf);
                *ret_size = (size_t) n;
                return 1;
        }
        return -EAGAIN;
}

int access_inode(int fd, const AccessCreds *c, int mask) {
        struct stat st;

        mask &= ACCESS_READ | ACCESS_WRITE | ACCESS_EXEC;
        if (fstat(fd, &st) < 0)
                return negative_errno();

        /* CAP_DAC_OVERRIDE (for executing a file it wants some x bit, but
         * nothing here asks to execute files). */
        if (c->uid == 0)
                return 1;

        if (st.st_uid == c->uid)
                return ((int) (st.st_mode >> 6) & mask) == mask;

        /* Like the kernel, consult the ACL only when the group bits (its
         * mask, when it has one) grant something: with none, every named
         * entry is masked to nothing and the mode bits decide. */
        if (st.st_mode & S_IRWXG) {
                _cleanup_free_ uint8_t *acl = NULL;
                size_t size = 0;
                int r;

                r = read_acl(fd, &acl, &size);
                if (r < 0)
                        return r;
                if (r > 0)
                        return acl_permission(acl, size, &st, c, mask);
        }

        if (in_groups(c, st.st_gid))
                return ((int) (st.st_mode >> 3) & mask) == mask;
        return ((int) st.st_mode & mask) == mask;
}

/* fs.protected_symlinks: in a sticky world-writable directory (/tmp), a
 * symlink is followed only by its owner, or if the directory's owner owns it
 * too. Applied whatever the sysctl says (systemd turns it on everywhere):
 * refusing more than the kernel would is safe here, following a planted link
 * is not. It binds root as well. */
static bool may_follow(const struct stat *dir, const struct stat *link, const AccessCreds *c) {
        return link->st_uid == c->uid || (dir->st_mode & (S_ISVTX | S_IWOTH)) != (S_ISVTX | S_IWOTH) ||
               link->st_uid == dir->st_uid;
}

static int open_root(void) {
        int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? negative_errno() : fd;
}

int access_open_path(const char *path, const AccessCreds *c, int *ret_fd) {
        _cleanup_free_ char *buf = NULL;        /* what is left to resolve */
        _cleanup_close_ int cur = -1;           /* the directory reached so far */
        unsigned n_follow = 0;
        char *rest;

        if (!path || path[0] != '/')
                return -EINVAL;
        if (strlen(path) >= PATH_MAX)
                return -ENAMETOOLONG;
        buf = strdup(path);
        if (!buf)
                return -ENOMEM;
        cur = open_root();
        if (cur < 0)
                return cur;

        for (rest = buf;;) {
                _cleanup_close_ int next = -1;
                struct stat st;
                char *name;
                bool more;
                int r;

                rest += strspn(rest, "/");
                if (!*rest)
                        break;
                name = rest;
                rest += strcspn(rest, "/");
                /* A slash after the name, even a trailing one, means it must
                 * be a directory. */
                more = *rest == '/';
                if (more)
                        *rest++ = 0;
                if (strlen(name) > NAME_MAX)
                        return -ENAMETOOLONG;

                /* Every name looked up takes search permission on the
                 * directory it is looked up in, "." and ".." included. */
                r = access_inode(cur, c, ACCESS_EXEC);
                if (r < 0)
                        return r;
                if (r == 0)
                        return -EACCES;
                if (strcmp(name, ".") == 0)
                        continue;

                /* ".." from an fd is its parent, across mounts as a path
                 * lookup would go; at the root it stays there. */
                next = openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0)
                        return negative_errno();
                if (fstat(next, &st) < 0)
                        return negative_errno();

                if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX], *joined = NULL;
                        struct stat dir;
                        ssize_t n;

                        if (++n_follow > FOLLOW_MAX)
                                return -ELOOP;
                        if (fstat(cur, &dir) < 0)
                                return negative_errno();
                        if (!may_follow(&dir, &st, c))
                                return -EACCES;
                        n = readlinkat(next, "", target, sizeof(target));
                        if (n < 0)
                                return negative_errno();
                        if ((size_t) n >= sizeof(target))
                                return -ENAMETOOLONG;
                        if (n == 0)
                                return -ENOENT;
                        target[n] = 0;

                        /* The target takes the link's place in the rest of
                         * the path (a /proc magic link is taken by its text,
                         * which can only refuse more than the kernel). */
                        if (asprintf(&joined, "%s%s%s", target, more ? "/" : "", more ? rest : "") < 0)
                                return -ENOMEM;
                        free(buf);
                        buf = joined;
                        rest = buf;
                        if (strlen(buf) >= PATH_MAX)
                                return -ENAMETOOLONG;
                        if (target[0] == '/') {
                                /* Close first: the walk never holds more than
                                 * two fds, so running out of them does not
                                 * depend on what the path is. */
                                next = safe_close(next);
                                cur = safe_close(cur);
                                cur = open_root();
                                if (cur < 0)
                                        return cur;
                        }
                        continue;
                }

                if (more && !S_ISDIR(st.st_mode))
                        return -ENOTDIR;
                safe_close(cur);
                cur = TAKE_FD(next);
        }

        *ret_fd = TAKE_FD(cur);
        return 0;
}
