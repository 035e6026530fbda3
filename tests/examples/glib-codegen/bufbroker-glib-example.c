/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A bufbroker client in GLib, written against the proxies that gdbus-codegen
 * generates from protocol/org.bufbroker.Broker1.xml at build time
 * (bufbroker-generated.h; see meson.build next to this file). It needs no
 * libbufbroker: the D-Bus contract is all there is.
 *
 * Three steps, each its own process, as a producer and a consumer would be:
 *
 *   bufbroker-glib-example share          create a persistent memfd buffer,
 *                                         write a message into it, share it
 *                                         read-only; prints its path and token
 *   bufbroker-glib-example open TOKEN     (any process, any uid) open it,
 *                                         check the message, check that the
 *                                         descriptor cannot be mapped writable
 *                                         and what the daemon refuses
 *   bufbroker-glib-example release PATH   (the owner) end its persistence and
 *                                         see BufferReleased come
 *
 * The system bus by default (DBUS_SYSTEM_BUS_ADDRESS is honoured); --session
 * as the first argument for a daemon started with `bufbrokerd --user`. Every
 * failure prints the D-Bus error name and exits 1.
 *
 * The one thing to know about descriptors with GDBus: a D-Bus "h" value is
 * only an index into the message's list of descriptors. The generated call
 * functions take and return that list as a GUnixFDList (because the contract
 * carries the org.gtk.GDBus.C.UnixFD annotation); the descriptor itself comes
 * from g_unix_fd_list_get(list, index).
 */
#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bufbroker-generated.h"

#define BUS_NAME "org.bufbroker.Broker1"
#define MANAGER_PATH "/org/bufbroker/Broker1"
/* The same message in every example, so that one example's share can be
 * opened by another. */
#define MESSAGE "Hello from a bufbroker example"

static GBusType bus_type = G_BUS_TYPE_SYSTEM;

/* Print what failed, with the D-Bus error name the daemon sent (such as
 * org.bufbroker.Error.NoSuchToken), and exit 1. */
G_GNUC_NORETURN static void die(const char *what, GError *error) {
        g_autofree char *name = g_dbus_error_get_remote_error(error);

        if (name)
                g_dbus_error_strip_remote_error(error);
        fprintf(stderr, "%s: %s: %s\n", what, name ? name : "(not a D-Bus error)", error->message);
        exit(EXIT_FAILURE);
}

/* A check of ours failed: say what, exit 1. */
G_GNUC_NORETURN G_GNUC_PRINTF(1, 2) static void fail(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(EXIT_FAILURE);
}

/* The broker's manager object, /org/bufbroker/Broker1. */
static BufbrokerBroker1 *manager_proxy(void) {
        g_autoptr(GError) error = NULL;
        BufbrokerBroker1 *manager;

        manager = bufbroker_broker1_proxy_new_for_bus_sync(
                bus_type, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, BUS_NAME, MANAGER_PATH, NULL,
                &error);
        if (!manager)
                die("connecting to " BUS_NAME, error);
        return manager;
}

/* One buffer object, /org/bufbroker/Broker1/buffer/ID. Its properties are
 * loaded at once (the daemon shows them to the owner and holders only). */
static BufbrokerBuffer1 *buffer_proxy(const char *path) {
        g_autoptr(GError) error = NULL;
        BufbrokerBuffer1 *buffer;

        buffer = bufbroker_buffer1_proxy_new_for_bus_sync(
                bus_type, G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START, BUS_NAME, path, NULL, &error);
        if (!buffer)
                die(path, error);
        return buffer;
}

/* The descriptor that handle (a GVariant of type "h") stands for, taken from
 * the reply's descriptor list: a fresh dup the caller closes. */
static int fd_from_handle(GUnixFDList *fd_list, GVariant *handle) {
        g_autoptr(GError) error = NULL;
        int fd;

        if (!fd_list)
                fail("the reply carries no descriptors (was the proxy generated without "
                     "org.gtk.GDBus.C.UnixFD?)");
        fd = g_unix_fd_list_get(fd_list, g_variant_get_handle(handle), &error);
        if (fd < 0)
                die("g_unix_fd_list_get", error);
        return fd;
}

static int cmd_share(void) {
        g_autoptr(GError) error = NULL;
        g_autoptr(BufbrokerBroker1) manager = manager_proxy();
        g_autoptr(BufbrokerBuffer1) buffer = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) fd_handle = NULL;
        g_autofree char *path = NULL, *token = NULL;
        GVariantBuilder options;
        guint64 size;
        char *p;
        int fd;

        /* Options are a{sv}. "persistent" keeps the buffer after this
         * process exits, until its owner releases it. */
        g_variant_builder_init(&options, G_VARIANT_TYPE_VARDICT);
        g_variant_builder_add(&options, "{sv}", "persistent", g_variant_new_boolean(TRUE));
        if (!bufbroker_broker1_call_create_memfd_sync(manager, "glib-example", 4096,
                                                      g_variant_builder_end(&options),
                                                      NULL,     /* no descriptors to send */
                                                      &path, &fd_handle, &size, &fds, NULL,
                                                      &error))
                die("CreateMemfd", error);

        /* The memfd is sealed against shrinking and growing, so a mapping of
         * its whole size stays valid for everyone. */
        fd = fd_from_handle(fds, fd_handle);
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                fail("mmap: %s", g_strerror(errno));
        memcpy(p, MESSAGE, sizeof(MESSAGE));
        munmap(p, size);
        close(fd);

        /* A read-only token: whoever opens it gets an O_RDONLY descriptor. */
        buffer = buffer_proxy(path);
        g_variant_builder_init(&options, G_VARIANT_TYPE_VARDICT);
        g_variant_builder_add(&options, "{sv}", "read-only", g_variant_new_boolean(TRUE));
        if (!bufbroker_buffer1_call_share_sync(buffer, g_variant_builder_end(&options), &token,
                                               NULL, &error))
                die("Share", error);

        printf("buffer %s\ntoken %s\n", path, token);
        return EXIT_SUCCESS;
}

/* A call that must fail with the D-Bus error `expected`: shows how a daemon
 * error arrives in GLib (a GError whose remote name is the D-Bus name). */
static void expect_error(const char *what, gboolean ok, GError *error, const char *expected) {
        g_autofree char *name = NULL;

        if (ok)
                fail("%s succeeded; it must be refused", what);
        name = g_dbus_error_get_remote_error(error);
        if (g_strcmp0(name, expected) != 0)
                die(what, error);
        printf("%s refused: %s\n", what, name);
}

static int cmd_open(const char *token) {
        g_autoptr(GError) error = NULL;
        g_autoptr(BufbrokerBroker1) manager = manager_proxy();
        g_autoptr(BufbrokerBuffer1) buffer = NULL;
        g_autoptr(GUnixFDList) fds = NULL;
        g_autoptr(GVariant) fd_handles = NULL, info = NULL, fd_handle = NULL;
        g_autofree char *path = NULL;
        gboolean read_only = FALSE, ok;
        guint32 owner_uid = 0;
        guint64 size = 0;
        char *p;
        int fd;

        if (!bufbroker_broker1_call_open_sync(manager, token,
                                              g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0),
                                              NULL, &path, &fd_handles, &info, &fds, NULL, &error))
                die("Open", error);

        /* fds is "ah": one handle per plane; a memfd has one. */
        if (g_variant_n_children(fd_handles) != 1)
                fail("Open returned %zu descriptors, want 1", g_variant_n_children(fd_handles));
        fd_handle = g_variant_get_child_value(fd_handles, 0);
        fd = fd_from_handle(fds, fd_handle);

        g_variant_lookup(info, "size", "t", &size);
        g_variant_lookup(info, "read-only", "b", &read_only);
        g_variant_lookup(info, "owner-uid", "u", &owner_uid);
        if (!read_only || size < sizeof(MESSAGE))
                fail("Open's info is not that of the shared buffer: %s", g_variant_print(info, TRUE));

        p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                fail("mmap read-only: %s", g_strerror(errno));
        if (memcmp(p, MESSAGE, sizeof(MESSAGE)) != 0)
                fail("the buffer does not hold the message: \"%.64s\"", p);
        printf("read: %s\n", p);
        munmap(p, size);

        /* The token was read-only: the descriptor is O_RDONLY, and the
         * kernel refuses a writable shared mapping of it. */
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED)
                fail("a writable mapping of a read-only descriptor succeeded");
        if (errno != EACCES)
                fail("mmap writable: %s, want EACCES", g_strerror(errno));
        printf("writable mapping refused: %s\n", g_strerror(errno));

        /* Errors from the daemon arrive as a GError with its D-Bus name. */
        buffer = buffer_proxy(path);
        if (owner_uid != getuid()) {
                /* Only the owner (or root) may freeze or share a buffer. */
                ok = bufbroker_buffer1_call_freeze_sync(buffer, NULL, &error);
                expect_error("Freeze by another uid", ok, error, "org.bufbroker.Error.NotOwner");
                g_clear_error(&error);
        }
        ok = bufbroker_broker1_call_open_sync(manager, "00000000000000000000000000000000",
                                              g_variant_new_array(G_VARIANT_TYPE("{sv}"), NULL, 0),
                                              NULL, NULL, NULL, NULL, NULL, NULL, &error);
        expect_error("Open of an unknown token", ok, error, "org.bufbroker.Error.NoSuchToken");
        g_clear_error(&error);

        /* Let go by closing the descriptor: the descriptor is the lease, and
         * the hold ends with it (and with this connection). Release() would
         * do it too, but for the owner's uid it would also end the buffer's
         * persistence: that is the release step's. */
        close(fd);
        return EXIT_SUCCESS;
}

static void on_buffer_released(BufbrokerBroker1 *manager, const char *path, guint64 id,
                               const char *reason, gpointer userdata) {
        const char *want = ((const char **) userdata)[0];

        (void) manager;
        (void) id;
        (void) reason;
        if (strcmp(path, want) == 0)
                ((const char **) userdata)[1] = "released";
}

static gboolean on_timeout(gpointer userdata) {
        ((const char **) userdata)[1] = "timeout";
        return G_SOURCE_REMOVE;
}

static int cmd_release(const char *path) {
        g_autoptr(GError) error = NULL;
        g_autoptr(BufbrokerBroker1) manager = manager_proxy();
        g_autoptr(BufbrokerBuffer1) buffer = buffer_proxy(path);
        const char *state[2] = { path, NULL };
        guint timeout;

        /* The generated proxy turns the BufferReleased signal into the GObject
         * signal "buffer-released"; connect before the call, so that it cannot
         * be missed. */
        g_signal_connect(manager, "buffer-released", G_CALLBACK(on_buffer_released), state);

        /* Signals are not broadcast: the broker sends each copy to the
         * buffer's holders and to listeners that may see it. This connection
         * holds nothing, so it becomes a listener. */
        if (!bufbroker_broker1_call_subscribe_sync(manager, NULL, &error))
                die("Subscribe", error);

        /* For the owner this also ends the buffer's persistence: nobody else
         * holds it, so the daemon drops it. */
        if (!bufbroker_buffer1_call_release_sync(buffer, NULL, &error))
                die("Release", error);

        timeout = g_timeout_add_seconds(10, on_timeout, state);
        while (!state[1])
                g_main_context_iteration(NULL, TRUE);
        if (strcmp(state[1], "released") != 0)
                fail("no BufferReleased for %s within 10 s", path);
        g_source_remove(timeout);
        printf("released %s\n", path);
        return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
        if (argc > 1 && strcmp(argv[1], "--session") == 0) {
                bus_type = G_BUS_TYPE_SESSION;
                argv++;
                argc--;
        }
        if (argc == 2 && strcmp(argv[1], "share") == 0)
                return cmd_share();
        if (argc == 3 && strcmp(argv[1], "open") == 0)
                return cmd_open(argv[2]);
        if (argc == 3 && strcmp(argv[1], "release") == 0)
                return cmd_release(argv[2]);
        fprintf(stderr, "usage: %s [--session] share | open TOKEN | release PATH\n", argv[0]);
        return 2;
}
