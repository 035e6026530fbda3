/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration-test harness, a stand-in for systemd's file descriptor store
 * (harness-fdstore.c). A daemon restarted by systemd gets back the fds it
 * stored; the tests restart bufbrokerd outside the VM (systemd itself is
 * tested in the VM, tests/vm/guest-systemd.sh), so this plays the service
 * manager's two parts: the $NOTIFY_SOCKET the daemon sends FDSTORE=1 (with
 * FDNAME= and the fds) and FDSTOREREMOVE=1 to, and the hand-over of what was
 * kept to the next daemon at fds 3, 4, ... with $LISTEN_FDS, $LISTEN_PID and
 * $LISTEN_FDNAMES. The store goes on keeping across restarts, as systemd's.
 *
 * A thread takes the daemon's messages as they come (a datagram socket
 * queues only a few); the test pauses it to read what was kept. Include
 * harness.h.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>

/* More than the 16 the harness hands over: an old state stays until the
 * daemon has stored the new one. */
#define FD_STORE_MAX 64
#define FD_STORE_NAME_MAX 64

typedef struct FdStore {
        int sock;
        char notify_socket[108];        /* its path, for $NOTIFY_SOCKET */
        pthread_t thread;
        int stop_thread[2];
        bool taking;                    /* the thread runs */
        pthread_mutex_t lock;           /* what follows, while it does */
        unsigned n;
        int fds[FD_STORE_MAX];
        char names[FD_STORE_MAX][FD_STORE_NAME_MAX];
        unsigned n_refused;             /* fds it would not keep (full, or no FDSTORE=1) */
        char status[128];               /* the last STATUS= line */
        unsigned n_status;              /* how many came */
        char listen_fdnames[FD_STORE_MAX * FD_STORE_NAME_MAX]; /* "a:b:c", handed over */
} FdStore;

/* An empty store in the fixture's directory (any user may send to it: the
 * daemon may run as another), taking messages. */
void fd_store_start(FdStore *store);
/* Stop taking messages (its thread), after taking what was sent; asserts
 * that it kept every fd it was given. The fields may be read then. */
void fd_store_pause(FdStore *store);
void fd_store_resume(FdStore *store);
/* How many fds are kept under a name starting with @prefix ("state",
 * "buf-"); may be asked while it takes messages. */
unsigned fd_store_count(FdStore *store, const char *prefix);

/* Stop the daemon with @sig (SIGKILL: as it is, SIGTERM: as systemctl
 * restart does), wait until it is gone, and take what it stored. */
void fd_store_stop_daemon(FdStore *store, int sig);
/* Start bufbrokerd again with this store as its notify socket, and what it
 * kept handed over (nothing from an empty one), as systemd starts a
 * service again; the store goes on taking messages. The other fields of
 * harness_daemon_spawn (a log path) stay as the test set them. */
void fd_store_restart_daemon(FdStore *store, const char *const *daemon_args);
/* Take what is still queued, and close the store and every fd it kept.
 * A daemon still running keeps running, without a store. */
void fd_store_done(FdStore *store);
