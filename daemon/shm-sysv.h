/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The sysv allocator: System V shared memory segments (shmget(2)) for the
 * programs that can only attach a segment by its id (MIT-SHM, older IPC
 * code). The daemon creates each segment and stays its creator (cuid), which
 * keeps it the right to change and remove it; the segment's owner (uid) is
 * the buffer's owner, the only uid besides the daemon's that may attach.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ShmSysvRequest {
        uint64_t size;                  /* bytes, > 0 */
        uid_t owner_uid;                /* gets the owner permission bits */
        bool read_only;                 /* mode 0400 instead of 0600 */
        bool prefault;                  /* every page allocated before return */
} ShmSysvRequest;

/* A new private segment of @req->size bytes owned by @req->owner_uid (group:
 * the daemon's, mode 0600, 0400 when read-only), its pages allocated first
 * with @req->prefault. -ENOSPC when a kernel limit or the memory is not
 * there: then *ret_why (may be NULL) names it, a static string such as
 * "kernel.shmmax". *ret_shmid untouched on failure (nothing left behind). */
int shm_sysv_new(const ShmSysvRequest *req, int *ret_shmid, const char **ret_why);

/* Allocate every page of the segment now (attached read-write for it,
 * detached again): -ENOSPC when the memory is not there. */
int shm_sysv_prefault(int shmid, uint64_t size);

/* Owner uid, the daemon's gid and mode 0600 (0400 when @read_only). The
 * daemon may do this as the segment's creator even with no capabilities,
 * whoever owns it now. */
int shm_sysv_set_owner(int shmid, uid_t owner_uid, bool read_only);

/* How many attachments the segment has now (shm_nattch); -EIDRM when it is
 * gone (removed, or never was). */
int shm_sysv_attachments(int shmid);

/* Whether @shmid still is the segment the daemon made for a buffer of
 * @owner_uid and @size bytes (across a restart): created by this uid, owned
 * by @owner_uid, exactly @size bytes. 0: yes; -EIDRM: no such segment;
 * -EPERM: someone else's, or changed. */
int shm_sysv_verify(int shmid, uid_t owner_uid, uint64_t size);

/* Mark the segment for removal (IPC_RMID): it goes when its last attachment
 * does; processes attached keep their mapping. A segment that is gone
 * already is not an error. */
int shm_sysv_remove(int shmid);

/* The segment's resident bytes now (the rss column of /proc/sysvipc/shm);
 * 0 when it cannot be read. */
uint64_t shm_sysv_resident_bytes(int shmid);

/* The same from one read of /proc/sysvipc/shm for all segments, kept until
 * shm_sysv_resident_forget() (or a new segment): a file that lists every
 * segment of the system is read once for a listing of many buffers, not
 * once for each. */
uint64_t shm_sysv_resident_bytes_cached(int shmid);
void shm_sysv_resident_forget(void);

/* Call @fn for every segment this process's uid created (cuid), whoever
 * owns it now: SHM_STAT over the kernel's table (no /proc/sysvipc, which
 * ProcSubset=pid hides). */
int shm_sysv_foreach_created(void (*fn)(int shmid, void *userdata), void *userdata);
