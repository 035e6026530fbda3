/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The systemd side of keeping buffers across a restart: FDSTORE=1 and
 * FDSTOREREMOVE=1 as buffers come and go, the state text (broker-state.c
 * writes and reads it) in a sealed memfd stored as "state", and on start
 * LISTEN_FDS and the unique names on the bus handed to the core.
 *
 * A V4L2 device fd that is not streaming polls POLLERR, which makes the
 * store drop it unless it is stored with FDPOLL=0.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <systemd/sd-daemon.h>

#include "broker-state.h"
#include "fdstore.h"

#define STATE_FDNAME "state"

bool fdstore_enabled(void) {
        const char *e = getenv("NOTIFY_SOCKET");
        return e && *e;
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
        char name[BROKER_STATE_FDNAME_MAX];

        for (unsigned i = 0; i < buf->n_planes; i++) {
                broker_state_plane_fdname(name, buf->id, i, false);
                unstore_fd(name);
                if (buf->planes[i].ro_fd >= 0) {
                        broker_state_plane_fdname(name, buf->id, i, true);
                        unstore_fd(name);
                }
        }
}

/* A buffer that cannot be kept across a restart is refused: it would be
 * lost then, with nothing to tell its holders. The fd budget (main.c) keeps
 * the store from overflowing, so this means the service manager is gone. */
int fdstore_buffer_added(Manager *m, Buffer *buf) {
        char name[BROKER_STATE_FDNAME_MAX];
        bool new_queue = false;
        int r;

        if (!m->fdstore)
                return 0;

        if (buf->queue && v4l2_queue_get_tag(buf->queue) == 0) {
                /* The first buffer of a queue names it. */
                broker_state_queue_fdname(name, buf->id);
                r = store_fd(v4l2_queue_fd(buf->queue), name, false);
                if (r < 0)
                        return r;
                v4l2_queue_set_tag(buf->queue, buf->id);
                new_queue = true;
        }

        for (unsigned i = 0; i < buf->n_planes; i++) {
                broker_state_plane_fdname(name, buf->id, i, false);
                r = store_fd(buf->planes[i].fd, name, true);
                if (r >= 0 && buf->planes[i].ro_fd >= 0) {
                        broker_state_plane_fdname(name, buf->id, i, true);
                        r = store_fd(buf->planes[i].ro_fd, name, true);
                }
                if (r < 0) {
                        unstore_planes(buf);
                        if (new_queue) {
                                broker_state_queue_fdname(name, buf->id);
                                unstore_fd(name);
                                v4l2_queue_set_tag(buf->queue, 0);
                        }
                        return r;
                }
        }
        return 0;
}

void fdstore_buffer_dropped(Manager *m, Buffer *buf) {
        char name[BROKER_STATE_FDNAME_MAX];

        if (!m->fdstore)
                return;

        unstore_planes(buf);
        /* The queue's last buffer: let the device go, or it stays busy. */
        if (buf->queue && v4l2_queue_is_last_ref(buf->queue)) {
                broker_state_queue_fdname(name, v4l2_queue_get_tag(buf->queue));
                unstore_fd(name);
        }
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
        r = broker_state_write(m->broker, f);
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

typedef struct NameList {
        char **names;                   /* sorted */
        size_t n;
} NameList;

static bool on_bus(const char *name, void *userdata) {
        const NameList *list = userdata;

        return bsearch(&name, list->names, list->n, sizeof(char *), compare_strings);
}

static void unstore(const char *fdname, void *userdata) {
        unstore_fd(fdname);
}

int fdstore_restore(Manager *m) {
        NameList on_the_bus = {};
        _cleanup_free_ int *fds = NULL;
        char **fd_names = NULL;
        FILE *f = NULL;
        int n, r, state = -1;

        n = sd_listen_fds_with_names(true, &fd_names);
        if (n <= 0)
                return n;

        fds = calloc(n, sizeof(int));
        if (!fds) {
                for (int i = 0; i < n; i++)
                        close(SD_LISTEN_FDS_START + i);
                strv_free_simple(fd_names);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                fds[i] = SD_LISTEN_FDS_START + i;
                if (fd_names && strcmp(fd_names[i], STATE_FDNAME) == 0 && state < 0)
                        state = TAKE_FD(fds[i]);
        }

        if (state >= 0) {
                r = list_names(m, &on_the_bus.names, &on_the_bus.n);
                if (r < 0)
                        log_warning_errno(r, "Cannot list the connections on the bus; holders are not restored");
                f = fdopen(state, "r");
                if (!f)
                        safe_close(state);
        }

        (void) broker_state_read(m->broker, f, &(BrokerStateSource) {
                .fds = fds,
                .fd_names = fd_names,
                .n_fds = (unsigned) n,
                .on_bus = on_bus,
                .unstore = unstore,
                .userdata = &on_the_bus,
        });

        if (f)
                fclose(f);
        for (size_t i = 0; i < on_the_bus.n; i++)
                free(on_the_bus.names[i]);
        free(on_the_bus.names);
        strv_free_simple(fd_names);
        return 0;
}
