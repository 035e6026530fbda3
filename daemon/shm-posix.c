/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * POSIX shared memory objects. shm_open() is an open(2) of a file in the
 * tmpfs at /dev/shm, a directory every user can list (sticky, mode 1777): the
 * name is 128 random bits so that nobody can guess or squat it (O_EXCL, a new
 * name on EEXIST), and the mode is 0600 so that nobody but the daemon's uid
 * opens it by that name. The daemon runs without capabilities and cannot
 * chown the file to the requester; as the file's owner it can give other
 * uids access through a POSIX ACL (tmpfs supports them with
 * CONFIG_TMPFS_POSIX_ACL). The ACL is written as the raw extended attribute
 * "system.posix_acl_access" (no libacl): a version 2 header, then entries
 * sorted by tag and, for USER entries, by uid, as the kernel insists:
 *      USER_OBJ rw, USER <uid> rw or r ..., GROUP_OBJ ---, MASK rw, OTHER ---
 * GROUP_OBJ stays empty and the mask never exceeds rw: the daemon's group
 * gets nothing and no entry grants execute. The kernel turns the ACL into the
 * file's mode too (0660: the group bits show the mask).
 *
 * Unlike a memfd the file cannot be sealed, so anyone with write access can
 * truncate or grow it; lease.c puts the size back (the size guard).
 */
#include <dirent.h>
#include <endian.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "macro.h"
#include "shm-posix.h"

#define ACL_XATTR "system.posix_acl_access"
#define ACL_XATTR_VERSION 2u
#define ACL_UNDEFINED_ID UINT32_MAX

/* Entry tags and permission bits of the xattr format (include/uapi/linux/
 * posix_acl.h, posix_acl_xattr.h: not in every distribution's headers). */
enum {
        ACL_TAG_USER_OBJ = 0x01,
        ACL_TAG_USER = 0x02,
        ACL_TAG_GROUP_OBJ = 0x04,
        ACL_TAG_GROUP = 0x08,
        ACL_TAG_MASK = 0x10,
        ACL_TAG_OTHER = 0x20,
};
enum {
        ACL_PERM_READ = 0x04,
        ACL_PERM_WRITE = 0x02,
};

#define ACL_HEADER_SIZE 4u
#define ACL_ENTRY_SIZE 8u

/* Creating: a taken name is a 2^-128 chance; a few tries say "someone
 * is squatting" apart from bad luck without looping forever. */
#define NAME_ATTEMPTS 8

typedef struct AclUser {
        uint32_t uid;
        uint16_t perm;
} AclUser;

bool shm_posix_name_valid(const char *name) {
        const size_t prefix = sizeof(SHM_POSIX_PREFIX) - 1;

        if (!name || strlen(name) != SHM_POSIX_NAME_LEN || strncmp(name, SHM_POSIX_PREFIX, prefix) != 0)
                return false;
        for (const char *p = name + prefix; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

static int random_name(char ret[SHM_POSIX_NAME_LEN + 1]) {
        static const char hex[] = "0123456789abcdef";
        uint8_t bytes[16];
        size_t have = 0;
        char *p;

        while (have < sizeof(bytes)) {
                ssize_t n = getrandom(bytes + have, sizeof(bytes) - have, 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                have += (size_t) n;
        }

        p = stpcpy(ret, SHM_POSIX_PREFIX);
        for (size_t i = 0; i < sizeof(bytes); i++) {
                *p++ = hex[bytes[i] >> 4];
                *p++ = hex[bytes[i] & 0xf];
        }
        *p = 0;
        return 0;
}

int shm_posix_new(uint64_t size, bool prefault, char **ret_name, int *ret_fd) {
        char name[SHM_POSIX_NAME_LEN + 1];
        _cleanup_close_ int fd = -1;
        char *copy;
        int r;

        if ((uint64_t) (off_t) size != size || (off_t) size < 0)
                return -EFBIG;

        for (unsigned attempt = 0; fd < 0; attempt++) {
                if (attempt == NAME_ATTEMPTS)
                        return -EEXIST;
                r = random_name(name);
                if (r < 0)
                        return r;
                fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd < 0 && errno != EEXIST)
                        return negative_errno();
        }

        /* From here on a failure unlinks the name again. The umask may have
         * taken bits from 0600 (the daemon's own reopens need them) and
         * can add none. */
        if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t) size) < 0) {
                r = negative_errno();
                goto fail;
        }
        /* ENOSPC: the tmpfs is full (its size= limit); ENOMEM: the memory
         * cgroup's limit. Either way the memory is not there. */
        if (prefault && fallocate(fd, 0, 0, (off_t) size) < 0) {
                r = errno == ENOMEM || errno == ENOSPC ? -ENOSPC : negative_errno();
                goto fail;
        }

        copy = strdup(name);
        if (!copy) {
                r = -ENOMEM;
                goto fail;
        }
        *ret_name = copy;
        *ret_fd = TAKE_FD(fd);
        return 0;

fail:
        (void) shm_unlink(name);
        return r;
}

/* The USER entries of @fd's access ACL, in the order stored (sorted by uid:
 * the kernel refuses anything else); none when it has no ACL. */
static int acl_read_users(int fd, AclUser **ret, size_t *ret_n) {
        _cleanup_free_ uint8_t *raw = NULL;
        _cleanup_free_ AclUser *users = NULL;
        size_t n_users = 0, count;
        ssize_t size;
        uint32_t version;

        for (;;) {
                size = fgetxattr(fd, ACL_XATTR, NULL, 0);
                if (size < 0) {
                        if (errno == ENODATA) {
                                *ret = NULL;
                                *ret_n = 0;
                                return 0;
                        }
                        return errno == ENOTSUP ? -EOPNOTSUPP : negative_errno();
                }
                free(raw);
                raw = malloc(size > 0 ? (size_t) size : 1);
                if (!raw)
                        return -ENOMEM;
                size = fgetxattr(fd, ACL_XATTR, raw, (size_t) size);
                if (size >= 0)
                        break;
                /* ERANGE: it grew in between; ask for its size again. */
                if (errno != ERANGE)
                        return negative_errno();
        }

        if ((size_t) size < ACL_HEADER_SIZE || ((size_t) size - ACL_HEADER_SIZE) % ACL_ENTRY_SIZE != 0)
                return -EBADMSG;
        memcpy(&version, raw, sizeof(version));
        if (le32toh(version) != ACL_XATTR_VERSION)
                return -EBADMSG;
        count = ((size_t) size - ACL_HEADER_SIZE) / ACL_ENTRY_SIZE;
        users = calloc(count > 0 ? count : 1, sizeof(AclUser));
        if (!users)
                return -ENOMEM;
        for (size_t i = 0; i < count; i++) {
                const uint8_t *e = raw + ACL_HEADER_SIZE + i * ACL_ENTRY_SIZE;
                uint16_t tag, perm;
                uint32_t id;

                memcpy(&tag, e, 2);
                memcpy(&perm, e + 2, 2);
                memcpy(&id, e + 4, 4);
                if (le16toh(tag) == ACL_TAG_USER)
                        users[n_users++] = (AclUser) { .uid = le32toh(id), .perm = le16toh(perm) };
        }

        *ret = TAKE_PTR(users);
        *ret_n = n_users;
        return 0;
}

static uint8_t *acl_put(uint8_t *p, uint16_t tag, uint16_t perm, uint32_t id) {
        uint16_t t = htole16(tag), m = htole16(perm);
        uint32_t i = htole32(id);

        memcpy(p, &t, 2);
        memcpy(p + 2, &m, 2);
        memcpy(p + 4, &i, 4);
        return p + ACL_ENTRY_SIZE;
}

static int acl_write(int fd, const AclUser *users, size_t n_users) {
        _cleanup_free_ uint8_t *raw = NULL;
        uint32_t version = htole32(ACL_XATTR_VERSION);
        size_t size = ACL_HEADER_SIZE + (n_users + 4) * ACL_ENTRY_SIZE;
        uint8_t *p;

        raw = malloc(size);
        if (!raw)
                return -ENOMEM;
        memcpy(raw, &version, sizeof(version));
        p = raw + ACL_HEADER_SIZE;
        p = acl_put(p, ACL_TAG_USER_OBJ, ACL_PERM_READ | ACL_PERM_WRITE, ACL_UNDEFINED_ID);
        for (size_t i = 0; i < n_users; i++)
                p = acl_put(p, ACL_TAG_USER, users[i].perm, users[i].uid);
        p = acl_put(p, ACL_TAG_GROUP_OBJ, 0, ACL_UNDEFINED_ID);
        p = acl_put(p, ACL_TAG_MASK, ACL_PERM_READ | ACL_PERM_WRITE, ACL_UNDEFINED_ID);
        (void) acl_put(p, ACL_TAG_OTHER, 0, ACL_UNDEFINED_ID);

        if (fsetxattr(fd, ACL_XATTR, raw, size, 0) < 0)
                /* E2BIG/ENOSPC: more entries than the file system keeps. */
                return errno == ENOTSUP ? -EOPNOTSUPP : negative_errno();
        return 0;
}

int shm_posix_grant(int fd, uid_t uid, bool writable) {
        _cleanup_free_ AclUser *users = NULL;
        uint16_t want = ACL_PERM_READ | (writable ? ACL_PERM_WRITE : 0);
        size_t n = 0, at;
        struct stat st;
        AclUser *grown;
        int r;

        /* (uid_t) -1 is no uid: in an ACL it would be ACL_UNDEFINED_ID. */
        if (uid == (uid_t) -1)
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (uid == st.st_uid)
                return 0;       /* USER_OBJ: rw already */

        r = acl_read_users(fd, &users, &n);
        if (r < 0)
                return r;

        for (at = 0; at < n && users[at].uid < uid; at++)
                ;
        if (at < n && users[at].uid == uid) {
                if ((users[at].perm & want) == want)
                        return 0;
                users[at].perm |= want;
                return acl_write(fd, users, n);
        }

        grown = realloc(users, (n + 1) * sizeof(AclUser));
        if (!grown)
                return -ENOMEM;
        users = grown;
        memmove(users + at + 1, users + at, (n - at) * sizeof(AclUser));
        users[at] = (AclUser) { .uid = uid, .perm = want };
        return acl_write(fd, users, n + 1);
}

int shm_posix_granted(int fd, uid_t uid) {
        _cleanup_free_ AclUser *users = NULL;
        size_t n = 0;
        int r;

        r = acl_read_users(fd, &users, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (users[i].uid == uid)
                        return (users[i].perm & ACL_PERM_READ ? R_OK : 0) |
                               (users[i].perm & ACL_PERM_WRITE ? W_OK : 0);
        return 0;
}

int shm_posix_names_fd(const char *name, int fd) {
        struct stat by_name, by_fd;
        char path[sizeof("/dev/shm") + SHM_POSIX_NAME_LEN];

        if (!shm_posix_name_valid(name))
                return -EINVAL;
        if (fstat(fd, &by_fd) < 0)
                return negative_errno();
        /* Where glibc's shm_open() looks; stat, not open: no lease break. */
        snprintf(path, sizeof(path), "/dev/shm%s", name);
        if (stat(path, &by_name) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        return by_name.st_dev == by_fd.st_dev && by_name.st_ino == by_fd.st_ino;
}

int shm_posix_unlink(const char *name) {
        if (!shm_posix_name_valid(name))
                return -EINVAL;
        if (shm_unlink(name) < 0)
                return negative_errno();
        return 0;
}

int shm_posix_foreach_own(void (*fn)(const char *name, void *userdata), void *userdata) {
        DIR *d = opendir("/dev/shm");
        struct dirent *de;

        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                char name[SHM_POSIX_NAME_LEN + 2];
                struct stat st;

                if (snprintf(name, sizeof(name), "/%s", de->d_name) >= (int) sizeof(name) ||
                    !shm_posix_name_valid(name))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
                    st.st_uid != geteuid())
                        continue;
                fn(name, userdata);
        }
        closedir(d);
        return 0;
}
