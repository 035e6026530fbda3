/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * POSIX shared memory objects (kind "posix"): a file under /dev/shm with an
 * unguessable name that programs attach with shm_open(name), opened by
 * nobody but the daemon's uid and the uids it grants access to by a POSIX
 * ACL entry.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* "/bufbroker-" and 32 hex digits (128 random bits): the name as
 * shm_open() takes it, with its leading '/'. */
#define SHM_POSIX_PREFIX "/bufbroker-"
#define SHM_POSIX_NAME_LEN (sizeof(SHM_POSIX_PREFIX) - 1 + 32)

/* Is @name one that shm_posix_new() makes? The daemon unlinks only those:
 * a name read back from the state journal is checked before it is trusted. */
bool shm_posix_name_valid(const char *name);

/* Create a new object of exactly @size bytes (sparse, or with every page
 * allocated when @prefault), mode 0600, owned by the daemon's uid and open
 * to nobody else yet. On success *ret_name is its malloc()ed name and
 * *ret_fd an O_RDWR|O_CLOEXEC descriptor; on failure both are untouched and
 * nothing is left under /dev/shm. Errors: -EFBIG (size beyond off_t),
 * -ENOSPC (prefault: not enough memory, or the tmpfs is full), -EEXIST
 * (every random name taken: should never happen), others from the kernel. */
int shm_posix_new(uint64_t size, bool prefault, char **ret_name, int *ret_fd);

/* Let @uid open the object of @fd by name: read-write, or read-only
 * (O_RDONLY) unless @writable. Adds a USER entry to the file's access ACL,
 * keeping the ones there: a uid already granted as much or more is left
 * alone (rights only grow); the file owner's own uid needs nothing.
 * -EOPNOTSUPP when the file system takes no POSIX ACLs. */
int shm_posix_grant(int fd, uid_t uid, bool writable);

/* The access @uid has by an ACL entry of @fd's file: 0 none, else R_OK
 * and/or W_OK (for tests and logging; the owner's own uid is not listed). */
int shm_posix_granted(int fd, uid_t uid);

/* Does @name still name the file of @fd (1), or another file or none (0)?
 * Across a restart the name may have been removed (RemoveIPC=, an admin)
 * and even made again by someone who knew it: the daemon then keeps the
 * fd but neither hands the name out nor unlinks it. */
int shm_posix_names_fd(const char *name, int fd);

/* Remove @name from /dev/shm (the memory goes when its last descriptor and
 * mapping do). -EINVAL for a name shm_posix_new() would not make; -ENOENT
 * when it is gone already. */
int shm_posix_unlink(const char *name);

/* Call @fn for every name of ours in /dev/shm (shm_posix_name_valid(), a
 * regular file owned by this process's uid), as shm_open() takes it. */
int shm_posix_foreach_own(void (*fn)(const char *name, void *userdata), void *userdata);
