/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker core: the buffer registry, holders, share tokens and quotas.
 *
 * No D-Bus in here. A "client" is an opaque connection name (the bus layer
 * uses the sender's unique name) plus its uid; the bus layer tells the core
 * when a client vanishes and is told, through BrokerCallbacks, when a client
 * becomes known or forgotten and when a buffer is dropped. Time is passed in
 * (CLOCK_MONOTONIC usec) so tests can drive expiry.
 *
 * Errors: functions return 0 or a negative errno and, where a BrokerError is
 * passed, a message for a human. A refusal the protocol names (bad input, a
 * quota, a missing token...) also sets BrokerError.name to its D-Bus error
 * name; its errno is the one bufbroker-protocol.h pairs with that name:
 * -EINVAL malformed input, -EDQUOT quota, -ENOKEY unknown/expired/used token,
 * -EPERM not the owner, -EACCES access denied, -EALREADY already frozen,
 * -ETXTBSY writable mappings exist, -ENODEV not a usable V4L2 device, -EBUSY
 * the device's queue is in use, -EOPNOTSUPP not for this kind. A failure of
 * the system (kernel, driver, memory) leaves the name NULL, so that the bus
 * layer can never mistake a kernel's ENOENT for "no such buffer".
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "bufbroker-protocol.h"
#include "macro.h"
#include "memfd.h"
#include "v4l2.h"

#define USEC_INFINITY UINT64_MAX

/* An fd per plane, none open yet: int fds[BB_PLANES_MAX] = FD_ARRAY_INIT; */
#define FD_ARRAY_INIT { [0 ... BB_PLANES_MAX - 1] = -1 }

typedef struct Broker Broker;
typedef struct Buffer Buffer;
typedef struct Client Client;
typedef struct Hold Hold;
typedef struct Token Token;
typedef struct UidUsage UidUsage;

typedef struct BrokerLimits {
        uint64_t max_buffer_size;
        uint64_t max_fds;               /* fds the broker may keep for buffers */
        uint64_t max_buffers_per_uid;
        uint64_t max_bytes_per_uid;
        uint64_t max_tokens_per_uid;
        uint64_t max_buffers;
        uint64_t max_bytes;
        uint64_t max_tokens;
} BrokerLimits;

typedef struct BrokerStats {
        uint64_t buffers;
        uint64_t bytes;
        uint64_t clients;
        uint64_t tokens;
        uint64_t fds;                   /* kept for buffers (planes, exports, queues) */
} BrokerStats;

/* Why a buffer went (BrokerCallbacks.buffer_dropped): the protocol's
 * BB_REASON_* of BufferReleased. BROKER_DROP_NONE is the core's own: a
 * buffer unregistered unannounced (a failed registration, the teardown). */
typedef enum BrokerDropReason {
        BROKER_DROP_NONE,
        BROKER_DROP_RELEASED,           /* its last holder released it, or its owner ended its
                                         * persistence with nobody holding it */
        BROKER_DROP_EXPIRED,            /* its TTL passed */
        BROKER_DROP_HOLDERS_GONE,       /* its last holder's connection closed (or, after a
                                         * restart, its holders did not come back) */
        BROKER_DROP_LEASE,              /* every fd and mapping handed out of it closed */
        BROKER_DROP_UNDONE,             /* the call that made or opened it was taken back
                                         * (it failed, or its reply was not delivered) */
} BrokerDropReason;

typedef struct BrokerCallbacks {
        /* A client got its first hold. Return <0 to refuse (the operation
         * that needed it then fails and is undone). */
        int (*client_added)(Broker *b, Client *c, void *userdata);
        /* A client holds nothing any more and is about to be freed. */
        void (*client_removed)(Broker *b, Client *c, void *userdata);
        /* A buffer was registered (its id and path are set). Return <0 to
         * refuse (it is then unregistered again and its creation fails). */
        int (*buffer_added)(Broker *b, Buffer *buf, void *userdata);
        /* A buffer is about to be freed, and why; its holds are still there. */
        void (*buffer_dropped)(Broker *b, Buffer *buf, BrokerDropReason reason, void *userdata);
        /* A property of the contract changed (BB_PROP_PERSISTENT or
         * BB_PROP_FROZEN); the buffer has its new value. */
        void (*buffer_changed)(Broker *b, Buffer *buf, const char *property, void *userdata);
} BrokerCallbacks;

/* Who is calling: a connection name (NULL = not a bus client, never becomes a
 * holder) and the credentials the bus vouches for: its uid, and all its
 * groups, the primary one included (the bus's UnixGroupIDs; none if the bus
 * does not tell). Groups only decide device access (CreateV4L2). */
typedef struct Caller {
        const char *name;
        uid_t uid;
        const gid_t *groups;
        unsigned n_groups;
} Caller;

/* A change of the state kept across a restart (broker-state.h journals
 * them): what changed, and the buffer, hold or token. Told as it happens,
 * the object still whole (a dropped one just before it goes). */
typedef enum BrokerChangeKind {
        BROKER_BUFFER_ADDED,
        BROKER_BUFFER_CHANGED,          /* persistent or frozen */
        BROKER_BUFFER_DROPPED,
        BROKER_HOLD_ADDED,
        BROKER_HOLD_DROPPED,
        BROKER_TOKEN_ADDED,
        BROKER_TOKEN_DROPPED,
} BrokerChangeKind;

typedef struct BrokerChange {
        BrokerChangeKind kind;
        const Buffer *buffer;
        const Hold *hold;               /* BROKER_HOLD_* */
        const Token *token;             /* BROKER_TOKEN_* */
} BrokerChange;

typedef struct BrokerError {
        const char *name;               /* protocol error name; NULL: system failure */
        char message[256];
} BrokerError;

/* Fill @err (may be NULL) and return @r. broker_refuse() is for the
 * conditions the protocol names: the name is looked up from @r (-EINVAL is
 * InvalidArgs, -EOPNOTSUPP NotSupported, the rest as in the protocol's
 * table). broker_fail() is for everything else. */
_printf_(3, 4) int broker_refuse(BrokerError *err, int r, const char *fmt, ...);
_printf_(3, 4) int broker_fail(BrokerError *err, int r, const char *fmt, ...);

struct Hold {
        Buffer *buffer;
        Client *client;
        TAILQ_ENTRY(Hold) by_buffer;
        TAILQ_ENTRY(Hold) by_client;
};

struct Client {
        Broker *broker;
        char *name;
        uid_t uid;
        void *userdata;                 /* the bus layer's */
        TAILQ_HEAD(, Hold) holds;
        TAILQ_ENTRY(Client) link;
};

struct Token {
        Broker *broker;
        Buffer *buffer;
        char id[BB_TOKEN_LEN + 1];
        uid_t owner_uid;                /* charged to this uid's token quota */
        uid_t bound_uid;                /* (uid_t) -1: any uid */
        bool read_only;
        bool single_use;
        uint64_t expire_usec;           /* monotonic; USEC_INFINITY: never */
        TAILQ_ENTRY(Token) by_buffer;
        TAILQ_ENTRY(Token) link;
};

typedef struct BufferPlane {
        int fd;                         /* the daemon's own fd */
        int ro_fd;                      /* dma-bufs: an O_RDONLY export for read-only
                                         * shares (memfds are reopened instead); -1 */
        uint64_t length;
        uint32_t bytesperline;          /* V4L2 only */
        uint32_t offset;                /* where the data starts in the fd */
} BufferPlane;

/* One per live buffer: keep it small (bufbrokerd(8) says what a buffer
 * costs). Pointers and 64-bit fields first, the small ones packed after
 * them; the planes are allocated to n_planes (one for a memfd). */
struct Buffer {
        Broker *broker;
        uint64_t id;
        char *name;
        const char *kind;               /* BB_KIND_* */
        char *path;                     /* D-Bus object path */
        uint64_t size;                  /* bytes charged, sum of plane lengths */
        uint64_t expire_usec;           /* monotonic; USEC_INFINITY: never */
        uint64_t created_usec;          /* CLOCK_REALTIME */
        uint64_t page_size;             /* bytes: the system's, or a memfd's huge pages */
        V4L2Queue *queue;               /* kind "v4l2": the device queue, shared */
        char *shm_name;                 /* kind "posix": its name in /dev/shm; NULL */
        TAILQ_HEAD(, Hold) holds;
        TAILQ_HEAD(, Token) tokens;
        TAILQ_ENTRY(Buffer) link;
        uid_t owner_uid;
        uint32_t v4l2_index;            /* kind "v4l2": the buffer's index in the queue */
        int shmid;                      /* kind "sysv": its segment; -1 */
        unsigned n_holds;
        unsigned n_fds;                 /* fds kept: planes, read-only exports, and
                                         * the queue's device fd for its first buffer */
        bool persistent;
        bool frozen;
        bool read_only;                 /* even the owner gets read-only fds */
        bool prefaulted;                /* memfd: pages allocated at creation */
        /* The lease (lease.c), memfds only: the inotify watch on the memfd's
         * inode (-1: none, only explicit holds keep the buffer), and whether
         * a description of it closed since the last look. Posix and file
         * buffers too, whose watch also serves the size guard; a restored
         * one's watch serves only that (lease_guard_only). */
        bool lease_closed;
        bool lease_guard_only;
        bool attach_waiting;            /* sysv: see attached_link */
        int lease_wd;
        TAILQ_ENTRY(Buffer) closed_link;        /* in Broker.closed, while set */
        /* Ask again at lease_recheck_usec (CLOCK_MONOTONIC; 0: no need), the
         * lease_rechecks-th time: see lease.c on the race with close. */
        uint64_t lease_recheck_usec;
        union {
                TAILQ_ENTRY(Buffer) recheck_link;       /* in Broker.rechecks, while set */
                /* kind "sysv" (no lease, no recheck): nobody holds it, and
                 * attachments keep it; in Broker.attached while
                 * attach_waiting is set. */
                TAILQ_ENTRY(Buffer) attached_link;
        };
        unsigned lease_rechecks;
        unsigned n_planes;
        BufferPlane planes[];
};

struct UidUsage {
        uid_t uid;
        uint64_t buffers;
        uint64_t bytes;
        uint64_t tokens;
        uint64_t fds;
        TAILQ_ENTRY(UidUsage) link;
};

struct Broker {
        BrokerLimits limits;
        /* uids with some buffers (tokens): the "n" of the fair share of the
         * global limits (see check_buffer_quota()). */
        uint64_t n_uids_with_buffers;
        uint64_t n_uids_with_tokens;
        BrokerCallbacks callbacks;
        void *userdata;
        uid_t self_uid;                 /* sees and may do everything, like root */
        /* The kernel objects that outlive the daemon's fds (posix names,
         * SysV segments) stay at teardown: the fd store keeps the state for
         * the next start. False: broker_free() removes them. */
        bool keep_objects;
        /* The directory of file buffers (--file-dir), owned; -1: none, and
         * Create refuses kind "file". */
        int file_dir_fd;
        uint64_t next_id;
        uint64_t generation;            /* bumped by every change of state */
        /* Told of every change of the saved state (NULL: nobody). */
        void (*state_changed)(Broker *b, const BrokerChange *change, void *userdata);
        void *state_changed_userdata;
        BrokerStats stats;
        void *buffer_index;             /* tsearch trees */
        void *token_index;
        void *client_index;
        TAILQ_HEAD(Buffer_list, Buffer) buffers;        /* in id order */
        TAILQ_HEAD(, Token) tokens;
        TAILQ_HEAD(, Client) clients;
        TAILQ_HEAD(, UidUsage) usage;
        /* lease.c: the inotify fd (-1: leases off) and its watches by wd. */
        int lease_fd;
        void *lease_index;
        bool lease_limit_warned;
        unsigned n_lease_rechecks;      /* buffers with lease_recheck_usec set */
        TAILQ_HEAD(, Buffer) rechecks;  /* those buffers: never a walk over all */
        TAILQ_HEAD(, Buffer) closed;    /* buffers with lease_closed set */
        /* sysv buffers kept only by attachments, and when they were last
         * asked about (CLOCK_MONOTONIC usec). */
        TAILQ_HEAD(, Buffer) attached;
        uint64_t attached_checked_usec;
};

typedef struct ShareOptions {
        bool read_only;
        bool single_use;
        uid_t bound_uid;                /* (uid_t) -1: any uid */
        uint64_t ttl_usec;              /* 0: no expiry */
} ShareOptions;

void broker_limits_default(BrokerLimits *ret);

int broker_new(Broker **ret, const BrokerLimits *limits, const BrokerCallbacks *callbacks, void *userdata);
Broker *broker_free(Broker *b);
DEFINE_POINTER_CLEANUP(Broker, broker_free);

/* Argument checks, shared with the bus layer so both say the same thing. */
int broker_validate_name(const char *name, BrokerError *err);

/* Buffers of kind @req->kind (memfd, posix, sysv, file; see memfd.h for
 * the request), held by the caller: @req->count of them (0: one), all or
 * none, into ret[0 .. count-1]. */
int broker_create(Broker *b, const Caller *caller, const CreateRequest *req, uint64_t now,
                  BrokerError *err, Buffer **ret);

/* The buffer's kernel object is gone for good (a drop, a failed creation,
 * a teardown without keep_objects): remove what would outlive the daemon's
 * fds (the posix name, the SysV segment). Nothing for memfd, file, v4l2. */
void buffer_destroy_object(Broker *b, Buffer *buf);

/* Bytes the kernel has allocated for @buf now (memory or disk): the
 * AllocatedBytes property. */
uint64_t buffer_allocated_bytes(const Buffer *buf);

/* Allocate buffers from a V4L2 device (see v4l2.h), all or none. Each
 * becomes a buffer of its own, named "@req->name<index>", held by the
 * caller. On success *ret is a malloc()ed array of *ret_n buffers. */
int broker_create_v4l2(Broker *b, const Caller *caller, const V4L2Request *req, uint64_t now,
                       BrokerError *err, Buffer ***ret, unsigned *ret_n);

/* Fds of a buffer for its owner (or root): read-write unless the buffer is
 * read-only or @read_only is set. The caller becomes a holder. */
int broker_open_fds(Broker *b, const Caller *caller, Buffer *buf, bool read_only, BrokerError *err,
                    int ret_fds[BB_PLANES_MAX]);

/* Open by token. On success the caller holds the buffer and *ret_fds holds
 * buf->n_planes new fds (O_RDONLY ones for a read-only token) that the caller
 * must close. */
int broker_open(Broker *b, const Caller *caller, const char *token, uint64_t now,
                BrokerError *err, Buffer **ret, bool *ret_read_only, int ret_fds[BB_PLANES_MAX]);

/* New fds for every plane of @buf, each its own open file description
 * (O_RDONLY ones if asked); the caller closes them. */
int buffer_open_fds(Buffer *buf, bool read_only, int ret_fds[BB_PLANES_MAX]);
/* Whether @buf is handed out as fds (one per plane): all but sysv, which
 * is attached by its shmid and has none. */
bool buffer_has_fds(const Buffer *buf);

int broker_share(Broker *b, const Caller *caller, Buffer *buf, const ShareOptions *opts,
                 uint64_t now, BrokerError *err, const char **ret_token);
/* Revoke token @token of @buf (owner or root only): Open() with it fails
 * from now on as with a token that never was. A token that is not @buf's
 * (unknown, expired, another buffer's) is -ENOKEY alike. Fds opened with it
 * stay open: an fd cannot be taken back. */
int broker_revoke_buffer_token(Broker *b, const Caller *caller, Buffer *buf, const char *token, uint64_t now,
                               BrokerError *err);
/* Revoke every token of @buf (owner or root only); *ret_count: how many
 * were valid at @now. */
int broker_revoke_buffer_tokens(Broker *b, const Caller *caller, Buffer *buf, uint64_t now, BrokerError *err,
                                unsigned *ret_count);
int broker_release(Broker *b, const Caller *caller, Buffer *buf, BrokerError *err);
/* Release each of @n distinct buffers as broker_release() does: all, or
 * (when the caller may not release one of them) none. */
int broker_release_many(Broker *b, const Caller *caller, Buffer *const *bufs, size_t n, BrokerError *err);
int broker_freeze(Broker *b, const Caller *caller, Buffer *buf, BrokerError *err);

/* Taking back what a reply handed out when the reply was never delivered
 * (the bus refused it, or the caller asked for no reply). */
/* Drop @buf now, whoever holds it. */
void broker_drop_buffer(Broker *b, Buffer *buf);
/* Drop the hold of client @name on @buf, if any (never ends persistence). */
void broker_unhold(Broker *b, Buffer *buf, const char *name);
/* Forget token @id; -ENOKEY if there is none. */
int broker_revoke_token(Broker *b, const char *id);
/* Does client @name hold @buf? */
bool broker_holds(Broker *b, Buffer *buf, const char *name);
/* The token @id (NULL: none, or expired at @now). */
const Token *broker_find_token(Broker *b, const char *id, uint64_t now);

/* The bus connection behind a client is gone: drop its holds. */
void broker_client_vanished(Broker *b, Client *c);
Client *broker_find_client(Broker *b, const char *name);

/* Drop expired tokens and buffers; returns the next deadline (USEC_INFINITY: none). */
uint64_t broker_expire(Broker *b, uint64_t now);
uint64_t broker_next_deadline(Broker *b);

Buffer *broker_find_buffer(Broker *b, uint64_t id);
/* Owner uid, root, the daemon's uid and the buffer's holders may see a buffer. */
bool broker_may_see(Broker *b, const Caller *caller, Buffer *buf);
bool broker_is_privileged(Broker *b, uid_t uid);
const UidUsage *broker_usage(Broker *b, uid_t uid);

/* Leases (lease.c): a memfd buffer is held while an open file description
 * of it that the daemon handed out (an fd or a mapping, anywhere, or one in
 * flight in a message) is alive, not only while a client holds it.
 *
 * broker_leases_enable() opens the inotify fd (leases stay off on failure,
 * or where the kernel does not count descriptions as lease.c needs: buffers
 * are then held only explicitly, as before); the event loop calls
 * broker_leases_process() when broker_leases_fd() is readable. Every memfd
 * buffer created afterwards gets a watch (none if the per-user limit of
 * watches is reached: that buffer is held only explicitly). When a
 * description of it closes, or when its last hold goes, the daemon asks the
 * kernel whether any description but its own is left; if none is, every
 * holder is taken to have released: the holds go, and the buffer with them
 * unless it is persistent. While one is left, a buffer nobody holds any more
 * stays (and stays charged): its memory is alive. Restored buffers get no
 * lease. */
int broker_leases_enable(Broker *b);
int broker_leases_fd(Broker *b);
int broker_leases_process(Broker *b);
/* When to call broker_leases_recheck() (CLOCK_MONOTONIC usec; USEC_INFINITY:
 * no need), and what it does: ask again about the buffers that are due. */
uint64_t broker_leases_next_recheck(Broker *b);
void broker_leases_recheck(Broker *b);
void broker_leases_free(Broker *b);
/* For broker.c: */
void lease_watch(Broker *b, Buffer *buf);
void lease_watch_size_only(Broker *b, Buffer *buf);     /* restored: the size guard, no lease */
void lease_unwatch(Broker *b, Buffer *buf);
bool lease_keeps(Broker *b, Buffer *buf);       /* a description but the daemon's is alive */
void broker_lease_ended(Broker *b, Buffer *buf);     /* drop all holds, and the buffer if nothing keeps it */
void broker_buffer_gc(Broker *b, Buffer *buf);       /* drop it if nothing keeps it */
uint64_t monotonic_usec(void);                       /* CLOCK_MONOTONIC now, for the rechecks */

/* The lease of a sysv buffer: its attachments (shm_nattch). A sysv buffer
 * nobody holds any more stays, and stays charged, while a process is
 * attached to its segment; the daemon asks when its last hold goes, then
 * on each call (broker_attachments_check()) and at
 * broker_attachments_next_check() while it waits, and drops it (reason
 * lease) once nothing is attached. Holders who detach do not lose their
 * holds: a sysv buffer has no fds to tell them apart. Each check also
 * forgets the resident bytes read for AllocatedBytes: one read of
 * /proc/sysvipc/shm serves a call, however many buffers it lists. */
uint64_t broker_attachments_next_check(Broker *b);
void broker_attachments_check(Broker *b);

/* Rebuilding the state saved before a restart (broker-state.c), through
 * the same registration as new buffers and tokens. Quotas are not checked:
 * the buffers existed (a uid may be over a limit lowered since; it then gets
 * nothing more until it is under again). broker_restore_buffer() takes the
 * plane fds (and ro_fds) on success only, and does not call buffer_added:
 * the buffer is in the fd store already. broker_restore_token() also puts
 * back a token whose use the bus took back. After the last call,
 * broker_restore_done() drops buffers that nobody holds any more. */
typedef struct RestoredBuffer {
        uint64_t id;
        const char *name;
        uid_t owner;
        bool persistent, frozen, read_only;
        uint64_t expire_usec, created_usec;
        unsigned n_planes;
        BufferPlane planes[BB_PLANES_MAX];
        V4L2Queue *queue;               /* V4L2 buffers: their queue (a new ref is taken) */
        uint32_t v4l2_index;
        bool prefaulted;
        const char *kind;               /* BB_KIND_* (NULL: memfd, or v4l2 with a queue) */
        const char *handle;             /* posix: the name; sysv: the shmid; NULL */
} RestoredBuffer;
int broker_restore_buffer(Broker *b, const RestoredBuffer *r, Buffer **ret);
int broker_restore_hold(Broker *b, Buffer *buf, const Caller *holder);
int broker_restore_token(Broker *b, Buffer *buf, const char *id, uid_t owner_uid, const ShareOptions *opts,
                         uint64_t expire_usec);
void broker_restore_done(Broker *b, uint64_t next_id);

/* Remove the posix names (bufbroker-* in /dev/shm of this uid) and the
 * SysV segments (created by this uid) that no buffer names: what an earlier
 * run kept for a restart that never came (a stop drops the fd store). Only
 * for a uid that no other daemon or program uses (bufbrokerd
 * --remove-stale-objects, the system unit's). Returns how many went. */
int broker_remove_stale_objects(Broker *b);

#define BROKER_FOREACH_BUFFER(buf, b) TAILQ_FOREACH(buf, &(b)->buffers, link)

/* May a uid that has @have of @used (of @limit) units take @ask more, when
 * @n_holders uids hold some (@holds_some: this one among them)? The fair
 * share of a global limit (broker.c); the bus layer uses it for its own. */
bool fair_share_allows(uint64_t limit, uint64_t used, uint64_t have, uint64_t ask, uint64_t n_holders,
                       bool holds_some);
