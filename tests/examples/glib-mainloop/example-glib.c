/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libbufbroker from a GLib main loop. The library knows no GLib: a small
 * GSource (ClientSource below, the part to copy) drives a bb_client through
 * the four calls any event loop needs:
 *
 *   prepare   bb_client_get_events() → the fd's conditions,
 *             bb_client_get_timeout() → how long the loop may sleep
 *   check     did the fd fire, or is the timeout due?
 *   dispatch  bb_client_process(c, 0): the callbacks run from here
 *
 * The flow, every step a callback: create a buffer → map it, write a
 * message → share it read-only → open the token on a second connection →
 * read the message there → release both holds → quit the loop. Build:
 *
 *   cc example-glib.c $(pkg-config --cflags --libs bufbroker glib-2.0)
 *
 * Run: example-glib [--session]   (default: the system bus, or the one
 *      DBUS_SYSTEM_BUS_ADDRESS names)
 * Exit status 0 when the second connection read what the first wrote.
 */
#include <bufbroker.h>
#include <errno.h>
#include <stdbool.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------- a GSource for a bb_client --- */

typedef struct ClientSource {
        GSource source;
        bb_client *client;
        gpointer fd_tag;
} ClientSource;

/* bb_client_get_timeout() is absolute CLOCK_MONOTONIC microseconds. */
static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static gboolean client_source_prepare(GSource *source, gint *timeout_ms) {
        ClientSource *s = (ClientSource *) source;
        uint64_t until, now;
        int events;

        /* Both change after every call on the client: ask each iteration. */
        events = bb_client_get_events(s->client);
        if (events < 0 || bb_client_get_timeout(s->client, &until) < 0) {
                *timeout_ms = 0;        /* a broken connection: let dispatch report it */
                return TRUE;
        }
        g_source_modify_unix_fd(source, s->fd_tag, (GIOCondition) events);

        if (until == UINT64_MAX) {
                *timeout_ms = -1;       /* wait for the fd alone */
                return FALSE;
        }
        now = now_usec();
        if (until <= now) {
                *timeout_ms = 0;        /* something waits already: do not sleep */
                return TRUE;
        }
        *timeout_ms = (gint) MIN((until - now + 999) / 1000, (uint64_t) G_MAXINT);
        return FALSE;
}

static gboolean client_source_check(GSource *source) {
        ClientSource *s = (ClientSource *) source;
        uint64_t until;

        if (g_source_query_unix_fd(source, s->fd_tag) != 0)
                return TRUE;
        return bb_client_get_timeout(s->client, &until) < 0 || until <= now_usec();
}

static gboolean client_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
        ClientSource *s = (ClientSource *) source;
        int r;

        r = bb_client_process(s->client, 0);
        if (r < 0) {
                fprintf(stderr, "connection to the broker lost: %s\n", strerror(-r));
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static void client_source_finalize(GSource *source) {
        bb_client_unref(((ClientSource *) source)->client);
}

static GSourceFuncs client_source_funcs = {
        client_source_prepare,
        client_source_check,
        client_source_dispatch,
        client_source_finalize,
        NULL,
        NULL,
};

/* Attach c to context (NULL: the default one). The source holds a reference
 * on c; g_source_destroy() and g_source_unref() end it. */
static GSource *client_source_attach(bb_client *c, GMainContext *context) {
        ClientSource *s = (ClientSource *) g_source_new(&client_source_funcs, sizeof(ClientSource));

        s->client = bb_client_ref(c);
        s->fd_tag = g_source_add_unix_fd(&s->source, bb_client_get_fd(c), G_IO_IN);
        g_source_set_name(&s->source, "bufbroker");
        g_source_attach(&s->source, context);
        return &s->source;
}

/* ---------------------------------------------------------------- the flow --- */

static const char message[] = "hello from the GLib main loop example";

typedef struct App {
        GMainLoop *loop;
        int status;
        bb_client *owner;       /* creates, writes and shares */
        bb_client *reader;      /* a second connection: opens the token */
        bb_buffer *buffer;      /* the owner's handle */
} App;

static void fail(App *app, const char *step, int error, const char *error_message) {
        fprintf(stderr, "%s failed: %s\n", step, error_message ? error_message : strerror(-error));
        app->status = 1;
        g_main_loop_quit(app->loop);
}

static void on_released(bb_client *c, int error, const char *error_name, const char *error_message,
                        void *userdata) {
        App *app = userdata;

        if (error < 0) {
                fail(app, "release", error, error_message);
                return;
        }
        printf("released\n");
        app->status = 0;
        g_main_loop_quit(app->loop);
}

static void on_reader_released(bb_client *c, int error, const char *error_name, const char *error_message,
                               void *userdata) {
        App *app = userdata;
        int r;

        if (error < 0) {
                fail(app, "release (reader)", error, error_message);
                return;
        }
        r = bb_buffer_release_async(app->buffer, on_released, app, NULL);
        if (r < 0)
                fail(app, "release", r, NULL);
}

static void on_opened(bb_client *c, int error, const char *error_name, const char *error_message,
                      bb_buffer *copy, void *userdata) {
        App *app = userdata;
        const char *data;
        size_t size;
        int r;

        if (error < 0) {
                fail(app, "open", error, error_message);
                return;
        }
        r = bb_buffer_map(copy, (void **) &data, &size);
        if (r < 0) {
                fail(app, "map (reader)", r, NULL);
                return;
        }
        printf("read back: %s (writable: %s)\n", data, bb_buffer_is_writable(copy) ? "yes" : "no");
        if (strcmp(data, message) != 0 || bb_buffer_is_writable(copy)) {
                fail(app, "compare", -EBADMSG, "the reader did not see the message read-only");
                return;
        }
        /* copy is borrowed: it is valid in this callback only. */
        r = bb_buffer_release_async(copy, on_reader_released, app, NULL);
        if (r < 0)
                fail(app, "release (reader)", r, NULL);
}

static void on_shared(bb_client *c, int error, const char *error_name, const char *error_message,
                      const char *token, void *userdata) {
        App *app = userdata;
        int r;

        if (error < 0) {
                fail(app, "share", error, error_message);
                return;
        }
        printf("token: %s\n", token);
        r = bb_buffer_open_async(app->reader, token, on_opened, app, NULL);
        if (r < 0)
                fail(app, "open", r, NULL);
}

static void on_created(bb_client *c, int error, const char *error_name, const char *error_message,
                       bb_buffer *buffer, void *userdata) {
        App *app = userdata;
        char *data;
        size_t size;
        int r;

        if (error < 0) {
                fail(app, "create", error, error_message);
                return;
        }
        app->buffer = bb_buffer_ref(buffer);    /* keep it beyond this callback */
        printf("created buffer %llu, %llu bytes\n", (unsigned long long) bb_buffer_id(buffer),
               (unsigned long long) bb_buffer_size(buffer));
        r = bb_buffer_map(buffer, (void **) &data, &size);
        if (r < 0) {
                fail(app, "map", r, NULL);
                return;
        }
        memcpy(data, message, sizeof(message));
        r = bb_buffer_share_async(buffer, BB_SHARE_READ_ONLY, 0, 0, on_shared, app, NULL);
        if (r < 0)
                fail(app, "share", r, NULL);
}

static int connect_to(bool session, bb_client **ret) {
        return session ? bb_client_new_user(ret) : bb_client_new(ret);
}

int main(int argc, char *argv[]) {
        bool session = argc == 2 && strcmp(argv[1], "--session") == 0;
        GSource *owner_source, *reader_source;
        App app = { 0 };
        int r;

        if (argc > 2 || (argc == 2 && !session)) {
                fprintf(stderr, "usage: %s [--session]\n", argv[0]);
                return 2;
        }

        app.status = 1;
        r = connect_to(session, &app.owner);
        if (r >= 0)
                r = connect_to(session, &app.reader);
        if (r < 0) {
                fprintf(stderr, "connecting: %s\n", strerror(-r));
                return 1;
        }
        app.loop = g_main_loop_new(NULL, FALSE);
        owner_source = client_source_attach(app.owner, NULL);
        reader_source = client_source_attach(app.reader, NULL);

        r = bb_buffer_create_async(app.owner, "example", 4096, 0, 0, on_created, &app, NULL);
        if (r < 0)
                fail(&app, "create", r, NULL);
        else
                g_main_loop_run(app.loop);      /* until a callback quits it */

        bb_buffer_unref(app.buffer);
        g_source_destroy(owner_source);
        g_source_unref(owner_source);
        g_source_destroy(reader_source);
        g_source_unref(reader_source);
        bb_client_unref(app.reader);
        bb_client_unref(app.owner);
        g_main_loop_unref(app.loop);
        return app.status;
}
