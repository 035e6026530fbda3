/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The state is text, one record a line, so that it can be read with `cat`
 * when debugging a restart:
 *
 *   bufbroker-state 4 <next-id> <seq>
 *   queue <tag> <type> <width> <height> <fourcc> <field> <count> <planes> (<bytesperline> <sizeimage>)... <hex path>
 *   buffer <id> <owner-uid> <persistent> <frozen> <read-only> <expire-usec> <created-usec> <queue-tag> <index>
 *          <planes> (<length> <bytesperline> <offset>)... <prefaulted> <kind> <handle> <hex name>
 *   hold <buffer-id> <uid> <unique-name>
 *   token <buffer-id> <token> <owner-uid> <bound-uid> <read-only> <single-use> <expire-usec>
 *
 * Numbers are decimal, flags 0 or 1, strings hex ("-" when empty). A queue
 * line comes before the first of its buffers (their ids are consecutive),
 * holds and tokens after their buffer. The journal of changes that follows
 * (broker-state.h) adds "-buffer", "-hold" and "-token" records; reading
 * replays it first, into the snapshot it amounts to, and restores that.
 * <handle> is what names the kernel object besides the fd: a posix
 * buffer's name (hex), a sysv buffer's shmid (which has no fd), or "-".
 * Version 4 is the same without <kind> <handle> (memfd, or v4l2 by the
 * queue tag). Version 3 is also without a buffer's <prefaulted> (0 then: a memfd
 * prefaulted before version 4 is shown as not). Version 2 is the snapshot
 * of version 3 without <seq> and without a journal. A buffer's page size is
 * not kept: it is its file's block size (a hugetlbfs file's is its huge
 * page size).
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
 * dropped whole, with the fds it names. A journal record that names nothing
 * (a deletion of what is not there) or is of a kind we do not know is
 * skipped, as an unknown line is; a record adding what is there replaces it.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void write_buffer_line(FILE *f, const Buffer *buf) {
        fprintf(f, "buffer %" PRIu64 " %u %d %d %d %" PRIu64 " %" PRIu64 " %" PRIu64 " %u %u",
                buf->id, (unsigned) buf->owner_uid, buf->persistent, buf->frozen, buf->read_only,
                buf->expire_usec, buf->created_usec,
                buf->queue ? v4l2_queue_get_tag(buf->queue) : 0, buf->v4l2_index, buf->n_planes);
        for (unsigned i = 0; i < buf->n_planes; i++)
                fprintf(f, " %" PRIu64 " %u %u", buf->planes[i].length,
                        buf->planes[i].bytesperline, buf->planes[i].offset);
        fprintf(f, " %d %s ", buf->prefaulted, buf->kind);
        if (buf->shm_name)
                write_hex(f, buf->shm_name);
        else if (buf->shmid >= 0)
                fprintf(f, "%d", buf->shmid);
        else
                fputc('-', f);
        fputc(' ', f);
        write_hex(f, buf->name);
        fputc('\n', f);
}

static void write_hold(FILE *f, const Buffer *buf, const Hold *h) {
        fprintf(f, "hold %" PRIu64 " %u %s\n", buf->id, (unsigned) h->client->uid, h->client->name);
}

static void write_token(FILE *f, const Buffer *buf, const Token *t) {
        fprintf(f, "token %" PRIu64 " %s %u %u %d %d %" PRIu64 "\n", buf->id, t->id,
                (unsigned) t->owner_uid, (unsigned) t->bound_uid, t->read_only, t->single_use,
                t->expire_usec);
}

static void write_buffer(FILE *f, const Buffer *buf) {
        const Token *t;
        const Hold *h;

        write_buffer_line(f, buf);
        TAILQ_FOREACH(h, &buf->holds, by_buffer)
                write_hold(f, buf, h);
        TAILQ_FOREACH(t, &buf->tokens, by_buffer)
                write_token(f, buf, t);
}

int broker_state_write(Broker *b, uint64_t seq, FILE *f) {
        const V4L2Queue *last_queue = NULL;
        Buffer *buf;

        fprintf(f, "bufbroker-state %u %" PRIu64 " %" PRIu64 "\n", BROKER_STATE_VERSION, b->next_id, seq);
        BROKER_FOREACH_BUFFER(buf, b) {
                if (buf->queue && buf->queue != last_queue) {
                        write_queue(f, buf->queue);
                        last_queue = buf->queue;
                }
                write_buffer(f, buf);
        }
        return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}

/* ---------------------------------------------------------- journal --- */

struct BrokerJournal {
        Broker *broker;
        int fd;
        uint64_t seq;
        uint64_t snapshot_size;         /* what the journal started from */
        uint64_t end;                   /* where the next record goes */
        bool broken;                    /* a record was not written: no more */
        FILE *record;                   /* formats a record into record_buf */
        char *record_buf;
        size_t record_size;
};

void broker_state_write_change(const BrokerChange *c, FILE *f) {
        const Buffer *buf = c->buffer;

        switch (c->kind) {
        case BROKER_BUFFER_ADDED:
                /* The first buffer of a V4L2 queue names it (its tag). */
                if (buf->queue && v4l2_queue_get_tag(buf->queue) == buf->id)
                        write_queue(f, buf->queue);
                write_buffer_line(f, buf);
                break;
        case BROKER_BUFFER_CHANGED:
                write_buffer_line(f, buf);
                break;
        case BROKER_BUFFER_DROPPED:
                fprintf(f, "-buffer %" PRIu64 "\n", buf->id);
                break;
        case BROKER_HOLD_ADDED:
                write_hold(f, buf, c->hold);
                break;
        case BROKER_HOLD_DROPPED:
                fprintf(f, "-hold %" PRIu64 " %s\n", buf->id, c->hold->client->name);
                break;
        case BROKER_TOKEN_ADDED:
                write_token(f, buf, c->token);
                break;
        case BROKER_TOKEN_DROPPED:
                fprintf(f, "-token %s\n", c->token->id);
                break;
        }
}

static void journal_append(Broker *b, const BrokerChange *change, void *userdata) {
        BrokerJournal *j = userdata;
        ssize_t n;
        off_t len;

        if (j->broken)
                return;
        rewind(j->record);
        broker_state_write_change(change, j->record);
        len = ftello(j->record);
        if (fflush(j->record) != 0 || ferror(j->record) || len <= 0) {
                log_error("cannot write a record of the state; it is saved whole at the next chance");
                j->broken = true;
                return;
        }
        /* One write at our own offset: a record is there whole, or cut short
         * (no newline) at the end, where reading leaves it. */
        n = pwrite(j->fd, j->record_buf, (size_t) len, (off_t) j->end);
        if (n != len) {
                log_error("cannot append to the saved state (%s); it is saved whole at the next chance",
                          n < 0 ? strerror(errno) : "short write");
                j->broken = true;
                return;
        }
        j->end += (uint64_t) len;
}

int broker_journal_new(Broker *b, int fd, uint64_t seq, uint64_t size, BrokerJournal **ret) {
        BrokerJournal *j;

        if (b->state_changed)
                return -EBUSY;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->record = open_memstream(&j->record_buf, &j->record_size);
        if (!j->record) {
                free(j);
                return -ENOMEM;
        }
        j->broker = b;
        j->fd = fd;
        j->seq = seq;
        j->snapshot_size = size;
        j->end = size;
        b->state_changed = journal_append;
        b->state_changed_userdata = j;
        *ret = j;
        return 0;
}

BrokerJournal *broker_journal_free(BrokerJournal *j) {
        if (!j)
                return NULL;
        if (j->broker->state_changed_userdata == j) {
                j->broker->state_changed = NULL;
                j->broker->state_changed_userdata = NULL;
        }
        fclose(j->record);
        free(j->record_buf);
        free(j);
        return NULL;
}

bool broker_journal_full(const BrokerJournal *j) {
        return j->broken || j->end - j->snapshot_size > j->snapshot_size + BROKER_JOURNAL_SLACK;
}

uint64_t broker_journal_seq(const BrokerJournal *j) {
        return j->seq;
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
        unsigned version;               /* of the state read */
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
 *        (<length> <bpl> <offset>)... <prefaulted> <kind> <handle> <hex name>
 * (versions 2 and 3: no <prefaulted>; 2 to 4: no <kind> <handle>, memfd or
 * v4l2 by the tag). <handle>: a posix name in hex, a sysv shmid, or "-". */
static void restore_buffer(Restore *rs, char **f, unsigned n) {
        RestoredBuffer rb = {};
        char name[BB_NAME_MAX + 1], fdname[BROKER_STATE_FDNAME_MAX], handle[BB_NAME_MAX + 1];
        unsigned extra = rs->version >= 5 ? 3 : rs->version >= 4 ? 1 : 0;
        uint64_t tag;
        Buffer *buf;

        for (unsigned i = 0; i < BB_PLANES_MAX; i++)
                rb.planes[i] = (BufferPlane) { .fd = -1, .ro_fd = -1 };

        if (n < 12 || !parse_u64(f[1], &rb.id) || !parse_uid(f[2], &rb.owner) ||
            !parse_flag(f[3], &rb.persistent) || !parse_flag(f[4], &rb.frozen) || !parse_flag(f[5], &rb.read_only) ||
            !parse_u64(f[6], &rb.expire_usec) || !parse_u64(f[7], &rb.created_usec) || !parse_u64(f[8], &tag) ||
            !parse_u32(f[9], &rb.v4l2_index) || !parse_u32(f[10], &rb.n_planes) ||
            rb.n_planes == 0 || rb.n_planes > BB_PLANES_MAX || n != 12 + extra + 3 * rb.n_planes ||
            (extra && !parse_flag(f[n - 1 - extra], &rb.prefaulted)))
                goto drop;
        if (extra == 3) {
                rb.kind = f[n - 3];
                if (strcmp(f[n - 2], "-") == 0)
                        rb.handle = NULL;
                else if (strcmp(rb.kind, BB_KIND_SYSV) == 0)
                        rb.handle = f[n - 2];
                else if (parse_hex(f[n - 2], handle, sizeof(handle)))
                        rb.handle = handle;
                else
                        goto drop;
        }
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

/* A line of the snapshot. */
static void restore_line(Restore *rs, char *line) {
        char *f[FIELDS_MAX];
        unsigned n = split(line, f);

        if (n == 0 || n > FIELDS_MAX)
                return;
        if (strcmp(f[0], "queue") == 0)
                restore_queue(rs, f, n);
        else if (strcmp(f[0], "buffer") == 0)
                restore_buffer(rs, f, n);
        else if (strcmp(f[0], "hold") == 0)
                restore_hold(rs, f, n);
        else if (strcmp(f[0], "token") == 0)
                restore_token(rs, f, n);
}

/* The first line: 0, -EPROTO (a version we do not know) or -EINVAL (not
 * a state: a version 3 or 4 header also needs its newline, as we write it). */
static int parse_header(char *line, unsigned *ret_version, uint64_t *ret_next_id, uint64_t *ret_seq) {
        size_t len = strlen(line);
        bool whole = len > 0 && line[len - 1] == '\n';
        uint64_t version, next_id, seq = 0;
        char *f[FIELDS_MAX];
        unsigned n = split(line, f);

        if (n < 2 || n > FIELDS_MAX || strcmp(f[0], "bufbroker-state") != 0 || !parse_u64(f[1], &version))
                return -EINVAL;
        if (version == BROKER_STATE_VERSION_SNAPSHOT) {
                if (n != 3 || !parse_u64(f[2], &next_id))
                        return -EINVAL;
        } else if (version >= BROKER_STATE_VERSION_JOURNAL && version <= BROKER_STATE_VERSION) {
                if (!whole || n != 4 || !parse_u64(f[2], &next_id) || !parse_u64(f[3], &seq))
                        return -EINVAL;
        } else
                return -EPROTO;
        *ret_version = (unsigned) version;
        *ret_next_id = next_id;
        *ret_seq = seq;
        return 0;
}

/* Read the first line of @f (rewound). */
static int read_header(FILE *f, unsigned *ret_version, uint64_t *ret_next_id, uint64_t *ret_seq) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        ssize_t len;

        rewind(f);
        len = getline(&line, &size, f);
        if (len <= 0 || len > LINE_MAX_STATE)
                return -EINVAL;
        return parse_header(line, ret_version, ret_next_id, ret_seq);
}

int broker_state_header(FILE *f, unsigned *ret_version, uint64_t *ret_seq) {
        uint64_t next_id;

        return read_header(f, ret_version, &next_id, ret_seq);
}

int broker_state_pick(FILE *const *f, unsigned n) {
        uint64_t seq, best_seq = 0;
        unsigned version;
        int best = -ENOENT;

        for (unsigned i = 0; i < n; i++) {
                int r = broker_state_header(f[i], &version, &seq);

                if (r == -EPROTO) {
                        log_warning("a saved state is of version %u or newer, which this daemon does not know; "
                                    "nothing is restored", BROKER_STATE_VERSION + 1);
                        return r;
                }
                if (r < 0) {
                        log_warning("a saved state is not one (cut short or damaged), ignoring it");
                        continue;
                }
                if (best < 0 || seq > best_seq) {
                        best = (int) i;
                        best_seq = seq;
                }
        }
        return best;
}

/* Version 2: the snapshot, a line at a time. */
static void restore_lines(Restore *rs, FILE *f) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        ssize_t len;

        while ((len = getline(&line, &size, f)) > 0) {
                if (len > LINE_MAX_STATE) {
                        log_warning("dropping a line of the saved state of %zd bytes", len);
                        continue;
                }
                restore_line(rs, line);
        }
}

/* Version 3: the journal is replayed into the snapshot it amounts to,
 * which is then restored as version 2 is. A record is keyed by what it is
 * about; the last one for a key is the one that counts. */
enum { RANK_QUEUE, RANK_BUFFER, RANK_HOLD, RANK_TOKEN };

typedef struct Record {
        unsigned rank;
        uint64_t id;                    /* key: buffer id (queue: tag; token: 0) */
        char *key;                      /* and hold: unique name; token: the token */
        uint64_t buffer;                /* the buffer it goes with */
        uint64_t tag;                   /* buffer: its queue, 0 none */
        size_t order;                   /* when first added */
        char *line;                     /* the record; NULL: deleted */
} Record;

typedef struct Replay {
        void *index;                    /* of the records that are not deleted */
        Record **all;
        size_t n, allocated;
        uint64_t next_id;
} Replay;

static int record_compare(const void *a, const void *b) {
        const Record *x = a, *y = b;

        if (x->rank != y->rank)
                return x->rank < y->rank ? -1 : 1;
        if (x->id != y->id)
                return x->id < y->id ? -1 : 1;
        return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

static int record_order(const void *a, const void *b) {
        const Record *x = *(Record * const *) a, *y = *(Record * const *) b;

        if (x->buffer != y->buffer)
                return x->buffer < y->buffer ? -1 : 1;
        if (x->rank != y->rank)
                return x->rank < y->rank ? -1 : 1;
        return x->order < y->order ? -1 : x->order > y->order;
}

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static int replay_put(Replay *rp, unsigned rank, uint64_t id, const char *key, uint64_t buffer, uint64_t tag,
                      const char *line) {
        Record probe = { .rank = rank, .id = id, .key = (char *) key }, *rec;
        void **found = tfind(&probe, &rp->index, record_compare);
        char *copy = strdup(line);

        if (!copy)
                return -ENOMEM;
        if (found) {
                rec = *found;
                free(rec->line);
                rec->line = copy;
                rec->buffer = buffer;
                rec->tag = tag;
                return 0;
        }
        if (rp->n == rp->allocated) {
                size_t allocated = rp->allocated ? 2 * rp->allocated : 1024;
                Record **all = realloc(rp->all, allocated * sizeof(Record *));

                if (!all) {
                        free(copy);
                        return -ENOMEM;
                }
                rp->all = all;
                rp->allocated = allocated;
        }
        rec = calloc(1, sizeof(*rec));
        if (rec)
                *rec = (Record) { .rank = rank, .id = id, .key = key ? strdup(key) : NULL, .buffer = buffer,
                                  .tag = tag, .order = rp->n, .line = copy };
        if (!rec || (key && !rec->key) || !tsearch(rec, &rp->index, record_compare)) {
                if (rec)
                        free(rec->key);
                free(rec);
                free(copy);
                return -ENOMEM;
        }
        rp->all[rp->n++] = rec;
        return 0;
}

static void replay_delete(Replay *rp, unsigned rank, uint64_t id, const char *key) {
        Record probe = { .rank = rank, .id = id, .key = (char *) key }, *rec;
        void **found = tfind(&probe, &rp->index, record_compare);

        /* Deleting what is not there (a hostile record) changes nothing. */
        if (!found)
                return;
        rec = *found;
        tdelete(&probe, &rp->index, record_compare);
        free(rec->line);
        rec->line = NULL;
}

/* A buffer id the journal names, even one deleted since: ids go on. */
static void replay_saw_id(Replay *rp, uint64_t id) {
        if (id < UINT64_MAX && id + 1 > rp->next_id)
                rp->next_id = id + 1;
}

static int replay_line(Replay *rp, const char *line) {
        _cleanup_free_ char *copy = strdup(line);
        char *f[FIELDS_MAX];
        uint64_t id, tag;
        unsigned n;

        if (!copy)
                return -ENOMEM;
        n = split(copy, f);
        if (n < 2 || n > FIELDS_MAX || !parse_u64(f[1], &id))
                return 0;
        if (strcmp(f[0], "queue") == 0)
                return replay_put(rp, RANK_QUEUE, id, NULL, id, 0, line);
        if (strcmp(f[0], "buffer") == 0 && n >= 9 && parse_u64(f[8], &tag)) {
                replay_saw_id(rp, id);
                return replay_put(rp, RANK_BUFFER, id, NULL, id, tag, line);
        }
        if (strcmp(f[0], "hold") == 0 && n >= 4)
                return replay_put(rp, RANK_HOLD, id, f[3], id, 0, line);
        if (strcmp(f[0], "token") == 0 && n >= 3)
                return replay_put(rp, RANK_TOKEN, 0, f[2], id, 0, line);
        if (strcmp(f[0], "-buffer") == 0 && n == 2) {
                replay_saw_id(rp, id);
                replay_delete(rp, RANK_BUFFER, id, NULL);
        } else if (strcmp(f[0], "-hold") == 0 && n == 3)
                replay_delete(rp, RANK_HOLD, id, f[2]);
        /* Unknown kinds, and records that do not say what they are about,
         * are skipped, as unknown lines of a snapshot are. */
        return 0;
}

/* "-token <token>" has no number to go by. */
static bool replay_token_delete(Replay *rp, const char *line) {
        _cleanup_free_ char *copy = strdup(line);
        char *f[FIELDS_MAX];

        if (!copy || split(copy, f) != 2 || strcmp(f[0], "-token") != 0)
                return false;
        replay_delete(rp, RANK_TOKEN, 0, f[1]);
        return true;
}

/* The records are freed from rp->all. */
static void record_forget(void *p) {
}

/* The snapshot that the replayed records amount to, restored in the order
 * a snapshot is written: a queue, then each of its buffers with its holds
 * and tokens. Holds and tokens of a buffer that is gone, and a queue none
 * of whose buffers is left, are not restored. */
static int replay_restore(Restore *rs, Replay *rp) {
        _cleanup_free_ Record **live = NULL;
        _cleanup_free_ uint64_t *tags = NULL;
        size_t n_live = 0, n_tags = 0;
        bool have_buffer = false;
        uint64_t buffer = 0;

        live = malloc((rp->n + 1) * sizeof(Record *));
        tags = malloc((rp->n + 1) * sizeof(uint64_t));
        if (!live || !tags)
                return -ENOMEM;
        for (size_t i = 0; i < rp->n; i++) {
                if (!rp->all[i]->line)
                        continue;
                live[n_live++] = rp->all[i];
                if (rp->all[i]->rank == RANK_BUFFER && rp->all[i]->tag != 0)
                        tags[n_tags++] = rp->all[i]->tag;
        }
        qsort(live, n_live, sizeof(Record *), record_order);
        qsort(tags, n_tags, sizeof(uint64_t), compare_u64);

        for (size_t i = 0; i < n_live; i++) {
                Record *rec = live[i];

                switch (rec->rank) {
                case RANK_QUEUE:
                        if (bsearch(&rec->buffer, tags, n_tags, sizeof(uint64_t), compare_u64))
                                restore_line(rs, rec->line);
                        break;
                case RANK_BUFFER:
                        restore_line(rs, rec->line);
                        have_buffer = true;
                        buffer = rec->buffer;
                        break;
                default:
                        if (have_buffer && buffer == rec->buffer)
                                restore_line(rs, rec->line);
                }
        }
        return 0;
}

static int replay_journal(Restore *rs, FILE *f) {
        _cleanup_free_ char *line = NULL;
        Replay rp = { .next_id = rs->next_id };
        size_t size = 0;
        ssize_t len;
        int r = 0;

        while ((len = getline(&line, &size, f)) > 0) {
                if (line[len - 1] != '\n') {
                        /* The daemon was killed while appending it. */
                        log_warning("the last record of the saved state was cut short, ignoring it");
                        break;
                }
                if (len > LINE_MAX_STATE) {
                        log_warning("dropping a line of the saved state of %zd bytes", len);
                        continue;
                }
                r = replay_token_delete(&rp, line) ? 0 : replay_line(&rp, line);
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = replay_restore(rs, &rp);
        rs->next_id = rp.next_id;

        tdestroy(rp.index, record_forget);
        for (size_t i = 0; i < rp.n; i++) {
                free(rp.all[i]->key);
                free(rp.all[i]->line);
                free(rp.all[i]);
        }
        free(rp.all);
        return r;
}

int broker_state_read(Broker *b, FILE *f, const BrokerStateSource *src) {
        Restore rs = { .b = b, .src = src, .next_id = 1 };
        uint64_t restored;
        unsigned version = 0;
        uint64_t seq;
        int r = 0;

        if (f) {
                r = read_header(f, &version, &rs.next_id, &seq);
                rs.version = version;
                if (r < 0) {
                        /* A format we do not know is not guessed at: the
                         * whole state is dropped. */
                        log_warning("the saved state has an unknown format, dropping it");
                        r = -EPROTO;
                } else if (version == BROKER_STATE_VERSION_SNAPSHOT)
                        restore_lines(&rs, f);
                else {
                        r = replay_journal(&rs, f);
                        if (r < 0)
                                log_error_errno(r, "cannot read the saved state");
                }
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
