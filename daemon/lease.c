/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "The fd is the lease": a memfd buffer stays held while an open file
 * description of it is alive, and its holds go when the last one is gone,
 * without a bus message. See broker.h for the rules; this is how the daemon
 * knows.
 *
 * Which descriptions are alive: the kernel counts, for each inode, the open
 * descriptions made by open(2) that can write (i_writecount) and those that
 * can only read (i_readcount). A description lives while an fd, a mapping
 * (a mapping keeps its description) or an SCM_RIGHTS message in flight
 * refers to it, in any process; dup(), fork() and fd passing share it; O_PATH
 * ones do not count. A write lease (F_SETLEASE F_WRLCK) is granted only when
 * the only counted description is the caller's own: so taking one on the
 * daemon's plane fd, and dropping it at once, asks "is any description of
 * this buffer alive but mine?" and the kernel answers exactly, at that
 * instant. It cannot be misled by the daemon's own transient descriptions
 * (the reopen that gives each holder its own description, an O_RDONLY reopen
 * for a read-only share, one that a failed reply closes again): the daemon
 * is single-threaded and asks only between them, when each one it made is
 * either closed or handed out (in a reply: in flight counts). The fd store's
 * copy of the plane fd is the daemon's own description, shared. The plane fd
 * is a reopened description for this (memfd.c): memfd_create()'s own is not
 * counted among the writers.
 *
 * When to ask: one inotify instance, one watch per memfd buffer on its
 * inode, for IN_CLOSE_WRITE|IN_CLOSE_NOWRITE, which the kernel queues when
 * the last reference to a description of the inode goes. The events do not
 * say which description closed, and inotify merges an event into an
 * identical one still queued, so they are not counted: each is only a reason
 * to ask, after the queue has been read. A close that happens after an ask
 * queues an event of its own (or merges into one not read yet), so the last
 * close is always followed by an ask. And the daemon asks when a buffer's
 * last hold goes (buffer_gc()): a buffer nobody holds stays while another
 * description is alive. Who reads the queue, and when, is the bus layer's
 * (bus-common.c): each incoming call first, while calls come, the event
 * loop otherwise.
 *
 * The kernel queues the close event before it uncounts the description
 * (__fput() notifies first, and drops the write or read count later): the
 * daemon, on another CPU, can read the event and ask while the closing
 * description still counts. So an answer "another one is alive" right
 * after a close, or when the last hold goes, is asked again a little later
 * (1, 4, 16, 64, 256 and 1024 ms after), each new close starting over. That
 * race can only make the daemon keep a buffer longer, never drop it early:
 * "alone" is never wrong.
 *
 * While the lease is taken, an open(2) of the inode by someone else (only
 * root or the daemon's uid may: the inode is mode 0600) waits until it is
 * dropped, microseconds later, or fails with EWOULDBLOCK if O_NONBLOCK; and
 * the kernel would send the daemon SIGIO, which it ignores.
 *
 * V4L2 buffers have no lease. Every holder gets a duplicate of the
 * daemon's own dma-buf export, one description that the daemon keeps open:
 * no holder's close can be seen. What would work instead (measured with
 * vivid, videobuf2-vmalloc, on Debian's 6.1 in the tests/vm harness): each
 * VIDIOC_EXPBUF makes a new dma-buf with its own inode, so each holder could
 * get an export of its own, not kept by the daemon; inotify watches on a
 * dma-buf work, and IN_CLOSE_WRITE comes once, when the export's last fd and
 * mapping are gone in every process (one event per export, so counting
 * exports is exact); F_SETLEASE on a dma-buf fails with EINVAL (anonymous
 * inode, not a regular file), but /proc/self/fdinfo of a dma-buf has
 * "count:", the references to its description (fds, mappings, children),
 * an exact answer for an fd the daemon keeps. Not measured on later kernels.
 *
 * The size guard. Only memfds take seals: a posix or file buffer's holder
 * with write access can resize the file (ftruncate, a write past its end)
 * or allocate beyond its end (fallocate with FALLOC_FL_KEEP_SIZE), and the
 * daemon would charge less than there is. So their watch also asks for
 * IN_MODIFY, which every write, truncate and fallocate queues, and on it
 * the daemon puts the file back to its size (truncating to the size it
 * already has frees what lies beyond it). Events do not say who: the log
 * names the buffer. A shrink cannot be undone, only its size: what was cut
 * off comes back as zeros, and a holder touching it meanwhile got SIGBUS.
 * Restored buffers get a watch for this alone (no lease). Writes through a
 * mapping queue nothing, and need none: they cannot change the size.
 *
 * The self-test in broker_leases_enable() checks these kernel facts on a
 * scratch memfd; where they do not hold (leases disabled by fs.leases-enable,
 * a kernel that counts otherwise), leases stay off: buffers are held only
 * explicitly, never released early.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <search.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "memfd.h"

#define LEASE_EVENTS (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)
#define LEASE_RECHECKS 6                /* 1 ms, then 4 times longer each */

/* Kinds whose file cannot be sealed against resizing (see the size guard). */
static bool size_guarded(const Buffer *buf) {
        return strcmp(buf->kind, BB_KIND_POSIX) == 0 || strcmp(buf->kind, BB_KIND_FILE) == 0;
}

/* A description of @buf closed: look at it after this batch of events. */
static void closed_mark(Broker *b, Buffer *buf) {
        if (buf->lease_closed)
                return;
        buf->lease_closed = true;
        TAILQ_INSERT_TAIL(&b->closed, buf, closed_link);
}

static void closed_clear(Broker *b, Buffer *buf) {
        if (!buf->lease_closed)
                return;
        buf->lease_closed = false;
        TAILQ_REMOVE(&b->closed, buf, closed_link);
}

static void recheck_clear(Broker *b, Buffer *buf) {
        if (buf->lease_recheck_usec == 0)
                return;
        buf->lease_recheck_usec = 0;
        b->n_lease_rechecks--;
        TAILQ_REMOVE(&b->rechecks, buf, recheck_link);
}

/* Ask about @buf again later; @restart: a new reason (a close), from the
 * first delay. Past the last one, the next close asks again. */
static void recheck_schedule(Broker *b, Buffer *buf, bool restart) {
        if (restart)
                buf->lease_rechecks = 0;
        if (buf->lease_rechecks >= LEASE_RECHECKS) {
                recheck_clear(b, buf);
                return;
        }
        if (buf->lease_recheck_usec == 0) {
                b->n_lease_rechecks++;
                TAILQ_INSERT_TAIL(&b->rechecks, buf, recheck_link);
        }
        buf->lease_recheck_usec = monotonic_usec() + (UINT64_C(1000) << (2 * buf->lease_rechecks));
        buf->lease_rechecks++;
}

static int wd_compare(const void *a, const void *b) {
        int x = ((const Buffer *) a)->lease_wd, y = ((const Buffer *) b)->lease_wd;
        return x < y ? -1 : x > y;
}

static Buffer *lease_find(Broker *b, int wd) {
        Buffer key = { .lease_wd = wd };
        void **n = tfind(&key, &b->lease_index, wd_compare);
        return n ? *n : NULL;
}

/* 1: @fd's description is the only one of its inode; 0: another is alive;
 * <0: the kernel would not say. */
static int only_description(int fd) {
        if (fcntl(fd, F_SETLEASE, F_WRLCK) < 0)
                return errno == EAGAIN ? 0 : negative_errno();
        if (fcntl(fd, F_SETLEASE, F_UNLCK) < 0)
                return negative_errno();
        return 1;
}

/* Does the kernel answer as lease.c needs? On a scratch memfd: alone; not
 * alone with a read-only and with a read-write description elsewhere, nor
 * with a mapping whose fd is closed; alone again after. */
static int self_test(void) {
        _cleanup_close_ int fd = -1, other = -1;
        CreateRequest req = { .name = "lease-self-test", .size = 4096 };
        void *p;
        int r;

        r = memfd_new_sealed(&req, &fd);
        if (r < 0)
                return r;
        r = only_description(fd);
        if (r <= 0)
                return r < 0 ? r : -ENOTRECOVERABLE;

        other = fd_reopen(fd, O_RDONLY);
        if (other < 0)
                return other;
        if (only_description(fd) != 0)
                return -ENOTRECOVERABLE;
        other = safe_close(other);

        other = fd_reopen(fd, O_RDWR);
        if (other < 0)
                return other;
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, other, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        other = safe_close(other);
        r = only_description(fd);
        (void) munmap(p, 4096);
        if (r != 0)
                return r < 0 ? r : -ENOTRECOVERABLE;
        r = only_description(fd);
        if (r <= 0)
                return r < 0 ? r : -ENOTRECOVERABLE;
        return 0;
}

int broker_leases_enable(Broker *b) {
        int fd, r;

        if (b->lease_fd >= 0)
                return 0;

        /* A lease break (someone opening a buffer by path while the daemon
         * holds a lease, for microseconds) sends SIGIO: not a reason to die. */
        signal(SIGIO, SIG_IGN);
        r = self_test();
        if (r < 0)
                return log_warning_errno(r, "The kernel cannot tell when a buffer's last fd and mapping are gone "
                                         "(file leases on memfds); buffers are held until released or their "
                                         "holders disconnect");

        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return log_warning_errno(negative_errno(), "Cannot watch buffers for closed fds (inotify); buffers "
                                         "are held until released or their holders disconnect");
        b->lease_fd = fd;
        return 0;
}

int broker_leases_fd(Broker *b) {
        return b->lease_fd;
}

static void watch(Broker *b, Buffer *buf, bool lease) {
        char path[sizeof("/proc/self/fd/") + 12];
        uint32_t mask = (lease ? LEASE_EVENTS : 0) | (size_guarded(buf) ? IN_MODIFY : 0);
        int wd;

        /* No fd (sysv): nothing to watch; its attachments are its lease. */
        if (b->lease_fd < 0 || buf->queue || buf->n_planes != 1 || buf->planes[0].fd < 0 || buf->lease_wd >= 0 ||
            mask == 0)
                return;

        snprintf(path, sizeof(path), "/proc/self/fd/%i", buf->planes[0].fd);
        /* IN_MASK_CREATE: a new memfd is a new inode; never take over a watch. */
        wd = inotify_add_watch(b->lease_fd, path, mask | IN_MASK_CREATE);
        if (wd < 0) {
                int r = negative_errno();

                if (r != -ENOSPC)
                        log_warning_errno(r, "Cannot watch buffer %" PRIu64 " for closed fds; it is held until "
                                          "released or its holders disconnect", buf->id);
                else if (!b->lease_limit_warned) {
                        b->lease_limit_warned = true;
                        log_warning("The limit of inotify watches (fs.inotify.max_user_watches) is reached: "
                                    "buffer %" PRIu64 " and others created while it is are held until released "
                                    "or their holders disconnect, not until their fds are closed", buf->id);
                }
                return;
        }

        buf->lease_wd = wd;
        buf->lease_closed = false;
        buf->lease_guard_only = !lease;
        if (!tsearch(buf, &b->lease_index, wd_compare)) {
                (void) inotify_rm_watch(b->lease_fd, wd);
                buf->lease_wd = -1;
                log_warning("Out of memory: buffer %" PRIu64 " is held until released or its holders disconnect",
                            buf->id);
        }
}

void lease_watch(Broker *b, Buffer *buf) {
        watch(b, buf, true);
}

void lease_watch_size_only(Broker *b, Buffer *buf) {
        watch(b, buf, false);
}

/* Put @buf's file back to its size, and free what was allocated beyond it
 * (see the size guard). */
static void size_guard_check(Buffer *buf) {
        const BufferPlane *p = &buf->planes[0];
        struct stat st, after;

        if (fstat(p->fd, &st) < 0) {
                log_warning_errno(negative_errno(), "Cannot check the size of buffer %" PRIu64, buf->id);
                return;
        }
        if ((uint64_t) st.st_size == p->length && (uint64_t) st.st_blocks * 512 <= p->length)
                return;
        if (ftruncate(p->fd, (off_t) p->length) < 0) {
                log_warning_errno(negative_errno(), "Failed to put buffer %" PRIu64 " back to its %" PRIu64 " bytes",
                                  buf->id, p->length);
                return;
        }
        if ((uint64_t) st.st_size != p->length)
                log_warning("Buffer %" PRIu64 " (%s) was resized to %" PRIu64 " bytes by a holder; set back to %" PRIu64
                            " bytes%s", buf->id, buf->kind, (uint64_t) st.st_size, p->length,
                            (uint64_t) st.st_size < p->length ? " (what was cut off reads as zeros now)" : "");
        else if (fstat(p->fd, &after) >= 0 && after.st_blocks < st.st_blocks)
                /* Not every block past the size is a holder's: a file
                 * system's own metadata counts too, and stays. */
                log_warning("Buffer %" PRIu64 " (%s) had %" PRIu64 " bytes allocated beyond its end by a holder; freed",
                            buf->id, buf->kind, (uint64_t) (st.st_blocks - after.st_blocks) * 512);
}

void lease_unwatch(Broker *b, Buffer *buf) {
        if (buf->lease_wd < 0)
                return;
        tdelete(buf, &b->lease_index, wd_compare);
        /* Events of this wd still queued find no buffer and are skipped;
         * inotify does not reuse a wd soon (it allocates them cyclically).
         * Removed even when the buffer goes with its last description (the
         * kernel would drop the watch itself, IN_IGNORED, and save this
         * call, ~3 us): the inode outlives the daemon's close while anyone
         * keeps it, an O_PATH fd of a holder for one, and the watch with
         * it, against the daemon's limit of watches. */
        (void) inotify_rm_watch(b->lease_fd, buf->lease_wd);
        buf->lease_wd = -1;
        closed_clear(b, buf);
        recheck_clear(b, buf);
}

/* Is a description of @buf alive but the daemon's? Only "no" is sure (see
 * above), so a "yes" is asked again later. */
static bool lease_alive(Broker *b, Buffer *buf, bool restart) {
        int r = only_description(buf->planes[0].fd);

        if (r < 0)
                /* Not known: not a reason to keep it, as without leases. */
                log_warning_errno(r, "Cannot tell whether buffer %" PRIu64 " is still open somewhere", buf->id);
        if (r == 0)
                recheck_schedule(b, buf, restart);
        else
                recheck_clear(b, buf);
        return r == 0;
}

/* When the last hold goes. No recheck for a "yes": no close came, so the
 * race above is not on, and the close that comes will be seen. */
bool lease_keeps(Broker *b, Buffer *buf) {
        int r;

        if (buf->lease_wd < 0 || buf->lease_guard_only)
                return false;
        r = only_description(buf->planes[0].fd);
        if (r < 0)
                log_warning_errno(r, "Cannot tell whether buffer %" PRIu64 " is still open somewhere", buf->id);
        return r == 0;
}

static void lease_check_all(Broker *b) {
        Buffer *buf;

        BROKER_FOREACH_BUFFER(buf, b) {
                if (buf->lease_wd < 0)
                        continue;
                if (size_guarded(buf))
                        size_guard_check(buf);
                if (!buf->lease_guard_only)
                        closed_mark(b, buf);
        }
}

int broker_leases_process(Broker *b) {
        union {
                struct inotify_event e;
                char raw[4096];
        } ev;
        bool any = false;
        Buffer *buf;

        if (b->lease_fd < 0)
                return 0;

        for (;;) {
                ssize_t n = read(b->lease_fd, &ev, sizeof(ev));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return log_warning_errno(negative_errno(), "Failed to read inotify events");
                }
                for (char *p = ev.raw; p < ev.raw + n; ) {
                        const struct inotify_event *e = (const struct inotify_event *) p;

                        p += sizeof(*e) + e->len;
                        if (e->mask & IN_Q_OVERFLOW) {
                                /* Events were lost: look at every buffer. */
                                lease_check_all(b);
                                any = true;
                                continue;
                        }
                        buf = lease_find(b, e->wd);
                        if (!buf)
                                continue;       /* a watch removed since */
                        if (e->mask & IN_IGNORED) {
                                bool guard_only = buf->lease_guard_only;

                                /* The kernel dropped the watch (it does not
                                 * while the daemon keeps the inode open). */
                                tdelete(buf, &b->lease_index, wd_compare);
                                buf->lease_wd = -1;
                                buf->lease_guard_only = false;
                                closed_clear(b, buf);
                                recheck_clear(b, buf);
                                if (guard_only) {
                                        log_warning("Buffer %" PRIu64 " lost its inotify watch; its size is no "
                                                    "longer guarded", buf->id);
                                        continue;
                                }
                                log_warning("Buffer %" PRIu64 " lost its inotify watch; it is held until "
                                            "released or its holders disconnect", buf->id);
                                /* Only the lease may have kept it. */
                                broker_buffer_gc(b, buf);
                                continue;
                        }
                        /* Resized (or just written) by a holder: at once,
                         * it cannot drop the buffer. */
                        if (e->mask & IN_MODIFY)
                                size_guard_check(buf);
                        if (!(e->mask & LEASE_EVENTS))
                                continue;
                        closed_mark(b, buf);
                        any = true;
                }
                /* Room for another event was left: the queue was empty. An
                 * event queued since is read next time (the loop, or the
                 * next call, looks again), so no read just for EAGAIN. */
                if ((size_t) n + sizeof(struct inotify_event) <= sizeof(ev))
                        break;
        }
        if (!any)
                return 0;

        /* Only the buffers whose descriptions closed. Ending a lease drops
         * at most that buffer (and forgets clients): take each off first. */
        while ((buf = TAILQ_FIRST(&b->closed))) {
                closed_clear(b, buf);
                if (buf->lease_wd >= 0 && !lease_alive(b, buf, true))
                        broker_lease_ended(b, buf);
        }
        return 0;
}

uint64_t broker_leases_next_recheck(Broker *b) {
        uint64_t next = USEC_INFINITY;
        Buffer *buf;

        /* Called once per loop round: only the buffers waiting for one. */
        TAILQ_FOREACH(buf, &b->rechecks, recheck_link)
                if (buf->lease_recheck_usec < next)
                        next = buf->lease_recheck_usec;
        return next;
}

void broker_leases_recheck(Broker *b) {
        uint64_t now = monotonic_usec();
        Buffer *buf, *next;

        /* As in broker_leases_process(): only this buffer may go. Asking
         * may take it out of the list, or drop it: next is taken first. */
        for (buf = TAILQ_FIRST(&b->rechecks); buf; buf = next) {
                next = TAILQ_NEXT(buf, recheck_link);
                if (buf->lease_recheck_usec > now)
                        continue;
                if (!lease_alive(b, buf, false))
                        broker_lease_ended(b, buf);
        }
}

static void free_nothing(void *p) {
        (void) p;               /* the buffers are not the index's */
}

void broker_leases_free(Broker *b) {
        tdestroy(b->lease_index, free_nothing);
        b->lease_index = NULL;
        b->lease_fd = safe_close(b->lease_fd);
}
