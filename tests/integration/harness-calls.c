/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The integration-test harness's calls (see harness-calls.h): bufbroker
 * methods on the test's connection, BufferReleased, buffer paths.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>


#include "harness.h"

char *buffer_path(uint64_t id) {
        char buf[BB_BUFFER_PATH_MAX];
        char *p = strdup(bb_buffer_path_from_id(id, buf));

        ck_assert_ptr_nonnull(p);
        return p;
}

uint64_t buffer_id_from_path(const char *path) {
        uint64_t id;

        ck_assert_msg(bb_buffer_path_to_id(path, &id) >= 0, "not a buffer path: %s",
                      path ? path : "(null)");
        return id;
}

void assert_bus_error(const sd_bus_error *err, int r, const char *name, const char *needle,
                      const char *context) {
        ck_assert_msg(r < 0, "%s: call succeeded, expected %s", context, name);
        ck_assert_msg(err->name && strcmp(err->name, name) == 0, "%s: error %s (%s), expected %s",
                      context, err->name ? err->name : "(none)",
                      err->message ? err->message : strerror(-r), name);
        if (needle)
                ck_assert_msg(err->message && strstr(err->message, needle),
                              "%s: error message \"%s\" does not mention \"%s\"", context,
                              err->message ? err->message : "", needle);
}

/* ------------------------------------------------------ calls and signals -- */

void created_done(Created *c) {
        free(c->path);
        c->path = NULL;
        c->fd = safe_close(c->fd);
}

void create_memfd(sd_bus *bus, const char *name, uint64_t size, bool persistent,
                  uint64_t ttl_usec, Created *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const char *path;
        int fd, r;

        bus = bus ?: test_bus();
        ck_assert(sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, BB_MANAGER_PATH,
                                                 BB_MANAGER_INTERFACE, "CreateMemfd") >= 0);
        ck_assert(sd_bus_message_append(m, "st", name, size) >= 0);
        ck_assert(sd_bus_message_open_container(m, 'a', "{sv}") >= 0);
        if (persistent)
                ck_assert(sd_bus_message_append(m, "{sv}", BB_OPT_PERSISTENT, "b", 1) >= 0);
        if (ttl_usec > 0)
                ck_assert(sd_bus_message_append(m, "{sv}", BB_OPT_TTL_USEC, "t", ttl_usec) >= 0);
        ck_assert(sd_bus_message_close_container(m) >= 0);
        r = sd_bus_call(bus, m, 0, &error, &reply);
        ck_assert_msg(r >= 0, "CreateMemfd(%s, %" PRIu64 "): %s: %s", name, size, error.name,
                      error.message);
        *ret = (Created) { .fd = -1 };
        ck_assert(sd_bus_message_read(reply, "oht", &path, &fd, &ret->size) > 0);
        ret->path = strdup(path);
        ret->id = buffer_id_from_path(path);
        ret->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        ck_assert(ret->fd >= 0);
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        sd_bus_error_free(&error);
}

int call_release(sd_bus *bus, const char *path, sd_bus_error *error) {
        return sd_bus_call_method(bus ?: test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                  "Release", error, NULL, "");
}

int call_freeze(sd_bus *bus, const char *path, sd_bus_error *error) {
        return sd_bus_call_method(bus ?: test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                  "Freeze", error, NULL, "");
}

int call_share(sd_bus *bus, const char *path, bool read_only, uid_t uid, bool single_use,
               uint64_t ttl_usec, char **ret_token, sd_bus_error *error) {
        sd_bus_message *m = NULL, *reply = NULL;
        const char *token;
        int r;

        bus = bus ?: test_bus();
        r = sd_bus_message_new_method_call(bus, &m, BB_BUS_NAME, path, BB_BUFFER_INTERFACE,
                                           "Share");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && read_only)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_READ_ONLY, "b", 1);
        if (r >= 0 && uid != (uid_t) -1)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_UID, "u", (uint32_t) uid);
        if (r >= 0 && single_use)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_SINGLE_USE, "b", 1);
        if (r >= 0 && ttl_usec > 0)
                r = sd_bus_message_append(m, "{sv}", BB_OPT_TTL_USEC, "t", ttl_usec);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call(bus, m, 0, error, &reply);
        if (r >= 0) {
                r = sd_bus_message_read(reply, "s", &token);
                if (r >= 0 && ret_token)
                        *ret_token = strdup(token);
        }
        sd_bus_message_unref(reply);
        sd_bus_message_unref(m);
        return r;
}

int call_open(sd_bus *bus, const char *token, char **ret_path, int *ret_fd,
              bool *ret_read_only, sd_bus_error *error) {
        sd_bus_message *reply = NULL;
        const char *path;
        int r, fd, first = -1;
        bool ro = false;

        bus = bus ?: test_bus();
        r = sd_bus_call_method(bus, BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Open",
                               error, &reply, "sa{sv}", token, 0);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r >= 0 && ret_path)
                *ret_path = strdup(path);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "h");
        while (r >= 0 && (r = sd_bus_message_read(reply, "h", &fd)) > 0)
                if (first < 0)
                        first = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(reply, "s", &key);
                if (r >= 0 && strcmp(key, BB_INFO_READ_ONLY) == 0) {
                        int b;

                        r = sd_bus_message_read(reply, "v", "b", &b);
                        ro = b;
                } else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        sd_bus_message_unref(reply);
        if (r < 0) {
                safe_close(first);
                return r;
        }
        if (ret_fd)
                *ret_fd = first;
        else
                safe_close(first);
        if (ret_read_only)
                *ret_read_only = ro;
        return 0;
}

bool list_has(sd_bus *bus, uint64_t id) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        bool found = false;
        int r;

        r = sd_bus_call_method(bus ?: test_bus(), BB_BUS_NAME, BB_MANAGER_PATH,
                               BB_MANAGER_INTERFACE, "ListBuffers", &error, &reply, "");
        ck_assert_msg(r >= 0, "ListBuffers: %s", error.message);
        ck_assert(sd_bus_message_enter_container(reply, 'a', BB_LIST_ENTRY_SIGNATURE) > 0);
        for (;;) {
                const char *path, *name, *kind;
                uint64_t bid, size, created;
                uint32_t owner, holders;
                int persistent, frozen;

                r = sd_bus_message_read(reply, BB_LIST_ENTRY_SIGNATURE, &path, &bid, &name, &kind,
                                        &size, &owner, &persistent, &frozen, &holders, &created);
                ck_assert(r >= 0);
                if (r == 0)
                        break;
                found = found || bid == id;
        }
        sd_bus_message_unref(reply);
        sd_bus_error_free(&error);
        return found;
}

static uint64_t released_ids[4096];
static char released_reasons[4096][16];
static size_t n_released;

static int on_released(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *path, *reason;
        uint64_t id;

        if (sd_bus_message_read(m, "ots", &path, &id, &reason) > 0 && n_released < ELEMENTSOF(released_ids)) {
                /* the path and the id must agree */
                if (buffer_id_from_path(path) == id) {
                        snprintf(released_reasons[n_released], sizeof(released_reasons[0]), "%s", reason);
                        released_ids[n_released++] = id;
                } else
                        fprintf(stderr, "BufferReleased(%s, %" PRIu64 "): path and id differ\n",
                                path, id);
        }
        return 0;
}

void released_watch(void) {
        int r;

        n_released = 0;
        /* by unique name: only the daemon we started counts */
        r = sd_bus_match_signal(test_bus(), NULL, H->daemon_unique_name, BB_MANAGER_PATH,
                                BB_MANAGER_INTERFACE, "BufferReleased", on_released, NULL);
        ck_assert_msg(r >= 0, "AddMatch BufferReleased: %s", strerror(-r));
        /* Signals go only to holders and listeners: listen (as root: to
         * every buffer's). Again after a restart: a new daemon knows no
         * listener. */
        r = sd_bus_call_method(test_bus(), BB_BUS_NAME, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, "Subscribe",
                               NULL, NULL, "");
        ck_assert_msg(r >= 0, "Subscribe: %s", strerror(-r));
}

const char *released_reason(uint64_t id) {
        (void) released_seen(id);
        for (size_t i = 0; i < n_released; i++)
                if (released_ids[i] == id)
                        return released_reasons[i];
        return NULL;
}

bool released_seen(uint64_t id) {
        while (sd_bus_process(test_bus(), NULL) > 0)
                ;
        for (size_t i = 0; i < n_released; i++)
                if (released_ids[i] == id)
                        return true;
        return false;
}

bool released_wait(uint64_t id, int timeout_ms) {
        uint64_t deadline = now_usec() + (uint64_t) scaled_ms(timeout_ms) * 1000u;

        for (;;) {
                uint64_t now;

                if (released_seen(id))
                        return true;
                now = now_usec();
                if (now >= deadline)
                        return false;
                (void) sd_bus_wait(test_bus(), deadline - now);
        }
}

static void property_get(const char *path, const char *name, char type, void *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r = sd_bus_get_property_trivial(test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE, name, &error, type,
                                            ret);

        ck_assert_msg(r >= 0, "%s of %s: %s", name, path, error.message);
}

uint64_t property_t(const char *path, const char *name) {
        uint64_t v = 0;

        property_get(path, name, 't', &v);
        return v;
}

int32_t property_i(const char *path, const char *name) {
        int32_t v = 0;

        property_get(path, name, 'i', &v);
        return v;
}

bool property_b(const char *path, const char *name) {
        int v = 0;

        property_get(path, name, 'b', &v);
        return v;
}

char *property_s(const char *path, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *v = NULL;
        int r = sd_bus_get_property_string(test_bus(), BB_BUS_NAME, path, BB_BUFFER_INTERFACE, name, &error, &v);

        ck_assert_msg(r >= 0, "%s of %s: %s", name, path, error.message);
        return v;
}
