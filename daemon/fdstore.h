/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Keeping buffers across a restart with systemd's file descriptor store.
 *
 * Every buffer's fds are stored when it appears and removed when it goes:
 * its planes (memfds, or V4L2 dma-bufs with their read-only exports), and
 * for V4L2 the device fd that owns the queue, so V4L2 buffers are kept too.
 * The registry (ids, names, owners, holders' unique names, persistence,
 * tokens, deadlines) is written by the core (broker-state.h) into a memfd
 * stored as "state-a" or "state-b", and every change is appended to it
 * (a journal) until a new snapshot is due. On start
 * the daemon gets all of them back in LISTEN_FDS and the core rebuilds the
 * registry, keeping holders that are still on the bus.
 */
#pragma once

#include "bus.h"

/* Whether systemd keeps fds for us (we run under systemd with a store). */
bool fdstore_enabled(void);

/* Store the fds of a new buffer; <0 if they could not be (the buffer is
 * then refused: it would not survive a restart). */
int fdstore_buffer_added(Manager *m, Buffer *buf);
void fdstore_buffer_dropped(Manager *m, Buffer *buf);
/* Store a new snapshot of the state if its journal is full (or there is
 * none yet and the broker changed); every change is journaled as it happens. */
void fdstore_flush(Manager *m);
/* Rebuild the broker from LISTEN_FDS; call once the bus is connected. */
int fdstore_restore(Manager *m);
