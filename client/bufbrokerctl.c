/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bufbrokerctl: the command-line client of bufbroker. Written against the
 * public <bufbroker.h> only, so that it doubles as a test of the library and
 * as an example of its use.
 *
 * Exit codes: 0 success, 1 failure, 2 usage error; "exec" returns the
 * command's own status (127 when it cannot be run, 128+N when killed by
 * signal N).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bufbroker.h>

#include "bufbroker-protocol.h"
#include "config.h"
#include "ctl-json.h"
#include "ctl-util.h"
#include "macro.h"

#define EXIT_USAGE 2

static const char *program_name = "bufbrokerctl";

static enum {
        BUS_SYSTEM,
        BUS_USER,
        BUS_ADDRESS,
} arg_bus = BUS_SYSTEM;
static const char *arg_address = NULL;
static bool arg_private = false;
static bool arg_help = false;
static bool arg_version = false;
static JsonMode arg_json = JSON_OFF;
static bool arg_legend = true;
static uint64_t arg_size = 0;
static const char *arg_name = NULL;
static bool arg_persistent = false;
static uint64_t arg_ttl_usec = 0;
static bool arg_read_only = false;
static bool arg_single_use = false;
static bool arg_all = false;
static bool arg_hugetlb = false;
static bool arg_prefault = false;
static bool arg_uid_set = false;
static uid_t arg_uid = 0;
static const char *arg_open = NULL;
static char *arg_v4l2 = NULL;
static uint32_t arg_width = 0, arg_height = 0, arg_fourcc = 0;
static const char *arg_type = NULL;
static unsigned arg_count = 0;
static const char *arg_kind = NULL;     /* NULL: not given (a memfd, by CreateMemfd) */

/* Which command options were given, so a command can refuse the ones that
 * mean nothing to it instead of ignoring them silently. */
enum {
        OPT_JSON        = 1U << 0,
        OPT_SIZE        = 1U << 1,
        OPT_NAME        = 1U << 2,
        OPT_PERSISTENT  = 1U << 3,
        OPT_TTL         = 1U << 4,
        OPT_READ_ONLY   = 1U << 5,
        OPT_UID         = 1U << 6,
        OPT_SINGLE_USE  = 1U << 7,
        OPT_OPEN        = 1U << 8,
        OPT_V4L2        = 1U << 9,
        OPT_FORMAT      = 1U << 10,
        OPT_TYPE        = 1U << 11,
        OPT_COUNT       = 1U << 12,
        OPT_NO_LEGEND   = 1U << 13,
        OPT_ALL         = 1U << 14,
        OPT_HUGETLB     = 1U << 15,
        OPT_PREFAULT    = 1U << 16,
        OPT_KIND        = 1U << 17,

        /* What every command that prints data takes. */
        OPT_OUTPUT      = OPT_JSON | OPT_NO_LEGEND,
};
static unsigned arg_seen = 0;

/* The command options, in the order help lists them. */
static const struct {
        unsigned bit;
        const char *name;       /* as a message names it */
        const char *synopsis;   /* with its argument, as help shows it */
        const char *help;
} command_options[] = {
        { OPT_SIZE,       "--size",       "--size SIZE",       "The new buffer's size" },
        { OPT_KIND,       "--kind",       "--kind KIND",       "What the new buffer is (default: memfd)" },
        { OPT_COUNT,      "--count",      "--count N",         "How many (memfd: 1 to 16; V4L2: required)" },
        { OPT_NAME,       "--name",       "--name NAME",       "The new buffer's name" },
        { OPT_HUGETLB,    "--hugetlb",    "--hugetlb",         "Of huge pages (memfd; the size rounded up)" },
        { OPT_PREFAULT,   "--prefault",   "--prefault",        "Allocate the pages now (no SIGBUS later)" },
        { OPT_PERSISTENT, "--persistent", "--persistent",      "Keep the buffers after bufbrokerctl exits" },
        { OPT_TTL,        "--ttl",        "--ttl TTL",         "Expiry of the buffer (create) or token (share)" },
        { OPT_READ_ONLY,  "--read-only",  "--read-only",       "Hand out read-only file descriptors only" },
        { OPT_UID,        "--uid",        "--uid UID",         "Only this uid (or user name) may open the token" },
        { OPT_SINGLE_USE, "--single-use", "--single-use",      "The token works once" },
        { OPT_V4L2,       "--v4l2",       "--v4l2 DEVICE",     "Make dma-buf buffers on this V4L2 device" },
        { OPT_FORMAT,     "--format",     "--format FORMAT",   "The V4L2 frame size and pixel format" },
        { OPT_TYPE,       "--type",       "--type TYPE",       "The V4L2 queue" },
        { OPT_OPEN,       "--open",       "--open TOKEN",      "Open TOKEN's buffer instead of creating one" },
        { OPT_ALL,        "--all",        "--all",             "Every token of the buffer" },
        { OPT_JSON,       "--json",       "--json=MODE",       "Print JSON: pretty (indented), short (one line\n"
                                                               "per document) or off (text, the default);\n"
                                                               "--json alone is --json=pretty" },
        { OPT_NO_LEGEND,  "--no-legend",  "--no-legend",       "Leave out column headers and footers" },
};

/* The kinds "create --kind" knows, as the broker spells them. */
static const char *const known_kinds[] = { BB_KIND_MEMFD, BB_KIND_POSIX, BB_KIND_SYSV, BB_KIND_FILE };

static bool kind_is_known(const char *kind) {
        for (size_t i = 0; i < ELEMENTSOF(known_kinds); i++)
                if (strcmp(kind, known_kinds[i]) == 0)
                        return true;
        return false;
}

static bool kind_is(bb_buffer *b, const char *kind) {
        return bb_buffer_kind(b) && strcmp(bb_buffer_kind(b), kind) == 0;
}

/* The verb named on the command line, once known, for "Try 'VERB --help'". */
static const char *hint_verb = NULL;

/* ------------------------------------------------------------ output --- */

static _printf_(1, 2) int log_usage(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", program_name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (hint_verb)
                fprintf(stderr, "\nTry '%s %s --help' for more information.\n", program_name, hint_verb);
        else
                fprintf(stderr, "\nTry '%s --help' for more information.\n", program_name);
        return -EINVAL;
}

static _printf_(1, 2) void log_error(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", program_name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* "org.bufbroker.Error.QuotaExceeded" → "Quota exceeded": a D-Bus error
 * name, readable. Returns false for names that are not CamelCase words
 * (sd-bus's local "System.Error.ENOTCONN"), which strerror() says better. */
static bool print_error_title(FILE *f, const char *name) {
        const char *p = strrchr(name, '.');

        p = p ? p + 1 : name;
        if (!(*p >= 'A' && *p <= 'Z') || strncmp(name, "System.Error.", strlen("System.Error.")) == 0)
                return false;
        if (strcmp(p, "InvalidArgs") == 0) {
                fputs("Invalid argument", f);
                return true;
        }
        for (const char *q = p; *q; q++) {
                if (q != p && *q >= 'A' && *q <= 'Z') {
                        fputc(' ', f);
                        fputc(*q - 'A' + 'a', f);
                } else
                        fputc(*q, f);
        }
        return true;
}

/* "bufbrokerctl: <what>: <D-Bus error title>: <its message>", or strerror()
 * for local failures. Returns r so that "return log_bus_error(...)" works. */
static _printf_(3, 4) int log_bus_error(bb_client *c, int r, const char *fmt, ...) {
        const char *name = bb_client_error_name(c), *message = bb_client_error_message(c);
        va_list ap;

        fprintf(stderr, "%s: ", program_name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(": ", stderr);
        if (name && print_error_title(stderr, name)) {
                if (message && *message)
                        fprintf(stderr, ": %s", message);
                if (r == -EHOSTUNREACH || r == -ENXIO)
                        fputs(" (is bufbrokerd running on this bus?)", stderr);
        } else
                fputs(strerror(-r), stderr);
        fputc('\n', stderr);
        return r;
}

/* "video0" → "$PWD/video0": the broker takes absolute paths only. The path
 * is not resolved (symlinks, ".."): the broker judges what it names. */
static int make_absolute(const char *path, char **ret) {
        _cleanup_free_ char *cwd = NULL;
        char *p;

        if (path[0] == '/')
                p = strdup(path);
        else {
                cwd = getcwd(NULL, 0);
                if (!cwd)
                        return negative_errno();
                if (asprintf(&p, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path) < 0)
                        p = NULL;
        }
        if (!p)
                return -ENOMEM;
        free(*ret);
        *ret = p;
        return 0;
}

/* ------------------------------------------------------------- verbs --- */

static int buffer_get_by_id_arg(bb_client *c, const char *verb, const char *arg, bb_buffer **ret) {
        uint64_t id;
        int r;

        /* find_verb() checked the syntax already. */
        r = parse_buffer_id(arg, &id);
        if (r < 0)
                return r;
        r = bb_buffer_get(c, id, ret);
        if (r < 0)
                return log_bus_error(c, r, "%s %s", verb, arg);
        return 0;
}

/* A handle with fds for "ID|TOKEN": Open the token, or OpenFds the id
 * (which only the owner and root may do). */
static int buffer_acquire(bb_client *c, const char *verb, const char *arg, unsigned open_flags,
                          bb_buffer **ret) {
        const char *token = NULL;
        uint64_t id = 0;
        int r;

        r = parse_buffer_ref(arg, &id, &token);
        if (r < 0)
                return r;

        if (r == BUFFER_REF_TOKEN) {
                r = bb_buffer_open(c, token, ret);
                if (r < 0)
                        return log_bus_error(c, r, "%s %s", verb, arg);
                return 0;
        }

        r = bb_buffer_open_fds(c, id, open_flags, ret);
        /* A SysV segment has no read-only fds to give (its owner may attach
         * it read-write anyway): the broker says NotSupported. A verb that
         * only reads takes it read-write then; this connection held nothing
         * before, so the failed call left nothing to undo. */
        if (r == -EOPNOTSUPP && (open_flags & BB_OPEN_READ_ONLY))
                r = bb_buffer_open_fds(c, id, open_flags & ~BB_OPEN_READ_ONLY, ret);
        if (r < 0) {
                log_bus_error(c, r, "%s %s", verb, arg);
                if (r == -EPERM)
                        log_error("%s: only a buffer's owner may use it by id; others need a token from 'share'",
                                  verb);
                return r;
        }
        return 0;
}

static void print_key_values(const char *title, const bb_key_value *kv, size_t n) {
        char sz[FORMAT_SIZE_MAX];

        printf("%s:\n", title);
        for (size_t i = 0; i < n; i++) {
                if ((strstr(kv[i].key, "bytes") || strstr(kv[i].key, "size")) && kv[i].value >= 1024)
                        printf("        %-20s %" PRIu64 " (%s)\n", kv[i].key, kv[i].value,
                               format_size(sz, kv[i].value));
                else
                        printf("        %-20s %" PRIu64 "\n", kv[i].key, kv[i].value);
        }
}

static void json_key_values(JsonWriter *w, const bb_key_value *kv, size_t n) {
        json_object_begin(w);
        for (size_t i = 0; i < n; i++)
                json_field_uint(w, kv[i].key, kv[i].value);
        json_object_end(w);
}

/* One buffer as every command's JSON shows it: the same keys always, null
 * for what this handle does not know (holders outside 'list' and 'info', the format
 * of a memfd). Documented in bufbrokerctl(1). */
static void json_buffer(JsonWriter *w, bb_buffer *b) {
        uid_t owner = bb_buffer_owner_uid(b);
        uint64_t allocated;
        unsigned holders;
        int index, shmid;

        json_object_begin(w);
        json_field_uint(w, "id", bb_buffer_id(b));
        json_field_string(w, "path", bb_buffer_path(b));
        json_field_string(w, "name", bb_buffer_name(b));
        json_field_string(w, "kind", bb_buffer_kind(b));
        json_field_uint(w, "size", bb_buffer_size(b));
        if (owner == (uid_t) -1) {
                json_field_null(w, "owner_uid");
                json_field_null(w, "owner_user");
        } else {
                json_field_uint(w, "owner_uid", owner);
                json_field_string(w, "owner_user", uid_to_user_name(owner));
        }
        json_field_bool(w, "persistent", bb_buffer_is_persistent(b) > 0);
        json_field_bool(w, "frozen", bb_buffer_is_frozen(b) > 0);
        if (bb_buffer_created_usec(b) > 0)
                json_field_uint(w, "created_usec", bb_buffer_created_usec(b));
        else
                json_field_null(w, "created_usec");
        if (bb_buffer_get_holders(b, &holders) >= 0)
                json_field_uint(w, "holders", holders);
        else
                json_field_null(w, "holders");
        /* The kind's own handle: null for the kinds that have none. */
        json_field_string(w, "shm_name", bb_buffer_shm_name(b));
        shmid = bb_buffer_shmid(b);
        if (shmid >= 0)
                json_field_uint(w, "shmid", (uint64_t) shmid);
        else
                json_field_null(w, "shmid");
        if (bb_buffer_get_allocated_bytes(b, &allocated) >= 0)
                json_field_uint(w, "allocated_bytes", allocated);
        else
                json_field_null(w, "allocated_bytes");

        json_key(w, "planes");
        if (bb_buffer_n_planes(b) == 0)
                json_null(w);
        else {
                json_array_begin(w);
                for (unsigned i = 0; i < bb_buffer_n_planes(b); i++) {
                        json_object_begin(w);
                        json_field_uint(w, "length", bb_buffer_plane_length(b, i));
                        json_field_uint(w, "stride", bb_buffer_plane_stride(b, i));
                        json_field_uint(w, "offset", bb_buffer_plane_offset(b, i));
                        json_object_end(w);
                }
                json_array_end(w);
        }

        json_key(w, "format");
        if (!bb_buffer_format_type(b) && bb_buffer_width(b) == 0)
                json_null(w);
        else {
                char fcc[BB_FOURCC_STRING_MAX];

                json_object_begin(w);
                json_field_uint(w, "width", bb_buffer_width(b));
                json_field_uint(w, "height", bb_buffer_height(b));
                json_field_string(w, "fourcc", bb_fourcc_to_string(bb_buffer_fourcc(b), fcc));
                json_field_string(w, "type", bb_buffer_format_type(b));
                index = bb_buffer_v4l2_index(b);
                if (index >= 0)
                        json_field_uint(w, "index", (uint64_t) index);
                else
                        json_field_null(w, "index");
                json_object_end(w);
        }
        json_object_end(w);
}

/* A list of handles as one JSON array. */
static void json_buffer_list(bb_buffer **list, size_t n) {
        JsonWriter w;

        json_writer_init(&w, stdout, arg_json);
        json_array_begin(&w);
        for (size_t i = 0; i < n; i++)
                json_buffer(&w, list[i]);
        json_array_end(&w);
        json_document_end(&w);
}

static int verb_status(bb_client *c, int argc, char **argv) {
        _cleanup_free_ char *version = NULL;
        _cleanup_free_ bb_key_value *stats = NULL, *limits = NULL;
        size_t n_stats, n_limits;
        int r;

        r = bb_client_get_version(c, &version);
        if (r < 0)
                return log_bus_error(c, r, "status: cannot read Version");
        r = bb_client_get_stats(c, &stats, &n_stats);
        if (r < 0)
                return log_bus_error(c, r, "status: cannot read Stats");
        r = bb_client_get_limits(c, &limits, &n_limits);
        if (r < 0)
                return log_bus_error(c, r, "status: cannot read Limits");

        if (arg_json != JSON_OFF) {
                JsonWriter w;

                json_writer_init(&w, stdout, arg_json);
                json_object_begin(&w);
                json_field_string(&w, "version", version);
                json_key(&w, "stats");
                json_key_values(&w, stats, n_stats);
                json_key(&w, "limits");
                json_key_values(&w, limits, n_limits);
                json_object_end(&w);
                json_document_end(&w);
                return 0;
        }
        printf("Version: %s\n", version);
        print_key_values("Stats", stats, n_stats);
        print_key_values("Limits", limits, n_limits);
        return 0;
}

/* The HANDLE column: one word, the kind's way in from outside the broker
 * (a posix name, a sysv shmid) or, for a file, its bytes on disk; "-" for
 * none. */
#define FORMAT_HANDLE_MAX 256
static const char *format_handle(char buf[static FORMAT_HANDLE_MAX], bb_buffer *b) {
        uint64_t allocated;
        int shmid = bb_buffer_shmid(b);

        if (bb_buffer_shm_name(b))
                snprintf(buf, FORMAT_HANDLE_MAX, "%s", bb_buffer_shm_name(b));
        else if (shmid >= 0)
                snprintf(buf, FORMAT_HANDLE_MAX, "%d", shmid);
        else if (kind_is(b, BB_KIND_FILE) && bb_buffer_get_allocated_bytes(b, &allocated) >= 0)
                format_size(buf, allocated);
        else
                snprintf(buf, FORMAT_HANDLE_MAX, "-");
        return buf;
}

static int list_table(bb_buffer **list, size_t n) {
        /* USER beside UID, one word each, so that awk's fields stay put
         * whether a uid has a name or not. */
        static const char *const header[] = { "ID", "KIND", "SIZE", "UID", "USER", "HOLDERS", "PERSISTENT",
                                              "FROZEN", "CREATED", "HANDLE", "NAME" };
        _cleanup_(table_done) Table t = {};
        int r;

        r = table_new(&t, ELEMENTSOF(header), header);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                char id[24], sz[FORMAT_SIZE_MAX], uid[24], user[FORMAT_USER_MAX], holders_s[16] = "-",
                        ts[FORMAT_TIMESTAMP_MAX], handle[FORMAT_HANDLE_MAX];
                bb_buffer *b = list[i];
                unsigned holders;

                if (bb_buffer_get_holders(b, &holders) >= 0)
                        snprintf(holders_s, sizeof(holders_s), "%u", holders);
                snprintf(id, sizeof(id), "%" PRIu64, bb_buffer_id(b));
                snprintf(uid, sizeof(uid), "%u", (unsigned) bb_buffer_owner_uid(b));
                const char *row[] = {
                        id,
                        bb_buffer_kind(b),
                        format_size(sz, bb_buffer_size(b)),
                        uid,
                        format_user(user, bb_buffer_owner_uid(b)),
                        holders_s,
                        bb_buffer_is_persistent(b) ? "yes" : "no",
                        bb_buffer_is_frozen(b) ? "yes" : "no",
                        format_timestamp(ts, bb_buffer_created_usec(b)),
                        format_handle(handle, b),
                        bb_buffer_name(b),
                };
                for (size_t k = 0; r >= 0 && k < ELEMENTSOF(row); k++)
                        r = table_add(&t, row[k]);
        }
        if (r < 0) {
                log_error("list: %s", strerror(-r));
                return r;
        }
        table_print(&t, stdout, arg_legend);
        /* The footer, as systemd's list commands have one. */
        if (arg_legend)
                printf("\n%zu buffer%s listed.\n", n, n == 1 ? "" : "s");
        return 0;
}

static int verb_list(bb_client *c, int argc, char **argv) {
        bb_buffer **list = NULL;
        size_t n = 0;
        int r;

        r = bb_client_list_buffers(c, &list, &n);
        if (r < 0)
                return log_bus_error(c, r, "list");
        if (arg_json != JSON_OFF)
                json_buffer_list(list, n);
        else
                r = list_table(list, n);
        bb_buffer_list_free(list, n);
        return r;
}

static void print_format(FILE *f, uint32_t width, uint32_t height, uint32_t fourcc) {
        char fcc[BB_FOURCC_STRING_MAX];

        fprintf(f, "%" PRIu32 "x%" PRIu32 ":%s", width, height, bb_fourcc_to_string(fourcc, fcc));
}

static int create_v4l2(bb_client *c) {
        bb_buffer **list = NULL;
        unsigned flags = 0;
        size_t n = 0;
        bb_buffer *first;
        int r;

        if (arg_persistent)
                flags |= BB_CREATE_PERSISTENT;
        if (arg_read_only)
                flags |= BB_CREATE_READ_ONLY;
        r = bb_buffer_create_v4l2(c, arg_v4l2, arg_count, arg_width, arg_height, arg_fourcc, arg_type, flags,
                                  arg_ttl_usec, &list, &n);
        if (r < 0)
                return log_bus_error(c, r, "create --v4l2 %s", arg_v4l2);

        if (arg_json != JSON_OFF)
                json_buffer_list(list, n);
        else
                for (size_t i = 0; i < n; i++)
                        printf("%" PRIu64 "\n", bb_buffer_id(list[i]));
        fflush(stdout);

        /* The driver has the last word; say when it was not ours. */
        first = list[0];
        if (n != arg_count)
                log_error("note: %s gave %zu buffers, not the %u asked for", arg_v4l2, n, arg_count);
        if ((arg_width && bb_buffer_width(first) != arg_width) ||
            (arg_height && bb_buffer_height(first) != arg_height) ||
            (arg_fourcc && bb_buffer_fourcc(first) != arg_fourcc)) {
                fprintf(stderr, "%s: note: %s chose the format ", program_name, arg_v4l2);
                print_format(stderr, bb_buffer_width(first), bb_buffer_height(first), bb_buffer_fourcc(first));
                fputs(", not ", stderr);
                print_format(stderr, arg_width, arg_height, arg_fourcc);
                fputc('\n', stderr);
        }
        if (!arg_persistent)
                log_error("note: these buffers are not persistent: they are released as soon as %s exits "
                          "(use --persistent)", program_name);
        bb_buffer_list_free(list, n);
        return 0;
}

static int verb_create(bb_client *c, int argc, char **argv) {
        bb_buffer *bufs[BB_CREATE_BATCH_MAX];
        size_t n = arg_count > 1 ? arg_count : 1;
        unsigned flags = (arg_persistent ? BB_CREATE_PERSISTENT : 0) | (arg_hugetlb ? BB_CREATE_HUGETLB : 0) |
                         (arg_prefault ? BB_CREATE_PREFAULT : 0);
        int r;

        if (arg_v4l2)
                return create_v4l2(c);

        /* --count N of memfds is one CreateMemfds call whatever --kind says. */
        if (arg_kind && n == 1)
                r = bb_buffer_create_kind(c, arg_kind, arg_name, arg_size, flags, arg_ttl_usec, &bufs[0]);
        else if (n > 1)
                r = bb_buffer_create_many(c, arg_name, arg_size, flags, arg_ttl_usec, arg_count, bufs);
        else
                r = bb_buffer_create(c, arg_name, arg_size, flags, arg_ttl_usec, &bufs[0]);
        if (r < 0 && arg_kind && n == 1)
                return log_bus_error(c, r, "create --kind %s", arg_kind);
        if (r < 0)
                return log_bus_error(c, r, "create");
        /* JSON is always an array, however many were asked for. */
        if (arg_json != JSON_OFF)
                json_buffer_list(bufs, n);
        else
                for (size_t i = 0; i < n; i++)
                        printf("%" PRIu64 "\n", bb_buffer_id(bufs[i]));
        for (size_t i = 0; i < n; i++)
                bb_buffer_unref(bufs[i]);
        fflush(stdout);
        if (!arg_persistent)
                log_error("note: the new buffers are not persistent: they are released as soon as %s exits "
                          "(use --persistent, or 'exec' to keep one for a command)", program_name);
        return 0;
}

/* The V4L2 format and the planes of a handle that knows them. */
static void print_planes_and_format(bb_buffer *buf) {
        if (bb_buffer_format_type(buf) || bb_buffer_width(buf) > 0) {
                int index = bb_buffer_v4l2_index(buf);

                /* As --format spells it. */
                fputs("Format:     ", stdout);
                print_format(stdout, bb_buffer_width(buf), bb_buffer_height(buf), bb_buffer_fourcc(buf));
                fputc('\n', stdout);
                printf("Type:       %s\n", bb_buffer_format_type(buf) ?: "-");
                if (index >= 0)
                        printf("Index:      %d\n", index);
        }
        printf("Planes:     %u\n", bb_buffer_n_planes(buf));
        for (unsigned i = 0; i < bb_buffer_n_planes(buf); i++)
                printf("  plane %u:  length %" PRIu64 ", stride %" PRIu32 ", offset %" PRIu32 "\n", i,
                       bb_buffer_plane_length(buf, i), bb_buffer_plane_stride(buf, i),
                       bb_buffer_plane_offset(buf, i));
}

static int verb_info(bb_client *c, int argc, char **argv) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        char sz[FORMAT_SIZE_MAX], ts[FORMAT_TIMESTAMP_MAX];
        uint64_t allocated;
        int r;

        r = buffer_get_by_id_arg(c, "info", argv[1], &buf);
        if (r < 0)
                return r;

        if (arg_json != JSON_OFF) {
                JsonWriter w;

                json_writer_init(&w, stdout, arg_json);
                json_buffer(&w, buf);
                json_document_end(&w);
                return 0;
        }
        printf("Id:         %" PRIu64 "\n", bb_buffer_id(buf));
        printf("Path:       %s\n", bb_buffer_path(buf));
        printf("Name:       %s\n", bb_buffer_name(buf));
        printf("Kind:       %s\n", bb_buffer_kind(buf));
        /* The kind's handle, named as its property (ShmName, ShmId). */
        if (bb_buffer_shm_name(buf))
                printf("ShmName:    %s\n", bb_buffer_shm_name(buf));
        if (bb_buffer_shmid(buf) >= 0)
                printf("ShmId:      %d\n", bb_buffer_shmid(buf));
        printf("Size:       %" PRIu64 " (%s)\n", bb_buffer_size(buf), format_size(sz, bb_buffer_size(buf)));
        if (bb_buffer_get_allocated_bytes(buf, &allocated) >= 0)
                printf("Allocated:  %" PRIu64 " (%s)\n", allocated, format_size(sz, allocated));
        printf("OwnerUid:   %u\n", (unsigned) bb_buffer_owner_uid(buf));
        /* A line of its own, so that the one above stays the property's value. */
        if (uid_to_user_name(bb_buffer_owner_uid(buf)))
                printf("OwnerUser:  %s\n", uid_to_user_name(bb_buffer_owner_uid(buf)));
        printf("Persistent: %s\n", bb_buffer_is_persistent(buf) ? "yes" : "no");
        printf("Frozen:     %s\n", bb_buffer_is_frozen(buf) ? "yes" : "no");
        printf("PageSize:   %" PRIu64 "\n", bb_buffer_page_size(buf));
        printf("Prefaulted: %s\n", bb_buffer_is_prefaulted(buf) ? "yes" : "no");
        printf("Created:    %s\n", format_timestamp(ts, bb_buffer_created_usec(buf)));

        /* Planes and format are properties (Planes, Format), read above
         * with the rest, so describing a buffer takes no fd and no hold. */
        if (bb_buffer_n_planes(buf) == 0) {
                printf("Planes:     (this broker does not serve the Planes property)\n");
                return 0;
        }
        print_planes_and_format(buf);
        return 0;
}

static int verb_share(bb_client *c, int argc, char **argv) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        _cleanup_free_ char *token = NULL;
        unsigned flags = 0;
        int r;

        r = buffer_get_by_id_arg(c, "share", argv[1], &buf);
        if (r < 0)
                return r;

        if (arg_read_only)
                flags |= BB_SHARE_READ_ONLY;
        if (arg_single_use)
                flags |= BB_SHARE_SINGLE_USE;
        if (arg_uid_set)
                flags |= BB_SHARE_UID;
        r = bb_buffer_share(buf, flags, arg_uid, arg_ttl_usec, &token);
        if (r < 0)
                return log_bus_error(c, r, "share %s", argv[1]);
        if (arg_json != JSON_OFF) {
                JsonWriter w;

                json_writer_init(&w, stdout, arg_json);
                json_object_begin(&w);
                json_field_uint(&w, "id", bb_buffer_id(buf));
                json_field_string(&w, "path", bb_buffer_path(buf));
                json_field_string(&w, "token", token);
                json_object_end(&w);
                json_document_end(&w);
                return 0;
        }
        printf("%s\n", token);
        return 0;
}

static int verb_release(bb_client *c, int argc, char **argv) {
        bb_buffer *bufs[BB_RELEASE_BATCH_MAX];
        size_t n = 0;
        int r = 0;

        /* One call for all: every one is released, or (a refusal) none. */
        for (int i = 1; i < argc && r >= 0; i++) {
                r = buffer_get_by_id_arg(c, "release", argv[i], &bufs[n]);
                if (r >= 0)
                        n++;
        }
        if (r >= 0) {
                r = n == 1 ? bb_buffer_release(bufs[0]) : bb_buffer_release_many(bufs, n);
                if (r < 0)
                        (void) log_bus_error(c, r, "release %s%s", argv[1], argc > 2 ? " ..." : "");
        }
        while (n > 0)
                bb_buffer_unref(bufs[--n]);
        return r;
}

static int verb_freeze(bb_client *c, int argc, char **argv) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        int r;

        r = buffer_get_by_id_arg(c, "freeze", argv[1], &buf);
        if (r < 0)
                return r;
        r = bb_buffer_freeze(buf);
        if (r < 0)
                return log_bus_error(c, r, "freeze %s", argv[1]);
        return 0;
}

/* revoke ID TOKEN... (each in turn; a failure does not stop the others)
 * or revoke ID --all, which prints how many went. */
static int verb_revoke(bb_client *c, int argc, char **argv) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        unsigned count;
        int r, ret = 0;

        r = buffer_get_by_id_arg(c, "revoke", argv[1], &buf);
        if (r < 0)
                return r;
        if (arg_all) {
                r = bb_buffer_revoke_tokens(buf, &count);
                if (r < 0)
                        return log_bus_error(c, r, "revoke %s --all", argv[1]);
                printf("%u\n", count);
                return 0;
        }
        for (int i = 2; i < argc; i++) {
                r = bb_buffer_revoke_token(buf, argv[i]);
                if (r < 0) {
                        (void) log_bus_error(c, r, "revoke %s %s", argv[1], argv[i]);
                        if (ret == 0)
                                ret = r;
                }
        }
        return ret;
}

static int write_all(int fd, const void *p, size_t n) {
        const char *q = p;

        while (n > 0) {
                ssize_t k = write(fd, q, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                q += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Map every plane of buf; *ret_total: the bytes of all planes' data. */
static int map_planes(bb_buffer *buf, const char *verb, const char *arg, char *addrs[], size_t sizes[],
                      size_t *ret_total) {
        size_t total = 0;
        int r;

        for (unsigned i = 0; i < bb_buffer_n_planes(buf); i++) {
                uint32_t offset = bb_buffer_plane_offset(buf, i);
                void *addr;
                size_t size;

                r = bb_buffer_map_plane(buf, i, &addr, &size);
                if (r < 0) {
                        log_error("%s %s: cannot map plane %u of the buffer: %s", verb, arg, i, strerror(-r));
                        return r;
                }
                if (offset > size) {
                        log_error("%s %s: plane %u's data starts at %" PRIu32 ", beyond its %zu bytes", verb,
                                  arg, i, offset, size);
                        return -EBADMSG;
                }
                /* A plane's data is [offset, length). */
                addrs[i] = (char *) addr + offset;
                sizes[i] = size - offset;
                total += sizes[i];
        }
        *ret_total = total;
        return 0;
}

static int verb_cat(bb_client *c, int argc, char **argv) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        char *addrs[BB_PLANES_MAX];
        size_t sizes[BB_PLANES_MAX], total;
        int r, k;

        r = buffer_acquire(c, "cat", argv[1], BB_OPEN_READ_ONLY, &buf);
        if (r < 0)
                return r;
        if (bb_buffer_n_planes(buf) > BB_PLANES_MAX) {
                log_error("cat %s: the buffer has %u planes, more than %d", argv[1], bb_buffer_n_planes(buf),
                          BB_PLANES_MAX);
                return -E2BIG;
        }
        r = map_planes(buf, "cat", argv[1], addrs, sizes, &total);
        if (r < 0)
                return r;

        /* A device may have written the memory: make it visible to the CPU. */
        r = bb_buffer_sync_begin(buf, BB_SYNC_READ);
        if (r < 0) {
                log_error("cat %s: cannot sync the buffer for reading: %s", argv[1], strerror(-r));
                return r;
        }
        for (unsigned i = 0; r >= 0 && i < bb_buffer_n_planes(buf); i++)
                r = write_all(STDOUT_FILENO, addrs[i], sizes[i]);
        k = bb_buffer_sync_end(buf, BB_SYNC_READ);
        if (r == -EPIPE)
                return 0; /* the reader had enough, like "cat | head" */
        if (r < 0) {
                log_error("cat %s: cannot write to stdout: %s", argv[1], strerror(-r));
                return r;
        }
        if (k < 0) {
                log_error("cat %s: cannot end the read sync: %s", argv[1], strerror(-k));
                return k;
        }
        return 0;
}

/* Read stdin completely, but never more than limit+1 bytes: one byte too
 * many is proof enough that it does not fit. The scratch space is an
 * anonymous mapping, so only what stdin really delivers costs memory. */
static int read_stdin(size_t limit, void **ret, size_t *ret_len, size_t *ret_alloc) {
        size_t alloc = limit + 1, len = 0;
        char *p;

        if (limit == SIZE_MAX)
                return -EFBIG;
        p = mmap(NULL, alloc, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        while (len < alloc) {
                ssize_t k = read(STDIN_FILENO, p + len, alloc - len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = negative_errno();
                        munmap(p, alloc);
                        return r;
                }
                if (k == 0)
                        break;
                len += (size_t) k;
        }
        *ret = p;
        *ret_len = len;
        *ret_alloc = alloc;
        return 0;
}

static int verb_write(bb_client *c, int argc, char **argv) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        char *addrs[BB_PLANES_MAX];
        size_t sizes[BB_PLANES_MAX], total, len, alloc, done = 0;
        void *input;
        struct stat st;
        int r;

        r = buffer_acquire(c, "write", argv[1], 0, &buf);
        if (r < 0)
                return r;

        if (bb_buffer_is_read_only(buf)) {
                log_error("write %s: buffer %" PRIu64 " is read-only%s", argv[1], bb_buffer_id(buf),
                          token_is_valid(argv[1]) ? " through this token" : "");
                return -EROFS;
        }
        if (bb_buffer_is_frozen(buf)) {
                log_error("write %s: buffer %" PRIu64 " is frozen, its contents cannot change", argv[1],
                          bb_buffer_id(buf));
                return -EROFS;
        }
        if (bb_buffer_n_planes(buf) > BB_PLANES_MAX) {
                log_error("write %s: the buffer has %u planes, more than %d", argv[1], bb_buffer_n_planes(buf),
                          BB_PLANES_MAX);
                return -E2BIG;
        }
        r = map_planes(buf, "write", argv[1], addrs, sizes, &total);
        if (r < 0)
                return r;
        if (!bb_buffer_is_writable(buf)) {
                log_error("write %s: buffer %" PRIu64 " cannot be mapped writable", argv[1], bb_buffer_id(buf));
                return -EROFS;
        }

        /* A regular file says its size up front: refuse before reading. */
        if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t) st.st_size > total) {
                log_error("write %s: input is larger than the buffer (%" PRIu64 " > %zu bytes)", argv[1],
                          (uint64_t) st.st_size, total);
                return -EFBIG;
        }

        r = read_stdin(total, &input, &len, &alloc);
        if (r < 0) {
                log_error("write %s: cannot read stdin: %s", argv[1], strerror(-r));
                return r;
        }
        if (len > total) {
                munmap(input, alloc);
                log_error("write %s: input is larger than the buffer (%zu bytes); the buffer was left unchanged",
                          argv[1], total);
                return -EFBIG;
        }

        r = bb_buffer_sync_begin(buf, BB_SYNC_WRITE);
        if (r < 0) {
                munmap(input, alloc);
                log_error("write %s: cannot sync the buffer for writing: %s", argv[1], strerror(-r));
                return r;
        }
        /* Plane after plane, as 'cat' reads them. */
        for (unsigned i = 0; done < len && i < bb_buffer_n_planes(buf); i++) {
                size_t k = len - done < sizes[i] ? len - done : sizes[i];

                memcpy(addrs[i], (char *) input + done, k);
                done += k;
        }
        munmap(input, alloc);
        r = bb_buffer_sync_end(buf, BB_SYNC_WRITE);
        if (r < 0) {
                log_error("write %s: cannot end the write sync: %s", argv[1], strerror(-r));
                return r;
        }
        return 0;
}

static volatile sig_atomic_t exec_child_pid = 0;

static void forward_signal(int sig) {
        pid_t pid = exec_child_pid;

        if (pid > 0)
                kill(pid, sig);
}

static __attribute__((__noreturn__)) void exec_child(bb_buffer *buf, int fd, char **cmd) {
        char v[32];

        /* bufbrokerctl ignores SIGPIPE for itself; the command must not
         * inherit that. */
        signal(SIGPIPE, SIG_DFL);

        /* The one fd the command is meant to inherit; a sysv buffer has
         * none: the command attaches $BUFBROKER_SHMID. Stale values from our
         * own environment must not pose as this buffer's. */
        if (unsetenv("BUFBROKER_FD") < 0 || unsetenv("BUFBROKER_SHM_NAME") < 0 ||
            unsetenv("BUFBROKER_SHMID") < 0)
                _exit(127);
        if (fd >= 0) {
                if (fcntl(fd, F_SETFD, 0) < 0) {
                        fprintf(stderr, "%s: exec: cannot pass the buffer's fd: %m\n", program_name);
                        _exit(127);
                }
                snprintf(v, sizeof(v), "%d", fd);
                if (setenv("BUFBROKER_FD", v, 1) < 0)
                        _exit(127);
        }
        snprintf(v, sizeof(v), "%" PRIu64, bb_buffer_id(buf));
        if (setenv("BUFBROKER_ID", v, 1) < 0)
                _exit(127);
        snprintf(v, sizeof(v), "%" PRIu64, bb_buffer_size(buf));
        if (setenv("BUFBROKER_SIZE", v, 1) < 0)
                _exit(127);
        if (setenv("BUFBROKER_KIND", bb_buffer_kind(buf), 1) < 0)
                _exit(127);
        if (bb_buffer_shm_name(buf) && setenv("BUFBROKER_SHM_NAME", bb_buffer_shm_name(buf), 1) < 0)
                _exit(127);
        if (bb_buffer_shmid(buf) >= 0) {
                snprintf(v, sizeof(v), "%d", bb_buffer_shmid(buf));
                if (setenv("BUFBROKER_SHMID", v, 1) < 0)
                        _exit(127);
        }

        execvp(cmd[0], cmd);
        fprintf(stderr, "%s: exec: cannot run '%s': %m\n", program_name, cmd[0]);
        _exit(127);
}

static int verb_exec(bb_client *c, int argc, char **argv) {
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        struct sigaction sa = { .sa_handler = forward_signal }, ign = { .sa_handler = SIG_IGN };
        struct sigaction old_int, old_quit, old_term, old_hup;
        pid_t pid;
        int fd, status, r;

        if (arg_open) {
                r = bb_buffer_open(c, arg_open, &buf);
                if (r < 0)
                        return log_bus_error(c, r, "exec: open");
        } else if (arg_kind) {
                r = bb_buffer_create_kind(c, arg_kind, arg_name, arg_size, 0, 0, &buf);
                if (r < 0)
                        return log_bus_error(c, r, "exec: create --kind %s", arg_kind);
        } else {
                r = bb_buffer_create(c, arg_name, arg_size, 0, 0, &buf);
                if (r < 0)
                        return log_bus_error(c, r, "exec: create");
        }
        /* A sysv buffer has no fd: its shmid is the handle the command gets. */
        fd = bb_buffer_fd(buf);
        if (fd < 0 && !(fd == -EOPNOTSUPP && bb_buffer_shmid(buf) >= 0)) {
                log_error("exec: the buffer has no fd: %s", strerror(-fd));
                return fd;
        }

        /* Anything buffered now would be written twice after fork. */
        fflush(stdout);
        fflush(stderr);

        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                log_error("exec: cannot fork: %s", strerror(-r));
                return r;
        }
        if (pid == 0)
                exec_child(buf, fd, argv + 1);

        /* We hold the buffer for the command: outlive it. Ctrl-C reaches the
         * command through the terminal's process group; a SIGTERM/SIGHUP for
         * us alone is passed on so that the command can end first. */
        exec_child_pid = pid;
        sigaction(SIGINT, &ign, &old_int);
        sigaction(SIGQUIT, &ign, &old_quit);
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGHUP, &sa, &old_hup);

        while (waitpid(pid, &status, 0) < 0) {
                if (errno != EINTR) {
                        r = negative_errno();
                        log_error("exec: cannot wait for the command: %s", strerror(-r));
                        return r;
                }
        }
        exec_child_pid = 0;
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGHUP, &old_hup, NULL);

        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return 1;
}

/* One line of text, or one JSON document, per signal; a field more is a
 * line in each branch. */
static void on_released(const char *path, uint64_t id, const char *reason, void *userdata) {
        if (arg_json != JSON_OFF) {
                JsonWriter w;

                json_writer_init(&w, stdout, arg_json);
                json_object_begin(&w);
                json_field_string(&w, "signal", "BufferReleased");
                json_field_string(&w, "path", path);
                json_field_uint(&w, "id", id);
                json_field_string(&w, "reason", reason);
                json_object_end(&w);
                json_document_end(&w);
                return;
        }
        printf("BufferReleased %s %" PRIu64 " %s\n", path, id, reason);
        fflush(stdout);
}

static int verb_monitor(bb_client *c, int argc, char **argv) {
        _cleanup_close_ int sfd = -1;
        sigset_t mask;
        int r;

        /* Signals as an fd: no race between "check the flag" and "poll". */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                r = negative_errno();
                log_error("monitor: cannot create signalfd: %s", strerror(-r));
                return r;
        }

        r = bb_client_monitor_reason(c, on_released, NULL);
        if (r < 0)
                return log_bus_error(c, r, "monitor: cannot subscribe to BufferReleased");
        /* Tests wait for this line: from here on no signal is missed. */
        fprintf(stderr, "Monitoring BufferReleased signals of %s; press Ctrl-C to stop.\n", BB_BUS_NAME);

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = bb_client_get_fd(c), .events = (short) bb_client_get_events(c) },
                        { .fd = sfd, .events = POLLIN },
                };

                r = bb_client_process(c, 0);
                if (r < 0)
                        return log_bus_error(c, r, "monitor: connection lost");
                if (r > 0)
                        continue;

                if (p[0].fd < 0 || p[0].events < 0)
                        return log_bus_error(c, p[0].fd < 0 ? p[0].fd : p[0].events, "monitor");
                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        log_error("monitor: poll: %s", strerror(-r));
                        return r;
                }
                if (p[1].revents & POLLIN)
                        return 0;
        }
}

/* ------------------------------------------------------------- table --- */

/* What a verb takes after its name. */
typedef enum VerbArgs {
        ARGS_NONE,
        ARGS_ID,        /* one buffer id (or object path) */
        ARGS_IDS,       /* one or more of them */
        ARGS_ID_TOKENS, /* one buffer id, then tokens (or --all) */
        ARGS_REF,       /* one buffer id or token */
        ARGS_CMD,       /* a command line */
        ARGS_VERB,      /* at most one command name (help) */
} VerbArgs;

/* One row per command: adding a command is adding a row (and its man page
 * entry). The help texts are generated from the rows and command_options. */
typedef struct Verb {
        const char *name;
        const char *synopsis;           /* after the name; '\n' between forms */
        const char *summary;            /* one line, for the command list */
        const char *description;        /* for "VERB --help", lines of up to 79 */
        VerbArgs args;
        unsigned options;               /* OPT_* the verb takes */
        bool local;                     /* needs no bus */
        int (*run)(bb_client *c, int argc, char **argv);
} Verb;

static int verb_help(bb_client *c, int argc, char **argv);

static const Verb verbs[] = {
        {
                .name = "status",
                .synopsis = "",
                .summary = "Show the broker's version, stats and limits",
                .description = "Show the broker's version, its statistics (buffers, bytes, clients, tokens)\n"
                               "and its limits.",
                .args = ARGS_NONE,
                .options = OPT_OUTPUT,
                .run = verb_status,
        }, {
                .name = "list",
                .synopsis = "",
                .summary = "List the buffers you may see",
                .description = "List the buffers the caller's uid owns or holds (for root: all of them),\n"
                               "one per line, with their owner as uid and user name.",
                .args = ARGS_NONE,
                .options = OPT_OUTPUT,
                .run = verb_list,
        }, {
                .name = "create",
                .synopsis = "--size SIZE [--kind KIND] [--count N] [--name NAME] [--persistent] [--ttl TTL] "
                            "[--hugetlb] [--prefault]\n"
                            "--v4l2 DEVICE --count N [--format FORMAT] [--type TYPE] [--persistent] [--ttl TTL] "
                            "[--read-only]",
                .summary = "Create buffers of a kind or on V4L2, print ids",
                .description = "Create a buffer of at least SIZE bytes of the given KIND (memfd: N of\n"
                               "them, up to 16, with --count), or N dma-buf buffers on the V4L2 device\n"
                               "DEVICE, and print their ids, one per line. Without --persistent they are\n"
                               "released as soon as bufbrokerctl exits. Any of them but V4L2 may have its\n"
                               "pages allocated at once (--prefault); a memfd may be of huge pages\n"
                               "(--hugetlb). 'info' and 'list' show a buffer's handle: a posix buffer's\n"
                               "name for shm_open(), a sysv buffer's shmid, a file's bytes on disk.",
                .args = ARGS_NONE,
                .options = OPT_SIZE | OPT_KIND | OPT_NAME | OPT_PERSISTENT | OPT_TTL | OPT_READ_ONLY | OPT_V4L2 |
                           OPT_FORMAT | OPT_TYPE | OPT_COUNT | OPT_HUGETLB | OPT_PREFAULT | OPT_OUTPUT,
                .run = verb_create,
        }, {
                .name = "info",
                .synopsis = "ID",
                .summary = "Show a buffer's properties, planes and format",
                .description = "Show a buffer's properties, its V4L2 format and its planes. It takes no fd\n"
                               "and no hold: anyone who may see the buffer may run it.",
                .args = ARGS_ID,
                .options = OPT_OUTPUT,
                .run = verb_info,
        }, {
                .name = "share",
                .synopsis = "ID [--read-only] [--uid UID] [--single-use] [--ttl TTL]",
                .summary = "Share a buffer, print the token",
                .description = "Make a token for the buffer and print it. Whoever has the token may open\n"
                               "the buffer until the token expires, is used up or the buffer is released.\n"
                               "Owner uid and root only.",
                .args = ARGS_ID,
                .options = OPT_READ_ONLY | OPT_UID | OPT_SINGLE_USE | OPT_TTL | OPT_OUTPUT,
                .run = verb_share,
        }, {
                .name = "release",
                .synopsis = "ID...",
                .summary = "Release buffers (ends persistence), all or none",
                .description = "Release the buffers in one call, all or (when one cannot be released)\n"
                               "none: drop this connection's hold and, for the owner uid and root, end\n"
                               "their persistence. Put '--' before ids that start with '-'.",
                .args = ARGS_IDS,
                .options = 0,
                .run = verb_release,
        }, {
                .name = "freeze",
                .synopsis = "ID",
                .summary = "Seal a buffer's contents against writes",
                .description = "Seal the buffer's contents against writes, for good and for everyone.\n"
                               "Fails while it is mapped writable. Owner uid and root only.",
                .args = ARGS_ID,
                .options = 0,
                .run = verb_freeze,
        }, {
                .name = "revoke",
                .synopsis = "ID TOKEN...\n"
                            "ID --all",
                .summary = "Revoke tokens of a buffer",
                .description = "Revoke the given tokens of the buffer, or with --all every one of them, and\n"
                               "print how many went. A revoked token opens nothing; fds opened with it stay\n"
                               "open. Owner uid and root only.",
                .args = ARGS_ID_TOKENS,
                .options = OPT_ALL,
                .run = verb_revoke,
        }, {
                .name = "cat",
                .synopsis = "ID|TOKEN",
                .summary = "Write a buffer's contents to stdout",
                .description = "Write the buffer's contents, plane after plane, to standard output. By ID\n"
                               "for its owner uid and root; others use a TOKEN from 'share'.",
                .args = ARGS_REF,
                .options = 0,
                .run = verb_cat,
        }, {
                .name = "write",
                .synopsis = "ID|TOKEN",
                .summary = "Copy stdin into a buffer (plane after plane)",
                .description = "Copy standard input to the start of the buffer, plane after plane. Input\n"
                               "larger than the buffer is refused and the buffer left unchanged. By ID\n"
                               "for its owner uid and root; others use a TOKEN from 'share'.",
                .args = ARGS_REF,
                .options = 0,
                .run = verb_write,
        }, {
                .name = "exec",
                .synopsis = "--size SIZE [--kind KIND] [--name NAME] -- CMD...\n"
                            "--open TOKEN -- CMD...",
                .summary = "Run CMD with the buffer's fd in $BUFBROKER_FD",
                .description = "Create a buffer (not persistent), or open the one of TOKEN, and run CMD\n"
                               "with its fd inherited: $BUFBROKER_FD, $BUFBROKER_ID, $BUFBROKER_SIZE and\n"
                               "$BUFBROKER_KIND say which; $BUFBROKER_SHM_NAME the name of a posix\n"
                               "buffer. A sysv buffer has no fd: $BUFBROKER_SHMID is its segment and\n"
                               "$BUFBROKER_FD is unset. The buffer is held until CMD exits; bufbrokerctl\n"
                               "exits with CMD's status. '--' ends bufbrokerctl's options.",
                .args = ARGS_CMD,
                .options = OPT_SIZE | OPT_KIND | OPT_OPEN | OPT_NAME,
                .run = verb_exec,
        }, {
                .name = "monitor",
                .synopsis = "",
                .summary = "Print BufferReleased signals until interrupted",
                .description = "Print every BufferReleased signal of the broker, one line (or one JSON\n"
                               "document) each, until SIGINT or SIGTERM.",
                .args = ARGS_NONE,
                .options = OPT_OUTPUT,
                .run = verb_monitor,
        }, {
                .name = "help",
                .synopsis = "[COMMAND]",
                .summary = "Show this help, or a command's",
                .description = "Show the help of bufbrokerctl, or of COMMAND (as 'COMMAND --help' does).",
                .args = ARGS_VERB,
                .options = 0,
                .local = true,
                .run = verb_help,
        },
};

static const Verb *verb_by_name(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(verbs); i++)
                if (strcmp(name, verbs[i].name) == 0)
                        return &verbs[i];
        return NULL;
}

/* -------------------------------------------------------------- help --- */

#define HELP_WIDTH 79
#define HELP_COLUMN 32

/* The n bytes of text, printed from column col on, wrapped at spaces to
 * HELP_WIDTH with continuation lines starting at indent; "[--ttl TTL]"
 * stays in one piece. Returns the column where it ended. */
static size_t print_wrapped(size_t col, size_t indent, const char *text, size_t n) {
        const char *p = text, *stop = text + n;

        while (p < stop) {
                const char *end = p;
                int depth = 0;

                /* One word: up to a space outside brackets. */
                while (end < stop && (*end != ' ' || depth > 0)) {
                        depth += *end == '[' ? 1 : *end == ']' ? -1 : 0;
                        end++;
                }
                if (col > indent && col + 1 + (size_t) (end - p) > HELP_WIDTH) {
                        printf("\n%*s", (int) indent, "");
                        col = indent;
                } else if (p != text) {
                        putchar(' ');
                        col++;
                }
                fwrite(p, 1, (size_t) (end - p), stdout);
                col += (size_t) (end - p);
                p = end < stop ? end + 1 : end;
        }
        return col;
}

/* The length of the synopsis form at *form, and *form moved to the next
 * one (NULL after the last). */
static size_t next_form(const char **form) {
        const char *f = *form, *nl = strchr(f, '\n');

        *form = nl ? nl + 1 : NULL;
        return nl ? (size_t) (nl - f) : strlen(f);
}

/* "  create --size SIZE ...        summary": each form of the synopsis on
 * its own line(s), the summary beside the last one when there is room. */
static void print_verb_line(const Verb *v) {
        const char *form = v->synopsis;
        size_t col = 0;

        while (form) {
                const char *text = form;
                size_t n = next_form(&form);

                if (col > 0)
                        putchar('\n');
                col = (size_t) printf("  %s", v->name);
                if (n > 0) {
                        putchar(' ');
                        col = print_wrapped(col + 1, col + 1, text, n);
                }
        }
        if (col + 2 > HELP_COLUMN)
                printf("\n%*s", HELP_COLUMN, "");
        else
                printf("%*s", (int) (HELP_COLUMN - col), "");
        printf("%s\n", v->summary);
}

/* "     --ttl TTL        help": the help may have lines of its own. */
static void print_option_line(const char *dashes, const char *synopsis, const char *help) {
        int n = printf("  %s %s", dashes, synopsis);

        if (n + 2 > HELP_COLUMN)
                printf("\n%*s", HELP_COLUMN, "");
        else
                printf("%*s", HELP_COLUMN - n, "");
        for (const char *p = help; *p; p++) {
                putchar(*p);
                if (*p == '\n')
                        printf("%*s", HELP_COLUMN, "");
        }
        putchar('\n');
}

/* The syntax of the values the given options take. */
static void print_value_syntax(unsigned options, bool ids) {
        if (options & OPT_SIZE)
                puts("SIZE: 4096, 64K, 1M, 1G (powers of 1024; K/KB/KiB alike).");
        if (options & OPT_KIND)
                puts("KIND: memfd (a sealed memfd, the default), posix (a POSIX shm object),\n"
                     "      sysv (a SysV segment, no fd) or file (a file on the broker's disk).");
        if (options & OPT_TTL)
                puts("TTL: 500ms, 10s, 5min, 1h, 2d; a bare number is seconds.");
        if (options & OPT_FORMAT)
                puts("FORMAT: WIDTHxHEIGHT:FOURCC (640x480:YUYV), WIDTHxHEIGHT or :FOURCC; what is\n"
                     "        left out stays as the device has it. The driver may adjust it.");
        if (options & OPT_TYPE)
                puts("TYPE: capture, output, capture-mplane or output-mplane (default: the\n"
                     "      device's capture queue, else its output queue).");
        if (ids)
                printf("ID: a buffer id or its object path; TOKEN: %d lower-case hex digits.\n", BB_TOKEN_LEN);
}

static void print_global_options(void) {
        print_option_line("-h", "--help", "Show this help; after a command, its help");
        print_option_line("  ", "--version", "Show the version");
        print_option_line("  ", "--system", "Talk to the broker on the system bus (default)");
        print_option_line("  ", "--user", "Talk to the broker on the session bus");
        print_option_line("  ", "--address ADDRESS", "Talk to the broker on the bus at ADDRESS");
        print_option_line("  ", "--private", "Talk to it over a private connection it opens\n"
                                             "for us (not with monitor)");
}

static void help(void) {
        unsigned all = 0;

        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Create, share and inspect bufbroker shared-memory buffers.\n\n"
               "Commands:\n", program_name);
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                print_verb_line(&verbs[i]);
                all |= verbs[i].options;
        }
        printf("\nOptions:\n");
        print_global_options();

        /* Each command option with the commands it applies to. */
        printf("\nCommand options (before or after the command):\n");
        for (size_t i = 0; i < ELEMENTSOF(command_options); i++) {
                const char *sep = "(";

                print_option_line("  ", command_options[i].synopsis, command_options[i].help);
                printf("%*s", HELP_COLUMN, "");
                for (size_t j = 0; j < ELEMENTSOF(verbs); j++)
                        if (verbs[j].options & command_options[i].bit) {
                                printf("%s%s", sep, verbs[j].name);
                                sep = ", ";
                        }
                printf(")\n");
        }
        printf("\n");
        print_value_syntax(all, true);
        printf("'%s COMMAND --help' shows a command's options. '--' ends the options:\n"
               "'release -- -1' passes -1 as an argument.\n", program_name);
}

static void help_verb(const Verb *v) {
        const char *form = v->synopsis;

        /* One usage line per form. */
        while (form) {
                const char *text = form;
                size_t n = next_form(&form);
                int col = printf("%s [OPTIONS...] %s", program_name, v->name);

                if (n > 0) {
                        putchar(' ');
                        print_wrapped((size_t) col + 1, 8, text, n);
                }
                putchar('\n');
        }

        printf("\n%s\n\nOptions:\n", v->description);
        for (size_t i = 0; i < ELEMENTSOF(command_options); i++)
                if (v->options & command_options[i].bit)
                        print_option_line("  ", command_options[i].synopsis, command_options[i].help);
        print_option_line("-h", "--help", "Show this help");
        if (!v->local)
                printf("\nThe bus options (--system, --user, --address, --private) apply as well;\n"
                       "see '%s --help'.\n", program_name);
        bool takes_ids = v->args == ARGS_ID || v->args == ARGS_IDS || v->args == ARGS_REF ||
                         v->args == ARGS_ID_TOKENS;

        if ((v->options & (OPT_SIZE | OPT_KIND | OPT_TTL | OPT_FORMAT | OPT_TYPE)) || takes_ids) {
                putchar('\n');
                print_value_syntax(v->options, takes_ids);
        }
}

static int verb_help(bb_client *c, int argc, char **argv) {
        const Verb *v = argc > 1 ? verb_by_name(argv[1]) : NULL;

        /* find_verb() checked that argv[1] names one. */
        if (v)
                help_verb(v);
        else
                help();
        return 0;
}

/* -------------------------------------------------------------- main --- */

/* getopt's messages would name argv[0]; ours name the program. The first
 * error is kept and said after all options are read, when the command is
 * known and the hint can point at its help. */
static char *usage_error = NULL;

enum {
        ARG_VERSION = 0x100,
        ARG_SYSTEM,
        ARG_USER,
        ARG_ADDRESS,
        ARG_PRIVATE,
        ARG_JSON,
        ARG_NO_LEGEND,
        ARG_SIZE,
        ARG_NAME,
        ARG_PERSISTENT,
        ARG_TTL,
        ARG_READ_ONLY,
        ARG_UID,
        ARG_SINGLE_USE,
        ARG_OPEN,
        ARG_V4L2,
        ARG_FORMAT,
        ARG_TYPE,
        ARG_COUNT,
        ARG_ALL,
        ARG_HUGETLB,
        ARG_PREFAULT,
        ARG_KIND,
};

static _printf_(1, 2) void usage_error_set(const char *fmt, ...) {
        va_list ap;

        if (usage_error)
                return;
        va_start(ap, fmt);
        if (vasprintf(&usage_error, fmt, ap) < 0)
                usage_error = NULL;
        va_end(ap);
        if (!usage_error)
                usage_error = strdup("out of memory");
}

static void parse_option(int c, const char *arg, char *const *argv) {
        int r;

        switch (c) {
        case 'h':
                arg_help = true;
                break;
        case ARG_VERSION:
                arg_version = true;
                break;
        case ARG_SYSTEM:
                arg_bus = BUS_SYSTEM;
                break;
        case ARG_USER:
                arg_bus = BUS_USER;
                break;
        case ARG_ADDRESS:
                if (!*arg)
                        return usage_error_set("--address: empty address");
                arg_bus = BUS_ADDRESS;
                arg_address = arg;
                break;
        case ARG_PRIVATE:
                arg_private = true;
                break;
        case ARG_JSON:
                /* --json alone: pretty, as the old --json was (see the man page). */
                if (!arg)
                        arg_json = JSON_PRETTY;
                else if (strcmp(arg, "help") == 0) {
                        puts("pretty\nshort\noff");
                        exit(EXIT_SUCCESS);
                } else if (json_mode_from_string(arg, &arg_json) < 0)
                        return usage_error_set("--json: '%s' is none of pretty, short, off", arg);
                arg_seen |= OPT_JSON;
                break;
        case ARG_NO_LEGEND:
                arg_legend = false;
                arg_seen |= OPT_NO_LEGEND;
                break;
        case ARG_SIZE:
                r = parse_size_arg(arg, &arg_size);
                if (r < 0)
                        return usage_error_set("--size: '%s' is not a valid size%s", arg,
                                               r == -ERANGE ? " (too large)" :
                                               " (a positive number, optionally with K, M, G or T)");
                arg_seen |= OPT_SIZE;
                break;
        case ARG_NAME:
                arg_name = arg;
                arg_seen |= OPT_NAME;
                break;
        case ARG_PERSISTENT:
                arg_persistent = true;
                arg_seen |= OPT_PERSISTENT;
                break;
        case ARG_TTL:
                r = parse_ttl_arg(arg, &arg_ttl_usec);
                if (r < 0)
                        return usage_error_set("--ttl: '%s' is not a valid duration%s", arg,
                                               r == -ERANGE ? " (too large)" :
                                               " (a positive number with ms, s, min, h or d)");
                arg_seen |= OPT_TTL;
                break;
        case ARG_READ_ONLY:
                arg_read_only = true;
                arg_seen |= OPT_READ_ONLY;
                break;
        case ARG_UID:
                r = parse_uid_arg(arg, &arg_uid);
                if (r < 0)
                        return usage_error_set("--uid: '%s' is neither a uid nor a known user name", arg);
                arg_uid_set = true;
                arg_seen |= OPT_UID;
                break;
        case ARG_SINGLE_USE:
                arg_single_use = true;
                arg_seen |= OPT_SINGLE_USE;
                break;
        case ARG_OPEN:
                arg_open = arg;
                arg_seen |= OPT_OPEN;
                break;
        case ARG_V4L2:
                if (!*arg)
                        return usage_error_set("--v4l2: empty device path");
                r = make_absolute(arg, &arg_v4l2);
                if (r < 0)
                        return usage_error_set("--v4l2: cannot make '%s' an absolute path: %s", arg,
                                               strerror(-r));
                arg_seen |= OPT_V4L2;
                break;
        case ARG_FORMAT:
                r = parse_v4l2_format(arg, &arg_width, &arg_height, &arg_fourcc);
                if (r < 0)
                        return usage_error_set("--format: '%s' is not a valid format%s", arg,
                                               r == -ERANGE ? " (a number is too large)" :
                                               " (WIDTHxHEIGHT:FOURCC like 640x480:YUYV, WIDTHxHEIGHT, or :FOURCC)");
                arg_seen |= OPT_FORMAT;
                break;
        case ARG_TYPE:
                if (!v4l2_type_is_valid(arg))
                        return usage_error_set("--type: '%s' is none of capture, output, capture-mplane, "
                                               "output-mplane", arg);
                arg_type = arg;
                arg_seen |= OPT_TYPE;
                break;
        case ARG_COUNT:
                r = parse_count_arg(arg, &arg_count);
                if (r < 0)
                        return usage_error_set("--count: '%s' is not a valid buffer count%s", arg,
                                               r == -ERANGE ? " (too large)" : " (a positive number)");
                arg_seen |= OPT_COUNT;
                break;
        case ARG_ALL:
                arg_all = true;
                arg_seen |= OPT_ALL;
                break;
        case ARG_HUGETLB:
                arg_hugetlb = true;
                arg_seen |= OPT_HUGETLB;
                break;
        case ARG_PREFAULT:
                arg_prefault = true;
                arg_seen |= OPT_PREFAULT;
                break;
        case ARG_KIND:
                if (!kind_is_known(arg))
                        return usage_error_set("--kind: '%s' is none of memfd, posix, sysv, file", arg);
                arg_kind = arg;
                arg_seen |= OPT_KIND;
                break;
        case '?': {
                const char *bad = argv[optind - 1];

                if (optopt >= 0x100)
                        return usage_error_set(strchr(bad, '=') ? "option '%s' does not take an argument" :
                                               "option '%s' requires an argument", bad);
                /* "release -1": an argument that looks like an option. */
                if (optopt >= '0' && optopt <= '9')
                        return usage_error_set("invalid option -- '%c' (an argument that starts with '-' "
                                               "goes after '--': '-- %s')", optopt, bad);
                if (optopt > 0)
                        return usage_error_set("invalid option -- '%c'", optopt);
                return usage_error_set("unrecognized option '%s'", bad);
        }
        default:
                abort();
        }
}

/* Returns <0 on a usage error (said), 0 when done (help, version), >0 to
 * go on with the command at argv[optind]. */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "help",       no_argument,       NULL, 'h' },
                { "version",    no_argument,       NULL, ARG_VERSION },
                { "system",     no_argument,       NULL, ARG_SYSTEM },
                { "user",       no_argument,       NULL, ARG_USER },
                { "address",    required_argument, NULL, ARG_ADDRESS },
                { "private",    no_argument,       NULL, ARG_PRIVATE },
                /* Optional: "--json=MODE" only, so "list --json" never
                 * reads the next word as the mode. */
                { "json",       optional_argument, NULL, ARG_JSON },
                { "no-legend",  no_argument,       NULL, ARG_NO_LEGEND },
                { "size",       required_argument, NULL, ARG_SIZE },
                { "name",       required_argument, NULL, ARG_NAME },
                { "persistent", no_argument,       NULL, ARG_PERSISTENT },
                { "ttl",        required_argument, NULL, ARG_TTL },
                { "read-only",  no_argument,       NULL, ARG_READ_ONLY },
                { "uid",        required_argument, NULL, ARG_UID },
                { "single-use", no_argument,       NULL, ARG_SINGLE_USE },
                { "open",       required_argument, NULL, ARG_OPEN },
                { "v4l2",       required_argument, NULL, ARG_V4L2 },
                { "format",     required_argument, NULL, ARG_FORMAT },
                { "type",       required_argument, NULL, ARG_TYPE },
                { "count",      required_argument, NULL, ARG_COUNT },
                { "all",        no_argument,       NULL, ARG_ALL },
                { "hugetlb",    no_argument,       NULL, ARG_HUGETLB },
                { "prefault",   no_argument,       NULL, ARG_PREFAULT },
                { "kind",       required_argument, NULL, ARG_KIND },
                {}
        };
        int c;

        /* Options may come before or after the command (getopt permutes);
         * "--" ends them, which is how exec's CMD keeps its own options and
         * how an argument may start with '-'. */
        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                parse_option(c, optarg, argv);

        /* The command is the first argument left; "help" names another. */
        if (optind < argc) {
                const Verb *v = verb_by_name(argv[optind]);

                if (v && v->run == verb_help && optind + 1 < argc && verb_by_name(argv[optind + 1]))
                        v = verb_by_name(argv[optind + 1]);
                if (v)
                        hint_verb = v->name;
        }
        if (usage_error)
                return log_usage("%s", usage_error);

        if (arg_help) {
                const Verb *v;

                if (optind >= argc) {
                        help();
                        return 0;
                }
                v = verb_by_name(argv[optind]);
                if (!v)
                        return log_usage("unknown command '%s'", argv[optind]);
                /* "--help help list" is "help list"; "help --help" is help's own. */
                if (v->run == verb_help && optind + 1 < argc) {
                        v = verb_by_name(argv[optind + 1]);
                        if (!v)
                                return log_usage("help: unknown command '%s'", argv[optind + 1]);
                }
                help_verb(v);
                return 0;
        }
        if (arg_version) {
                printf("%s %s\n", program_name, PACKAGE_VERSION);
                return 0;
        }
        return 1;
}

static const char *option_name(unsigned bit) {
        for (size_t i = 0; i < ELEMENTSOF(command_options); i++)
                if (command_options[i].bit == bit)
                        return command_options[i].name;
        return "?";
}

/* The verb named by argv[0], with its arguments and options checked; NULL
 * (after saying why) on a usage error. */
static const Verb *find_verb(int argc, char **argv) {
        const Verb *v;
        const char *token;
        uint64_t id;

        if (argc < 1) {
                log_usage("missing command");
                return NULL;
        }
        v = verb_by_name(argv[0]);
        if (!v) {
                log_usage("unknown command '%s'", argv[0]);
                return NULL;
        }
        hint_verb = v->name;

        for (size_t i = 0; i < ELEMENTSOF(command_options); i++)
                if ((arg_seen & command_options[i].bit) && !(v->options & command_options[i].bit)) {
                        log_usage("%s: option %s does not apply to this command", v->name,
                                  command_options[i].name);
                        return NULL;
                }

        switch (v->args) {
        case ARGS_NONE:
                if (argc > 1) {
                        log_usage("%s: unexpected argument '%s'", v->name, argv[1]);
                        return NULL;
                }
                break;
        case ARGS_ID:
        case ARGS_REF:
                if (argc < 2) {
                        log_usage("%s: missing buffer %s", v->name, v->args == ARGS_ID ? "id" : "id or token");
                        return NULL;
                }
                if (argc > 2) {
                        log_usage("%s: unexpected argument '%s'", v->name, argv[2]);
                        return NULL;
                }
                if (v->args == ARGS_REF) {
                        if (parse_buffer_ref(argv[1], &id, &token) < 0) {
                                log_usage("%s: '%s' is neither a buffer id nor a token (%d lower-case hex digits)",
                                          v->name, argv[1], BB_TOKEN_LEN);
                                return NULL;
                        }
                } else if (parse_buffer_id(argv[1], &id) < 0) {
                        if (token_is_valid(argv[1]))
                                log_usage("%s: '%s' is a token; this command takes a buffer id", v->name, argv[1]);
                        else
                                log_usage("%s: '%s' is not a buffer id", v->name, argv[1]);
                        return NULL;
                }
                break;
        case ARGS_IDS:
                if (argc < 2) {
                        log_usage("%s: missing buffer id", v->name);
                        return NULL;
                }
                if (argc - 1 > BB_RELEASE_BATCH_MAX) {
                        log_usage("%s: %d buffers; at most %d at once", v->name, argc - 1, BB_RELEASE_BATCH_MAX);
                        return NULL;
                }
                for (int i = 1; i < argc; i++)
                        if (parse_buffer_id(argv[i], &id) < 0) {
                                log_usage("%s: '%s' is not a buffer id", v->name, argv[i]);
                                return NULL;
                        }
                break;
        case ARGS_ID_TOKENS:
                if (argc < 2) {
                        log_usage("%s: missing buffer id", v->name);
                        return NULL;
                }
                if (parse_buffer_id(argv[1], &id) < 0) {
                        log_usage("%s: '%s' is not a buffer id", v->name, argv[1]);
                        return NULL;
                }
                if (arg_all == (argc > 2)) {
                        log_usage("%s: give the tokens to revoke, or --all (not both)", v->name);
                        return NULL;
                }
                for (int i = 2; i < argc; i++)
                        if (!token_is_valid(argv[i])) {
                                log_usage("%s: '%s' is not a token (%d lower-case hex digits)", v->name, argv[i],
                                          BB_TOKEN_LEN);
                                return NULL;
                        }
                break;
        case ARGS_CMD:
                if (argc < 2) {
                        log_usage("%s: missing command to run (after --)", v->name);
                        return NULL;
                }
                break;
        case ARGS_VERB:
                if (argc > 2) {
                        log_usage("%s: unexpected argument '%s'", v->name, argv[2]);
                        return NULL;
                }
                if (argc == 2 && !verb_by_name(argv[1])) {
                        log_usage("%s: unknown command '%s'", v->name, argv[1]);
                        return NULL;
                }
                break;
        }

        if (v->run == verb_create) {
                static const unsigned v4l2_only[] = { OPT_FORMAT, OPT_TYPE, OPT_READ_ONLY };

                if (!!(arg_seen & OPT_SIZE) == !!(arg_seen & OPT_V4L2)) {
                        log_usage("create: exactly one of --size SIZE (a buffer of --kind, memfd by "
                                  "default) and --v4l2 DEVICE (V4L2 buffers) is required");
                        return NULL;
                }
                for (size_t i = 0; i < ELEMENTSOF(v4l2_only); i++)
                        if ((arg_seen & v4l2_only[i]) && !(arg_seen & OPT_V4L2)) {
                                log_usage("create: %s only applies to --v4l2 buffers", option_name(v4l2_only[i]));
                                return NULL;
                        }
                if ((arg_seen & OPT_V4L2) && (arg_seen & (OPT_HUGETLB | OPT_PREFAULT))) {
                        log_usage("create: %s does not apply to --v4l2 buffers (the driver allocates them)",
                                  option_name(arg_seen & OPT_HUGETLB ? OPT_HUGETLB : OPT_PREFAULT));
                        return NULL;
                }
                if ((arg_seen & OPT_V4L2) && (arg_seen & OPT_KIND)) {
                        log_usage("create: --kind does not apply to --v4l2 buffers (they are dma-bufs)");
                        return NULL;
                }
                if (arg_kind && strcmp(arg_kind, BB_KIND_MEMFD) != 0 && (arg_seen & OPT_HUGETLB)) {
                        log_usage("create: --hugetlb applies to memfd buffers only, not to --kind %s", arg_kind);
                        return NULL;
                }
                if (arg_kind && strcmp(arg_kind, BB_KIND_MEMFD) != 0 && arg_count > 1) {
                        log_usage("create: --count %u: only memfd buffers are made several in one call, "
                                  "not --kind %s", arg_count, arg_kind);
                        return NULL;
                }
                if ((arg_seen & OPT_V4L2) && (arg_seen & OPT_NAME)) {
                        log_usage("create: --name does not apply to --v4l2 buffers (they are named after the "
                                  "device and their index)");
                        return NULL;
                }
                if ((arg_seen & OPT_SIZE) && arg_count > BB_CREATE_BATCH_MAX) {
                        log_usage("create: --count %u: at most %u memfd buffers at once", arg_count,
                                  BB_CREATE_BATCH_MAX);
                        return NULL;
                }
                if ((arg_seen & OPT_V4L2) && !(arg_seen & OPT_COUNT)) {
                        log_usage("create: --v4l2 needs --count N, the number of buffers");
                        return NULL;
                }
        }
        if (v->run == verb_exec) {
                if (!!(arg_seen & OPT_SIZE) == !!(arg_seen & OPT_OPEN)) {
                        log_usage("exec: exactly one of --size and --open is required");
                        return NULL;
                }
                if ((arg_seen & (OPT_NAME | OPT_KIND)) && (arg_seen & OPT_OPEN)) {
                        log_usage("exec: %s only applies to a buffer created with --size",
                                  option_name(arg_seen & OPT_NAME ? OPT_NAME : OPT_KIND));
                        return NULL;
                }
                if (arg_open && !token_is_valid(arg_open)) {
                        log_usage("exec: --open takes a token of %d lower-case hex digits", BB_TOKEN_LEN);
                        return NULL;
                }
        }
        return v;
}

static int connect_bus(bb_client **ret) {
        int r;

        switch (arg_bus) {
        case BUS_USER:
                r = bb_client_new_user(ret);
                if (r == -ENOMEDIUM)
                        log_error("cannot connect to the session bus: neither DBUS_SESSION_BUS_ADDRESS nor "
                                  "XDG_RUNTIME_DIR is set");
                else if (r < 0)
                        log_error("cannot connect to the session bus: %s", strerror(-r));
                return r;
        case BUS_ADDRESS:
                r = bb_client_new_address(ret, arg_address);
                if (r < 0)
                        log_error("cannot connect to the bus at '%s': %s", arg_address, strerror(-r));
                return r;
        case BUS_SYSTEM:
        default:
                r = bb_client_new(ret);
                if (r < 0)
                        log_error("cannot connect to the system bus: %s", strerror(-r));
                return r;
        }
}

static int run(int argc, char *argv[]) {
        _cleanup_(bb_client_unrefp) bb_client *c = NULL;
        const Verb *v;
        int r;

        r = parse_argv(argc, argv);
        if (r < 0)
                return EXIT_USAGE;
        if (r == 0)
                return EXIT_SUCCESS;

        /* Every usage error is found here, before any bus traffic. */
        v = find_verb(argc - optind, argv + optind);
        if (!v)
                return EXIT_USAGE;

        if (v->local)
                return v->run(NULL, argc - optind, argv + optind) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        /* "cat | head" must end quietly, with write() returning EPIPE. */
        signal(SIGPIPE, SIG_IGN);

        r = connect_bus(&c);
        if (r < 0)
                return EXIT_FAILURE;
        if (arg_private) {
                bb_client *p = NULL;

                /* Opened through the bus, then the bus connection is done. */
                r = bb_client_open_private(c, &p);
                if (r < 0)
                        return log_bus_error(c, r, "cannot open a private connection"), EXIT_FAILURE;
                bb_client_unref(c);
                c = p;
        }

        /* Verbs return 0 or a negative errno; exec returns its command's status. */
        r = v->run(c, argc - optind, argv + optind);
        return r < 0 ? EXIT_FAILURE : r;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);

        free(arg_v4l2);
        free(usage_error);
        return r;
}
