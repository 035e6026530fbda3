/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Change notification without leaks (daemon/bus-notify.c), on both buses
 * with the project's real policy file: every signal about a buffer
 * (InterfacesAdded, InterfacesRemoved, PropertiesChanged, BufferReleased
 * with each reason) reaches the connections that may see the buffer, with
 * that connection as destination, with or without a match rule of theirs;
 * another uid that listens, and has an eavesdrop-free match rule for every
 * signal, hears nothing of it. A connection that opens a buffer by token
 * hears of it from then on. GetManagedObjects and ListBufferProperties show
 * each caller only its own; the new methods refuse wrong signatures, and
 * listeners are bounded per uid (the boundary and its release on
 * Unsubscribe and on disconnect).
 *
 * Each connection records the signals it gets with a filter (which sees
 * every incoming message, matched or not) as lines "MEMBER ID DETAIL".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bufbroker.h"
#include "harness.h"

#define SIZE 4096
#define WAIT_MS 5000

typedef struct SigLog {
        char self[64];                  /* own unique name ("" on a private connection) */
        bool wrong_destination;         /* a signal addressed to someone else, or to nobody */
        unsigned n;
        char lines[256][128];
} SigLog;

static uint64_t id_of(const char *path) {
        uint64_t id = 0;

        (void) bb_buffer_path_to_id(path, &id);
        return id;
}

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        SigLog *log = userdata;
        const char *sender = sd_bus_message_get_sender(m), *dest = sd_bus_message_get_destination(m);
        const char *path = NULL, *s = NULL;
        char line[128];
        uint64_t id = 0;
        int b = -1, r = 0;

        if (!sd_bus_message_is_signal(m, NULL, NULL))
                return 0;
        if (sender && (strcmp(sender, "org.freedesktop.DBus") == 0 || strcmp(sender, H->daemon_unique_name) != 0))
                return 0;
        if (sd_bus_message_is_signal(m, NULL, "Disconnected"))
                return 0;

        if (sd_bus_message_is_signal(m, BB_MANAGER_INTERFACE, "BufferReleased")) {
                r = sd_bus_message_read(m, "ots", &path, &id, &s);
                snprintf(line, sizeof(line), "BufferReleased %" PRIu64 " %s", id, r >= 0 ? s : "?");
        } else if (sd_bus_message_is_signal(m, BB_OBJECT_MANAGER_INTERFACE, "InterfacesAdded")) {
                r = sd_bus_message_read(m, "o", &path);
                snprintf(line, sizeof(line), "InterfacesAdded %" PRIu64, r >= 0 ? id_of(path) : 0);
        } else if (sd_bus_message_is_signal(m, BB_OBJECT_MANAGER_INTERFACE, "InterfacesRemoved")) {
                r = sd_bus_message_read(m, "o", &path);
                snprintf(line, sizeof(line), "InterfacesRemoved %" PRIu64, r >= 0 ? id_of(path) : 0);
        } else if (sd_bus_message_is_signal(m, BB_PROPERTIES_INTERFACE, "PropertiesChanged")) {
                r = sd_bus_message_skip(m, "s");
                if (r >= 0)
                        r = sd_bus_message_enter_container(m, 'a', "{sv}");
                if (r >= 0)
                        r = sd_bus_message_read(m, "{sv}", &s, "b", &b);
                snprintf(line, sizeof(line), "PropertiesChanged %" PRIu64 " %s=%d",
                         id_of(sd_bus_message_get_path(m)), r > 0 ? s : "?", b);
        } else
                snprintf(line, sizeof(line), "%s.%s", sd_bus_message_get_interface(m) ?: "?",
                         sd_bus_message_get_member(m) ?: "?");

        if (log->self[0] ? !dest || strcmp(dest, log->self) != 0 : dest != NULL)
                log->wrong_destination = true;
        if (log->n < ELEMENTSOF(log->lines))
                snprintf(log->lines[log->n++], sizeof(log->lines[0]), "%s", line);
        return 0;
}

static bool log_has(const SigLog *log, const char *line) {
        for (unsigned i = 0; i < log->n; i++)
                if (strcmp(log->lines[i], line) == 0)
                        return true;
        return false;
}

static unsigned log_index(const SigLog *log, const char *line) {
        for (unsigned i = 0; i < log->n; i++)
                if (strcmp(log->lines[i], line) == 0)
                        return i;
        return UINT32_MAX;
}

static void log_dump(const char *who, const SigLog *log) {
        fprintf(stderr, "signals %s got (%u):\n", who, log->n);
        for (unsigned i = 0; i < log->n; i++)
                fprintf(stderr, "  %s\n", log->lines[i]);
}

/* Process @bus until @log has @line or @timeout_ms passed. */
static bool pump(sd_bus *bus, const SigLog *log, const char *line, int timeout_ms) {
        uint64_t deadline = now_usec() + (uint64_t) scaled_ms(timeout_ms) * 1000u;

        for (;;) {
                uint64_t now;

                while (sd_bus_process(bus, NULL) > 0)
                        ;
                if (log_has(log, line))
                        return true;
                now = now_usec();
                if (now >= deadline)
                        return false;
                (void) sd_bus_wait(bus, deadline - now);
        }
}

static void watch(sd_bus *bus, SigLog *log) {
        const char *name = "";

        (void) sd_bus_get_unique_name(bus, &name);
        snprintf(log->self, sizeof(log->self), "%s", name);
        ck_assert_int_ge(sd_bus_add_filter(bus, NULL, on_signal, log), 0);
}

#define expect(bus, log, ...)                                                           \
        do {                                                                            \
                char _l[128];                                                           \
                snprintf(_l, sizeof(_l), __VA_ARGS__);                                  \
                if (!pump((bus), (log), _l, WAIT_MS))                                   \
                        log_dump("the watcher", (log));                                 \
                ck_assert_msg(log_has((log), _l), "no signal \"%s\"", _l);              \
        } while (0)

static int call_simple(sd_bus *bus, const char *member, sd_bus_error *error) {
        return sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, member, error, NULL, "");
}

/* The ids of GetManagedObjects' (@managed) or ListBufferProperties' reply,
 * each checked to carry the properties by name; -errno or how many. */
static int list_ids(sd_bus *bus, bool managed, uint64_t *ids, unsigned max, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        unsigned n = 0;
        int r;

        if (managed)
                r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_OBJECT_MANAGER_INTERFACE,
                                       "GetManagedObjects", error, &reply, "");
        else
                r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE,
                                       "ListBufferProperties", error, &reply, "");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', managed ? "{oa{sa{sv}}}" : "(oa{sv})");
        while (r >= 0) {
                const char *path, *iface;
                uint64_t id = 0, prop_id = 0;

                r = sd_bus_message_enter_container(reply, managed ? 'e' : 'r', managed ? "oa{sa{sv}}" : "oa{sv}");
                if (r <= 0)
                        break;
                r = sd_bus_message_read(reply, "o", &path);
                if (r < 0)
                        break;
                id = id_of(path);
                if (managed) {
                        r = sd_bus_message_enter_container(reply, 'a', "{sa{sv}}");
                        if (r >= 0)
                                r = sd_bus_message_enter_container(reply, 'e', "sa{sv}");
                        if (r >= 0)
                                r = sd_bus_message_read(reply, "s", &iface);
                        if (r >= 0 && strcmp(iface, BB_BUFFER_INTERFACE) != 0)
                                r = -EBADMSG;
                }
                if (r >= 0)
                        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
                while (r >= 0) {
                        const char *key;

                        r = sd_bus_message_enter_container(reply, 'e', "sv");
                        if (r <= 0)
                                break;
                        r = sd_bus_message_read(reply, "s", &key);
                        if (r >= 0 && strcmp(key, BB_PROP_ID) == 0)
                                r = sd_bus_message_read(reply, "v", "t", &prop_id);
                        else if (r >= 0)
                                r = sd_bus_message_skip(reply, "v");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0 && managed)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0 && managed)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0 && prop_id != id)
                        r = -EBADMSG;   /* the Id property must name the path's buffer */
                if (r >= 0 && n < max)
                        ids[n++] = id;
        }
        return r < 0 ? r : (int) n;
}

/* A key of the Limits property (read as t). */
static uint64_t limit_get(const char *key) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t v = 0;
        int r;

        r = sd_bus_get_property(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Limits",
                                &error, &reply, "a{sv}");
        ck_assert_msg(r >= 0, "Limits: %s", error.message);
        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *k;

                r = sd_bus_message_read(reply, "s", &k);
                if (r >= 0 && strcmp(k, key) == 0)
                        r = sd_bus_message_read(reply, "v", "t", &v);
                else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        ck_assert_msg(r >= 0 && v > 0, "Limits has no %s", key);
        return v;
}

/* A persistent buffer whose fd is closed at once: nothing but its
 * persistence keeps it, so that its owner's Release drops it ("released")
 * whether or not the daemon has seen the fd close yet. */
static void create_released_later(sd_bus *bus, const char *name, Created *ret) {
        create_memfd(bus, name, SIZE, true, 0, ret);
        ret->fd = safe_close(ret->fd);
}

static bool ids_have(const uint64_t *ids, int n, uint64_t id) {
        for (int i = 0; i < n; i++)
                if (ids[i] == id)
                        return true;
        return false;
}

/* ------------------------------------------------------------ observer --- */

/* What a child and the test share (MAP_SHARED). */
typedef struct Shared {
        int ready[2];                   /* child → test: set up */
        int go[2];                      /* test → child: the test is done */
        uint64_t hidden;                /* a buffer the child may not see */
        uint64_t own;                   /* the child's sentinel */
        char token[BB_TOKEN_LEN + 1];
        SigLog log;
} Shared;

static Shared *shared_new(void) {
        Shared *sh = mmap(NULL, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        ck_assert(sh != MAP_FAILED);
        memset(sh, 0, sizeof(*sh));
        ck_assert_int_eq(pipe2(sh->ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(sh->go, O_CLOEXEC), 0);
        return sh;
}

static void shared_free(Shared *sh) {
        close(sh->ready[0]);
        close(sh->ready[1]);
        close(sh->go[0]);
        close(sh->go[1]);
        munmap(sh, sizeof(*sh));
}

static bool wait_byte(int fd, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char c;

        return poll(&p, 1, scaled_ms(timeout_ms)) == 1 && read(fd, &c, 1) == 1;
}

static void send_byte(int fd) {
        ck_assert_int_eq(write(fd, "x", 1), 1);
}

/* As nobody: listen (Subscribe and GetManagedObjects) with a match rule for
 * every signal, see none of root's buffers listed, then, once the test has
 * made root's buffers come and go, make one of its own come and go: it must
 * have heard of that one alone (the daemon sends in order: anything about
 * root's would have come first). */
static int observer(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Shared *sh = userdata;
        _cleanup_created_ Created own = {};
        uint64_t ids[64];
        char line[128];
        int n;

        child_check(bus_connect(&bus) >= 0, "connect");
        watch(bus, &sh->log);
        child_check(sd_bus_add_match(bus, NULL, "type='signal'", NULL, NULL) >= 0, "AddMatch");
        child_check(call_simple(bus, "Subscribe", &error) >= 0, "Subscribe: %s", error.message);
        n = list_ids(bus, true, ids, ELEMENTSOF(ids), &error);
        child_check(n >= 0, "GetManagedObjects: %s", error.message ?: strerror(-n));
        child_check(!ids_have(ids, n, sh->hidden), "GetManagedObjects showed nobody root's buffer %" PRIu64,
                    sh->hidden);
        n = list_ids(bus, false, ids, ELEMENTSOF(ids), &error);
        child_check(n >= 0, "ListBufferProperties: %s", error.message ?: strerror(-n));
        child_check(!ids_have(ids, n, sh->hidden), "ListBufferProperties showed nobody root's buffer");
        send_byte(sh->ready[1]);

        child_check(wait_byte(sh->go[0], 60000), "the test did not finish");
        create_released_later(bus, "sentinel", &own);
        sh->own = own.id;
        child_check(call_release(bus, own.path, &error) >= 0, "Release: %s", error.message);
        snprintf(line, sizeof(line), "BufferReleased %" PRIu64 " " BB_REASON_RELEASED, sh->own);
        child_check(pump(bus, &sh->log, line, WAIT_MS), "no BufferReleased of its own buffer");
        snprintf(line, sizeof(line), "InterfacesRemoved %" PRIu64, sh->own);
        child_check(pump(bus, &sh->log, line, WAIT_MS), "no InterfacesRemoved of its own buffer");
        /* Its own buffer: added once (it is creator and listener), its
         * persistence ended, released, removed. */
        child_check(sh->log.n == 4, "nobody got %u signals, want its own 4 only", sh->log.n);
        for (unsigned i = 0; i < sh->log.n; i++) {
                uint64_t id = 0;

                child_check(sscanf(sh->log.lines[i], "%*s %" SCNu64, &id) == 1 && id == sh->own,
                            "nobody heard \"%s\", of a buffer not its own", sh->log.lines[i]);
        }
        child_check(!sh->log.wrong_destination, "a signal to nobody had another destination");
        return 0;
}

START_TEST(test_other_uid_hears_nothing) {
        SigLog *root = calloc(1, sizeof(SigLog));
        _cleanup_created_ Created hidden = {}, rel = {}, ttl = {}, lease = {};
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Shared *sh = shared_new();
        uint64_t undone, lease_id, ids[64];
        int n, status;
        pid_t pid;

        ck_assert_ptr_nonnull(root);
        watch(test_bus(), root);
        released_watch();       /* a match rule and Subscribe, as root */
        create_memfd(NULL, "hidden", SIZE, true, 0, &hidden);
        sh->hidden = hidden.id;
        expect(test_bus(), root, "InterfacesAdded %" PRIu64, hidden.id);
        n = list_ids(test_bus(), true, ids, ELEMENTSOF(ids), &error);
        ck_assert_msg(n >= 0, "root's GetManagedObjects: %s", error.message ?: strerror(-n));
        ck_assert_msg(ids_have(ids, n, hidden.id), "root's GetManagedObjects lacks its buffer");

        pid = fork_as(NOBODY_UID, observer, sh);
        ck_assert_msg(wait_byte(sh->ready[0], 20000), "the observer did not start");

        /* released, with PropertiesChanged of Frozen and of Persistent */
        create_released_later(NULL, "released", &rel);
        expect(test_bus(), root, "InterfacesAdded %" PRIu64, rel.id);
        ck_assert_int_ge(call_freeze(NULL, rel.path, &error), 0);
        expect(test_bus(), root, "PropertiesChanged %" PRIu64 " Frozen=1", rel.id);
        ck_assert_int_ge(call_release(NULL, rel.path, &error), 0);
        expect(test_bus(), root, "PropertiesChanged %" PRIu64 " Persistent=0", rel.id);
        expect(test_bus(), root, "BufferReleased %" PRIu64 " " BB_REASON_RELEASED, rel.id);
        expect(test_bus(), root, "InterfacesRemoved %" PRIu64, rel.id);
        {
                char a[64], b[64];

                snprintf(a, sizeof(a), "BufferReleased %" PRIu64 " " BB_REASON_RELEASED, rel.id);
                snprintf(b, sizeof(b), "InterfacesRemoved %" PRIu64, rel.id);
                ck_assert_msg(log_index(root, a) < log_index(root, b), "InterfacesRemoved before BufferReleased");
        }

        /* expired */
        create_memfd(NULL, "expires", SIZE, true, 100 * 1000, &ttl);
        expect(test_bus(), root, "BufferReleased %" PRIu64 " " BB_REASON_EXPIRED, ttl.id);

        /* lease: held, but its only fd closed */
        create_memfd(NULL, "lease", SIZE, false, 0, &lease);
        lease_id = lease.id;
        created_done(&lease);
        expect(test_bus(), root, "BufferReleased %" PRIu64 " " BB_REASON_LEASE, lease_id);

        /* undone: a create that asked for no reply is taken back */
        ck_assert_int_ge(sd_bus_message_new_method_call(test_bus(), &call, BB_BUS_NAME, BB_MANAGER_PATH,
                                                        BB_MANAGER_INTERFACE, "CreateMemfd"), 0);
        ck_assert_int_ge(sd_bus_message_append(call, "sta{sv}", "undone", (uint64_t) SIZE, 0), 0);
        ck_assert_int_ge(sd_bus_message_set_expect_reply(call, 0), 0);
        ck_assert_int_ge(sd_bus_send(test_bus(), call, NULL), 0);
        undone = lease_id + 1;  /* ids are sequential; nobody creates meanwhile */
        expect(test_bus(), root, "InterfacesAdded %" PRIu64, undone);
        expect(test_bus(), root, "BufferReleased %" PRIu64 " " BB_REASON_UNDONE, undone);
        ck_assert_str_eq(released_reason(undone), BB_REASON_UNDONE);

        /* Unicast: every copy was addressed to this connection. */
        ck_assert_msg(!root->wrong_destination, "a signal to root had another destination");

        send_byte(sh->go[1]);
        status = wait_child(pid, scaled_ms(30000));
        if (status != 0)
                log_dump("nobody", &sh->log);
        ck_assert_msg(status == 0, "the observer (uid %u) failed: %d", (unsigned) NOBODY_UID, status);
        shared_free(sh);
        free(root);
}
END_TEST

/* ------------------------------------------------------- a new holder --- */

/* As nobody, no listener, no match rule: open root's buffer by token, keep
 * its fd; hear its changes from then on (PropertiesChanged), and why it
 * went when its time ran out (BufferReleased "expired"). */
static int new_holder(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Shared *sh = userdata;
        char line[128];
        int fd = -1;

        child_check(bus_connect(&bus) >= 0, "connect");
        watch(bus, &sh->log);
        child_check(call_open(bus, sh->token, NULL, &fd, NULL, &error) >= 0, "Open: %s", error.message);
        send_byte(sh->ready[1]);

        snprintf(line, sizeof(line), "PropertiesChanged %" PRIu64 " Persistent=0", sh->hidden);
        child_check(pump(bus, &sh->log, line, 20000), "no PropertiesChanged of Persistent");
        snprintf(line, sizeof(line), "PropertiesChanged %" PRIu64 " Frozen=1", sh->hidden);
        child_check(log_has(&sh->log, line), "no PropertiesChanged of Frozen");
        snprintf(line, sizeof(line), "BufferReleased %" PRIu64 " " BB_REASON_EXPIRED, sh->hidden);
        child_check(pump(bus, &sh->log, line, 3 * WAIT_MS), "no BufferReleased of the buffer it held");
        close(fd);
        /* A round trip: anything else sent before it has been read. */
        child_check(sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_PROPERTIES_INTERFACE, "Get",
                                       &error, NULL, "ss", BB_MANAGER_INTERFACE, "Version") >= 0, "Get");
        while (sd_bus_process(bus, NULL) > 0)
                ;
        /* InterfacesAdded/Removed are for listeners only; it does not listen. */
        child_check(sh->log.n == 3, "the holder got %u signals, want 3", sh->log.n);
        child_check(!sh->log.wrong_destination, "a signal to the holder had another destination");
        return 0;
}

START_TEST(test_open_makes_a_holder_hear) {
        SigLog *root = calloc(1, sizeof(SigLog));
        _cleanup_created_ Created buf = {};
        sd_bus_error error = SD_BUS_ERROR_NULL;
        Shared *sh = shared_new();
        char *token = NULL;
        int status;
        pid_t pid;

        ck_assert_ptr_nonnull(root);
        watch(test_bus(), root);
        released_watch();
        create_memfd(NULL, "shared", SIZE, true, (uint64_t) scaled_ms(3000) * 1000u, &buf);
        sh->hidden = buf.id;
        ck_assert_int_ge(call_share(NULL, buf.path, false, (uid_t) -1, false, 0, &token, &error), 0);
        snprintf(sh->token, sizeof(sh->token), "%s", token);
        free(token);
        safe_close(buf.fd);     /* only the holder's fd keeps it */
        buf.fd = -1;

        pid = fork_as(NOBODY_UID, new_holder, sh);
        ck_assert_msg(wait_byte(sh->ready[0], 20000), "the holder did not open the buffer");
        ck_assert_int_ge(call_freeze(NULL, buf.path, &error), 0);
        /* ends persistence and root's hold; nobody's hold keeps it until it expires */
        ck_assert_int_ge(call_release(NULL, buf.path, &error), 0);
        {
                char line[128];

                snprintf(line, sizeof(line), "BufferReleased %" PRIu64 " " BB_REASON_EXPIRED, buf.id);
                ck_assert_msg(pump(test_bus(), root, line, 3 * WAIT_MS), "no \"%s\"", line);
        }

        status = wait_child(pid, scaled_ms(30000));
        if (status != 0)
                log_dump("the holder", &sh->log);
        ck_assert_msg(status == 0, "the holder (uid %u) failed: %d", (unsigned) NOBODY_UID, status);
        shared_free(sh);
        free(root);
}
END_TEST

/* -------------------------------------------- delivery, with the policy --- */

/* A unicast signal reaches its destination with no match rule on that
 * connection (a filter sees it), and the test's connection with one; a
 * connection of the same uid that does not listen, with an eavesdrop-free
 * match rule for every signal, gets none of them. */
START_TEST(test_delivered_without_match_rule) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *plain = NULL, *matcher = NULL;
        SigLog *root = calloc(1, sizeof(SigLog)), *bare = calloc(1, sizeof(SigLog));
        SigLog *matched = calloc(1, sizeof(SigLog));
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_created_ Created buf = {};

        ck_assert_ptr_nonnull(root);
        ck_assert_ptr_nonnull(bare);
        ck_assert_ptr_nonnull(matched);
        ck_assert_int_ge(bus_connect(&matcher), 0);
        watch(matcher, matched);
        ck_assert_int_ge(sd_bus_add_match(matcher, NULL, "type='signal'", NULL, NULL), 0);
        watch(test_bus(), root);
        released_watch();
        ck_assert_int_ge(bus_connect(&plain), 0);
        watch(plain, bare);
        ck_assert_int_ge(call_simple(plain, "Subscribe", &error), 0);

        create_released_later(NULL, "delivered", &buf);
        ck_assert_int_ge(call_release(NULL, buf.path, &error), 0);
        expect(test_bus(), root, "BufferReleased %" PRIu64 " " BB_REASON_RELEASED, buf.id);
        ck_assert(released_seen(buf.id));
        expect(plain, bare, "InterfacesAdded %" PRIu64, buf.id);
        expect(plain, bare, "PropertiesChanged %" PRIu64 " Persistent=0", buf.id);
        expect(plain, bare, "BufferReleased %" PRIu64 " " BB_REASON_RELEASED, buf.id);
        expect(plain, bare, "InterfacesRemoved %" PRIu64, buf.id);
        ck_assert(!bare->wrong_destination && !root->wrong_destination);

        /* Unsubscribed: nothing more of buffers it does not hold. */
        ck_assert_int_ge(call_simple(plain, "Unsubscribe", &error), 0);
        created_done(&buf);
        create_released_later(NULL, "unheard", &buf);
        ck_assert_int_ge(call_release(NULL, buf.path, &error), 0);
        expect(test_bus(), root, "BufferReleased %" PRIu64 " " BB_REASON_RELEASED, buf.id);
        ck_assert_int_ge(call_simple(plain, "Unsubscribe", &error), 0);  /* a round trip: all read */
        while (sd_bus_process(plain, NULL) > 0)
                ;
        if (bare->n != 4)
                log_dump("the connection without match rule", bare);
        ck_assert_uint_eq(bare->n, 4);
        /* A round trip on the matcher: whatever was sent to it has come. */
        ck_assert_int_ge(sd_bus_call_method(matcher, BB_BUS_NAME, BB_MANAGER_PATH, BB_PROPERTIES_INTERFACE, "Get",
                                            &error, NULL, "ss", BB_MANAGER_INTERFACE, "Version"), 0);
        while (sd_bus_process(matcher, NULL) > 0)
                ;
        if (matched->n > 0)
                log_dump("the non-listening connection with a match rule", matched);
        ck_assert_uint_eq(matched->n, 0);
        free(root);
        free(bare);
        free(matched);
}
END_TEST

/* ------------------------------------------------------------ hostile --- */

START_TEST(test_wrong_signatures) {
        static const struct {
                const char *iface, *member;
        } calls[] = {
                { BB_MANAGER_INTERFACE, "Subscribe" },
                { BB_MANAGER_INTERFACE, "Unsubscribe" },
                { BB_MANAGER_INTERFACE, "ListBufferProperties" },
                { BB_OBJECT_MANAGER_INTERFACE, "GetManagedObjects" },
        };

        for (size_t i = 0; i < ELEMENTSOF(calls); i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r;

                r = sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, calls[i].iface, calls[i].member,
                                       &error, NULL, "su", "junk", 7);
                assert_bus_error(&error, r, SD_BUS_ERROR_INVALID_ARGS, NULL, calls[i].member);
                sd_bus_error_free(&error);
        }
}
END_TEST

/* GetManagedObjects elsewhere than on the manager shows nobody root's buffer. */
static int other_paths(void *userdata) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const Shared *sh = userdata;
        const char *paths[] = { "/", BB_BUFFER_PATH_PREFIX, NULL };
        char own[BB_BUFFER_PATH_MAX];

        child_check(bus_connect(&bus) >= 0, "connect");
        paths[2] = bb_buffer_path_from_id(sh->hidden, own);
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                sd_bus_error error = SD_BUS_ERROR_NULL;
                char hidden[BB_BUFFER_PATH_MAX];
                const char *path;
                int r;

                r = sd_bus_call_method(bus, BB_BUS_NAME, paths[i], BB_OBJECT_MANAGER_INTERFACE,
                                       "GetManagedObjects", &error, &reply, "");
                sd_bus_error_free(&error);
                if (r < 0)
                        continue;
                bb_buffer_path_from_id(sh->hidden, hidden);
                r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
                while (r > 0 && (r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}")) > 0) {
                        r = sd_bus_message_read(reply, "o", &path);
                        child_check(r < 0 || strcmp(path, hidden) != 0,
                                    "GetManagedObjects on %s showed nobody %s", paths[i], hidden);
                        if (r >= 0)
                                r = sd_bus_message_skip(reply, "a{sa{sv}}");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                }
        }
        return 0;
}

START_TEST(test_managed_objects_elsewhere) {
        _cleanup_created_ Created buf = {};
        Shared *sh = shared_new();

        create_memfd(NULL, "elsewhere", SIZE, true, 0, &buf);
        sh->hidden = buf.id;
        ck_assert_int_eq(run_as(NOBODY_UID, other_paths, sh, 20000), 0);
        shared_free(sh);
}
END_TEST

/* As nobody: max-listeners-per-uid connections listen (Subscribe, or
 * GetManagedObjects), subscribing again takes no second place, one more is
 * LimitsExceeded either way; Unsubscribe and a disconnect each free a place. */
static int listener_limit(void *userdata) {
        const uint64_t *limit = userdata;
        sd_bus **conns = calloc(*limit + 1, sizeof(sd_bus *));
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t ids[4];
        int r = 0;

        child_check(conns != NULL, "calloc");
        for (uint64_t i = 0; i <= *limit; i++)
                child_check(bus_connect(&conns[i]) >= 0, "connect %" PRIu64, i);
        for (uint64_t i = 0; i < *limit; i++) {
                if (i % 2)
                        r = list_ids(conns[i], true, ids, ELEMENTSOF(ids), &error);
                else
                        r = call_simple(conns[i], "Subscribe", &error);
                child_check(r >= 0, "listener %" PRIu64 " of %" PRIu64 ": %s", i, *limit, error.message);
        }
        child_check(call_simple(conns[0], "Subscribe", &error) >= 0, "Subscribe again: %s", error.message);
        child_check(list_ids(conns[1], true, ids, ELEMENTSOF(ids), &error) >= 0, "GetManagedObjects again");

        r = call_simple(conns[*limit], "Subscribe", &error);
        child_check(r < 0 && sd_bus_error_has_name(&error, SD_BUS_ERROR_LIMITS_EXCEEDED) &&
                    strstr(error.message, "listening"),
                    "listener %" PRIu64 ": %d %s", *limit + 1, r, error.message ?: "");
        sd_bus_error_free(&error);
        r = list_ids(conns[*limit], true, ids, ELEMENTSOF(ids), &error);
        child_check(r < 0 && sd_bus_error_has_name(&error, SD_BUS_ERROR_LIMITS_EXCEEDED),
                    "GetManagedObjects past the limit: %d %s", r, error.message ?: "");
        sd_bus_error_free(&error);

        /* Unsubscribe frees a place. */
        child_check(call_simple(conns[0], "Unsubscribe", &error) >= 0, "Unsubscribe");
        child_check(call_simple(conns[*limit], "Subscribe", &error) >= 0, "Subscribe after Unsubscribe: %s",
                    error.message);
        /* A listener that disconnects frees its place (once the daemon hears). */
        child_check(call_simple(conns[0], "Subscribe", &error) < 0, "over the limit again");
        sd_bus_error_free(&error);
        conns[1] = sd_bus_flush_close_unref(conns[1]);
        for (int tries = 0;; tries++) {
                r = call_simple(conns[0], "Subscribe", &error);
                sd_bus_error_free(&error);
                if (r >= 0)
                        break;
                child_check(tries < 100, "a disconnected listener kept its place");
                msleep(50);
        }
        for (uint64_t i = 0; i <= *limit; i++)
                sd_bus_flush_close_unref(conns[i]);
        free(conns);
        return 0;
}

START_TEST(test_listener_limit) {
        uint64_t limit = limit_get(BB_LIMIT_MAX_LISTENERS_PER_UID);

        ck_assert_uint_le(limit, 200);  /* fits the bus' connections per uid (256) */
        ck_assert_uint_le(limit, limit_get(BB_LIMIT_MAX_LISTENERS));
        ck_assert_int_eq(run_as(NOBODY_UID, listener_limit, &limit, 60000), 0);
}
END_TEST

/* ------------------------------------------------- the library's list --- */

/* bb_client_list_buffers() reads ListBufferProperties by name: every field,
 * Holders too (two connections hold the buffer); bb_buffer_get() reads the
 * same Holders from GetAll. */
START_TEST(test_library_lists_by_name) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *other = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_created_ Created buf = {};
        bb_buffer **list = NULL, *got = NULL;
        bb_client *c = NULL;
        char *token = NULL;
        unsigned holders = 0;
        size_t n = 0;
        bool found = false;
        int fd = -1;

        create_memfd(NULL, "listed", SIZE, true, 0, &buf);
        ck_assert_int_ge(call_share(NULL, buf.path, true, (uid_t) -1, false, 0, &token, &error), 0);
        ck_assert_int_ge(bus_connect(&other), 0);
        ck_assert_int_ge(call_open(other, token, NULL, &fd, NULL, &error), 0);

        ck_assert_int_eq(bb_client_new_address(&c, H->address), 0);
        ck_assert_int_eq(bb_client_list_buffers(c, &list, &n), 0);
        for (size_t i = 0; i < n; i++) {
                if (bb_buffer_id(list[i]) != buf.id)
                        continue;
                found = true;
                ck_assert_str_eq(bb_buffer_name(list[i]), "listed");
                ck_assert_str_eq(bb_buffer_kind(list[i]), BB_KIND_MEMFD);
                ck_assert_str_eq(bb_buffer_path(list[i]), buf.path);
                ck_assert_uint_eq(bb_buffer_size(list[i]), buf.size);
                ck_assert_uint_eq(bb_buffer_owner_uid(list[i]), 0);
                ck_assert_int_eq(bb_buffer_is_persistent(list[i]), 1);
                ck_assert_uint_gt(bb_buffer_created_usec(list[i]), 0);
                ck_assert_uint_eq(bb_buffer_n_planes(list[i]), 1);
                ck_assert_int_eq(bb_buffer_get_holders(list[i], &holders), 0);
                ck_assert_uint_eq(holders, 2);
        }
        ck_assert_msg(found, "bb_client_list_buffers() lacks buffer %" PRIu64, buf.id);
        ck_assert_int_eq(bb_buffer_get(c, buf.id, &got), 0);
        ck_assert_int_eq(bb_buffer_get_holders(got, &holders), 0);
        ck_assert_uint_eq(holders, 2);

        bb_buffer_unref(got);
        bb_buffer_list_free(list, n);
        bb_client_unref(c);
        safe_close(fd);
        free(token);
}
END_TEST

/* ------------------------------------------------ private connections --- */

/* A private connection to the daemon (OpenPrivateConnection on @bus). */
static int private_connect(sd_bus *bus, sd_bus **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *p = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int fd, r;

        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "OpenPrivateConnection",
                               &error, &reply, "");
        sd_bus_error_free(&error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "h", &fd);
        if (r < 0)
                return r;
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        r = sd_bus_new(&p);
        if (r >= 0)
                r = sd_bus_set_fd(p, fd, fd);
        if (r < 0) {
                close(fd);
                return r;
        }
        r = sd_bus_negotiate_fds(p, 1);
        if (r >= 0)
                r = sd_bus_start(p);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

/* As nobody: a private connection listens (its signals come on it, without
 * destination) and takes a listener's place until it closes: with
 * max-listeners-per-uid - 1 bus listeners and it, one more is refused;
 * once it closed, the place is free. */
static int private_listener(void *userdata) {
        const uint64_t *limit = userdata;
        sd_bus **conns = calloc(*limit, sizeof(sd_bus *));
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *priv = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_created_ Created own = {};
        SigLog *log = calloc(1, sizeof(SigLog));
        char line[128];
        int r;

        child_check(conns && log, "calloc");
        for (uint64_t i = 0; i < *limit; i++)
                child_check(bus_connect(&conns[i]) >= 0, "connect %" PRIu64, i);
        child_check(private_connect(conns[0], &priv) >= 0, "OpenPrivateConnection");
        child_check(sd_bus_add_filter(priv, NULL, on_signal, log) >= 0, "filter");  /* self "": no destination */
        child_check(call_simple(priv, "Subscribe", &error) >= 0, "Subscribe on the private connection: %s",
                    error.message);
        for (uint64_t i = 0; i + 1 < *limit; i++)
                child_check(call_simple(conns[i], "Subscribe", &error) >= 0, "listener %" PRIu64 ": %s", i,
                            error.message);
        r = call_simple(conns[*limit - 1], "Subscribe", &error);
        child_check(r < 0 && sd_bus_error_has_name(&error, SD_BUS_ERROR_LIMITS_EXCEEDED),
                    "the private listener took no place: %d", r);
        sd_bus_error_free(&error);

        /* Its own buffer, made on the bus: heard on the private connection. */
        create_memfd(conns[0], "private", SIZE, false, 0, &own);
        snprintf(line, sizeof(line), "InterfacesAdded %" PRIu64, own.id);
        child_check(pump(priv, log, line, WAIT_MS), "no InterfacesAdded on the private connection");
        child_check(!log->wrong_destination, "a signal on the private connection had a destination");

        priv = sd_bus_flush_close_unref(priv);
        for (int tries = 0;; tries++) {
                r = call_simple(conns[*limit - 1], "Subscribe", &error);
                sd_bus_error_free(&error);
                if (r >= 0)
                        break;
                child_check(tries < 100, "a closed private connection kept its listener's place");
                msleep(50);
        }
        for (uint64_t i = 0; i < *limit; i++)
                sd_bus_flush_close_unref(conns[i]);
        free(conns);
        free(log);
        return 0;
}

START_TEST(test_private_listener) {
        uint64_t limit = limit_get(BB_LIMIT_MAX_LISTENERS_PER_UID);

        ck_assert_uint_le(limit, 200);
        ck_assert_int_eq(run_as(NOBODY_UID, private_listener, &limit, 60000), 0);
}
END_TEST

/* ---------------------------------------- holders gone, after a restart --- */

/* A restored buffer has no lease: its last holder's disconnect drops it,
 * and the listeners hear "holders-gone". The holder is a live connection
 * whose hold the saved state names. */
START_TEST(test_holders_gone) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *holder = NULL;
        SigLog *root = calloc(1, sizeof(SigLog));
        char state[1024], *names = "state:buf-5-0";
        const char *name;
        int fds[2];

        ck_assert_ptr_nonnull(root);
        ck_assert_int_ge(bus_connect(&holder), 0);
        ck_assert_int_ge(sd_bus_get_unique_name(holder, &name), 0);
        snprintf(state, sizeof(state),
                 "bufbroker-state 2 10\n"
                 "buffer 5 0 0 0 0 18446744073709551615 1700000000000000 0 0 1 4096 0 0 6b657074\n"
                 "hold 5 0 %s\n", name);
        fds[0] = memfd_create("bb-test-state", MFD_CLOEXEC);
        fds[1] = memfd_create("bb-test-kept", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        ck_assert(fds[0] >= 0 && fds[1] >= 0);
        ck_assert_int_eq(write(fds[0], state, strlen(state)), (ssize_t) strlen(state));
        ck_assert_int_eq(ftruncate(fds[1], 4096), 0);
        ck_assert_int_eq(fcntl(fds[1], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
        harness_daemon_spawn = (PbusSpawn) { .listen_fds = fds, .n_listen_fds = 2, .listen_fdnames = names };
        harness_restart_daemon(NULL);
        close(fds[0]);
        close(fds[1]);
        ck_assert_msg(list_has(NULL, 5), "buffer 5 was not restored");

        watch(test_bus(), root);
        released_watch();
        holder = sd_bus_flush_close_unref(holder);
        expect(test_bus(), root, "BufferReleased 5 " BB_REASON_HOLDERS_GONE);
        expect(test_bus(), root, "InterfacesRemoved 5");
        free(root);
}
END_TEST

static void setup_bus_only(BusKind kind) {
        harness_daemon_spawn = (PbusSpawn) {};
        harness_start(kind, false, NULL);
}

static void setup_dbus_daemon_only(void) {
        setup_bus_only(BUS_DBUS_DAEMON);
}

static void setup_dbus_broker_only(void) {
        setup_bus_only(BUS_DBUS_BROKER);
}

static void add_restart_tests(TCase *tc) {
        tcase_add_test(tc, test_holders_gone);
}

static void add_tests(TCase *tc) {
        tcase_add_test(tc, test_other_uid_hears_nothing);
        tcase_add_test(tc, test_open_makes_a_holder_hear);
        tcase_add_test(tc, test_delivered_without_match_rule);
        tcase_add_test(tc, test_wrong_signatures);
        tcase_add_test(tc, test_managed_objects_elsewhere);
        tcase_add_test(tc, test_listener_limit);
        tcase_add_test(tc, test_private_listener);
        tcase_add_test(tc, test_library_lists_by_name);
}

int main(void) {
        Suite *s = suite_create("notify");

        harness_add_tcases(s, NULL, add_tests);
        harness_add_tcase(s, "holders gone: dbus-daemon", setup_dbus_daemon_only, add_restart_tests);
        harness_add_tcase(s, "holders gone: dbus-broker", setup_dbus_broker_only, add_restart_tests);
        return harness_main(s);
}
