/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sysv allocator. SysV permissions are three fields: the creator (cuid, set
 * by shmget(2) and fixed for the segment's life), the owner (uid, gid) and a
 * mode. The kernel lets the creator and the owner change the owner and the
 * mode (IPC_SET) and remove the segment (IPC_RMID), and gives both the
 * owner's permission bits for attaching. So the daemon creates the segment
 * and hands the owner uid to the buffer's owner: no capability is needed,
 * the daemon keeps its rights through cuid, and the segment names exactly
 * one uid besides the daemon's (which is why a sysv buffer cannot be shared
 * with another uid).
 *
 * IPC_STAT needs read permission, which the owner can take away from the
 * daemon (IPC_SET mode 0); /proc/sysvipc/shm shows every segment of the IPC
 * namespace without a permission check, and is where the daemon looks then.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "macro.h"
#include "shm-sysv.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define WHY_SHMMAX "larger than the kernel allows for one segment (sysctl kernel.shmmax)"
#define WHY_SHMALL "the kernel's limit on the pages of all segments is reached (sysctl kernel.shmall)"
#define WHY_SHMMNI "the kernel's limit on the number of segments is reached (sysctl kernel.shmmni)"
#define WHY_MEMORY "not enough memory"

static void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

/* One row of /proc/sysvipc/shm: the columns the daemon reads. */
typedef struct ShmRow {
        uint64_t size;
        uint64_t nattch;
        uid_t uid;
        uid_t cuid;
        uint64_t rss;                   /* bytes */
} ShmRow;

/* One data line of /proc/sysvipc/shm: its shmid and the columns we read. */
static int proc_parse(const char *line, int *ret_id, ShmRow *ret) {
        unsigned long long size, nattch, rss;
        unsigned uid, gid, cuid;
        unsigned perms, cpid, lpid;
        int key;

        if (sscanf(line, "%d %d %o %llu %u %u %llu %u %u %u %*s %*s %*s %*s %llu", &key, ret_id, &perms, &size,
                   &cpid, &lpid, &nattch, &uid, &gid, &cuid, &rss) != 11)
                return -EIO;
        *ret = (ShmRow) { .size = size, .nattch = nattch, .uid = uid, .cuid = cuid, .rss = rss };
        return 0;
}

static FILE *proc_open(void) {
        char line[512];
        FILE *f;

        f = fopen("/proc/sysvipc/shm", "re");
        if (!f)
                return NULL;
        /* The first line is the header. */
        if (!fgets(line, sizeof(line), f)) {
                fclose(f);
                errno = EIO;
                return NULL;
        }
        return f;
}

static int proc_row(int shmid, ShmRow *ret) {
        _cleanup_(fclosep) FILE *f = NULL;
        char line[512];

        f = proc_open();
        if (!f)
                return negative_errno();
        while (fgets(line, sizeof(line), f)) {
                int id;

                if (proc_parse(line, &id, ret) < 0)
                        return -EIO;
                if (id == shmid)
                        return 0;
        }
        return -EIDRM;
}

/* The segment as IPC_STAT or, when the owner took the daemon's read
 * permission, /proc says. -EIDRM: no such segment (any more). */
static int stat_segment(int shmid, ShmRow *ret) {
        struct shmid_ds ds;

        if (shmctl(shmid, IPC_STAT, &ds) < 0) {
                if (errno == EINVAL || errno == EIDRM)
                        return -EIDRM;
                if (errno == EACCES)
                        return proc_row(shmid, ret);
                return negative_errno();
        }
        *ret = (ShmRow) {
                .size = ds.shm_segsz,
                .nattch = ds.shm_nattch,
                .uid = ds.shm_perm.uid,
                .cuid = ds.shm_perm.cuid,
        };
        return 0;
}

/* Which limit a shmget() that failed with @error ran into. */
static int new_errno(int error, const char **ret_why) {
        struct shm_info info;
        struct shminfo limits;
        const char *why;

        switch (error) {
        case EINVAL:
                /* With IPC_PRIVATE and a size > 0 the only reason left. */
                why = WHY_SHMMAX;
                break;
        case ENOSPC:
                /* Either no id left or no page left in the total; SHM_INFO
                 * and IPC_INFO need no permission. */
                if (shmctl(0, SHM_INFO, (struct shmid_ds *) &info) >= 0 &&
                    shmctl(0, IPC_INFO, (struct shmid_ds *) &limits) >= 0 &&
                    (unsigned long) info.used_ids >= limits.shmmni)
                        why = WHY_SHMMNI;
                else
                        why = WHY_SHMALL;
                break;
        case ENOMEM:
                /* The kernel's commit accounting (vm.overcommit_memory)
                 * refused the segment's memory. */
                why = WHY_MEMORY;
                break;
        default:
                return -error;
        }
        if (ret_why)
                *ret_why = why;
        return -ENOSPC;
}

int shm_sysv_new(const ShmSysvRequest *req, int *ret_shmid, const char **ret_why) {
        int shmid, r;

        if (req->size == 0)
                return -EINVAL;
        if ((uint64_t) (size_t) req->size != req->size)
                return new_errno(EINVAL, ret_why);

        shmid = shmget(IPC_PRIVATE, (size_t) req->size, IPC_CREAT | IPC_EXCL | 0600);
        if (shmid < 0)
                return new_errno(errno, ret_why);
        /* A copy read before would not have it. */
        shm_sysv_resident_forget();

        /* Before the owner changes: mode 0400 would refuse the daemon's own
         * read-write attachment. */
        if (req->prefault) {
                r = shm_sysv_prefault(shmid, req->size);
                if (r == -ENOSPC && ret_why)
                        *ret_why = WHY_MEMORY;
                if (r < 0)
                        goto fail;
        }

        r = shm_sysv_set_owner(shmid, req->owner_uid, req->read_only);
        if (r < 0)
                goto fail;

        *ret_shmid = shmid;
        return 0;

fail:
        (void) shmctl(shmid, IPC_RMID, NULL);
        return r;
}

int shm_sysv_prefault(int shmid, uint64_t size) {
        uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE);
        void *p;
        int r = 0;

        if (size == 0 || (uint64_t) (size_t) size != size)
                return -EINVAL;
        p = shmat(shmid, NULL, 0);
        if (p == (void *) -1)
                return errno == ENOMEM ? -ENOSPC : negative_errno();

        if (madvise(p, (size_t) size, MADV_POPULATE_WRITE) < 0) {
                if (errno == EINVAL) {
                        /* Before Linux 5.14: a write fault per page does the
                         * same, but shows a lack of memory as SIGBUS or the
                         * OOM killer instead of an error. */
                        for (uint64_t off = 0; off < size; off += page) {
                                volatile char *c = (volatile char *) p + off;
                                *c = *c;
                        }
                } else
                        /* EFAULT: a fault would have been SIGBUS, no page. */
                        r = errno == ENOMEM || errno == EFAULT ? -ENOSPC : negative_errno();
        }

        (void) shmdt(p);
        return r;
}

int shm_sysv_set_owner(int shmid, uid_t owner_uid, bool read_only) {
        struct shmid_ds ds = {};

        /* IPC_SET takes just these three from @ds. */
        ds.shm_perm.uid = owner_uid;
        ds.shm_perm.gid = getegid();
        ds.shm_perm.mode = read_only ? 0400 : 0600;
        if (shmctl(shmid, IPC_SET, &ds) < 0)
                return errno == EINVAL || errno == EIDRM ? -EIDRM : negative_errno();
        return 0;
}

int shm_sysv_attachments(int shmid) {
        ShmRow row;
        int r;

        r = stat_segment(shmid, &row);
        if (r < 0)
                return r;
        return row.nattch > INT32_MAX ? INT32_MAX : (int) row.nattch;
}

int shm_sysv_verify(int shmid, uid_t owner_uid, uint64_t size) {
        ShmRow row;
        int r;

        if (shmid < 0)
                return -EIDRM;
        r = stat_segment(shmid, &row);
        if (r < 0)
                return r;
        if (row.cuid != geteuid() || row.uid != owner_uid || row.size != size)
                return -EPERM;
        return 0;
}

int shm_sysv_remove(int shmid) {
        if (shmctl(shmid, IPC_RMID, NULL) < 0)
                return errno == EINVAL || errno == EIDRM ? 0 : negative_errno();
        return 0;
}

/* Where /proc/sysvipc is hidden (the unit's ProcSubset=pid): attach it
 * read-only for a moment and ask mincore() which pages are in memory. The
 * daemon may: it created the segment. Its attachment is gone again before
 * anything counts attachments (the daemon is single-threaded). */
static uint64_t resident_by_mincore(int shmid) {
        _cleanup_free_ unsigned char *vec = NULL;
        struct shmid_ds ds;
        uint64_t page = (uint64_t) sysconf(_SC_PAGESIZE), pages, n = 0;
        void *p;

        if (shmctl(shmid, IPC_STAT, &ds) < 0 || ds.shm_segsz == 0)
                return 0;
        pages = (ds.shm_segsz + page - 1) / page;
        vec = malloc(pages);
        if (!vec)
                return 0;
        p = shmat(shmid, NULL, SHM_RDONLY);
        if (p == (void *) -1)
                return 0;
        if (mincore(p, ds.shm_segsz, vec) == 0)
                for (uint64_t i = 0; i < pages; i++)
                        n += vec[i] & 1;
        (void) shmdt(p);
        return n * page;
}

uint64_t shm_sysv_resident_bytes(int shmid) {
        ShmRow row;
        int r = proc_row(shmid, &row);

        if (r == -EIDRM)
                return 0;
        if (r < 0)
                return resident_by_mincore(shmid);
        return row.rss;
}

/* The rss column of every segment, by shmid, as one read of
 * /proc/sysvipc/shm found it (NULL: not read since it was forgotten). */
typedef struct Resident {
        int shmid;
        uint64_t rss;
} Resident;
static Resident *resident;
static size_t n_resident;

static int resident_compare(const void *a, const void *b) {
        int x = ((const Resident *) a)->shmid, y = ((const Resident *) b)->shmid;
        return x < y ? -1 : x > y;
}

static int resident_read(void) {
        _cleanup_(fclosep) FILE *f = NULL;
        size_t allocated = 0;
        char line[512];

        f = proc_open();
        if (!f)
                return negative_errno();
        while (fgets(line, sizeof(line), f)) {
                ShmRow row;
                int id;

                if (proc_parse(line, &id, &row) < 0)
                        return -EIO;
                if (n_resident == allocated) {
                        size_t more = allocated ? 2 * allocated : 64;
                        Resident *r = reallocarray(resident, more, sizeof(Resident));

                        if (!r)
                                return -ENOMEM;
                        resident = r;
                        allocated = more;
                }
                resident[n_resident++] = (Resident) { .shmid = id, .rss = row.rss };
        }
        qsort(resident, n_resident, sizeof(Resident), resident_compare);
        return 0;
}

uint64_t shm_sysv_resident_bytes_cached(int shmid) {
        Resident key = { .shmid = shmid }, *found;

        if (!resident) {
                n_resident = 0;
                if (resident_read() < 0) {
                        shm_sysv_resident_forget();
                        return resident_by_mincore(shmid);
                }
        }
        found = n_resident ? bsearch(&key, resident, n_resident, sizeof(Resident), resident_compare) : NULL;
        return found ? found->rss : 0;
}

void shm_sysv_resident_forget(void) {
        free(resident);
        resident = NULL;
        n_resident = 0;
}

int shm_sysv_foreach_created(void (*fn)(int shmid, void *userdata), void *userdata) {
        struct shm_info info;
        int max;

        max = shmctl(0, SHM_INFO, (struct shmid_ds *) &info);
        if (max < 0)
                return negative_errno();
        for (int i = 0; i <= max; i++) {
                struct shmid_ds ds;
                int shmid = shmctl(i, SHM_STAT, &ds);

                /* Free slots, and segments we may not read (not ours). */
                if (shmid < 0 || ds.shm_perm.cuid != geteuid())
                        continue;
                fn(shmid, userdata);
        }
        return 0;
}
