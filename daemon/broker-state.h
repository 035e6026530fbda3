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

/* The format we write: a snapshot, then a journal of changes appended to
 * it (below). Version 4 (the same, without a buffer's <kind> <handle>),
 * version 3 (nor <prefaulted>) and version 2 (a snapshot alone, as written
 * before the journal) are still read: a daemon upgraded across a restart
 * gets its state back. */
#define BROKER_STATE_VERSION 5
#define BROKER_STATE_VERSION_JOURNAL 3
#define BROKER_STATE_VERSION_SNAPSHOT 2

/* Names of the stored fds: every plane of a buffer ("-ro": the read-only
 * export of a V4L2 plane) and a V4L2 queue's device fd (its tag is the id
 * of its first buffer). */
#define BROKER_STATE_FDNAME_MAX 64
void broker_state_plane_fdname(char buf[static BROKER_STATE_FDNAME_MAX], uint64_t id, unsigned plane, bool ro);
void broker_state_queue_fdname(char buf[static BROKER_STATE_FDNAME_MAX], uint64_t tag);

/* Write the whole registry of @b to @f, as a state of sequence number
 * @seq; -EIO if it could not be written. */
int broker_state_write(Broker *b, uint64_t seq, FILE *f);

/* The journal: a state (a snapshot) in @fd that every change of @b is
 * appended to as it happens, one record with one pwrite() at the end we
 * keep count of (never the file position: the service manager holds the
 * same open file, and a restarted daemon gets it back wherever it was).
 *
 * Records are lines, as in the snapshot; a record about something that is
 * there already replaces it (last one wins), which is how a buffer whose
 * persistence or frozen state changed is written again:
 *
 *   queue ... | buffer ... | hold ... | token ...      added (or replaced)
 *   -buffer <id>                                       gone (its holds and tokens
 *   -hold <buffer-id> <unique-name>                     go with it)
 *   -token <token>
 *
 * A last record without its newline was cut short by a crash, and is not
 * read. When the journal has grown past twice the snapshot it started
 * from plus BROKER_JOURNAL_SLACK, broker_journal_full() says it is time
 * for a new snapshot in a new journal (the cost of that is paid by the
 * records that came before: O(1) each). A record that cannot be written
 * stops the journal (the ones after it are not written either: a gap
 * would restore something wrong) and makes it full.
 *
 * The header of the state is "bufbroker-state 4 <next-id> <seq>": the
 * service manager keeps two (the new one is stored before the old one is
 * removed), and the valid one with the higher <seq> is the one to read. */
#define BROKER_JOURNAL_SLACK (64 * 1024)

typedef struct BrokerJournal BrokerJournal;

/* Start a journal in @fd (not taken) after the state of @size bytes that
 * broker_state_write() wrote there with sequence number @seq, and attach
 * it to @b, which must have no other. */
int broker_journal_new(Broker *b, int fd, uint64_t seq, uint64_t size, BrokerJournal **ret);
/* Detach from the broker; the fd is the caller's. */
BrokerJournal *broker_journal_free(BrokerJournal *j);
DEFINE_POINTER_CLEANUP(BrokerJournal, broker_journal_free);
bool broker_journal_full(const BrokerJournal *j);
uint64_t broker_journal_seq(const BrokerJournal *j);

/* Write the record of @change to @f (one or two lines: a V4L2 queue's first
 * buffer comes with its queue). */
void broker_state_write_change(const BrokerChange *change, FILE *f);

/* The first line of the state @f: its version and sequence number (0 for
 * version 2). 0 if it is a state we can read; -EPROTO if it names a
 * version we do not know (a newer daemon wrote it); -EINVAL if it is not
 * a state at all (malformed, cut short, empty). */
int broker_state_header(FILE *f, unsigned *ret_version, uint64_t *ret_seq);
/* Of the @n stored states @f, the index of the one to read: the highest
 * sequence number among the valid ones (a newer one that is not valid
 * was never completely stored: the older one is the state). -EPROTO if
 * one is of a version we do not know: nothing is guessed at; -ENOENT if
 * none is valid. */
int broker_state_pick(FILE *const *f, unsigned n);

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

/* Rebuild @b (new, empty) from the state @f (snapshot and journal) (NULL: there is none) and the
 * stored fds. Quotas are not enforced: the buffers existed (a uid may then be
 * over a limit lowered since, and gets nothing more until it is under
 * again). A line that cannot be restored is dropped, with its fds; a state
 * whose first line is not a format we know is not guessed at: nothing of it
 * is restored and -EPROTO is returned. Buffers nobody holds any more (not
 * persistent, holders gone) are dropped at the end; stale fds too, whatever
 * the outcome. Returns 0, -EPROTO, or -ENOMEM (nothing restored then). */
int broker_state_read(Broker *b, FILE *f, const BrokerStateSource *src);
