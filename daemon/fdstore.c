/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The systemd side of keeping buffers across a restart: FDSTORE=1 and
 * FDSTOREREMOVE=1 as buffers come and go, the state (broker-state.c writes
 * and reads it, and journals every change into it) in a memfd stored as
 * "state-a" or "state-b", and on start LISTEN_FDS and the unique names on
 * the bus handed to the core.
 *
 * The state is stored once and then appended to; when its journal is full
 * a new snapshot goes into the other name, stored before the old one is
 * removed, so that the store always has a whole state. On start the newest
 * valid one is read ("state", version 2, is read as the oldest), and a new
 * snapshot replaces whatever was there.
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

/* Version 2 kept its state under "state". */
#define STATE_FDNAME_V2 "state"
static const char *const state_fdnames[2] = { "state-a", "state-b" };

/* The state in the store and its journal (one daemon, one manager). */
static BrokerJournal *journal;
static int journal_fd = -1;
static int journal_slot = -1;           /* its name; -1: none yet */
static uint64_t last_seq;               /* of the last state stored (or restored) */
static bool after_restore;              /* stale states may be stored under any name */

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
                if (buf->planes[i].fd < 0)
                        continue;       /* a sysv buffer: no fd stored */
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
                if (buf->planes[i].fd < 0)
                        continue;       /* a sysv buffer: its shmid is in the state */
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

/* A new snapshot under the other name, stored before the old one is
 * removed: the store always has a whole state. On failure the old journal
 * goes on (or, broken, stays so), and this is tried again at the next
 * flush. */
static int compact(Manager *m) {
        _cleanup_close_ int fd = -1;
        int slot = journal_slot == 0 ? 1 : 0, copy, r;
        uint64_t seq = last_seq + 1;
        off_t size = -1;
        FILE *f;

        fd = memfd_create("bufbroker:state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return log_error_errno(-errno, "cannot save state");
        copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        f = copy >= 0 ? fdopen(copy, "w") : NULL;
        if (!f) {
                safe_close(copy);
                return log_error_errno(-ENOMEM, "cannot save state");
        }
        /* A new memfd: its file position is nobody else's yet. */
        r = broker_state_write(m->broker, seq, f);
        if (r >= 0)
                size = ftello(f);
        fclose(f);
        /* Appended to, never cut short. */
        if (r < 0 || size < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
                return log_error_errno(r < 0 ? r : -EIO, "cannot save state");

        /* After a restart, what is under the new name is stale: the state
         * read was under the other one (or "state"). */
        if (after_restore)
                unstore_fd(state_fdnames[slot]);
        r = store_fd(fd, state_fdnames[slot], true);
        if (r < 0)
                return r;
        last_seq = seq;
        unstore_fd(state_fdnames[!slot]);
        if (after_restore)
                unstore_fd(STATE_FDNAME_V2);
        after_restore = false;

        journal = broker_journal_free(journal);
        safe_close(journal_fd);
        journal_fd = TAKE_FD(fd);
        journal_slot = slot;
        r = broker_journal_new(m->broker, journal_fd, seq, (uint64_t) size, &journal);
        if (r < 0)
                return log_error_errno(r, "cannot journal the state");
        return 0;
}

void fdstore_flush(Manager *m) {
        if (!m->fdstore)
                return;
        /* Nothing stored yet, and nothing to store (after a restart: the
         * stored state is replaced by a new snapshot in any case). */
        if (!journal && m->broker->generation == m->saved_generation && !after_restore)
                return;
        if (journal && !broker_journal_full(journal))
                return;
        if (compact(m) >= 0)
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

static int state_slot(const char *name) {
        if (strcmp(name, STATE_FDNAME_V2) == 0)
                return -1;
        for (int i = 0; i < (int) ELEMENTSOF(state_fdnames); i++)
                if (strcmp(name, state_fdnames[i]) == 0)
                        return i;
        return -2;
}

/* The stored states (every fd under one of their names; duplicates too)
 * are taken out of @fds into @files. */
static unsigned take_states(int *fds, char **fd_names, int n, FILE **files, int *slots) {
        unsigned n_files = 0;

        for (int i = 0; fd_names && i < n; i++) {
                int slot = state_slot(fd_names[i]);
                FILE *f;

                if (slot == -2)
                        continue;
                f = fdopen(fds[i], "r");
                if (!f) {
                        /* Not read: stale, closed and unstored with the rest. */
                        log_warning("cannot read a saved state: %m");
                        continue;
                }
                fds[i] = -1;
                slots[n_files] = slot;
                files[n_files++] = f;
        }
        return n_files;
}

int fdstore_restore(Manager *m) {
        NameList on_the_bus = {};
        _cleanup_free_ int *fds = NULL, *slots = NULL;
        _cleanup_free_ FILE **files = NULL;
        char **fd_names = NULL;
        unsigned n_files = 0, version;
        FILE *f = NULL;
        int n, r, pick = -ENOENT;

        n = sd_listen_fds_with_names(true, &fd_names);
        if (n <= 0)
                return n;

        fds = calloc(n, sizeof(int));
        files = calloc(n, sizeof(FILE *));
        slots = calloc(n, sizeof(int));
        if (!fds || !files || !slots) {
                for (int i = 0; i < n; i++)
                        close(SD_LISTEN_FDS_START + i);
                strv_free_simple(fd_names);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++)
                fds[i] = SD_LISTEN_FDS_START + i;
        n_files = take_states(fds, fd_names, n, files, slots);
        after_restore = n_files > 0;

        if (n_files > 0)
                pick = broker_state_pick(files, n_files);
        if (pick >= 0) {
                f = files[pick];
                if (broker_state_header(f, &version, &last_seq) < 0)
                        last_seq = 0;
                journal_slot = slots[pick];
                r = list_names(m, &on_the_bus.names, &on_the_bus.n);
                if (r < 0)
                        log_warning_errno(r, "Cannot list the connections on the bus; holders are not restored");
        }

        (void) broker_state_read(m->broker, f, &(BrokerStateSource) {
                .fds = fds,
                .fd_names = fd_names,
                .n_fds = (unsigned) n,
                .on_bus = on_bus,
                .unstore = unstore,
                .userdata = &on_the_bus,
        });

        for (unsigned i = 0; i < n_files; i++)
                fclose(files[i]);
        for (size_t i = 0; i < on_the_bus.n; i++)
                free(on_the_bus.names[i]);
        free(on_the_bus.names);
        strv_free_simple(fd_names);

        /* A new snapshot now: the one read may end in a record cut short,
         * and holders that left are still in it. */
        fdstore_flush(m);
        return 0;
}
