/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bus connection: connect, serve our objects, own the name; and the two
 * ways a bus can fail to carry our replies.
 *
 * Never off the bus: the connection exits the event loop with a failure when
 * it is lost (sd_bus_set_exit_on_disconnect), so that systemd restarts the
 * daemon and the fd store brings every buffer back. A daemon that ran on
 * without its name would keep everyone's buffers where nobody can reach them.
 *
 * A bus that stops reading us: dbus-daemon charges the fds of our messages
 * that wait in other clients' queues to us, and stops reading from us once 64
 * of them wait (max_incoming_unix_fds). A client that never reads its replies
 * makes its replies wait: enough of them and nobody gets an answer from us
 * any more. We cannot see those queues, but we see the effect: when our
 * socket's output (SIOCOUTQ) has not drained for DRAIN_USEC we send the bus
 * a probe, and when that is not answered within STALL_USEC we move to a
 * fresh connection: it takes the name over (we own it with
 * ALLOW_REPLACEMENT), the stuck connection is closed, and the calls it had
 * not answered get NoReply from the bus. Clients keep their unique names, so
 * holds and tokens stay as they were. The replies stuck in a client's queue
 * count against that client's own limit from then on: the bus refuses our
 * next replies to it (LimitsExceeded), and handout_refused() takes back what
 * they handed out. dbus-broker charges a client's queue to the client and
 * never stops reading us.
 *
 * Refused replies: when the bus cannot deliver one of our replies (the
 * receiver's queue is full, or it cannot take fds) it sends us an error in
 * reply to our reply. Whatever that reply handed out (a buffer, a hold, a
 * token) is taken back then, so nothing is left that nobody knows of.
 * Replies are remembered until a probe sent after them is answered: the bus
 * handles our messages in order, so a refusal, if any, came before.
 *
 * A connection that cannot take fds (it did not negotiate fd passing):
 * dbus-daemon refuses our reply with NotSupported, and lets no second reply
 * through (it dropped the caller's pending-reply record with the refused
 * reply), so that caller waits for its own timeout; its later calls that
 * return fds are refused at once (bus_get_fd_caller()). dbus-broker shuts
 * that connection down instead (the caller sees it closed at once) and
 * tells us nothing; its holds go when it closes, but a persistent buffer it
 * created, or a single-use token it spent, would stay. So a reply that
 * hands out what outlives its caller, to a connection not yet known to
 * take fds, is followed by a check: a call carrying an fd to that
 * connection (BB_FD_CHECK_INTERFACE, which nobody implements). A bus that
 * cannot pass it an fd refuses the call (dbus-broker: Failed, dbus-daemon:
 * NotSupported) before it answers the probe that follows; then the reply
 * is taken back as a refused one is. The connection's own answer to the
 * check is not waited for. Once a probe proves such a reply routed and its
 * check not refused, the connection takes fds and is not checked again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <systemd/sd-id128.h>

#include "bus.h"

/* How long our output may stay undrained before we probe the bus, and how
 * long the bus may leave a probe unanswered before we move to a fresh
 * connection. A bus that reads us at all answers within microseconds; the
 * margins are for a loaded machine. */
#define DRAIN_USEC (100 * UINT64_C(1000))
#define STALL_USEC (250 * UINT64_C(1000))
/* How long replies gather before a probe proves them routed. */
#define BARRIER_DELAY_USEC (50 * UINT64_C(1000))

/* ------------------------------------------------------------ handouts --- */

static Handout *handout_free(Manager *m, Handout *h) {
        if (!h)
                return NULL;
        TAILQ_REMOVE(&m->handouts, h, link);
        m->n_handouts--;
        free((char *) h->client);
        free((uint64_t *) h->ids);
        free(h);
        return NULL;
}

/* Take back what @h handed out: the reply carrying it never arrived. */
static void handout_undo(Manager *m, const Handout *h) {
        Broker *b = m->broker;

        for (unsigned i = 0; i < h->n_ids; i++) {
                Buffer *buf = broker_find_buffer(b, h->ids[i]);

                if (!buf)
                        continue;
                if (h->drop_buffers)
                        broker_drop_buffer(b, buf);
                else if (h->drop_holds)
                        broker_unhold(b, buf, h->client);
        }
        if (h->revoke_token)
                (void) broker_revoke_token(b, h->token);
        if (h->restore_token && h->n_ids > 0) {
                Buffer *buf = broker_find_buffer(b, h->ids[0]);
                if (buf)
                        (void) broker_restore_token(b, buf, h->token, h->token_owner, &h->token_opts,
                                                    h->token_expire_usec);
        }
}

/* ------------------------------------------------------------- probes --- */
/* A probe is an async GetId to the bus. Its answer proves two things: the
 * bus has read everything we sent before it (so our output moves), and it
 * has routed our replies before it (so a refusal of one would have come in
 * by now). One is in flight at a time; whoever needs one waits for it. */

static void probe_schedule(Manager *m, uint64_t usec);
static int probe_send(Manager *m);

static int on_probe(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        sd_bus *bus = sd_bus_message_get_bus(reply);
        Handout *h, *next;

        m->probe_slot = sd_bus_slot_unref(m->probe_slot);
        if (sd_bus_message_is_method_error(reply, NULL))
                return 0;       /* the connection is going: nothing is proven */

        for (h = TAILQ_FIRST(&m->handouts); h; h = next) {
                next = TAILQ_NEXT(h, link);
                if (h->bus == bus && h->cookie < m->probe_cookie) {
                        Peer *p = h->check_cookie ? peer_find(m, h->client) : NULL;

                        if (p)
                                p->takes_fds = true;
                        handout_free(m, h);
                }
        }
        /* The bus reads us: look at the output afresh. */
        m->stall_since = 0;
        bus_connection_check_output(m);
        if (!TAILQ_EMPTY(&m->handouts))
                probe_schedule(m, BARRIER_DELAY_USEC);
        return 0;
}

static int probe_send(Manager *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r;

        if (m->probe_slot)
                return 0;
        r = sd_bus_message_new_method_call(m->bus, &call, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "GetId");
        if (r < 0)
                return r;
        r = sd_bus_call_async(m->bus, &m->probe_slot, call, on_probe, m, 0);
        if (r < 0)
                return r;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &m->probe_sent);
        return sd_bus_message_get_cookie(call, &m->probe_cookie);
}

static int on_probe_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        int r;

        r = probe_send(m);
        if (r < 0)
                log_warning_errno(r, "Failed to send a probe to the bus");
        return 0;
}

/* Send a probe in @usec (unless one is in flight or due sooner). */
static void probe_schedule(Manager *m, uint64_t usec) {
        uint64_t now, due;
        int enabled = SD_EVENT_OFF;

        if (m->probe_slot || sd_event_now(m->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        due = now + usec;
        if (!m->probe_timer) {
                if (sd_event_add_time(m->event, &m->probe_timer, CLOCK_MONOTONIC, due, 0, on_probe_timer, m) < 0)
                        (void) probe_send(m);
                return;
        }
        (void) sd_event_source_get_enabled(m->probe_timer, &enabled);
        if (enabled != SD_EVENT_OFF) {
                uint64_t t = 0;
                (void) sd_event_source_get_time(m->probe_timer, &t);
                if (t <= due)
                        return;
        }
        (void) sd_event_source_set_time(m->probe_timer, due);
        (void) sd_event_source_set_enabled(m->probe_timer, SD_EVENT_ONESHOT);
}

/* Does what @h hands out outlive its client (a persistent buffer, a spent
 * single-use token), so that its loss would go unnoticed? */
static bool handout_outlives_client(Manager *m, const Handout *h) {
        if (h->restore_token)
                return true;
        if (!h->drop_buffers)
                return false;
        for (unsigned i = 0; i < h->n_ids; i++) {
                Buffer *buf = broker_find_buffer(m->broker, h->ids[i]);

                if (buf && buf->persistent)
                        return true;
        }
        return false;
}

/* The fd check after a reply to @client (see the top of this file). */
static int fd_check_send(sd_bus *bus, const char *client, uint64_t *ret_cookie) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        /* Any fd will do: an eventfd needs no file. */
        fd = eventfd(0, EFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = sd_bus_message_new_method_call(bus, &call, client, "/", BB_FD_CHECK_INTERFACE, "Check");
        if (r >= 0)
                r = sd_bus_message_append(call, "h", fd);
        if (r >= 0)
                r = sd_bus_send(bus, call, ret_cookie);
        return r;
}

int bus_send_reply(Manager *m, sd_bus_message *reply, const Handout *h) {
        sd_bus_message *call = sd_bus_get_current_message(sd_bus_message_get_bus(reply));
        uint64_t cookie;
        Handout *copy;
        int r;

        /* Asked for no reply: nobody will ever learn what we made. */
        if (h && call && !sd_bus_message_get_expect_reply(call)) {
                handout_undo(m, h);
                return 1;
        }

        r = sd_bus_send(NULL, reply, &cookie);
        /* A direct connection has no bus to refuse a reply: the socket takes
         * it, or the peer is gone and its holds go with it. */
        if (r < 0 || !h || sd_bus_message_get_bus(reply) != m->bus)
                return r;

        copy = calloc(1, sizeof(*copy));
        if (!copy)
                return 1;       /* sent, but it cannot be taken back */
        *copy = *h;
        copy->cookie = cookie;
        copy->bus = sd_bus_message_get_bus(reply);
        copy->client = strdup(h->client);
        copy->ids = h->n_ids ? memdup(h->ids, h->n_ids * sizeof(uint64_t)) : NULL;
        if (!copy->client || (h->n_ids && !copy->ids)) {
                free((char *) copy->client);
                free((uint64_t *) copy->ids);
                free(copy);
                return 1;
        }
        TAILQ_INSERT_TAIL(&m->handouts, copy, link);
        m->n_handouts++;
        if (handout_outlives_client(m, copy)) {
                Peer *p = peer_find(m, copy->client);

                if (!p || !p->takes_fds) {
                        r = fd_check_send(copy->bus, copy->client, &copy->check_cookie);
                        if (r < 0)
                                log_warning_errno(r, "Cannot check whether %s takes file descriptors", copy->client);
                }
        }
        if (copy->check_cookie) {
                /* A probe in flight was sent before the check: on_probe()
                 * schedules the next. */
                r = probe_send(m);
                if (r < 0)
                        log_warning_errno(r, "Failed to send a probe to the bus");
        } else
                probe_schedule(m, BARRIER_DELAY_USEC);
        return 1;
}

bool handout_refused(Manager *m, sd_bus_message *msg) {
        const sd_bus_error *e = sd_bus_message_get_error(msg);
        const char *sender = sd_bus_message_get_sender(msg);
        sd_bus *bus = sd_bus_message_get_bus(msg);
        uint64_t serial;
        Handout *h;
        Peer *p;

        if (!sender || strcmp(sender, "org.freedesktop.DBus") != 0)
                return false;
        if (sd_bus_message_get_reply_cookie(msg, &serial) < 0)
                return false;
        TAILQ_FOREACH(h, &m->handouts, link)
                if (h->bus == bus && (h->cookie == serial || (h->check_cookie && h->check_cookie == serial)))
                        break;
        if (!h)
                return false;
        if (h->cookie != serial) {
                /* The check: only a refusal to pass fds says the reply was
                 * lost (a policy or a full queue says nothing of it). */
                if (!e || (!sd_bus_error_has_name(e, SD_BUS_ERROR_NOT_SUPPORTED) &&
                           !sd_bus_error_has_name(e, SD_BUS_ERROR_FAILED))) {
                        log_info("the fd check of %s was refused (%s); it tells nothing", h->client,
                                 e ? e->name : "?");
                        h->check_cookie = 0;
                        return true;
                }
                log_warning("%s (uid %u) cannot take file descriptors (its connection did not negotiate fd "
                            "passing): the bus refused the check after our reply (%s: %s), and disconnects it "
                            "instead of delivering the reply; taking back what the reply handed out",
                            h->client, (unsigned) h->uid, e->name, e->message ?: "");
                p = peer_find(m, h->client);
                if (p) {
                        p->not_reading = true;
                        p->no_fds = true;
                }
                handout_undo(m, h);
                handout_free(m, h);
                return true;
        }

        if (e && sd_bus_error_has_name(e, SD_BUS_ERROR_NOT_SUPPORTED))
                log_warning("the bus refused our reply to %s (uid %u): it cannot take file descriptors (its "
                            "connection did not negotiate fd passing; the bus said: %s); taking back what it handed out",
                            h->client, (unsigned) h->uid, e->message ?: "");
        else
                log_warning("the bus refused our reply to %s (uid %u): %s: %s; taking back what it handed out",
                            h->client, (unsigned) h->uid, e ? e->name : "?", e ? e->message : "?");
        p = peer_find(m, h->client);
        if (p) {
                p->not_reading = true;
                p->no_fds = e && sd_bus_error_has_name(e, SD_BUS_ERROR_NOT_SUPPORTED);
        }
        handout_undo(m, h);
        handout_free(m, h);
        return true;
}

void handouts_token_revoked(Manager *m, uint64_t buffer_id, const char *token) {
        Handout *h;

        TAILQ_FOREACH(h, &m->handouts, link)
                if (h->restore_token && h->n_ids > 0 && h->ids[0] == buffer_id &&
                    (!token || strcmp(h->token, token) == 0))
                        h->restore_token = false;
}

static void handouts_forget_connection(Manager *m, sd_bus *bus) {
        Handout *h, *next;

        /* Replies of a connection we give up may or may not have been
         * routed: the holds stay (they go when their client does). */
        for (h = TAILQ_FIRST(&m->handouts); h; h = next) {
                next = TAILQ_NEXT(h, link);
                if (h->bus == bus)
                        handout_free(m, h);
        }
        m->probe_slot = sd_bus_slot_unref(m->probe_slot);
}

/* ------------------------------------------------------ the connection --- */

int bus_connection_setup(Manager *m, sd_bus *bus) {
        int r;

        r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop");
        r = sd_bus_add_filter(bus, NULL, peer_filter, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the bus filter");
        r = bus_manager_register(m, bus);
        if (r < 0)
                return log_error_errno(r, "Failed to register " BB_MANAGER_PATH);
        r = bus_buffer_register(m, bus);
        if (r < 0)
                return log_error_errno(r, "Failed to register " BB_BUFFER_PATH_PREFIX);
        return 0;
}

static void bus_close_unref_destroy(void *userdata) {
        sd_bus_close_unref(userdata);
}

/* The source is floating: the loop's reference is its only one. Dropping it
 * runs its destroy callback, which frees the bus; so does freeing the loop
 * at exit, should the daemon stop before this round comes. */
static int on_unref_later(sd_event_source *s, void *userdata) {
        sd_event_source_unref(s);
        return 0;
}

/* A direct connection closed: its peer's holds go. Its sd_bus is freed in
 * the next round of the loop, not from inside its own callback. */
static int on_direct_disconnected(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        sd_bus *bus = sd_bus_message_get_bus(msg);
        sd_event_source *s;
        Peer *p;

        /* Direct peers are first in the list (peer_add_direct()). */
        TAILQ_FOREACH(p, &m->peers, link)
                if (!p->is_direct || p->direct == bus)
                        break;
        if (!p || p->direct != bus)
                return 0;
        p->direct = NULL;       /* ours to free now */
        /* Calls handed back to sd-bus but not run yet die with it: forget
         * them, or they would take the slots of released calls for good. */
        peers_forget_connection(m, bus);
        peer_vanished(m, p->name);
        if (sd_event_add_defer(m->event, &s, on_unref_later, bus) < 0) {
                log_warning_errno(-ENOMEM, "Cannot free a closed direct connection");
                return 0;
        }
        (void) sd_event_source_set_destroy_callback(s, bus_close_unref_destroy);
        (void) sd_event_source_set_floating(s, true);
        sd_event_source_unref(s);
        return 0;
}

int bus_connection_add_direct(Manager *m, int fd, const Caller *as, Peer **ret) {
        _cleanup_(sd_bus_close_unrefp) sd_bus *bus = NULL;
        sd_id128_t id;
        Peer *p;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        r = sd_bus_set_fd(bus, fd, fd);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        r = sd_id128_randomize(&id);
        if (r >= 0)
                r = sd_bus_set_server(bus, true, id);
        /* A private connection's socket was made here, so SO_PEERCRED names
         * us, not the client: take whatever uid it says; its calls are the
         * opener's (@as) in any case. */
        if (r >= 0 && as)
                r = sd_bus_set_anonymous(bus, true);
        if (r >= 0)
                r = sd_bus_negotiate_fds(bus, true);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_direct_disconnected, m);
        if (r < 0)
                return r;
        r = bus_connection_setup(m, bus);
        if (r < 0)
                return r;
        r = peer_add_direct(m, bus, as, &p);
        if (r < 0)
                return r;
        TAKE_PTR(bus);          /* the peer's now */
        if (ret)
                *ret = p;
        return 0;
}

/* Private connections: at most PRIVATE_PER_UID per uid, PRIVATE_MAX in all
 * (bus.h), shared among uids by the fair share, so no group of uids can
 * take them all. */
static bool private_connection_allowed(Manager *m, uid_t uid, uint64_t *ret_have) {
        uint64_t total = 0, have = 0, n_uids = 0;
        Peer *p, *q;

        /* Private connections are direct ones, first in the list
         * (peer_add_direct()): the bus's clients are never walked. */
        TAILQ_FOREACH(p, &m->peers, link) {
                bool first = true;

                if (!p->is_direct)
                        break;
                if (!p->is_private || !p->direct)
                        continue;
                total++;
                have += p->uid == uid;
                /* count each uid once: at its first private connection */
                for (q = TAILQ_FIRST(&m->peers); q != p && first; q = TAILQ_NEXT(q, link))
                        first = !(q->is_private && q->direct && q->uid == p->uid);
                n_uids += first;
        }
        *ret_have = have;
        return have < PRIVATE_PER_UID && fair_share_allows(PRIVATE_MAX, total, have, 1, n_uids, have > 0);
}

int bus_method_open_private_connection(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_close_ int theirs = -1;
        Manager *m = userdata;
        Caller caller;
        uint64_t have;
        Peer *p;
        int sv[2], r;

        r = bus_get_fd_caller(m, msg, &caller, error);
        if (r < 0)
                return r;
        if (!private_connection_allowed(m, caller.uid, &have))
                return sd_bus_error_setf(error, BB_ERROR_QUOTA_EXCEEDED,
                                         "uid %u has %" PRIu64 " private connections open (at most %u per uid, %u in all, shared fairly among uids)",
                                         (unsigned) caller.uid, have, PRIVATE_PER_UID, PRIVATE_MAX);

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return sd_bus_error_set_errnof(error, errno, "Cannot make a socket pair: %m");
        theirs = sv[1];
        /* Its calls are the caller's: uid and groups for quotas and device
         * access, holds that go when the socket closes. */
        r = bus_connection_add_direct(m, sv[0], &caller, &p);
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Cannot serve a private connection: %s", strerror(-r));

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "h", theirs);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        /* Undelivered, nobody will ever talk on it: closing our end (with
         * theirs) frees it through the Disconnected path. Delivered, the
         * caller has its own copy of theirs. */
        return r;
}

int bus_connection_open(Manager *m) {
        int r;

        r = m->user_bus ? sd_bus_open_user(&m->bus) : sd_bus_open_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, m->user_bus ? "Failed to connect to the session bus"
                                                : "Failed to connect to the system bus");
        r = bus_connection_setup(m, m->bus);
        if (r < 0)
                return r;
        r = peer_track_disconnects(m, m->bus, false);
        if (r < 0)
                return log_error_errno(r, "Failed to watch NameOwnerChanged");
        r = sd_bus_set_exit_on_disconnect(m->bus, true);
        if (r < 0)
                return log_error_errno(r, "Failed to make a lost bus connection fatal");
        return 0;
}

int bus_connection_request_name(Manager *m) {
        int r;

        /* ALLOW_REPLACEMENT: our own next connection takes it over (see the
         * top of this file). Only root and our user may own it anyway. */
        r = sd_bus_request_name(m->bus, BB_BUS_NAME, SD_BUS_NAME_ALLOW_REPLACEMENT);
        if (r == -EEXIST)
                return log_error_errno(r, "Another process owns " BB_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Failed to own " BB_BUS_NAME);
        return 0;
}

static void reconnect_abort(Manager *m, int r, const char *why) {
        log_error_errno(r, "cannot move to a fresh bus connection: %s", why);
        m->next_bus = sd_bus_close_unref(m->next_bus);
}

static int on_name_taken_over(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        sd_bus *old = m->bus;
        const char *unique;
        char *old_name = NULL;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t result = 0;

        if (e || sd_bus_message_read(reply, "u", &result) < 0 || result != 1 /* primary owner */) {
                log_error("the fresh connection did not get %s: %s", BB_BUS_NAME,
                        e ? e->message : "not the primary owner");
                m->next_bus = sd_bus_close_unref(m->next_bus);
                return 0;
        }

        m->bus = TAKE_PTR(m->next_bus);
        m->n_reconnects++;
        (void) sd_bus_set_exit_on_disconnect(m->bus, true);
        (void) sd_bus_set_exit_on_disconnect(old, false);
        peers_forget_connection(m, old);
        handouts_forget_connection(m, old);
        if (sd_bus_get_unique_name(old, &unique) >= 0)
                old_name = strdup(unique);
        sd_bus_close_unref(old);
        m->stall_since = 0;

        /* dbus-daemon does not watch a connection it has stopped reading, so
         * it would not see the old one close, and the calls it routed there
         * would wait for their timeout. Something to write to it makes the
         * bus find it closed, and answer those calls with NoReply. */
        if (old_name) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *poke = NULL;

                if (sd_bus_message_new_signal(m->bus, &poke, BB_MANAGER_PATH, BB_MANAGER_INTERFACE ".Internal",
                                              "ConnectionReplaced") >= 0 &&
                    sd_bus_message_set_destination(poke, old_name) >= 0)
                        (void) sd_bus_send(m->bus, poke, NULL);
                free(old_name);
        }
        log_notice("moved to a fresh bus connection (%u so far); calls the old one had not answered get NoReply",
                m->n_reconnects);
        return 0;
}

/* The bus has not read from us for STALL_USEC: serve from a fresh
 * connection. Everything on the way is asynchronous: the old connection
 * still receives, only its output is stuck. */
static void reconnect(Manager *m) {
        sd_bus *bus = NULL;
        int r;

        if (m->next_bus)
                return;         /* under way */
        log_warning("the bus has not read our output for %" PRIu64 " ms; moving to a fresh connection",
                STALL_USEC / 1000);

        r = m->user_bus ? sd_bus_open_user(&bus) : sd_bus_open_system(&bus);
        if (r < 0)
                return reconnect_abort(m, r, "connect");
        m->next_bus = bus;
        r = bus_connection_setup(m, bus);
        if (r < 0)
                return reconnect_abort(m, r, "setup");
        /* Asynchronous, but sent before RequestName: the bus handles them
         * in order, so no disconnect falls between the two connections. */
        r = peer_track_disconnects(m, bus, true);
        if (r < 0)
                return reconnect_abort(m, r, "match NameOwnerChanged");
        r = sd_bus_request_name_async(bus, NULL, BB_BUS_NAME,
                                      SD_BUS_NAME_REPLACE_EXISTING | SD_BUS_NAME_ALLOW_REPLACEMENT,
                                      on_name_taken_over, m);
        if (r < 0)
                return reconnect_abort(m, r, "request the name");
}

/* Our output has not drained for a while: is the bus still reading us? A
 * probe tells (dbus-broker, for one, may leave part of our last message
 * unread until more comes). No answer within STALL_USEC: it is not. */
static int on_stall_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now;
        int r;

        bus_connection_check_output(m);
        if (m->stall_since == 0 || sd_event_now(m->event, CLOCK_MONOTONIC, &now) < 0)
                return 0;
        if (!m->probe_slot) {
                r = probe_send(m);
                if (r < 0)
                        return log_warning_errno(r, "Failed to send a probe to the bus"), 0;
        } else if (now >= m->probe_sent + STALL_USEC) {
                reconnect(m);
                return 0;
        }
        (void) sd_event_source_set_time(s, m->probe_sent + STALL_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

void bus_connection_check_output(Manager *m) {
        uint64_t queued = 0, now;
        int outq = 0, fd;

        if (!m->bus)
                return;
        peers_output_drained(m);
        fd = sd_bus_get_fd(m->bus);
        if (fd < 0 || ioctl(fd, SIOCOUTQ, &outq) < 0)
                outq = 0;
        (void) sd_bus_get_n_queued_write(m->bus, &queued);
        if (outq == 0 && queued == 0) {
                m->stall_since = 0;
                if (m->stall_timer)
                        (void) sd_event_source_set_enabled(m->stall_timer, SD_EVENT_OFF);
                return;
        }
        if (m->stall_since != 0 || sd_event_now(m->event, CLOCK_MONOTONIC, &now) < 0)
                return;         /* already watching */

        m->stall_since = now;
        if (!m->stall_timer) {
                if (sd_event_add_time(m->event, &m->stall_timer, CLOCK_MONOTONIC, now + DRAIN_USEC, 0,
                                      on_stall_timer, m) < 0)
                        return;
        } else {
                (void) sd_event_source_set_time(m->stall_timer, now + DRAIN_USEC);
                (void) sd_event_source_set_enabled(m->stall_timer, SD_EVENT_ONESHOT);
        }
}

void bus_connection_close(Manager *m) {
        Handout *h;

        while ((h = TAILQ_FIRST(&m->handouts)))
                handout_free(m, h);
        m->probe_slot = sd_bus_slot_unref(m->probe_slot);
        m->probe_timer = sd_event_source_disable_unref(m->probe_timer);
        m->stall_timer = sd_event_source_disable_unref(m->stall_timer);
        m->next_bus = sd_bus_close_unref(m->next_bus);
        if (m->bus) {
                (void) sd_bus_set_exit_on_disconnect(m->bus, false);
                /* Our last replies go out, unless the bus stopped reading us:
                 * flushing would then wait forever. */
                if (m->stall_since == 0)
                        (void) sd_bus_flush(m->bus);
                m->bus = sd_bus_close_unref(m->bus);
        }
}
