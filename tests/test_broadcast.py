"""Owns broadcasts between two real python-socketio servers on one Redis: rooms,
except, namespaces, binary, acks, remote room/disconnect operations, manager lifecycle.

From a server and from the Emitter, with real clients. (Formerly test_cluster.py:
"cluster" here meant the Socket.IO cluster, not Redis Cluster (test_sharded*.py);
the request/answer cluster API is test_cluster_api.py.)
"""
import json

import pytest

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, RedisManager


@pytest.fixture
def cluster(redis_url, key):
    """Servers A and B; c1@A in r1, c2@B in r1+r2, c3@B in no room,
    c4@A in r2, c5@B on /admin in adminroom (the Node captures' topology)."""
    with PyServer(redis_url, key) as a, PyServer(redis_url, key) as b:
        a.start_listening()
        b.start_listening()
        clients = {
            'c1': PyClient(a.url, rooms=['r1']),
            'c2': PyClient(b.url, rooms=['r1', 'r2']),
            'c3': PyClient(b.url),
            'c4': PyClient(a.url, rooms=['r2']),
            'c5': PyClient(b.url, '/admin', rooms=['adminroom']),
        }
        yield a, b, clients
        for client in clients.values():
            client.close()


def receivers(clients, event, expected, silent_within=0.3):
    """Assert exactly the ``expected`` clients got ``event``, each once."""
    for name in expected:
        clients[name].wait_for(event)
    for name, client in clients.items():
        if name not in expected:
            client.assert_no_event(event, within=silent_within)
            silent_within = 0  # the first wait covered everyone
    for name in expected:
        assert len(clients[name].received(event)) == 1, name


def test_emit_to_all_reaches_both_servers(cluster):
    a, b, clients = cluster
    a.sio.emit('all', {'n': 1})
    receivers(clients, 'all', ['c1', 'c2', 'c3', 'c4'])
    assert clients['c3'].received('all') == [[{'n': 1}]]


def test_emit_to_one_room(cluster):
    a, b, clients = cluster
    a.sio.emit('room', 'x', to='r1')
    receivers(clients, 'room', ['c1', 'c2'])


def test_emit_to_several_rooms_delivers_once(cluster):
    a, b, clients = cluster
    b.sio.emit('rooms', room=['r1', 'r2'])
    receivers(clients, 'rooms', ['c1', 'c2', 'c4'])
    assert clients['c2'].received('rooms') == [[]]


def test_skip_sid_excludes_on_every_server(cluster):
    a, b, clients = cluster
    a.sio.emit('skip', 1, skip_sid=[clients['c2'].sid, clients['c1'].sid])
    receivers(clients, 'skip', ['c3', 'c4'])


def test_emit_to_a_sid_on_the_other_server(cluster):
    a, b, clients = cluster
    a.sio.emit('direct', 'hi', to=clients['c3'].sid)
    receivers(clients, 'direct', ['c3'])


def test_admin_namespace_is_separate(cluster):
    a, b, clients = cluster
    a.sio.emit('adm', 1, namespace='/admin')
    receivers(clients, 'adm', ['c5'])
    a.sio.emit('adm2', 2, to='adminroom', namespace='/admin')
    receivers(clients, 'adm2', ['c5'])


def test_binary_and_several_arguments(cluster):
    a, b, clients = cluster
    a.sio.emit('bin', (b'\x00\x01', {'nested': b'\xff'}, 3), to='r2')
    receivers(clients, 'bin', ['c2', 'c4'])
    assert clients['c2'].received('bin') == [[b'\x00\x01', {'nested': b'\xff'}, 3]]


def test_emitter_python_and_node_style(cluster, redis_url, key):
    a, b, clients = cluster
    emitter = Emitter(redis_url, key=key)
    try:
        assert emitter.emit('py', (1, 'two'), to='r1', skip_sid=clients['c1'].sid) == 2
        receivers(clients, 'py', ['c2'])
        assert clients['c2'].received('py') == [[1, 'two']]
        emitter.to('r1').to('r2').except_('r1').emit('node', b'\x07')
        receivers(clients, 'node', ['c4'])
        emitter.of('admin').to('adminroom').volatile.compress(False).emit('adm')
        receivers(clients, 'adm', ['c5'])
    finally:
        emitter.close()


def test_remote_enter_and_leave_room(cluster):
    a, b, clients = cluster
    c3 = clients['c3']
    a.sio.enter_room(c3.sid, 'joined')
    wait_until(lambda: 'joined' in b.sio.rooms(c3.sid), message='remote join')
    a.sio.emit('after-join', to='joined')
    receivers(clients, 'after-join', ['c3'])
    a.sio.leave_room(c3.sid, 'joined')
    wait_until(lambda: 'joined' not in b.sio.rooms(c3.sid), message='remote leave')


def test_close_room_empties_it_everywhere(cluster):
    a, b, clients = cluster
    a.sio.close_room('r1')
    wait_until(lambda: 'r1' not in b.sio.rooms(clients['c2'].sid),
               message='r1 closed on B')
    assert 'r1' not in a.sio.rooms(clients['c1'].sid)
    b.sio.emit('closed', to='r1')
    receivers(clients, 'closed', [])


def test_disconnect_a_sid_on_the_other_server(cluster):
    a, b, clients = cluster
    a.sio.disconnect(clients['c3'].sid)
    assert clients['c3'].disconnected.wait(5)
    wait_until(lambda: not b.manager.is_connected(clients['c3'].sid, '/'))
    assert clients['c2'].client.connected


def test_emitter_sockets_join_leave_disconnect(cluster, redis_url, key):
    a, b, clients = cluster
    emitter = Emitter(redis_url, key=key)
    try:
        emitter.in_('r1').except_('r2').sockets_join('vip')
        wait_until(lambda: 'vip' in a.sio.rooms(clients['c1'].sid))
        emitter.emit('vip', to='vip')
        receivers(clients, 'vip', ['c1'])
        emitter.to('vip').sockets_leave(['vip'])
        wait_until(lambda: 'vip' not in a.sio.rooms(clients['c1'].sid))
        emitter.to('r2').disconnect_sockets()
        assert clients['c2'].disconnected.wait(5)
        assert clients['c4'].disconnected.wait(5)
        assert clients['c1'].client.connected
    finally:
        emitter.close()


def test_each_server_subscribes_the_request_channel_once(cluster, redis_client, key):
    a, b, clients = cluster
    for namespace in ('/', '/admin'):
        channel = '%s-request#%s#' % (key, namespace)
        assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 2)]


def test_close_releases_the_subscription(redis_url, key, redis_client):
    server = PyServer(redis_url, key)
    try:
        server.start_listening()
        channel = '%s-request#/#' % key
        assert redis_client.pubsub_numsub(channel)[0][1] == 1
    finally:
        server.stop()
    wait_until(lambda: redis_client.pubsub_numsub(channel)[0][1] == 0,
               message='unsubscribed after close()')
    assert not server.manager.ready


def test_dynamic_namespace_is_subscribed_on_first_connect(redis_url, key, redis_client):
    with PyServer(redis_url, key, namespaces=('/', '/late')) as a, \
            PyServer(redis_url, key, namespaces=('/',)) as b:
        b.sio.namespaces = '*'
        a.start_listening()
        b.start_listening()
        channel = '%s-request#/dyn#' % key
        assert redis_client.pubsub_numsub(channel)[0][1] == 0
        with PyClient(b.url, '/dyn') as client:
            wait_until(lambda: redis_client.pubsub_numsub(channel)[0][1] == 1)
            wait_until(lambda: b.manager.ready, message='/dyn subscribed')
            Emitter(redis_url, key=key).of('/dyn').emit('dyn', 1)
            assert client.wait_for('dyn') == [1]


def test_write_only_manager_without_a_server(cluster, redis_url, key):
    a, b, clients = cluster
    manager = RedisManager(redis_url, key=key, write_only=True)
    try:
        manager.initialize()
        manager.emit('wo', {'x': 1}, namespace='/', room='r2')
        receivers(clients, 'wo', ['c2', 'c4'])
        manager.enter_room(clients['c3'].sid, '/', 'from-wo')
        wait_until(lambda: 'from-wo' in b.sio.rooms(clients['c3'].sid))
        manager.disconnect(clients['c3'].sid, '/')
        assert clients['c3'].disconnected.wait(5)
        assert not manager.ready
    finally:
        manager.close()


def test_unserializable_data_raises_at_the_call_site(cluster):
    a, b, clients = cluster
    with pytest.raises(TypeError):
        a.sio.emit('bad', {1, 2})
    with pytest.raises(TypeError):
        a.sio.emit('bad', 2 ** 70, to='r1')
    receivers(clients, 'bad', [])


def test_a_closed_manager_can_listen_again(redis_url, key, redis_client):
    with PyServer(redis_url, key) as server, \
            PyClient(server.url, rooms=['r1']) as client:
        wait_until(lambda: server.manager.ready)
        server.manager.close()
        server.manager.initialize()
        assert server.manager.ready
        assert redis_client.pubsub_numsub('%s-request#/#' % key)[0][1] == 1
        Emitter(redis_client, key=key).to('r1').emit('again')
        client.wait_for('again')


def test_legacy_requests_by_sid_are_applied_and_answered(redis_url, key, redis_client):
    """The per-socket forms of REMOTE_JOIN/LEAVE/DISCONNECT (capture P6) that
    older adapters send: the owner applies them and answers {requestId}."""
    with PyServer(redis_url, key) as server, PyClient(server.url) as client:
        wait_until(lambda: server.manager.ready)
        responses = redis_client.pubsub()
        responses.subscribe('%s-response#/#' % key)
        responses.get_message(timeout=1)  # the subscribe confirmation
        request = '%s-request#/#' % key

        def ask(**fields):
            redis_client.publish(request, json.dumps(
                {'uid': 'pyserver1', 'requestId': fields['type_name'],
                 **{k: v for k, v in fields.items() if k != 'type_name'}}))
            message = responses.get_message(timeout=5)
            assert message is not None, 'no answer to %s' % fields['type_name']
            return json.loads(message['data'])

        assert ask(type_name='join', type=2, sid=client.sid, room='legacy') \
            == {'requestId': 'join'}
        assert 'legacy' in server.sio.rooms(client.sid)
        assert ask(type_name='leave', type=3, sid=client.sid, room='legacy') \
            == {'requestId': 'leave'}
        assert 'legacy' not in server.sio.rooms(client.sid)
        assert ask(type_name='bye', type=4, sid=client.sid, close=False) \
            == {'requestId': 'bye'}
        assert client.disconnected.wait(5)
        responses.close()


def test_call_and_callbacks_for_a_client_of_this_server(cluster):
    a, b, clients = cluster
    clients['c1'].client.on('question', lambda *args: ['answer', *args])
    assert a.sio.call('question', 42, to=clients['c1'].sid, timeout=5) \
        == ['answer', 42]
    acks = []
    a.sio.emit('question', 'cb', to=clients['c1'].sid,
               callback=lambda *args: acks.append(args))
    wait_until(lambda: acks, message='the callback')
    assert acks == [(['answer', 'cb'],)]
    assert a.manager.callbacks.get(clients['c1'].sid, {}).keys() <= {0}


def test_call_a_client_of_the_other_server(cluster):
    a, b, clients = cluster
    clients['c3'].client.on('question', lambda *args: ['answer', *args])
    assert a.sio.call('question', 7, to=clients['c3'].sid, timeout=5) \
        == ['answer', 7]
    # a one-client callback is gone after its ack
    wait_until(lambda: len(a.manager._pending) == 0, message='the entry dropped')


def test_callback_gets_every_ack_of_a_room_across_servers(cluster):
    a, b, clients = cluster
    for name in ('c1', 'c2', 'c4'):
        clients[name].client.on('poll', lambda *args, name=name: name)
    acks = []
    a.sio.emit('poll', to=['r1', 'r2'], callback=acks.append)
    wait_until(lambda: len(acks) == 3, message='3 acks, got %r' % acks)
    assert sorted(acks) == ['c1', 'c2', 'c4']


def test_write_only_manager_refuses_callbacks(redis_url, key):
    manager = RedisManager(redis_url, key=key, write_only=True)
    with pytest.raises(RuntimeError, match='never hears acks'):
        manager.emit('x', None, namespace='/', to='r1', callback=print)
    manager.close()


def test_a_serverless_manager_listens_when_a_callback_needs_it(cluster, redis_url, key):
    a, b, clients = cluster
    clients['c3'].client.on('question', lambda *args: 'yes')
    manager = RedisManager(redis_url, key=key)
    try:
        assert not manager.ready
        acks = []
        manager.emit('question', None, namespace='/', to=clients['c3'].sid,
                     callback=acks.append)
        assert manager.ready
        wait_until(lambda: acks == ['yes'], message='the ack through Redis')
    finally:
        manager.close()
