#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A bufbroker client in Python with dbus-python (Debian: python3-dbus).

Three steps, each its own process, as a producer and a consumer would be:

  bufbroker-dbus-python.py share          create a persistent memfd buffer,
                                          write a message into it, share it
                                          read-only; prints its path and token
  bufbroker-dbus-python.py open TOKEN     (any process, any uid) open it, check
                                          the message, check that the
                                          descriptor cannot be mapped writable
                                          and what the daemon refuses
  bufbroker-dbus-python.py release PATH   (the owner) end its persistence and
                                          see BufferReleased come

The system bus by default (DBUS_SYSTEM_BUS_ADDRESS is honoured); --session as
the first argument for a daemon started with `bufbrokerd --user`. Every
failure prints the D-Bus error name and exits 1.

Descriptors: libdbus negotiates fd passing by itself, and dbus-python hands
each "h" value over as a dbus.types.UnixFd; take() gives the descriptor
(ours to close). Integers: dbus-python sends a plain int inside a variant
as "i"; the daemon takes any integer type whose value fits, so options such
as "ttl-usec" need no dbus.UInt64().
"""

import mmap
import os
import sys

import dbus

BUS_NAME = "org.bufbroker.Broker1"
MANAGER_PATH = "/org/bufbroker/Broker1"
MANAGER_INTERFACE = "org.bufbroker.Broker1"
BUFFER_INTERFACE = "org.bufbroker.Buffer1"
# The same message in every example, so that one example's share can be
# opened by another.
MESSAGE = b"Hello from a bufbroker example"


class Failed(Exception):
    """A check of ours failed."""


def connect(session):
    return dbus.SessionBus() if session else dbus.SystemBus()


def manager(bus):
    return dbus.Interface(bus.get_object(BUS_NAME, MANAGER_PATH), MANAGER_INTERFACE)


def buffer(bus, path):
    return dbus.Interface(bus.get_object(BUS_NAME, path), BUFFER_INTERFACE)


def share(bus):
    # Options are a{sv}: dbus-python makes a variant of each value.
    path, fd, size = manager(bus).CreateMemfd(
        "python-example", 4096, {"persistent": True}, signature="sta{sv}"
    )
    fd = fd.take()  # the UnixFd object gives up the descriptor: ours now
    try:
        # The memfd is sealed against shrinking and growing, so a mapping of
        # its whole size stays valid for everyone.
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[: len(MESSAGE)] = MESSAGE
    finally:
        os.close(fd)

    # A read-only token: whoever opens it gets an O_RDONLY descriptor. It
    # expires in 10 minutes: the plain int goes out as "i", which the daemon
    # takes for a "t" key as long as the value fits.
    token = buffer(bus, path).Share(
        {"read-only": True, "ttl-usec": 600 * 1000 * 1000}, signature="a{sv}"
    )
    print(f"buffer {path}\ntoken {token}")


def expect_error(what, call, expected):
    """call() must fail with the D-Bus error `expected`."""
    try:
        call()
    except dbus.exceptions.DBusException as e:
        if e.get_dbus_name() != expected:
            raise
        print(f"{what} refused: {e.get_dbus_name()}")
        return
    raise Failed(f"{what} succeeded; it must be refused")


def open_token(bus, token):
    broker = manager(bus)
    path, fds, info = broker.Open(token, dbus.Dictionary({}, signature="sv"))
    # fds is "ah": one descriptor per plane; a memfd has one.
    fds = [f.take() for f in fds]
    if len(fds) != 1:
        raise Failed(f"Open returned {len(fds)} descriptors, want 1")
    fd = fds[0]
    size = int(info["size"])
    if not info["read-only"] or size < len(MESSAGE):
        raise Failed(f"Open's info is not that of the shared buffer: {dict(info)}")

    with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as m:
        data = m[: len(MESSAGE)]
    if data != MESSAGE:
        raise Failed(f"the buffer does not hold the message: {data!r}")
    print(f"read: {data.decode()}")

    # The token was read-only: the descriptor is O_RDONLY, and the kernel
    # refuses a writable shared mapping of it.
    try:
        mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE).close()
        raise Failed("a writable mapping of a read-only descriptor succeeded")
    except PermissionError as e:
        print(f"writable mapping refused: {e.strerror}")

    # Errors from the daemon arrive as DBusException with its D-Bus name.
    buf = buffer(bus, path)
    if int(info["owner-uid"]) != os.getuid():
        # Only the owner (or root) may freeze or share a buffer.
        expect_error("Freeze by another uid", buf.Freeze, "org.bufbroker.Error.NotOwner")
    expect_error(
        "Open of an unknown token",
        lambda: broker.Open("0" * 32, dbus.Dictionary({}, signature="sv")),
        "org.bufbroker.Error.NoSuchToken",
    )

    # Let go by closing the descriptor: the descriptor is the lease, and the
    # hold ends with it (and with this connection). Release() would do it
    # too, but for the owner's uid it would also end the buffer's
    # persistence: that is the release step's.
    os.close(fd)


def release(bus, path):
    # Signals need a main loop: dbus-python dispatches them from GLib's.
    from gi.repository import GLib

    loop = GLib.MainLoop()
    seen = []

    def on_released(released_path, released_id, reason):
        if released_path == path:
            seen.append(int(released_id))
            loop.quit()

    # Subscribe before the call, so that the signal cannot be missed.
    bus.add_signal_receiver(
        on_released, "BufferReleased", MANAGER_INTERFACE, BUS_NAME, MANAGER_PATH
    )
    # Signals are not broadcast: the broker sends each copy to the holders
    # of the buffer and to listeners that may see it. This connection holds
    # nothing, so it becomes a listener.
    manager(bus).Subscribe()
    # For the owner this also ends the buffer's persistence: nobody else
    # holds it, so the daemon drops it.
    buffer(bus, path).Release()
    GLib.timeout_add_seconds(10, loop.quit)
    loop.run()
    if not seen:
        raise Failed(f"no BufferReleased for {path} within 10 s")
    print(f"released {path}")


def main(argv):
    session = len(argv) > 1 and argv[1] == "--session"
    if session:
        argv = argv[1:]
    if len(argv) == 2 and argv[1] == "share":
        step = lambda bus: share(bus)
    elif len(argv) == 3 and argv[1] == "open":
        step = lambda bus: open_token(bus, argv[2])
    elif len(argv) == 3 and argv[1] == "release":
        step = lambda bus: release(bus, argv[2])
    else:
        print(f"usage: {argv[0]} [--session] share | open TOKEN | release PATH", file=sys.stderr)
        return 2

    # Only release() waits for signals; the main loop must be the default
    # before the connection is made.
    from dbus.mainloop.glib import DBusGMainLoop

    DBusGMainLoop(set_as_default=True)
    try:
        step(connect(session))
    except dbus.exceptions.DBusException as e:
        print(f"{argv[1]}: {e.get_dbus_name()}: {e.get_dbus_message()}", file=sys.stderr)
        return 1
    except (Failed, OSError) as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
