#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A bufbroker client in pure Python with jeepney (Debian: python3-jeepney).

The same three steps as bufbroker-dbus-python.py, each its own process:

  bufbroker-jeepney.py share          create a persistent memfd buffer, write
                                      a message into it, share it read-only;
                                      prints its path and token
  bufbroker-jeepney.py open TOKEN     (any process, any uid) open it, check
                                      the message, check that the descriptor
                                      cannot be mapped writable and what the
                                      daemon refuses
  bufbroker-jeepney.py release PATH   (the owner) end its persistence and see
                                      BufferReleased come
  bufbroker-jeepney.py no-fds         what happens without fd passing

The system bus by default (DBUS_SYSTEM_BUS_ADDRESS is honoured); --session as
the first argument for a daemon started with `bufbrokerd --user`. Every
failure prints the D-Bus error name and exits 1.

The point of this example: jeepney does not negotiate fd passing unless
asked to, with open_dbus_connection(enable_fds=True). Without it, the bus
refuses to hand a reply that carries descriptors (CreateMemfd, Open, OpenFds)
to the connection; the daemon takes back what it handed out, and the caller
gets no reply at all (dbus-daemon: its call times out) or loses its
connection (dbus-broker). `no-fds` shows that.
With enable_fds=True, each "h" value arrives as a jeepney FileDescriptor;
to_raw_fd() gives the descriptor (ours to close).
"""

import mmap
import os
import sys

from jeepney import DBusAddress, MatchRule, message_bus, new_method_call
from jeepney.io.blocking import open_dbus_connection
from jeepney.wrappers import DBusErrorResponse, unwrap_msg

BUS_NAME = "org.bufbroker.Broker1"
MANAGER_PATH = "/org/bufbroker/Broker1"
MANAGER_INTERFACE = "org.bufbroker.Broker1"
BUFFER_INTERFACE = "org.bufbroker.Buffer1"
# The same message in every example, so that one example's share can be
# opened by another.
MESSAGE = b"Hello from a bufbroker example"
MANAGER = DBusAddress(MANAGER_PATH, bus_name=BUS_NAME, interface=MANAGER_INTERFACE)
TIMEOUT = 25  # seconds; jeepney waits forever unless told


class Failed(Exception):
    """A check of ours failed."""


def buffer(path):
    return DBusAddress(path, bus_name=BUS_NAME, interface=BUFFER_INTERFACE)


def call(conn, address, method, signature=None, body=()):
    """Call and return the reply's body; an error reply raises
    DBusErrorResponse, whose .name is the D-Bus error name."""
    msg = new_method_call(address, method, signature, body)
    return unwrap_msg(conn.send_and_get_reply(msg, timeout=TIMEOUT))


def share(conn):
    # Variants are (signature, value) pairs in jeepney: nothing is guessed.
    path, fd, size = call(
        conn, MANAGER, "CreateMemfd", "sta{sv}", ("jeepney-example", 4096, {"persistent": ("b", True)})
    )
    fd = fd.to_raw_fd()  # a FileDescriptor object gives up the descriptor: ours now
    try:
        # The memfd is sealed against shrinking and growing, so a mapping of
        # its whole size stays valid for everyone.
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[: len(MESSAGE)] = MESSAGE
    finally:
        os.close(fd)

    # A read-only token: whoever opens it gets an O_RDONLY descriptor.
    (token,) = call(conn, buffer(path), "Share", "a{sv}", ({"read-only": ("b", True)},))
    print(f"buffer {path}\ntoken {token}")


def expect_error(what, fn, expected):
    """fn() must fail with the D-Bus error `expected`."""
    try:
        fn()
    except DBusErrorResponse as e:
        if e.name != expected:
            raise
        print(f"{what} refused: {e.name}")
        return
    raise Failed(f"{what} succeeded; it must be refused")


def open_token(conn, token):
    path, fds, info = call(conn, MANAGER, "Open", "sa{sv}", (token, {}))
    # fds is "ah": one descriptor per plane; a memfd has one. Info values
    # are (signature, value) pairs.
    fds = [f.to_raw_fd() for f in fds]
    if len(fds) != 1:
        raise Failed(f"Open returned {len(fds)} descriptors, want 1")
    fd = fds[0]
    size = info["size"][1]
    if not info["read-only"][1] or size < len(MESSAGE):
        raise Failed(f"Open's info is not that of the shared buffer: {info}")

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

    if info["owner-uid"][1] != os.getuid():
        # Only the owner (or root) may freeze or share a buffer.
        expect_error(
            "Freeze by another uid",
            lambda: call(conn, buffer(path), "Freeze"),
            "org.bufbroker.Error.NotOwner",
        )
    expect_error(
        "Open of an unknown token",
        lambda: call(conn, MANAGER, "Open", "sa{sv}", ("0" * 32, {})),
        "org.bufbroker.Error.NoSuchToken",
    )

    # Let go by closing the descriptor: the descriptor is the lease, and the
    # hold ends with it (and with this connection). Release() would do it
    # too, but for the owner's uid it would also end the buffer's
    # persistence: that is the release step's.
    os.close(fd)


def release(conn, path):
    # Ask the bus for the signal, and queue it from before the call, so that
    # it cannot be missed. Signals carry the sender's unique name, which the
    # local filter compares: ask the bus who owns the broker's name.
    (owner,) = unwrap_msg(
        conn.send_and_get_reply(message_bus.GetNameOwner(BUS_NAME), timeout=TIMEOUT)
    )
    rule = MatchRule(
        type="signal", sender=owner, interface=MANAGER_INTERFACE,
        member="BufferReleased", path=MANAGER_PATH,
    )
    unwrap_msg(conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=TIMEOUT))
    with conn.filter(rule, bufsize=64) as signals:
        # Signals are not broadcast: the broker sends each copy to the
        # buffer's holders and to listeners that may see it. This connection
        # holds nothing, so it becomes a listener.
        call(conn, MANAGER, "Subscribe")
        # For the owner this also ends the buffer's persistence: nobody else
        # holds it, so the daemon drops it.
        call(conn, buffer(path), "Release")
        while True:
            try:
                signal = conn.recv_until_filtered(signals, timeout=10)
            except TimeoutError:
                raise Failed(f"no BufferReleased for {path} within 10 s") from None
            if signal.body[0] == path:
                break
    print(f"released {path}")


def no_fds(session):
    """Without enable_fds=True a reply with descriptors never arrives."""
    conn = open_dbus_connection(bus="SESSION" if session else "SYSTEM", enable_fds=False)
    with conn:
        try:
            msg = new_method_call(MANAGER, "CreateMemfd", "sta{sv}", ("no-fds", 4096, {}))
            reply = unwrap_msg(conn.send_and_get_reply(msg, timeout=3))
        except TimeoutError:
            # dbus-daemon refuses to deliver the reply, and tells the daemon
            print("without fd passing: CreateMemfd got no reply (the bus refused it)")
            return
        except ConnectionResetError:
            # dbus-broker disconnects a peer that cannot take a message's fds
            print("without fd passing: the bus closed the connection instead of the reply")
            return
        except DBusErrorResponse as e:
            print(f"without fd passing: CreateMemfd refused: {e.name}")
            return
        raise Failed(f"without fd passing, CreateMemfd replied {reply!r}")


def main(argv):
    session = len(argv) > 1 and argv[1] == "--session"
    if session:
        argv = argv[1:]
    if len(argv) == 2 and argv[1] == "share":
        step = share
    elif len(argv) == 3 and argv[1] == "open":
        step = lambda conn: open_token(conn, argv[2])
    elif len(argv) == 3 and argv[1] == "release":
        step = lambda conn: release(conn, argv[2])
    elif len(argv) == 2 and argv[1] == "no-fds":
        step = None
    else:
        print(f"usage: {argv[0]} [--session] share | open TOKEN | release PATH | no-fds",
              file=sys.stderr)
        return 2

    try:
        if step is None:
            no_fds(session)
        else:
            # enable_fds=True: without it, no reply that carries a descriptor
            # reaches us (see no-fds).
            with open_dbus_connection(bus="SESSION" if session else "SYSTEM",
                                      enable_fds=True) as conn:
                step(conn)
    except DBusErrorResponse as e:
        message = e.data[0] if e.data else ""
        print(f"{argv[1]}: {e.name}: {message}", file=sys.stderr)
        return 1
    except (Failed, OSError) as e:  # TimeoutError is an OSError
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
