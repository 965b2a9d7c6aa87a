"""Owns the cluster API (requests and answers over Redis) between Python servers,
on three real python-socketio servers with real clients:
fetch_sockets, all_rooms, server_count, server-side events with answers,
sockets_join/leave, disconnect_sockets, emit_with_ack, and timeouts when a
server stays silent. The Node side of each is in test_cluster_api_node.py.
"""
import json
import threading

import pytest
import redis
import socketio

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, RemoteSocket, RequestTimeout


@pytest.fixture
def trio(redis_url, key):
    """Servers A, B, C; a1@A in r1, b1@B in r1+r2, b2@B in no room,
    c1@C in r2 (with an auth payload)."""
    with PyServer(redis_url, key) as a, PyServer(redis_url, key) as b, \
            PyServer(redis_url, key) as c:
        for server in (a, b, c):
            server.start_listening()
        clients = {
            'a1': PyClient(a.url, rooms=['r1']),
            'b1': PyClient(b.url, rooms=['r1', 'r2']),
            'b2': PyClient(b.url),
            'c1': PyClient(c.url, rooms=['r2'], auth={'token': 'c1-secret'}),
        }
        yield a, b, c, clients
        for client in clients.values():
            client.close()


@pytest.fixture
def silent_server(redis_url, key):
    """A subscriber of the request channel that never answers: counted by
    NUMSUB, like a server that hangs."""
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe('%s-request#/#' % key)
    assert pubsub.get_message(timeout=5)['type'] == 'subscribe'
    yield
    pubsub.close()
    client.close()


def test_server_count_is_numsub(trio, silent_server):
    a, b, c, clients = trio
    assert a.manager.server_count() == 4
    assert b.manager.server_count('/admin') == 3


def test_all_rooms_from_every_server(trio):
    a, b, c, clients = trio
    sids = {client.sid for client in clients.values()}
    for server in (a, b, c):
        assert server.manager.all_rooms() == {'r1', 'r2'} | sids


def test_fetch_sockets_of_a_room_across_servers(trio):
    a, b, c, clients = trio
    b.sio.save_session(clients['b1'].sid, {'user': 'bob'})
    sockets = a.manager.fetch_sockets('r1')
    assert all(isinstance(s, RemoteSocket) for s in sockets)
    by_id = {s.id: s for s in sockets}
    assert set(by_id) == {clients['a1'].sid, clients['b1'].sid}
    b1 = by_id[clients['b1'].sid]
    assert sorted(b1.rooms) == sorted([clients['b1'].sid, 'r1', 'r2'])
    assert b1.data == {'user': 'bob'}
    handshake = b1.handshake
    assert set(handshake) == {'headers', 'time', 'address', 'xdomain', 'secure',
                              'issued', 'url', 'query', 'auth'}
    assert handshake['query']['rooms'] == 'r1,r2'
    assert handshake['query']['EIO'] == '4'
    assert handshake['headers']['host'] == '127.0.0.1:%d' % b.port
    assert handshake['address'] == '127.0.0.1'
    assert handshake['secure'] is False
    # websocket-client sends an Origin header; Node's rule is !!headers.origin
    assert handshake['xdomain'] is ('origin' in handshake['headers'])
    assert handshake['url'].startswith('/socket.io/?')
    assert isinstance(handshake['issued'], int)


def test_fetch_sockets_with_skip_and_the_auth_payload(trio):
    a, b, c, clients = trio
    sockets = b.manager.fetch_sockets(['r1', 'r2'], skip='r1')
    assert [s.id for s in sockets] == [clients['c1'].sid]
    assert sockets[0].handshake['auth'] == {'token': 'c1-secret'}
    everyone = c.manager.fetch_sockets()
    assert {s.id for s in everyone} == {cl.sid for cl in clients.values()}


def test_remote_socket_emit_join_leave_disconnect(trio):
    a, b, c, clients = trio
    (b2,) = a.manager.fetch_sockets(clients['b2'].sid)
    b2.emit('hello', 1, 2)
    assert clients['b2'].wait_for('hello') == [1, 2]
    b2.join('joined')
    wait_until(lambda: 'joined' in b.sio.rooms(clients['b2'].sid),
               message='b2 in joined')
    b2.leave('joined')
    wait_until(lambda: 'joined' not in b.sio.rooms(clients['b2'].sid),
               message='b2 out of joined')
    b2.disconnect()
    assert clients['b2'].disconnected.wait(5)
    assert clients['b1'].client.connected


def test_sockets_join_leave_and_disconnect_with_room_and_skip(trio):
    a, b, c, clients = trio
    a.manager.sockets_join('r3', room='r2', skip='r1')   # only c1
    wait_until(lambda: 'r3' in c.sio.rooms(clients['c1'].sid), message='c1 in r3')
    assert 'r3' not in b.sio.rooms(clients['b1'].sid)
    a.manager.sockets_join(['r4', 'r5'])                 # everyone, a1 included
    for server, name in ((a, 'a1'), (b, 'b1'), (b, 'b2'), (c, 'c1')):
        wait_until(lambda s=server, n=name: {'r4', 'r5'} <= set(s.sio.rooms(clients[n].sid)),
                   message='%s in r4 and r5' % name)
    c.manager.sockets_leave('r4', room='r1')
    for server, name in ((a, 'a1'), (b, 'b1')):
        wait_until(lambda s=server, n=name: 'r4' not in s.sio.rooms(clients[n].sid),
                   message='%s out of r4' % name)
    assert 'r4' in b.sio.rooms(clients['b2'].sid)
    b.manager.disconnect_sockets(room='r5', skip='r2')   # a1 and b2
    assert clients['a1'].disconnected.wait(5)
    assert clients['b2'].disconnected.wait(5)
    assert clients['b1'].client.connected and clients['c1'].client.connected


def test_server_side_call_gets_every_other_servers_answer(trio):
    a, b, c, clients = trio
    for name, server in (('a', a), ('b', b), ('c', c)):
        server.manager.on('ask', lambda *args, name=name: {'server': name,
                                                           'args': list(args)})
    answers = a.manager.server_side_call('ask', 1, 'x')
    assert sorted(answers, key=lambda x: x['server']) == [
        {'server': 'b', 'args': [1, 'x']}, {'server': 'c', 'args': [1, 'x']}]


def test_server_side_emit_reaches_decorated_handlers(trio):
    a, b, c, clients = trio
    got = []

    @b.manager.on('note', namespace='/admin')
    def note(*args):
        got.append(args)

    a.manager.server_side_emit('note', {'n': 1}, namespace='/admin')
    wait_until(lambda: got, message='the server-side event on b')
    assert got == [({'n': 1},)]


def test_server_side_emit_with_callback_reports_a_timeout(trio):
    a, b, c, clients = trio
    b.manager.on('ask', lambda: 'from b')
    # c has no handler: like Node, it never answers
    a.manager.requests_timeout = 0.5
    results = []
    a.manager.server_side_emit('ask', callback=lambda error, replies:
                               results.append((error, replies)))
    wait_until(lambda: results, message='the callback')
    error, replies = results[0]
    assert isinstance(error, RequestTimeout)
    assert '1 of 2 servers responded' in str(error)
    assert replies == ['from b']


def test_a_failing_handler_is_logged_and_answers_nothing(trio, caplog):
    a, b, c, clients = trio
    b.manager.on('ask', lambda: 1 / 0)
    c.manager.on('ask', lambda: 'fine')
    with pytest.raises(RequestTimeout) as caught:
        a.manager.server_side_call('ask', timeout=0.5)
    assert caught.value.replies == ['fine']
    assert 'handler failed' in caplog.text and 'ZeroDivisionError' in caplog.text
    # the listener of b lives on
    b.manager.on('ask', lambda: 'fixed')
    assert sorted(a.manager.server_side_call('ask')) == ['fine', 'fixed']


def test_a_slow_handler_does_not_stall_broadcasts(trio):
    a, b, c, clients = trio
    release = threading.Event()
    b.manager.on('slow', lambda: release.wait(10) and 'done')
    a.manager.server_side_emit('slow')
    try:
        a.sio.emit('meanwhile', to='r2')     # b1 is on b, whose handler blocks
        assert clients['b1'].wait_for('meanwhile') == []
        # and b still answers requests
        assert clients['b1'].sid in {s.id for s in a.manager.fetch_sockets('r2')}
    finally:
        release.set()


def test_emit_with_ack_collects_every_client_across_servers(trio):
    a, b, c, clients = trio
    for name in ('a1', 'b1', 'c1'):
        clients[name].client.on('poll', lambda *args, name=name: [name, *args])
    acks = b.manager.emit_with_ack('poll', 5, to=['r1', 'r2'])
    assert sorted(acks) == [['a1', 5], ['b1', 5], ['c1', 5]]
    assert a.manager.emit_with_ack('poll', 6, room='r2', skip_sid='r1') == [['c1', 6]]
    assert a.manager.emit_with_ack('poll', to='nobody') == []


def test_emit_with_ack_times_out_with_the_acks_that_came_and_forgets_them(trio):
    a, b, c, clients = trio
    release = threading.Event()
    clients['a1'].client.on('poll', lambda: 'a1')
    clients['b1'].client.on('poll', lambda: release.wait(10) and 'late b1')
    clients['c1'].client.on('poll', lambda: release.wait(10) and 'late c1')
    try:
        with pytest.raises(RequestTimeout) as caught:
            a.manager.emit_with_ack('poll', to=['r1', 'r2'], timeout=0.5)
        message = str(caught.value)
        assert '3 of 3 servers responded, 1 of 3 client acks arrived' in message
        assert caught.value.replies == ['a1']
    finally:
        release.set()
    assert len(a.manager._pending) == 0
    # the late acks find nothing; no callback is left behind anywhere
    for server in (b, c):
        wait_until(lambda s=server: not any(len(ids) > 1 for ids in s.manager.callbacks.values()),
                   message='callbacks of %s forgotten' % server.url)


def test_requests_to_a_silent_server_time_out_and_leave_nothing(trio, silent_server):
    a, b, c, clients = trio
    with pytest.raises(RequestTimeout) as caught:
        a.manager.all_rooms(timeout=0.5)
    assert 'all_rooms timed out after 0.5 s: 2 of 3 servers responded' in str(caught.value)
    assert len(caught.value.replies) == 2
    with pytest.raises(RequestTimeout) as caught:
        a.manager.fetch_sockets('r1', timeout=0.3)
    assert {s['id'] for reply in caught.value.replies for s in reply} \
        == {clients['b1'].sid}
    for _ in range(200):
        with pytest.raises(RequestTimeout):
            a.manager.all_rooms(timeout=0.001)
    assert len(a.manager._pending) == 0
    assert a.manager._pending.size < 100


def test_the_emitter_asks_the_cluster(trio, redis_url, key):
    a, b, c, clients = trio
    for name in ('a1', 'b1', 'c1'):
        clients[name].client.on('poll', lambda *args, name=name: name)
    for name, server in (('a', a), ('b', b), ('c', c)):
        server.manager.on('ask', lambda n, name=name: '%s%d' % (name, n))
    emitter = Emitter(redis_url, key=key)
    try:
        assert emitter.server_count() == 3
        assert {s.id for s in emitter.fetch_sockets('r2')} \
            == {clients['b1'].sid, clients['c1'].sid}
        # requests go through the emitter's own publisher (deadline, counters)
        assert emitter.stats()['published'] == 1
        assert emitter.all_rooms() >= {'r1', 'r2', clients['b2'].sid}
        assert sorted(emitter.to('r1').emit_with_ack('poll')) == ['a1', 'b1']
        assert sorted(emitter.emit_with_ack('poll', to='r2')) == ['b1', 'c1']
        assert sorted(emitter.server_side_call('ask', 7)) == ['a7', 'b7', 'c7']
        (b2,) = emitter.fetch_sockets(clients['b2'].sid)
        b2.emit('from-emitter', 'hi')
        assert clients['b2'].wait_for('from-emitter') == ['hi']
        b2.join('by-emitter')
        wait_until(lambda: 'by-emitter' in b.sio.rooms(clients['b2'].sid),
                   message='b2 joined by the emitter')
        b2.disconnect()
        assert clients['b2'].disconnected.wait(5)
    finally:
        emitter.close()


def test_the_emitter_times_out_on_a_silent_server(trio, silent_server, redis_url, key):
    emitter = Emitter(redis_url, key=key)
    try:
        with pytest.raises(RequestTimeout, match='3 of 4 servers responded'):
            emitter.fetch_sockets(timeout=0.5)
    finally:
        emitter.close()


def test_raw_requests_of_every_answered_type(trio, redis_client, key):
    """What a Node server or an older adapter sends, answered byte for byte
    in Node's response shapes (legacy SOCKETS included)."""
    a, b, c, clients = trio
    responses = redis_client.pubsub()
    responses.subscribe('%s-response#/#' % key)
    assert responses.get_message(timeout=5)['type'] == 'subscribe'

    def answers(request, count=3):
        redis_client.publish('%s-request#/#' % key, json.dumps(request))
        got = []
        while len(got) < count:
            message = responses.get_message(timeout=5)
            assert message is not None, 'only %r' % got
            if message['type'] == 'message':
                got.append(json.loads(message['data']))
        return got

    legacy = answers({'uid': 'node1', 'requestId': 'q0', 'type': 0, 'rooms': ['r2']})
    assert sorted(s for r in legacy for s in r['sockets']) == \
        sorted([clients['b1'].sid, clients['c1'].sid])
    assert all(set(r) == {'requestId', 'sockets'} for r in legacy)
    rooms = answers({'uid': 'node1', 'requestId': 'q1', 'type': 1})
    assert set().union(*(r['rooms'] for r in rooms)) == \
        {'r1', 'r2'} | {cl.sid for cl in clients.values()}
    fetched = answers({'uid': 'node1', 'requestId': 'q5', 'type': 5,
                       'opts': {'rooms': ['r1'], 'except': []}})
    assert sorted(s['id'] for r in fetched for s in r['sockets']) == \
        sorted([clients['a1'].sid, clients['b1'].sid])
    responses.close()


def test_python_socketio_callbacks_are_forgotten_after_ack_ttl(trio):
    a, b, c, clients = trio
    a.manager.ack_ttl = 0.2
    sid = clients['a1'].sid
    release = threading.Event()
    clients['a1'].client.on('slow', lambda: release.wait(10) and 'late')
    clients['a1'].client.on('quick', lambda: 'quick')
    try:
        with pytest.raises(socketio.exceptions.TimeoutError):
            a.sio.call('slow', to=sid, timeout=0.5)
        # its ack never came: python-socketio would keep the callback until
        # the client leaves; here the next ack id expires it
        assert a.sio.call('quick', to=sid, timeout=5) == 'quick'
        assert list(a.manager.callbacks[sid]) == [0]
    finally:
        release.set()
