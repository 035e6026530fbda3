/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who calls, and whose turn it is.
 *
 * Every incoming method call passes peer_filter() first. It is kept in its
 * caller's queue and handed back to sd-bus (sd_bus_enqueue_for_read(), after
 * which the filter lets it through) when it is the caller's turn:
 *
 * - Credentials without waiting: a caller's uid and groups come from one
 *   asynchronous GetConnectionCredentials when its first call arrives; its
 *   calls wait in its queue meanwhile, and the event loop serves everyone
 *   else. sd-bus would ask the bus synchronously, stalling the daemon for
 *   every new caller. The first call of a connection still waits for that
 *   answer: measured, it takes ~120 us longer than the connection's second
 *   call, beyond what a first Ping costs (dbus-daemon, pinned, 300 new
 *   connections, 3 runs: 124, 121, 116 us): the round trip, the bus's
 *   lookup, two more rounds of our loop. Once per connection, not per call.
 *   Asking ahead, on the NameOwnerChanged of every new connection, would
 *   hide it, but every connection on the bus would then cost us a wake, a
 *   call to the bus and a record until it goes, and most never call us.
 *   Nothing else on a call's way waits for the bus: no sd_bus_call() (only
 *   RequestName and, restoring, ListNames at start), every method
 *   SD_BUS_VTABLE_UNPRIVILEGED (sd-bus would ask the bus for the caller's
 *   credentials synchronously for the others), and no sd_bus_track.
 * - Disconnects without a match per client: one NameOwnerChanged match,
 *   installed before the name is owned, says when any connection goes
 *   (arg2=''); the peers we know drop their holds then. Per-client
 *   sd_bus_track would add a match rule per holder, and dbus-daemon allows
 *   512 per connection.
 * - Fairness: uids with calls ready are served in turn, one call each, and
 *   within a uid its connections in turn; a flooding uid gets its share, not
 *   everyone's. Reading from the socket goes first (reading is cheap and keeps
 *   the queues honest), but never more than READS_PER_DISPATCH in a row.
 *   While only one uid talks to us, its calls skip the queue (see
 *   may_run_now()): turns would change nothing and cost two rounds of the
 *   loop per call.
 * - Bounds: PEER_QUEUE_MAX calls per connection, UID_QUEUE_MAX per uid and
 *   TOTAL_QUEUE_MAX in all may wait, and TOTAL_QUEUE_BYTES; a call is at most
 *   CALL_BYTES_MAX (ours take a few hundred bytes, a bus allows 32 MiB).
 *   Beyond, a call is answered with LimitsExceeded at once.
 * - Output: while more than OUTPUT_BACKLOG_MAX of our output to the bus is
 *   unread, no call is handed to sd-bus. Replies leave in the order they
 *   were made; a flood's replies piling up in the socket would make every
 *   later reply wait behind them, whatever order the calls were served in.
 *
 * org.freedesktop.DBus.Peer (Ping) is not queued: sd-bus answers it itself,
 * and it shows whether the daemon is alive whatever the queues hold.
 */
#include <inttypes.h>
#include <linux/sockios.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "bus.h"

#define READS_PER_DISPATCH 16u
#define CALL_BYTES_MAX (64u * 1024u)
#define TOTAL_QUEUE_BYTES (64u * 1024u * 1024u)
#define OUTPUT_BACKLOG_MAX (32 * 1024)
#define OUTPUT_RECHECK_USEC 1000u
#define CONTENTION_USEC (50 * UINT64_C(1000))
#define FAIR_USEC (1000 * UINT64_C(1000))

static int peer_compare(const void *a, const void *b) {
        return strcmp(((const Peer *) a)->name, ((const Peer *) b)->name);
}

static int uid_queue_compare(const void *a, const void *b) {
        uid_t x = ((const UidQueue *) a)->uid, y = ((const UidQueue *) b)->uid;
        return x < y ? -1 : x > y;
}

Peer *peer_find(Manager *m, const char *name) {
        Peer key = { .name = (char *) name };
        void **n = tfind(&key, &m->peer_index, peer_compare);
        return n ? *n : NULL;
}

static Peer *peer_find_direct(Manager *m, sd_bus *bus) {
        Peer *p;

        /* Direct connections are few, and first in the list
         * (peer_add_direct()): the walk never reaches the bus's clients,
         * however many there are. */
        TAILQ_FOREACH(p, &m->peers, link) {
                if (!p->is_direct)
                        break;
                if (p->direct == bus)
                        return p;
        }
        return NULL;
}

/* Only the bus fills in the sender field for the sender: on a direct
 * connection the peer writes it, whatever it likes. */
static bool is_bus_connection(Manager *m, sd_bus *bus) {
        return bus && (bus == m->bus || bus == m->next_bus);
}

Peer *peer_of_message(Manager *m, sd_bus_message *msg) {
        sd_bus *bus = sd_bus_message_get_bus(msg);
        const char *sender;

        if (!is_bus_connection(m, bus))
                return peer_find_direct(m, bus);
        sender = sd_bus_message_get_sender(msg);
        return sender ? peer_find(m, sender) : NULL;
}

int peer_reply_error(sd_bus_message *msg, const char *name, const char *fmt, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char text[256];
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        sd_bus_error_set(&error, name, text);
        r = sd_bus_reply_method_error(msg, &error);
        return r < 0 ? r : 1;   /* answered (or no answer wanted): never 0 */
}

/* ------------------------------------------------------------ queues --- */

/* About how many bytes @msg's body takes: its strings and arrays, 8 for
 * anything else. sd-bus tells no message size; a walk is as long as the
 * message, which sd-bus has just read whole anyway. */
static int weigh(sd_bus_message *msg, unsigned depth, size_t *w) {
        int r;

        if (depth > 64)
                return -EBADMSG;
        for (;;) {
                const char *contents;
                char type;

                r = sd_bus_message_peek_type(msg, &type, &contents);
                if (r <= 0)
                        return r;
                if (type == SD_BUS_TYPE_ARRAY && strlen(contents) == 1 && strchr("ybnqiuxtd", contents[0])) {
                        const void *p;
                        size_t n;

                        r = sd_bus_message_read_array(msg, contents[0], &p, &n);
                        if (r < 0)
                                return r;
                        *w += n + 8;
                } else if (strchr("avre", type)) {
                        r = sd_bus_message_enter_container(msg, type, contents);
                        if (r < 0)
                                return r;
                        r = weigh(msg, depth + 1, w);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(msg);
                        if (r < 0)
                                return r;
                        *w += 8;
                } else {
                        union {
                                const char *s;
                                uint64_t u;
                                double d;
                                int i;
                        } v;

                        r = sd_bus_message_read_basic(msg, type, &v);
                        if (r < 0)
                                return r;
                        *w += strchr("sog", type) ? strlen(v.s) + 1 : 8;
                }
                if (*w > CALL_BYTES_MAX)
                        return 0;       /* enough to refuse it */
        }
}

static size_t message_weight(sd_bus_message *msg) {
        size_t w = 0;

        if (weigh(msg, 0, &w) < 0)
                w = 0;                  /* sd-bus answers malformed bodies itself */
        (void) sd_bus_message_rewind(msg, true);
        return w;
}

/* Is more input waiting behind the message being processed? */
static bool input_pending(sd_bus *bus) {
        uint64_t queued = 0;
        int n = 0, fd = sd_bus_get_fd(bus);

        if (sd_bus_get_n_queued_read(bus, &queued) >= 0 && queued > 0)
                return true;
        return fd >= 0 && ioctl(fd, FIONREAD, &n) >= 0 && n > 0;
}

/* Bytes of our output the bus has not read yet. */
static int output_backlog(sd_bus *bus) {
        int outq = 0, fd = sd_bus_get_fd(bus);

        if (fd < 0 || ioctl(fd, SIOCOUTQ, &outq) < 0)
                return 0;
        return outq;
}

static UidQueue *uid_queue_get(Manager *m, uid_t uid) {
        UidQueue key = { .uid = uid }, *uq;
        void **n = tfind(&key, &m->uid_index, uid_queue_compare);

        if (n)
                return *n;
        uq = calloc(1, sizeof(*uq));
        if (!uq)
                return NULL;
        uq->uid = uid;
        TAILQ_INIT(&uq->ready);
        if (!tsearch(uq, &m->uid_index, uid_queue_compare)) {
                free(uq);
                return NULL;
        }
        return uq;
}

static void uid_queue_gc(Manager *m, UidQueue *uq) {
        if (uq->n_queued > 0 || !TAILQ_EMPTY(&uq->ready))
                return;
        tdelete(uq, &m->uid_index, uid_queue_compare);
        free(uq);
}

static void dispatch_schedule(Manager *m) {
        if (m->dispatch && !TAILQ_EMPTY(&m->ready_uids) && !m->dispatch_paused)
                (void) sd_event_source_set_enabled(m->dispatch, SD_EVENT_ON);
}

static int on_dispatch_resume(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        m->dispatch_paused = false;
        dispatch_schedule(m);
        return 0;
}

void peers_output_drained(Manager *m) {
        if (!m->dispatch_paused || (m->bus && output_backlog(m->bus) > OUTPUT_BACKLOG_MAX))
                return;
        m->dispatch_paused = false;
        if (m->dispatch_resume)
                (void) sd_event_source_set_enabled(m->dispatch_resume, SD_EVENT_OFF);
        dispatch_schedule(m);
}

/* Dispatch again once our output drained: looked at after every round of
 * the loop (peers_output_drained()), and after OUTPUT_RECHECK_USEC when
 * nothing else happens. */
static void dispatch_later(Manager *m) {
        uint64_t now;

        if (m->dispatch_paused || sd_event_now(m->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        if (!m->dispatch_resume) {
                if (sd_event_add_time(m->event, &m->dispatch_resume, CLOCK_MONOTONIC, now + OUTPUT_RECHECK_USEC, 0,
                                      on_dispatch_resume, m) < 0)
                        return;
        } else {
                (void) sd_event_source_set_time(m->dispatch_resume, now + OUTPUT_RECHECK_USEC);
                (void) sd_event_source_set_enabled(m->dispatch_resume, SD_EVENT_ONESHOT);
        }
        m->dispatch_paused = true;
}

/* Link @p into its uid's turn if it has calls and may be served. */
static void peer_make_ready(Manager *m, Peer *p) {
        UidQueue *uq;

        if (p->uq || p->n_queued == 0 || !p->creds_known)
                return;
        uq = uid_queue_get(m, p->uid);
        if (!uq)
                return;         /* tried again with its next call */
        if (TAILQ_EMPTY(&uq->ready))
                TAILQ_INSERT_TAIL(&m->ready_uids, uq, link);
        TAILQ_INSERT_TAIL(&uq->ready, p, ready_link);
        uq->n_queued += p->n_queued;
        p->uq = uq;
        dispatch_schedule(m);
}

static void peer_unready(Manager *m, Peer *p) {
        UidQueue *uq = p->uq;

        if (!uq)
                return;
        TAILQ_REMOVE(&uq->ready, p, ready_link);
        uq->n_queued -= p->n_queued;
        if (TAILQ_EMPTY(&uq->ready))
                TAILQ_REMOVE(&m->ready_uids, uq, link);
        p->uq = NULL;
        uid_queue_gc(m, uq);
}

static int peer_enqueue(Manager *m, Peer *p, sd_bus_message *msg, size_t weight) {
        if (p->n_queued == p->queue_size) {
                unsigned size = p->queue_size ? p->queue_size * 2 : 4;
                QueuedCall *q = calloc(size, sizeof(*q));

                if (!q)
                        return -ENOMEM;
                for (unsigned i = 0; i < p->n_queued; i++)
                        q[i] = p->queue[(p->queue_head + i) % p->queue_size];
                free(p->queue);
                p->queue = q;
                p->queue_size = size;
                p->queue_head = 0;
        }
        p->queue[(p->queue_head + p->n_queued) % p->queue_size] = (QueuedCall) {
                .msg = sd_bus_message_ref(msg),
                .weight = weight,
        };
        p->n_queued++;
        m->n_queued++;
        m->queued_bytes += weight;
        if (p->uq)
                p->uq->n_queued++;
        peer_make_ready(m, p);
        return 0;
}

static sd_bus_message *peer_dequeue(Manager *m, Peer *p) {
        sd_bus_message *msg;

        if (p->n_queued == 0)
                return NULL;
        msg = p->queue[p->queue_head].msg;
        m->queued_bytes -= p->queue[p->queue_head].weight;
        p->queue_head = (p->queue_head + 1) % p->queue_size;
        p->n_queued--;
        m->n_queued--;
        if (p->uq)
                p->uq->n_queued--;
        return msg;
}

static void peer_drop_queue(Manager *m, Peer *p) {
        sd_bus_message *msg;

        peer_unready(m, p);
        while ((msg = peer_dequeue(m, p)))
                sd_bus_message_unref(msg);
}

/* Hand the next call back to sd-bus: the next uid's turn, and within it the
 * next connection's. */
static int on_dispatch(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        sd_bus_message *msg;
        UidQueue *uq;
        Peer *p;
        int r;

        m->reads_since_dispatch = 0;
        (void) sd_event_source_set_priority(s, SD_EVENT_PRIORITY_NORMAL + 1);

        uq = TAILQ_FIRST(&m->ready_uids);
        if (!uq || m->n_released >= ELEMENTSOF(m->released)) {
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                return 0;
        }
        p = TAILQ_FIRST(&uq->ready);
        if (!p->is_direct && m->bus && m->bus == sd_bus_message_get_bus(p->queue[p->queue_head].msg) &&
            output_backlog(m->bus) > OUTPUT_BACKLOG_MAX) {
                /* The bus is behind reading us: look again in a moment. */
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
                dispatch_later(m);
                return 0;
        }
        msg = peer_dequeue(m, p);

        /* Next turn: the next connection of this uid, and the next uid. */
        TAILQ_REMOVE(&uq->ready, p, ready_link);
        if (p->n_queued > 0)
                TAILQ_INSERT_TAIL(&uq->ready, p, ready_link);
        else
                p->uq = NULL;
        TAILQ_REMOVE(&m->ready_uids, uq, link);
        if (!TAILQ_EMPTY(&uq->ready))
                TAILQ_INSERT_TAIL(&m->ready_uids, uq, link);
        else
                uid_queue_gc(m, uq);

        r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(msg), msg);
        if (r < 0) {
                log_warning_errno(r, "Failed to hand a call back to sd-bus");
                (void) peer_reply_error(msg, BB_ERROR_FAILED, "bufbrokerd could not process the call: %s",
                                        strerror(-r));
        } else
                m->released[m->n_released++] = msg;
        sd_bus_message_unref(msg);

        if (TAILQ_EMPTY(&m->ready_uids))
                (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
}

static bool take_released(Manager *m, sd_bus_message *msg) {
        for (unsigned i = 0; i < m->n_released; i++)
                if (m->released[i] == msg) {
                        m->released[i] = m->released[--m->n_released];
                        return true;
                }
        return false;
}

/* ------------------------------------------------------- credentials --- */

static int read_credentials(Peer *p, sd_bus_message *reply) {
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        for (;;) {
                const char *key;

                r = sd_bus_message_enter_container(reply, 'e', "sv");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "UnixUserID") == 0) {
                        uint32_t uid;

                        r = sd_bus_message_read(reply, "v", "u", &uid);
                        if (r < 0)
                                return r;
                        p->uid = (uid_t) uid;
                        p->creds_known = true;
                } else if (strcmp(key, "UnixGroupIDs") == 0) {
                        const void *gids;
                        size_t size;

                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_read_array(reply, 'u', &gids, &size);
                        if (r < 0)
                                return r;
                        free(p->groups);
                        p->n_groups = 0;
                        p->groups = malloc(size ? size : 1);
                        if (!p->groups)
                                return -ENOMEM;
                        for (size_t i = 0; i < size / sizeof(uint32_t); i++)
                                p->groups[p->n_groups++] = (gid_t) ((const uint32_t *) gids)[i];
                        r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                return r;
                } else {
                        r = sd_bus_message_skip(reply, "v");
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return p->creds_known ? 0 : -ENODATA;
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Peer *p = userdata;
        Manager *m = p->manager;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        p->creds_slot = sd_bus_slot_unref(p->creds_slot);
        if (e) {
                /* Gone before we asked (NameHasNoOwner): its calls have no
                 * one to answer to, and its NameOwnerChanged follows. */
                log_warning("cannot get the credentials of %s: %s", p->name, e->message);
                peer_drop_queue(m, p);
                return 0;
        }
        r = read_credentials(p, reply);
        if (r < 0) {
                sd_bus_message *msg;

                log_warning_errno(r, "Cannot read the credentials the bus sent");
                while ((msg = peer_dequeue(m, p))) {
                        (void) peer_reply_error(msg, BB_ERROR_FAILED, "The bus did not tell the caller's credentials");
                        sd_bus_message_unref(msg);
                }
                return 0;
        }
        peer_make_ready(m, p);
        return 0;
}

static int peer_ask_credentials(Manager *m, Peer *p, sd_bus *bus) {
        if (p->creds_known || p->creds_slot)
                return 0;
        return sd_bus_call_method_async(bus, &p->creds_slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "GetConnectionCredentials",
                                        on_credentials, p, "s", p->name);
}

/* -------------------------------------------------------------- peers --- */

static Peer *peer_free(Manager *m, Peer *p) {
        if (!p)
                return NULL;
        notify_forget_peer(m, p);
        tdelete(p, &m->peer_index, peer_compare);
        TAILQ_REMOVE(&m->peers, p, link);
        if (p->is_direct)
                m->n_direct--;
        peer_drop_queue(m, p);
        sd_bus_close_unref(p->direct);
        sd_bus_slot_unref(p->creds_slot);
        free(p->queue);
        free(p->groups);
        free(p->name);
        free(p);
        return NULL;
}

static int peer_new(Manager *m, const char *name, Peer **ret) {
        Peer *p;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->name = strdup(name);
        if (!p->name || !tsearch(p, &m->peer_index, peer_compare)) {
                free(p->name);
                free(p);
                return -ENOMEM;
        }
        TAILQ_INSERT_TAIL(&m->peers, p, link);
        *ret = p;
        return 0;
}

int peer_add_direct(Manager *m, sd_bus *bus, const Caller *as, Peer **ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        _cleanup_free_ gid_t *groups = NULL;
        char name[32];
        Peer *p;
        uid_t uid;
        int r;

        if (as) {
                uid = as->uid;
                groups = memdup(as->groups, as->n_groups * sizeof(gid_t));
                if (as->n_groups > 0 && !groups)
                        return -ENOMEM;
        } else {
                r = sd_bus_get_owner_creds(bus, SD_BUS_CREDS_EUID, &creds);
                if (r < 0)
                        return r;
                r = sd_bus_creds_get_euid(creds, &uid);
                if (r < 0)
                        return r;
        }

        snprintf(name, sizeof(name), "direct:%" PRIu64, ++m->direct_serial);
        r = peer_new(m, name, &p);
        if (r < 0)
                return r;
        /* Direct peers go first: peer_find_direct() walks only them. */
        TAILQ_REMOVE(&m->peers, p, link);
        TAILQ_INSERT_HEAD(&m->peers, p, link);
        p->direct = bus;
        p->is_direct = true;
        p->is_private = as != NULL;
        m->n_direct++;
        p->uid = uid;
        p->groups = TAKE_PTR(groups);
        p->n_groups = as ? as->n_groups : 0;
        p->creds_known = true;
        *ret = p;
        return 0;
}

void peer_vanished(Manager *m, const char *name) {
        Peer *p = peer_find(m, name);
        Client *c = broker_find_client(m->broker, name);

        /* The holds go first: the peer's calls in the queue never ran. */
        if (c)
                broker_client_vanished(m->broker, c);
        peer_free(m, p);
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        /* A unique name that goes never comes back: that connection is gone. */
        if (name[0] == ':' && new_owner[0] == 0)
                peer_vanished(m, name);
        return 0;
}

int peer_track_disconnects(Manager *m, sd_bus *bus, bool async) {
        /* arg2='': only names that lose their owner, which includes every
         * connection that goes; one match for all of them. */
        static const char match[] =
                "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg2=''";

        if (async)
                return sd_bus_add_match_async(bus, NULL, match, on_name_owner_changed, NULL, m);
        return sd_bus_add_match(bus, NULL, match, on_name_owner_changed, m);
}

void peers_forget_connection(Manager *m, sd_bus *bus) {
        Peer *p;

        /* Calls read from a connection we give up were not answered; the
         * bus tells their callers (NoReply). Credentials asked there are
         * asked again on the next connection. */
        TAILQ_FOREACH(p, &m->peers, link) {
                if (p->n_queued > 0 && sd_bus_message_get_bus(p->queue[p->queue_head].msg) == bus)
                        peer_drop_queue(m, p);
                if (p->creds_slot && sd_bus_slot_get_bus(p->creds_slot) == bus)
                        p->creds_slot = sd_bus_slot_unref(p->creds_slot);
        }
        for (unsigned i = 0; i < m->n_released; i++)
                if (sd_bus_message_get_bus(m->released[i]) == bus)
                        m->released[i--] = m->released[--m->n_released];
}

void peers_free(Manager *m) {
        Peer *p;

        while ((p = TAILQ_FIRST(&m->peers)))
                peer_free(m, p);
        m->dispatch = sd_event_source_disable_unref(m->dispatch);
        m->dispatch_resume = sd_event_source_disable_unref(m->dispatch_resume);
}

/* ------------------------------------------------------------ filter --- */

/* May @p's call run at once, skipping the queue (two rounds of the loop)?
 * Only while one uid alone talks to us: then turns change nothing. Once
 * calls of two uids come within CONTENTION_USEC of each other, every call
 * waits in the queues for FAIR_USEC, read ahead of the others: the bus
 * hands us calls in an order of its own (dbus-daemon serves a uid with 8
 * connections 8 times as often), and only calls read ahead can be served in
 * turns. And never before what waits, or while more input waits behind
 * this call, or while our output is backed up. */
static bool may_run_now(Manager *m, Peer *p, sd_bus *bus) {
        uint64_t now;

        if (sd_event_now(m->event, CLOCK_MONOTONIC, &now) < 0)
                return false;
        if (p->uid != m->last_uid && now < m->last_call_usec + CONTENTION_USEC)
                m->fair_until = now + FAIR_USEC;
        m->last_uid = p->uid;
        m->last_call_usec = now;

        return now >= m->fair_until && m->n_queued == 0 && m->n_released == 0 && !m->dispatch_paused &&
               !input_pending(bus);
}

static int queue_call(Manager *m, sd_bus *bus, sd_bus_message *msg) {
        const char *sender = sd_bus_message_get_sender(msg);
        size_t weight;
        Peer *p;
        int r;

        p = peer_of_message(m, msg);
        if (!p) {
                /* A direct connection we do not serve (any more): whatever
                 * sender it wrote into the call, it is nobody on the bus. */
                if (!sender || !is_bus_connection(m, bus))
                        return 0;
                r = peer_new(m, sender, &p);
                if (r < 0)
                        return peer_reply_error(msg, BB_ERROR_NO_MEMORY, "Out of memory");
        }

        if (p->creds_known && may_run_now(m, p, bus))
                return 0;

        weight = message_weight(msg);
        if (weight > CALL_BYTES_MAX)
                return peer_reply_error(msg, BB_ERROR_LIMITS_EXCEEDED,
                                        "Calls to bufbrokerd take at most %u bytes; this one takes more", CALL_BYTES_MAX);
        if (m->queued_bytes + weight > TOTAL_QUEUE_BYTES)
                return peer_reply_error(msg, BB_ERROR_LIMITS_EXCEEDED,
                                        "bufbrokerd has %zu bytes of calls waiting; try again later", m->queued_bytes);
        if (p->n_queued >= PEER_QUEUE_MAX)
                return peer_reply_error(msg, BB_ERROR_LIMITS_EXCEEDED,
                                        "%s has %u calls waiting for bufbrokerd, the most one connection may have; wait for replies before sending more",
                                        p->name, p->n_queued);
        if (p->uq && p->uq->n_queued >= UID_QUEUE_MAX)
                return peer_reply_error(msg, BB_ERROR_LIMITS_EXCEEDED,
                                        "uid %u has %u calls waiting for bufbrokerd, the most one uid may have",
                                        (unsigned) p->uid, p->uq->n_queued);
        if (m->n_queued >= TOTAL_QUEUE_MAX)
                return peer_reply_error(msg, BB_ERROR_LIMITS_EXCEEDED,
                                        "bufbrokerd has %u calls waiting; try again later", m->n_queued);

        if (!p->creds_known) {
                r = peer_ask_credentials(m, p, bus);
                if (r < 0)
                        return peer_reply_error(msg, BB_ERROR_FAILED, "Cannot ask the bus who the caller is: %s",
                                                strerror(-r));
        }
        r = peer_enqueue(m, p, msg, weight);
        if (r < 0)
                return peer_reply_error(msg, BB_ERROR_NO_MEMORY, "Out of memory");

        /* Reading goes first, but a long run of it yields to a dispatch. */
        if (++m->reads_since_dispatch >= READS_PER_DISPATCH && m->dispatch)
                (void) sd_event_source_set_priority(m->dispatch, SD_EVENT_PRIORITY_NORMAL - 1);
        return 1;
}

int peer_filter(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        uint8_t type;
        int r;

        if (sd_bus_message_get_type(msg, &type) < 0)
                return 0;
        if (type == SD_BUS_MESSAGE_METHOD_ERROR)
                return handout_refused(m, msg);
        if (type != SD_BUS_MESSAGE_METHOD_CALL)
                return 0;
        if (take_released(m, msg))
                return 0;               /* its turn came: sd-bus dispatches it */
        m->n_calls++;
        /* Closes first: a buffer closed before this call was sent is gone
         * before the call is served (and is not charged to it). */
        manager_leases_poll(m);
        if (sd_bus_message_is_method_call(msg, "org.freedesktop.DBus.Peer", NULL))
                return 0;

        if (!m->dispatch) {
                r = sd_event_add_defer(m->event, &m->dispatch, on_dispatch, m);
                if (r < 0)
                        return 0;       /* served at once, unqueued */
                (void) sd_event_source_set_priority(m->dispatch, SD_EVENT_PRIORITY_NORMAL + 1);
                (void) sd_event_source_set_enabled(m->dispatch, SD_EVENT_OFF);
        }

        /* 0: its turn is now; else it waits, or was answered already. */
        return queue_call(m, sd_bus_message_get_bus(msg), msg) == 0 ? 0 : 1;
}
