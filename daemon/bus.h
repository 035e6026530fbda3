/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bus layer: sd-bus vtables that decode and validate arguments, ask the
 * core (broker.h) to act, and encode replies and errors. Nothing here decides
 * who may do what; that is the core's job.
 *
 *   bus-connection.c  the bus connection: connect, serve, own the name; exit
 *                     when it is lost, move to a fresh one when the bus stops
 *                     reading ours; undo replies the bus refuses to deliver
 *   bus-peer.c        who calls: every caller's credentials (asked once, without
 *                     waiting), its disconnection (one NameOwnerChanged match
 *                     for all), and the queue that serves callers fairly
 *   bus-manager.c     org.bufbroker.Broker1
 *   bus-buffer.c      org.bufbroker.Buffer1
 *   bus-notify.c      change notification: listeners, and each signal about a
 *                     buffer sent to those who may see it, never broadcast
 *   bus-common.c      helpers every handler uses
 */
#pragma once

#include <sys/queue.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "broker.h"
#include "log.h"

typedef struct Manager Manager;
typedef struct Peer Peer;
typedef struct UidQueue UidQueue;
typedef struct Handout Handout;
typedef struct ListenerUid ListenerUid;

typedef struct QueuedCall {
        sd_bus_message *msg;
        size_t weight;                  /* about its size in bytes */
} QueuedCall;

/* Private connections (OpenPrivateConnection): per uid, in all. Each costs
 * the daemon one fd, reserved outside the buffers' budget (main.c). */
#define PRIVATE_PER_UID 16u
#define PRIVATE_MAX 128u

/* How many calls may wait for their turn: per connection, per uid, in all.
 * A call beyond a limit is answered at once with LimitsExceeded. A client
 * that waits for its replies never has more than a few in flight. */
#define PEER_QUEUE_MAX 32u
#define UID_QUEUE_MAX 256u
#define TOTAL_QUEUE_MAX 8192u

/* Listeners (Subscribe, GetManagedObjects): per uid, and in all (shared
 * fairly among uids, as the broker's global limits). Each one costs a
 * message per change of a buffer its uid may see. */
#define LISTENERS_PER_UID 64u
#define LISTENERS_MAX 1024u

/* One connection that has called us: a bus client (by its unique name) or a
 * direct connection. Known from its first call until it disconnects. */
struct Peer {
        Manager *manager;
        char *name;                     /* ":1.42" (or "direct:N") */
        bool is_direct;
        bool is_private;                /* opened by OpenPrivateConnection() */
        sd_bus *direct;                 /* a direct connection: the peer's own sd_bus
                                         * (owned; NULL once it closed) */
        bool creds_known;
        uid_t uid;
        gid_t *groups;                  /* UnixGroupIDs, the primary group included */
        unsigned n_groups;
        sd_bus_slot *creds_slot;        /* GetConnectionCredentials in flight */
        bool not_reading;               /* the bus refused a reply to it: it does not
                                         * read them; no more fds for it */
        bool listening;                 /* bus-notify.c: told of changes */
        TAILQ_ENTRY(Peer) listener_link;        /* in Manager.listeners, while listening */
        bool no_fds;                    /* the bus refused a reply with fds to it as
                                         * one it cannot take (NotSupported) */
        bool takes_fds;                 /* it surely received a reply with fds */

        TAILQ_ENTRY(Peer) link;         /* in Manager.peers */

        /* Calls waiting for their turn, oldest first (a ring). */
        QueuedCall *queue;
        unsigned queue_head, n_queued, queue_size;
        UidQueue *uq;                   /* while linked in uq->ready */
        TAILQ_ENTRY(Peer) ready_link;
};

/* The connections of one uid that have calls ready, served in turn. */
struct UidQueue {
        uid_t uid;
        unsigned n_queued;
        TAILQ_HEAD(, Peer) ready;
        TAILQ_ENTRY(UidQueue) link;     /* in Manager.ready_uids */
};

/* How many listeners one uid has (bus-notify.c). */
struct ListenerUid {
        uid_t uid;
        unsigned n;
        TAILQ_ENTRY(ListenerUid) link;
};

struct Manager {
        sd_event *event;
        sd_bus *bus;                    /* the connection that owns the name */
        bool user_bus;
        Broker *broker;
        sd_event_source *expire_timer;
        sd_event_source *lease_source;  /* the broker's inotify fd (leases) */
        sd_event_source *lease_timer;   /* asking again about closed buffers */
        sd_event_source *attach_timer;  /* asking about sysv buffers kept by attachments */
        sd_event_source *lease_lazy;    /* closes looked at per call: when to stop */
        bool lease_per_call;            /* lease_source is off meanwhile */
        uint64_t lease_polled_usec;     /* the last call that looked */

        /* bus-peer.c */
        void *peer_index;               /* tsearch tree by name */
        TAILQ_HEAD(, Peer) peers;
        unsigned n_direct;
        uint64_t direct_serial;
        void *uid_index;                /* UidQueue by uid */
        TAILQ_HEAD(, UidQueue) ready_uids;
        unsigned n_queued;
        uint64_t n_calls;               /* every call that came in */
        uid_t last_uid;                 /* whose call came last, when */
        uint64_t last_call_usec;
        uint64_t fair_until;            /* every call takes its turn until then */
        size_t queued_bytes;
        sd_event_source *dispatch;
        sd_event_source *dispatch_resume;       /* waiting for our output to drain */
        bool dispatch_paused;
        unsigned reads_since_dispatch;
        sd_bus_message *released[8];    /* handed back to sd-bus, not filtered again */
        unsigned n_released;

        /* bus-notify.c */
        TAILQ_HEAD(, Peer) listeners;
        unsigned n_listeners;
        TAILQ_HEAD(, ListenerUid) listener_uids;        /* uids with listeners */
        unsigned n_listener_uids;

        /* bus-connection.c */
        sd_bus *next_bus;               /* moving to a fresh connection */
        sd_event_source *stall_timer;
        uint64_t stall_since;           /* our output has not drained since (0: it has) */
        unsigned n_reconnects;
        TAILQ_HEAD(, Handout) handouts; /* replies the bus may still refuse */
        unsigned n_handouts;
        sd_bus_slot *probe_slot;        /* a GetId to the bus in flight */
        uint64_t probe_cookie;
        uint64_t probe_sent;
        sd_event_source *probe_timer;

        /* Under systemd: the fd store, the STATUS= line, exit when idle. */
        bool fdstore;
        uint64_t saved_generation;
        uint64_t status_generation;     /* of the last STATUS= sent */
        bool status_notify;             /* a service manager listens */
        uint64_t status_sent_usec;
        sd_event_source *status_timer;  /* the next STATUS=, when they come fast */
        uint64_t exit_idle_usec;        /* 0: never */
        uint64_t idle_calls;            /* n_calls when idle time started */
        bool exiting;                   /* the name is being given back */
        bool name_released;             /* the bus confirmed it */
        sd_event_source *idle_timer;
        sd_event_source *post;
};

#define MANAGER_INIT(m)                                                   \
        {                                                                 \
                .peers = TAILQ_HEAD_INITIALIZER((m).peers),               \
                .ready_uids = TAILQ_HEAD_INITIALIZER((m).ready_uids),     \
                .handouts = TAILQ_HEAD_INITIALIZER((m).handouts),         \
                .listeners = TAILQ_HEAD_INITIALIZER((m).listeners),       \
                .listener_uids = TAILQ_HEAD_INITIALIZER((m).listener_uids), \
        }

/* bus-common.c */
/* The event loop (the thread's default one) and the broker; no bus yet.
 * @m was set up with MANAGER_INIT. manager_done() undoes everything. */
int manager_init(Manager *m, const BrokerLimits *limits);
void manager_done(Manager *m);
void strv_free_simple(char **l);
/* _cleanup_(close_fds) int fds[BB_PLANES_MAX] = FD_ARRAY_INIT; */
void close_fds(int (*fds)[BB_PLANES_MAX]);
uint64_t now_usec(void);
/* The caller of @msg. Its credentials are known: the queue (bus-peer.c)
 * hands a call to sd-bus only once they are. */
int bus_get_caller(Manager *m, sd_bus_message *msg, Caller *ret, sd_bus_error *error);
int bus_map_broker_error(sd_bus_error *error, int r, const BrokerError *err);
void manager_schedule_expiry(Manager *m);
/* Arm the timer for the broker's next lease recheck (after every round). */
void manager_schedule_lease_recheck(Manager *m);
/* A call came in: look at the closes first (see bus-common.c). */
void manager_leases_poll(Manager *m);
/* Arm the timer that asks about the sysv buffers nobody holds while
 * processes are attached (once a second while there are any). */
void manager_schedule_attachment_check(Manager *m);
/* Calls stopped: closes wake the loop again, and the ones queued are looked
 * at now (1; 0: it did already). The loop does this LEASE_PER_CALL_USEC
 * after the last call; a harness that runs the loop itself and sees it
 * settle does it when it would wait that long. */
int manager_leases_per_call_end(Manager *m);

typedef struct BusOption {
        const char *key;
        char type;              /* 'b', 't', 'u', 's', or 'F' (a fourcc as s or u) */
        void *value;            /* bool *, uint64_t *, uint32_t *, const char ** */
        bool seen;
} BusOption;
/* Read an a{sv}; every key must be in @options (NULL-key terminated) with the
 * stated type, at most once. */
int bus_read_options(sd_bus_message *msg, BusOption *options, sd_bus_error *error);
/* Whether the caller gave option @key (looked up by name: rows may move). */
bool bus_option_seen(const BusOption *options, const char *key);

/* Open's and OpenFds' reply: the fds, then the info a{sv}. */
int bus_append_fds_and_info(sd_bus_message *reply, Buffer *buf, bool read_only, const int fds[]);
/* The a{sv} describing a V4L2 format (CreateV4L2's reply, info). */
int bus_append_v4l2_format(sd_bus_message *reply, const V4L2Format *f, unsigned count);
/* The format's {sv} entries, inside an a{sv} the caller opened. */
int bus_append_v4l2_format_entries(sd_bus_message *reply, const V4L2Format *f);
/* The a(tuu) of a buffer's planes: (length, bytesperline, offset) per fd. */
int bus_append_planes(sd_bus_message *reply, Buffer *buf);

/* bus-peer.c */
/* Filter every incoming message of @bus (installed by bus_connection_setup). */
int peer_filter(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* One NameOwnerChanged match for every connection that goes (synchronous
 * at start, before the name is ours; asynchronous when reconnecting). */
int peer_track_disconnects(Manager *m, sd_bus *bus, bool async);
Peer *peer_find(Manager *m, const char *name);
/* Who sent @msg: on the bus, the sender the bus vouches for; on a direct
 * connection, that connection's peer, whatever sender field it wrote. NULL
 * if unknown. */
Peer *peer_of_message(Manager *m, sd_bus_message *msg);
/* A direct connection (socketpair): its peer's credentials come from the
 * socket. Its calls go through the same queue. */
/* A direct connection's peer: as @as (the bus caller who opened it), or
 * with NULL as the process at the other end of the socket (SO_PEERCRED). */
int peer_add_direct(Manager *m, sd_bus *bus, const Caller *as, Peer **ret);
void peer_vanished(Manager *m, const char *name);
/* After a round of the loop: resume handing out calls if our output to the
 * bus has drained (see OUTPUT_BACKLOG_MAX in bus-peer.c). */
void peers_output_drained(Manager *m);
/* The connection the queued calls came in on is going away: drop them. */
void peers_forget_connection(Manager *m, sd_bus *bus);
void peers_free(Manager *m);
int peer_reply_error(sd_bus_message *msg, const char *name, const char *fmt, ...) _printf_(3, 4);

/* bus-connection.c */
/* Serve a direct connection on @fd (one end of a socketpair; taken): the
 * same objects and queue as the bus, the peer's uid from the socket
 * (SO_PEERCRED), its holds dropped when it closes. */
int bus_connection_add_direct(Manager *m, int fd, const Caller *as, Peer **ret);
/* OpenPrivateConnection() (org.bufbroker.Broker1). */
int bus_method_open_private_connection(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* Connect to the bus and serve our objects; then own the name (once
 * restored buffers are back). */
int bus_connection_open(Manager *m);
int bus_connection_request_name(Manager *m);
/* Register our objects, the filter and the disconnect tracking on @bus. */
int bus_connection_setup(Manager *m, sd_bus *bus);
/* After each round of events: is the bus still reading what we send? */
void bus_connection_check_output(Manager *m);
void bus_connection_close(Manager *m);

/* What a reply hands out, to be taken back if the bus refuses to deliver
 * it (it then sends us an error in reply to our reply: LimitsExceeded when
 * the receiver's queue is full, NotSupported when it cannot take fds), or
 * when the caller asked for no reply at all. */
struct Handout {
        uint64_t cookie;        /* of our reply */
        sd_bus *bus;
        const char *client;     /* (a copy is owned once tracked) */
        uid_t uid;
        const uint64_t *ids;    /* buffer ids (a copy is owned once tracked) */
        unsigned n_ids;
        bool drop_buffers;      /* the call made them */
        bool drop_holds;        /* the call made the client a holder of them */
        bool revoke_token;      /* the call made the token */
        bool restore_token;     /* the call spent the (single-use) token */
        char token[BB_TOKEN_LEN + 1];
        uid_t token_owner;
        ShareOptions token_opts;
        uint64_t token_expire_usec;
        uint64_t check_cookie;  /* our fd check call that followed the reply (0: none) */
        TAILQ_ENTRY(Handout) link;
};

/* Send @reply (a method return); if it hands out something (@h, may be
 * NULL), remember it until the bus has surely routed the reply. Returns 1
 * (a handler's "replied": 0 would make sd-bus look further and answer
 * UnknownMethod as well) or a negative errno. */
int bus_send_reply(Manager *m, sd_bus_message *reply, const Handout *h);
/* An error in reply to one of our replies, from the bus: take back what
 * that reply handed out. Returns true if @msg was such an error. */
bool handout_refused(Manager *m, sd_bus_message *msg);
/* Token @token (NULL: every token) of buffer @buffer_id was revoked: an
 * Open that spent it is not to give it back when its reply is refused. */
void handouts_token_revoked(Manager *m, uint64_t buffer_id, const char *token);

/* bus-manager.c */
/* bus_get_caller() for calls whose reply carries fds: refused (before they
 * act) for a connection that cannot take them. */
int bus_get_fd_caller(Manager *m, sd_bus_message *msg, Caller *ret, sd_bus_error *error);
extern const sd_bus_vtable manager_vtable[];
int bus_manager_register(Manager *m, sd_bus *bus);
extern const BrokerCallbacks bus_broker_callbacks;

/* bus-buffer.c */
extern const sd_bus_vtable buffer_vtable[];
int bus_buffer_register(Manager *m, sd_bus *bus);
/* The a{sv} of all Buffer1 properties of @buf (GetManagedObjects,
 * InterfacesAdded, ListBufferProperties). */
int bus_append_buffer_properties(sd_bus_message *reply, Buffer *buf);

/* bus-notify.c */
/* GetManagedObjects on the manager object, and its ObjectManager interface
 * in the introspection. */
int bus_notify_register(Manager *m, sd_bus *bus);
/* Broker1.Subscribe() and Unsubscribe(). */
int bus_method_subscribe(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int bus_method_unsubscribe(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* A peer goes: it listens no more. */
void notify_forget_peer(Manager *m, Peer *p);
/* Tell each connection that may see @buf: it appeared (InterfacesAdded),
 * it goes (BufferReleased, InterfacesRemoved; its holds still there), a
 * property changed (PropertiesChanged). */
void notify_buffer_added(Manager *m, Buffer *buf);
void notify_buffer_dropped(Manager *m, Buffer *buf, BrokerDropReason reason);
void notify_buffer_changed(Manager *m, Buffer *buf, const char *property);
