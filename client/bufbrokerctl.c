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
static bool arg_json = false;
static uint64_t arg_size = 0;
static const char *arg_name = NULL;
static bool arg_persistent = false;
static bool arg_hugetlb = false;
static bool arg_prefault = false;
static uint64_t arg_ttl_usec = 0;
static bool arg_read_only = false;
static bool arg_single_use = false;
static bool arg_uid_set = false;
static uid_t arg_uid = 0;
static const char *arg_open = NULL;
static char *arg_v4l2 = NULL;
static uint32_t arg_width = 0, arg_height = 0, arg_fourcc = 0;
static const char *arg_type = NULL;
static unsigned arg_count = 0;

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
        OPT_HUGETLB     = 1U << 13,
        OPT_PREFAULT    = 1U << 14,
};
static unsigned arg_seen = 0;

static const struct {
        unsigned bit;
        const char *name;
} option_names[] = {
        { OPT_JSON, "--json" },
        { OPT_SIZE, "--size" },
        { OPT_NAME, "--name" },
        { OPT_PERSISTENT, "--persistent" },
        { OPT_TTL, "--ttl" },
        { OPT_READ_ONLY, "--read-only" },
        { OPT_UID, "--uid" },
        { OPT_SINGLE_USE, "--single-use" },
        { OPT_OPEN, "--open" },
        { OPT_V4L2, "--v4l2" },
        { OPT_FORMAT, "--format" },
        { OPT_TYPE, "--type" },
        { OPT_COUNT, "--count" },
        { OPT_HUGETLB, "--hugetlb" },
        { OPT_PREFAULT, "--prefault" },
};

/* ------------------------------------------------------------ output --- */

static _printf_(1, 2) int log_usage(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", program_name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
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

/* -------------------------------------------------------------- help --- */

static void help(void) {
        printf("%s [OPTIONS...] COMMAND ...\n"
               "\n"
               "Create, share and inspect bufbroker shared-memory buffers.\n"
               "\n"
               "Commands:\n"
               "  status                       Show the broker's version, stats and limits\n"
               "  list [--json]                List the buffers you may see\n"
               "  create --size SIZE [--count N] [--name NAME] [--persistent] [--ttl TTL]\n"
               "         [--hugetlb] [--prefault]\n"
               "                               Create a memfd buffer (N of them in one call,\n"
               "                               N up to 16; of huge pages; its pages allocated\n"
               "                               now), print the ids, one per line\n"
               "  create --v4l2 DEVICE --count N [--format FORMAT] [--type TYPE]\n"
               "         [--persistent] [--ttl TTL] [--read-only]\n"
               "                               Create N dma-buf buffers on a V4L2 device,\n"
               "                               print their ids, one per line\n"
               "  info ID                      Show a buffer's properties, planes and format\n"
               "  share ID [--read-only] [--uid UID] [--single-use] [--ttl TTL]\n"
               "                               Share a buffer, print the token\n"
               "  release ID...                Release buffers (ends persistence), all or none\n"
               "  freeze ID                    Seal a buffer's contents against writes\n"
               "  cat ID|TOKEN                 Write a buffer's contents (every plane) to stdout\n"
               "  write ID|TOKEN               Copy stdin into a buffer (plane after plane)\n"
               "  exec [--size SIZE | --open TOKEN] [--name NAME] -- CMD...\n"
               "                               Run CMD with the buffer's fd in $BUFBROKER_FD\n"
               "  monitor                      Print BufferReleased signals until interrupted\n"
               "\n"
               "Options:\n"
               "  -h --help                    Show this help\n"
               "     --version                 Show the version\n"
               "     --system                  Talk to the broker on the system bus (default)\n"
               "     --user                    Talk to the broker on the session bus\n"
               "     --address ADDRESS         Talk to the broker on the bus at ADDRESS\n"
               "     --private                 Talk to it over a private connection it opens\n"
               "                               for us (not with monitor)\n"
               "\n"
               "SIZE: 4096, 64K, 1M, 1G (powers of 1024; K/KB/KiB alike).\n"
               "TTL: 500ms, 10s, 5min, 1h, 2d; a bare number is seconds.\n"
               "FORMAT: WIDTHxHEIGHT:FOURCC (640x480:YUYV), WIDTHxHEIGHT or :FOURCC; what is\n"
               "        left out stays as the device has it. The driver may adjust it.\n"
               "TYPE: capture, output, capture-mplane or output-mplane (default: the\n"
               "      device's capture queue, else its output queue).\n"
               "ID: a buffer id or its object path; TOKEN: %d lower-case hex digits.\n"
               "'cat ID' and 'write ID' are for the buffer's owner (and root); others\n"
               "use a TOKEN from 'share'.\n",
               program_name, BB_TOKEN_LEN);
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

        printf("Version: %s\n", version);
        print_key_values("Stats", stats, n_stats);
        print_key_values("Limits", limits, n_limits);
        return 0;
}

static void list_json(bb_buffer **list, size_t n) {
        fputs("[", stdout);
        for (size_t i = 0; i < n; i++) {
                bb_buffer *b = list[i];
                unsigned holders = 0;

                (void) bb_buffer_get_holders(b, &holders);
                printf("%s\n  {\"id\": %" PRIu64 ", \"path\": ", i > 0 ? "," : "", bb_buffer_id(b));
                json_print_string(stdout, bb_buffer_path(b));
                fputs(", \"name\": ", stdout);
                json_print_string(stdout, bb_buffer_name(b));
                fputs(", \"kind\": ", stdout);
                json_print_string(stdout, bb_buffer_kind(b));
                printf(", \"size\": %" PRIu64 ", \"owner_uid\": %u, \"persistent\": %s, \"frozen\": %s, "
                       "\"holders\": %u, \"created_usec\": %" PRIu64 "}",
                       bb_buffer_size(b), (unsigned) bb_buffer_owner_uid(b),
                       bb_buffer_is_persistent(b) ? "true" : "false",
                       bb_buffer_is_frozen(b) ? "true" : "false",
                       holders, bb_buffer_created_usec(b));
        }
        fputs(n > 0 ? "\n]\n" : "]\n", stdout);
}

static void list_table(bb_buffer **list, size_t n) {
        char sz[FORMAT_SIZE_MAX], ts[FORMAT_TIMESTAMP_MAX];

        printf("%-8s %-6s %-8s %-8s %-7s %-10s %-6s %-19s %s\n",
               "ID", "KIND", "SIZE", "OWNER", "HOLDERS", "PERSISTENT", "FROZEN", "CREATED", "NAME");
        for (size_t i = 0; i < n; i++) {
                bb_buffer *b = list[i];
                unsigned holders = 0;

                (void) bb_buffer_get_holders(b, &holders);
                printf("%-8" PRIu64 " %-6s %-8s %-8u %-7u %-10s %-6s %-19s %s\n",
                       bb_buffer_id(b), bb_buffer_kind(b), format_size(sz, bb_buffer_size(b)),
                       (unsigned) bb_buffer_owner_uid(b), holders,
                       bb_buffer_is_persistent(b) ? "yes" : "no",
                       bb_buffer_is_frozen(b) ? "yes" : "no",
                       format_timestamp(ts, bb_buffer_created_usec(b)),
                       bb_buffer_name(b));
        }
}

static int verb_list(bb_client *c, int argc, char **argv) {
        bb_buffer **list = NULL;
        size_t n = 0;
        int r;

        r = bb_client_list_buffers(c, &list, &n);
        if (r < 0)
                return log_bus_error(c, r, "list");
        if (arg_json)
                list_json(list, n);
        else
                list_table(list, n);
        bb_buffer_list_free(list, n);
        return 0;
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
        _cleanup_(bb_buffer_unrefp) bb_buffer *buf = NULL;
        unsigned flags = (arg_persistent ? BB_CREATE_PERSISTENT : 0) | (arg_hugetlb ? BB_CREATE_HUGETLB : 0) |
                         (arg_prefault ? BB_CREATE_PREFAULT : 0);
        int r;

        if (arg_v4l2)
                return create_v4l2(c);

        if (arg_count > 1) {
                bb_buffer *bufs[BB_CREATE_BATCH_MAX];

                r = bb_buffer_create_many(c, arg_name, arg_size, flags, arg_ttl_usec, arg_count, bufs);
                if (r < 0)
                        return log_bus_error(c, r, "create");
                for (unsigned i = 0; i < arg_count; i++) {
                        printf("%" PRIu64 "\n", bb_buffer_id(bufs[i]));
                        bb_buffer_unref(bufs[i]);
                }
        } else {
                r = bb_buffer_create(c, arg_name, arg_size, flags, arg_ttl_usec, &buf);
                if (r < 0)
                        return log_bus_error(c, r, "create");
                printf("%" PRIu64 "\n", bb_buffer_id(buf));
        }
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
        int r;

        r = buffer_get_by_id_arg(c, "info", argv[1], &buf);
        if (r < 0)
                return r;

        printf("Id:         %" PRIu64 "\n", bb_buffer_id(buf));
        printf("Path:       %s\n", bb_buffer_path(buf));
        printf("Name:       %s\n", bb_buffer_name(buf));
        printf("Kind:       %s\n", bb_buffer_kind(buf));
        printf("Size:       %" PRIu64 " (%s)\n", bb_buffer_size(buf), format_size(sz, bb_buffer_size(buf)));
        printf("OwnerUid:   %u\n", (unsigned) bb_buffer_owner_uid(buf));
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

        /* The one fd the command is meant to inherit. */
        if (fcntl(fd, F_SETFD, 0) < 0) {
                fprintf(stderr, "%s: exec: cannot pass the buffer's fd: %m\n", program_name);
                _exit(127);
        }
        snprintf(v, sizeof(v), "%d", fd);
        if (setenv("BUFBROKER_FD", v, 1) < 0)
                _exit(127);
        snprintf(v, sizeof(v), "%" PRIu64, bb_buffer_id(buf));
        if (setenv("BUFBROKER_ID", v, 1) < 0)
                _exit(127);
        snprintf(v, sizeof(v), "%" PRIu64, bb_buffer_size(buf));
        if (setenv("BUFBROKER_SIZE", v, 1) < 0)
                _exit(127);

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
        } else {
                r = bb_buffer_create(c, arg_name, arg_size, 0, 0, &buf);
                if (r < 0)
                        return log_bus_error(c, r, "exec: create");
        }
        fd = bb_buffer_fd(buf);
        if (fd < 0) {
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

static void on_released(const char *path, uint64_t id, void *userdata) {
        printf("BufferReleased %s %" PRIu64 "\n", path, id);
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

        r = bb_client_monitor(c, on_released, NULL);
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

/* What a verb takes after its name. */
typedef enum VerbArgs {
        ARGS_NONE,
        ARGS_ID,        /* one buffer id (or object path) */
        ARGS_IDS,       /* one or more of them */
        ARGS_REF,       /* one buffer id or token */
        ARGS_CMD,       /* a command line */
} VerbArgs;

typedef struct Verb {
        const char *name;
        VerbArgs args;
        unsigned options;               /* OPT_* the verb takes */
        int (*run)(bb_client *c, int argc, char **argv);
} Verb;

static const Verb verbs[] = {
        { "status",  ARGS_NONE, 0,                                              verb_status },
        { "list",    ARGS_NONE, OPT_JSON,                                       verb_list },
        { "create",  ARGS_NONE, OPT_SIZE | OPT_NAME | OPT_PERSISTENT | OPT_TTL | OPT_READ_ONLY |
                                OPT_V4L2 | OPT_FORMAT | OPT_TYPE | OPT_COUNT | OPT_HUGETLB | OPT_PREFAULT,   verb_create },
        { "info",    ARGS_ID,   0,                                              verb_info },
        { "share",   ARGS_ID,   OPT_READ_ONLY | OPT_UID | OPT_SINGLE_USE | OPT_TTL, verb_share },
        { "release", ARGS_IDS,  0,                                              verb_release },
        { "freeze",  ARGS_ID,   0,                                              verb_freeze },
        { "cat",     ARGS_REF,  0,                                              verb_cat },
        { "write",   ARGS_REF,  0,                                              verb_write },
        { "exec",    ARGS_CMD,  OPT_SIZE | OPT_OPEN | OPT_NAME,                 verb_exec },
        { "monitor", ARGS_NONE, 0,                                              verb_monitor },
};

/* -------------------------------------------------------------- main --- */

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_SYSTEM,
                ARG_USER,
                ARG_ADDRESS,
                ARG_PRIVATE,
                ARG_JSON,
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
                ARG_HUGETLB,
                ARG_PREFAULT,
        };
        static const struct option options[] = {
                { "help",       no_argument,       NULL, 'h' },
                { "version",    no_argument,       NULL, ARG_VERSION },
                { "system",     no_argument,       NULL, ARG_SYSTEM },
                { "user",       no_argument,       NULL, ARG_USER },
                { "address",    required_argument, NULL, ARG_ADDRESS },
                { "private",    no_argument,       NULL, ARG_PRIVATE },
                { "json",       no_argument,       NULL, ARG_JSON },
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
                { "hugetlb",    no_argument,       NULL, ARG_HUGETLB },
                { "prefault",   no_argument,       NULL, ARG_PREFAULT },
                {}
        };
        int c, r;

        /* Options may come before or after the command (getopt permutes);
         * "--" ends them, which is how exec's CMD keeps its own options.
         * getopt's own messages would name argv[0]; ours name the program. */
        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("%s %s\n", program_name, PACKAGE_VERSION);
                        return 0;
                case ARG_SYSTEM:
                        arg_bus = BUS_SYSTEM;
                        break;
                case ARG_USER:
                        arg_bus = BUS_USER;
                        break;
                case ARG_ADDRESS:
                        if (!*optarg)
                                return log_usage("--address: empty address");
                        arg_bus = BUS_ADDRESS;
                        arg_address = optarg;
                        break;
                case ARG_PRIVATE:
                        arg_private = true;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        arg_seen |= OPT_JSON;
                        break;
                case ARG_SIZE:
                        r = parse_size_arg(optarg, &arg_size);
                        if (r < 0)
                                return log_usage("--size: '%s' is not a valid size%s", optarg,
                                                 r == -ERANGE ? " (too large)" :
                                                 " (a positive number, optionally with K, M, G or T)");
                        arg_seen |= OPT_SIZE;
                        break;
                case ARG_NAME:
                        arg_name = optarg;
                        arg_seen |= OPT_NAME;
                        break;
                case ARG_PERSISTENT:
                        arg_persistent = true;
                        arg_seen |= OPT_PERSISTENT;
                        break;
                case ARG_HUGETLB:
                        arg_hugetlb = true;
                        arg_seen |= OPT_HUGETLB;
                        break;
                case ARG_PREFAULT:
                        arg_prefault = true;
                        arg_seen |= OPT_PREFAULT;
                        break;
                case ARG_TTL:
                        r = parse_ttl_arg(optarg, &arg_ttl_usec);
                        if (r < 0)
                                return log_usage("--ttl: '%s' is not a valid duration%s", optarg,
                                                 r == -ERANGE ? " (too large)" :
                                                 " (a positive number with ms, s, min, h or d)");
                        arg_seen |= OPT_TTL;
                        break;
                case ARG_READ_ONLY:
                        arg_read_only = true;
                        arg_seen |= OPT_READ_ONLY;
                        break;
                case ARG_UID:
                        r = parse_uid_arg(optarg, &arg_uid);
                        if (r < 0)
                                return log_usage("--uid: '%s' is neither a uid nor a known user name", optarg);
                        arg_uid_set = true;
                        arg_seen |= OPT_UID;
                        break;
                case ARG_SINGLE_USE:
                        arg_single_use = true;
                        arg_seen |= OPT_SINGLE_USE;
                        break;
                case ARG_OPEN:
                        arg_open = optarg;
                        arg_seen |= OPT_OPEN;
                        break;
                case ARG_V4L2:
                        if (!*optarg)
                                return log_usage("--v4l2: empty device path");
                        r = make_absolute(optarg, &arg_v4l2);
                        if (r < 0)
                                return log_usage("--v4l2: cannot make '%s' an absolute path: %s", optarg,
                                                 strerror(-r));
                        arg_seen |= OPT_V4L2;
                        break;
                case ARG_FORMAT:
                        r = parse_v4l2_format(optarg, &arg_width, &arg_height, &arg_fourcc);
                        if (r < 0)
                                return log_usage("--format: '%s' is not a valid format%s", optarg,
                                                 r == -ERANGE ? " (a number is too large)" :
                                                 " (WIDTHxHEIGHT:FOURCC like 640x480:YUYV, WIDTHxHEIGHT, or :FOURCC)");
                        arg_seen |= OPT_FORMAT;
                        break;
                case ARG_TYPE:
                        if (!v4l2_type_is_valid(optarg))
                                return log_usage("--type: '%s' is none of capture, output, capture-mplane, "
                                                 "output-mplane", optarg);
                        arg_type = optarg;
                        arg_seen |= OPT_TYPE;
                        break;
                case ARG_COUNT:
                        r = parse_count_arg(optarg, &arg_count);
                        if (r < 0)
                                return log_usage("--count: '%s' is not a valid buffer count%s", optarg,
                                                 r == -ERANGE ? " (too large)" : " (a positive number)");
                        arg_seen |= OPT_COUNT;
                        break;
                case '?':
                        if (optopt >= 0x100)
                                return log_usage(strchr(argv[optind - 1], '=') ?
                                                 "option '%s' does not take an argument" :
                                                 "option '%s' requires an argument", argv[optind - 1]);
                        if (optopt > 0)
                                return log_usage("invalid option -- '%c'", optopt);
                        return log_usage("unrecognized option '%s'", argv[optind - 1]);
                default:
                        abort();
                }
        }
        return 1;
}

static const char *option_name(unsigned bit) {
        for (size_t i = 0; i < ELEMENTSOF(option_names); i++)
                if (option_names[i].bit == bit)
                        return option_names[i].name;
        return "?";
}

/* The verb named by argv[0], with its arguments and options checked; NULL
 * (after saying why) on a usage error. */
static const Verb *find_verb(int argc, char **argv) {
        const Verb *v = NULL;
        const char *token;
        uint64_t id;

        if (argc < 1) {
                log_usage("missing command");
                return NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(argv[0], verbs[i].name) == 0)
                        v = &verbs[i];
        if (!v) {
                log_usage("unknown command '%s'", argv[0]);
                return NULL;
        }

        for (size_t i = 0; i < ELEMENTSOF(option_names); i++)
                if ((arg_seen & option_names[i].bit) && !(v->options & option_names[i].bit)) {
                        log_usage("%s: option %s does not apply to this command", v->name, option_names[i].name);
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
        case ARGS_CMD:
                if (argc < 2) {
                        log_usage("%s: missing command to run (after --)", v->name);
                        return NULL;
                }
                break;
        }

        if (v->run == verb_create) {
                static const unsigned v4l2_only[] = { OPT_FORMAT, OPT_TYPE, OPT_READ_ONLY };

                if (!!(arg_seen & OPT_SIZE) == !!(arg_seen & OPT_V4L2)) {
                        log_usage("create: exactly one of --size SIZE (a memfd buffer) and --v4l2 DEVICE "
                                  "(V4L2 buffers) is required");
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
                if ((arg_seen & OPT_NAME) && (arg_seen & OPT_OPEN)) {
                        log_usage("exec: --name only applies to a buffer created with --size");
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
        return r;
}
