/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-bus: an fd-aware fuzzer for the daemon's bus layer (issue #7).
 *
 * Each input gets a fresh Manager (small limits) and one or two direct
 * connections (bus_connection_add_direct(): the same filter, fair queue,
 * vtables and handlers as on the bus), with an sd-bus client on the other
 * end of each socketpair, all on one sd_event loop. The input is decoded into
 * method calls (and a few signals) with generated paths, interfaces, members
 * and bodies of every D-Bus type, nested variants included, whose `h` values
 * are real fds of many kinds. What replies return (object paths, tokens,
 * fds) feeds later calls, so that CreateMemfd -> Share -> Open -> OpenFds ->
 * Freeze -> Release sequences are reached; and the harness is a hostile
 * holder of what it got (maps it writable, seals it itself).
 *
 * D-Bus fuzzers that write messages as bytes send `h` as a plain index with
 * no fd behind it. Here every fd is real: the daemon must close each one it
 * was sent and did not keep, and the fd count of the process is checked
 * after each input.
 *
 * Invariants (abort() on violation, so that libFuzzer reports a crash):
 *  - every call that expects a reply gets exactly one (counted by reply
 *    cookie; the daemon once replied twice), and a call that asked for none
 *    gets at most one;
 *  - the daemon sends a direct peer replies, and signals only of buffer
 *    changes (InterfacesAdded/Removed, PropertiesChanged, BufferReleased)
 *    with the contract's signatures, a documented reason, and for a new
 *    buffer an owner the peer may see (it has no bus to ask for
 *    credentials: they come from the socket);
 *  - a method return has the signature of the contract; the fds it carries
 *    are sealed memfds (F_SEAL_SHRINK|F_SEAL_GROW) of the size it states,
 *    O_RDONLY where it says read-only; the connection that got fds holds the
 *    buffer, a token belongs to the uid that asked for it, and a frozen
 *    buffer is sealed against writes; Open honours what the token says
 *    (bound uid, read-only, single use) and fails for a token that did not
 *    exist; after Release the caller holds nothing of the buffer, and the
 *    owner's Release ended its persistence;
 *  - ListBuffers, the properties and the introspection of the buffer nodes
 *    show the caller exactly the buffers it may see (owner uid, root, the
 *    daemon's uid, holders), as the broker has them;
 *  - an error names what the contract names, and changes nothing: no
 *    buffer, hold, token or client more or less (checked where nothing else
 *    can change them meanwhile: no other call in flight, no TTL in the input);
 *  - whenever the loop settles: the core's books add up, no call waits in a
 *    queue, and the daemon knows exactly the connections that are open;
 *  - after the clients close: no client is left (stats.clients == 0) and
 *    only persistent buffers remain; after manager_done() the process has
 *    exactly the fds it had before the input (the harness closes what it
 *    received, the daemon everything it was sent).
 *
 * Input format (tests/fuzz/make-seeds.py writes seeds in it; a byte read
 * past the end is 0):
 *
 *   header   bits 0-1: uid of client 0, bits 2-3: uid of client 1 (0: what
 *            SO_PEERCRED says, 1: 1000001, 2: 1000002, 3: 65534); bit 4: a
 *            second client; bits 5, 6: client 0, 1 does not negotiate fds
 *   op*      bits 0-2: 0-3 call and wait for its reply, 4 call and go on
 *            (replies are collected by the next wait), 5 call with
 *            NO_REPLY_EXPECTED, 6 signal, 7 control; bit 3: which client;
 *            bits 4-7 of a control: 0 reconnect (settle, close, check that
 *            the daemon forgot it, open a new one), 1 close abruptly and
 *            reopen at once, 3-6 act as a hostile holder on the last fd a
 *            reply returned (3 map it shared and writable until the end of
 *            the input, 4 seal it F_SEAL_WRITE, 5 F_SEAL_SEAL, 6
 *            F_SEAL_FUTURE_WRITE), else settle
 *   call     flags (bits 0-2: sender field: 4 own name, 5 the other
 *            client's, 6 ":1.42", 7 "org.freedesktop.DBus", else none; bit 3
 *            no auto-start; bit 4 allow interactive authorization; bit 5 a
 *            destination), path, interface, member, body mode (0 the
 *            contract's arguments, 1 plus extra ones, 2 random arguments, 3
 *            none, 4 all but the last), arguments; see the pick_* functions.
 *
 * The harness plays other uids by setting the uid that SO_PEERCRED gave the
 * daemon's Peer (both ends are in this process): the daemon then treats the
 * connection exactly as one of that uid.
 *
 * Not covered: malformed wire data (sd-bus's parser, which systemd fuzzes),
 * forged replies and errors sent to the daemon, fds on messages to sd-bus's
 * Local path (see do_call()), V4L2 devices (there are none here).
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/udmabuf.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus.h"
#include "fuzz.h"

#define OPS_MAX 64u             /* per input: keeps an input fast */
#define CALLS_MAX 128u          /* per connection */
#define RECONNECTS_MAX 8u
#define SEEN_MAX 16u            /* object paths replies returned */
#define RECEIVED_MAX 8u         /* fds replies returned (dups kept) */
#define MAPS_MAX 8u             /* writable mappings of them */
/* fds in one message: the kernel passes at most 253 (SCM_MAX_FD) in one
 * sendmsg(), a bus fewer (dbus-daemon: 16 on the system bus). Generated
 * dicts of `h` would go past that; a message that would is not sent. */
#define FDS_PER_MESSAGE_MAX 64u
#define PUMP_MAX 200000u        /* loop rounds before "does not settle" */
#define DEPTH_MAX 5u            /* of generated types (variants add more) */

#define UID_A ((uid_t) 1000001)
#define UID_B ((uid_t) 1000002)
#define UID_NOBODY ((uid_t) 65534)

/* ------------------------------------------------------------ failing --- */

/* FUZZ_BUS_DEBUG=1: print every call and reply (what an input does);
 * FUZZ_BUS_DEBUG=2: with their contents. */
static int debug;

_printf_(1, 2) static _Noreturn void fuzz_fail(const char *fmt, ...) {
        va_list ap;

        fputs("fuzz-bus: INVARIANT VIOLATED: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        abort();
}

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static const char *strna(const char *s) {
        return s ?: "n/a";
}

/* -------------------------------------------------------------- input --- */

typedef struct Input {
        const uint8_t *p;
        size_t n;
} Input;

static uint8_t in_u8(Input *in) {
        if (in->n == 0)
                return 0;
        in->n--;
        return *in->p++;
}

static uint64_t in_uint(Input *in, unsigned bytes) {
        uint64_t v = 0;

        for (unsigned i = 0; i < bytes; i++)
                v |= (uint64_t) in_u8(in) << (8 * i);
        return v;
}

static unsigned in_pick(Input *in, unsigned n) {
        return in_u8(in) % n;
}

/* Strings live until the message is sent: one arena, reset per call. */
static char arena[64 * 1024];
static size_t arena_used;

static char *arena_alloc(size_t n) {
        char *p;

        if (n > sizeof(arena) - arena_used)
                return NULL;
        p = arena + arena_used;
        arena_used += n;
        return p;
}

static char *arena_printf(const char *fmt, ...) _printf_(1, 2);
static char *arena_printf(const char *fmt, ...) {
        va_list ap;
        char *p = arena + arena_used;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(p, sizeof(arena) - arena_used, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(arena) - arena_used)
                return NULL;
        arena_used += (size_t) n + 1;
        return p;
}

static char *arena_repeat(const char *unit, unsigned times) {
        size_t len = strlen(unit);
        char *p = arena_alloc(len * times + 1);

        if (!p)
                return NULL;
        for (unsigned i = 0; i < times; i++)
                memcpy(p + i * len, unit, len);
        p[len * times] = 0;
        return p;
}

/* A string from the input: a length byte, then bytes made valid UTF-8
 * without NUL (sd-bus refuses anything else before it is sent). */
static char *in_string(Input *in, unsigned max) {
        unsigned n = in_u8(in) % (max + 1);
        char *p = arena_alloc(2 * n + 1), *q = p;

        if (!p)
                return NULL;
        for (unsigned i = 0; i < n; i++) {
                uint8_t c = in_u8(in);

                if (c == 0)
                        *q++ = '0';
                else if (c < 0x80)
                        *q++ = (char) c;
                else {
                        /* U+0080..U+00FF */
                        *q++ = (char) (0xc0 | (c >> 6));
                        *q++ = (char) (0x80 | (c & 0x3f));
                }
        }
        *q = 0;
        return p;
}

/* A name of [A-Za-z0-9_] from the input (never empty, never a leading digit). */
static char *in_identifier(Input *in) {
        static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789";
        unsigned n = 1 + in_u8(in) % 16;
        char *p = arena_alloc(n + 1);

        if (!p)
                return NULL;
        for (unsigned i = 0; i < n; i++)
                p[i] = chars[in_u8(in) % (i == 0 ? sizeof(chars) - 11 : sizeof(chars) - 1)];
        p[n] = 0;
        return p;
}

/* ------------------------------------------------------------- state --- */

typedef enum Member {
        M_CREATE_MEMFD,
        M_OPEN,
        M_CREATE_V4L2,
        M_LIST_BUFFERS,
        M_RELEASE,
        M_SHARE,
        M_OPEN_FDS,
        M_FREEZE,
        M_GET,
        M_GET_ALL,
        M_SET,
        M_INTROSPECT,
        M_PING,
        M_GET_MACHINE_ID,
        M_CREATE,
        M_JUNK,
        M_INPUT,
        _M_MAX,
} Member;

static const char *const member_names[_M_MAX] = {
        [M_CREATE_MEMFD] = "CreateMemfd",
        [M_OPEN] = "Open",
        [M_CREATE_V4L2] = "CreateV4L2",
        [M_LIST_BUFFERS] = "ListBuffers",
        [M_RELEASE] = "Release",
        [M_SHARE] = "Share",
        [M_OPEN_FDS] = "OpenFds",
        [M_FREEZE] = "Freeze",
        [M_GET] = "Get",
        [M_GET_ALL] = "GetAll",
        [M_SET] = "Set",
        [M_INTROSPECT] = "Introspect",
        [M_PING] = "Ping",
        [M_GET_MACHINE_ID] = "GetMachineId",
        [M_CREATE] = "Create",
};

/* What a method return must carry (NULL: anything, for members we made up). */
static const char *const member_reply_signature[_M_MAX] = {
        [M_CREATE_MEMFD] = "oht",
        [M_OPEN] = "oaha{sv}",
        [M_CREATE_V4L2] = "aoa{sv}",
        [M_LIST_BUFFERS] = ("a" BB_LIST_ENTRY_SIGNATURE),
        [M_RELEASE] = "",
        [M_SHARE] = "s",
        [M_OPEN_FDS] = "aha{sv}",
        [M_FREEZE] = "",
        [M_GET] = "v",
        [M_GET_ALL] = "a{sv}",
        [M_SET] = "",
        [M_INTROSPECT] = "s",
        [M_PING] = "",
        [M_GET_MACHINE_ID] = "s",
        [M_CREATE] = "oaha{sv}",
};

/* What an error reply must leave as it was. */
typedef struct Snapshot {
        bool valid;
        uint64_t buffers, bytes, tokens, clients, holds;
} Snapshot;

typedef struct Call {
        uint64_t cookie;
        Member member;
        bool expect_reply;      /* exactly one; else at most one */
        bool alone;             /* nothing else of its connection in flight: its
                                 * reply shows the state it left */
        unsigned replies;
        char path[96];          /* "" if it did not fit */
        Snapshot before;        /* the broker before it (if nothing else ran) */
        /* Open: the token it named (from the contract's arguments), as
         * the broker had it when the call was sent. */
        bool token_sent, token_found, token_read_only, token_single_use;
        uid_t token_bound_uid;
        char token[2 * BB_TOKEN_LEN + 1];
} Call;

typedef struct Fuzz Fuzz;

typedef struct Conn {
        Fuzz *fuzz;
        unsigned index;
        sd_bus *bus;
        char *peer_name;        /* the daemon's name for it (copied) */
        uid_t uid;              /* the daemon's idea of it */
        uid_t uid_override;     /* (uid_t) -1: what SO_PEERCRED says */
        bool fds;               /* negotiates fd passing */
        Call calls[CALLS_MAX];
        unsigned n_calls;
        unsigned in_flight;     /* calls sent whose reply has not come */
} Conn;

enum {
        FD_MEMFD_SEALED,        /* F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE */
        FD_MEMFD_UNSEALED,
        FD_PIPE_READ,
        FD_PIPE_WRITE,
        FD_SOCKET,
        FD_DIRECTORY,
        FD_OPATH,
        FD_DEVNULL,
        FD_EVENTFD,
        FD_DMABUF,
        FD_RECEIVED,            /* one a reply returned */
        FD_OWN_BUS,             /* the client's own connection */
        FD_EVENT_LOOP,          /* the loop the daemon runs on */
        _FD_KIND_MAX,
};

struct Fuzz {
        Manager m;
        Conn clients[2];
        unsigned n_clients;
        unsigned reconnects;
        int pool[_FD_KIND_MAX]; /* created on first use, closed per input */
        char seen[SEEN_MAX][64];
        unsigned n_seen, seen_next;
        char last_path[64];
        char last_token[BB_TOKEN_LEN + 1];
        int received[RECEIVED_MAX];
        unsigned received_next;
        struct {
                void *p;
                size_t size;
        } maps[MAPS_MAX];
        unsigned n_maps;
        unsigned sent_fds;      /* fds in the message being built */
        bool ttl_seen;          /* a ttl-usec went out: things expire on their own */
        char sent_token[2 * BB_TOKEN_LEN + 1];  /* the token argument of this call */
        bool token_sent;
};

/* The effective uid of a client as the daemon sees it. */
static uid_t client_uid(const Conn *c) {
        return c->uid;
}

static Conn *other_client(Fuzz *f, Conn *c) {
        return f->n_clients > 1 ? &f->clients[!c->index] : NULL;
}

/* ---------------------------------------------------------------- fds --- */

static int memfd_sized(const char *name, unsigned seals) {
        int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0)
                return -1;
        if (ftruncate(fd, 4096) < 0 || (seals && fcntl(fd, F_ADD_SEALS, seals) < 0))
                return safe_close(fd);
        return fd;
}

/* A dma-buf from /dev/udmabuf (a memfd's pages exported). There is no
 * /dev/udmabuf where this was written (no CONFIG_UDMABUF in the container), so
 * the fuzzer sends a sealed memfd instead there; where it exists, the daemon
 * gets a real dma-buf fd. */
static int dmabuf_new(void) {
        static bool missing;
        struct udmabuf_create create = { .flags = UDMABUF_FLAGS_CLOEXEC, .size = 4096 };
        int dev, memfd, fd;

        if (missing)
                return -1;
        dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
        if (dev < 0) {
                missing = true;
                return -1;
        }
        memfd = memfd_sized("fuzz-dmabuf", F_SEAL_SHRINK);
        if (memfd < 0) {
                safe_close(dev);
                return -1;
        }
        create.memfd = (uint32_t) memfd;
        fd = ioctl(dev, UDMABUF_CREATE, &create);
        safe_close(memfd);
        safe_close(dev);
        return fd < 0 ? -1 : fd;
}

static int pool_fd(Fuzz *f, Conn *c, Input *in) {
        unsigned kind = in_pick(in, _FD_KIND_MAX);
        int *slot = &f->pool[kind];

        switch (kind) {
        case FD_RECEIVED: {
                int fd = f->received[in_pick(in, RECEIVED_MAX)];
                if (fd >= 0)
                        return fd;
                kind = FD_MEMFD_SEALED;
                slot = &f->pool[kind];
                break;
        }
        case FD_OWN_BUS:
                return sd_bus_get_fd(c->bus);
        case FD_EVENT_LOOP:
                return sd_event_get_fd(f->m.event);
        case FD_DMABUF:
                if (*slot < 0)
                        *slot = dmabuf_new();
                if (*slot >= 0)
                        return *slot;
                kind = FD_MEMFD_SEALED;
                slot = &f->pool[kind];
                break;
        }
        if (*slot >= 0)
                return *slot;

        switch (kind) {
        case FD_MEMFD_SEALED:
                *slot = memfd_sized("fuzz-sealed", F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
                break;
        case FD_MEMFD_UNSEALED:
                *slot = memfd_sized("fuzz-unsealed", 0);
                break;
        case FD_PIPE_READ:
        case FD_PIPE_WRITE: {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0)
                        return -1;
                safe_close(f->pool[FD_PIPE_READ]);
                safe_close(f->pool[FD_PIPE_WRITE]);
                f->pool[FD_PIPE_READ] = p[0];
                f->pool[FD_PIPE_WRITE] = p[1];
                break;
        }
        case FD_SOCKET:
                *slot = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                break;
        case FD_DIRECTORY:
                *slot = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                break;
        case FD_OPATH:
                *slot = open("/dev/null", O_PATH | O_CLOEXEC);
                break;
        case FD_DEVNULL:
                *slot = open("/dev/null", O_RDWR | O_CLOEXEC);
                break;
        case FD_EVENTFD:
                *slot = eventfd(0, EFD_CLOEXEC);
                break;
        }
        return *slot;
}

static void fuzz_keep_received(Fuzz *f, int fd) {
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);

        if (copy < 0)
                fuzz_fail("cannot duplicate a received fd: %m");
        safe_close(f->received[f->received_next]);
        f->received[f->received_next] = copy;
        f->received_next = (f->received_next + 1) % RECEIVED_MAX;
}

/* A holder does with its fd what it likes: map it writable (Freeze must
 * then fail with Busy), or seal it itself (Freeze must cope). */
static void hostile_holder(Fuzz *f, unsigned what) {
        int fd = f->received[(f->received_next + RECEIVED_MAX - 1) % RECEIVED_MAX];
        static const int seals[] = { F_SEAL_WRITE, F_SEAL_SEAL, F_SEAL_FUTURE_WRITE };
        struct stat st;
        void *p;

        if (fd < 0)
                return;
        if (what > 0) {
                (void) fcntl(fd, F_ADD_SEALS, seals[(what - 1) % ELEMENTSOF(seals)]);
                return;
        }
        if (f->n_maps >= MAPS_MAX || fstat(fd, &st) < 0 || st.st_size <= 0)
                return;
        p = mmap(NULL, (size_t) st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return;         /* read-only, or write-sealed: refused, as it should be */
        f->maps[f->n_maps].p = p;
        f->maps[f->n_maps++].size = (size_t) st.st_size;
}

/* ---------------------------------------------------------- arguments --- */

static const char *const option_keys[] = {
        BB_OPT_PERSISTENT, BB_OPT_TTL_USEC, BB_OPT_READ_ONLY, BB_OPT_UID, BB_OPT_SINGLE_USE, BB_OPT_NAME,
        BB_FMT_WIDTH, BB_FMT_HEIGHT, BB_FMT_FOURCC, BB_FMT_TYPE, BB_FMT_FIELD, BB_FMT_NUM_PLANES,
        BB_FMT_COUNT, BB_INFO_ID, BB_INFO_SIZE, BB_INFO_PLANES, "", "Persistent", NULL /* from the input */,
};

static const char *const interface_names[] = {
        BB_MANAGER_INTERFACE, BB_BUFFER_INTERFACE, "org.freedesktop.DBus.Properties",
        "org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer", NULL /* none */,
        "org.freedesktop.DBus.ObjectManager", BB_MANAGER_INTERFACE ".Internal", "org.freedesktop.DBus.Local",
        "" /* from the input */,
};

static const char *const property_names[] = {
        "Version", "Limits", "Stats", "Id", "Name", "Kind", "Size", "OwnerUid", "Persistent", "Frozen",
        "CreatedUsec", "", "Nope", NULL /* from the input */,
};

static const char *const junk_members[] = {
        "Frobnicate", "creatememfd", "CreateMemfd2", "GetManagedObjects", "Hello", "BufferReleased",
        "Disconnected", "RequestName", "GetConnectionCredentials", "ConnectionReplaced",
        /* change notification: listening makes the peer get signals (checked
         * by check_signal()) */
        "Subscribe", "Unsubscribe", "ListBufferProperties", "InterfacesAdded",
};

static const char *pick_path(Fuzz *f, Input *in) {
        switch (in_pick(in, 13)) {
        case 0:
                return BB_MANAGER_PATH;
        case 1:
                return f->last_path[0] ? f->last_path : BB_BUFFER_PATH_PREFIX "/1";
        case 2: {
                unsigned i = in_u8(in);
                return f->n_seen ? f->seen[i % f->n_seen] : BB_BUFFER_PATH_PREFIX "/1";
        }
        case 3:
                return BB_BUFFER_PATH_PREFIX;
        case 4:
                return arena_printf(BB_BUFFER_PATH_PREFIX "/%u", in_u8(in));
        case 5:
                return arena_printf(BB_BUFFER_PATH_PREFIX "/0%u", in_u8(in));
        case 6:
                return in_u8(in) & 1 ? BB_BUFFER_PATH_PREFIX "/18446744073709551615"
                                     : BB_BUFFER_PATH_PREFIX "/18446744073709551616";
        case 7:
                return arena_printf("%s/x", f->last_path[0] ? f->last_path : BB_BUFFER_PATH_PREFIX "/1");
        case 8:
                return "/";
        case 9:
                return "/org/bufbroker";
        case 10:
                return in_u8(in) & 1 ? "/org/freedesktop/DBus" : "/org/freedesktop/DBus/Local";
        case 11: {
                const char *a = in_identifier(in), *b = in_identifier(in);
                return a && b ? arena_printf("/%s/%s", a, b) : "/";
        }
        default:
                return BB_BUFFER_PATH_PREFIX "/abc";
        }
}

static const char *pick_interface(Input *in) {
        unsigned i = in_pick(in, ELEMENTSOF(interface_names));
        const char *a, *b;

        if (!interface_names[i] || interface_names[i][0])
                return interface_names[i];
        a = in_identifier(in);
        b = in_identifier(in);
        return a && b ? arena_printf("%s.%s", a, b) : "x.y";
}

static const char *pick_name(Input *in) {
        switch (in_pick(in, 8)) {
        case 0:
                return "frame";
        case 1:
                return "";
        case 2:
                return arena_repeat("n", BB_NAME_MAX + 1);
        case 3:
                return "bad\x01name";
        case 4:
                return in_string(in, 64);
        case 5:
                return arena_repeat("n", BB_NAME_MAX);
        case 6:
                /* Two-byte characters: a message quoting it gets cut mid-character. */
                return arena_repeat("\xc3\xa9", 150);
        default:
                return "\xe5\x90\x8d\xe5\x89\x8d";
        }
}

static uint64_t pick_size(Input *in) {
        switch (in_pick(in, 8)) {
        case 0:
                return 4096;
        case 1:
                return 1;
        case 2:
                return 0;
        case 3:
                return 1 << 20;
        case 4:
                return (1 << 20) + 1;
        case 5:
                return UINT64_MAX;
        case 6:
                return UINT64_MAX - 4094;
        default:
                return in_uint(in, 8);
        }
}

static const char *pick_token(Fuzz *f, Input *in) {
        switch (in_pick(in, 8)) {
        case 0:
                return f->last_token;
        case 1: {
                char *p = arena_alloc(BB_TOKEN_LEN + 1);
                if (!p)
                        return "";
                for (unsigned i = 0; i < BB_TOKEN_LEN; i++)
                        p[i] = "0123456789abcdef"[in_u8(in) & 15];
                p[BB_TOKEN_LEN] = 0;
                return p;
        }
        case 2:
                return "";
        case 3: {
                char *p = arena_printf("%s", f->last_token);
                for (char *q = p; q && *q; q++)
                        if (*q >= 'a' && *q <= 'f')
                                *q = (char) (*q - 'a' + 'A');
                return p;
        }
        case 4:
                return arena_printf("%s0", f->last_token);
        case 5:
                return in_string(in, 64);
        case 6:
                return arena_repeat("a", 2 * BB_TOKEN_LEN);
        default:
                return "0123456789abcdef0123456789abcdeg";
        }
}

static const char *pick_device(Input *in) {
        switch (in_pick(in, 12)) {
        case 0:
                return "/dev/null";
        case 1:
                return "/dev/video0";
        case 2:
                return "video0";
        case 3:
                return "/dev/../dev/video0";
        case 4:
                return "/";
        case 5:
                return "";
        case 6:
                return "/dev/";
        case 7: {
                /* Longer than PATH_MAX. */
                char *p = arena_repeat("/d", 2100);
                return p ? p : "/";
        }
        case 8:
                return "/etc/shadow";
        case 9:
                return arena_printf("/proc/self/fd/%u", in_u8(in) % 64);
        case 10:
                return "/dev/..";
        default:
                return in_string(in, 200);      /* past the 256 bytes an error quotes */
        }
}

static uint32_t pick_uid(Fuzz *f, Conn *c, Input *in) {
        Conn *o = other_client(f, c);

        switch (in_pick(in, 6)) {
        case 0:
                return 0;
        case 1:
                return client_uid(c);
        case 2:
                return o ? client_uid(o) : UID_B;
        case 3:
                return UINT32_MAX;
        case 4:
                return UID_NOBODY;
        default:
                return (uint32_t) in_uint(in, 4);
        }
}


static uint64_t pick_ttl(Input *in) {
        switch (in_pick(in, 6)) {
        case 0:
                return 60 * UINT64_C(1000000);
        case 1:
                return 1;       /* expired by the time anyone looks */
        case 2:
                return 0;
        case 3:
                return UINT64_MAX;
        case 4:
                return 1000;
        default:
                return in_uint(in, 8);
        }
}

static uint32_t pick_u32(Input *in) {
        switch (in_pick(in, 5)) {
        case 0:
                return 640;
        case 1:
                return 480;
        case 2:
                return 0;
        case 3:
                return UINT32_MAX;
        default:
                return (uint32_t) in_uint(in, 4);
        }
}

static const char *pick_string(Fuzz *f, Input *in) {
        switch (in_pick(in, 8)) {
        case 0:
                return f->last_token;
        case 1: {
                const char *k = option_keys[in_pick(in, ELEMENTSOF(option_keys) - 1)];
                return k;
        }
        case 2:
                return in_string(in, 64);
        case 3:
                return "";
        case 4:
                return pick_name(in);
        case 5: {
                const char *p = property_names[in_pick(in, ELEMENTSOF(property_names) - 1)];
                return p;
        }
        case 6:
                return pick_interface(in) ?: "";
        default:
                return pick_path(f, in);
        }
}

/* ------------------------------------------------------ generated types --- */

static const char basic_types[] = "ybnqiuxtdsogh";
#define N_BASIC (sizeof(basic_types) - 1)

typedef struct Sig {
        char s[256];
        size_t n;
} Sig;

static void sig_add(Sig *sig, char c) {
        if (sig->n < sizeof(sig->s) - 1)
                sig->s[sig->n++] = c;
        sig->s[sig->n] = 0;
}

/* Append one complete type to @sig: basic types, variants, arrays, dicts and
 * structs, at most @depth containers deep (and short of D-Bus's 255). */
static void gen_sig(Input *in, Sig *sig, unsigned depth) {
        unsigned k = in_pick(in, 18);

        if (depth == 0 || sig->n > 200)
                k %= N_BASIC + 1;
        if (k < N_BASIC) {
                sig_add(sig, basic_types[k]);
                return;
        }
        switch (k) {
        case N_BASIC:
                sig_add(sig, 'v');
                break;
        case N_BASIC + 1:
                sig_add(sig, 'a');
                sig_add(sig, basic_types[in_pick(in, N_BASIC)]);
                break;
        case N_BASIC + 2:
                sig_add(sig, 'a');
                sig_add(sig, '{');
                sig_add(sig, basic_types[in_pick(in, N_BASIC)]);
                gen_sig(in, sig, depth - 1);
                sig_add(sig, '}');
                break;
        case N_BASIC + 3: {
                unsigned n = 1 + in_pick(in, 3);
                sig_add(sig, '(');
                for (unsigned i = 0; i < n; i++)
                        gen_sig(in, sig, depth - 1);
                sig_add(sig, ')');
                break;
        }
        default:
                sig_add(sig, 'a');
                gen_sig(in, sig, depth - 1);
                break;
        }
}

/* Length of the one complete type at @s; 0 if there is none. */
static size_t type_len(const char *s) {
        unsigned level = 0;
        size_t n;

        if (!*s)
                return 0;
        if (*s == 'a') {
                n = type_len(s + 1);
                return n ? n + 1 : 0;
        }
        if (*s != '(' && *s != '{')
                return 1;
        for (n = 0; s[n]; n++) {
                if (s[n] == '(' || s[n] == '{')
                        level++;
                else if ((s[n] == ')' || s[n] == '}') && --level == 0)
                        return n + 1;
        }
        return 0;
}

static int append_value(Fuzz *f, Conn *c, sd_bus_message *msg, Input *in, const char **sig, unsigned depth);

/* Every string goes out through here: a "ttl-usec" anywhere may be an
 * option key that makes something expire while we look. */
static int append_string(Fuzz *f, sd_bus_message *msg, const char *s) {
        if (streq(s, BB_OPT_TTL_USEC))
                f->ttl_seen = true;
        return sd_bus_message_append_basic(msg, 's', s);
}

static int append_variant_of(Fuzz *f, Conn *c, sd_bus_message *msg, Input *in, const char *contents,
                             unsigned depth) {
        const char *p = contents;
        int r;

        r = sd_bus_message_open_container(msg, 'v', contents);
        if (r >= 0)
                r = append_value(f, c, msg, in, &p, depth);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        return r;
}

static int append_basic(Fuzz *f, Conn *c, sd_bus_message *msg, Input *in, char type) {
        static const char *const signatures[] = { "", "s", "a{sv}", "v", "h", "aaai", "(((y)))", "ah" };

        switch (type) {
        case 'y': {
                uint8_t v = in_u8(in);
                return sd_bus_message_append_basic(msg, type, &v);
        }
        case 'b': {
                int v = in_u8(in) & 1;
                return sd_bus_message_append_basic(msg, type, &v);
        }
        case 'n':
        case 'q': {
                uint16_t v = (uint16_t) in_uint(in, 2);
                return sd_bus_message_append_basic(msg, type, &v);
        }
        case 'i':
        case 'u': {
                uint32_t v = (uint32_t) in_uint(in, 4);
                return sd_bus_message_append_basic(msg, type, &v);
        }
        case 'x':
        case 't': {
                uint64_t v = in_uint(in, 8);
                return sd_bus_message_append_basic(msg, type, &v);
        }
        case 'd': {
                uint64_t bits = in_uint(in, 8);
                double v;
                memcpy(&v, &bits, sizeof(v));
                return sd_bus_message_append_basic(msg, type, &v);
        }
        case 's':
                return append_string(f, msg, pick_string(f, in) ?: "");
        case 'o':
                return sd_bus_message_append_basic(msg, type, pick_path(f, in) ?: "/");
        case 'g':
                return sd_bus_message_append_basic(msg, type, signatures[in_pick(in, ELEMENTSOF(signatures))]);
        case 'h': {
                int fd = pool_fd(f, c, in);
                if (fd < 0)
                        return -EBADF;
                if (++f->sent_fds > FDS_PER_MESSAGE_MAX)
                        return -E2BIG;
                return sd_bus_message_append_basic(msg, type, &fd);
        }
        default:
                return -EINVAL;
        }
}

/* Append a value of the complete type at *@sig, and move past it. */
static int append_value(Fuzz *f, Conn *c, sd_bus_message *msg, Input *in, const char **sig, unsigned depth) {
        const char *s = *sig;
        size_t len = type_len(s);
        char contents[256];
        int r;

        if (len == 0 || len >= sizeof(contents))
                return -EINVAL;
        *sig = s + len;
        depth = depth > 0 ? depth - 1 : 0;

        switch (s[0]) {
        case 'v': {
                /* Whatever comes, variants inside variants too. */
                Sig inner = {};
                gen_sig(in, &inner, depth);
                return append_variant_of(f, c, msg, in, inner.s, depth);
        }
        case 'a': {
                unsigned n = in_pick(in, 4);

                memcpy(contents, s + 1, len - 1);
                contents[len - 1] = 0;
                r = sd_bus_message_open_container(msg, 'a', contents);
                for (unsigned i = 0; r >= 0 && i < n; i++) {
                        if (contents[0] == '{') {
                                char entry[256];
                                const char *p = entry;

                                memcpy(entry, contents + 1, len - 3);
                                entry[len - 3] = 0;
                                r = sd_bus_message_open_container(msg, 'e', entry);
                                while (r >= 0 && *p)
                                        r = append_value(f, c, msg, in, &p, depth);
                                if (r >= 0)
                                        r = sd_bus_message_close_container(msg);
                        } else {
                                const char *p = contents;
                                r = append_value(f, c, msg, in, &p, depth);
                        }
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(msg);
                return r;
        }
        case '(': {
                const char *p = contents;

                memcpy(contents, s + 1, len - 2);
                contents[len - 2] = 0;
                r = sd_bus_message_open_container(msg, 'r', contents);
                while (r >= 0 && *p)
                        r = append_value(f, c, msg, in, &p, depth);
                if (r >= 0)
                        r = sd_bus_message_close_container(msg);
                return r;
        }
        default:
                return append_basic(f, c, msg, in, s[0]);
        }
}

/* One argument of a type the input chooses. */
static int append_random(Fuzz *f, Conn *c, sd_bus_message *msg, Input *in) {
        Sig sig = {};
        const char *p = sig.s;

        gen_sig(in, &sig, DEPTH_MAX);
        return append_value(f, c, msg, in, &p, DEPTH_MAX + 1);
}

/* ------------------------------------------------------------ options --- */

/* A variant with what the protocol expects for @key, or sometimes anything
 * at all (then variants inside variants too). */
static int append_option_value(Fuzz *f, Conn *c, sd_bus_message *msg, Input *in, const char *key) {
        uint8_t sel = in_u8(in);

        if (sel % 4 == 3) {
                Sig sig = {};
                gen_sig(in, &sig, DEPTH_MAX);
                return append_variant_of(f, c, msg, in, sig.s, DEPTH_MAX + 1);
        }
        if (streq(key, BB_OPT_PERSISTENT) || streq(key, BB_OPT_READ_ONLY) || streq(key, BB_OPT_SINGLE_USE) ||
            streq(key, "Persistent"))
                return sd_bus_message_append(msg, "v", "b", (int) ((sel >> 2) & 1));
        if (streq(key, BB_OPT_TTL_USEC))
                return sd_bus_message_append(msg, "v", "t", pick_ttl(in));
        if (streq(key, BB_OPT_UID))
                return sd_bus_message_append(msg, "v", "u", pick_uid(f, c, in));
        if (streq(key, BB_OPT_NAME))
                return sd_bus_message_append(msg, "v", "s", pick_name(in) ?: "");
        if (streq(key, BB_FMT_WIDTH) || streq(key, BB_FMT_HEIGHT) || streq(key, BB_FMT_FIELD) ||
            streq(key, BB_FMT_NUM_PLANES) || streq(key, BB_FMT_COUNT))
                return sd_bus_message_append(msg, "v", "u", pick_u32(in));
        if (streq(key, BB_FMT_FOURCC))
                switch (in_pick(in, 5)) {
                case 0:
                        return sd_bus_message_append(msg, "v", "s", "YUYV");
                case 1:
                        return sd_bus_message_append(msg, "v", "s", "YUY");
                case 2:
                        return sd_bus_message_append(msg, "v", "s", "");
                case 3:
                        return sd_bus_message_append(msg, "v", "u", (uint32_t) in_uint(in, 4));
                default:
                        return sd_bus_message_append(msg, "v", "s", "NV12");
                }
        if (streq(key, BB_FMT_TYPE)) {
                static const char *const types[] = { "capture", "output", "capture-mplane", "output-mplane", "" };
                unsigned i = in_pick(in, ELEMENTSOF(types) + 1);
                return sd_bus_message_append(msg, "v", "s", i < ELEMENTSOF(types) ? types[i] : in_string(in, 64) ?: "");
        }
        if (streq(key, BB_INFO_ID) || streq(key, BB_INFO_SIZE))
                return sd_bus_message_append(msg, "v", "t", pick_size(in));
        if (streq(key, BB_INFO_PLANES))
                return sd_bus_message_append(msg, "v", "a(tuu)", 1, pick_size(in), pick_u32(in), pick_u32(in));
        return append_variant_of(f, c, msg, in, "v", DEPTH_MAX);
}

/* An a{sv} of known keys (and unknown ones), each at most once or not. */
static int append_options(Fuzz *f, Conn *c, sd_bus_message *msg, Input *in) {
        unsigned n = in_pick(in, 6);
        int r;

        r = sd_bus_message_open_container(msg, 'a', "{sv}");
        for (unsigned i = 0; r >= 0 && i < n; i++) {
                const char *key = option_keys[in_pick(in, ELEMENTSOF(option_keys))];

                if (!key)
                        key = in_string(in, 32);
                if (!key)
                        return -ENOMEM;
                r = sd_bus_message_open_container(msg, 'e', "sv");
                if (r >= 0)
                        r = append_string(f, msg, key);
                if (r >= 0)
                        r = append_option_value(f, c, msg, in, key);
                if (r >= 0)
                        r = sd_bus_message_close_container(msg);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        return r;
}

/* ------------------------------------------------------------- bodies --- */

typedef enum Arg {
        A_NONE,
        A_NAME,
        A_SIZE,
        A_OPTIONS,
        A_TOKEN,
        A_DEVICE,
        A_COUNT,
        A_IFACE,
        A_PROPERTY,
        A_VARIANT,
        A_KIND,
} Arg;

/* The arguments of the contract (and of the standard interfaces). */
static const Arg member_args[_M_MAX][4] = {
        [M_CREATE_MEMFD] = { A_NAME, A_SIZE, A_OPTIONS },
        [M_OPEN] = { A_TOKEN, A_OPTIONS },
        [M_CREATE_V4L2] = { A_DEVICE, A_COUNT, A_OPTIONS, A_OPTIONS },
        [M_SHARE] = { A_OPTIONS },
        [M_OPEN_FDS] = { A_OPTIONS },
        [M_GET] = { A_IFACE, A_PROPERTY },
        [M_GET_ALL] = { A_IFACE },
        [M_SET] = { A_IFACE, A_PROPERTY, A_VARIANT },
        [M_CREATE] = { A_KIND, A_NAME, A_SIZE, A_OPTIONS },
};

static int append_arg(Fuzz *f, Conn *c, sd_bus_message *msg, Input *in, Arg arg) {
        switch (arg) {
        case A_NAME:
                return sd_bus_message_append(msg, "s", pick_name(in) ?: "");
        case A_SIZE:
                return sd_bus_message_append(msg, "t", pick_size(in));
        case A_OPTIONS:
                return append_options(f, c, msg, in);
        case A_TOKEN: {
                const char *t = pick_token(f, in) ?: "";

                snprintf(f->sent_token, sizeof(f->sent_token), "%s", t);
                f->token_sent = strlen(t) < sizeof(f->sent_token);
                return sd_bus_message_append(msg, "s", t);
        }
        case A_DEVICE:
                return sd_bus_message_append(msg, "s", pick_device(in) ?: "");
        case A_KIND: {
                static const char *const kinds[] = {
                        BB_KIND_MEMFD, BB_KIND_POSIX, BB_KIND_SYSV, BB_KIND_FILE, BB_KIND_V4L2, "", "Memfd",
                };

                return sd_bus_message_append(msg, "s", kinds[in_pick(in, ELEMENTSOF(kinds))]);
        }
        case A_COUNT:
                switch (in_pick(in, 8)) {
                case 0:
                        return sd_bus_message_append(msg, "u", 1);
                case 1:
                        return sd_bus_message_append(msg, "u", 4);
                case 2:
                        return sd_bus_message_append(msg, "u", 0);
                case 3:
                        return sd_bus_message_append(msg, "u", 32);
                case 4:
                        return sd_bus_message_append(msg, "u", 33);
                case 5:
                        return sd_bus_message_append(msg, "u", UINT32_MAX);
                case 6:
                        return sd_bus_message_append(msg, "u", (uint32_t) in_uint(in, 4));
                default:
                        return sd_bus_message_append(msg, "u", 2);
                }
        case A_IFACE: {
                static const char *const ifaces[] = { BB_MANAGER_INTERFACE, BB_BUFFER_INTERFACE, "",
                                                      "org.freedesktop.DBus.Properties", "x.y" };
                unsigned i = in_pick(in, ELEMENTSOF(ifaces) + 1);
                return sd_bus_message_append(msg, "s", i < ELEMENTSOF(ifaces) ? ifaces[i] : in_string(in, 32) ?: "");
        }
        case A_PROPERTY: {
                const char *p = property_names[in_pick(in, ELEMENTSOF(property_names))];
                return sd_bus_message_append(msg, "s", p ?: in_string(in, 32) ?: "");
        }
        case A_VARIANT:
                return append_variant_of(f, c, msg, in, "v", DEPTH_MAX + 1);
        default:
                return 0;
        }
}

/* The body: the contract's arguments (filled from the input), with extra
 * ones, random ones, none, or one short. */
static int append_body(Fuzz *f, Conn *c, sd_bus_message *msg, Input *in, Member member) {
        unsigned mode = in_pick(in, 5), n_args = 0, n;
        int r = 0;

        while (n_args < ELEMENTSOF(member_args[member]) && member_args[member][n_args] != A_NONE)
                n_args++;

        switch (mode) {
        case 2:
                n = in_pick(in, 5);
                for (unsigned i = 0; r >= 0 && i < n; i++)
                        r = append_random(f, c, msg, in);
                return r;
        case 3:
                return 0;
        case 4:
                n_args = n_args > 0 ? n_args - 1 : 0;
                break;
        }
        for (unsigned i = 0; r >= 0 && i < n_args; i++)
                r = append_arg(f, c, msg, in, member_args[member][i]);
        if (mode == 1) {
                n = 1 + in_pick(in, 2);
                for (unsigned i = 0; r >= 0 && i < n; i++)
                        r = append_random(f, c, msg, in);
        }
        return r;
}

/* ------------------------------------------------------------ replies --- */

static bool token_well_formed(const char *s) {
        size_t i;

        for (i = 0; s[i]; i++)
                if (!strchr("0123456789abcdef", s[i]))
                        return false;
        return i == BB_TOKEN_LEN;
}

static bool is_buffer_path(const char *p) {
        return strncmp(p, BB_BUFFER_PATH_PREFIX "/", strlen(BB_BUFFER_PATH_PREFIX "/")) == 0;
}

static void note_path(Fuzz *f, const char *p) {
        if (!is_buffer_path(p) || strlen(p) >= sizeof(f->last_path))
                return;
        strcpy(f->last_path, p);
        for (unsigned i = 0; i < f->n_seen; i++)
                if (streq(f->seen[i], p))
                        return;
        strcpy(f->seen[f->seen_next], p);
        f->seen_next = (f->seen_next + 1) % SEEN_MAX;
        if (f->n_seen < SEEN_MAX)
                f->n_seen++;
}

/* Read every value of a reply (sd-bus checks them against the signature),
 * keeping object paths, tokens and fds for later calls. */
static void walk(Fuzz *f, sd_bus_message *msg, unsigned depth) {
        for (;;) {
                union {
                        uint8_t y;
                        int b;
                        uint16_t q;
                        uint32_t u;
                        uint64_t t;
                        double d;
                        const char *s;
                        int h;
                } v;
                const char *contents;
                char type;
                int r;

                r = sd_bus_message_peek_type(msg, &type, &contents);
                if (r < 0)
                        fuzz_fail("cannot read a reply: %s", strerror(-r));
                if (r == 0)
                        return;
                if (strchr("avre", type)) {
                        if (depth > 64)
                                fuzz_fail("a reply nests deeper than 64");
                        r = sd_bus_message_enter_container(msg, type, contents);
                        if (r < 0)
                                fuzz_fail("cannot enter a container of a reply: %s", strerror(-r));
                        walk(f, msg, depth + 1);
                        r = sd_bus_message_exit_container(msg);
                        if (r < 0)
                                fuzz_fail("cannot leave a container of a reply: %s", strerror(-r));
                        continue;
                }
                r = sd_bus_message_read_basic(msg, type, &v);
                if (r < 0)
                        fuzz_fail("cannot read a '%c' of a reply: %s", type, strerror(-r));
                if (type == 'o')
                        note_path(f, v.s);
                else if (type == 's' && token_well_formed(v.s))
                        memcpy(f->last_token, v.s, BB_TOKEN_LEN + 1);
                else if (type == 'h')
                        fuzz_keep_received(f, v.h);
        }
}

static uint64_t buffer_id_of(const char *path) {
        uint64_t id = 0;

        if (!is_buffer_path(path))
                return 0;
        for (const char *p = path + strlen(BB_BUFFER_PATH_PREFIX "/"); *p; p++) {
                if (*p < '0' || *p > '9' || id > UINT64_MAX / 10)
                        return 0;
                id = id * 10 + (uint64_t) (*p - '0');
        }
        return id;
}

/* The connection that got a buffer's fds holds it (unless it is gone
 * already: a TTL). */
static void check_holds(Fuzz *f, Conn *c, const Call *call, const char *path) {
        Broker *b = f->m.broker;
        Buffer *buf = broker_find_buffer(b, buffer_id_of(path));

        if (call->alone && buf && !broker_holds(b, buf, c->peer_name))
                fuzz_fail("%s returned %s to %s, which does not hold it", member_names[call->member], path,
                          c->peer_name);
}

/* What the fds of a reply must be: a buffer's memfd (sealed against
 * shrinking and growing: the SIGBUS attack), of its size, read-only where the
 * reply says so, write-sealed if frozen. */
static void check_fd(const Call *call, int fd, const char *kind, uint64_t size, bool read_only, bool frozen) {
        const char *what = member_names[call->member];
        struct stat st;
        int seals, flags;

        if (fstat(fd, &st) < 0)
                fuzz_fail("%s returned an fd that cannot be fstat()ed: %m", what);
        flags = fcntl(fd, F_GETFL);
        if (read_only && (flags & O_ACCMODE) != O_RDONLY)
                fuzz_fail("%s said read-only and returned an fd open for writing", what);
        if (kind && (streq(kind, BB_KIND_POSIX) || streq(kind, BB_KIND_FILE)) && size != UINT64_MAX &&
            (uint64_t) st.st_size != size)
                fuzz_fail("%s returned a %s file of %jd bytes for a buffer of %" PRIu64, what, kind,
                          (intmax_t) st.st_size, size);
        if (kind && !streq(kind, BB_KIND_MEMFD))
                return;
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                fuzz_fail("%s returned an fd that is no memfd: %m", what);
        if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
                fuzz_fail("%s returned a memfd without F_SEAL_SHRINK|F_SEAL_GROW (seals 0x%x)", what, seals);
        if (frozen && !(seals & F_SEAL_WRITE))
                fuzz_fail("%s returned a frozen buffer's memfd without F_SEAL_WRITE (seals 0x%x)", what, seals);
        if ((uint64_t) st.st_size != size)
                fuzz_fail("%s returned a memfd of %jd bytes for a buffer of %" PRIu64, what, (intmax_t) st.st_size,
                          size);
}

/* Open's and OpenFds' "ah" and info a{sv}. */
static bool check_fds_and_info(Fuzz *f, Conn *c, const Call *call, sd_bus_message *msg, const char *path) {
        int fds[BB_PLANES_MAX + 1], fd;
        unsigned n = 0;
        const char *kind = NULL, *key;
        uint64_t size = UINT64_MAX;
        int read_only = -1, frozen = 0;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "h");
        while (r >= 0 && (r = sd_bus_message_read_basic(msg, 'h', &fd)) > 0) {
                if (n > BB_PLANES_MAX)
                        fuzz_fail("%s returned more than %u fds", member_names[call->member], BB_PLANES_MAX);
                fds[n++] = fd;
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(msg);
        if (r >= 0)
                r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                r = sd_bus_message_read_basic(msg, 's', &key);
                if (r >= 0 && streq(key, BB_INFO_KIND))
                        r = sd_bus_message_read(msg, "v", "s", &kind);
                else if (r >= 0 && streq(key, BB_INFO_SIZE))
                        r = sd_bus_message_read(msg, "v", "t", &size);
                else if (r >= 0 && streq(key, BB_INFO_READ_ONLY))
                        r = sd_bus_message_read(msg, "v", "b", &read_only);
                else if (r >= 0 && streq(key, BB_INFO_FROZEN))
                        r = sd_bus_message_read(msg, "v", "b", &frozen);
                else if (r >= 0)
                        r = sd_bus_message_skip(msg, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(msg);
        }
        if (r < 0)
                fuzz_fail("%s's reply cannot be read as the contract says: %s", member_names[call->member],
                          strerror(-r));
        if (!kind || size == UINT64_MAX || read_only < 0)
                fuzz_fail("%s's reply lacks kind, size or read-only", member_names[call->member]);
        /* A SysV segment has no fd (its shmid is in info); every other kind has one per plane. */
        if ((n == 0) != streq(kind, BB_KIND_SYSV))
                fuzz_fail("%s returned %u fds for a buffer of kind %s", member_names[call->member], n, kind);
        for (unsigned i = 0; i < n; i++)
                check_fd(call, fds[i], kind, n == 1 ? size : UINT64_MAX, read_only, frozen);
        check_holds(f, c, call, path);
        return read_only;
}

static bool may_see(Fuzz *f, Conn *c, Buffer *buf) {
        uid_t uid = client_uid(c);

        return buf->owner_uid == uid || uid == 0 || uid == f->m.broker->self_uid ||
                broker_holds(f->m.broker, buf, c->peer_name);
}

/* ListBuffers: exactly the buffers the caller may see, as the broker has
 * them. Only where the reply shows the state the checks look at. */
static void check_list(Fuzz *f, Conn *c, const Call *call, sd_bus_message *msg) {
        unsigned n = 0, visible = 0;
        Buffer *buf;
        int r;

        if (!call->before.valid)
                return;
        r = sd_bus_message_enter_container(msg, 'a', BB_LIST_ENTRY_SIGNATURE);
        for (;;) {
                const char *path, *name, *kind;
                uint64_t id, size, created;
                uint32_t owner, holders;
                int persistent, frozen;

                if (r >= 0)
                        r = sd_bus_message_read(msg, BB_LIST_ENTRY_SIGNATURE, &path, &id, &name, &kind, &size, &owner,
                                                &persistent, &frozen, &holders, &created);
                if (r < 0)
                        fuzz_fail("ListBuffers' reply cannot be read: %s", strerror(-r));
                if (r == 0)
                        break;
                n++;
                buf = broker_find_buffer(f->m.broker, id);
                if (!buf)
                        fuzz_fail("ListBuffers listed buffer %" PRIu64 ", which does not exist", id);
                if (!streq(path, buf->path) || !streq(name, buf->name) || !streq(kind, buf->kind) ||
                    size != buf->size || owner != (uint32_t) buf->owner_uid || !persistent != !buf->persistent ||
                    !frozen != !buf->frozen || holders != buf->n_holds)
                        fuzz_fail("ListBuffers described buffer %" PRIu64 " otherwise than the broker has it", id);
                if (!may_see(f, c, buf))
                        fuzz_fail("ListBuffers showed buffer %" PRIu64 " of uid %u to uid %u, which may not see it", id,
                                  (unsigned) buf->owner_uid, (unsigned) client_uid(c));
        }
        BROKER_FOREACH_BUFFER(buf, f->m.broker)
                visible += may_see(f, c, buf);
        if (visible != n)
                fuzz_fail("ListBuffers listed %u buffers to uid %u, which may see %u", n, (unsigned) client_uid(c),
                          visible);
}

/* A buffer's properties, and its node in the introspection of the prefix,
 * are for those who may see it. */
static void check_visible(Fuzz *f, Conn *c, const Call *call, sd_bus_message *msg) {
        Buffer *buf;

        if (!call->before.valid)
                return;
        if (call->member == M_INTROSPECT && streq(call->path, BB_BUFFER_PATH_PREFIX)) {
                const char *xml, *p;

                if (sd_bus_message_read(msg, "s", &xml) < 0)
                        fuzz_fail("Introspect's reply cannot be read");
                for (p = xml; (p = strstr(p, "<node name=\"")); ) {
                        uint64_t id = 0;

                        for (p += strlen("<node name=\""); *p >= '0' && *p <= '9'; p++)
                                id = id * 10 + (uint64_t) (*p - '0');
                        buf = broker_find_buffer(f->m.broker, id);
                        if (!buf || !may_see(f, c, buf))
                                fuzz_fail("the introspection of %s shows buffer %" PRIu64 " to uid %u, which %s",
                                          BB_BUFFER_PATH_PREFIX, id, (unsigned) client_uid(c),
                                          buf ? "may not see it" : "does not exist");
                }
                return;
        }
        buf = broker_find_buffer(f->m.broker, buffer_id_of(call->path));
        if (!buf || may_see(f, c, buf))
                return;
        if (call->member == M_GET)
                fuzz_fail("uid %u read a property of buffer %" PRIu64 " of uid %u, which it may not see",
                          (unsigned) client_uid(c), buf->id, (unsigned) buf->owner_uid);
        if (call->member == M_GET_ALL && sd_bus_message_enter_container(msg, 'a', "{sv}") > 0 &&
            sd_bus_message_enter_container(msg, 'e', "sv") > 0)
                fuzz_fail("uid %u read the properties of buffer %" PRIu64 " of uid %u, which it may not see",
                          (unsigned) client_uid(c), buf->id, (unsigned) buf->owner_uid);
}

/* A method return: its signature is the contract's, and what it hands out
 * is what it says. */
static void check_reply(Fuzz *f, Conn *c, const Call *call, sd_bus_message *msg) {
        const char *sig = sd_bus_message_get_signature(msg, true), *want = member_reply_signature[call->member];
        const char *path, *token;
        uint64_t size;
        int fd, r;

        if (want && !streq(sig, want))
                fuzz_fail("%s returned '%s', the contract says '%s'", member_names[call->member], sig, want);
        walk(f, msg, 0);
        if (!want || sd_bus_message_rewind(msg, true) < 0)
                return;

        switch (call->member) {
        case M_CREATE_MEMFD:
                r = sd_bus_message_read(msg, "oht", &path, &fd, &size);
                if (r < 0)
                        fuzz_fail("CreateMemfd's reply: %s", strerror(-r));
                check_fd(call, fd, BB_KIND_MEMFD, size, false, false);
                if ((fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR)
                        fuzz_fail("CreateMemfd returned an fd not open for writing");
                check_holds(f, c, call, path);
                break;
        case M_CREATE:
                r = sd_bus_message_read(msg, "o", &path);
                if (r < 0)
                        fuzz_fail("Create's reply: %s", strerror(-r));
                if (check_fds_and_info(f, c, call, msg, path))
                        fuzz_fail("Create returned a read-only buffer");
                break;
        case M_OPEN: {
                bool read_only;

                r = sd_bus_message_read(msg, "o", &path);
                if (r < 0)
                        fuzz_fail("Open's reply: %s", strerror(-r));
                read_only = check_fds_and_info(f, c, call, msg, path);
                if (!call->token_sent)
                        break;
                if (!call->token_found)
                        fuzz_fail("Open with '%s' succeeded, and there was no such token", call->token);
                if (call->token_bound_uid != (uid_t) -1 && call->token_bound_uid != client_uid(c))
                        fuzz_fail("Open by uid %u with a token bound to uid %u succeeded", (unsigned) client_uid(c),
                                  (unsigned) call->token_bound_uid);
                if (call->token_read_only && !read_only)
                        fuzz_fail("Open with a read-only token said the fds are not read-only");
                if (call->token_single_use && broker_find_token(f->m.broker, call->token, 0))
                        fuzz_fail("a single-use token outlived the Open that used it");
                break;
        }
        case M_RELEASE: {
                Buffer *buf = broker_find_buffer(f->m.broker, buffer_id_of(call->path));

                if (!call->before.valid || !buf)
                        break;
                if (broker_holds(f->m.broker, buf, c->peer_name))
                        fuzz_fail("%s still holds %s after its Release", c->peer_name, call->path);
                if (buf->persistent && (buf->owner_uid == client_uid(c) || client_uid(c) == 0 ||
                                        client_uid(c) == f->m.broker->self_uid))
                        fuzz_fail("%s is still persistent after its owner's Release", call->path);
                break;
        }
        case M_LIST_BUFFERS:
                check_list(f, c, call, msg);
                break;
        case M_GET:
        case M_GET_ALL:
        case M_INTROSPECT:
                check_visible(f, c, call, msg);
                break;
        case M_OPEN_FDS:
                check_fds_and_info(f, c, call, msg, call->path);
                break;
        case M_FREEZE: {
                /* Frozen is sealed against writes, for every holder. */
                Buffer *buf = broker_find_buffer(f->m.broker, buffer_id_of(call->path));
                int seals;

                if (!buf || !streq(buf->kind, BB_KIND_MEMFD))
                        break;
                seals = fcntl(buf->planes[0].fd, F_GET_SEALS);
                if (!buf->frozen || seals < 0 || !(seals & F_SEAL_WRITE))
                        fuzz_fail("Freeze of %s succeeded, and the buffer is %sfrozen with seals 0x%x", call->path,
                                  buf->frozen ? "" : "not ", (unsigned) seals);
                break;
        }
        case M_SHARE: {
                const Token *t;

                r = sd_bus_message_read(msg, "s", &token);
                if (r < 0)
                        fuzz_fail("Share's reply: %s", strerror(-r));
                if (!token_well_formed(token))
                        fuzz_fail("Share returned the malformed token '%s'", token);
                t = broker_find_token(f->m.broker, token, 0);
                if (call->alone && t && t->owner_uid != client_uid(c))
                        fuzz_fail("Share by uid %u made a token of uid %u", (unsigned) client_uid(c),
                                  (unsigned) t->owner_uid);
                break;
        }
        default:
                break;
        }
}

static Snapshot snapshot(Fuzz *f) {
        Broker *b = f->m.broker;
        Snapshot s = {
                .valid = true,
                .buffers = b->stats.buffers,
                .bytes = b->stats.bytes,
                .tokens = b->stats.tokens,
                .clients = b->stats.clients,
        };
        Buffer *buf;

        BROKER_FOREACH_BUFFER(buf, b)
                s.holds += buf->n_holds;
        return s;
}

/* Errors the daemon may answer with: the contract's, and sd-bus's own for
 * what no handler serves. A system failure is Failed (NoMemory for ENOMEM)
 * with a message that says what failed (bufbroker-protocol.h): an errno
 * that sd-bus turned into a name (IOError "Input/output error", ...) says
 * nothing about what failed. */
static void check_error(Fuzz *f, const Call *call, sd_bus_message *msg) {
        static const char *const allowed[] = {
                BB_ERROR_QUOTA_EXCEEDED, BB_ERROR_NO_SUCH_BUFFER, BB_ERROR_NO_SUCH_TOKEN, BB_ERROR_NOT_OWNER,
                BB_ERROR_ACCESS_DENIED, BB_ERROR_FROZEN, BB_ERROR_BUSY, BB_ERROR_DEVICE_NOT_SUPPORTED,
                BB_ERROR_DEVICE_BUSY, BB_ERROR_INVALID_ARGS, BB_ERROR_NOT_SUPPORTED, BB_ERROR_LIMITS_EXCEEDED,
                BB_ERROR_FAILED, BB_ERROR_NO_MEMORY,
                SD_BUS_ERROR_ACCESS_DENIED, SD_BUS_ERROR_UNKNOWN_METHOD, SD_BUS_ERROR_UNKNOWN_OBJECT,
                SD_BUS_ERROR_UNKNOWN_INTERFACE, SD_BUS_ERROR_UNKNOWN_PROPERTY, SD_BUS_ERROR_PROPERTY_READ_ONLY,
        };
        const sd_bus_error *e = sd_bus_message_get_error(msg);

        for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
                if (e && e->name && streq(e->name, allowed[i])) {
                        Snapshot now = snapshot(f);

                        if (call->before.valid &&
                            (now.buffers != call->before.buffers || now.bytes != call->before.bytes ||
                             now.tokens != call->before.tokens || now.clients != call->before.clients ||
                             now.holds != call->before.holds))
                                fuzz_fail("%s failed (%s: %s) and changed the broker: buffers %" PRIu64 " -> %" PRIu64
                                          ", bytes %" PRIu64 " -> %" PRIu64 ", tokens %" PRIu64 " -> %" PRIu64
                                          ", clients %" PRIu64 " -> %" PRIu64 ", holds %" PRIu64 " -> %" PRIu64,
                                          call->member < M_JUNK ? member_names[call->member] : "a call", e->name,
                                          strna(e->message), call->before.buffers, now.buffers, call->before.bytes,
                                          now.bytes, call->before.tokens, now.tokens, call->before.clients,
                                          now.clients, call->before.holds, now.holds);
                        return;
                }
        fuzz_fail("%s was answered with %s: \"%s\", an error the contract does not name",
                  call->member < M_JUNK ? member_names[call->member] : "a call", e ? strna(e->name) : "n/a",
                  e ? strna(e->message) : "n/a");
}

static Call *find_call(Conn *c, uint64_t cookie) {
        for (unsigned i = 0; i < c->n_calls; i++)
                if (c->calls[i].cookie == cookie)
                        return &c->calls[i];
        return NULL;
}

/* A change signal to a direct peer: as the contract says, and never about a
 * new buffer the peer may not see (bus-notify.c sends only to those who may). */
static void check_signal(Conn *c, sd_bus_message *msg) {
        static const char *const reasons[] = {
                BB_REASON_RELEASED, BB_REASON_EXPIRED, BB_REASON_HOLDERS_GONE, BB_REASON_LEASE, BB_REASON_UNDONE,
        };
        const char *member = strna(sd_bus_message_get_member(msg));
        const char *path, *reason;
        uint64_t id, pid;
        bool known = false;
        int r;

        if (sd_bus_message_is_signal(msg, BB_MANAGER_INTERFACE, "BufferReleased")) {
                if (!sd_bus_message_has_signature(msg, "ots") ||
                    sd_bus_message_read(msg, "ots", &path, &id, &reason) < 0)
                        fuzz_fail("BufferReleased with signature %s", strna(sd_bus_message_get_signature(msg, true)));
                if (bb_buffer_path_to_id(path, &pid) < 0 || pid != id)
                        fuzz_fail("BufferReleased(%s, %" PRIu64 "): path and id differ", path, id);
                for (size_t i = 0; i < ELEMENTSOF(reasons); i++)
                        known = known || streq(reason, reasons[i]);
                if (!known)
                        fuzz_fail("BufferReleased with reason '%s', which the contract does not name", reason);
        } else if (sd_bus_message_is_signal(msg, BB_OBJECT_MANAGER_INTERFACE, "InterfacesAdded")) {
                uint32_t owner = UINT32_MAX;

                if (!sd_bus_message_has_signature(msg, "oa{sa{sv}}"))
                        fuzz_fail("InterfacesAdded with signature %s", strna(sd_bus_message_get_signature(msg, true)));
                r = sd_bus_message_skip(msg, "o");
                r = r < 0 ? r : sd_bus_message_enter_container(msg, 'a', "{sa{sv}}");
                r = r < 0 ? r : sd_bus_message_enter_container(msg, 'e', "sa{sv}");
                r = r < 0 ? r : sd_bus_message_skip(msg, "s");
                r = r < 0 ? r : sd_bus_message_enter_container(msg, 'a', "{sv}");
                while (r >= 0) {
                        const char *key;

                        r = sd_bus_message_enter_container(msg, 'e', "sv");
                        if (r <= 0)
                                break;
                        r = sd_bus_message_read(msg, "s", &key);
                        if (r >= 0 && streq(key, BB_PROP_OWNER_UID))
                                r = sd_bus_message_read(msg, "v", "u", &owner);
                        else if (r >= 0)
                                r = sd_bus_message_skip(msg, "v");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(msg);
                }
                if (r < 0)
                        fuzz_fail("InterfacesAdded cannot be read: %s", strerror(-r));
                if (owner != client_uid(c) && client_uid(c) != 0 && client_uid(c) != geteuid())
                        fuzz_fail("InterfacesAdded of a buffer of uid %u went to client %u (uid %u), which may not see it",
                                  owner, c->index, (unsigned) client_uid(c));
        } else if (sd_bus_message_is_signal(msg, BB_OBJECT_MANAGER_INTERFACE, "InterfacesRemoved")) {
                if (!sd_bus_message_has_signature(msg, "oas"))
                        fuzz_fail("InterfacesRemoved with signature %s", strna(sd_bus_message_get_signature(msg, true)));
        } else if (sd_bus_message_is_signal(msg, BB_PROPERTIES_INTERFACE, "PropertiesChanged")) {
                if (!sd_bus_message_has_signature(msg, "sa{sv}as"))
                        fuzz_fail("PropertiesChanged with signature %s", strna(sd_bus_message_get_signature(msg, true)));
        } else
                fuzz_fail("the daemon sent client %u (%s) the signal %s.%s, which is no change of a buffer",
                          c->index, c->peer_name, strna(sd_bus_message_get_interface(msg)), member);
}

static int on_client_message(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Conn *c = userdata;
        uint64_t cookie;
        uint8_t type;
        Call *call;

        if (sd_bus_message_get_type(msg, &type) < 0)
                fuzz_fail("a message without a type");
        if (sd_bus_message_is_signal(msg, "org.freedesktop.DBus.Local", "Disconnected"))
                fuzz_fail("the daemon closed the connection of client %u (%s)", c->index, c->peer_name);
        if (type == SD_BUS_MESSAGE_SIGNAL) {
                check_signal(c, msg);
                return 1;
        }
        if (type != SD_BUS_MESSAGE_METHOD_RETURN && type != SD_BUS_MESSAGE_METHOD_ERROR)
                fuzz_fail("the daemon sent client %u (%s) a message of type %u (%s.%s): a direct peer gets replies and signals only",
                          c->index, c->peer_name, type, strna(sd_bus_message_get_interface(msg)),
                          strna(sd_bus_message_get_member(msg)));
        if (sd_bus_message_get_reply_cookie(msg, &cookie) < 0)
                fuzz_fail("a reply without a reply cookie");
        call = find_call(c, cookie);
        if (!call)
                fuzz_fail("a reply to cookie %" PRIu64 ", which no call of client %u has", cookie, c->index);
        if (++call->replies > 1)
                fuzz_fail("%s (cookie %" PRIu64 ") of client %u was answered twice",
                          call->member < M_JUNK ? member_names[call->member] : "a call", cookie, c->index);
        if (call->expect_reply)
                c->in_flight--;
        if (debug) {
                const sd_bus_error *e = sd_bus_message_get_error(msg);
                fprintf(stderr, "fuzz-bus:   client %u cookie %" PRIu64 " -> %s%s%s\n", c->index, cookie,
                        e ? e->name : "return ", e ? ": " : sd_bus_message_get_signature(msg, true),
                        e ? strna(e->message) : "");
        }
        if (debug > 1)
                (void) sd_bus_message_dump(msg, stderr, 0);
        if (type == SD_BUS_MESSAGE_METHOD_RETURN)
                check_reply(c->fuzz, c, call, msg);
        else
                check_error(c->fuzz, call, msg);
        return 1;
}

/* --------------------------------------------------------------- loop --- */

/* Run the loop until *@replies is set or nothing is left to do. Both ends
 * of every socket are in this thread and a write is complete when it
 * returns: a round that finds nothing to dispatch (no fd ready, no deferred
 * work, no timer due) means nothing will happen until we act. */
static void pump(Fuzz *f, const unsigned *replies) {
        for (unsigned i = 0; i < PUMP_MAX; i++) {
                int r;

                if (replies && *replies > 0)
                        return;
                r = sd_event_run(f->m.event, 0);
                if (r < 0)
                        fuzz_fail("sd_event_run(): %s", strerror(-r));
                /* Settled, but closes may wait for the next call or a
                 * few ms (bus-common.c): let that time pass now. */
                if (r == 0)
                        r = manager_leases_per_call_end(&f->m);
                if (r < 0)
                        fuzz_fail("manager_leases_per_call_end(): %s", strerror(-r));
                if (r == 0)
                        return;
        }
        fuzz_fail("the event loop did not settle in %u rounds", PUMP_MAX);
}

/* The core's books add up: what the stats say is what the lists hold. */
static void check_books(Fuzz *f) {
        Broker *b = f->m.broker;
        uint64_t buffers = 0, bytes = 0, fds = 0, tokens = 0, clients = 0, holds = 0, client_holds = 0;
        uint64_t u_buffers = 0, u_bytes = 0, u_tokens = 0, u_fds = 0;
        const UidUsage *u;
        Buffer *buf;
        Client *cl;
        Token *t;
        Hold *h;

        BROKER_FOREACH_BUFFER(buf, b) {
                unsigned n = 0;

                buffers++;
                bytes += buf->size;
                fds += buf->n_fds;
                if (broker_find_buffer(b, buf->id) != buf)
                        fuzz_fail("buffer %" PRIu64 " is listed but not indexed", buf->id);
                TAILQ_FOREACH(h, &buf->holds, by_buffer) {
                        n++;
                        if (h->buffer != buf || broker_find_client(b, h->client->name) != h->client)
                                fuzz_fail("a hold of buffer %" PRIu64 " points elsewhere", buf->id);
                }
                if (n != buf->n_holds)
                        fuzz_fail("buffer %" PRIu64 " counts %u holds and has %u", buf->id, buf->n_holds, n);
                holds += n;
                TAILQ_FOREACH(t, &buf->tokens, by_buffer)
                        if (t->buffer != buf)
                                fuzz_fail("a token of buffer %" PRIu64 " points elsewhere", buf->id);
        }
        TAILQ_FOREACH(t, &b->tokens, link)
                tokens++;
        TAILQ_FOREACH(cl, &b->clients, link) {
                clients++;
                if (TAILQ_EMPTY(&cl->holds))
                        fuzz_fail("client %s is known and holds nothing", cl->name);
                TAILQ_FOREACH(h, &cl->holds, by_client)
                        client_holds++;
        }
        TAILQ_FOREACH(u, &b->usage, link) {
                u_buffers += u->buffers;
                u_bytes += u->bytes;
                u_tokens += u->tokens;
                u_fds += u->fds;
        }
        if (buffers != b->stats.buffers || bytes != b->stats.bytes || fds != b->stats.fds ||
            tokens != b->stats.tokens || clients != b->stats.clients)
                fuzz_fail("the stats say %" PRIu64 " buffers, %" PRIu64 " bytes, %" PRIu64 " fds, %" PRIu64
                          " tokens, %" PRIu64 " clients; the lists hold %" PRIu64 ", %" PRIu64 ", %" PRIu64
                          ", %" PRIu64 ", %" PRIu64,
                          b->stats.buffers, b->stats.bytes, b->stats.fds, b->stats.tokens, b->stats.clients,
                          buffers, bytes, fds, tokens, clients);
        if (holds != client_holds)
                fuzz_fail("buffers have %" PRIu64 " holds, clients %" PRIu64, holds, client_holds);
        if (u_buffers != buffers || u_bytes != bytes || u_tokens != tokens || u_fds != fds)
                fuzz_fail("the uids are charged %" PRIu64 " buffers, %" PRIu64 " bytes, %" PRIu64 " tokens, %" PRIu64
                          " fds; there are %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64,
                          u_buffers, u_bytes, u_tokens, u_fds, buffers, bytes, tokens, fds);
}

/* Nothing left anywhere once the loop settled: every call was answered, no
 * call waits in a queue, and the daemon knows just the open connections. */
static void check_settled(Fuzz *f) {
        Manager *m = &f->m;
        unsigned n_open = 0, n_peers = 0;
        Peer *p;

        for (unsigned k = 0; k < f->n_clients; k++) {
                Conn *c = &f->clients[k];

                if (!c->bus)
                        continue;
                n_open++;
                for (unsigned i = 0; i < c->n_calls; i++)
                        if (c->calls[i].expect_reply && c->calls[i].replies == 0)
                                fuzz_fail("%s (cookie %" PRIu64 ") of client %u (%s) got no reply",
                                          c->calls[i].member < M_JUNK ? member_names[c->calls[i].member]
                                                                      : "a call",
                                          c->calls[i].cookie, k, c->peer_name);
                if (!peer_find(m, c->peer_name))
                        fuzz_fail("the daemon forgot client %u (%s), which is connected", k, c->peer_name);
        }
        TAILQ_FOREACH(p, &m->peers, link) {
                n_peers++;
                if (p->n_queued > 0)
                        fuzz_fail("%s has %u calls waiting, with the loop idle", p->name, p->n_queued);
        }
        if (n_peers != n_open)
                fuzz_fail("the daemon knows %u peers, %u connections are open", n_peers, n_open);
        if (m->n_queued > 0 || !TAILQ_EMPTY(&m->ready_uids))
                fuzz_fail("%u calls wait in the queue, with the loop idle", m->n_queued);
        if (m->n_released > 0)
                fuzz_fail("%u calls were handed back to sd-bus and never came through", m->n_released);
        check_books(f);
}

/* ------------------------------------------------------------ clients --- */

static void client_open(Fuzz *f, Conn *c) {
        Peer *peer;
        int sv[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                fuzz_fail("socketpair(): %m");
        r = bus_connection_add_direct(&f->m, sv[0], NULL, &peer);
        if (r < 0)
                fuzz_fail("bus_connection_add_direct(): %s", strerror(-r));
        /* Both ends are ours: the socket says our uid. Play another one. */
        if (c->uid_override != (uid_t) -1)
                peer->uid = c->uid_override;
        c->uid = peer->uid;
        c->peer_name = strdup(peer->name);
        if (!c->peer_name)
                fuzz_fail("out of memory");

        r = sd_bus_new(&c->bus);
        if (r >= 0)
                r = sd_bus_set_fd(c->bus, sv[1], sv[1]);
        if (r >= 0)
                r = sd_bus_negotiate_fds(c->bus, c->fds);
        if (r >= 0)
                r = sd_bus_start(c->bus);
        if (r >= 0)
                r = sd_bus_attach_event(c->bus, f->m.event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_add_filter(c->bus, NULL, on_client_message, c);
        if (r < 0)
                fuzz_fail("setting up client %u: %s", c->index, strerror(-r));
        c->n_calls = 0;
        c->in_flight = 0;
}

/* Both ends through authentication: sd-bus would otherwise block on it when
 * asked whether fds can be sent, with the other end in this same thread. */
static void clients_wait_ready(Fuzz *f) {
        pump(f, NULL);
        for (unsigned k = 0; k < f->n_clients; k++)
                if (f->clients[k].bus && sd_bus_is_ready(f->clients[k].bus) <= 0)
                        fuzz_fail("client %u did not get through authentication", k);
}

static void client_close(Conn *c) {
        c->bus = sd_bus_close_unref(c->bus);
        free(c->peer_name);
        c->peer_name = NULL;
        c->n_calls = 0;
        c->in_flight = 0;
}

/* Close @c (abruptly: whatever it sent may be in flight) and open a new one.
 * Gracefully, the loop settles first, and the daemon must have forgotten
 * every trace of the old one. */
static void client_reconnect(Fuzz *f, Conn *c, bool graceful) {
        char *name;

        if (graceful) {
                pump(f, NULL);
                check_settled(f);
        }
        name = TAKE_PTR(c->peer_name);
        client_close(c);
        if (graceful) {
                pump(f, NULL);
                if (peer_find(&f->m, name) || broker_find_client(f->m.broker, name))
                        fuzz_fail("the daemon still knows %s after it closed", name);
        }
        free(name);
        client_open(f, c);
        clients_wait_ready(f);
}

/* --------------------------------------------------------------- calls --- */

static unsigned in_flight(Fuzz *f) {
        unsigned n = 0;

        for (unsigned k = 0; k < f->n_clients; k++)
                n += f->clients[k].in_flight;
        return n;
}

static const char *pick_sender(Fuzz *f, Conn *c, uint8_t flags) {
        Conn *o = other_client(f, c);

        switch (flags & 7) {
        case 4:
                return c->peer_name;
        case 5:
                return o && o->peer_name ? o->peer_name : "direct:1";
        case 6:
                return ":1.42";
        case 7:
                return "org.freedesktop.DBus";
        default:
                return NULL;
        }
}

/* kind: 0-3 call and wait, 4 call and go on, 5 no reply expected, 6 signal. */
static void do_call(Fuzz *f, Conn *c, Input *in, unsigned kind) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        uint8_t flags = in_u8(in);
        const char *path, *iface, *name, *sender;
        Snapshot before = {};
        bool local;
        uint64_t cookie;
        Member member;
        Call *call;
        int r;

        arena_used = 0;
        f->sent_fds = 0;
        f->token_sent = false;
        path = pick_path(f, in);
        iface = pick_interface(in);
        member = (Member) in_pick(in, _M_MAX);
        name = member == M_JUNK ? junk_members[in_pick(in, ELEMENTSOF(junk_members))]
             : member == M_INPUT ? in_identifier(in)
             : member_names[member];
        if (!path || !name)
                return;         /* the arena is full: nothing to send */

        if (kind == 6)
                r = sd_bus_message_new_signal(c->bus, &msg, path, iface ?: BB_MANAGER_INTERFACE, name);
        else
                r = sd_bus_message_new_method_call(c->bus, &msg, NULL, path, iface, name);
        if (r < 0)
                fuzz_fail("cannot make a message: %s", strerror(-r));
        /* The sender field: on a direct connection the peer writes it. A
         * "direct:N" name is no valid bus name (sd-bus refuses to send it,
         * and would drop it on receipt): then there is none. */
        sender = pick_sender(f, c, flags);
        if (sender && sd_bus_message_set_sender(msg, sender) < 0)
                sender = NULL;
        if (flags & 8)
                (void) sd_bus_message_set_auto_start(msg, false);
        if (flags & 16)
                (void) sd_bus_message_set_allow_interactive_authorization(msg, true);
        if ((flags & 32) && sd_bus_message_set_destination(msg, BB_BUS_NAME) < 0)
                fuzz_fail("cannot set the destination");
        if (kind == 5)
                (void) sd_bus_message_set_expect_reply(msg, false);

        r = append_body(f, c, msg, in, member);
        if (r < 0)
                return;         /* cannot be built (no fd passing, too deep): not sent */

        /* sd-bus drops what claims to come from its own Local path or
         * interface on receipt (only it may make Disconnected), and
         * libsystemd 252 leaks the fds of a message it drops that way
         * (bus_socket_make_message(): EBADMSG before the message owns
         * them). Not the daemon's to fix: such calls go without fds. */
        local = streq(path, "/org/freedesktop/DBus/Local") || (iface && streq(iface, "org.freedesktop.DBus.Local"));
        if (local && f->sent_fds > 0)
                return;

        /* A call alone in the daemon: what it changes is what its reply
         * says. Calls sent without wanting a reply run first, then the
         * state is taken. */
        if (kind <= 3 && !local && in_flight(f) == 0) {
                pump(f, NULL);
                before = f->ttl_seen ? (Snapshot) {} : snapshot(f);
        }

        r = sd_bus_send(c->bus, msg, &cookie);
        if (r < 0) {
                (void) sd_bus_message_dump(msg, stderr, SD_BUS_MESSAGE_DUMP_WITH_HEADER);
                fuzz_fail("client %u cannot send %s %s.%s: %s", c->index, path, strna(iface), name, strerror(-r));
        }
        if (debug)
                fprintf(stderr, "fuzz-bus: client %u (%s) cookie %" PRIu64 ": %s %s %s.%s(%s)%s\n", c->index,
                        c->peer_name, cookie, kind == 6 ? "signal" : kind == 5 ? "call, no reply," : "call", path,
                        strna(iface), name, sd_bus_message_get_signature(msg, true),
                        sender ? " with a forged sender" : "");
        if (debug > 1)
                (void) sd_bus_message_dump(msg, stderr, 0);
        if (kind == 6)
                return;         /* a signal: never answered (a reply would match no call) */
        if (c->n_calls >= CALLS_MAX)
                fuzz_fail("more than %u calls on one connection", CALLS_MAX);

        call = &c->calls[c->n_calls++];
        *call = (Call) {
                .cookie = cookie,
                .member = member,
                .expect_reply = kind != 5 && !local,    /* sd-bus drops those */
                .alone = kind <= 3 && c->in_flight == 0,
                .before = before,
                .token_sent = member == M_OPEN && f->token_sent,
        };
        if (call->token_sent) {
                const Token *t = broker_find_token(f->m.broker, f->sent_token, now_usec());

                strcpy(call->token, f->sent_token);
                if (t) {
                        call->token_found = true;
                        call->token_bound_uid = t->bound_uid;
                        call->token_read_only = t->read_only;
                        call->token_single_use = t->single_use;
                }
        }
        if (strlen(path) < sizeof(call->path))
                strcpy(call->path, path);
        if (call->expect_reply)
                c->in_flight++;
        if (kind <= 3 && call->expect_reply) {
                pump(f, &call->replies);
                if (call->replies == 0)
                        fuzz_fail("%s (cookie %" PRIu64 ") of client %u got no reply",
                                  member < M_JUNK ? member_names[member] : name, cookie, c->index);
        }
}

/* ---------------------------------------------------------- the input --- */

static unsigned count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                fuzz_fail("cannot open /proc/self/fd: %m");
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;   /* the directory's own fd */
}

static uid_t uid_choice(unsigned v) {
        static const uid_t uids[] = { (uid_t) -1, UID_A, UID_B, UID_NOBODY };
        return uids[v & 3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* Small limits, so that quotas are reached within an input. */
        static const BrokerLimits limits = {
                .max_buffer_size = 1 << 20,
                .max_fds = 64,
                .max_buffers_per_uid = 16,
                .max_bytes_per_uid = 4 << 20,
                .max_tokens_per_uid = 16,
                .max_buffers = 32,
                .max_bytes = 8 << 20,
                .max_tokens = 32,
        };
        static Fuzz f;          /* large: not on the (sanitizer's) stack */
        Input in = { data, size };
        unsigned fds_before, fds_after, ops = 0;
        uint8_t header;
        Buffer *buf;
        int r;

        debug = getenv("FUZZ_BUS_DEBUG") ? atoi(getenv("FUZZ_BUS_DEBUG")) : 0;
        fds_before = count_fds();
        /* sd_event_default() hands out the thread's loop while anyone holds
         * it: the last input must have let go of it completely. */
        if (sd_event_default(NULL) != 0)
                fuzz_fail("the default event loop outlived the previous input");

        memset(&f, 0, sizeof(f));
        f.m = (Manager) MANAGER_INIT(f.m);
        for (unsigned i = 0; i < _FD_KIND_MAX; i++)
                f.pool[i] = -1;
        for (unsigned i = 0; i < RECEIVED_MAX; i++)
                f.received[i] = -1;

        r = manager_init(&f.m, &limits);
        if (r < 0)
                fuzz_fail("manager_init(): %s", strerror(-r));

        header = in_u8(&in);
        f.n_clients = header & 16 ? 2 : 1;
        for (unsigned k = 0; k < f.n_clients; k++) {
                Conn *c = &f.clients[k];

                c->fuzz = &f;
                c->index = k;
                c->uid_override = uid_choice(header >> (2 * k));
                c->fds = !(header & (32 << k));
                client_open(&f, c);
        }
        clients_wait_ready(&f);

        while (in.n > 0 && ops++ < OPS_MAX) {
                uint8_t op = in_u8(&in);
                unsigned kind = op & 7;
                Conn *c = &f.clients[((op >> 3) & 1) % f.n_clients];

                if (kind < 7)
                        do_call(&f, c, &in, kind);
                else if ((op >> 4) < 2 && f.reconnects < RECONNECTS_MAX) {
                        f.reconnects++;
                        client_reconnect(&f, c, (op >> 4) == 0);
                } else if ((op >> 4) >= 3 && (op >> 4) <= 6)
                        hostile_holder(&f, (op >> 4) - 3);
                else {
                        pump(&f, NULL);
                        check_settled(&f);
                }
        }

        pump(&f, NULL);
        check_settled(&f);

        /* The clients go, and the fds and mappings they got (the fd is the
         * lease: a buffer lives while one is alive): everything they held
         * must go with them. */
        for (unsigned k = 0; k < f.n_clients; k++)
                client_close(&f.clients[k]);
        for (unsigned i = 0; i < RECEIVED_MAX; i++)
                f.received[i] = safe_close(f.received[i]);
        for (unsigned i = 0; i < f.n_maps; i++)
                (void) munmap(f.maps[i].p, f.maps[i].size);
        f.n_maps = 0;
        pump(&f, NULL);
        check_settled(&f);
        if (f.m.broker->stats.clients != 0 || f.m.n_direct != 0 || !TAILQ_EMPTY(&f.m.peers))
                fuzz_fail("%" PRIu64 " clients and %u direct peers are left after every connection closed",
                          f.m.broker->stats.clients, f.m.n_direct);
        BROKER_FOREACH_BUFFER(buf, f.m.broker)
                if (!buf->persistent)
                        fuzz_fail("buffer %" PRIu64 " is left, neither held nor persistent", buf->id);

        manager_done(&f.m);
        if (sd_event_default(NULL) != 0)
                fuzz_fail("the default event loop outlived manager_done()");
        for (unsigned i = 0; i < _FD_KIND_MAX; i++)
                f.pool[i] = safe_close(f.pool[i]);
        for (unsigned i = 0; i < RECEIVED_MAX; i++)
                f.received[i] = safe_close(f.received[i]);
        for (unsigned i = 0; i < f.n_maps; i++)
                (void) munmap(f.maps[i].p, f.maps[i].size);

        fds_after = count_fds();
        if (fds_after != fds_before)
                fuzz_fail("%u fds open after the input, %u before", fds_after, fds_before);
        return 0;
}
