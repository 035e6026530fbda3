/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bus layer: sd-bus vtables that decode and validate arguments, ask the
 * core (broker.h) to act, and encode replies and errors. Nothing here decides
 * who may do what; that is the core's job.
 */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "broker.h"

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        Broker *broker;
        sd_event_source *expire_timer;

        /* Unique names are never reused on a bus, so the uid found for one
         * stays right for as long as the name exists: cache the last one. */
        char *cached_sender;
        uid_t cached_uid;

        /* Under systemd: the fd store, the STATUS= line, exit when idle. */
        bool fdstore;
        uint64_t saved_generation;
        uint64_t status_generation;
        uint64_t exit_idle_usec;        /* 0: never */
        sd_event_source *idle_timer;
        sd_event_source *post;
} Manager;

/* bus-common.c */
void strv_free_simple(char **l);
/* For _cleanup_(close_fds) int fds[BUFFER_PLANES_MAX] = { -1, ... }. */
void close_fds(int (*fds)[BUFFER_PLANES_MAX]);
uint64_t now_usec(void);
int bus_get_caller(Manager *m, sd_bus_message *msg, Caller *ret, sd_bus_error *error);
int bus_map_broker_error(sd_bus_error *error, int r, const BrokerError *err);
void manager_schedule_expiry(Manager *m);

typedef struct BusOption {
        const char *key;
        char type;              /* 'b', 't', 'u', 's', or 'F' (a fourcc as s or u) */
        void *value;            /* bool *, uint64_t *, uint32_t *, const char ** */
        bool seen;
} BusOption;
/* Read an a{sv}; every key must be in @options (NULL-key terminated) with the
 * stated type, at most once. */
int bus_read_options(sd_bus_message *msg, BusOption *options, sd_bus_error *error);

/* Open's and OpenFds' reply: the fds, then the info a{sv}. */
int bus_append_fds_and_info(sd_bus_message *reply, Buffer *buf, bool read_only, const int fds[]);
/* The a{sv} describing a V4L2 format (CreateV4L2's reply, info). */
int bus_append_v4l2_format(sd_bus_message *reply, const V4L2Format *f, unsigned count);

/* bus-manager.c */
extern const sd_bus_vtable manager_vtable[];
int bus_manager_register(Manager *m);
extern const BrokerCallbacks bus_broker_callbacks;

/* bus-buffer.c */
extern const sd_bus_vtable buffer_vtable[];
int bus_buffer_register(Manager *m);

/* Print "bufbrokerd: MESSAGE: strerror(-r)" to stderr (the journal when run
 * by systemd) and return r. */
int log_errno(int r, const char *message);
