/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration-test harness, a stand-in for systemd's fd store (see
 * harness-fdstore.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

/* The fds of one message; the daemon sends one per FDSTORE=1. */
#define FDS_PER_MESSAGE 16

/* Called with the lock held. */
static void fd_store_remove(FdStore *store, const char *name) {
        for (unsigned i = 0; i < store->n;)
                if (strcmp(store->names[i], name) == 0) {
                        close(store->fds[i]);
                        store->fds[i] = store->fds[--store->n];
                        memcpy(store->names[i], store->names[store->n], sizeof(store->names[i]));
                } else
                        i++;
}

/* Take one message: 1, or -errno (-EAGAIN: none is queued). */
static int fd_store_take(FdStore *store) {
        char buf[4096], control[CMSG_SPACE(sizeof(int) * FDS_PER_MESSAGE)], name[FD_STORE_NAME_MAX] = "";
        struct iovec iov = { buf, sizeof(buf) - 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof(control) };
        bool store_fds = false, remove = false;
        char status[sizeof(store->status)];
        bool has_status = false;
        struct cmsghdr *cm;
        ssize_t len;

        len = recvmsg(store->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (len < 0)
                return -errno;
        buf[len] = 0;
        for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strcmp(line, "FDSTORE=1") == 0)
                        store_fds = true;
                else if (strcmp(line, "FDSTOREREMOVE=1") == 0)
                        remove = true;
                else if (strncmp(line, "FDNAME=", 7) == 0)
                        snprintf(name, sizeof(name), "%s", line + 7);
                else if (strncmp(line, "STATUS=", 7) == 0) {
                        snprintf(status, sizeof(status), "%s", line + 7);
                        has_status = true;
                }
        }

        pthread_mutex_lock(&store->lock);
        if (has_status) {
                memcpy(store->status, status, sizeof(status));
                store->n_status++;
        }
        if (remove)
                fd_store_remove(store, name);
        for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                        int fd = ((int *) CMSG_DATA(cm))[i];

                        if (store_fds && store->n < FD_STORE_MAX) {
                                store->fds[store->n] = fd;
                                snprintf(store->names[store->n++], sizeof(store->names[0]), "%s", name);
                        } else {
                                store->n_refused++;
                                close(fd);
                        }
                }
        }
        pthread_mutex_unlock(&store->lock);
        return 1;
}

static void *fd_store_run(void *userdata) {
        FdStore *store = userdata;

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = store->sock, .events = POLLIN },
                        { .fd = store->stop_thread[0], .events = POLLIN },
                };

                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        return NULL;
                if (p[1].revents)
                        return NULL;
                if (p[0].revents)
                        (void) fd_store_take(store);
        }
}

void fd_store_resume(FdStore *store) {
        if (store->taking)
                return;
        ck_assert_int_eq(pipe2(store->stop_thread, O_CLOEXEC), 0);
        ck_assert_int_eq(pthread_create(&store->thread, NULL, fd_store_run, store), 0);
        store->taking = true;
}

void fd_store_start(FdStore *store) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        /* As systemd's notify socket: the messages of a busy daemon wait
         * there while the store is paused. */
        int rcvbuf = 4 << 20;

        *store = (FdStore) { .sock = -1 };
        ck_assert_int_eq(pthread_mutex_init(&store->lock, NULL), 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fd-store", H->dir);
        (void) unlink(sa.sun_path);
        store->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(store->sock, 0);
        (void) setsockopt(store->sock, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
        ck_assert_int_eq(bind(store->sock, (struct sockaddr *) &sa, sizeof(sa)), 0);
        /* The daemon may run as another user (harness_daemon_user). */
        ck_assert_int_eq(chmod(sa.sun_path, 0666), 0);
        memcpy(store->notify_socket, sa.sun_path, sizeof(store->notify_socket));
        fd_store_resume(store);
}

void fd_store_pause(FdStore *store) {
        int r;

        if (store->taking) {
                ck_assert_int_eq(write(store->stop_thread[1], "x", 1), 1);
                ck_assert_int_eq(pthread_join(store->thread, NULL), 0);
                store->stop_thread[0] = safe_close(store->stop_thread[0]);
                store->stop_thread[1] = safe_close(store->stop_thread[1]);
                store->taking = false;
        }
        while ((r = fd_store_take(store)) > 0)
                ;
        ck_assert_msg(r == -EAGAIN, "reading the notify socket: %s", strerror(-r));
        ck_assert_msg(store->n_refused == 0, "the fd store refused %u fds (full, or sent without FDSTORE=1)",
                      store->n_refused);
}

unsigned fd_store_count(FdStore *store, const char *prefix) {
        unsigned n = 0;

        pthread_mutex_lock(&store->lock);
        for (unsigned i = 0; i < store->n; i++)
                n += strncmp(store->names[i], prefix, strlen(prefix)) == 0;
        pthread_mutex_unlock(&store->lock);
        return n;
}

void fd_store_stop_daemon(FdStore *store, int sig) {
        ck_assert_int_eq(kill(H->daemon_pid, sig), 0);
        while (daemon_alive())
                msleep(5);
        fd_store_pause(store);
}

void fd_store_restart_daemon(FdStore *store, const char *const *daemon_args) {
        fd_store_pause(store);
        ck_assert_msg(store->n <= 16, "%u fds stored: more than the harness hands over (16)", store->n);
        store->listen_fdnames[0] = 0;
        for (unsigned i = 0, len = 0; i < store->n; i++)
                len += (unsigned) snprintf(store->listen_fdnames + len, sizeof(store->listen_fdnames) - len, "%s%s",
                                           i > 0 ? ":" : "", store->names[i]);
        harness_daemon_spawn.notify_socket = store->notify_socket;
        harness_daemon_spawn.listen_fds = store->n > 0 ? store->fds : NULL;
        harness_daemon_spawn.n_listen_fds = store->n;
        harness_daemon_spawn.listen_fdnames = store->n > 0 ? store->listen_fdnames : NULL;
        fd_store_resume(store);
        harness_restart_daemon(daemon_args);
}

void fd_store_done(FdStore *store) {
        fd_store_pause(store);
        for (unsigned i = 0; i < store->n; i++)
                close(store->fds[i]);
        store->n = 0;
        store->sock = safe_close(store->sock);
        (void) pthread_mutex_destroy(&store->lock);
        /* Nothing of it is handed to a daemon started later. */
        harness_daemon_spawn.notify_socket = NULL;
        harness_daemon_spawn.listen_fds = NULL;
        harness_daemon_spawn.n_listen_fds = 0;
        harness_daemon_spawn.listen_fdnames = NULL;
}
