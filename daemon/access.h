/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Could another process open this path? The daemon opens devices on behalf
 * of its callers, with its own credentials (group video). Before it does, it
 * asks whether the caller could have opened the same path itself: search
 * permission on every directory on the way, then the permissions of the
 * inode, from owner, group, mode bits and the POSIX access ACL (which is how
 * logind's "uaccess" gives the seat's user /dev/video*).
 *
 * The answers follow the kernel's rules for access(2) and open(2), with one
 * simplification: of the capabilities only uid 0's CAP_DAC_OVERRIDE is
 * modelled (uid 0 may do anything); other capabilities of the caller are
 * not known and count for nothing.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#define ACCESS_EXEC 1                   /* search, on a directory */
#define ACCESS_WRITE 2
#define ACCESS_READ 4

typedef struct AccessCreds {
        uid_t uid;
        const gid_t *groups;            /* all of them, the primary one included */
        size_t n_groups;
} AccessCreds;

/* May @creds access the inode behind @fd (any fd, an O_PATH one too) for
 * everything in @mask (ACCESS_*)? 1 yes, 0 no; negative errno when it cannot
 * be told (an unreadable or malformed ACL). */
int access_inode(int fd, const AccessCreds *creds, int mask);

/* Resolve the absolute @path component by component, as the kernel would for
 * @creds, and return an O_PATH fd of the inode it leads to (symlinks
 * followed, at the end too). Every directory a name is looked up in must
 * grant @creds search permission, the directories a symlink's target passes
 * through included; symlinks in sticky world-writable directories are
 * followed only as fs.protected_symlinks allows. The target's own
 * permissions are not checked (access_inode()). Returns 0, -EACCES when
 * @creds may not get there, or the errno of what the daemon cannot resolve
 * (-ENOENT, -ENOTDIR, -ELOOP, -ENAMETOOLONG, -EMFILE...). */
int access_open_path(const char *path, const AccessCreds *creds, int *ret_fd);
