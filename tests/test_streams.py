"""Streams mode between Python servers and the Python Emitter, on a real Redis:
what goes through the stream, what through Pub/Sub, options, hostile entries,
bounds and shutdown (Node peers: test_streams_node.py; loss: test_streams_loss.py).
"""
import logging
import threading

import pytest
import redis

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, RedisManager, SioRedisError
from sio_redis_sync.streams import stream_key


@pytest.fixture
def streams(key):
    """The streams-mode options of one test: a stream of its own."""
    return {'mode': 'streams', 'stream_name': key + '-stream'}


def test_emitter_and_servers_share_a_stream(redis_url, key, redis_client, streams):
    with PyServer(redis_url, key, **streams) as a, PyServer(redis_url, key, **streams) as b, \
            PyClient(a.url, rooms=['r1']) as ca, PyClient(b.url, rooms=['r2']) as cb:
        wait_until(lambda: a.manager.ready and b.manager.ready)
        emitter = Emitter(redis_url, key=key, **streams)
        entry_id = emitter.emit('only_r1', {'n': 1}, to='r1')
        emitter.emit('everyone', b'\x00\x01')
        emitter.of('/').except_('r1').emit('not_r1', 3)
        assert ca.wait_for('only_r1') == [{'n': 1}]
        assert ca.wait_for('everyone') == cb.wait_for('everyone') == [b'\x00\x01']
        assert cb.wait_for('not_r1') == [3]
        ca.assert_no_event('not_r1')
        cb.assert_no_event('only_r1')
        # the broadcasts are entries of the stream; emit returns their ids
        entries = redis_client.xrange(key + '-stream')
        assert entries[0][0].decode() == entry_id
        assert [fields[b'uid'] for _, fields in entries] == [b'emitter'] * 3
        # a server's broadcast reaches the other server's clients
        a.sio.emit('from_a', 'hi', room='r2')
        assert cb.wait_for('from_a') == ['hi']
        assert emitter.server_count() == 2
        assert sorted(s.id for s in emitter.fetch_sockets()) == sorted([ca.sid, cb.sid])
        emitter.close()


def test_room_changes_and_disconnects_travel_in_the_stream(redis_url, key, redis_client,
                                                           streams):
    with PyServer(redis_url, key, **streams) as a, PyServer(redis_url, key, **streams) as b, \
            PyClient(b.url, rooms=['r2']):
        a.start_listening()
        wait_until(lambda: b.manager.ready)
        a.manager.sockets_join(['joined'], room='r2')
        wait_until(lambda: 'joined' in b.manager.rooms.get('/', {}))
        a.manager.sockets_leave(['r2'], room='joined')
        wait_until(lambda: 'r2' not in b.manager.rooms.get('/', {}))
        types = [fields[b'type'] for _, fields in redis_client.xrange(key + '-stream')]
        assert types == [b'4', b'5']   # SOCKETS_JOIN, SOCKETS_LEAVE
        a.manager.disconnect_sockets(room='joined')
        wait_until(lambda: not b.manager.rooms.get('/', {}).get('joined'))
        assert redis_client.xrange(key + '-stream')[-1][1][b'type'] == b'6'


def test_requests_go_through_pub_sub_and_all_rooms_does_not_exist(redis_url, key,
                                                                   redis_client, streams):
    with PyServer(redis_url, key, **streams) as a, PyServer(redis_url, key, **streams) as b, \
            PyClient(b.url, rooms=['r2']) as cb:
        a.start_listening()
        wait_until(lambda: b.manager.ready)
        b.manager.on('ping', lambda n: n + 1)
        assert a.manager.server_side_call('ping', 41) == [42]
        assert [s.id for s in a.manager.fetch_sockets(room='r2')] == [cb.sid]
        with pytest.raises(SioRedisError, match='all_rooms'):
            a.manager.all_rooms()
        # nothing of these went into the stream
        assert redis_client.xlen(key + '-stream') == 0


def test_broadcast_acks_across_servers(redis_url, key, streams):
    with PyServer(redis_url, key, **streams) as a, PyServer(redis_url, key, **streams) as b, \
            PyClient(b.url, rooms=['r2']) as cb:
        cb.client.on('ask', lambda value: value * 2)
        a.start_listening()
        wait_until(lambda: b.manager.ready)
        assert a.manager.emit_with_ack('ask', 21, room='r2', timeout=5) == [42]
        got = []
        done = threading.Event()
        a.sio.emit('ask', 5, room='r2', callback=lambda *v: (got.append(v), done.set()))
        assert done.wait(5) and got == [(10,)]


def test_stream_options_are_node_s_and_refused_elsewhere(redis_url, key):
    manager = RedisManager(redis_url, key=key, mode='streams')
    assert (manager._dialect.stream_name, manager._dialect.stream_count,
            manager._dialect.max_len, manager.read_count) == ('socket.io', 1, 10000, 100)
    for options in ({'stream_name': 'x'}, {'read_count': 5}, {'max_len': 5}):
        with pytest.raises(ValueError, match="need mode='streams'|needs mode='streams'"):
            RedisManager(redis_url, key=key, **options)
        with pytest.raises(ValueError):
            RedisManager(redis_url, key=key, mode='sharded', **options)
    for bad in ({'read_count': 0}, {'read_count': 'many'}, {'max_len': 0},
                {'stream_count': -1}, {'stream_name': ''}):
        with pytest.raises(ValueError):
            RedisManager(redis_url, key=key, mode='streams', **bad)
    with pytest.raises(ValueError, match='Redis Cluster'):
        RedisManager(redis_url, key=key, mode='streams', cluster=True)
    with pytest.raises(ValueError, match="need mode='streams'"):
        Emitter(redis_url, key=key, stream_count=2)


def _hostile_entries():
    good = {'uid': 'peer', 'nsp': '/', 'type': '3',
            'data': '{"packet":{"type":2,"data":["ok",%d],"nsp":"/"},'
                    '"opts":{"rooms":[],"except":[],"flags":{}}}'}
    return good, [
        {'uid': 'peer', 'nsp': '/', 'type': '3'},                 # no data (stalls Node)
        {'uid': 'peer', 'nsp': '/', 'type': '3', 'data': '{"packet":'},
        {'uid': 'peer', 'nsp': '/', 'type': '99', 'data': '{}'},
        {'uid': 'peer', 'nsp': '/', 'type': '3', 'data': '!!!notbase64'},
        {'uid': 'peer', 'nsp': '/', 'type': '3', 'data': '[' * 5000 + ']' * 5000},
        {'uid': b'\xff\xfe', 'nsp': '/', 'type': '3', 'data': '{}'},
        {'nsp': '/', 'type': '3', 'data': '{}'},
        {'uid': 'peer', 'nsp': '/', 'type': '3', 'data': '{"packet":{"type":2,"data":[]}}'},
    ]


def test_malformed_entries_are_logged_counted_and_skipped(redis_url, key, redis_client,
                                                          streams, caplog):
    caplog.set_level(logging.WARNING, logger='sio_redis_sync')
    stream = key + '-stream'
    good, bad = _hostile_entries()
    with PyServer(redis_url, key, **streams) as server, PyClient(server.url) as client:
        wait_until(lambda: server.manager.ready)
        before = server.manager.stats()
        for n, fields in enumerate(bad):
            redis_client.xadd(stream, dict(good, data=good['data'] % n))
            redis_client.xadd(stream, fields)
        redis_client.xadd(stream, dict(good, data=good['data'] % len(bad)))
        client.wait_for('ok', count=len(bad) + 1)
        assert [args[0] for args in client.received('ok')] == list(range(len(bad) + 1))
        after = server.manager.stats()
        assert after['dropped_malformed'] - before['dropped_malformed'] == len(bad)
        assert after['stream_entries'] - before['stream_entries'] == 2 * len(bad) + 1
        assert after['stream_reconnects'] == 0
        warnings = [r for r in caplog.records if 'malformed entry' in r.getMessage()]
        assert len(warnings) == len(bad)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_entries_larger_than_max_message_size_are_dropped(redis_url, key, redis_client,
                                                          streams):
    with PyServer(redis_url, key, max_message_size=2000, **streams) as server, \
            PyClient(server.url) as client:
        wait_until(lambda: server.manager.ready)
        emitter = Emitter(redis_url, key=key, **streams)
        emitter.emit('big', 'x' * 5000)
        emitter.emit('small', 'x')
        client.wait_for('small')
        client.assert_no_event('big')
        assert server.manager.stats()['dropped_malformed'] == 1
        emitter.close()


def test_entries_of_other_namespaces_and_its_own_are_skipped(redis_url, key, redis_client,
                                                             streams):
    with PyServer(redis_url, key, namespaces=('/',), **streams) as server, \
            PyClient(server.url) as client:
        wait_until(lambda: server.manager.ready)
        emitter = Emitter(redis_url, key=key, **streams)
        emitter.of('/unserved').emit('elsewhere', 1)   # no handler here: skipped
        server.sio.emit('own', 2)                      # delivered locally, once
        emitter.emit('last', 3)
        client.wait_for('last')
        assert client.received('own') == [[2]]
        assert server.manager.stats()['dropped_malformed'] == 0
        emitter.close()


def test_a_namespace_node_never_reads_is_read_by_python_servers(redis_url, key,
                                                                redis_client):
    # with 3 streams, a namespace whose hash is negative goes to a stream like
    # "<name>--1" that Node's readers (-0 to -2) never read; ours do
    name = key + '-stream'
    negative = next('/namespace-%d' % n for n in range(1000)
                    if stream_key(name, 3, '/namespace-%d' % n).startswith(name + '--'))
    options = {'mode': 'streams', 'stream_name': name, 'stream_count': 3}
    with PyServer(redis_url, key, namespaces=('/', negative), **options) as server, \
            PyClient(server.url, namespace=negative) as client:
        wait_until(lambda: server.manager.ready)
        assert stream_key(name, 3, negative) in server.manager.stats()['streams']
        emitter = Emitter(redis_url, key=key, **options)
        emitter.of(negative).emit('hidden', 1)
        assert client.wait_for('hidden') == [1]
        assert redis_client.xlen(stream_key(name, 3, negative)) == 1
        emitter.close()


def test_close_stops_every_reader_and_initialize_reads_again(redis_url, key, streams):
    with PyServer(redis_url, key, namespaces=('/',), **streams) as server:
        manager = server.manager
        server.start_listening()
        readers = manager._readers._all()
        assert [reader.key for reader in readers] == [key + '-stream']
        manager.close()
        assert not manager.ready and 'streams' not in manager.stats()
        assert all(reader.stopped.is_set() for reader in readers)
        manager.initialize()
        wait_until(lambda: manager.ready)
        with PyClient(server.url) as client:
            emitter = Emitter(redis_url, key=key, **streams)
            emitter.emit('back', 1)
            assert client.wait_for('back') == [1]
            emitter.close()


def _kill_readers(admin):
    """CLIENT KILL the connections blocked in XREAD (this test's reader
    among them: the only one reading its stream)."""
    def kill():
        found = [c for c in admin.client_list() if c.get('cmd') == 'xread']
        for c in found:
            admin.client_kill_filter(_id=c['id'])
        return found
    wait_until(kill, message='a reader blocked in XREAD')


def test_a_reader_killed_by_redis_resumes_without_loss(own_redis, key, streams):
    # a Redis of its own: it kills every reader blocked in XREAD
    redis_url = own_redis.url
    admin = redis.Redis.from_url(redis_url)
    with PyServer(redis_url, key, namespaces=('/',), **streams) as server, \
            PyClient(server.url) as client:
        wait_until(lambda: server.manager.ready)
        emitter = Emitter(redis_url, key=key, **streams)
        for n in range(50):
            emitter.emit('n', n)
            if n in (10, 30):
                _kill_readers(admin)
        client.wait_for('n', count=50, timeout=10)
        assert [args[0] for args in client.received('n')] == list(range(50))
        assert server.manager.stats()['stream_reconnects'] >= 1
        emitter.close()


def test_a_burst_while_slow_is_read_in_batches_of_read_count(redis_url, key, redis_client):
    options = {'mode': 'streams', 'stream_name': key + '-stream', 'read_count': 7}
    with PyServer(redis_url, key, namespaces=('/',), **options) as server, \
            PyClient(server.url) as client:
        wait_until(lambda: server.manager.ready)
        emitter = Emitter(redis_url, key=key, **options)
        with emitter.pipeline() as batch:
            for n in range(1000):
                batch.emit('burst', n)
        client.wait_for('burst', count=1000, timeout=20)
        assert [args[0] for args in client.received('burst')] == list(range(1000))
        assert server.manager.stats()['stream_gaps'] == 0
        emitter.close()


def test_max_len_caps_the_stream(redis_url, key, redis_client):
    options = {'mode': 'streams', 'stream_name': key + '-stream', 'max_len': 100}
    emitter = Emitter(redis_url, key=key, **options)
    for n in range(2000):
        emitter.emit('e', n)
    # MAXLEN ~ trims whole macro nodes (100 entries each by default)
    assert redis_client.xlen(key + '-stream') <= 300
    emitter.close()
