/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Integration-test harness, calls (harness-calls.c): bufbroker methods on the
 * test's own connection (or another), BufferReleased, buffer paths.
 * Include harness.h.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "macro.h"

/* Assert that err carries error name `name` and that its message contains
 * `needle` (if not NULL). */
void assert_bus_error(const sd_bus_error *err, int r, const char *name, const char *needle,
                      const char *context);

typedef struct Created {
        char *path;
        uint64_t id;
        int fd;                 /* our own dup, O_CLOEXEC */
        uint64_t size;
} Created;

void created_done(Created *c);
#define _cleanup_created_ _cleanup_(created_done)

/* CreateMemfd on bus (H->bus if NULL); ttl_usec 0: option left out. Asserts
 * success. */
void create_memfd(sd_bus *bus, const char *name, uint64_t size, bool persistent,
                  uint64_t ttl_usec, Created *ret);
/* Buffer1 methods; return r and fill error. */
int call_release(sd_bus *bus, const char *path, sd_bus_error *error);
int call_freeze(sd_bus *bus, const char *path, sd_bus_error *error);
/* Share with the usual options; uid (uid_t)-1: not bound; ttl 0: none. */
int call_share(sd_bus *bus, const char *path, bool read_only, uid_t uid, bool single_use,
               uint64_t ttl_usec, char **ret_token, sd_bus_error *error);
/* Open; ret_fd gets a dup of the first fd (or NULL), ret_read_only the info. */
int call_open(sd_bus *bus, const char *token, char **ret_path, int *ret_fd,
              bool *ret_read_only, sd_bus_error *error);
/* Does the ListBuffers() of bus (H->bus if NULL) include id? */
bool list_has(sd_bus *bus, uint64_t id);

/* BufferReleased: subscribe the test's connection (synchronously, so no
 * signal is missed afterwards: AddMatch, then Broker1.Subscribe, since the
 * daemon sends signals only to listeners and holders), then wait for a
 * given id. */
void released_watch(void);
/* The reason of id's BufferReleased (BB_REASON_*), NULL if none came yet. */
const char *released_reason(uint64_t id);
bool released_wait(uint64_t id, int timeout_ms);
/* Was id seen already (no waiting)? */
bool released_seen(uint64_t id);

/* A buffer object path for an id (bb_buffer_path_from_id); asserts. */
char *buffer_path(uint64_t id);
/* The id of a buffer object path (bb_buffer_path_to_id); asserts. */
uint64_t buffer_id_from_path(const char *path);

/* A property of the buffer at @path (org.bufbroker.Buffer1), read on the
 * test's connection; the call must succeed. property_s: free() it. */
uint64_t property_t(const char *path, const char *name);
int32_t property_i(const char *path, const char *name);
bool property_b(const char *path, const char *name);
char *property_s(const char *path, const char *name);
