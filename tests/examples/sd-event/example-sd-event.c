/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libbufbroker from an sd-event loop, every step a callback:
 *
 *   create a buffer → map it, write a message → share it read-only →
 *   open the token on a second connection → read the message there →
 *   release both holds → leave the loop
 *
 * Nothing blocks: each call returns at once, and its callback runs from
 * sd_event_loop() when the broker's reply arrives. Build:
 *
 *   cc example-sd-event.c $(pkg-config --cflags --libs bufbroker libsystemd)
 *
 * Run: example-sd-event [--session]   (default: the system bus, or the one
 *      DBUS_SYSTEM_BUS_ADDRESS names)
 * Exit status 0 when the second connection read what the first wrote.
 */
#include <bufbroker.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-event.h>

static const char message[] = "hello from the sd-event example";

typedef struct App {
        sd_event *loop;
        bb_client *owner;       /* creates, writes and shares */
        bb_client *reader;      /* a second connection: opens the token */
        bb_buffer *buffer;      /* the owner's handle */
} App;

/* Report a failed step and leave the loop with exit status 1. */
static void fail(App *app, const char *step, int error, const char *error_message) {
        fprintf(stderr, "%s failed: %s\n", step, error_message ? error_message : strerror(-error));
        sd_event_exit(app->loop, 1);
}

static void on_released(bb_client *c, int error, const char *error_name, const char *error_message,
                        void *userdata) {
        App *app = userdata;

        if (error < 0) {
                fail(app, "release", error, error_message);
                return;
        }
        printf("released\n");
        sd_event_exit(app->loop, 0);
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
        /* A read-only token gives an O_RDONLY fd: the mapping is PROT_READ. */
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
        App app = { 0 };
        int r;

        if (argc > 2 || (argc == 2 && !session)) {
                fprintf(stderr, "usage: %s [--session]\n", argv[0]);
                return 2;
        }

        r = sd_event_default(&app.loop);
        if (r >= 0)
                r = connect_to(session, &app.owner);
        if (r >= 0)
                r = connect_to(session, &app.reader);
        /* NULL: the default loop of this thread, which app.loop is. */
        if (r >= 0)
                r = bb_client_attach_event(app.owner, NULL, 0);
        if (r >= 0)
                r = bb_client_attach_event(app.reader, app.loop, 0);
        if (r >= 0)
                r = bb_buffer_create_async(app.owner, "example", 4096, 0, 0, on_created, &app, NULL);
        if (r < 0) {
                fprintf(stderr, "setting up: %s\n", strerror(-r));
                return 1;
        }

        r = sd_event_loop(app.loop);    /* until a callback calls sd_event_exit() */

        bb_buffer_unref(app.buffer);
        bb_client_unref(app.reader);
        bb_client_unref(app.owner);
        sd_event_unref(app.loop);
        return r == 0 ? 0 : 1;
}
