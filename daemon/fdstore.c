/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The state file is text, one record a line, so that it can be read with
 * `cat` when debugging a restart:
 *
 *   bufbroker-state 2 <next-id>
 *   queue <tag> <type> <width> <height> <fourcc> <field> <count> <planes> (<bytesperline> <sizeimage>)... <hex path>
 *   buffer <id> <owner-uid> <persistent> <frozen> <read-only> <expire-usec> <created-usec> <queue-tag> <index>
 *          <planes> (<length> <bytesperline> <offset>)... <hex name>
 *   hold <buffer-id> <uid> <unique-name>
 *   token <buffer-id> <token> <owner-uid> <bound-uid> <read-only> <single-use> <expire-usec>
 *
 * Stored fds: "state", "buf-<id>-<plane>" (and "-ro" for V4L2's read-only
 * exports), and for V4L2 "queue-<tag>", the device fd whose open file owns
 * the buffer queue: keeping it open keeps the queue, so the buffers come
 * back whole. A V4L2 fd that is not streaming polls POLLERR, which makes
 * the store drop it unless it is stored with FDPOLL=0.
 *
 * Deadlines are CLOCK_MONOTONIC, which runs on across a restart of the
 * daemon (not of the machine, and the store does not survive that either).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <systemd/sd-daemon.h>

#include "fdstore.h"
#include "memfd.h"

#define STATE_FDNAME "state"

bool fdstore_enabled(void) {
        const char *e = getenv("NOTIFY_SOCKET");
        return e && *e;
}

static void plane_fdname(char *buf, size_t size, const Buffer *b, unsigned plane, bool ro) {
        snprintf(buf, size, "buf-%" PRIu64 "-%u%s", b->id, plane, ro ? "-ro" : "");
}

static int store_fd(int fd, const char *name, bool poll) {
        char msg[128];
        int r;

        snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s%s", name, poll ? "" : "\nFDPOLL=0");
        r = sd_pid_notify_with_fds(0, false, msg, &fd, 1);
        if (r < 0)
                return log_error_errno(r, "Failed to put an fd into the file descriptor store");
        if (r == 0)
                return log_error_errno(-ENOTCONN, "Failed to put an fd into the file descriptor store");
        return 0;
}

static void unstore_fd(const char *name) {
        char msg[128];

        snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
        (void) sd_notify(false, msg);
}

static void unstore_planes(const Buffer *buf) {
        char name[64];

        for (unsigned i = 0; i < buf->n_planes; i++) {
                plane_fdname(name, sizeof(name), buf, i, false);
                unstore_fd(name);
                if (buf->planes[i].ro_fd >= 0) {
                        plane_fdname(name, sizeof(name), buf, i, true);
                        unstore_fd(name);
                }
        }
}

/* A buffer that cannot be kept across a restart is refused: it would be
 * lost then, with nothing to tell its holders. The fd budget (main.c) keeps
 * the store from overflowing, so this means the service manager is gone. */
int fdstore_buffer_added(Manager *m, Buffer *buf) {
        bool new_queue = false;
        char name[64];
        int r;

        if (!m->fdstore || m->restoring)
                return 0;

        if (buf->queue && v4l2_queue_get_tag(buf->queue) == 0) {
                /* The first buffer of a queue names it. */
                snprintf(name, sizeof(name), "queue-%" PRIu64, buf->id);
                r = store_fd(v4l2_queue_fd(buf->queue), name, false);
                if (r < 0)
                        return r;
                v4l2_queue_set_tag(buf->queue, buf->id);
                new_queue = true;
        }

        for (unsigned i = 0; i < buf->n_planes; i++) {
                plane_fdname(name, sizeof(name), buf, i, false);
                r = store_fd(buf->planes[i].fd, name, true);
                if (r >= 0 && buf->planes[i].ro_fd >= 0) {
                        plane_fdname(name, sizeof(name), buf, i, true);
                        r = store_fd(buf->planes[i].ro_fd, name, true);
                }
                if (r < 0) {
                        unstore_planes(buf);
                        if (new_queue) {
                                snprintf(name, sizeof(name), "queue-%" PRIu64, buf->id);
                                unstore_fd(name);
                                v4l2_queue_set_tag(buf->queue, 0);
                        }
                        return r;
                }
        }
        return 0;
}

void fdstore_buffer_dropped(Manager *m, Buffer *buf) {
        char name[64];

        if (!m->fdstore)
                return;

        unstore_planes(buf);
        /* The queue's last buffer: let the device go, or it stays busy. */
        if (buf->queue && v4l2_queue_is_last_ref(buf->queue)) {
                snprintf(name, sizeof(name), "queue-%" PRIu64, v4l2_queue_get_tag(buf->queue));
                unstore_fd(name);
        }
}

static void write_hex(FILE *f, const char *s) {
        if (!*s)
                fputc('-', f);
        for (; *s; s++)
                fprintf(f, "%02x", (unsigned char) *s);
}

static int serialize(Broker *b, FILE *f) {
        const V4L2Queue *last_queue = NULL;
        Buffer *buf;
        Token *t;
        Hold *h;

        fprintf(f, "bufbroker-state 2 %" PRIu64 "\n", b->next_id);
        BROKER_FOREACH_BUFFER(buf, b) {
                /* A queue's buffers have consecutive ids: one queue line
                 * before the first of them. */
                if (buf->queue && buf->queue != last_queue) {
                        const V4L2Format *fmt = v4l2_queue_format(buf->queue);

                        fprintf(f, "queue %" PRIu64 " %u %u %u %u %u %u %u", v4l2_queue_get_tag(buf->queue),
                                fmt->type, fmt->width, fmt->height, fmt->fourcc, fmt->field,
                                v4l2_queue_count(buf->queue), fmt->n_planes);
                        for (unsigned i = 0; i < fmt->n_planes; i++)
                                fprintf(f, " %u %u", fmt->bytesperline[i], fmt->sizeimage[i]);
                        fputc(' ', f);
                        write_hex(f, v4l2_queue_device(buf->queue));
                        fputc('\n', f);
                        last_queue = buf->queue;
                }

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
        return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}

void fdstore_flush(Manager *m) {
        _cleanup_close_ int fd = -1;
        int copy;
        FILE *f;
        int r;

        if (!m->fdstore || m->broker->generation == m->saved_generation)
                return;

        fd = memfd_create("bufbroker:state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
                log_error("cannot save state: %m");
                return;
        }
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        f = copy >= 0 ? fdopen(copy, "w") : NULL;
        if (!f) {
                log_error("cannot save state: %m");
                safe_close(copy);
                return;
        }
        r = serialize(m->broker, f);
        fclose(f);
        if (r < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
                log_error("cannot save state");
                return;
        }

        /* Replace, not add: the store keeps every fd given under a name. */
        (void) sd_notify(false, "FDSTOREREMOVE=1\nFDNAME=" STATE_FDNAME);
        r = sd_pid_notify_with_fds(0, false, "FDSTORE=1\nFDNAME=" STATE_FDNAME, &fd, 1);
        if (r < 0)
                log_error_errno(r, "cannot store state");
        else
                m->saved_generation = m->broker->generation;
}

/* ---------------------------------------------------------- restore --- */

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

/* The unique names on the bus now, sorted: one ListNames for all holders.
 * Our NameOwnerChanged match is in place already, so a holder that leaves
 * after this answer is seen leaving. */
static int list_names(Manager *m, char ***ret, size_t *ret_n) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char **names = NULL;
        size_t n = 0, allocated = 0;
        const char *name;
        int r;

        r = sd_bus_call_method(m->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "ListNames", NULL, &reply, "");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "s");
        while (r >= 0 && (r = sd_bus_message_read(reply, "s", &name)) > 0) {
                if (name[0] != ':')
                        continue;
                if (n == allocated) {
                        char **p = realloc(names, (allocated = allocated ? 2 * allocated : 64) * sizeof(char *));
                        if (!p) {
                                r = -ENOMEM;
                                break;
                        }
                        names = p;
                }
                names[n] = strdup(name);
                if (!names[n]) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        if (r < 0) {
                while (n > 0)
                        free(names[--n]);
                free(names);
                return r;
        }
        qsort(names, n, sizeof(char *), compare_strings);
        *ret = names;
        *ret_n = n;
        return 0;
}

static int unhex(const char *s, char *out, size_t size) {
        size_t n = 0;

        if (strcmp(s, "-") == 0) {
                out[0] = 0;
                return 0;
        }
        for (; s[0] && s[1]; s += 2) {
                unsigned v;
                if (n + 1 >= size || sscanf(s, "%2x", &v) != 1)
                        return -EINVAL;
                out[n++] = (char) v;
        }
        if (*s)
                return -EINVAL;
        out[n] = 0;
        return 0;
}

static int take_fd(int *fds, char **names, unsigned n, const char *name) {
        for (unsigned i = 0; i < n; i++)
                if (fds[i] >= 0 && strcmp(names[i], name) == 0)
                        return TAKE_FD(fds[i]);
        return -1;
}

#define RESTORE_QUEUES_MAX 256

typedef struct Restore {
        Manager *m;
        bool header_seen;
        char **names_on_bus;            /* sorted */
        size_t n_names_on_bus;
        int *fds;
        char **names;
        unsigned n_fds;
        uint64_t next_id;
        unsigned n_queues;
        V4L2Queue *queues[RESTORE_QUEUES_MAX];
} Restore;

static V4L2Queue *restored_queue(Restore *rs, uint64_t tag) {
        for (unsigned i = 0; i < rs->n_queues; i++)
                if (v4l2_queue_get_tag(rs->queues[i]) == tag)
                        return rs->queues[i];
        return NULL;
}

static void restore_queue(Restore *rs, const char *line) {
        char hexpath[2 * PATH_MAX + 2], path[PATH_MAX + 1], fdname[64];
        V4L2Format fmt = {};
        unsigned count;
        V4L2Queue *q;
        uint64_t tag;
        int pos, fd;
        const char *p;

        if (rs->n_queues >= RESTORE_QUEUES_MAX ||
            sscanf(line, "%*s %" SCNu64 " %u %u %u %u %u %u %u%n", &tag, &fmt.type, &fmt.width, &fmt.height,
                   &fmt.fourcc, &fmt.field, &count, &fmt.n_planes, &pos) != 8 ||
            fmt.n_planes == 0 || fmt.n_planes > BB_PLANES_MAX)
                return;
        p = line + pos;
        for (unsigned i = 0; i < fmt.n_planes; i++) {
                int used;
                if (sscanf(p, " %u %u%n", &fmt.bytesperline[i], &fmt.sizeimage[i], &used) != 2)
                        return;
                p += used;
        }
        if (sscanf(p, " %8193s", hexpath) != 1 || unhex(hexpath, path, sizeof(path)) < 0)
                return;

        snprintf(fdname, sizeof(fdname), "queue-%" PRIu64, tag);
        fd = take_fd(rs->fds, rs->names, rs->n_fds, fdname);
        if (fd < 0)
                return;
        if (v4l2_queue_adopt(fd, path, &fmt, count, &q) < 0) {
                unstore_fd(fdname);
                safe_close(fd);
                return;
        }
        v4l2_queue_set_tag(q, tag);
        rs->queues[rs->n_queues++] = q;
}

static void restore_buffer(Restore *rs, const char *line) {
        RestoredBuffer rb = {};
        char hexname[2 * BB_NAME_MAX + 2], name[BB_NAME_MAX + 1], fdname[64];
        unsigned uid;
        int persistent, frozen, read_only, pos;
        uint64_t tag;
        const char *p;
        Buffer *buf;

        for (unsigned i = 0; i < BB_PLANES_MAX; i++)
                rb.planes[i] = (BufferPlane) { .fd = -1, .ro_fd = -1 };

        if (sscanf(line, "%*s %" SCNu64 " %u %d %d %d %" SCNu64 " %" SCNu64 " %" SCNu64 " %u %u%n",
                   &rb.id, &uid, &persistent, &frozen, &read_only, &rb.expire_usec, &rb.created_usec,
                   &tag, &rb.v4l2_index, &rb.n_planes, &pos) != 10 ||
            rb.n_planes == 0 || rb.n_planes > BB_PLANES_MAX)
                goto drop;
        rb.owner = (uid_t) uid;
        rb.persistent = persistent;
        rb.frozen = frozen;
        rb.read_only = read_only;
        p = line + pos;
        for (unsigned i = 0; i < rb.n_planes; i++) {
                int used;
                if (sscanf(p, " %" SCNu64 " %u %u%n", &rb.planes[i].length, &rb.planes[i].bytesperline,
                           &rb.planes[i].offset, &used) != 3)
                        goto drop;
                p += used;
        }
        if (sscanf(p, " %511s", hexname) != 1 || unhex(hexname, name, sizeof(name)) < 0)
                goto drop;
        rb.name = name;

        if (tag != 0) {
                rb.queue = restored_queue(rs, tag);
                if (!rb.queue)
                        goto drop;
        }
        for (unsigned i = 0; i < rb.n_planes; i++) {
                snprintf(fdname, sizeof(fdname), "buf-%" PRIu64 "-%u", rb.id, i);
                rb.planes[i].fd = take_fd(rs->fds, rs->names, rs->n_fds, fdname);
                if (rb.planes[i].fd < 0)
                        goto drop;
                if (rb.queue && !rb.read_only) {
                        snprintf(fdname, sizeof(fdname), "buf-%" PRIu64 "-%u-ro", rb.id, i);
                        rb.planes[i].ro_fd = take_fd(rs->fds, rs->names, rs->n_fds, fdname);
                        if (rb.planes[i].ro_fd < 0)
                                goto drop;
                }
        }
        if (broker_restore_buffer(rs->m->broker, &rb, &buf) >= 0)
                return;
drop:
        log_warning("cannot restore buffer %" PRIu64 ", dropping it", rb.id);
        for (unsigned i = 0; i < BB_PLANES_MAX; i++) {
                if (rb.planes[i].fd >= 0 || rb.planes[i].ro_fd >= 0) {
                        snprintf(fdname, sizeof(fdname), "buf-%" PRIu64 "-%u", rb.id, i);
                        unstore_fd(fdname);
                        snprintf(fdname, sizeof(fdname), "buf-%" PRIu64 "-%u-ro", rb.id, i);
                        unstore_fd(fdname);
                }
                safe_close(rb.planes[i].fd);
                safe_close(rb.planes[i].ro_fd);
        }
}

static int restore_line(Restore *rs, const char *line) {
        Broker *b = rs->m->broker;
        char word[16], token[BB_TOKEN_LEN + 2], unique[256];
        unsigned uid, uid2, version;
        int ro, single;
        uint64_t id, expire;
        Buffer *buf;

        if (sscanf(line, "%15s", word) != 1)
                return -EINVAL;

        /* The first line says what follows; a format we do not know is not
         * guessed at: the whole state is dropped. */
        if (!rs->header_seen) {
                if (strcmp(word, "bufbroker-state") != 0 ||
                    sscanf(line, "%*s %u %" SCNu64, &version, &id) != 2 || version != 2) {
                        log_warning("the saved state has an unknown format, dropping it");
                        return -EPROTO;
                }
                rs->next_id = id;
                rs->header_seen = true;
                return 0;
        }

        if (strcmp(word, "queue") == 0)
                restore_queue(rs, line);
        else if (strcmp(word, "buffer") == 0)
                restore_buffer(rs, line);
        else if (strcmp(word, "hold") == 0) {
                if (sscanf(line, "%*s %" SCNu64 " %u %255s", &id, &uid, unique) != 3)
                        return 0;
                buf = broker_find_buffer(b, id);
                /* A holder that left while we were down has let go. */
                if (buf && unique[0] == ':' &&
                    bsearch(&(const char *) { unique }, rs->names_on_bus, rs->n_names_on_bus, sizeof(char *),
                            compare_strings))
                        (void) broker_restore_hold(b, buf, &(Caller) { .name = unique, .uid = (uid_t) uid });
        } else if (strcmp(word, "token") == 0) {
                ShareOptions opts = {};

                if (sscanf(line, "%*s %" SCNu64 " %33s %u %u %d %d %" SCNu64,
                           &id, token, &uid, &uid2, &ro, &single, &expire) != 7)
                        return 0;
                buf = broker_find_buffer(b, id);
                opts.bound_uid = (uid_t) uid2;
                opts.read_only = ro;
                opts.single_use = single;
                if (buf)
                        (void) broker_restore_token(b, buf, token, (uid_t) uid, &opts, expire);
        }
        return 0;
}

int fdstore_restore(Manager *m) {
        Restore rs = { .m = m, .next_id = 1 };
        uint64_t restored;
        char *line = NULL;
        size_t len = 0;
        int n, r, state = -1;
        FILE *f;

        n = sd_listen_fds_with_names(true, &rs.names);
        if (n <= 0)
                return n;

        rs.n_fds = (unsigned) n;
        rs.fds = calloc(n, sizeof(int));
        if (!rs.fds) {
                for (int i = 0; i < n; i++)
                        close(SD_LISTEN_FDS_START + i);
                strv_free_simple(rs.names);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                rs.fds[i] = SD_LISTEN_FDS_START + i;
                if (rs.names && strcmp(rs.names[i], STATE_FDNAME) == 0 && state < 0)
                        state = TAKE_FD(rs.fds[i]);
        }

        if (state >= 0) {
                r = list_names(m, &rs.names_on_bus, &rs.n_names_on_bus);
                if (r < 0)
                        log_warning_errno(r, "Cannot list the connections on the bus; holders are not restored");
                m->restoring = true;
                f = fdopen(state, "r");
                if (f) {
                        rewind(f);
                        while (getline(&line, &len, f) > 0)
                                if (restore_line(&rs, line) < 0)
                                        break;
                        fclose(f);
                } else
                        safe_close(state);
                m->restoring = false;
                free(line);
                for (size_t i = 0; i < rs.n_names_on_bus; i++)
                        free(rs.names_on_bus[i]);
                free(rs.names_on_bus);
        }

        /* Whatever the state did not claim is stale: drop it from the store. */
        for (unsigned i = 0; i < rs.n_fds; i++)
                if (rs.fds[i] >= 0) {
                        unstore_fd(rs.names ? rs.names[i] : "");
                        safe_close(rs.fds[i]);
                }

        /* Our references to the queues go before the buffers are looked at:
         * a queue whose buffers all go then goes with the last of them. */
        for (unsigned i = 0; i < rs.n_queues; i++) {
                if (v4l2_queue_is_last_ref(rs.queues[i])) {
                        char name[64];
                        snprintf(name, sizeof(name), "queue-%" PRIu64, v4l2_queue_get_tag(rs.queues[i]));
                        unstore_fd(name);
                }
                v4l2_queue_unref(rs.queues[i]);
        }

        restored = m->broker->stats.buffers;
        broker_restore_done(m->broker, rs.next_id);
        log_info("restored %" PRIu64 " buffers from the file descriptor store, "
                "%" PRIu64 " still held or persistent", restored, m->broker->stats.buffers);

        free(rs.fds);
        strv_free_simple(rs.names);
        return 0;
}
