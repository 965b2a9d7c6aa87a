"""Mixed Node/Python sharded clusters: a real Node server on createShardedAdapter
(node-redis 4.7.1) and a Python RedisManager(mode='sharded') in one cluster.

Owns the interop checks of sharded mode in each subscription mode, on a Redis
Cluster of 3 masters (and once on a standalone Redis 7) shared by the session (conftest).
"""
import pytest

from nodepeers import NodeClient, NodeServer
from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter


@pytest.fixture(scope='module')
def cluster(redis_cluster):
    return redis_cluster  # shared by the session (conftest); no node is stopped here


@pytest.fixture(scope='module')
def standalone(redis7):
    # shared by the session (conftest): stopped and reconfigured by no test here
    return redis7


def _mixed(url, is_cluster, key, mode):
    py = PyServer(url, key, mode='sharded', subscription_mode=mode, cluster=is_cluster)
    node = NodeServer(url, key, mode='sharded', subscription_mode=mode, cluster=is_cluster)
    peers = [py, node]
    try:
        py.start_listening(timeout=15)
        pc = PyClient(py.url, rooms=['room1'])
        nc = NodeClient(node.url, rooms=['room1', 'room2'])
        other = NodeClient(node.url)
        peers += [pc, nc, other]
        assert nc.sid and other.sid  # both connected
        wait_until(lambda: py.manager.ready, 10, message='python subscriptions')
        _check(py, node, pc, nc, other, url, is_cluster, key, mode)
    finally:
        for peer in reversed(peers):
            peer.close() if hasattr(peer, 'close') else peer.stop()


def _check(py, node, pc, nc, other, url, is_cluster, key, mode):
    manager = py.manager
    assert manager.server_count() == 2
    # Python -> Node broadcasts: all, one room, except, one remote sid
    py.sio.emit('p_all', {'n': 1})
    assert nc.wait_for('p_all', 10) == [{'n': 1}]
    other.wait_for('p_all', 10)
    pc.wait_for('p_all', 10)
    py.sio.emit('p_room', b'\x01', to='room2')
    assert nc.wait_for('p_room', 10) == [b'\x01']
    py.sio.emit('p_except', 1, skip_sid='room1')
    other.wait_for('p_except', 10)
    py.sio.emit('p_sid', 2, to=other.sid)
    other.wait_for('p_sid', 10)
    # Node -> Python broadcasts
    nc.ctl(op='emit', event='n_all', args=['x'])
    assert pc.wait_for('n_all', 10) == ['x']
    nc.ctl(op='emit', to=['room1'], event='n_room', args=[b'\x02'])
    assert pc.wait_for('n_room', 10) == [b'\x02']
    nc.ctl(op='emit', to=[pc.sid], event='n_sid', args=[3])
    assert pc.wait_for('n_sid', 10) == [3]
    nc.ctl(op='emit', **{'except': ['room1']}, event='n_except', args=[4])
    other.wait_for('n_except', 10)
    pc.assert_no_event('n_except', 0.3)
    nc.assert_no_event('p_except', 0)
    # fetch_sockets both ways
    ids = {s.id for s in manager.fetch_sockets(timeout=10)}
    assert ids == {pc.sid, nc.sid, other.sid}
    found = nc.ctl(op='fetchSockets', to=['room1'])['sockets']
    assert {s['id'] for s in found} == {pc.sid, nc.sid}
    # server-side emit (+ack) both ways
    manager.on('ask', lambda *args: {'server': 'python', 'args': list(args)})
    assert manager.server_side_call('ask', 5, timeout=10) == [
        {'server': 'node', 'args': [5]}]
    answer = nc.ctl(op='serverSideEmitWithAck', event='ask', args=[6])
    assert answer['responses'] == [{'server': 'python', 'args': [6]}]
    manager.server_side_emit('note', 'hi')
    wait_until(lambda: {'event': 'note', 'args': ['hi']} in nc.ctl(
        op='serverSideEmits')['events'], 10, message='note at Node')
    # joins/leaves/disconnects both ways
    manager.sockets_join('joined', room=other.sid)
    wait_until(lambda: 'joined' in (nc.ctl(op='rooms', sid=other.sid)['rooms'] or []), 10)
    nc.ctl(op='socketsJoin', to=[pc.sid], rooms=['from_node'])
    wait_until(lambda: 'from_node' in manager.get_rooms(pc.sid, '/'), 10)
    wait_until(lambda: manager.ready, 10)
    nc.ctl(op='emit', to=['from_node'], event='n_joined', args=[7])
    assert pc.wait_for('n_joined', 10) == [7]
    nc.ctl(op='socketsLeave', to=[pc.sid], rooms=['room1'])
    wait_until(lambda: 'room1' not in manager.get_rooms(pc.sid, '/'), 10)
    # the sharded emitter reaches both
    emitter = Emitter(url, key=key, mode='sharded', subscription_mode=mode, cluster=is_cluster)
    try:
        emitter.emit('e_all', 8)
        pc.wait_for('e_all', 10)
        nc.wait_for('e_all', 10)
        emitter.to('room2').emit('e_room', 9)
        assert nc.wait_for('e_room', 10) == [9]
        assert len(emitter.fetch_sockets(timeout=10)) == 3
    finally:
        emitter.close()
    nc.ctl(op='disconnectSockets', to=[pc.sid])
    wait_until(lambda: pc.disconnected.is_set(), 10, message='pc disconnected by Node')
    manager.disconnect_sockets(room=other.sid)
    other.wait_disconnect(10)


@pytest.mark.parametrize('mode', ['dynamic', 'dynamic-private', 'static'])
def test_mixed_sharded_cluster(cluster, key, mode):
    _mixed(cluster.url, True, key, mode)


def test_mixed_sharded_standalone(standalone, key):
    _mixed(standalone.url, False, key, 'dynamic')
