"""Issue 16's loss test, end to end: what a Socket.IO client in a room gets of 600
numbered broadcasts an Emitter sends at ~150/s while (a) the server's reading
connection is killed twice, (b) Redis (``appendonly yes``, ``appendfsync always``)
is SIGKILLed and restarted on the same port; in streams mode (nothing lost), then in
classic mode (what Pub/Sub loses). Also: entries trimmed (``max_len``) before a
server read them are a counted, logged gap, whether it was cut off from Redis
meanwhile or waiting in XREAD, and it delivers what follows.

Real servers (rig.PyServer), real clients (rig.PyClient, and WireClient below for
the arrival order), real redis-servers (redisproc). Both emitters ride out a Redis
restart the same way (``publish_retries=None``: an unsent message is retried until
``publish_timeout``); a message sent but not answered is never resent, so it raises
and may or may not have been written. Each test prints and records (``record_property``)
its counts: emitted, returned, raised, delivered, lost (returned, never delivered).
"""
import collections
import contextlib
import json
import logging
import socket
import threading
import time

import pytest
import websocket

from redisproc import RedisServer, wait_until
from rig import PyClient, PyServer
from topology import find_binary
from sio_redis_sync import Emitter, PartialDelivery, PublishError

TOTAL, RATE = 600, 150
ROOM = 'r1'
HEALTH = {'health_check_interval': 0.5, 'health_check_timeout': 0.5}


class WireClient:
    """A Socket.IO client at the wire level (Engine.IO 4 on one WebSocket, read by
    one thread), so :attr:`numbers` is the order the events arrived in:
    python-socketio's Client runs each message's handler in a thread of its own,
    so the order it records them in is not the order they came."""

    def __init__(self, url, rooms=(ROOM,)):
        self.numbers = collections.defaultdict(list)   # event -> [n, ...]
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.ws = websocket.create_connection(
            url.replace('http://', 'ws://') + '/socket.io/?EIO=4&transport=websocket'
            '&rooms=' + ','.join(rooms), timeout=5)
        assert self.ws.recv().startswith('0'), 'no Engine.IO open packet'
        self.ws.send('40')  # CONNECT to "/": the server joins the rooms first
        reply = self.ws.recv()
        assert reply.startswith('40{'), reply
        self.sid = json.loads(reply[2:])['sid']
        self.ws.settimeout(0.1)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                frame = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError):
                return
            if frame == '2':  # Engine.IO ping
                self.ws.send('3')
            elif isinstance(frame, str) and frame.startswith('42'):
                event, *args = json.loads(frame[2:])
                with self._cond:
                    self.numbers[event].append(args[0])
                    self._cond.notify_all()

    def received(self, event='n'):
        with self._cond:
            return list(self.numbers[event])

    def wait_for(self, predicate, event='n', timeout=10, what='events'):
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.numbers[event]), timeout):
                got = self.numbers[event]
                raise AssertionError('timed out waiting for %s: %d %r received, last %r'
                                     % (what, len(got), event, got[-5:]))

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.ws.close()


class Pacer(threading.Thread):
    """Emits ``n`` = 0 .. TOTAL-1 to ROOM at RATE per second (on schedule: late
    emits go at once), noting which returned and which raised PublishError."""

    def __init__(self, emitter):
        super().__init__(daemon=True)
        self.emitter = emitter
        self.returned = []
        self.raised = {}    # n -> the PublishError

    def run(self):
        start, room = time.monotonic(), self.emitter.to(ROOM)
        for n in range(TOTAL):
            time.sleep(max(0.0, start + n / RATE - time.monotonic()))
            try:
                room.emit('n', n)
                self.returned.append(n)
            except PublishError as exc:  # PartialDelivery too
                self.raised[n] = exc

    def finish(self):
        self.join(30)
        assert not self.is_alive(), 'the emitter is stuck'


class Rig:
    """A server of ``mode`` on ``redis_server`` with a WireClient and a PyClient
    in ROOM, and an Emitter of the same mode."""

    def __init__(self, redis_server, key, mode, **options):
        streams = dict(stream_name=key + '-stream') if mode == 'streams' else {}
        self.mode = mode
        self.server = PyServer(redis_server.url, key, mode=mode, **streams, **HEALTH,
                               **options)
        self.server.start_listening()
        self.wire = WireClient(self.server.url)
        self.client = PyClient(self.server.url, rooms=[ROOM])
        self.emitter = Emitter(redis_server.url, key=key, mode=mode, publish_retries=None,
                               **streams)
        self.pacer = Pacer(self.emitter)

    def stats(self):
        return self.server.manager.stats()

    def close(self):
        self.emitter.close()
        self.wire.close()
        self.client.close()
        self.server.stop()


@pytest.fixture
def rigs():
    made = []
    yield lambda *args, **options: made.append(Rig(*args, **options)) or made[-1]
    for rig in made:
        rig.close()


@pytest.fixture
def aof_redis():
    """A redis-server of the test's own that keeps every acknowledged write
    across a SIGKILL (the append-only file, fsynced before each reply)."""
    server = RedisServer(lines=['appendonly yes', 'appendfsync always'], name='redis-aof')
    yield server
    server.close()


def _kill_reading_connection(redis_server, mode):
    """CLIENT KILL the connection the server's broadcasts come in on: its
    stream reader (blocked in XREAD) or, in classic mode, its Pub/Sub listener."""
    with redis_server.client() as admin:
        if mode == 'streams':
            ids = [c['id'] for c in admin.client_list() if c['cmd'] == 'xread']
        else:
            ids = [c['id'] for c in admin.client_list(_type='pubsub')]
        assert len(ids) == 1, admin.client_list()
        admin.client_kill_filter(_id=ids[0])


def _reconnects(rig):
    return rig.stats()['stream_reconnects' if rig.mode == 'streams' else 'reconnects']


def kill_twice(rig, redis_server):
    """(a): kill the reading connection once 150, then 350 messages arrived."""
    for kills, after in ((1, 150), (2, 350)):
        rig.wire.wait_for(lambda got, after=after: len(got) >= after, what='%d' % after)
        _kill_reading_connection(redis_server, rig.mode)
        wait_until(lambda kills=kills: _reconnects(rig) == kills and rig.server.manager.ready,
                   message='reconnect %d' % kills)


def crash(rig, redis_server):
    """(b): SIGKILL Redis once 200 messages arrived; start it again 0.5 s later."""
    rig.wire.wait_for(lambda got: len(got) >= 200, what='200')
    redis_server.kill()
    time.sleep(0.5)
    redis_server.start()  # same port; reloads the append-only file


def run(rig, redis_server, fault, record_property):
    """Emit TOTAL messages through ``fault``; wait until every returned one
    arrived (or 10 s), then 0.3 s for stragglers; the counts."""
    rig.pacer.start()
    fault(rig, redis_server)
    rig.pacer.finish()
    returned = set(rig.pacer.returned)
    try:
        rig.wire.wait_for(lambda got: returned <= set(got), what='every returned emit')
    except AssertionError:
        pass  # counted as lost below; the test decides whether that may be
    time.sleep(0.3)
    wire = rig.wire.received()
    counts = {'mode': rig.mode, 'fault': fault.__name__, 'emitted': TOTAL,
              'returned': len(returned), 'raised': len(rig.pacer.raised),
              'partial_delivery': sum(isinstance(exc, PartialDelivery)
                                      for exc in rig.pacer.raised.values()),
              'delivered': len(set(wire)), 'lost': len(returned - set(wire)),
              'raised_but_delivered': len(set(rig.pacer.raised) & set(wire))}
    print('\nLOSS %s' % json.dumps(counts))
    record_property('loss', counts)
    return counts, wire


def assert_in_order_at_most_once(rig, wire):
    """Both clients got the same messages, each once; the wire client saw them
    in the order they were emitted; none that was not emitted."""
    assert wire == sorted(set(wire)), 'out of order or twice: %r' % _disorder(wire)
    assert set(wire) <= set(rig.pacer.returned) | set(rig.pacer.raised)
    wait_until(lambda: len(rig.client.received('n')) >= len(wire), 5,
               message='the PyClient getting what the WireClient got')
    time.sleep(0.2)
    counted = collections.Counter(args[0] for args in rig.client.received('n'))
    assert set(counted) == set(wire)
    assert max(counted.values()) == 1, [n for n, times in counted.items() if times > 1]


def _disorder(numbers):
    return [(a, b) for a, b in zip(numbers, numbers[1:]) if b <= a][:10]


# ------------------------------------------------------------ streams mode


def test_streams_two_killed_reader_connections_lose_nothing(module_redis, key, rigs,
                                                            record_property):
    rig = rigs(module_redis, key, 'streams')
    counts, wire = run(rig, module_redis, kill_twice, record_property)
    assert_in_order_at_most_once(rig, wire)
    assert (counts['returned'], counts['raised']) == (TOTAL, 0)
    assert wire == list(range(TOTAL))
    stats = rig.stats()
    assert (stats['stream_reconnects'], stats['stream_gaps']) == (2, 0)
    assert stats['stream_entries'] == TOTAL


def test_streams_a_redis_crash_loses_no_acknowledged_emit(aof_redis, key, rigs,
                                                          record_property):
    rig = rigs(aof_redis, key, 'streams')
    counts, wire = run(rig, aof_redis, crash, record_property)
    assert_in_order_at_most_once(rig, wire)
    # every emit that returned arrived; only the XADD in flight when Redis died
    # may raise (sent, not answered: never resent), written to the AOF or not
    assert counts['lost'] == 0
    assert counts['raised'] <= 1, rig.pacer.raised
    assert counts['delivered'] >= TOTAL - 1
    stats = rig.stats()
    assert stats['stream_reconnects'] >= 1 and stats['stream_gaps'] == 0


# ------------------------------------------------------------ classic mode


def test_classic_two_killed_subscriber_connections_lose_messages(module_redis, key, rigs,
                                                                 record_property):
    rig = rigs(module_redis, key, 'classic')
    counts, wire = run(rig, module_redis, kill_twice, record_property)
    assert_in_order_at_most_once(rig, wire)
    # the listener is away >= 50 ms per kill (its first backoff) while the
    # emitter publishes every 7 ms: what it publishes meanwhile reaches no
    # server (it raises PartialDelivery), and Pub/Sub keeps nothing
    assert counts['delivered'] < TOTAL
    assert rig.stats()['reconnects'] == 2


def test_classic_a_redis_crash_is_recorded(aof_redis, key, rigs, record_property):
    """Recorded, not asserted: what classic mode loses here is what the
    emitter publishes after Redis is back and before the listener has
    subscribed again, a race between the emitter's retries (0.05 s doubling)
    and the listener's (at most every 0.25 s). The listener mostly wins (600
    of 600); when the emitter wins, that emit reaches no server and raises
    PartialDelivery. Nothing of this comes back: Pub/Sub keeps nothing."""
    rig = rigs(aof_redis, key, 'classic')
    counts, wire = run(rig, aof_redis, crash, record_property)
    assert_in_order_at_most_once(rig, wire)
    assert rig.stats()['reconnects'] >= 1


# ------------------------------------------------------------ a gap


class Partition:
    """A TCP proxy to a Redis that can cut the link: :meth:`cut` closes every
    connection through it and refuses new ones (accepted, then closed at once)
    until :meth:`heal`: what a network partition does to one server."""

    def __init__(self, target_port):
        self._target = target_port
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.url = 'redis://127.0.0.1:%d/0' % self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._socks = []
        self._cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._cut.is_set():
                client.close()
                continue
            upstream = socket.create_connection(('127.0.0.1', self._target))
            with self._lock:
                self._socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self):
        self._cut.set()
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def heal(self):
        self._cut.clear()

    def close(self):
        self._listener.close()
        self.cut()


@contextlib.contextmanager
def small_stream(server_url, redis_server, key, max_len=50):
    """A streams-mode server on ``server_url`` (MAXLEN ~ ``max_len``) with a
    WireClient in ROOM, and an Emitter straight to ``redis_server``: yields
    ``(server, wire, emitter)``."""
    streams = dict(mode='streams', stream_name=key + '-stream', max_len=max_len)
    server = PyServer(server_url, key, **streams, **HEALTH)
    emitter = Emitter(redis_server.url, key=key, **streams)
    wire = None
    try:
        server.start_listening()
        wire = WireClient(server.url)
        yield server, wire, emitter
    finally:
        emitter.close()
        if wire is not None:
            wire.close()
        server.stop()


def _stream_stats(stats):
    return {name: value for name, value in stats.items() if name.startswith('stream')}


def _gap_warnings(caplog):
    return [record for record in caplog.records
            if 'were lost before they were read' in record.getMessage()]


@pytest.fixture(scope='module')
def counting_redis():
    """A redis-server >= 7 of this module's (tox's first redis-server may be
    6.2): it tells how many entries a stream was ever given (entries-added),
    which a gap's size is counted from."""
    server = RedisServer(binary=find_binary('redis-server'))
    yield server
    server.close()


def test_a_gap_past_max_len_is_counted_and_logged_and_delivery_goes_on(
        counting_redis, key, caplog):
    """The server is cut off from Redis (its reader cannot reconnect) while the
    emitter adds 300 entries to a stream capped at ~50: on its return it
    delivers what is left, counts and logs what is not, and goes on."""
    caplog.set_level(logging.WARNING)
    burst, partition = 300, Partition(counting_redis.port)
    try:
        with small_stream(partition.url, counting_redis, key) as (server, wire, emitter):
            room = emitter.to(ROOM)
            for n in range(10):
                room.emit('before', n)
            wire.wait_for(lambda got: len(got) == 10, 'before')
            partition.cut()
            wait_until(lambda: not server.manager.ready, message='the reader cut off')
            for n in range(burst):
                room.emit('n', n)
            with counting_redis.client() as admin:
                kept = admin.xlen(key + '-stream')  # MAXLEN ~ trims whole nodes
            assert kept < burst
            partition.heal()
            wait_until(lambda: server.manager.stats()['stream_gaps'] and server.manager.ready,
                       message='the reader back, and the gap found')
            for n in range(10):
                room.emit('after', n)
            wire.wait_for(lambda got: len(got) == 10, 'after')
            stats = server.manager.stats()
    finally:
        partition.close()
    assert wire.received('before') == wire.received('after') == list(range(10))
    assert wire.received('n') == list(range(burst - kept, burst))  # what was left
    assert (stats['stream_gaps'], stats['stream_lost_entries']) == (1, burst - kept), \
        _stream_stats(stats)
    gaps = _gap_warnings(caplog)
    assert len(gaps) == 1 and gaps[0].levelno == logging.WARNING
    assert ' %d entries after ' % (burst - kept) in gaps[0].getMessage()


def test_a_burst_past_max_len_while_the_reader_waits_is_a_counted_gap(counting_redis, key,
                                                                      caplog):
    """No outage: the reader is connected and waiting in XREAD BLOCK when one
    Emitter pipeline adds 300 entries to a stream capped at ~50. It reads the
    first at once, then what is left: the entries trimmed in between are a gap
    like any other (issue 16: the server knows it, logs and counts it)."""
    caplog.set_level(logging.WARNING)
    burst = 300
    with small_stream(counting_redis.url, counting_redis, key) as (server, wire, emitter):
        room = emitter.to(ROOM)
        room.emit('before', 0)
        wire.wait_for(lambda got: got == [0], 'before')
        with emitter.pipeline() as batch:
            for n in range(burst):
                batch.to(ROOM).emit('n', n)
        room.emit('after', 0)
        wire.wait_for(lambda got: got == [0], 'after')
        # the reader compares the counts once it is at the stream's end (within
        # a second of entries flowing, or when its XREAD waited in vain)
        wait_until(lambda: server.manager.stats()['stream_gaps'], 10,
                   message='the gap counted')
        stats = server.manager.stats()
    got = wire.received('n')
    assert got == sorted(set(got)) and got[-1] == burst - 1 and len(got) < burst
    lost = burst - len(got)
    assert (stats['stream_gaps'], stats['stream_lost_entries']) == (1, lost), \
        '%d entries were trimmed before they were read; %r' % (lost, _stream_stats(stats))
    assert len(_gap_warnings(caplog)) == 1
