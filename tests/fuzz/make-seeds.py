#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Write the hand-made seeds of tests/fuzz/corpus/ (seed-*): inputs in
fuzz-bus.c's format that reach every method of the contract with valid
arguments, and the sequences that need replies (create -> share -> open ->
open fds -> freeze -> release). The encoding mirrors fuzz-bus.c's pick_*
functions; FUZZ_BUS_DEBUG=1 build/tests/fuzz/fuzz-bus-replay FILE shows
what a seed does.

    tests/fuzz/make-seeds.py [DIR]      (default: tests/fuzz/corpus)
"""
import os
import sys

# Indexes into fuzz-bus.c's tables.
PATH = dict(manager=0, last=1, seen=2, prefix=3, id=4, root=8)
IFACE = dict(broker=0, buffer=1, properties=2, introspectable=3, peer=4, none=5)
MEMBER = dict(CreateMemfd=0, Open=1, CreateV4L2=2, ListBuffers=3, Release=4, Share=5, OpenFds=6,
              Freeze=7, Get=8, GetAll=9, Set=10, Introspect=11, Ping=12, GetMachineId=13)
KEY = {'persistent': 0, 'ttl-usec': 1, 'read-only': 2, 'uid': 3, 'single-use': 4, 'name': 5,
       'width': 6, 'height': 7, 'fourcc': 8, 'type': 9}
PROP = dict(Version=0, Limits=1, Stats=2, Id=3, Name=4, Kind=5, Size=6, OwnerUid=7, Persistent=8,
            Frozen=9, CreatedUsec=10)
FD = dict(memfd_sealed=0, memfd_unsealed=1, pipe_read=2, pipe_write=3, socket=4, directory=5,
          opath=6, devnull=7, eventfd=8, dmabuf=9, received=10, own_bus=11, event_loop=12)
UID = dict(socket=0, a=1, b=2, nobody=3)

# Op kinds.
WAIT, GO_ON, NO_REPLY, SIGNAL, CONTROL = 0, 4, 5, 6, 7
RECONNECT, ABRUPT, SETTLE = 0, 1, 2
# A hostile holder, on the last fd a reply returned.
MAP_WRITABLE, SEAL_WRITE, SEAL_SEAL, SEAL_FUTURE_WRITE = 3, 4, 5, 6


def header(uid0='socket', uid1=None, nofds0=False, nofds1=False):
    h = UID[uid0]
    if uid1 is not None:
        h |= UID[uid1] << 2 | 16
    return bytes([h | nofds0 << 5 | nofds1 << 6])


def opt(key, *value):
    """One a{sv} entry with the right type: b -> (sel >> 2) & 1, else a pick byte."""
    k = KEY[key]
    if key in ('persistent', 'read-only', 'single-use'):
        return bytes([k, (1 << 2) if value[0] else 0])
    return bytes([k, 0]) + bytes(value)


def opts(*entries):
    return bytes([len(entries)]) + b''.join(entries)


def call(member, path='manager', iface=None, args=b'', kind=WAIT, client=0, flags=0, mode=0, path_arg=b''):
    if iface is None:
        iface = 'buffer' if member in ('Release', 'Share', 'OpenFds', 'Freeze') else 'broker'
    return (bytes([kind | client << 3, flags, PATH[path]]) + path_arg +
            bytes([IFACE[iface], MEMBER[member], mode]) + args)


def control(sub, client=0):
    return bytes([CONTROL | client << 3 | sub << 4])


def name(sel=0):
    return bytes([sel])         # 0 "frame"


def size(sel=0):
    return bytes([sel])         # 0 4096, 3 1 MiB


def create(o=opts(), **kw):
    return call('CreateMemfd', args=name() + size() + o, **kw)


def on_last(member, args=b'', **kw):
    return call(member, path='last', args=args, **kw)


def fd_arg(kind):
    """A random-typed argument (body mode 1 or 2) of type h (a received
    one: the first the harness kept)."""
    return bytes([12, FD[kind]]) + (bytes([0]) if kind == 'received' else b'')


SEEDS = {
    # The whole life of a buffer, every step fed by the reply before it.
    'lifecycle': header() + create() + on_last('Share', opts()) +
        call('Open', args=bytes([0]) + opts()) + on_last('OpenFds', opts()) +
        on_last('Freeze') + on_last('Release'),
    'persistent-ttl': header() +
        create(opts(opt('persistent', True), opt('ttl-usec', 0))) +
        call('ListBuffers') + on_last('Release') + call('ListBuffers'),
    'share-options': header() + create() +
        on_last('Share', opts(opt('read-only', True), opt('single-use', True), opt('ttl-usec', 0),
                              opt('uid', 1))) +
        call('Open', args=bytes([0]) + opts()) + call('Open', args=bytes([0]) + opts()) +
        on_last('OpenFds', opts(opt('read-only', True))),
    # Another uid: opens by token, is refused what only the owner may do.
    'two-uids': header('socket', 'a') + create() +
        on_last('Share', opts(opt('read-only', True))) +
        call('Open', args=bytes([0]) + opts(), client=1) +
        on_last('OpenFds', opts(), client=1) + on_last('Share', opts(), client=1) +
        on_last('Freeze', client=1) + call('ListBuffers', client=1) +
        on_last('Release', client=1) + on_last('Release'),
    'bound-uid': header('a', 'b') + create() +
        on_last('Share', opts(opt('uid', 2))) +
        call('Open', args=bytes([0]) + opts(), client=1),
    'reconnect': header('socket', 'a') + create(opts(opt('persistent', True))) +
        on_last('Share', opts()) + call('Open', args=bytes([0]) + opts(), client=1) +
        control(RECONNECT, client=1) + control(ABRUPT, client=0) + call('ListBuffers'),
    'properties': header() + create() +
        call('GetAll', iface='properties', args=bytes([0])) +
        call('Get', iface='properties', args=bytes([0, PROP['Version']])) +
        call('Get', iface='properties', args=bytes([0, PROP['Limits']])) +
        call('Get', iface='properties', args=bytes([0, PROP['Stats']])) +
        call('GetAll', path='last', iface='properties', args=bytes([1])) +
        b''.join(call('Get', path='last', iface='properties', args=bytes([1, PROP[p]]))
                 for p in ('Id', 'Name', 'Kind', 'Size', 'OwnerUid', 'Persistent', 'Frozen', 'CreatedUsec')) +
        call('Set', path='last', iface='properties', args=bytes([1, PROP['Name'], 9, 9, 0])),
    'introspect': header() + create() +
        call('Introspect', iface='introspectable') +
        call('Introspect', path='prefix', iface='introspectable') +
        call('Introspect', path='last', iface='introspectable') +
        call('Introspect', path='root', iface='introspectable') +
        call('Ping', iface='peer') + call('GetMachineId', iface='peer'),
    'v4l2': header() +
        call('CreateV4L2', args=bytes([0, 1]) +
             opts(opt('width', 0), opt('height', 1), opt('fourcc', 0), opt('type', 0)) +
             opts(opt('name', 0), opt('persistent', True), opt('read-only', True))) +
        call('CreateV4L2', args=bytes([1, 7]) + opts() + opts()),
    # Real fds where none are expected: the daemon must close every one.
    'fds': header() + create() +
        b''.join(call('CreateMemfd', mode=1, args=name() + size() + opts() + bytes([0]) + fd_arg(k))
                 for k in FD) +
        on_last('Share', mode=2, args=bytes([2]) + fd_arg('received') + fd_arg('pipe_write')),
    'no-reply': header() + create(kind=NO_REPLY) + create() +
        on_last('OpenFds', opts(), kind=NO_REPLY) + on_last('Share', opts(), kind=NO_REPLY) +
        on_last('Release', kind=NO_REPLY) + call('ListBuffers'),
    'burst': header('socket', 'a') + create(kind=GO_ON) + create(kind=GO_ON) +
        call('ListBuffers', kind=GO_ON, client=1) + create(kind=GO_ON, client=1) +
        call('ListBuffers') + control(SETTLE),
    'burst-close': header() + create(kind=GO_ON) + create(kind=GO_ON) + call('ListBuffers', kind=GO_ON) +
        control(ABRUPT) + create(),
    'no-fd-passing': header(nofds0=True) + create() + call('ListBuffers') + on_last('OpenFds', opts()),
    'quota': header() + b''.join(call('CreateMemfd', args=name() + size(3) + opts()) for _ in range(10)) +
        b''.join(on_last('Share', opts()) for _ in range(18)),
    'signal': header() + call('Release', kind=SIGNAL, iface='broker'),
    # Holders that map their fd writable or seal it themselves: Freeze
    # must say Busy, or take the buffer as frozen.
    'holder-mapped': header() + create() + control(MAP_WRITABLE) + on_last('Freeze') +
        on_last('OpenFds', opts()),
    'holder-sealed': header() + create() + control(SEAL_WRITE) + on_last('Freeze') +
        on_last('OpenFds', opts()) + on_last('Freeze'),
    'holder-seal-seal': header() + create() + control(SEAL_SEAL) + control(SEAL_FUTURE_WRITE) +
        on_last('Freeze'),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus')
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, 'seed-' + name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
