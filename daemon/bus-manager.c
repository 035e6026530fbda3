/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.bufbroker.Broker1 on /org/bufbroker/Broker1: create, open, list, and
 * the broker-wide properties. Also the core's callbacks: keep a new buffer
 * in the fd store, announce a dropped one.
 */
#include <inttypes.h>
#include <limits.h>
#include <linux/videodev2.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "config.h"
#include "fdstore.h"
#include "utf8-util.h"

/* ------------------------------------------------- core callbacks --- */

static int on_buffer_added(Broker *b, Buffer *buf, void *userdata) {
        int r;

        r = fdstore_buffer_added(userdata, buf);
        if (r >= 0)
                /* Kept: it exists now, for the listeners that may see it. */
                notify_buffer_added(userdata, buf);
        return r;
}

static void on_buffer_dropped(Broker *b, Buffer *buf, BrokerDropReason reason, void *userdata) {
        Manager *m = userdata;

        fdstore_buffer_dropped(m, buf);
        notify_buffer_dropped(m, buf, reason);
}

static void on_buffer_changed(Broker *b, Buffer *buf, const char *property, void *userdata) {
        notify_buffer_changed(userdata, buf, property);
}

/* Holders are not tracked one by one: bus-peer.c watches every connection
 * that goes. */
const BrokerCallbacks bus_broker_callbacks = {
        .buffer_added = on_buffer_added,
        .buffer_dropped = on_buffer_dropped,
        .buffer_changed = on_buffer_changed,
};

/* Calls that return fds: refused for a connection whose earlier replies the
 * bus could not deliver (it does not read them, or cannot take fds), and
 * for a direct connection that did not negotiate fd passing. Refused before
 * they act: a reply that cannot be built would leave a hold, a spent
 * single-use token, and nothing delivered. */
static int check_takes_fds(Manager *m, const Caller *caller, sd_bus_error *error) {
        Peer *p = peer_find(m, caller->name);

        if (p && p->direct && sd_bus_can_send(p->direct, SD_BUS_TYPE_UNIX_FD) <= 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                         "The connection of %s does not pass file descriptors, and the reply carries them",
                                         caller->name);
        if (p && p->no_fds)
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED,
                                         "The bus cannot pass file descriptors to %s (it refused an earlier reply): "
                                         "its connection did not negotiate fd passing, and the reply carries them",
                                         caller->name);
        if (p && p->not_reading)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                         "The bus could not deliver earlier replies with file descriptors to %s "
                                         "(it does not read them, or cannot receive fds); reconnect to get more",
                                         caller->name);
        return 0;
}

int bus_get_fd_caller(Manager *m, sd_bus_message *msg, Caller *ret, sd_bus_error *error) {
        int r = bus_get_caller(m, msg, ret, error);

        return r < 0 ? r : check_takes_fds(m, ret, error);
}

/* --------------------------------------------------------- methods --- */

/* CreateMemfd (one buffer: "oht") and CreateMemfds (@batch: a count, and
 * "a(oht)"): the same checks, all or none. */
/* The options of every create method but CreateV4L2's, into @req. */
static int read_create_options(sd_bus_message *msg, CreateRequest *req, sd_bus_error *error) {
        BusOption options[] = {
                { BB_OPT_PERSISTENT, 'b', &req->persistent },
                { BB_OPT_TTL_USEC, 't', &req->ttl_usec },
                { BB_OPT_HUGETLB, 'b', &req->hugetlb },
                { BB_OPT_PREFAULT, 'b', &req->prefault },
                {}
        };
        int r;

        r = bus_read_options(msg, options, error);
        if (r < 0)
                return r;
        if (bus_option_seen(options, BB_OPT_TTL_USEC) && req->ttl_usec == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "Option 'ttl-usec' must be greater than 0 (leave it out for no expiry)");
        return 0;
}

static int create_memfds(sd_bus_message *msg, Manager *m, bool batch, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int fds[BB_CREATE_BATCH_MAX];
        Buffer *bufs[BB_CREATE_BATCH_MAX] = {};
        uint64_t ids[BB_CREATE_BATCH_MAX];
        CreateRequest req = {};
        BrokerError err = {};
        Caller caller;
        unsigned n, i;
        int r;

        r = sd_bus_message_read(msg, "st", &req.name, &req.size);
        if (r >= 0 && batch)
                r = sd_bus_message_read(msg, "u", &req.count);
        if (r < 0)
                return r;
        r = read_create_options(msg, &req, error);
        if (r < 0)
                return r;

        r = broker_validate_name(req.name, &err);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);
        if (req.size == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "Buffer size must not be 0");
        if (batch && (req.count == 0 || req.count > BB_CREATE_BATCH_MAX))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Count %u: from 1 to %u buffers per call", req.count, BB_CREATE_BATCH_MAX);

        r = bus_get_fd_caller(m, msg, &caller, error);
        if (r < 0)
                return r;

        r = broker_create(m->broker, &caller, &req, now_usec(), &err, bufs);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);
        if (req.ttl_usec > 0)
                manager_schedule_expiry(m);
        n = req.count ? req.count : 1;
        for (i = 0; i < n; i++) {
                ids[i] = bufs[i]->id;
                fds[i] = -1;
        }

        /* The creator gets its own open of each file, not the daemon's. */
        for (i = 0, r = 0; i < n && r >= 0; i++) {
                int one[BB_PLANES_MAX] = FD_ARRAY_INIT;

                r = buffer_open_fds(bufs[i], false, one);
                fds[i] = one[0];
        }
        if (r < 0) {
                (void) sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to open the new buffer: %s", strerror(-r));
                goto undo;
        }
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0 && batch)
                r = sd_bus_message_open_container(reply, 'a', "(oht)");
        for (i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, batch ? "(oht)" : "oht", bufs[i]->path, fds[i], bufs[i]->size);
        if (r >= 0 && batch)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                goto undo;
        for (i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
        r = bus_send_reply(m, reply, &(Handout) {
                .client = caller.name, .uid = caller.uid, .ids = ids, .n_ids = n, .drop_buffers = true,
        });
        if (r < 0)
                /* Nobody will ever learn of these buffers: undo them. */
                for (i = 0; i < n; i++)
                        if ((bufs[i] = broker_find_buffer(m->broker, ids[i])))
                                broker_drop_buffer(m->broker, bufs[i]);
        return r;

undo:
        for (i = 0; i < n; i++) {
                safe_close(fds[i]);
                broker_drop_buffer(m->broker, bufs[i]);
        }
        return r;
}

static int method_create_memfd(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return create_memfds(msg, userdata, false, error);
}

/* Create(kind, name, size, options) -> (buffer, fds, info): one buffer of
 * any kind but v4l2, answered as Open() answers. */
static int method_create(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(close_fds) int fds[BB_PLANES_MAX] = FD_ARRAY_INIT;
        Manager *m = userdata;
        CreateRequest req = {};
        BrokerError err = {};
        Caller caller;
        Buffer *buf;
        uint64_t id;
        int r;

        r = sd_bus_message_read(msg, "sst", &req.kind, &req.name, &req.size);
        if (r < 0)
                return r;
        r = read_create_options(msg, &req, error);
        if (r < 0)
                return r;

        /* A sysv buffer's reply carries no fd: any client may have one. */
        if (strcmp(req.kind, BB_KIND_SYSV) == 0)
                r = bus_get_caller(m, msg, &caller, error);
        else
                r = bus_get_fd_caller(m, msg, &caller, error);
        if (r < 0)
                return r;

        r = broker_create(m->broker, &caller, &req, now_usec(), &err, &buf);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);
        if (req.ttl_usec > 0)
                manager_schedule_expiry(m);
        id = buf->id;

        /* The creator gets its own open of the file, not the daemon's. */
        r = buffer_open_fds(buf, false, fds);
        if (r < 0) {
                (void) sd_bus_error_setf(error, SD_BUS_ERROR_FAILED, "Failed to open the new buffer: %s", strerror(-r));
                broker_drop_buffer(m->broker, buf);
                return r;
        }
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "o", buf->path);
        if (r >= 0)
                r = bus_append_fds_and_info(reply, buf, buf->read_only, fds);
        if (r < 0) {
                broker_drop_buffer(m->broker, buf);
                return r;
        }
        close_fds(&fds);
        r = bus_send_reply(m, reply, &(Handout) {
                .client = caller.name, .uid = caller.uid, .ids = &id, .n_ids = 1, .drop_buffers = true,
        });
        if (r < 0 && (buf = broker_find_buffer(m->broker, id)))
                /* Nobody will ever learn of it: undo it. */
                broker_drop_buffer(m->broker, buf);
        return r;
}

static int method_create_memfds(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return create_memfds(msg, userdata, true, error);
}

static int compare_ids(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

/* ReleaseBuffers(ao): as Release() on each, all or none. */
static int method_release_buffers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_free_ uint64_t *ids = NULL;
        _cleanup_free_ Buffer **bufs = NULL;
        Manager *m = userdata;
        BrokerError err = {};
        const char *path;
        Caller caller;
        size_t n = 0;
        int r;

        ids = malloc(BB_RELEASE_BATCH_MAX * sizeof(uint64_t));
        bufs = malloc(BB_RELEASE_BATCH_MAX * sizeof(Buffer *));
        if (!ids || !bufs)
                return -ENOMEM;
        r = sd_bus_message_enter_container(msg, 'a', "o");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(msg, "o", &path)) > 0) {
                if (n == BB_RELEASE_BATCH_MAX)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "More than %u buffers in one call", BB_RELEASE_BATCH_MAX);
                if (bb_buffer_path_to_id(path, &ids[n]) < 0)
                        return sd_bus_error_setf(error, BB_ERROR_NO_SUCH_BUFFER, "No buffer at %s", path);
                n++;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        if (n == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS, "No buffers to release");
        qsort(ids, n, sizeof(uint64_t), compare_ids);
        for (size_t i = 0; i < n; i++) {
                if (i > 0 && ids[i] == ids[i - 1])
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Buffer %" PRIu64 " is named twice", ids[i]);
                bufs[i] = broker_find_buffer(m->broker, ids[i]);
                if (!bufs[i])
                        return sd_bus_error_setf(error, BB_ERROR_NO_SUCH_BUFFER,
                                                 "No buffer %" PRIu64 "; none released", ids[i]);
        }

        r = bus_get_caller(m, msg, &caller, error);
        if (r < 0)
                return r;
        /* May free buffers (and emit BufferReleased before this reply). */
        r = broker_release_many(m->broker, &caller, bufs, n, &err);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);
        return sd_bus_reply_method_return(msg, NULL);
}

static int append_u32_array_entry(sd_bus_message *reply, const char *key, const uint32_t *v, unsigned n) {
        int r;

        r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", key);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', "au");
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'u', v, n * sizeof(uint32_t));
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

int bus_append_v4l2_format_entries(sd_bus_message *reply, const V4L2Format *f) {
        char fourcc[5];
        int r;

        r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}{sv}{sv}",
                                  BB_FMT_WIDTH, "u", f->width,
                                  BB_FMT_HEIGHT, "u", f->height,
                                  BB_FMT_FOURCC, "s", v4l2_fourcc_to_string(f->fourcc, fourcc),
                                  BB_FMT_TYPE, "s", bb_v4l2_type_name(f->type) ?: "unknown",
                                  BB_FMT_FIELD, "u", f->field,
                                  BB_FMT_NUM_PLANES, "u", f->n_planes);
        if (r >= 0)
                r = append_u32_array_entry(reply, BB_FMT_BYTESPERLINE, f->bytesperline, f->n_planes);
        if (r >= 0)
                r = append_u32_array_entry(reply, BB_FMT_SIZEIMAGE, f->sizeimage, f->n_planes);
        return r;
}

int bus_append_v4l2_format(sd_bus_message *reply, const V4L2Format *f, unsigned count) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r >= 0)
                r = bus_append_v4l2_format_entries(reply, f);
        if (r >= 0)
                r = sd_bus_message_append(reply, "{sv}", BB_FMT_COUNT, "u", count);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

int bus_append_planes(sd_bus_message *reply, Buffer *buf) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(tuu)");
        for (unsigned i = 0; r >= 0 && i < buf->n_planes; i++)
                r = sd_bus_message_append(reply, "(tuu)", buf->planes[i].length,
                                          buf->planes[i].bytesperline, buf->planes[i].offset);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int append_info(sd_bus_message *reply, Buffer *buf, bool read_only) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}",
                                  BB_INFO_ID, "t", buf->id,
                                  BB_INFO_KIND, "s", buf->kind,
                                  BB_INFO_SIZE, "t", buf->size,
                                  BB_INFO_NAME, "s", buf->name,
                                  BB_INFO_READ_ONLY, "b", read_only,
                                  BB_INFO_OWNER_UID, "u", (uint32_t) buf->owner_uid,
                                  BB_INFO_FROZEN, "b", buf->frozen,
                                  BB_INFO_PAGE_SIZE, "t", buf->page_size,
                                  BB_INFO_PREFAULTED, "b", buf->prefaulted);
        if (r >= 0 && buf->shm_name)
                r = sd_bus_message_append(reply, "{sv}", BB_INFO_SHM_NAME, "s", buf->shm_name);
        if (r >= 0 && buf->shmid >= 0)
                r = sd_bus_message_append(reply, "{sv}", BB_INFO_SHMID, "i", (int32_t) buf->shmid);
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", BB_INFO_PLANES);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', "a(tuu)");
        if (r >= 0)
                r = bus_append_planes(reply, buf);
        for (unsigned i = 0; r >= 0 && i < 2; i++)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;

        if (buf->queue) {
                r = bus_append_v4l2_format_entries(reply, v4l2_queue_format(buf->queue));
                if (r >= 0)
                        r = sd_bus_message_append(reply, "{sv}", BB_INFO_INDEX, "u", buf->v4l2_index);
                if (r < 0)
                        return r;
        }

        return sd_bus_message_close_container(reply);
}

int bus_append_fds_and_info(sd_bus_message *reply, Buffer *buf, bool read_only, const int fds[]) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "h");
        if (r < 0)
                return r;
        for (unsigned i = 0; buffer_has_fds(buf) && i < buf->n_planes; i++) {
                r = sd_bus_message_append(reply, "h", fds[i]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return append_info(reply, buf, read_only);
}

static int method_open(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(close_fds) int fds[BB_PLANES_MAX] = FD_ARRAY_INIT;
        Manager *m = userdata;
        BusOption options[] = { {} };
        BrokerError err = {};
        uint64_t now = now_usec(), id;
        const char *token;
        const Token *t;
        Handout h = {};
        bool read_only;
        Caller caller;
        Buffer *buf;
        int r;

        r = sd_bus_message_read(msg, "s", &token);
        if (r < 0)
                return r;
        r = bus_read_options(msg, options, error);
        if (r < 0)
                return r;

        /* What the call will change, to take it back if the reply is refused. */
        t = broker_find_token(m->broker, token, now);
        /* A sysv buffer's reply carries no fd: any client may open one. */
        if (t && !buffer_has_fds(t->buffer))
                r = bus_get_caller(m, msg, &caller, error);
        else
                r = bus_get_fd_caller(m, msg, &caller, error);
        if (r < 0)
                return r;
        if (t) {
                h.drop_holds = !broker_holds(m->broker, t->buffer, caller.name);
                h.restore_token = t->single_use;
                memcpy(h.token, t->id, sizeof(h.token));
                h.token_owner = t->owner_uid;
                h.token_opts = (ShareOptions) {
                        .read_only = t->read_only,
                        .single_use = t->single_use,
                        .bound_uid = t->bound_uid,
                };
                h.token_expire_usec = t->expire_usec;
        }

        r = broker_open(m->broker, &caller, token, now, &err, &buf, &read_only, fds);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);
        id = buf->id;
        h.client = caller.name;
        h.uid = caller.uid;
        h.ids = &id;
        h.n_ids = 1;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "o", buf->path);
        if (r >= 0)
                r = bus_append_fds_and_info(reply, buf, read_only, fds);
        if (r >= 0)
                r = bus_send_reply(m, reply, &h);
        return r;
}

/* Device paths are absolute, plain and short; the allocator checks the rest
 * (what the path really is) on the opened inode. */
static int validate_device_path(const char *path, sd_bus_error *error) {
        if (path[0] != '/')
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Device path '%.*s' is not absolute", (int) utf8_prefix_len(path, 256), path);
        if (strlen(path) >= PATH_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Device path is %zu bytes long, at most %u are allowed",
                                         strlen(path), PATH_MAX - 1);
        for (const char *p = path; (p = strstr(p, "/..")); p += 3)
                if (p[3] == '/' || p[3] == 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Device path '%.*s' contains '..'",
                                                 (int) utf8_prefix_len(path, 256), path);
        return 0;
}

static int method_create_v4l2(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_free_ Buffer **bufs = NULL;
        _cleanup_free_ uint64_t *ids = NULL;
        Manager *m = userdata;
        V4L2Request req = {};
        const char *type = NULL;
        BusOption format[] = {
                { BB_FMT_WIDTH, 'u', &req.width },
                { BB_FMT_HEIGHT, 'u', &req.height },
                { BB_FMT_FOURCC, 'F', &req.fourcc },
                { BB_FMT_TYPE, 's', &type },
                {}
        };
        BusOption options[] = {
                { BB_OPT_PERSISTENT, 'b', &req.persistent },
                { BB_OPT_TTL_USEC, 't', &req.ttl_usec },
                { BB_OPT_READ_ONLY, 'b', &req.read_only },
                { BB_OPT_NAME, 's', &req.name },
                {}
        };
        char default_name[BB_NAME_MAX + 1];
        BrokerError err = {};
        Caller caller;
        unsigned n;
        int r;

        r = sd_bus_message_read(msg, "su", &req.device, &req.count);
        if (r < 0)
                return r;
        r = bus_read_options(msg, format, error);
        if (r < 0)
                return r;
        r = bus_read_options(msg, options, error);
        if (r < 0)
                return r;

        r = validate_device_path(req.device, error);
        if (r < 0)
                return r;
        if (req.count == 0 || req.count > VIDEO_MAX_FRAME)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Buffer count %u is out of range 1..%u", req.count, VIDEO_MAX_FRAME);
        if (type) {
                req.type = bb_v4l2_type_from_name(type);
                if (req.type == 0)
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Format type '%.*s' is none of capture, output, capture-mplane, output-mplane",
                                                 (int) utf8_prefix_len(type, 64), type);
        }
        if (bus_option_seen(options, BB_OPT_TTL_USEC) && req.ttl_usec == 0)
                return sd_bus_error_set(error, SD_BUS_ERROR_INVALID_ARGS,
                                        "Option 'ttl-usec' must be greater than 0 (leave it out for no expiry)");
        if (!req.name) {
                const char *base = strrchr(req.device, '/') + 1;

                /* A name is shown in replies: never half a character. */
                if (!*base)
                        base = "v4l2";
                snprintf(default_name, sizeof(default_name), "%.*s-", (int) utf8_prefix_len(base, 200), base);
                req.name = default_name;
        }
        if (strlen(req.name) > BB_NAME_MAX - 3)     /* room for the index */
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Option 'name' is %zu bytes long, at most %u are allowed",
                                         strlen(req.name), BB_NAME_MAX - 3);

        r = bus_get_caller(m, msg, &caller, error);
        if (r < 0)
                return r;

        r = broker_create_v4l2(m->broker, &caller, &req, now_usec(), &err, &bufs, &n);
        if (r < 0)
                return bus_map_broker_error(error, r, &err);
        if (req.ttl_usec > 0)
                manager_schedule_expiry(m);
        ids = calloc(n, sizeof(uint64_t));
        if (!ids) {
                for (unsigned i = 0; i < n; i++)
                        broker_drop_buffer(m->broker, bufs[i]);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < n; i++)
                ids[i] = bufs[i]->id;

        /* No fds here: a default system bus carries at most 16 per message,
         * and 32 buffers of 3 planes are 96. Each buffer's fds come from its
         * own Buffer1.OpenFds() call. */
        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "o");
        for (unsigned i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(reply, "o", bufs[i]->path);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = bus_append_v4l2_format(reply, v4l2_queue_format(bufs[0]->queue), n);
        if (r >= 0)
                r = bus_send_reply(m, reply, &(Handout) {
                        .client = caller.name, .uid = caller.uid, .ids = ids, .n_ids = n, .drop_buffers = true,
                });
        if (r < 0)
                /* Nobody will ever learn of these buffers: undo them. */
                for (unsigned i = 0; i < n; i++) {
                        Buffer *buf = broker_find_buffer(m->broker, ids[i]);
                        if (buf)
                                broker_drop_buffer(m->broker, buf);
                }
        return r;
}

static int method_list_buffers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        Caller caller;
        Buffer *buf;
        int r;

        r = bus_get_caller(m, msg, &caller, error);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', BB_LIST_ENTRY_SIGNATURE);
        if (r < 0)
                return r;

        BROKER_FOREACH_BUFFER(buf, m->broker) {
                if (!broker_may_see(m->broker, &caller, buf))
                        continue;
                r = sd_bus_message_append(reply, BB_LIST_ENTRY_SIGNATURE,
                                          buf->path, buf->id, buf->name, buf->kind, buf->size,
                                          (uint32_t) buf->owner_uid, buf->persistent, buf->frozen,
                                          (uint32_t) buf->n_holds, buf->created_usec);
                if (r < 0)
                        return r;
        }

        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* The named form of ListBuffers: each buffer's path and its Buffer1
 * properties by name, so that a field can be added without breaking anyone.
 * Unlike GetManagedObjects it does not make the caller a listener. */
static int method_list_buffer_properties(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        Caller caller;
        Buffer *buf;
        int r;

        r = bus_get_caller(m, msg, &caller, error);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', BB_LIST_PROPERTIES_ENTRY_SIGNATURE);
        BROKER_FOREACH_BUFFER(buf, m->broker) {
                if (r < 0)
                        break;
                if (!broker_may_see(m->broker, &caller, buf))
                        continue;
                r = sd_bus_message_open_container(reply, 'r', "oa{sv}");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "o", buf->path);
                if (r >= 0)
                        r = bus_append_buffer_properties(reply, buf);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* ------------------------------------------------------ properties --- */

static int property_get_version(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply,
                                void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int property_get_limits(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply,
                               void *userdata, sd_bus_error *error) {
        const BrokerLimits *l = &((Manager *) userdata)->broker->limits;

        return sd_bus_message_append(reply, "a{sv}", 12,
                                     BB_LIMIT_MAX_BUFFER_SIZE, "t", l->max_buffer_size,
                                     BB_LIMIT_MAX_BUFFERS_PER_UID, "t", l->max_buffers_per_uid,
                                     BB_LIMIT_MAX_BYTES_PER_UID, "t", l->max_bytes_per_uid,
                                     BB_LIMIT_MAX_TOKENS_PER_UID, "t", l->max_tokens_per_uid,
                                     BB_LIMIT_MAX_BUFFERS, "t", l->max_buffers,
                                     BB_LIMIT_MAX_BYTES, "t", l->max_bytes,
                                     BB_LIMIT_MAX_TOKENS, "t", l->max_tokens,
                                     BB_LIMIT_MAX_FDS, "t", l->max_fds,
                                     BB_LIMIT_MAX_PRIVATE_PER_UID, "t", (uint64_t) PRIVATE_PER_UID,
                                     BB_LIMIT_MAX_PRIVATE, "t", (uint64_t) PRIVATE_MAX,
                                     BB_LIMIT_MAX_LISTENERS_PER_UID, "t", (uint64_t) LISTENERS_PER_UID,
                                     BB_LIMIT_MAX_LISTENERS, "t", (uint64_t) LISTENERS_MAX);
}

static int property_get_stats(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply,
                              void *userdata, sd_bus_error *error) {
        const BrokerStats *s = &((Manager *) userdata)->broker->stats;

        return sd_bus_message_append(reply, "a{sv}", 4,
                                     BB_STAT_BUFFERS, "t", s->buffers,
                                     BB_STAT_BYTES, "t", s->bytes,
                                     BB_STAT_CLIENTS, "t", s->clients,
                                     BB_STAT_TOKENS, "t", s->tokens);
}

const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Limits", "a{sv}", property_get_limits, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Stats", "a{sv}", property_get_stats, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Create",
                                SD_BUS_ARGS("s", kind, "s", name, "t", size, "a{sv}", options),
                                SD_BUS_RESULT("o", buffer, "ah", fds, "a{sv}", info),
                                method_create,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateMemfd",
                                SD_BUS_ARGS("s", name, "t", size, "a{sv}", options),
                                SD_BUS_RESULT("o", buffer, "h", fd, "t", size),
                                method_create_memfd,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateMemfds",
                                SD_BUS_ARGS("s", name, "t", size, "u", count, "a{sv}", options),
                                SD_BUS_RESULT("a(oht)", buffers),
                                method_create_memfds,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ReleaseBuffers",
                                SD_BUS_ARGS("ao", buffers),
                                SD_BUS_NO_RESULT,
                                method_release_buffers,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Open",
                                SD_BUS_ARGS("s", token, "a{sv}", options),
                                SD_BUS_RESULT("o", buffer, "ah", fds, "a{sv}", info),
                                method_open,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateV4L2",
                                SD_BUS_ARGS("s", device, "u", count, "a{sv}", format, "a{sv}", options),
                                SD_BUS_RESULT("ao", buffers, "a{sv}", format),
                                method_create_v4l2,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("OpenPrivateConnection",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("h", socket),
                                bus_method_open_private_connection,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListBuffers",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a" BB_LIST_ENTRY_SIGNATURE, buffers),
                                method_list_buffers,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListBufferProperties",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a" BB_LIST_PROPERTIES_ENTRY_SIGNATURE, buffers),
                                method_list_buffer_properties,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Subscribe",
                                SD_BUS_NO_ARGS,
                                SD_BUS_NO_RESULT,
                                bus_method_subscribe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Unsubscribe",
                                SD_BUS_NO_ARGS,
                                SD_BUS_NO_RESULT,
                                bus_method_unsubscribe,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        /* Sent by bus-notify.c to those who may see the buffer, never
         * broadcast (sd_bus_emit_signal() would). */
        SD_BUS_SIGNAL_WITH_ARGS("BufferReleased",
                                SD_BUS_ARGS("o", buffer, "t", id, "s", reason),
                                0),
        SD_BUS_VTABLE_END
};

int bus_manager_register(Manager *m, sd_bus *bus) {
        int r;

        r = sd_bus_add_object_vtable(bus, NULL, BB_MANAGER_PATH, BB_MANAGER_INTERFACE, manager_vtable, m);
        if (r < 0)
                return r;
        return bus_notify_register(m, bus);
}
