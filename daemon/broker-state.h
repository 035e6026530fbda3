/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The broker's state as text, to rebuild it after a restart of the daemon.
 *
 * This is part of the core: it knows every field of the registry and no
 * D-Bus and no systemd. fdstore.c keeps the fds and the text in systemd's
 * file descriptor store and hands them back here on start; unit tests hand
 * in their own (tests/unit/test-state.c). The format is described at the top
 * of broker-state.c; a state we wrote is always read back by a newer daemon.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "broker.h"

#define BROKER_STATE_VERSION 2

/* Names of the stored fds: every plane of a buffer ("-ro": the read-only
 * export of a V4L2 plane) and a V4L2 queue's device fd (its tag is the id
 * of its first buffer). */
#define BROKER_STATE_FDNAME_MAX 64
void broker_state_plane_fdname(char buf[static BROKER_STATE_FDNAME_MAX], uint64_t id, unsigned plane, bool ro);
void broker_state_queue_fdname(char buf[static BROKER_STATE_FDNAME_MAX], uint64_t tag);

/* Write the whole registry of @b to @f; -EIO if it could not be written. */
int broker_state_write(Broker *b, FILE *f);

typedef struct BrokerStateSource {
        /* The stored fds and their names. The restore takes (sets to -1) the
         * fds the state names; it closes the others, which are stale. */
        int *fds;
        char **fd_names;                /* NULL: no names, nothing is claimed */
        unsigned n_fds;
        /* Is @name (a unique name) still on the bus? A holder that left
         * while the daemon was down has let go. NULL: nobody is. */
        bool (*on_bus)(const char *name, void *userdata);
        /* Stop keeping the stored fd named @fdname: what it belonged to is
         * gone (or was never restored). May be NULL. */
        void (*unstore)(const char *fdname, void *userdata);
        void *userdata;
} BrokerStateSource;

/* Rebuild @b (new, empty) from the state @f (NULL: there is none) and the
 * stored fds. Quotas are not enforced: the buffers existed (a uid may then be
 * over a limit lowered since, and gets nothing more until it is under
 * again). A line that cannot be restored is dropped, with its fds; a state
 * whose first line is not a format we know is not guessed at: nothing of it
 * is restored and -EPROTO is returned. Buffers nobody holds any more (not
 * persistent, holders gone) are dropped at the end; stale fds too, whatever
 * the outcome. Returns 0 or -EPROTO. */
int broker_state_read(Broker *b, FILE *f, const BrokerStateSource *src);
