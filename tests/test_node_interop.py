"""Owns broadcast interop with Node: a Node socket.io 4.8.4 server with
@socket.io/redis-adapter 8.3.0 and a Python RedisManager server in one cluster.

Both emitters reach both servers. Every peer is real: Node processes from
tests/package.json, Python servers on real ports, socket.io-client and
socketio.Client over WebSocket. The last tests (from test_node_only.py, merged
here) check the Node rig alone: two Node servers, Node clients and the Node
emitter, no Python peer. The cluster API with Node is test_cluster_api_node.py.
"""
import contextlib
import time

import pytest

from nodepeers import NodeClient, NodeEmitter, NodeServer
from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter


@pytest.fixture
def mixed(redis_url, key):
    """Node server N and Python server P; on each a client in r1, one in r1+r2,
    one in no room, and one on /admin in adminroom."""
    with NodeServer(redis_url, key) as node, PyServer(redis_url, key) as py, \
            contextlib.ExitStack() as stack:
        py.start_listening()
        clients = {
            'n1': NodeClient(node.url, rooms=['r1']),
            'n2': NodeClient(node.url, rooms=['r1', 'r2']),
            'n3': NodeClient(node.url),
            'nadmin': NodeClient(node.url, '/admin', rooms=['adminroom']),
            'p1': PyClient(py.url, rooms=['r1']),
            'p2': PyClient(py.url, rooms=['r1', 'r2']),
            'p3': PyClient(py.url),
            'padmin': PyClient(py.url, '/admin', rooms=['adminroom']),
        }
        for client in clients.values():
            stack.enter_context(client)
            assert client.sid
        yield node, py, clients


def receivers(clients, event, expected, args=None):
    """Exactly the ``expected`` clients get ``event`` (with ``args``), once."""
    for name in expected:
        got = clients[name].wait_for(event)
        if args is not None:
            assert got == args, name
    for name, client in clients.items():
        if name not in expected:
            client.assert_no_event(event, within=0.3 if name == 'n1' else 0)
    for name in expected:
        count = len([a for e, a in clients[name].events if e == event]) \
            if isinstance(clients[name], NodeClient) \
            else len(clients[name].received(event))
        assert count == 1, '%s got %r %d times' % (name, event, count)


def test_both_servers_count_in_numsub(mixed, redis_client, key):
    for namespace in ('/', '/admin'):
        channel = '%s-request#%s#' % (key, namespace)
        assert redis_client.pubsub_numsub(channel)[0][1] == 2


def test_node_broadcasts_reach_python_clients(mixed):
    node, py, clients = mixed
    args = ['text', b'\x00\x01\xff', {'nested': b'ok', 'n': 1.5}]
    clients['n1'].ctl(op='emit', nsp='/', to=['r1'], except_=['r2'],
                      event='from-node', args=args)
    receivers(clients, 'from-node', ['n1', 'p1'], args)
    clients['n1'].ctl(op='emit', nsp='/', to=['r1', 'r2'], event='rooms', args=[])
    receivers(clients, 'rooms', ['n1', 'n2', 'p1', 'p2'], [])
    clients['n1'].ctl(op='emit', nsp='/admin', to=['adminroom'],
                      event='adm', args=[None])
    receivers(clients, 'adm', ['nadmin', 'padmin'], [None])


def test_node_broadcast_to_a_python_sid(mixed):
    node, py, clients = mixed
    clients['n1'].ctl(op='emit', nsp='/', to=[clients['p3'].sid],
                      event='direct', args=[1])
    receivers(clients, 'direct', ['p3'], [1])


def test_python_broadcasts_reach_node_clients(mixed):
    node, py, clients = mixed
    py.sio.emit('from-py', ('a', b'\x07\x08', {'k': [1, None, True]}),
                to='r2')
    receivers(clients, 'from-py', ['n2', 'p2'],
              ['a', b'\x07\x08', {'k': [1, None, True]}])
    py.sio.emit('all-but', 3, skip_sid=clients['n3'].sid)
    receivers(clients, 'all-but', ['n1', 'n2', 'p1', 'p2', 'p3'], [3])
    py.sio.emit('adm', 'x', namespace='/admin')
    receivers(clients, 'adm', ['nadmin', 'padmin'], ['x'])
    py.sio.emit('to-node-sid', to=clients['n3'].sid)
    receivers(clients, 'to-node-sid', ['n3'], [])


def test_node_emitter_reaches_python_clients(mixed, redis_url, key):
    node, py, clients = mixed
    with NodeEmitter(redis_url, key) as emitter:
        emitter.op(op='emit', nsp='/', to=['r1'], except_=['r2'],
                   event='e1', args=[b'\x01', 'two'])
        receivers(clients, 'e1', ['n1', 'p1'], [b'\x01', 'two'])
        emitter.op(op='emit', nsp='/admin', event='e2', args=[{'a': 1}],
                   volatile=True, compress=False)
        receivers(clients, 'e2', ['nadmin', 'padmin'], [{'a': 1}])
        emitter.op(op='socketsJoin', nsp='/', to=['r2'], rooms=['joined'])
        wait_until(lambda: 'joined' in py.sio.rooms(clients['p2'].sid),
                   message='the Node emitter\'s socketsJoin on the Python server')
        emitter.op(op='disconnectSockets', nsp='/', to=[clients['p3'].sid],
                   close=False)
        assert clients['p3'].disconnected.wait(5)


def test_python_emitter_reaches_node_clients(mixed, redis_url, key):
    node, py, clients = mixed
    emitter = Emitter(redis_url, key=key)
    try:
        assert emitter.to('r1').except_('r2').emit('e1', b'\x01', 'two') == 2
        receivers(clients, 'e1', ['n1', 'p1'], [b'\x01', 'two'])
        emitter.of('/admin').volatile.compress(False).emit('e2', {'a': 1})
        receivers(clients, 'e2', ['nadmin', 'padmin'], [{'a': 1}])
        emitter.emit('e3', (1, 2), skip_sid=[clients['n1'].sid, clients['p1'].sid])
        receivers(clients, 'e3', ['n2', 'n3', 'p2', 'p3'], [1, 2])
        emitter.to('r2').sockets_join('vip')
        wait_until(lambda: 'vip' in clients['n2'].ctl(
            op='rooms', nsp='/', sid=clients['n2'].sid)['rooms'],
            message='our socketsJoin applied by the Node server')
        emitter.to('vip').emit('vip')
        receivers(clients, 'vip', ['n2', 'p2'], [])
        emitter.to(clients['n3'].sid).disconnect_sockets()
        clients['n3'].wait_disconnect()
    finally:
        emitter.close()


def test_python_server_moves_and_disconnects_node_sockets(mixed):
    node, py, clients = mixed
    n3 = clients['n3']
    py.sio.enter_room(n3.sid, 'moved')
    wait_until(lambda: 'moved' in n3.ctl(op='rooms', nsp='/', sid=n3.sid)['rooms'],
               message='REMOTE_JOIN applied by Node')
    py.sio.emit('moved', to='moved')
    receivers(clients, 'moved', ['n3'], [])
    py.sio.leave_room(n3.sid, 'moved')
    wait_until(lambda: 'moved' not in n3.ctl(op='rooms', nsp='/',
                                              sid=n3.sid)['rooms'],
               message='REMOTE_LEAVE applied by Node')
    py.sio.close_room('r1')
    wait_until(lambda: 'r1' not in clients['n1'].ctl(
        op='rooms', nsp='/', sid=clients['n1'].sid)['rooms'],
        message='close_room applied by Node')
    py.sio.disconnect(n3.sid)
    n3.wait_disconnect()


def test_node_server_moves_and_disconnects_python_sockets(mixed):
    node, py, clients = mixed
    n1 = clients['n1']
    n1.ctl(op='socketsJoin', nsp='/', to=['r2'], rooms=['from-node'])
    wait_until(lambda: 'from-node' in py.sio.rooms(clients['p2'].sid),
               message='Node socketsJoin on the Python server')
    assert 'from-node' not in py.sio.rooms(clients['p1'].sid)
    n1.ctl(op='socketsLeave', nsp='/', to=['from-node'], rooms=['from-node'])
    wait_until(lambda: 'from-node' not in py.sio.rooms(clients['p2'].sid),
               message='Node socketsLeave on the Python server')
    n1.ctl(op='disconnectSockets', nsp='/admin', to=[], close=False)
    assert clients['padmin'].disconnected.wait(5)
    clients['nadmin'].wait_disconnect()
    assert clients['p1'].client.connected


def test_python_server_calls_a_node_client(mixed):
    node, py, clients = mixed
    # the Node client acks with its arguments; only the first one travels
    assert py.sio.call('question', {'q': 1}, to=clients['n3'].sid,
                       timeout=5) == {'q': 1}
    acks = []
    py.sio.emit('poll', 'x', to='r2', callback=lambda *args: acks.append(args))
    wait_until(lambda: len(acks) == 2, message='acks of n2 and p2: %r' % acks)
    assert sorted(acks) == [(), ('x',)]  # p2 acks with no argument, n2 echoes


def test_node_server_gets_acks_from_python_clients(mixed):
    node, py, clients = mixed
    clients['p2'].client.on('question', lambda *args: 'from p2')
    clients['p1'].client.on('question', lambda *args: 'from p1')
    answer = clients['n3'].ctl(op='emitWithAck', nsp='/', to=['r2'],
                               except_=['r1'], event='question', args=[1])
    assert answer == {'ok': True, 'responses': []}  # nobody in r2 but not r1
    answer = clients['n3'].ctl(op='emitWithAck', nsp='/', to=['r1'],
                               event='question', args=[1], timeout=3000)
    assert not answer.get('timedOut'), answer
    assert sorted(map(str, answer['responses'])) == \
        ['1', '1', 'from p1', 'from p2']  # n1 and n2 echo their first argument


# The Node rig alone (formerly test_node_only.py)

@pytest.fixture
def node_pair(redis_url, key):
    """Two Node servers sharing ``key`` on the test Redis."""
    with NodeServer(redis_url, key) as a, NodeServer(redis_url, key) as b:
        yield a, b


@contextlib.contextmanager
def node_clients(*specs):
    """Start one NodeClient per (url, nsp, rooms) and wait until each connected."""
    with contextlib.ExitStack() as stack:
        started = [stack.enter_context(NodeClient(url, nsp, rooms))
                   for url, nsp, rooms in specs]
        for client in started:
            assert client.sid
        yield started


def test_ctl_emit_reaches_a_room_on_the_other_server(node_pair):
    a, b = node_pair
    with node_clients((a.url, '/', ['r1']), (b.url, '/', ['r1']),
                 (b.url, '/', ['r2'])) as (on_a, on_b, outsider):
        assert on_a.ctl(op='rooms', nsp='/', sid=on_a.sid)['rooms'] == [on_a.sid, 'r1']
        assert on_a.ctl(op='rooms', nsp='/', sid=on_b.sid)['rooms'] is None

        on_a.ctl(op='emit', nsp='/', to=['r1'], event='hello',
                 args=['text', b'\x00\x01\xff', {'nested': b'ok'}])

        expected = ['text', b'\x00\x01\xff', {'nested': b'ok'}]
        assert on_b.wait_for('hello') == expected
        assert on_a.wait_for('hello') == expected
        outsider.assert_no_event('hello')


def test_emitter_reaches_both_servers_namespaces_and_except(node_pair, redis_url, key):
    a, b = node_pair
    with node_clients((a.url, '/', ['r1']), (b.url, '/', ['r1', 'vip']),
                 (a.url, '/admin', ['r1'])) as (on_a, vip_b, admin_a), \
            NodeEmitter(redis_url, key) as emitter:
        emitter.op(op='emit', nsp='/', to=['r1'], event='all', args=[1, b'\x02'])
        assert on_a.wait_for('all') == [1, b'\x02']
        assert vip_b.wait_for('all') == [1, b'\x02']
        admin_a.assert_no_event('all', within=0.2)

        emitter.op(op='emit', nsp='/', to=['r1'], except_=['vip'], event='plain',
                   args=[])
        assert on_a.wait_for('plain') == []
        vip_b.assert_no_event('plain')

        emitter.op(op='emit', nsp='/admin', event='admins', args=['x'])
        assert admin_a.wait_for('admins') == ['x']
        on_a.assert_no_event('admins', within=0.2)


def test_emitter_sockets_join_then_room_emit(node_pair, redis_url, key):
    a, b = node_pair
    with node_clients((a.url, '/', []), (b.url, '/', ['r2'])) as (on_a, on_b), \
            NodeEmitter(redis_url, key) as emitter:
        emitter.op(op='socketsJoin', nsp='/', to=['r2'], rooms=['joined'])
        # The join is applied when server B reads the request; poll its answer.
        wait_rooms(on_b, on_b.sid, 'joined')

        emitter.op(op='emit', nsp='/', to=['joined'], event='late', args=[True])
        assert on_b.wait_for('late') == [True]
        on_a.assert_no_event('late')


def wait_rooms(client, sid, room, timeout=5.0):
    """Ask the client's server for ``sid``'s rooms until ``room`` is among them;
    each ctl round trip paces the poll."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rooms = client.ctl(op='rooms', nsp='/', sid=sid)['rooms']
        if room in rooms:
            return
    raise AssertionError('%s never joined %r (rooms %r)' % (sid, room, rooms))
