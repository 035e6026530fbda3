/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The state file is text, one record a line, so that it can be read with
 * `cat` when debugging a restart:
 *
 *   bufbroker-state 1 <next-id>
 *   buffer <id> <owner-uid> <persistent> <frozen> <expire-usec> <created-usec> <planes> <length>... <hex name>
 *   hold <buffer-id> <uid> <unique-name>
 *   token <buffer-id> <token> <owner-uid> <bound-uid> <read-only> <single-use> <expire-usec>
 *
 * Deadlines are CLOCK_MONOTONIC, which runs on across a restart of the
 * daemon (not of the machine, and the store does not survive that either).
 */
#include <fcntl.h>
#include <inttypes.h>
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

static void plane_fdname(char *buf, size_t size, const Buffer *b, unsigned plane) {
        snprintf(buf, size, "buf-%" PRIu64 "-%u", b->id, plane);
}

void fdstore_buffer_added(Manager *m, Buffer *buf) {
        char msg[128], name[64];
        int r;

        if (!m->fdstore || buf->queue)
                return;

        for (unsigned i = 0; i < buf->n_planes; i++) {
                plane_fdname(name, sizeof(name), buf, i);
                snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
                r = sd_pid_notify_with_fds(0, false, msg, &buf->planes[i].fd, 1);
                if (r < 0)
                        fprintf(stderr, "bufbrokerd: failed to store %s: %s\n", name, strerror(-r));
        }
}

void fdstore_buffer_dropped(Manager *m, Buffer *buf) {
        char msg[128], name[64];

        if (!m->fdstore || buf->queue)
                return;

        for (unsigned i = 0; i < buf->n_planes; i++) {
                plane_fdname(name, sizeof(name), buf, i);
                snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
                (void) sd_notify(false, msg);
        }
}

static void write_hex(FILE *f, const char *s) {
        if (!*s)
                fputc('-', f);
        for (; *s; s++)
                fprintf(f, "%02x", (unsigned char) *s);
}

static int serialize(Broker *b, FILE *f) {
        Buffer *buf;
        Token *t;
        Hold *h;

        fprintf(f, "bufbroker-state 1 %" PRIu64 "\n", b->next_id);
        BROKER_FOREACH_BUFFER(buf, b) {
                if (buf->queue)
                        continue;
                fprintf(f, "buffer %" PRIu64 " %u %d %d %" PRIu64 " %" PRIu64 " %u",
                        buf->id, (unsigned) buf->owner_uid, buf->persistent, buf->frozen,
                        buf->expire_usec, buf->created_usec, buf->n_planes);
                for (unsigned i = 0; i < buf->n_planes; i++)
                        fprintf(f, " %" PRIu64, buf->planes[i].length);
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
        FILE *f;
        int r;

        if (!m->fdstore || m->broker->generation == m->saved_generation)
                return;

        fd = memfd_create("bufbroker:state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
                fprintf(stderr, "bufbrokerd: cannot save state: %m\n");
                return;
        }
        f = fdopen(fcntl(fd, F_DUPFD_CLOEXEC, 3), "w");
        if (!f) {
                fprintf(stderr, "bufbrokerd: cannot save state: %m\n");
                return;
        }
        r = serialize(m->broker, f);
        fclose(f);
        if (r < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
                fprintf(stderr, "bufbrokerd: cannot save state\n");
                return;
        }

        /* Replace, not add: the store keeps every fd given under a name. */
        (void) sd_notify(false, "FDSTOREREMOVE=1\nFDNAME=" STATE_FDNAME);
        r = sd_pid_notify_with_fds(0, false, "FDSTORE=1\nFDNAME=" STATE_FDNAME, &fd, 1);
        if (r < 0)
                fprintf(stderr, "bufbrokerd: cannot store state: %s\n", strerror(-r));
        else
                m->saved_generation = m->broker->generation;
}

/* ---------------------------------------------------------- restore --- */

static bool name_has_owner(Manager *m, const char *name) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has = 0;

        if (sd_bus_call_method(m->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "NameHasOwner", NULL, &reply, "s", name) < 0)
                return false;
        if (sd_bus_message_read(reply, "b", &has) < 0)
                return false;
        return has;
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

static void restore_line(Manager *m, char *line, int *fds, char **names, unsigned n, uint64_t *next_id) {
        Broker *b = m->broker;
        char word[16], name[2 * BB_NAME_MAX + 2], token[BB_TOKEN_LEN + 2], unique[256];
        unsigned uid, uid2, n_planes;
        int persistent, frozen, ro, single;
        uint64_t id, expire, created;
        Buffer *buf;
        int pos = 0;

        if (sscanf(line, "%15s", word) != 1)
                return;

        if (strcmp(word, "bufbroker-state") == 0) {
                unsigned version;
                if (sscanf(line, "%*s %u %" SCNu64, &version, next_id) != 2 || version != 1)
                        fprintf(stderr, "bufbrokerd: unknown state format, starting empty\n");
                return;
        }

        if (strcmp(word, "buffer") == 0) {
                BufferPlane planes[BUFFER_PLANES_MAX];
                char fdname[64], decoded[BB_NAME_MAX + 1];
                char *p;

                if (sscanf(line, "%*s %" SCNu64 " %u %d %d %" SCNu64 " %" SCNu64 " %u%n",
                           &id, &uid, &persistent, &frozen, &expire, &created, &n_planes, &pos) != 7 ||
                    n_planes == 0 || n_planes > BUFFER_PLANES_MAX)
                        return;
                p = line + pos;
                for (unsigned i = 0; i < n_planes; i++) {
                        int used;
                        planes[i] = (BufferPlane) { .fd = -1, .ro_fd = -1 };
                        if (sscanf(p, " %" SCNu64 "%n", &planes[i].length, &used) != 1)
                                goto drop;
                        p += used;
                }
                if (sscanf(p, " %511s", name) != 1 || unhex(name, decoded, sizeof(decoded)) < 0)
                        goto drop;
                for (unsigned i = 0; i < n_planes; i++) {
                        snprintf(fdname, sizeof(fdname), "buf-%" PRIu64 "-%u", id, i);
                        planes[i].fd = take_fd(fds, names, n, fdname);
                        if (planes[i].fd < 0)
                                goto drop;
                }
                if (broker_restore_buffer(b, id, decoded, (uid_t) uid, persistent, frozen, expire, created,
                                          n_planes, planes, &buf) >= 0)
                        return;
        drop:
                fprintf(stderr, "bufbrokerd: cannot restore buffer %" PRIu64 ", dropping it\n", id);
                for (unsigned i = 0; i < n_planes && i < BUFFER_PLANES_MAX; i++)
                        safe_close(planes[i].fd);
                return;
        }

        if (strcmp(word, "hold") == 0) {
                if (sscanf(line, "%*s %" SCNu64 " %u %255s", &id, &uid, unique) != 3)
                        return;
                buf = broker_find_buffer(b, id);
                /* A holder that left while we were down has let go. */
                if (buf && unique[0] == ':' && name_has_owner(m, unique))
                        (void) broker_restore_hold(b, buf, &(Caller) { .name = unique, .uid = (uid_t) uid });
                return;
        }

        if (strcmp(word, "token") == 0) {
                ShareOptions opts = {};

                if (sscanf(line, "%*s %" SCNu64 " %33s %u %u %d %d %" SCNu64,
                           &id, token, &uid, &uid2, &ro, &single, &expire) != 7)
                        return;
                buf = broker_find_buffer(b, id);
                opts.bound_uid = (uid_t) uid2;
                opts.read_only = ro;
                opts.single_use = single;
                if (buf)
                        (void) broker_restore_token(b, buf, token, (uid_t) uid, &opts, expire);
        }
}

int fdstore_restore(Manager *m) {
        char **names = NULL;
        int n, state = -1;
        uint64_t next_id = 1;
        unsigned restored;
        int *fds;
        FILE *f;
        char *line = NULL;
        size_t len = 0;

        n = sd_listen_fds_with_names(true, &names);
        if (n <= 0)
                return n;

        fds = calloc(n, sizeof(int));
        if (!fds) {
                for (int i = 0; i < n; i++)
                        close(SD_LISTEN_FDS_START + i);
                strv_free_simple(names);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                fds[i] = SD_LISTEN_FDS_START + i;
                if (names && names[i] && strcmp(names[i], STATE_FDNAME) == 0 && state < 0)
                        state = TAKE_FD(fds[i]);
        }

        if (state >= 0) {
                f = fdopen(state, "r");
                if (f) {
                        rewind(f);
                        while (getline(&line, &len, f) > 0)
                                restore_line(m, line, fds, names, (unsigned) n, &next_id);
                        fclose(f);
                } else
                        safe_close(state);
                free(line);
        }

        /* Whatever the state did not claim is stale: drop it from the store. */
        for (int i = 0; i < n; i++)
                if (fds[i] >= 0) {
                        char msg[128];
                        snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", names ? names[i] : "");
                        (void) sd_notify(false, msg);
                        safe_close(fds[i]);
                }

        restored = (unsigned) m->broker->stats.buffers;
        broker_restore_done(m->broker, next_id);
        fprintf(stderr, "bufbrokerd: restored %u of the buffers kept by systemd, %" PRIu64 " still held or persistent\n",
                restored, m->broker->stats.buffers);

        free(fds);
        strv_free_simple(names);
        return 0;
}
