"""Streams-mode interop with Node: Python RedisManager(mode='streams') servers
and Node socket.io 4.8.4 servers on @socket.io/redis-streams-adapter 0.3.1
(connectionStateRecovery off) in one cluster, each test on a key and a stream
of its own.

Owns the mixed-cluster scenarios of streams mode: broadcasts both ways (rooms,
except, binary, a namespace other than '/', in order across XREAD batches),
socketsJoin/Leave and disconnectSockets both ways, fetchSockets with the
handshake both ways, serverSideEmit with and without acks both ways, broadcasts
with acks both ways, serverCount from both sides, the Python streams Emitter
reaching Node and Python servers, Node's negative-hash stream with
streamCount 3, and the Pub/Sub part over sharded Pub/Sub (useShardedPubSub).
Every peer is real: Node processes from tests/package.json, Python servers on
real ports, socket.io-client and socketio.Client over WebSocket.
"""
import contextlib
import threading

import pytest

from nodepeers import NodeClient, NodeServer
from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, streams

# a small read_count: a burst spans several XREAD batches on both sides
STREAM_OPTIONS = dict(max_len=500, read_count=2)


def stream_options(key, **more):
    """The streams options of a test's servers: its own stream name."""
    return dict(STREAM_OPTIONS, stream_name='%s-stream' % key, **more)


class Received:
    """Server-side events a Python server's handler got, by event name."""

    def __init__(self):
        self._events = []
        self._cond = threading.Condition()

    def handler(self, event, answer=None):
        def on_event(*args):
            with self._cond:
                self._events.append((event, list(args)))
                self._cond.notify_all()
            return answer
        return on_event

    def wait_for(self, event, timeout=5.0):
        with self._cond:
            if not self._cond.wait_for(lambda: self.of(event), timeout):
                raise AssertionError('no %r within %.1f s; got %r'
                                     % (event, timeout, self._events))
            return self.of(event)

    def of(self, event):
        return [args for name, args in self._events if name == event]


@pytest.fixture
def mixed(redis_url, key):
    """Python streams servers A and B and a Node streams server N; a1@A in r1
    (auth), b1@B in r1+r2, n0@N (drives Node operations, in no room), n1@N in
    r1, n2@N in r2, padmin@A and nadmin@N on /admin in adminroom."""
    options = stream_options(key)
    with PyServer(redis_url, key, mode='streams', **options) as a, \
            PyServer(redis_url, key, mode='streams', **options) as b, \
            NodeServer(redis_url, key, mode='streams', requests_timeout=1.0,
                       **options) as node, \
            contextlib.ExitStack() as stack:
        a.start_listening()
        b.start_listening()
        clients = {
            'a1': PyClient(a.url, rooms=['r1'], auth={'user': 'ann'}),
            'b1': PyClient(b.url, rooms=['r1', 'r2']),
            'padmin': PyClient(a.url, '/admin', rooms=['adminroom']),
            'n0': NodeClient(node.url),
            'n1': NodeClient(node.url, rooms=['r1']),
            'n2': NodeClient(node.url, rooms=['r2']),
            'nadmin': NodeClient(node.url, '/admin', rooms=['adminroom']),
        }
        for client in clients.values():
            stack.enter_context(client)
            assert client.sid
        yield a, b, node, clients


def sids(clients, *names):
    return {clients[name].sid for name in names}


def count_of(client, event):
    if isinstance(client, NodeClient):
        return len([args for name, args in client.events if name == event])
    return len(client.received(event))


def receivers(clients, event, expected, args=None):
    """Exactly the ``expected`` clients get ``event`` (with ``args``), once."""
    for name in expected:
        got = clients[name].wait_for(event)
        if args is not None:
            assert got == args, name
    within = 0.3   # the first one waits, the others are checked after it
    for name, client in clients.items():
        if name not in expected:
            client.assert_no_event(event, within=within)
            within = 0
    for name in expected:
        count = count_of(clients[name], event)
        assert count == 1, '%s got %r %d times' % (name, event, count)


def node_rooms(clients, name, nsp='/'):
    """The rooms of a Node client's socket, asked of its server through n0."""
    return set(clients['n0'].ctl(op='rooms', nsp=nsp, sid=clients[name].sid)['rooms'] or ())


def streams_emitter(url, key, **more):
    """A streams Emitter on the test's stream (an emitter reads nothing: no
    read_count)."""
    options = stream_options(key, **more)
    del options['read_count']
    return Emitter(url, key=key, mode='streams', **options)


def test_server_count_from_both_sides(mixed, redis_url, key):
    a, b, node, clients = mixed
    assert a.manager.server_count() == 3
    assert b.manager.server_count(namespace='/admin') == 3
    assert clients['n0'].ctl(op='serverCount', nsp='/')['count'] == 3
    assert clients['n0'].ctl(op='serverCount', nsp='/admin')['count'] == 3
    emitter = streams_emitter(redis_url, key)
    try:
        assert emitter.server_count() == 3
        assert emitter.of('/admin').server_count() == 3
    finally:
        emitter.close()


def test_node_broadcasts_reach_python_clients(mixed, redis_client, key):
    a, b, node, clients = mixed
    n0 = clients['n0']
    args = ['text', b'\x00\x01\xff', {'nested': b'ok', 'n': 1.5}]
    n0.ctl(op='emit', nsp='/', to=['r1'], except_=['r2'], event='bin', args=args)
    receivers(clients, 'bin', ['a1', 'n1'], args)
    n0.ctl(op='emit', nsp='/', to=['r1', 'r2'], event='rooms', args=[{'k': [1, None]}])
    receivers(clients, 'rooms', ['a1', 'b1', 'n1', 'n2'], [{'k': [1, None]}])
    n0.ctl(op='emit', nsp='/', except_=['r1'], event='but-r1', args=[])
    receivers(clients, 'but-r1', ['n0', 'n2'], [])
    n0.ctl(op='emit', nsp='/', to=[clients['b1'].sid], event='direct', args=[1])
    receivers(clients, 'direct', ['b1'], [1])
    n0.ctl(op='emit', nsp='/admin', to=['adminroom'], event='adm', args=[None, b'\x02'])
    receivers(clients, 'adm', ['padmin', 'nadmin'], [None, b'\x02'])
    # they went through the test's stream, not Pub/Sub
    assert redis_client.xlen('%s-stream' % key) >= 5


def test_python_broadcasts_reach_node_clients(mixed, redis_client, key):
    a, b, node, clients = mixed
    a.sio.emit('bin', ('a', b'\x07\x08', {'k': [1, None, True]}), to='r2')
    receivers(clients, 'bin', ['b1', 'n2'], ['a', b'\x07\x08', {'k': [1, None, True]}])
    b.sio.emit('but-r1', 3, skip_sid='r1')
    receivers(clients, 'but-r1', ['n0', 'n2'], [3])
    a.sio.emit('r1-not-r2', {'x': 'y'}, to='r1', skip_sid='r2')
    receivers(clients, 'r1-not-r2', ['a1', 'n1'], [{'x': 'y'}])
    a.sio.emit('adm', 'x', namespace='/admin', to='adminroom')
    receivers(clients, 'adm', ['padmin', 'nadmin'], ['x'])
    b.sio.emit('to-node-sid', to=clients['n2'].sid)
    receivers(clients, 'to-node-sid', ['n2'], [])
    assert redis_client.xlen('%s-stream' % key) >= 5


def test_bursts_arrive_in_order_across_read_batches(mixed):
    # read_count=2 on every server: 20 entries take 10 XREADs
    a, b, node, clients = mixed
    for n in range(20):
        a.sio.emit('py-seq', n, to='r2')
    clients['n2'].wait_for('py-seq', count=20)
    assert [args for name, args in clients['n2'].events if name == 'py-seq'] == \
        [[n] for n in range(20)]
    for n in range(20):
        clients['n0'].ctl(op='emit', nsp='/', to=['r2'], event='node-seq', args=[n])
    clients['b1'].wait_for('node-seq', count=20)
    assert clients['b1'].received('node-seq') == [[n] for n in range(20)]


def test_node_moves_and_disconnects_python_sockets(mixed):
    a, b, node, clients = mixed
    n0, b1 = clients['n0'], clients['b1']
    n0.ctl(op='socketsJoin', nsp='/', to=['r2'], except_=['r1'], rooms=['from-node'])
    wait_until(lambda: 'from-node' in node_rooms(clients, 'n2'), message='n2 joined')
    n0.ctl(op='socketsJoin', nsp='/', to=['r2'], rooms=['from-node'])
    wait_until(lambda: 'from-node' in b.sio.rooms(b1.sid),
               message='Node socketsJoin applied by the Python server')
    assert 'from-node' not in a.sio.rooms(clients['a1'].sid)
    n0.ctl(op='socketsLeave', nsp='/', to=['from-node'], rooms=['from-node'])
    wait_until(lambda: 'from-node' not in b.sio.rooms(b1.sid),
               message='Node socketsLeave applied by the Python server')
    # the RemoteSocket API of Node on a Python socket: emit, join, leave
    assert n0.ctl(op='remoteSocket', nsp='/', sid=b1.sid, action='emit',
                  event='remote', args=[7, b'\x09'])['found']
    assert b1.wait_for('remote') == [7, b'\x09']
    n0.ctl(op='remoteSocket', nsp='/', sid=b1.sid, action='join', room='node-made')
    wait_until(lambda: 'node-made' in b.sio.rooms(b1.sid), message='b1 in node-made')
    n0.ctl(op='remoteSocket', nsp='/', sid=b1.sid, action='leave', room='node-made')
    wait_until(lambda: 'node-made' not in b.sio.rooms(b1.sid), message='b1 out')
    n0.ctl(op='disconnectSockets', nsp='/admin', to=[], close=False)
    assert clients['padmin'].disconnected.wait(5)
    clients['nadmin'].wait_disconnect()
    n0.ctl(op='remoteSocket', nsp='/', sid=b1.sid, action='disconnect')
    assert b1.disconnected.wait(5)
    assert clients['a1'].client.connected


def test_python_moves_and_disconnects_node_sockets(mixed):
    a, b, node, clients = mixed
    a.manager.sockets_join('joined', room='r1', skip='r2')    # a1 and n1
    wait_until(lambda: 'joined' in node_rooms(clients, 'n1'), message='n1 joined')
    assert 'joined' in a.sio.rooms(clients['a1'].sid)
    assert 'joined' not in node_rooms(clients, 'n2') | set(b.sio.rooms(clients['b1'].sid))
    b.manager.sockets_leave('joined', room='r1')
    wait_until(lambda: 'joined' not in node_rooms(clients, 'n1'), message='n1 left')
    # a Node socket moved by sid (enter_room / leave_room on a remote sid)
    n0 = clients['n0']
    a.sio.enter_room(n0.sid, 'moved')
    wait_until(lambda: 'moved' in node_rooms(clients, 'n0'), message='n0 in moved')
    b.sio.emit('in-moved', to='moved')
    receivers(clients, 'in-moved', ['n0'], [])
    a.sio.leave_room(n0.sid, 'moved')
    wait_until(lambda: 'moved' not in node_rooms(clients, 'n0'), message='n0 out of moved')
    a.sio.close_room('r2')
    wait_until(lambda: 'r2' not in node_rooms(clients, 'n2'), message='close_room at Node')
    a.manager.disconnect_sockets(namespace='/admin', close=True)   # padmin and nadmin
    clients['nadmin'].wait_disconnect()
    assert clients['padmin'].disconnected.wait(5)
    b.sio.disconnect(clients['n1'].sid)
    clients['n1'].wait_disconnect()
    assert clients['b1'].client.connected


def test_python_fetches_node_sockets_with_their_handshake(mixed):
    a, b, node, clients = mixed
    sockets = {s.id: s for s in a.manager.fetch_sockets('r1')}
    assert set(sockets) == sids(clients, 'a1', 'b1', 'n1')
    n1 = sockets[clients['n1'].sid]
    assert sorted(n1.rooms) == sorted([clients['n1'].sid, 'r1'])
    assert n1.data == {'server': 'node'}
    assert n1.handshake['query']['rooms'] == 'r1'
    assert n1.handshake['url'].startswith('/socket.io/?')
    assert n1.handshake['headers']['host'] == '127.0.0.1:%d' % node.port
    assert {s.id for s in b.manager.fetch_sockets('r2', skip='r1')} == sids(clients, 'n2')
    assert {s.id for s in b.manager.fetch_sockets(namespace='/admin')} == \
        sids(clients, 'padmin', 'nadmin')


def test_node_fetches_python_sockets_with_their_handshake(mixed):
    a, b, node, clients = mixed
    a.sio.save_session(clients['a1'].sid, {'plan': 'pro'})
    answer = clients['n0'].ctl(op='fetchSockets', nsp='/', to=['r1'])
    assert not answer.get('timedOut'), answer
    found = {s['id']: s for s in answer['sockets']}
    assert set(found) == sids(clients, 'a1', 'b1', 'n1')
    a1 = found[clients['a1'].sid]
    assert sorted(a1['rooms']) == sorted([clients['a1'].sid, 'r1'])
    assert a1['data'] == {'plan': 'pro'}
    assert a1['handshake']['auth'] == {'user': 'ann'}
    assert a1['handshake']['query']['rooms'] == 'r1'
    assert a1['handshake']['headers']['host'] == '127.0.0.1:%d' % a.port
    answer = clients['n0'].ctl(op='fetchSockets', nsp='/', to=['r2'], except_=['r1'])
    assert [s['id'] for s in answer['sockets']] == [clients['n2'].sid]
    answer = clients['n0'].ctl(op='fetchSockets', nsp='/admin')
    assert {s['id'] for s in answer['sockets']} == sids(clients, 'padmin', 'nadmin')


def test_server_side_emit_both_ways(mixed):
    a, b, node, clients = mixed
    n0 = clients['n0']
    received = Received()
    for name, server in (('a', a), ('b', b)):
        server.manager.on('note', received.handler('note@' + name))
        for nsp in ('/', '/admin'):
            server.manager.on('ask', received.handler(
                'ask@' + name, {'server': name, 'bin': b'\x0a'}), namespace=nsp)
    # Python -> Node (and the other Python server), no ack, binary included
    a.manager.server_side_emit('note', 'hi', b'\x01\x02')
    wait_until(lambda: {'event': 'note', 'args': ['hi', b'\x01\x02']} in n0.ctl(
        op='serverSideEmits', nsp='/')['events'], message='note at Node')
    assert received.wait_for('note@b') == [['hi', b'\x01\x02']]
    # Node -> Python, no ack
    n0.ctl(op='serverSideEmit', nsp='/', event='note', args=['from node', b'\x03'])
    assert received.wait_for('note@a') == [['from node', b'\x03']]
    wait_until(lambda: len(received.of('note@b')) == 2, message='second note at b')
    # with acks: Node asks, both Python servers answer
    answer = n0.ctl(op='serverSideEmitWithAck', nsp='/', event='ask', args=[1, 'x'])
    assert not answer.get('timedOut'), answer
    assert sorted(answer['responses'], key=lambda r: r['server']) == [
        {'server': 'a', 'bin': b'\x0a'}, {'server': 'b', 'bin': b'\x0a'}]
    assert received.of('ask@a') == [[1, 'x']]
    # with acks: Python asks (binary argument), Node and the other Python server answer
    answers = a.manager.server_side_call('ask', 2, b'\x04')
    assert sorted(answers, key=lambda r: r['server']) == [
        {'server': 'b', 'bin': b'\x0a'}, {'server': 'node', 'args': [2, {'$bin': 'BA=='}]}]
    assert received.of('ask@b')[-1] == [2, b'\x04']
    # in /admin too
    answers = b.manager.server_side_call('ask', 3, namespace='/admin')
    assert sorted(answers, key=lambda r: r['server']) == [
        {'server': 'a', 'bin': b'\x0a'}, {'server': 'node', 'args': [3]}]


def test_broadcast_acks_both_ways(mixed):
    a, b, node, clients = mixed
    clients['a1'].client.on('poll', lambda *args: 'a1')
    clients['b1'].client.on('poll', lambda *args: ['b1', b'\x05'])
    # Node's timeout().emitWithAck: the Python clients answer through Redis
    answer = clients['n0'].ctl(op='emitWithAck', nsp='/', to=['r1'],
                               event='poll', args=['n1 echoes'], timeout=3000)
    assert not answer.get('timedOut'), answer
    assert sorted(map(repr, answer['responses'])) == sorted(map(repr, [
        'a1', ['b1', b'\x05'], 'n1 echoes']))
    answer = clients['n0'].ctl(op='emitWithAck', nsp='/', to=['r2'], except_=['r1'],
                               event='poll', args=['n2'], timeout=3000)
    assert answer['responses'] == ['n2']
    # Python's emit_with_ack: the Node clients answer (they echo)
    acks = b.manager.emit_with_ack('poll', 'echo', to=['r1', 'r2'])
    assert sorted(map(repr, acks)) == sorted(map(repr, [
        'a1', ['b1', b'\x05'], 'echo', 'echo']))
    assert a.manager.emit_with_ack('poll', (b'\x06', 1), to='r2', skip_sid='r1') == [b'\x06']


def test_python_emitter_reaches_node_and_python_servers(mixed, redis_url, key):
    a, b, node, clients = mixed
    received = Received()
    for name, server in (('a', a), ('b', b)):
        server.manager.on('note', received.handler('note@' + name))
        server.manager.on('ask', received.handler('ask@' + name, name))
    clients['a1'].client.on('poll', lambda *args: 'a1')
    emitter = streams_emitter(redis_url, key)
    try:
        emitter.to('r1').except_('r2').emit('e1', b'\x01', 'two')
        receivers(clients, 'e1', ['a1', 'n1'], [b'\x01', 'two'])
        emitter.of('/admin').volatile.compress(False).emit('e2', {'a': 1})
        receivers(clients, 'e2', ['padmin', 'nadmin'], [{'a': 1}])
        emitter.emit('e3', (1, 2), skip_sid=[clients['n1'].sid, clients['a1'].sid])
        receivers(clients, 'e3', ['b1', 'n0', 'n2'], [1, 2])
        emitter.to('r2').sockets_join('vip')
        wait_until(lambda: 'vip' in node_rooms(clients, 'n2'), message='n2 in vip')
        wait_until(lambda: 'vip' in b.sio.rooms(clients['b1'].sid), message='b1 in vip')
        emitter.to('vip').emit('vip')
        receivers(clients, 'vip', ['b1', 'n2'], [])
        emitter.to('vip').sockets_leave('vip')
        wait_until(lambda: 'vip' not in node_rooms(clients, 'n2'), message='n2 out of vip')
        wait_until(lambda: 'vip' not in b.sio.rooms(clients['b1'].sid), message='b1 out')
        assert {s.id for s in emitter.fetch_sockets('r1')} == sids(clients, 'a1', 'b1', 'n1')
        assert sorted(emitter.to('r1').except_('r2').emit_with_ack('poll', 'n1')) == \
            ['a1', 'n1']
        emitter.server_side_emit('note', 'from emitter')
        wait_until(lambda: {'event': 'note', 'args': ['from emitter']} in clients['n0'].ctl(
            op='serverSideEmits', nsp='/')['events'], message='note at Node')
        assert received.wait_for('note@a') == [['from emitter']]
        assert received.wait_for('note@b') == [['from emitter']]
        assert sorted(map(repr, emitter.server_side_call('ask', 4))) == sorted(map(repr, [
            'a', 'b', {'server': 'node', 'args': [4]}]))
        emitter.to(clients['n0'].sid).disconnect_sockets()
        clients['n0'].wait_disconnect()
        emitter.of('/admin').disconnect_sockets(close=True)
        clients['nadmin'].wait_disconnect()
        assert clients['padmin'].disconnected.wait(5)
    finally:
        emitter.close()


def clients_in(stack, nsp, **servers):
    """One client in room ``r`` of ``nsp`` on each server, named
    ``<server name><nsp>`` (a NodeClient on a NodeServer), connected."""
    clients = {}
    for name, server in servers.items():
        kind = NodeClient if isinstance(server, NodeServer) else PyClient
        clients[name + nsp] = stack.enter_context(kind(server.url, nsp, rooms=['r']))
        assert clients[name + nsp].sid
    return clients


def test_a_negatively_hashed_namespace_never_reaches_node(redis_url, key, redis_client):
    """streamCount 3: '/users' hashes to stream -0, '/notifications' (hash
    -1014064871) to stream --2, which Node's readers (-0, -1, -2) never read.
    Observed: every stream entry of /notifications (broadcasts, joins) stays
    among the Python servers, which read that stream too, whoever wrote it;
    Node's clients there get only their own server's broadcasts; the Pub/Sub
    part (fetchSockets, serverSideEmit) still reaches every server."""
    options = stream_options(key, stream_count=3)
    stream = options['stream_name']
    assert streams.hash_code('/notifications') < 0 < streams.hash_code('/users')
    namespaces = ('/', '/users', '/notifications')
    with PyServer(redis_url, key, namespaces, mode='streams', **options) as a, \
            PyServer(redis_url, key, namespaces, mode='streams', **options) as b, \
            NodeServer(redis_url, key, mode='streams', namespaces=namespaces,
                       **options) as node, \
            contextlib.ExitStack() as stack:
        a.start_listening()
        b.start_listening()
        users = clients_in(stack, '/users', a=a, b=b, n=node)
        notes = clients_in(stack, '/notifications', a=a, b=b, n=node)
        # /users (stream -0): both ways
        a.sio.emit('u1', 1, namespace='/users', to='r')
        receivers(users, 'u1', ['a/users', 'b/users', 'n/users'], [1])
        users['n/users'].ctl(op='emit', nsp='/users', to=['r'], event='u2', args=[2])
        receivers(users, 'u2', ['a/users', 'b/users', 'n/users'], [2])
        assert redis_client.xlen('%s-0' % stream) == 2
        # /notifications (stream --2): Python to Python only
        a.sio.emit('n1', 1, namespace='/notifications', to='r')
        receivers(notes, 'n1', ['a/notifications', 'b/notifications'], [1])
        # a Node broadcast there reaches the Python servers (they read --2)
        notes['n/notifications'].ctl(op='emit', nsp='/notifications', to=['r'],
                                     event='n2', args=[2])
        receivers(notes, 'n2', ['a/notifications', 'b/notifications', 'n/notifications'], [2])
        assert redis_client.xlen('%s--2' % stream) == 2
        assert redis_client.exists('%s-0' % stream, '%s-1' % stream,
                                   '%s-2' % stream) == 1   # only -0 was written
        # joins are stream entries too: Node's socket stays out
        a.manager.sockets_join('joined', namespace='/notifications')
        wait_until(lambda: 'joined' in b.sio.rooms(notes['b/notifications'].sid,
                                                  namespace='/notifications'),
                   message='the join at b')
        assert 'joined' not in notes['n/notifications'].ctl(
            op='rooms', nsp='/notifications', sid=notes['n/notifications'].sid)['rooms']
        # the Pub/Sub part still reaches Node
        assert {s.id for s in a.manager.fetch_sockets('r', namespace='/notifications')} == \
            {c.sid for c in notes.values()}
        assert a.manager.server_count(namespace='/notifications') == 3
        a.manager.on('ask', lambda *args: 'a', namespace='/notifications')
        answers = b.manager.server_side_call('ask', 5, namespace='/notifications')
        assert sorted(map(repr, answers)) == ["'a'", repr({'server': 'node', 'args': [5]})]


def test_the_pubsub_part_over_sharded_pubsub(redis7, key):
    """use_sharded_pubsub / useShardedPubSub: requests and answers go through
    SPUBLISH/SSUBSCRIBE (Redis 7), broadcasts still through the stream."""
    options = stream_options(key, use_sharded_pubsub=True)
    with PyServer(redis7.url, key, mode='streams', **options) as py, \
            NodeServer(redis7.url, key, mode='streams', **options) as node, \
            contextlib.ExitStack() as stack:
        py.start_listening()
        pc = stack.enter_context(PyClient(py.url, rooms=['r1']))
        nc = stack.enter_context(NodeClient(node.url, rooms=['r1']))
        assert nc.sid
        assert py.manager.server_count() == 2
        assert nc.ctl(op='serverCount', nsp='/')['count'] == 2
        py.sio.emit('p', b'\x01', to='r1')
        assert nc.wait_for('p') == [b'\x01']
        nc.ctl(op='emit', nsp='/', to=['r1'], event='n', args=[b'\x02'])
        assert pc.wait_for('n') == [b'\x02']
        assert {s.id for s in py.manager.fetch_sockets('r1')} == {pc.sid, nc.sid}
        assert {s['id'] for s in nc.ctl(op='fetchSockets', nsp='/')['sockets']} == \
            {pc.sid, nc.sid}
        py.manager.on('ask', lambda *args: 'py')
        assert py.manager.server_side_call('ask', 1) == [{'server': 'node', 'args': [1]}]
        assert nc.ctl(op='serverSideEmitWithAck', nsp='/', event='ask',
                      args=[2])['responses'] == ['py']
        pc.client.on('poll', lambda *args: 'pc')
        assert sorted(py.manager.emit_with_ack('poll', 'nc', to='r1')) == ['nc', 'pc']
        answer = nc.ctl(op='emitWithAck', nsp='/', to=['r1'], event='poll', args=['nc'])
        assert sorted(answer['responses']) == ['nc', 'pc']
        emitter = streams_emitter(redis7.url, key, use_sharded_pubsub=True)
        try:
            assert emitter.server_count() == 2
            assert len(emitter.fetch_sockets()) == 2
        finally:
            emitter.close()
