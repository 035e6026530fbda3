/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker core: which buffers exist, who holds them, which tokens open
 * them and what every uid is charged. Ownership rules live here and nowhere
 * else; the bus layer only decodes arguments and maps errnos to error names.
 *
 * Lifetime: a buffer lives while a client holds it or while it is persistent,
 * and never past its TTL. A client is known while it holds something.
 */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "broker.h"
#include "log.h"
#include "memfd.h"
#include "tmpfile.h"
#include "shm-posix.h"
#include "parse-util.h"
#include "shm-sysv.h"
#include "utf8-util.h"

#define UID_INVALID ((uid_t) -1)

/* Why a sysv buffer is not shared across uids (Share, Open). */
#define SYSV_ONE_UID "a SysV segment has one owner uid; share a posix or memfd buffer across users"

/* Drop a multi-byte UTF-8 character that truncation cut short at the end
 * of @s. Messages quote what callers sent (paths, names: valid UTF-8, the
 * bus checked), but vsnprintf() cuts at a byte, and D-Bus refuses to send a
 * string that is not valid UTF-8: the error reply would be lost and the
 * caller would wait for it until its timeout. */
static void trim_cut_utf8(char *s) {
        size_t n = strlen(s), start = n, need;
        unsigned char lead;

        while (start > 0 && ((unsigned char) s[start - 1] & 0xc0) == 0x80)
                start--;
        if (start == 0)
                return;
        lead = (unsigned char) s[--start];
        need = lead < 0x80 ? 1 : (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 : 4;
        if (n - start < need)
                s[start] = 0;
}

_printf_(3, 0) static void set_message(BrokerError *err, const char *name, const char *fmt, va_list ap) {
        int n;

        if (!err)
                return;
        err->name = name;
        n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
        if (n >= (int) sizeof(err->message))
                trim_cut_utf8(err->message);
}

static const char *error_name_of(int r) {
        static const struct bb_error_errno table[] = BB_ERROR_ERRNO_TABLE;

        if (r == -EINVAL)
                return BB_ERROR_INVALID_ARGS;
        if (r == -EOPNOTSUPP)
                return BB_ERROR_NOT_SUPPORTED;
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (table[i].error == -r)
                        return table[i].name;
        return NULL;
}

int broker_refuse(BrokerError *err, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        set_message(err, error_name_of(r), fmt, ap);
        va_end(ap);
        return r;
}

int broker_fail(BrokerError *err, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        set_message(err, NULL, fmt, ap);
        va_end(ap);
        return r;
}

#define refuse broker_refuse
#define fail broker_fail

static uint64_t page_size(void) {
        long p = sysconf(_SC_PAGESIZE);
        return p > 0 ? (uint64_t) p : 4096;
}

static uint64_t usec_add(uint64_t a, uint64_t b) {
        return a > USEC_INFINITY - b ? USEC_INFINITY : a + b;
}

static uint64_t realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

void broker_limits_default(BrokerLimits *ret) {
        *ret = (BrokerLimits) {
                .max_buffer_size = UINT64_C(1) << 30,           /* 1 GiB */
                .max_buffers_per_uid = 1024,
                .max_bytes_per_uid = UINT64_C(4) << 30,         /* 4 GiB */
                .max_tokens_per_uid = 1024,
                .max_buffers = 16384,
                .max_bytes = UINT64_C(64) << 30,                /* 64 GiB */
                .max_tokens = 16384,
                .max_fds = UINT64_MAX,  /* main.c fits it to RLIMIT_NOFILE, the fd store, --max-fds */
        };
}

/* ------------------------------------------------------------ indexes --- */

static int buffer_compare(const void *a, const void *b) {
        const Buffer *x = a, *y = b;
        return x->id < y->id ? -1 : x->id > y->id;
}

static int token_compare(const void *a, const void *b) {
        return strcmp(((const Token *) a)->id, ((const Token *) b)->id);
}

static int client_compare(const void *a, const void *b) {
        return strcmp(((const Client *) a)->name, ((const Client *) b)->name);
}

Buffer *broker_find_buffer(Broker *b, uint64_t id) {
        Buffer key = { .id = id };
        void **n = tfind(&key, &b->buffer_index, buffer_compare);
        return n ? *n : NULL;
}

static Token *find_token(Broker *b, const char *id) {
        Token key = {};
        void **n;

        if (strlen(id) != BB_TOKEN_LEN)
                return NULL;
        memcpy(key.id, id, BB_TOKEN_LEN + 1);
        n = tfind(&key, &b->token_index, token_compare);
        return n ? *n : NULL;
}

Client *broker_find_client(Broker *b, const char *name) {
        Client key = { .name = (char *) name };
        void **n = tfind(&key, &b->client_index, client_compare);
        return n ? *n : NULL;
}

/* -------------------------------------------------------------- usage --- */

static UidUsage *usage_get(Broker *b, uid_t uid, bool create) {
        UidUsage *u;

        TAILQ_FOREACH(u, &b->usage, link)
                if (u->uid == uid)
                        return u;
        if (!create)
                return NULL;

        u = calloc(1, sizeof(*u));
        if (!u)
                return NULL;
        u->uid = uid;
        TAILQ_INSERT_TAIL(&b->usage, u, link);
        return u;
}

static void usage_gc(Broker *b, UidUsage *u) {
        if (u && u->buffers == 0 && u->bytes == 0 && u->tokens == 0 && u->fds == 0) {
                TAILQ_REMOVE(&b->usage, u, link);
                free(u);
        }
}

/* Tell whoever keeps the saved state (broker-state.h) what changed. */
static void state_changed(Broker *b, BrokerChangeKind kind, const Buffer *buf, const Hold *h, const Token *t) {
        if (b->state_changed)
                b->state_changed(b, &(BrokerChange) { kind, buf, h, t }, b->state_changed_userdata);
}

/* A property of the contract changed: the journal and the bus layer. */
static void buffer_changed(Broker *b, Buffer *buf, const char *property) {
        state_changed(b, BROKER_BUFFER_CHANGED, buf, NULL, NULL);
        if (b->callbacks.buffer_changed)
                b->callbacks.buffer_changed(b, buf, property, b->userdata);
}

/* Charge and uncharge a registered buffer or token to its uid and to the
 * totals, keeping count of the uids that hold any (the fair share's n). */
static void usage_add_buffer(Broker *b, UidUsage *u, const Buffer *buf) {
        if (u->buffers == 0)
                b->n_uids_with_buffers++;
        u->buffers++;
        u->bytes += buf->size;
        u->fds += buf->n_fds;
        b->stats.buffers++;
        b->stats.bytes += buf->size;
        b->stats.fds += buf->n_fds;
        b->generation++;
}

static void usage_remove_buffer(Broker *b, const Buffer *buf) {
        UidUsage *u = usage_get(b, buf->owner_uid, false);

        b->stats.buffers--;
        b->stats.bytes -= buf->size;
        b->stats.fds -= buf->n_fds;
        b->generation++;
        if (!u)
                return;
        u->buffers--;
        u->bytes -= buf->size;
        u->fds -= buf->n_fds;
        if (u->buffers == 0)
                b->n_uids_with_buffers--;
        usage_gc(b, u);
}

static void usage_add_token(Broker *b, UidUsage *u) {
        if (u->tokens == 0)
                b->n_uids_with_tokens++;
        u->tokens++;
        b->stats.tokens++;
        b->generation++;
}

static void usage_remove_token(Broker *b, uid_t uid) {
        UidUsage *u = usage_get(b, uid, false);

        b->stats.tokens--;
        b->generation++;
        if (!u)
                return;
        u->tokens--;
        if (u->tokens == 0)
                b->n_uids_with_tokens--;
        usage_gc(b, u);
}

const UidUsage *broker_usage(Broker *b, uid_t uid) {
        return usage_get(b, uid, false);
}

/* ------------------------------------------------------------ clients --- */

static Client *client_free(Client *c) {
        if (!c)
                return NULL;
        free(c->name);
        free(c);
        return NULL;
}

/* Find or make the client behind @caller. A new client is registered only
 * once the bus layer accepted it (client_added), so failure leaves nothing. */
static int client_get(Broker *b, const Caller *caller, Client **ret) {
        Client *c;
        int r;

        c = broker_find_client(b, caller->name);
        if (c) {
                *ret = c;
                return 0;
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->broker = b;
        c->uid = caller->uid;
        TAILQ_INIT(&c->holds);
        c->name = strdup(caller->name);
        if (!c->name) {
                client_free(c);
                return -ENOMEM;
        }

        if (!tsearch(c, &b->client_index, client_compare)) {
                client_free(c);
                return -ENOMEM;
        }

        if (b->callbacks.client_added) {
                r = b->callbacks.client_added(b, c, b->userdata);
                if (r < 0) {
                        tdelete(c, &b->client_index, client_compare);
                        client_free(c);
                        return r;
                }
        }

        TAILQ_INSERT_TAIL(&b->clients, c, link);
        b->stats.clients++;
        *ret = c;
        return 0;
}

/* Forget a client that holds nothing any more. */
static void client_gc(Broker *b, Client *c) {
        if (!TAILQ_EMPTY(&c->holds))
                return;

        if (b->callbacks.client_removed)
                b->callbacks.client_removed(b, c, b->userdata);

        tdelete(c, &b->client_index, client_compare);
        TAILQ_REMOVE(&b->clients, c, link);
        b->stats.clients--;
        client_free(c);
}

/* -------------------------------------------------------------- holds --- */

static Hold *hold_find(Buffer *buf, Client *c) {
        Hold *h;

        TAILQ_FOREACH(h, &c->holds, by_client)
                if (h->buffer == buf)
                        return h;
        return NULL;
}

/* Make @caller a holder of @buf; holding twice is holding once. */
static int hold_add(Broker *b, Buffer *buf, const Caller *caller) {
        Client *c;
        Hold *h;
        int r;

        r = client_get(b, caller, &c);
        if (r < 0)
                return r;

        if (hold_find(buf, c))
                return 0;

        h = calloc(1, sizeof(*h));
        if (!h) {
                client_gc(b, c);
                return -ENOMEM;
        }
        h->buffer = buf;
        h->client = c;
        TAILQ_INSERT_TAIL(&buf->holds, h, by_buffer);
        TAILQ_INSERT_TAIL(&c->holds, h, by_client);
        buf->n_holds++;
        b->generation++;
        state_changed(b, BROKER_HOLD_ADDED, buf, h, NULL);
        return 0;
}

/* Remove a hold; the client is forgotten if that was its last one. */
static void hold_free(Broker *b, Hold *h) {
        Client *c = h->client;

        TAILQ_REMOVE(&h->buffer->holds, h, by_buffer);
        TAILQ_REMOVE(&c->holds, h, by_client);
        h->buffer->n_holds--;
        b->generation++;
        state_changed(b, BROKER_HOLD_DROPPED, h->buffer, h, NULL);
        free(h);
        client_gc(b, c);
}

/* ------------------------------------------------------------- tokens --- */

static void token_free(Broker *b, Token *t) {
        tdelete(t, &b->token_index, token_compare);
        TAILQ_REMOVE(&t->buffer->tokens, t, by_buffer);
        TAILQ_REMOVE(&b->tokens, t, link);
        usage_remove_token(b, t->owner_uid);
        state_changed(b, BROKER_TOKEN_DROPPED, t->buffer, NULL, t);
        free(t);
}

static int token_generate(char ret[static BB_TOKEN_LEN + 1]) {
        uint8_t raw[BB_TOKEN_LEN / 2];
        ssize_t n;

        n = getrandom(raw, sizeof(raw), 0);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != sizeof(raw))
                return -EIO;

        for (size_t i = 0; i < sizeof(raw); i++)
                sprintf(ret + 2 * i, "%02x", raw[i]);
        return 0;
}

static bool token_well_formed(const char *s) {
        size_t i;

        for (i = 0; s[i]; i++)
                if (i >= BB_TOKEN_LEN || !strchr("0123456789abcdef", s[i]))
                        return false;
        return i == BB_TOKEN_LEN;
}

/* ------------------------------------------------------------ buffers --- */

static Buffer *buffer_free(Buffer *buf) {
        if (!buf)
                return NULL;
        for (unsigned i = 0; i < buf->n_planes; i++) {
                safe_close(buf->planes[i].fd);
                safe_close(buf->planes[i].ro_fd);
        }
        v4l2_queue_unref(buf->queue);
        free(buf->shm_name);
        free(buf->name);
        free(buf->path);
        free(buf);
        return NULL;
}
DEFINE_POINTER_CLEANUP(Buffer, buffer_free);

static bool is_sysv(const Buffer *buf) {
        return strcmp(buf->kind, BB_KIND_SYSV) == 0;
}

bool buffer_has_fds(const Buffer *buf) {
        return !is_sysv(buf);
}

void buffer_destroy_object(Broker *b, Buffer *buf) {
        (void) b;
        if (strcmp(buf->kind, BB_KIND_POSIX) == 0 && buf->shm_name) {
                /* Who has it open or mapped keeps the memory; nobody can
                 * open the name again. */
                int r = shm_posix_unlink(buf->shm_name);
                struct stat st;

                if (r < 0 && r != -ENOENT)
                        log_warning_errno(r, "Failed to unlink %s of buffer %" PRIu64, buf->shm_name, buf->id);
                /* A read-write grantee may have hard-linked the file
                 * elsewhere in /dev/shm: that link would keep its memory,
                 * the daemon's uid's and nobody's quota, past the buffer.
                 * Empty the file then (a link cannot be made once no name
                 * is left: the check cannot be raced). */
                if (buf->planes[0].fd >= 0 && fstat(buf->planes[0].fd, &st) >= 0 && st.st_nlink > 0) {
                        log_warning("buffer %" PRIu64 " (%s) was linked elsewhere by a holder; emptying it",
                                    buf->id, buf->shm_name);
                        if (ftruncate(buf->planes[0].fd, 0) < 0)
                                log_warning_errno(-errno, "Failed to empty buffer %" PRIu64, buf->id);
                }
        }
        if (is_sysv(buf) && buf->shmid >= 0) {
                /* Processes still attached keep their mapping: the
                 * kernel frees the segment when the last one detaches. */
                int r = shm_sysv_remove(buf->shmid);

                if (r < 0)
                        log_warning_errno(r, "Cannot remove the SysV segment %d of buffer %" PRIu64, buf->shmid,
                                          buf->id);
                buf->shmid = -1;
        }
}

uint64_t buffer_allocated_bytes(const Buffer *buf) {
        struct stat st;

        if (is_sysv(buf))
                return buf->shmid >= 0 ? shm_sysv_resident_bytes_cached(buf->shmid) : 0;
        if (buf->n_planes == 0 || buf->planes[0].fd < 0 || buf->queue)
                return buf->queue ? buf->size : 0;
        if (fstat(buf->planes[0].fd, &st) < 0)
                return 0;
        return (uint64_t) st.st_blocks * 512;
}

/* Free a buffer that never was registered, or was unregistered for good,
 * with its kernel object. */
static void buffer_destroy(Broker *b, Buffer *buf) {
        if (!buf)
                return;
        buffer_destroy_object(b, buf);
        buffer_free(buf);
}

/* ------------------------------------------- sysv: attachments as lease --- */

uint64_t monotonic_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void attach_wait(Broker *b, Buffer *buf) {
        if (buf->attach_waiting)
                return;
        /* The first one starts the period: asked again a second from now. */
        if (TAILQ_EMPTY(&b->attached))
                b->attached_checked_usec = monotonic_usec();
        buf->attach_waiting = true;
        TAILQ_INSERT_TAIL(&b->attached, buf, attached_link);
}

static void attach_unwait(Broker *b, Buffer *buf) {
        if (!buf->attach_waiting)
                return;
        buf->attach_waiting = false;
        TAILQ_REMOVE(&b->attached, buf, attached_link);
}

/* Is a process attached to @buf's segment? Not known is no: as without
 * leases, the buffer is then held only explicitly. */
static bool sysv_attached(Buffer *buf) {
        int n;

        if (!is_sysv(buf) || buf->shmid < 0)
                return false;
        n = shm_sysv_attachments(buf->shmid);
        if (n == -EIDRM)
                /* Its owner removed it (IPC_RMID, its right) and the
                 * last process detached since: nothing is left to keep. */
                return false;
        if (n < 0)
                log_warning_errno(n, "Cannot tell whether a process is attached to buffer %" PRIu64 " (SysV segment %d)",
                                  buf->id, buf->shmid);
        return n > 0;
}

/* Does the kernel keep @buf alive for someone who holds it no more: an open
 * description of its file (lease.c), or an attachment to its segment (which
 * then waits in Broker.attached)? */
static bool kernel_keeps(Broker *b, Buffer *buf) {
        if (sysv_attached(buf)) {
                attach_wait(b, buf);
                return true;
        }
        return lease_keeps(b, buf);
}

uint64_t broker_attachments_next_check(Broker *b) {
        return TAILQ_EMPTY(&b->attached) ? USEC_INFINITY : b->attached_checked_usec + 1000000u;
}

/* Unregister a registered buffer, with its tokens and holds; the caller
 * frees it. Announced (with its holds still there) unless @reason is
 * BROKER_DROP_NONE. */
static void buffer_unregister(Broker *b, Buffer *buf, BrokerDropReason reason) {
        Hold *h;
        Token *t;

        if (reason != BROKER_DROP_NONE && b->callbacks.buffer_dropped)
                b->callbacks.buffer_dropped(b, buf, reason, b->userdata);

        while ((t = TAILQ_FIRST(&buf->tokens)))
                token_free(b, t);
        while ((h = TAILQ_FIRST(&buf->holds)))
                hold_free(b, h);

        lease_unwatch(b, buf);
        attach_unwait(b, buf);
        tdelete(buf, &b->buffer_index, buffer_compare);
        TAILQ_REMOVE(&b->buffers, buf, link);
        usage_remove_buffer(b, buf);
        state_changed(b, BROKER_BUFFER_DROPPED, buf, NULL, NULL);
}

/* Unregister and free a registered buffer, and its kernel object unless
 * it is the teardown's (BROKER_DROP_NONE) and the objects are kept. The
 * object goes first: whoever hears of the drop (BufferReleased) finds the
 * name unlinked, the segment removed; and a crash in between leaves a
 * journal that names an object the restore finds gone, not an object
 * nobody names. */
static void buffer_drop(Broker *b, Buffer *buf, BrokerDropReason reason) {
        if (reason != BROKER_DROP_NONE || !b->keep_objects)
                buffer_destroy_object(b, buf);
        buffer_unregister(b, buf, reason);
        buffer_free(buf);
}

/* Drop a buffer that nobody keeps alive any more: no holder, not
 * persistent, and no description of it alive (lease.c), if that is known. */
static void buffer_gc(Broker *b, Buffer *buf, BrokerDropReason reason) {
        if (buf->n_holds == 0 && !buf->persistent && !kernel_keeps(b, buf))
                buffer_drop(b, buf, reason);
}

void broker_attachments_check(Broker *b) {
        Buffer *buf, *next;

        /* Each call sees the resident bytes of its own time. */
        shm_sysv_resident_forget();
        if (TAILQ_EMPTY(&b->attached))
                return;
        b->attached_checked_usec = monotonic_usec();
        /* Dropping one frees only that buffer: next stays valid. */
        for (buf = TAILQ_FIRST(&b->attached); buf; buf = next) {
                next = TAILQ_NEXT(buf, attached_link);
                if (buf->n_holds > 0 || buf->persistent) {
                        /* Held again (a token opened), or made
                         * persistent: not waiting for the attachments. */
                        attach_unwait(b, buf);
                        continue;
                }
                if (!sysv_attached(buf))
                        buffer_drop(b, buf, BROKER_DROP_LEASE);
        }
}

void broker_buffer_gc(Broker *b, Buffer *buf) {
        buffer_gc(b, buf, BROKER_DROP_LEASE);
}

/* Every description handed out is gone: each holder has released. The
 * kernel has just said so (lease.c), and nothing ran since: the buffer goes
 * unless it is persistent, without asking again. Its holds go before it
 * does, so that only listeners hear of it: a lease ends mostly because
 * processes exited, and a message to each of their connections, closing at
 * the same time, is one per buffer for nobody (with 2,000 holders killed at
 * once it made dbus-daemon stop reading the daemon, tests/hostile). */
void broker_lease_ended(Broker *b, Buffer *buf) {
        Hold *h;

        while ((h = TAILQ_FIRST(&buf->holds)))
                hold_free(b, h);
        b->generation++;
        if (!buf->persistent)
                buffer_drop(b, buf, BROKER_DROP_LEASE);
}

bool broker_is_privileged(Broker *b, uid_t uid) {
        return uid == 0 || uid == b->self_uid;
}

static bool may_manage(Broker *b, const Caller *caller, Buffer *buf) {
        return caller->uid == buf->owner_uid || broker_is_privileged(b, caller->uid);
}

bool broker_may_see(Broker *b, const Caller *caller, Buffer *buf) {
        Client *c;

        if (may_manage(b, caller, buf))
                return true;
        if (!caller->name)
                return false;
        c = broker_find_client(b, caller->name);
        return c && hold_find(buf, c);
}

int broker_validate_name(const char *name, BrokerError *err) {
        size_t n = strlen(name);

        if (n > BB_NAME_MAX)
                return refuse(err, -EINVAL, "Buffer name is %zu bytes long, at most %u are allowed",
                            n, BB_NAME_MAX);
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f)
                        return refuse(err, -EINVAL,
                                    "Buffer name contains control character 0x%02x at byte %zu",
                                    (unsigned char) name[i], i);
        return 0;
}

/* The fair share of a global limit, after dbus-broker's user accounting: of
 * what the others leave (the limit minus everyone's use, plus what this uid
 * holds already), one uid may hold at most an (n+1)th, rounded up, where n
 * counts the uids holding some, this one included. The "+1" keeps room for
 * a uid that comes later: no uid, and no group of uids, can take everything
 * while fewer uids than units hold some, and each one's share shrinks as
 * more uids hold some. Rounding up lets a newcomer have one unit of a small
 * pool. */
bool fair_share_allows(uint64_t limit, uint64_t used, uint64_t have, uint64_t ask,
                              uint64_t n_holders, bool holds_some) {
        uint64_t pool, want, parts;

        if (used > limit || have > used)
                return false;           /* limit lowered across a restart */
        if (!holds_some)
                n_holders++;
        pool = limit - used + have;
        parts = n_holders + 1;
        if (__builtin_add_overflow(have, ask, &want))
                return false;
        return want <= pool / parts + (pool % parts != 0);
}

/* Would charging @uid @n more buffers of @bytes bytes and @fds fds in all
 * break a limit? Per uid: fixed limits; globally: the fair share. Usage may
 * already be over a limit (limits lowered across a restart): then nothing
 * more is granted. */
static int check_buffer_quota(Broker *b, uid_t uid, uint64_t n, uint64_t bytes, uint64_t fds, BrokerError *err) {
        const BrokerLimits *l = &b->limits;
        const UidUsage *u = usage_get(b, uid, false);
        const BrokerStats *st = &b->stats;
        uint64_t buffers = u ? u->buffers : 0, used = u ? u->bytes : 0, used_fds = u ? u->fds : 0;
        bool holds = buffers > 0;

        if (buffers >= l->max_buffers_per_uid || n > l->max_buffers_per_uid - buffers)
                return refuse(err, -EDQUOT, "uid %u has %" PRIu64 " buffers and may have %" PRIu64 "; %" PRIu64 " more asked",
                              (unsigned) uid, buffers, l->max_buffers_per_uid, n);
        if (used >= l->max_bytes_per_uid || bytes > l->max_bytes_per_uid - used)
                return refuse(err, -EDQUOT,
                              "uid %u would exceed its limit of %" PRIu64 " bytes (%" PRIu64 " in use, %" PRIu64 " asked)",
                              (unsigned) uid, l->max_bytes_per_uid, used, bytes);
        if (!fair_share_allows(l->max_buffers, st->buffers, buffers, n, b->n_uids_with_buffers, holds))
                return refuse(err, -EDQUOT,
                              "uid %u has %" PRIu64 " of the %" PRIu64 " buffers in use (limit %" PRIu64 ", shared fairly among %" PRIu64 " uids); %" PRIu64 " more asked",
                              (unsigned) uid, buffers, st->buffers, l->max_buffers,
                              b->n_uids_with_buffers + !holds, n);
        if (!fair_share_allows(l->max_bytes, st->bytes, used, bytes, b->n_uids_with_buffers, holds))
                return refuse(err, -EDQUOT,
                              "uid %u has %" PRIu64 " of the %" PRIu64 " bytes in use (limit %" PRIu64 ", shared fairly among %" PRIu64 " uids); %" PRIu64 " more asked",
                              (unsigned) uid, used, st->bytes, l->max_bytes, b->n_uids_with_buffers + !holds, bytes);
        if (!fair_share_allows(l->max_fds, st->fds, used_fds, fds, b->n_uids_with_buffers, holds))
                return refuse(err, -EDQUOT,
                              "uid %u has %" PRIu64 " of the %" PRIu64 " file descriptors the broker keeps (limit %" PRIu64 ", shared fairly among %" PRIu64 " uids); %" PRIu64 " more needed",
                              (unsigned) uid, used_fds, st->fds, l->max_fds, b->n_uids_with_buffers + !holds, fds);
        return 0;
}

static int check_token_quota(Broker *b, uid_t uid, BrokerError *err) {
        const BrokerLimits *l = &b->limits;
        const UidUsage *u = usage_get(b, uid, false);
        uint64_t tokens = u ? u->tokens : 0;

        if (tokens >= l->max_tokens_per_uid)
                return refuse(err, -EDQUOT, "uid %u already has %" PRIu64 " tokens, the limit per uid",
                              (unsigned) uid, tokens);
        if (!fair_share_allows(l->max_tokens, b->stats.tokens, tokens, 1, b->n_uids_with_tokens, tokens > 0))
                return refuse(err, -EDQUOT,
                              "uid %u has %" PRIu64 " of the %" PRIu64 " tokens in use (limit %" PRIu64 ", shared fairly among %" PRIu64 " uids)",
                              (unsigned) uid, tokens, b->stats.tokens, l->max_tokens,
                              b->n_uids_with_tokens + (tokens == 0));
        return 0;
}

/* The one way a token becomes known, new or restored. A new one (@id NULL)
 * gets a random id and is charged to @owner_uid within its quota; a
 * restored one keeps @id (well-formed, not in use) and is charged whatever
 * the quota says (it existed). Nothing is left on failure. */
static int token_register(Broker *b, Buffer *buf, const char *id, uid_t owner_uid, const ShareOptions *opts,
                          uint64_t expire_usec, BrokerError *err, Token **ret) {
        _cleanup_free_ Token *t = NULL;
        UidUsage *u;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return fail(err, -ENOMEM, "Out of memory");
        if (id) {
                if (!token_well_formed(id) || find_token(b, id))
                        return refuse(err, -EINVAL, "Token '%.*s' is malformed or in use",
                                      (int) utf8_prefix_len(id, 64), id);
                memcpy(t->id, id, BB_TOKEN_LEN + 1);
        } else {
                r = check_token_quota(b, owner_uid, err);
                if (r < 0)
                        return r;
                /* 128 random bits: a collision means a broken RNG, but be exact anyway. */
                do {
                        r = token_generate(t->id);
                        if (r < 0)
                                return fail(err, r, "Failed to get random bytes: %s", strerror(-r));
                } while (find_token(b, t->id));
        }

        u = usage_get(b, owner_uid, true);
        if (!u || !tsearch(t, &b->token_index, token_compare)) {
                usage_gc(b, u);
                return fail(err, -ENOMEM, "Out of memory");
        }
        t->broker = b;
        t->buffer = buf;
        t->owner_uid = owner_uid;
        t->bound_uid = opts->bound_uid;
        t->read_only = opts->read_only;
        t->single_use = opts->single_use;
        t->expire_usec = expire_usec;
        TAILQ_INSERT_TAIL(&buf->tokens, t, by_buffer);
        TAILQ_INSERT_TAIL(&b->tokens, t, link);
        usage_add_token(b, u);
        state_changed(b, BROKER_TOKEN_ADDED, buf, NULL, t);
        if (ret)
                *ret = t;
        TAKE_PTR(t);
        return 0;
}

/* A new buffer of @n_planes planes (fds -1), not registered yet: freeing it
 * undoes everything. */
static int buffer_new(Broker *b, uid_t owner, const char *kind, const char *name, unsigned n_planes,
                      bool persistent, uint64_t ttl_usec, uint64_t now, Buffer **ret) {
        _cleanup_(buffer_freep) Buffer *buf = NULL;

        assert(n_planes > 0 && n_planes <= BB_PLANES_MAX);
        buf = calloc(1, sizeof(*buf) + n_planes * sizeof(BufferPlane));
        if (!buf)
                return -ENOMEM;
        buf->broker = b;
        buf->kind = kind;
        buf->owner_uid = owner;
        buf->persistent = persistent;
        buf->expire_usec = ttl_usec > 0 ? usec_add(now, ttl_usec) : USEC_INFINITY;
        buf->created_usec = realtime_usec();
        buf->page_size = page_size();
        buf->n_planes = n_planes;
        for (unsigned i = 0; i < n_planes; i++)
                buf->planes[i] = (BufferPlane) { .fd = -1, .ro_fd = -1 };
        buf->lease_wd = -1;
        buf->shmid = -1;
        TAILQ_INIT(&buf->holds);
        TAILQ_INIT(&buf->tokens);

        buf->name = strdup(name);
        if (!buf->name)
                return -ENOMEM;

        *ret = TAKE_PTR(buf);
        return 0;
}

/* Tell the bus layer; if it refuses, the buffer is unregistered again,
 * unannounced. */
static int buffer_announce(Broker *b, Buffer *buf) {
        int r;

        if (!b->callbacks.buffer_added)
                return 0;
        r = b->callbacks.buffer_added(b, buf, b->userdata);
        if (r < 0)
                buffer_unregister(b, buf, BROKER_DROP_NONE);
        return r;
}

/* The one way a buffer becomes known, new or restored: give it an id, index
 * and charge it, make @holder (if it has a name) its holder, and announce it
 * (buffer_added). Quotas are the caller's to check, before allocating (a
 * restore does not: the buffer existed). @restoring: @buf has its id from
 * before a restart (it must be free), and is not announced: it is in the fd
 * store already. On failure nothing is left registered, and @buf is still
 * the caller's to free. */
static int buffer_register(Broker *b, Buffer *buf, const Caller *holder, bool restoring, BrokerError *err) {
        Buffer *after;
        UidUsage *u;
        int r;

        if (!restoring)
                buf->id = b->next_id;
        else if (buf->id == 0 || broker_find_buffer(b, buf->id))
                return refuse(err, -EINVAL, "Buffer id %" PRIu64 " is invalid or in use", buf->id);

        if (asprintf(&buf->path, BB_BUFFER_PATH_PREFIX "/%" PRIu64, buf->id) < 0) {
                buf->path = NULL;
                return fail(err, -ENOMEM, "Out of memory");
        }
        u = usage_get(b, buf->owner_uid, true);
        if (!u || !tsearch(buf, &b->buffer_index, buffer_compare)) {
                usage_gc(b, u);
                return fail(err, -ENOMEM, "Out of memory");
        }

        /* Keep id order in the list, whatever order ids come in (the restore). */
        after = TAILQ_LAST(&b->buffers, Buffer_list);
        while (after && after->id > buf->id)
                after = TAILQ_PREV(after, Buffer_list, link);
        if (after)
                TAILQ_INSERT_AFTER(&b->buffers, after, buf, link);
        else
                TAILQ_INSERT_HEAD(&b->buffers, buf, link);
        if (buf->id >= b->next_id)
                b->next_id = buf->id + 1;
        usage_add_buffer(b, u, buf);

        if (holder && holder->name) {
                r = hold_add(b, buf, holder);
                if (r < 0) {
                        buffer_unregister(b, buf, BROKER_DROP_NONE);
                        return fail(err, r, "Failed to register the caller as holder: %s", strerror(-r));
                }
        }

        if (restoring)
                return 0;
        /* Before anyone gets a description of it (restored buffers have
         * descriptions out there that were never counted: no lease). */
        lease_watch(b, buf);
        r = buffer_announce(b, buf);
        if (r < 0)
                return fail(err, r, "Failed to keep the buffer for a restart of the daemon (file descriptor store): %s",
                            strerror(-r));
        /* Only now: announcing it names its V4L2 queue (the tag). */
        state_changed(b, BROKER_BUFFER_ADDED, buf, NULL, NULL);
        return 0;
}

/* Register @n new buffers, all or none: on failure the ones registered
 * are dropped (announced, so the fd store lets them go too) and their
 * slots cleared; the caller frees the rest. */
static int register_all(Broker *b, Buffer **bufs, unsigned n, const Caller *caller, BrokerError *err) {
        for (unsigned i = 0; i < n; i++) {
                int r = buffer_register(b, bufs[i], caller, false, err);

                if (r < 0) {
                        while (i > 0) {
                                buffer_drop(b, bufs[--i], BROKER_DROP_UNDONE);
                                bufs[i] = NULL;
                        }
                        return r;
                }
        }
        return 0;
}

/* A file buffer: an unnamed file in the directory of --file-dir
 * (tmpfile.h). It needs no destroy_object: its blocks go with its last
 * description. */
static int allocate_file(Broker *b, Buffer *buf, const CreateRequest *req, BrokerError *err) {
        int r;

        if (b->file_dir_fd < 0)
                return refuse(err, -EOPNOTSUPP,
                              "No directory for file buffers: start bufbrokerd with --file-dir= (a directory of its own "
                              "uid, not writable by others, on a filesystem with O_TMPFILE; its log says why one "
                              "was refused)");
        r = tmpfile_new(b->file_dir_fd, buf->size, req->prefault, &buf->planes[0].fd);
        if (r == -ENOSPC && req->prefault)
                return refuse(err, r, "Not enough room on the filesystem of the file directory to prefault a buffer "
                              "of %" PRIu64 " bytes", buf->size);
        if (r == -ENOSPC)
                return refuse(err, r, "The filesystem of the file directory has no room for another file (no inode left)");
        if (r == -EFBIG)
                return refuse(err, -ENOSPC, "A buffer of %" PRIu64 " bytes is larger than a file on the filesystem of "
                              "the file directory can be", buf->size);
        if (r == -EOPNOTSUPP)
                return refuse(err, r, req->prefault ? "The filesystem of the file directory cannot allocate ahead (fallocate)"
                                                    : "The filesystem of the file directory makes no unnamed files (O_TMPFILE)");
        if (r < 0)
                return fail(err, r, "Failed to create a file buffer of %" PRIu64 " bytes: %s", buf->size, strerror(-r));
        return 0;
}

/* Let @uid open @buf's name: posix buffers only (the others have none). */
static int buffer_grant(Buffer *buf, uid_t uid, bool writable, BrokerError *err) {
        int r;

        if (strcmp(buf->kind, BB_KIND_POSIX) != 0)
                return 0;
        r = shm_posix_grant(buf->planes[0].fd, uid, writable);
        if (r == -EOPNOTSUPP)
                return refuse(err, r, "POSIX shared memory buffers are not available here: /dev/shm takes no POSIX ACLs, "
                              "so the daemon cannot let uid %u open %s", (unsigned) uid, buf->shm_name);
        if (r < 0)
                return fail(err, r, "Failed to let uid %u open %s (its ACL): %s", (unsigned) uid, buf->shm_name,
                            strerror(-r));
        return 0;
}

/* A SysV segment for @buf, its owner's; no fd. */
static int allocate_sysv(Buffer *buf, const CreateRequest *req, BrokerError *err) {
        const char *why = NULL;
        int r;

        r = shm_sysv_new(&(ShmSysvRequest) {
                                 .size = buf->size,
                                 .owner_uid = buf->owner_uid,
                                 .read_only = buf->read_only,
                                 .prefault = req->prefault,
                         },
                         &buf->shmid, &why);
        if (r == -ENOSPC)
                return refuse(err, r, "Cannot create a SysV segment of %" PRIu64 " bytes: %s", buf->size,
                              why ?: "no room");
        if (r < 0)
                return fail(err, r, "Failed to create a SysV segment of %" PRIu64 " bytes: %s", buf->size,
                            strerror(-r));
        return 0;
}

/* A POSIX shm object (shm-posix.h) that its owner may open by name. On
 * failure the caller's buffer_destroy() unlinks a name already made. */
static int allocate_posix(Buffer *buf, const CreateRequest *req, BrokerError *err) {
        int r;

        r = shm_posix_new(buf->size, req->prefault, &buf->shm_name, &buf->planes[0].fd);
        if (r == -ENOSPC)
                return refuse(err, r, "Not enough memory (or room in /dev/shm) to prefault a buffer of %" PRIu64 " bytes",
                              buf->size);
        if (r < 0)
                return fail(err, r, "Failed to create a POSIX shared memory object of %" PRIu64 " bytes: %s", buf->size,
                            strerror(-r));
        return buffer_grant(buf, buf->owner_uid, !buf->read_only, err);
}

/* A sealed memfd (memfd.h). */
static int allocate_memfd(Buffer *buf, const CreateRequest *req, BrokerError *err) {
        int r;

        r = memfd_new_sealed(req, &buf->planes[0].fd);
        if (r == -ENOSPC && req->hugetlb)
                return refuse(err, r, "Not enough free huge pages for a buffer of %" PRIu64 " bytes (%" PRIu64
                              " pages of %" PRIu64 " bytes each; see HugePages_Free in /proc/meminfo)",
                              buf->size, buf->size / buf->page_size, buf->page_size);
        if (r == -ENOSPC)
                return refuse(err, r, "Not enough memory to prefault a buffer of %" PRIu64 " bytes", buf->size);
        if (r == -EOPNOTSUPP)
                return refuse(err, r, "Huge pages are not available: the kernel cannot seal hugetlbfs files");
        if (r < 0)
                return fail(err, r, "Failed to create a memfd of %" PRIu64 " bytes: %s", buf->size, strerror(-r));
        return 0;
}

/* Make the kernel object of a new @buf (not registered yet) of its kind
 * and @buf->size bytes: each kind's allocator, and its refusals. */
static int buffer_allocate(Broker *b, Buffer *buf, const CreateRequest *req, BrokerError *err) {
        if (strcmp(buf->kind, BB_KIND_POSIX) == 0)
                return allocate_posix(buf, req, err);
        if (is_sysv(buf))
                return allocate_sysv(buf, req, err);
        if (strcmp(buf->kind, BB_KIND_FILE) == 0)
                return allocate_file(b, buf, req, err);
        assert(strcmp(buf->kind, BB_KIND_MEMFD) == 0);  /* create_kind() knows no other */
        return allocate_memfd(buf, req, err);
}

/* The BB_KIND_* constant (static storage: buf->kind points to it) for a
 * kind Create takes (NULL: memfd); NULL for any other string. */
static const char *create_kind(const char *kind) {
        static const char *const kinds[] = { BB_KIND_MEMFD, BB_KIND_POSIX, BB_KIND_SYSV, BB_KIND_FILE };

        if (!kind)
                return BB_KIND_MEMFD;
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (strcmp(kind, kinds[i]) == 0)
                        return kinds[i];
        return NULL;
}

int broker_create(Broker *b, const Caller *caller, const CreateRequest *req, uint64_t now,
                  BrokerError *err, Buffer **ret) {
        Buffer *bufs[BB_CREATE_BATCH_MAX] = {};
        CreateRequest alloc = *req;
        uint64_t page = page_size(), size = req->size, total;
        unsigned n = req->count ? req->count : 1, i;
        const char *kind = create_kind(req->kind);
        int r;

        r = broker_validate_name(req->name, err);
        if (r < 0)
                return r;
        if (!kind)
                return refuse(err, -EINVAL, "Unknown buffer kind '%s': memfd, posix, sysv or file", req->kind);
        if (req->hugetlb && strcmp(kind, BB_KIND_MEMFD) != 0)
                return refuse(err, -EOPNOTSUPP, "Option 'hugetlb' is for memfd buffers, not for kind %s", kind);
        if (n > BB_CREATE_BATCH_MAX)
                return refuse(err, -EINVAL, "%u buffers asked in one call; at most %u", n, BB_CREATE_BATCH_MAX);
        if (size == 0)
                return refuse(err, -EINVAL, "Buffer size must not be 0");
        if (size > b->limits.max_buffer_size)
                return refuse(err, -EDQUOT, "Buffer size %" PRIu64 " exceeds the limit of %" PRIu64 " bytes",
                            size, b->limits.max_buffer_size);
        if (!req->persistent && !caller->name)
                return refuse(err, -EINVAL, "A buffer without a holder must be persistent");

        if (req->hugetlb) {
                int64_t huge = memfd_huge_page_size();

                if (huge == -EOPNOTSUPP)
                        return refuse(err, -EOPNOTSUPP,
                                      "Huge pages are not available: the kernel has no hugetlbfs, or cannot seal its files");
                if (huge < 0)
                        return fail(err, (int) huge, "Failed to learn the huge page size: %s", strerror((int) -huge));
                page = (uint64_t) huge;
        }
        if (size > UINT64_MAX - (page - 1))
                return refuse(err, -EDQUOT, "Buffer size %" PRIu64 " cannot be rounded up to a page", size);
        /* What is charged is what the kernel allocates: whole (huge) pages. */
        size = (size + page - 1) / page * page;
        if (size > b->limits.max_buffer_size)
                return refuse(err, -EDQUOT, "Buffer size %" PRIu64 " (page-aligned) exceeds the limit of %" PRIu64 " bytes",
                            size, b->limits.max_buffer_size);
        if (__builtin_mul_overflow(size, (uint64_t) n, &total))
                return refuse(err, -EDQUOT, "%u buffers of %" PRIu64 " bytes exceed any limit", n, size);

        /* A sysv buffer keeps no fd: nothing of the fd budget. */
        r = check_buffer_quota(b, caller->uid, n, total, strcmp(kind, BB_KIND_SYSV) == 0 ? 0 : n, err);
        if (r < 0)
                return r;

        alloc.size = size;
        for (i = 0; i < n; i++) {
                r = buffer_new(b, caller->uid, kind, req->name, 1, req->persistent, req->ttl_usec, now, &bufs[i]);
                if (r < 0) {
                        r = fail(err, r, "Out of memory");
                        goto fail;
                }
                bufs[i]->size = size;
                bufs[i]->n_fds = is_sysv(bufs[i]) ? 0 : 1;
                bufs[i]->planes[0].length = size;
                bufs[i]->page_size = page;
                bufs[i]->prefaulted = req->prefault;
                r = buffer_allocate(b, bufs[i], &alloc, err);
                if (r < 0)
                        goto fail;
        }
        r = register_all(b, bufs, n, caller, err);
        if (r < 0)
                goto fail;
        memcpy(ret, bufs, n * sizeof(Buffer *));
        return 0;

fail:
        for (i = 0; i < n; i++)
                buffer_destroy(b, bufs[i]);
        return r;
}

int broker_create_v4l2(Broker *b, const Caller *caller, const V4L2Request *req, uint64_t now,
                       BrokerError *err, Buffer ***ret, unsigned *ret_n) {
        _cleanup_(v4l2_queue_unrefp) V4L2Queue *q = NULL;
        _cleanup_free_ Buffer **bufs = NULL;
        const V4L2Format *fmt;
        const char *device = req->device;
        bool read_only = req->read_only;
        uint64_t total = 0, total_fds = 0, per_buffer = 0, page = page_size();
        unsigned n, i, fds_per_buffer;
        int r;

        r = broker_validate_name(req->name, err);
        if (r < 0)
                return r;
        if (!req->persistent && !caller->name)
                return refuse(err, -EINVAL, "A buffer without a holder must be persistent");

        /* Count first: no point in allocating device memory we cannot hand out. */
        r = check_buffer_quota(b, caller->uid, req->count, 0, req->count, err);
        if (r < 0)
                return r;

        r = v4l2_queue_new(req, caller, err, &q);
        if (r < 0)
                return r;
        fmt = v4l2_queue_format(q);

        /* The format tells the sizes: refuse before the driver allocates
         * device memory that could not be handed out anyway. */
        for (unsigned p = 0; p < fmt->n_planes; p++)
                per_buffer += ((uint64_t) fmt->sizeimage[p] + page - 1) / page * page;
        if (per_buffer > b->limits.max_buffer_size)
                return refuse(err, -EDQUOT, "A %ux%u buffer of '%s' takes %" PRIu64 " bytes, over the limit of %" PRIu64,
                            fmt->width, fmt->height, device, per_buffer, b->limits.max_buffer_size);
        /* Every plane is exported once, twice unless read-only; and each
         * buffer is charged the queue's device fd too (conservative: the
         * queue has one, kept until its last buffer goes). */
        fds_per_buffer = fmt->n_planes * (read_only ? 1 : 2) + 1;
        r = check_buffer_quota(b, caller->uid, req->count, per_buffer * req->count,
                               (uint64_t) fds_per_buffer * req->count, err);
        if (r < 0)
                return r;

        r = v4l2_queue_allocate(q, req->count, err);
        if (r < 0)
                return r;
        n = v4l2_queue_count(q);

        bufs = calloc(n, sizeof(Buffer *));
        if (!bufs)
                return fail(err, -ENOMEM, "Out of memory");

        /* Build every buffer before registering any, so that a failure halfway
         * leaves nothing anyone has seen. */
        for (i = 0; i < n; i++) {
                V4L2Plane planes[BB_PLANES_MAX], ro_planes[BB_PLANES_MAX];
                char bufname[BB_NAME_MAX + 16];
                Buffer *buf;

                snprintf(bufname, sizeof(bufname), "%s%u", req->name, i);
                r = buffer_new(b, caller->uid, BB_KIND_V4L2, bufname, fmt->n_planes, req->persistent, req->ttl_usec,
                               now, &buf);
                if (r < 0) {
                        (void) fail(err, r, "Out of memory");
                        goto fail;
                }
                bufs[i] = buf;
                buf->queue = v4l2_queue_ref(q);
                buf->v4l2_index = i;
                buf->read_only = read_only;
                buf->n_fds = fds_per_buffer;
                total_fds += fds_per_buffer;

                r = v4l2_queue_export(q, i, read_only, bufname, err, planes);
                if (r < 0)
                        goto fail;
                for (unsigned p = 0; p < fmt->n_planes; p++)
                        buf->planes[p] = (BufferPlane) {
                                .fd = planes[p].fd,
                                .ro_fd = -1,
                                .length = planes[p].length,
                                .bytesperline = planes[p].bytesperline,
                                .offset = planes[p].offset,
                        };
                if (!read_only) {
                        r = v4l2_queue_export(q, i, true, bufname, err, ro_planes);
                        if (r < 0)
                                goto fail;
                        for (unsigned p = 0; p < fmt->n_planes; p++)
                                buf->planes[p].ro_fd = ro_planes[p].fd;
                }
                for (unsigned p = 0; p < fmt->n_planes; p++)
                        buf->size += buf->planes[p].length;
                total += buf->size;
                if (buf->size > b->limits.max_buffer_size) {
                        r = refuse(err, -EDQUOT, "Buffer %u of '%s' has %" PRIu64 " bytes, over the limit of %" PRIu64,
                                 i, device, buf->size, b->limits.max_buffer_size);
                        goto fail;
                }
        }

        /* Again with what the driver really gave (count and lengths). */
        r = check_buffer_quota(b, caller->uid, n, total, total_fds, err);
        if (r < 0)
                goto fail;

        r = register_all(b, bufs, n, caller, err);
        if (r < 0)
                goto fail;

        *ret = TAKE_PTR(bufs);
        *ret_n = n;
        return 0;

fail:
        for (i = 0; i < n; i++)
                bufs[i] = buffer_free(bufs[i]);
        return r;
}

int buffer_open_fds(Buffer *buf, bool read_only, int ret_fds[BB_PLANES_MAX]) {
        unsigned i;
        int fd;

        read_only = read_only || buf->read_only;
        if (is_sysv(buf)) {
                /* Attached by its shmid: there is no fd to give. */
                for (i = 0; i < buf->n_planes; i++)
                        ret_fds[i] = -1;
                return 0;
        }
        for (i = 0; i < buf->n_planes; i++) {
                const BufferPlane *p = &buf->planes[i];

                if (buf->queue) {
                        /* A dma-buf cannot be reopened by path: hand out the
                         * export of the right mode itself. */
                        fd = fcntl(read_only && p->ro_fd >= 0 ? p->ro_fd : p->fd, F_DUPFD_CLOEXEC, 3);
                        if (fd < 0)
                                fd = negative_errno();
                } else
                        fd = fd_reopen(p->fd, read_only ? O_RDONLY : O_RDWR);
                if (fd < 0) {
                        while (i > 0)
                                safe_close(ret_fds[--i]);
                        return fd;
                }
                ret_fds[i] = fd;
        }
        return 0;
}

/* New fds for @caller, who becomes a holder; nothing changes on failure. */
static int open_and_hold(Broker *b, const Caller *caller, Buffer *buf, bool read_only, BrokerError *err,
                         int ret_fds[BB_PLANES_MAX]) {
        int r;

        /* Whoever gets an fd may open the name too, with the same rights.
         * Kept if what follows fails: the caller was entitled to it. */
        r = buffer_grant(buf, caller->uid, !(read_only || buf->read_only), err);
        if (r < 0)
                return r;

        r = buffer_open_fds(buf, read_only, ret_fds);
        if (r < 0)
                return fail(err, r, "Failed to open buffer %" PRIu64 ": %s", buf->id, strerror(-r));

        if (caller->name) {
                r = hold_add(b, buf, caller);
                if (r < 0) {
                        for (unsigned i = 0; i < buf->n_planes; i++)
                                safe_close(ret_fds[i]);
                        return fail(err, r, "Failed to register the caller as holder: %s", strerror(-r));
                }
        }
        return 0;
}

int broker_open(Broker *b, const Caller *caller, const char *token, uint64_t now,
                BrokerError *err, Buffer **ret, bool *ret_read_only, int ret_fds[BB_PLANES_MAX]) {
        Buffer *buf;
        Token *t;
        int r;

        if (!token_well_formed(token))
                return refuse(err, -EINVAL, "Token '%.*s' is malformed: expected %u lower-case hex digits",
                            (int) utf8_prefix_len(token, 64), token, BB_TOKEN_LEN);

        t = find_token(b, token);
        if (t && t->expire_usec <= now) {
                token_free(b, t);
                t = NULL;
        }
        if (!t)
                return refuse(err, -ENOKEY, "No token %s: unknown, expired, used up, revoked, or its buffer was released",
                            token);

        if (t->bound_uid != UID_INVALID && t->bound_uid != caller->uid)
                return refuse(err, -EACCES, "Token is bound to uid %u, caller is uid %u",
                            (unsigned) t->bound_uid, (unsigned) caller->uid);

        buf = t->buffer;
        if (is_sysv(buf) && caller->uid != buf->owner_uid && !broker_is_privileged(b, caller->uid))
                return refuse(err, -EOPNOTSUPP, "Buffer %" PRIu64 " is a SysV segment of uid %u, caller is uid %u: "
                              SYSV_ONE_UID, buf->id, (unsigned) buf->owner_uid, (unsigned) caller->uid);
        r = open_and_hold(b, caller, buf, t->read_only, err, ret_fds);
        if (r < 0)
                return r;

        *ret = buf;
        *ret_read_only = t->read_only || buf->read_only;
        if (t->single_use)
                token_free(b, t);
        return 0;
}

int broker_open_fds(Broker *b, const Caller *caller, Buffer *buf, bool read_only, BrokerError *err,
                    int ret_fds[BB_PLANES_MAX]) {
        if (!may_manage(b, caller, buf))
                return refuse(err, -EPERM, "Buffer %" PRIu64 " belongs to uid %u; others open it with a token",
                            buf->id, (unsigned) buf->owner_uid);
        if (is_sysv(buf) && read_only && !buf->read_only)
                return refuse(err, -EOPNOTSUPP, "Buffer %" PRIu64 " is a SysV segment: it has no fds, and its owner "
                              "uid may attach it read-write; attach it with SHM_RDONLY instead", buf->id);

        return open_and_hold(b, caller, buf, read_only, err, ret_fds);
}

int broker_share(Broker *b, const Caller *caller, Buffer *buf, const ShareOptions *opts,
                 uint64_t now, BrokerError *err, const char **ret_token) {
        Token *t;
        int r;

        if (!may_manage(b, caller, buf))
                return refuse(err, -EPERM, "Buffer %" PRIu64 " belongs to uid %u; only its owner or root may share it",
                              buf->id, (unsigned) buf->owner_uid);

        if (is_sysv(buf) && opts->bound_uid != UID_INVALID && opts->bound_uid != buf->owner_uid &&
            !broker_is_privileged(b, opts->bound_uid))
                return refuse(err, -EOPNOTSUPP, "Buffer %" PRIu64 " is a SysV segment of uid %u, not shared with uid %u: "
                              SYSV_ONE_UID, buf->id, (unsigned) buf->owner_uid, (unsigned) opts->bound_uid);
        if (is_sysv(buf) && opts->read_only && !buf->read_only)
                return refuse(err, -EOPNOTSUPP, "Buffer %" PRIu64 " is a SysV segment: whoever opens a share of it is "
                              "its owner uid, who may attach it read-write anyway; share a memfd or posix buffer "
                              "read-only", buf->id);
        r = token_register(b, buf, NULL, caller->uid, opts,
                           opts->ttl_usec > 0 ? usec_add(now, opts->ttl_usec) : USEC_INFINITY, err, &t);
        if (r < 0)
                return r;

        *ret_token = t->id;
        return 0;
}

int broker_revoke_buffer_token(Broker *b, const Caller *caller, Buffer *buf, const char *token, uint64_t now,
                               BrokerError *err) {
        Token *t;

        /* Ownership first: whoever may not revoke learns nothing of tokens. */
        if (!may_manage(b, caller, buf))
                return refuse(err, -EPERM, "Buffer %" PRIu64 " belongs to uid %u; only its owner or root may revoke its tokens",
                              buf->id, (unsigned) buf->owner_uid);
        if (!token_well_formed(token))
                return refuse(err, -EINVAL, "Token '%.*s' is malformed: expected %u lower-case hex digits",
                              (int) utf8_prefix_len(token, 64), token, BB_TOKEN_LEN);

        t = find_token(b, token);
        if (!t || t->buffer != buf || t->expire_usec <= now)
                return refuse(err, -ENOKEY, "Buffer %" PRIu64 " has no token %s: unknown, expired, used up or revoked",
                              buf->id, token);
        token_free(b, t);
        return 0;
}

int broker_revoke_buffer_tokens(Broker *b, const Caller *caller, Buffer *buf, uint64_t now, BrokerError *err,
                                unsigned *ret_count) {
        unsigned n = 0;
        Token *t;

        if (!may_manage(b, caller, buf))
                return refuse(err, -EPERM, "Buffer %" PRIu64 " belongs to uid %u; only its owner or root may revoke its tokens",
                              buf->id, (unsigned) buf->owner_uid);
        while ((t = TAILQ_FIRST(&buf->tokens))) {
                n += t->expire_usec > now;
                token_free(b, t);
        }
        *ret_count = n;
        return 0;
}

int broker_release(Broker *b, const Caller *caller, Buffer *buf, BrokerError *err) {
        Client *c = caller->name ? broker_find_client(b, caller->name) : NULL;
        Hold *h = c ? hold_find(buf, c) : NULL;
        bool manager = may_manage(b, caller, buf);

        if (!h && !manager)
                return refuse(err, -EPERM, "Buffer %" PRIu64 " belongs to uid %u and the caller does not hold it",
                            buf->id, (unsigned) buf->owner_uid);

        /* The owner's Release ends persistence; anyone's ends their own hold. */
        if (manager && buf->persistent) {
                buf->persistent = false;
                buffer_changed(b, buf, BB_PROP_PERSISTENT);
        }
        b->generation++;
        /* A buffer that goes with this hold goes with the hold still there,
         * so that the releaser, a holder until now, hears why too. */
        if (buf->n_holds == (h ? 1u : 0u) && !buf->persistent && !kernel_keeps(b, buf)) {
                buffer_drop(b, buf, BROKER_DROP_RELEASED);
                return 0;
        }
        if (h)
                hold_free(b, h);
        return 0;
}

int broker_release_many(Broker *b, const Caller *caller, Buffer *const *bufs, size_t n, BrokerError *err) {
        Client *c = caller->name ? broker_find_client(b, caller->name) : NULL;

        /* First whether every one may go, so that a refusal changes nothing. */
        for (size_t i = 0; i < n; i++)
                if (!(c && hold_find(bufs[i], c)) && !may_manage(b, caller, bufs[i]))
                        return refuse(err, -EPERM, "Buffer %" PRIu64 " belongs to uid %u and the caller does not hold it; none released",
                                    bufs[i]->id, (unsigned) bufs[i]->owner_uid);
        /* Now none can be refused: broker_release() checks only that. */
        for (size_t i = 0; i < n; i++)
                (void) broker_release(b, caller, bufs[i], err);
        return 0;
}

int broker_freeze(Broker *b, const Caller *caller, Buffer *buf, BrokerError *err) {
        int r;

        if (!may_manage(b, caller, buf))
                return refuse(err, -EPERM, "Buffer %" PRIu64 " belongs to uid %u; only its owner or root may freeze it",
                            buf->id, (unsigned) buf->owner_uid);
        if (buf->frozen)
                return refuse(err, -EALREADY, "Buffer %" PRIu64 " is already frozen", buf->id);
        if (strcmp(buf->kind, BB_KIND_MEMFD) != 0)
                return refuse(err, -EOPNOTSUPP, "Buffers of kind %s cannot be frozen", buf->kind);

        r = memfd_freeze(buf->planes[0].fd);
        if (r == -EBUSY)
                return refuse(err, -ETXTBSY, "Buffer %" PRIu64 " is mapped writable somewhere (or a holder sealed its seals); unmap it before freezing",
                            buf->id);
        if (r == -EALREADY) {
                /* A writable holder sealed it on its own: it is frozen now. */
                buf->frozen = true;
                b->generation++;
                buffer_changed(b, buf, BB_PROP_FROZEN);
                return refuse(err, r, "Buffer %" PRIu64 " is already frozen", buf->id);
        }
        if (r < 0)
                return fail(err, r, "Failed to seal buffer %" PRIu64 ": %s", buf->id, strerror(-r));

        buf->frozen = true;
        b->generation++;
        buffer_changed(b, buf, BB_PROP_FROZEN);
        return 0;
}

void broker_drop_buffer(Broker *b, Buffer *buf) {
        buffer_drop(b, buf, BROKER_DROP_UNDONE);
}

void broker_unhold(Broker *b, Buffer *buf, const char *name) {
        Client *c = broker_find_client(b, name);
        Hold *h = c ? hold_find(buf, c) : NULL;

        if (!h)
                return;
        hold_free(b, h);
        buffer_gc(b, buf, BROKER_DROP_UNDONE);
}

int broker_revoke_token(Broker *b, const char *id) {
        Token *t = find_token(b, id);

        if (!t)
                return -ENOKEY;
        token_free(b, t);
        return 0;
}

bool broker_holds(Broker *b, Buffer *buf, const char *name) {
        Client *c = name ? broker_find_client(b, name) : NULL;
        return c && hold_find(buf, c);
}

const Token *broker_find_token(Broker *b, const char *id, uint64_t now) {
        const Token *t = find_token(b, id);
        return t && t->expire_usec > now ? t : NULL;
}

void broker_client_vanished(Broker *b, Client *c) {
        Hold *h;

        /* Take the client off the index first so that nothing finds it while
         * its holds go; the last hold_free() frees it. */
        while ((h = TAILQ_FIRST(&c->holds))) {
                Buffer *buf = h->buffer;
                bool last = TAILQ_NEXT(h, by_client) == NULL;

                hold_free(b, h);        /* frees c with the last hold */
                buffer_gc(b, buf, BROKER_DROP_HOLDERS_GONE);
                if (last)
                        return;
        }
        /* A client without holds is never registered. */
}

uint64_t broker_next_deadline(Broker *b) {
        uint64_t next = USEC_INFINITY;
        Buffer *buf;
        Token *t;

        TAILQ_FOREACH(buf, &b->buffers, link)
                if (buf->expire_usec < next)
                        next = buf->expire_usec;
        TAILQ_FOREACH(t, &b->tokens, link)
                if (t->expire_usec < next)
                        next = t->expire_usec;
        return next;
}

uint64_t broker_expire(Broker *b, uint64_t now) {
        Buffer *buf, *buf_next;
        Token *t, *t_next;

        for (t = TAILQ_FIRST(&b->tokens); t; t = t_next) {
                t_next = TAILQ_NEXT(t, link);
                if (t->expire_usec <= now)
                        token_free(b, t);
        }

        /* Dropping a buffer frees only its own tokens and holds, never another
         * buffer, so the next pointer stays valid. */
        for (buf = TAILQ_FIRST(&b->buffers); buf; buf = buf_next) {
                buf_next = TAILQ_NEXT(buf, link);
                if (buf->expire_usec <= now)
                        buffer_drop(b, buf, BROKER_DROP_EXPIRED);
        }

        return broker_next_deadline(b);
}

int broker_restore_buffer(Broker *b, const RestoredBuffer *rb, Buffer **ret) {
        _cleanup_(buffer_freep) Buffer *buf = NULL;
        const char *kind = rb->queue ? BB_KIND_V4L2 : create_kind(rb->kind);
        int r;

        if (rb->n_planes == 0 || rb->n_planes > BB_PLANES_MAX || !kind)
                return -EINVAL;
        if (rb->queue && rb->kind && strcmp(rb->kind, BB_KIND_V4L2) != 0)
                return -EINVAL;
        r = broker_validate_name(rb->name, NULL);
        if (r < 0)
                return r;

        r = buffer_new(b, rb->owner, kind, rb->name, rb->n_planes, rb->persistent, 0, 0, &buf);
        if (r < 0)
                return r;
        if (strcmp(kind, BB_KIND_POSIX) == 0) {
                /* Only a name the daemon makes: it is unlinked one day. */
                if (!shm_posix_name_valid(rb->handle))
                        return -EINVAL;
                buf->shm_name = strdup(rb->handle);
                if (!buf->shm_name)
                        return -ENOMEM;
        } else if (strcmp(kind, BB_KIND_SYSV) == 0) {
                uint64_t id;

                if (!rb->handle || parse_uint64(rb->handle, &id) < 0 || id > INT_MAX || rb->n_planes != 1)
                        return -EINVAL;
                /* The id may name another segment by now (the old one
                 * removed by its owner, the id reused): only one the
                 * daemon made, for this owner, of this size, is this
                 * buffer's. Anything else is not the daemon's to keep,
                 * nor to remove. */
                r = shm_sysv_verify((int) id, rb->owner, rb->planes[0].length);
                if (r < 0)
                        return log_warning_errno(r == -EIDRM ? -ENOENT : r,
                                                 "Buffer %" PRIu64 ": SysV segment %d is %s, dropping the buffer",
                                                 rb->id, (int) id,
                                                 r == -EIDRM ? "gone" : "no longer the one the daemon made for it");
                buf->shmid = (int) id;
        }
        buf->id = rb->id;
        buf->frozen = rb->frozen;
        buf->read_only = rb->read_only;
        buf->expire_usec = rb->expire_usec;
        buf->created_usec = rb->created_usec;
        buf->queue = v4l2_queue_ref(rb->queue);
        buf->v4l2_index = rb->v4l2_index;
        buf->prefaulted = rb->prefaulted;
        memcpy(buf->planes, rb->planes, rb->n_planes * sizeof(BufferPlane));
        if (buf->shm_name && shm_posix_names_fd(buf->shm_name, buf->planes[0].fd) <= 0) {
                /* Removed while no daemon ran (RemoveIPC=, an admin), and
                 * maybe made again by someone who knew it: never hand out or
                 * unlink a name that is not this buffer's file. */
                log_warning("Buffer %" PRIu64 ": %s no longer names its file; it is reachable by fd only", rb->id,
                            buf->shm_name);
                free(buf->shm_name);
                buf->shm_name = NULL;
        }
        if (!rb->queue && rb->planes[0].fd >= 0) {
                struct stat st;

                /* A hugetlbfs file's block size is its huge page size: a
                 * fact of the file, nothing to keep in the state. */
                if (fstat(rb->planes[0].fd, &st) >= 0 && st.st_blksize > 0)
                        buf->page_size = (uint64_t) st.st_blksize;
        }
        for (unsigned i = 0; i < rb->n_planes; i++) {
                if (__builtin_add_overflow(buf->size, rb->planes[i].length, &buf->size)) {
                        buf->n_planes = 0;      /* the fds stay the caller's */
                        return -EINVAL;
                }
                if (rb->planes[i].fd >= 0)
                        buf->n_fds += 1 + (rb->planes[i].ro_fd >= 0);
        }
        if (rb->queue)
                buf->n_fds++;           /* as broker_create_v4l2() charges it */

        r = buffer_register(b, buf, NULL, true, NULL);
        if (r < 0) {
                /* A segment found to be this buffer's goes with it: nobody
                 * else would remove it. */
                if (buf->shmid >= 0 && is_sysv(buf))
                        buffer_destroy_object(b, buf);
                /* The fds are taken on success only. */
                for (unsigned i = 0; i < rb->n_planes; i++)
                        buf->planes[i] = (BufferPlane) { .fd = -1, .ro_fd = -1 };
                return r;
        }
        /* No lease (see broker.h), but posix and file sizes stay guarded. */
        lease_watch_size_only(b, buf);
        *ret = TAKE_PTR(buf);
        return 0;
}

/* What the restored buffers name, sorted for bsearch(): the sweep below
 * asks once per object it finds, and there may be 100,000 of each. */
typedef struct Named {
        const char **names;
        size_t n_names;
        int *shmids;
        size_t n_shmids;
        unsigned removed;
} Named;

static int compare_names(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static int compare_ints(const void *a, const void *b) {
        int x = *(const int *) a, y = *(const int *) b;

        return (x > y) - (x < y);
}

static void sweep_name(const char *name, void *userdata) {
        Named *named = userdata;
        int r;

        if (bsearch(&name, named->names, named->n_names, sizeof(*named->names), compare_names))
                return;
        r = shm_posix_unlink(name);
        if (r < 0)
                log_warning_errno(r, "Cannot remove the stale %s", name);
        else {
                log_info("removed %s, left by an earlier run whose buffers are gone", name);
                named->removed++;
        }
}

static void sweep_segment(int shmid, void *userdata) {
        Named *named = userdata;
        int r;

        if (bsearch(&shmid, named->shmids, named->n_shmids, sizeof(*named->shmids), compare_ints))
                return;
        r = shm_sysv_remove(shmid);
        if (r < 0)
                log_warning_errno(r, "Cannot remove the stale SysV segment %d", shmid);
        else {
                log_info("removed SysV segment %d, left by an earlier run whose buffers are gone", shmid);
                named->removed++;
        }
}

int broker_remove_stale_objects(Broker *b) {
        _cleanup_free_ const char **names = NULL;
        _cleanup_free_ int *shmids = NULL;
        Named named = {};
        Buffer *buf;
        int r;

        names = calloc(b->stats.buffers + 1, sizeof(*names));
        shmids = calloc(b->stats.buffers + 1, sizeof(*shmids));
        if (!names || !shmids)
                return -ENOMEM;
        BROKER_FOREACH_BUFFER(buf, b) {
                if (buf->shm_name)
                        names[named.n_names++] = buf->shm_name;
                if (buf->shmid >= 0)
                        shmids[named.n_shmids++] = buf->shmid;
        }
        qsort(names, named.n_names, sizeof(*names), compare_names);
        qsort(shmids, named.n_shmids, sizeof(*shmids), compare_ints);
        named.names = names;
        named.shmids = shmids;

        r = shm_posix_foreach_own(sweep_name, &named);
        if (r < 0)
                log_warning_errno(r, "Cannot look for stale names in /dev/shm");
        r = shm_sysv_foreach_created(sweep_segment, &named);
        if (r < 0)
                log_warning_errno(r, "Cannot look for stale SysV segments");
        return (int) named.removed;
}

int broker_restore_hold(Broker *b, Buffer *buf, const Caller *holder) {
        return hold_add(b, buf, holder);
}

int broker_restore_token(Broker *b, Buffer *buf, const char *id, uid_t owner_uid, const ShareOptions *opts,
                         uint64_t expire_usec) {
        return token_register(b, buf, id, owner_uid, opts, expire_usec, NULL, NULL);
}

void broker_restore_done(Broker *b, uint64_t next_id) {
        Buffer *buf, *next;

        if (next_id > b->next_id)
                b->next_id = next_id;
        for (buf = TAILQ_FIRST(&b->buffers); buf; buf = next) {
                next = TAILQ_NEXT(buf, link);
                buffer_gc(b, buf, BROKER_DROP_HOLDERS_GONE);
        }
}

int broker_new(Broker **ret, const BrokerLimits *limits, const BrokerCallbacks *callbacks, void *userdata) {
        Broker *b;

        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;

        if (limits)
                b->limits = *limits;
        else
                broker_limits_default(&b->limits);
        if (callbacks)
                b->callbacks = *callbacks;
        b->userdata = userdata;
        b->self_uid = geteuid();
        b->next_id = 1;
        b->lease_fd = -1;
        b->file_dir_fd = -1;
        TAILQ_INIT(&b->buffers);
        TAILQ_INIT(&b->rechecks);
        TAILQ_INIT(&b->closed);
        TAILQ_INIT(&b->attached);
        TAILQ_INIT(&b->tokens);
        TAILQ_INIT(&b->clients);
        TAILQ_INIT(&b->usage);

        *ret = b;
        return 0;
}

Broker *broker_free(Broker *b) {
        Buffer *buf;

        if (!b)
                return NULL;

        /* Tear down quietly: the bus layer is going away too, and the
         * saved state stays as it is, for the next start. */
        b->state_changed = NULL;
        while ((buf = TAILQ_FIRST(&b->buffers)))
                buffer_drop(b, buf, BROKER_DROP_NONE);
        broker_leases_free(b);
        safe_close(b->file_dir_fd);
        shm_sysv_resident_forget();

        free(b);
        return NULL;
}
