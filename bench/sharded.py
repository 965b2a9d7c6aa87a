"""Workload 7: what each server of a sharded cluster reads from Redis, per
subscription mode (issue 7). In ``dynamic`` mode a server SSUBSCRIBEs the
channels of the rooms it hosts, so its received traffic should follow those
rooms; in ``static`` mode, as in classic mode, every server reads every
broadcast of the namespace and drops the ones for rooms it does not host.

4 RedisManagers in this process, on a 3-master Redis Cluster started here
(classic mode, the baseline: on the bench's standalone Redis), each on a
counting stub server (no websockets) with one socket per room it hosts;
server ``i`` hosts ``unit * 2**i`` rooms. A sharded Emitter sends
``rounds`` broadcasts to every room, one room each, round robin. Counted per
server: messages its listener read (``stats()['received']``, every channel
included) and packets its sockets were handed (loss). No speed is measured.
"""
import collections
import time
import uuid

from sio_redis_sync import Emitter, RedisManager

from .common import redis_cluster, wait_until
from .roles import StubServer

MODES = ('classic', 'static', 'dynamic')
SERVERS = 4
BATCH = 100


class CountingServer(StubServer):
    """A stub server counting the packets each Engine.IO session is sent."""

    def __init__(self, name):
        super().__init__(expected=0)
        self.name = name
        self.packets = collections.Counter()

    def generate_id(self):
        self._ids += 1
        return '%s-%d' % (self.name, self._ids)

    def _send_eio_packet(self, eio_sid, pkt):
        self.packets[eio_sid] += 1


def run(results, redis_url, impls, short):
    if 'ours' not in impls:
        return  # python-socketio has no sharded mode; Node's is not measured here
    unit, rounds = (1, 10) if short else (4, 100)
    hosted = [['room-%d-%d' % (index, n) for n in range(unit << index)]
              for index in range(SERVERS)]
    cluster = redis_cluster()
    try:
        for mode in MODES:
            url = redis_url if mode == 'classic' else cluster.url
            for row in measure(url, mode, hosted, rounds):
                results.add('sharded', 'ours', **row)
    finally:
        cluster.close()


def measure(url, mode, hosted, rounds):
    """One row per server: rooms hosted, broadcasts addressed to them, and
    what it received and delivered, after ``rounds`` broadcasts per room."""
    options = {} if mode == 'classic' else {
        'mode': 'sharded', 'subscription_mode': mode, 'cluster': True}
    key = 'bench-%s' % uuid.uuid4().hex[:8]
    rooms = [room for names in hosted for room in names]
    broadcasts = rounds * len(rooms)
    managers, stubs = [], []
    emitter = Emitter(url, key=key, **options)
    try:
        for index, names in enumerate(hosted):
            stub = CountingServer('s%d' % index)
            manager = RedisManager(url, key=key, **options)
            managers.append(manager)
            stubs.append(stub)
            manager.set_server(stub)
            manager.initialize()
            for room in names:
                manager.enter_room(manager.connect('eio-' + room, '/'), '/', room)
        wait_until(lambda: all(m.ready for m in managers), 30, 'room subscriptions')
        before = [m.stats()['received'] for m in managers]
        for first in range(0, broadcasts, BATCH):
            with emitter.pipeline() as batch:
                for seq in range(first, min(first + BATCH, broadcasts)):
                    batch.emit('b', seq, to=rooms[seq % len(rooms)])

        def counts():
            return (tuple(sum(s.packets.values()) for s in stubs),
                    tuple(m.stats()['received'] for m in managers))
        delivered, received = _settle(counts, lambda c: sum(c[0]) >= broadcasts)
    finally:
        for manager in managers:
            manager.close()
        emitter.close()
    rows = []
    for index, names in enumerate(hosted):
        packets = stubs[index].packets
        loss = sum(max(0, rounds - packets['eio-' + room]) for room in names)
        got = received[index] - before[index]
        addressed = rounds * len(names)
        rows.append({
            'mode': mode, 'server': index, 'rooms': len(names), 'rooms_total': len(rooms),
            'broadcasts': broadcasts, 'addressed': addressed,
            'share': round(addressed / broadcasts, 4), 'received': got,
            'received_ratio': round(got / broadcasts, 4), 'deliveries': delivered[index],
            'expected': addressed, 'loss': loss,
            'misdelivered': delivered[index] - (addressed - loss)})
    return rows


def _settle(read, done, quiet=0.3, stall=15.0, interval=0.02):
    """Poll ``read()`` until ``done(value)`` holds and the value has not
    changed for ``quiet`` s (late extra messages would show), or until it
    has not changed for ``stall`` s (lost messages: the rows say how many)."""
    value, since = read(), time.monotonic()
    while True:
        time.sleep(interval)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
            continue
        still = time.monotonic() - since
        if (done(value) and still >= quiet) or still >= stall:
            return value

