/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The state is text, one record a line, so that it can be read with `cat`
 * when debugging a restart:
 *
 *   bufbroker-state 2 <next-id>
 *   queue <tag> <type> <width> <height> <fourcc> <field> <count> <planes> (<bytesperline> <sizeimage>)... <hex path>
 *   buffer <id> <owner-uid> <persistent> <frozen> <read-only> <expire-usec> <created-usec> <queue-tag> <index>
 *          <planes> (<length> <bytesperline> <offset>)... <hex name>
 *   hold <buffer-id> <uid> <unique-name>
 *   token <buffer-id> <token> <owner-uid> <bound-uid> <read-only> <single-use> <expire-usec>
 *
 * Numbers are decimal, flags 0 or 1, strings hex ("-" when empty). A queue
 * line comes before the first of its buffers (their ids are consecutive),
 * holds and tokens after their buffer.
 *
 * The stored fds that go with it (broker_state_*_fdname()): "buf-<id>-<plane>"
 * (and "-ro" for V4L2's read-only exports), and for V4L2 "queue-<tag>", the
 * device fd whose open file owns the buffer queue: keeping it open keeps the
 * queue, so the buffers come back whole.
 *
 * Deadlines are CLOCK_MONOTONIC, which runs on across a restart of the
 * daemon (not of the machine, and the store does not survive that either).
 *
 * Reading trusts nothing: every field is checked (digits only, in range,
 * flags 0 or 1, hex of the right length), and a line that does not parse is
 * dropped whole, with the fds it names.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "broker-state.h"
#include "log.h"

/* ------------------------------------------------------------ names --- */

void broker_state_plane_fdname(char buf[static BROKER_STATE_FDNAME_MAX], uint64_t id, unsigned plane, bool ro) {
        snprintf(buf, BROKER_STATE_FDNAME_MAX, "buf-%" PRIu64 "-%u%s", id, plane, ro ? "-ro" : "");
}

void broker_state_queue_fdname(char buf[static BROKER_STATE_FDNAME_MAX], uint64_t tag) {
        snprintf(buf, BROKER_STATE_FDNAME_MAX, "queue-%" PRIu64, tag);
}

/* ------------------------------------------------------------ write --- */

static void write_hex(FILE *f, const char *s) {
        if (!*s)
                fputc('-', f);
        for (; *s; s++)
                fprintf(f, "%02x", (unsigned char) *s);
}

static void write_queue(FILE *f, const V4L2Queue *q) {
        const V4L2Format *fmt = v4l2_queue_format(q);

        fprintf(f, "queue %" PRIu64 " %u %u %u %u %u %u %u", v4l2_queue_get_tag(q),
                fmt->type, fmt->width, fmt->height, fmt->fourcc, fmt->field,
                v4l2_queue_count(q), fmt->n_planes);
        for (unsigned i = 0; i < fmt->n_planes; i++)
                fprintf(f, " %u %u", fmt->bytesperline[i], fmt->sizeimage[i]);
        fputc(' ', f);
        write_hex(f, v4l2_queue_device(q));
        fputc('\n', f);
}

static void write_buffer(FILE *f, const Buffer *buf) {
        const Token *t;
        const Hold *h;

        fprintf(f, "buffer %" PRIu64 " %u %d %d %d %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %u",
                buf->id, (unsigned) buf->owner_uid, buf->persistent, buf->frozen, buf->read_only,
                buf->expire_usec, buf->created_usec,
                buf->queue ? v4l2_queue_get_tag(buf->queue) : 0, buf->v4l2_index, buf->n_planes);
        for (unsigned i = 0; i < buf->n_planes; i++)
                fprintf(f, " %" PRIu64 " %u %u", buf->planes[i].length,
                        buf->planes[i].bytesperline, buf->planes[i].offset);
        fputc(' ', f);
        write_hex(f, buf->name);
        fputc('\n', f);
        TAILQ_FOREACH(h, &buf->holds, by_buffer)
                fprintf(f, "hold %" PRIu64 " %u %s\n", buf->id, (unsigned) h->client->uid, h->client->name);
        TAILQ_FOREACH(t, &buf->tokens, by_buffer)
                fprintf(f, "token %" PRIu64 " %s %u %u %d %d %" PRIu64 "\n", buf->id, t->id,
                        (unsigned) t->owner_uid, (unsigned) t->bound_uid, t->read_only, t->single_use,
                        t->expire_usec);
}

int broker_state_write(Broker *b, FILE *f) {
        const V4L2Queue *last_queue = NULL;
        Buffer *buf;

        fprintf(f, "bufbroker-state %u %" PRIu64 "\n", BROKER_STATE_VERSION, b->next_id);
        BROKER_FOREACH_BUFFER(buf, b) {
                if (buf->queue && buf->queue != last_queue) {
                        write_queue(f, buf->queue);
                        last_queue = buf->queue;
                }
                write_buffer(f, buf);
        }
        return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}

/* ------------------------------------------------------------- read --- */

/* The longest line we write is a queue line with a PATH_MAX path in hex. */
#define LINE_MAX_STATE (2 * PATH_MAX + 1024)
#define FIELDS_MAX (12 + 3 * BB_PLANES_MAX)
#define RESTORE_QUEUES_MAX 256
/* A unique name on the bus is at most 255 bytes. */
#define UNIQUE_NAME_MAX 255

typedef struct Restore {
        Broker *b;
        const BrokerStateSource *src;
        uint64_t next_id;
        unsigned n_queues;
        V4L2Queue *queues[RESTORE_QUEUES_MAX];
} Restore;

/* Split @line at blanks, in place. Returns the number of fields, or
 * FIELDS_MAX + 1 if there are more. */
static unsigned split(char *line, char *field[static FIELDS_MAX]) {
        unsigned n = 0;
        char *p = line;

        for (;;) {
                p += strspn(p, " \n");
                if (!*p)
                        return n;
                if (n == FIELDS_MAX)
                        return FIELDS_MAX + 1;
                field[n++] = p;
                p += strcspn(p, " \n");
                if (*p)
                        *p++ = 0;
        }
}

/* Decimal digits only (no sign, no blanks), no overflow. */
static bool parse_u64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!(s[0] >= '0' && s[0] <= '9'))
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end != 0)
                return false;
        *ret = v;
        return true;
}

static bool parse_u32(const char *s, uint32_t *ret) {
        uint64_t v;

        if (!parse_u64(s, &v) || v > UINT32_MAX)
                return false;
        *ret = (uint32_t) v;
        return true;
}

static bool parse_uid(const char *s, uid_t *ret) {
        uint32_t v;

        if (!parse_u32(s, &v))
                return false;
        *ret = (uid_t) v;
        return true;
}

static bool parse_flag(const char *s, bool *ret) {
        if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0)
                return false;
        *ret = s[0] == '1';
        return true;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decode @s ("-": the empty string) into @out of @size bytes, NUL included;
 * an embedded NUL, an odd length or a string too long is refused. */
static bool parse_hex(const char *s, char *out, size_t size) {
        size_t len = strlen(s), n = 0;

        if (strcmp(s, "-") == 0) {
                out[0] = 0;
                return true;
        }
        if (len % 2 != 0 || len / 2 >= size)
                return false;
        for (; *s; s += 2) {
                int hi = hex_digit(s[0]), lo = hex_digit(s[1]);

                if (hi < 0 || lo < 0 || (hi | lo) == 0)
                        return false;
                out[n++] = (char) (hi << 4 | lo);
        }
        out[n] = 0;
        return true;
}

static void unstore(Restore *rs, const char *fdname) {
        if (rs->src->unstore)
                rs->src->unstore(fdname, rs->src->userdata);
}

/* The stored fd named @name (taken), or -1. */
static int take_fd(Restore *rs, const char *name) {
        const BrokerStateSource *src = rs->src;

        for (unsigned i = 0; src->fd_names && i < src->n_fds; i++)
                if (src->fds[i] >= 0 && strcmp(src->fd_names[i], name) == 0)
                        return TAKE_FD(src->fds[i]);
        return -1;
}

static V4L2Queue *restored_queue(Restore *rs, uint64_t tag) {
        for (unsigned i = 0; i < rs->n_queues; i++)
                if (v4l2_queue_get_tag(rs->queues[i]) == tag)
                        return rs->queues[i];
        return NULL;
}

/* queue <tag> <type> <width> <height> <fourcc> <field> <count> <planes> (<bpl> <sizeimage>)... <hex path> */
static void restore_queue(Restore *rs, char **f, unsigned n) {
        char path[PATH_MAX], fdname[BROKER_STATE_FDNAME_MAX];
        V4L2Format fmt = {};
        uint32_t count;
        V4L2Queue *q;
        uint64_t tag;
        int fd;

        if (n < 10 || !parse_u64(f[1], &tag) || tag == 0 || !parse_u32(f[2], &fmt.type) ||
            !parse_u32(f[3], &fmt.width) || !parse_u32(f[4], &fmt.height) || !parse_u32(f[5], &fmt.fourcc) ||
            !parse_u32(f[6], &fmt.field) || !parse_u32(f[7], &count) || !parse_u32(f[8], &fmt.n_planes) ||
            fmt.n_planes == 0 || fmt.n_planes > BB_PLANES_MAX || n != 10 + 2 * fmt.n_planes)
                goto bad;
        for (unsigned i = 0; i < fmt.n_planes; i++)
                if (!parse_u32(f[9 + 2 * i], &fmt.bytesperline[i]) || !parse_u32(f[10 + 2 * i], &fmt.sizeimage[i]))
                        goto bad;
        if (!parse_hex(f[n - 1], path, sizeof(path)) || path[0] != '/')
                goto bad;
        if (rs->n_queues >= RESTORE_QUEUES_MAX || restored_queue(rs, tag))
                goto bad;

        broker_state_queue_fdname(fdname, tag);
        fd = take_fd(rs, fdname);
        if (fd < 0)
                goto bad;
        if (v4l2_queue_adopt(fd, path, &fmt, count, &q) < 0) {
                unstore(rs, fdname);
                safe_close(fd);
                goto bad;
        }
        v4l2_queue_set_tag(q, tag);
        rs->queues[rs->n_queues++] = q;
        return;
bad:
        /* Its fd, if any, is not claimed: it goes with the stale ones. */
        log_warning("cannot restore a V4L2 queue, dropping it and its buffers");
}

/* buffer <id> <uid> <persistent> <frozen> <read-only> <expire> <created> <tag> <index> <planes>
 *        (<length> <bpl> <offset>)... <hex name> */
static void restore_buffer(Restore *rs, char **f, unsigned n) {
        RestoredBuffer rb = {};
        char name[BB_NAME_MAX + 1], fdname[BROKER_STATE_FDNAME_MAX];
        uint64_t tag;
        Buffer *buf;

        for (unsigned i = 0; i < BB_PLANES_MAX; i++)
                rb.planes[i] = (BufferPlane) { .fd = -1, .ro_fd = -1 };

        if (n < 12 || !parse_u64(f[1], &rb.id) || !parse_uid(f[2], &rb.owner) ||
            !parse_flag(f[3], &rb.persistent) || !parse_flag(f[4], &rb.frozen) || !parse_flag(f[5], &rb.read_only) ||
            !parse_u64(f[6], &rb.expire_usec) || !parse_u64(f[7], &rb.created_usec) || !parse_u64(f[8], &tag) ||
            !parse_u32(f[9], &rb.v4l2_index) || !parse_u32(f[10], &rb.n_planes) ||
            rb.n_planes == 0 || rb.n_planes > BB_PLANES_MAX || n != 12 + 3 * rb.n_planes)
                goto drop;
        for (unsigned i = 0; i < rb.n_planes; i++)
                if (!parse_u64(f[11 + 3 * i], &rb.planes[i].length) ||
                    !parse_u32(f[12 + 3 * i], &rb.planes[i].bytesperline) ||
                    !parse_u32(f[13 + 3 * i], &rb.planes[i].offset))
                        goto drop;
        if (!parse_hex(f[n - 1], name, sizeof(name)))
                goto drop;
        rb.name = name;

        if (tag != 0) {
                rb.queue = restored_queue(rs, tag);
                if (!rb.queue)
                        goto drop;
        }
        for (unsigned i = 0; i < rb.n_planes; i++) {
                broker_state_plane_fdname(fdname, rb.id, i, false);
                rb.planes[i].fd = take_fd(rs, fdname);
                if (rb.planes[i].fd < 0)
                        goto drop;
                if (rb.queue && !rb.read_only) {
                        broker_state_plane_fdname(fdname, rb.id, i, true);
                        rb.planes[i].ro_fd = take_fd(rs, fdname);
                        if (rb.planes[i].ro_fd < 0)
                                goto drop;
                }
        }
        if (broker_restore_buffer(rs->b, &rb, &buf) >= 0)
                return;
drop:
        log_warning("cannot restore buffer %" PRIu64 ", dropping it", rb.id);
        for (unsigned i = 0; i < BB_PLANES_MAX; i++) {
                if (rb.planes[i].fd >= 0 || rb.planes[i].ro_fd >= 0) {
                        broker_state_plane_fdname(fdname, rb.id, i, false);
                        unstore(rs, fdname);
                        broker_state_plane_fdname(fdname, rb.id, i, true);
                        unstore(rs, fdname);
                }
                safe_close(rb.planes[i].fd);
                safe_close(rb.planes[i].ro_fd);
        }
}

/* hold <buffer-id> <uid> <unique-name> */
static void restore_hold(Restore *rs, char **f, unsigned n) {
        Caller holder = {};
        uint64_t id;
        Buffer *buf;

        if (n != 4 || !parse_u64(f[1], &id) || !parse_uid(f[2], &holder.uid) ||
            f[3][0] != ':' || strlen(f[3]) > UNIQUE_NAME_MAX)
                return;
        buf = broker_find_buffer(rs->b, id);
        holder.name = f[3];
        /* A holder that left while we were down has let go. */
        if (buf && rs->src->on_bus && rs->src->on_bus(holder.name, rs->src->userdata))
                (void) broker_restore_hold(rs->b, buf, &holder);
}

/* token <buffer-id> <token> <owner-uid> <bound-uid> <read-only> <single-use> <expire-usec> */
static void restore_token(Restore *rs, char **f, unsigned n) {
        ShareOptions opts = {};
        uint64_t id, expire;
        uid_t owner;
        Buffer *buf;

        if (n != 8 || !parse_u64(f[1], &id) || !parse_uid(f[3], &owner) || !parse_uid(f[4], &opts.bound_uid) ||
            !parse_flag(f[5], &opts.read_only) || !parse_flag(f[6], &opts.single_use) || !parse_u64(f[7], &expire))
                return;
        buf = broker_find_buffer(rs->b, id);
        if (buf)
                (void) broker_restore_token(rs->b, buf, f[2], owner, &opts, expire);
}

/* One line; -EPROTO stops the restore. */
static int restore_line(Restore *rs, char *line, bool first) {
        char *f[FIELDS_MAX];
        unsigned n = split(line, f);
        uint32_t version;

        /* The first line says what follows; a format we do not know is not
         * guessed at: the whole state is dropped. */
        if (first) {
                if (n != 3 || strcmp(f[0], "bufbroker-state") != 0 || !parse_u32(f[1], &version) ||
                    version != BROKER_STATE_VERSION || !parse_u64(f[2], &rs->next_id)) {
                        log_warning("the saved state has an unknown format, dropping it");
                        return -EPROTO;
                }
                return 0;
        }

        if (n == 0 || n > FIELDS_MAX)
                return 0;
        if (strcmp(f[0], "queue") == 0)
                restore_queue(rs, f, n);
        else if (strcmp(f[0], "buffer") == 0)
                restore_buffer(rs, f, n);
        else if (strcmp(f[0], "hold") == 0)
                restore_hold(rs, f, n);
        else if (strcmp(f[0], "token") == 0)
                restore_token(rs, f, n);
        return 0;
}

static int restore_lines(Restore *rs, FILE *f) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        bool first = true;
        ssize_t len;
        int r;

        while ((len = getline(&line, &size, f)) > 0) {
                if (len > LINE_MAX_STATE) {
                        if (first) {
                                log_warning("the saved state has an unknown format, dropping it");
                                return -EPROTO;
                        }
                        log_warning("dropping a line of the saved state of %zd bytes", len);
                        continue;
                }
                r = restore_line(rs, line, first);
                if (r < 0)
                        return r;
                first = false;
        }
        return 0;
}

int broker_state_read(Broker *b, FILE *f, const BrokerStateSource *src) {
        Restore rs = { .b = b, .src = src, .next_id = 1 };
        uint64_t restored;
        int r = 0;

        if (f) {
                rewind(f);
                r = restore_lines(&rs, f);
        }
        if (r < 0)
                rs.next_id = 1;

        /* Whatever the state did not claim is stale: drop it from the store. */
        for (unsigned i = 0; i < src->n_fds; i++)
                if (src->fds[i] >= 0) {
                        unstore(&rs, src->fd_names ? src->fd_names[i] : "");
                        src->fds[i] = safe_close(src->fds[i]);
                }

        /* Our references to the queues go before the buffers are looked at:
         * a queue whose buffers all go then goes with the last of them. */
        for (unsigned i = 0; i < rs.n_queues; i++) {
                if (v4l2_queue_is_last_ref(rs.queues[i])) {
                        char name[BROKER_STATE_FDNAME_MAX];

                        broker_state_queue_fdname(name, v4l2_queue_get_tag(rs.queues[i]));
                        unstore(&rs, name);
                }
                v4l2_queue_unref(rs.queues[i]);
        }

        restored = b->stats.buffers;
        broker_restore_done(b, rs.next_id);
        log_info("restored %" PRIu64 " buffers from the file descriptor store, "
                 "%" PRIu64 " still held or persistent", restored, b->stats.buffers);
        return r;
}
