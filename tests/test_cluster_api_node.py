"""The cluster API in a mixed cluster: two Python servers and a Node socket.io
4.8.4 server with @socket.io/redis-adapter 8.3.0, each with real clients.

Each side asks and each side answers: fetchSockets / fetch_sockets, allRooms /
all_rooms, serverCount, serverSideEmitWithAck / server_side_call, broadcasts
with acks, RemoteSocket operations, and timeouts when the Node server is
stopped (SIGSTOP) or a subscriber stays silent.
"""
import contextlib
import signal

import pytest
import redis

from nodepeers import NodeClient, NodeServer
from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, RequestTimeout


@pytest.fixture
def mixed3(redis_url, key):
    """Python servers A and B, Node server N; a1@A in r1, b1@B in r1+r2,
    n1@N in r1, n2@N in r2, and n0@N on which Node operations are driven."""
    with PyServer(redis_url, key) as a, PyServer(redis_url, key) as b, \
            NodeServer(redis_url, key, requests_timeout=1.0) as node, \
            contextlib.ExitStack() as stack:
        a.start_listening()
        b.start_listening()
        clients = {
            'a1': PyClient(a.url, rooms=['r1'], auth={'user': 'ann'}),
            'b1': PyClient(b.url, rooms=['r1', 'r2']),
            'n0': NodeClient(node.url),
            'n1': NodeClient(node.url, rooms=['r1']),
            'n2': NodeClient(node.url, rooms=['r2']),
        }
        for client in clients.values():
            stack.enter_context(client)
            assert client.sid
        for name, server in (('a', a), ('b', b)):
            server.manager.on('ask', lambda *args, name=name: {
                'server': name, 'args': list(args)})
        yield a, b, node, clients


def sids(clients, *names):
    return {clients[name].sid for name in names}


def test_everyone_counts_three_servers(mixed3):
    a, b, node, clients = mixed3
    assert a.manager.server_count() == 3
    assert clients['n0'].ctl(op='serverCount', nsp='/')['count'] == 3


def test_python_fetches_node_sockets_with_their_handshake(mixed3):
    a, b, node, clients = mixed3
    sockets = {s.id: s for s in a.manager.fetch_sockets('r1')}
    assert set(sockets) == sids(clients, 'a1', 'b1', 'n1')
    n1 = sockets[clients['n1'].sid]
    assert sorted(n1.rooms) == sorted([clients['n1'].sid, 'r1'])
    assert n1.data == {'server': 'node'}
    assert n1.handshake['query']['rooms'] == 'r1'
    assert n1.handshake['url'].startswith('/socket.io/?')
    assert n1.handshake['headers']['host'] == '127.0.0.1:%d' % node.port


def test_node_fetches_python_sockets_with_their_handshake(mixed3):
    a, b, node, clients = mixed3
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


def test_all_rooms_both_ways(mixed3):
    a, b, node, clients = mixed3
    everyone = set().union(*(sids(clients, name) for name in clients))
    assert a.manager.all_rooms() == {'r1', 'r2'} | everyone
    assert set(clients['n0'].ctl(op='allRooms', nsp='/')['rooms']) \
        == {'r1', 'r2'} | everyone


def test_node_server_side_emit_with_ack_gets_python_answers(mixed3):
    a, b, node, clients = mixed3
    answer = clients['n0'].ctl(op='serverSideEmitWithAck', nsp='/',
                               event='ask', args=[1, 'x'])
    assert not answer.get('timedOut'), answer
    assert sorted(answer['responses'], key=lambda r: r['server']) == [
        {'server': 'a', 'args': [1, 'x']}, {'server': 'b', 'args': [1, 'x']}]


def test_python_server_side_call_gets_node_and_python_answers(mixed3):
    a, b, node, clients = mixed3
    answers = a.manager.server_side_call('ask', 2)
    assert sorted(answers, key=lambda r: r['server']) == [
        {'server': 'b', 'args': [2]}, {'server': 'node', 'args': [2]}]
    emitter = Emitter(a.manager.url, key=a.manager.key)
    try:
        assert len(emitter.server_side_call('ask', 3)) == 3
    finally:
        emitter.close()


def test_node_broadcast_with_acks_collects_python_clients(mixed3):
    a, b, node, clients = mixed3
    clients['a1'].client.on('poll', lambda *args: 'a1')
    clients['b1'].client.on('poll', lambda *args: 'b1')
    answer = clients['n0'].ctl(op='emitWithAck', nsp='/', to=['r1'],
                               event='poll', args=['n1 echoes'], timeout=3000)
    assert not answer.get('timedOut'), answer
    assert sorted(answer['responses']) == ['a1', 'b1', 'n1 echoes']


def test_python_emit_with_ack_collects_node_clients(mixed3):
    a, b, node, clients = mixed3
    clients['a1'].client.on('poll', lambda *args: 'a1')
    clients['b1'].client.on('poll', lambda *args: 'b1')
    acks = b.manager.emit_with_ack('poll', 'echo', to=['r1', 'r2'])
    assert sorted(acks) == ['a1', 'b1', 'echo', 'echo']   # n1 and n2 echo
    emitter = Emitter(a.manager.url, key=a.manager.key)
    try:
        assert sorted(emitter.to('r2').emit_with_ack('poll', 'e')) == ['b1', 'e']
        assert {s.id for s in emitter.fetch_sockets('r2')} == sids(clients, 'b1', 'n2')
    finally:
        emitter.close()


def test_python_remote_socket_on_a_node_socket(mixed3):
    a, b, node, clients = mixed3
    (n2,) = a.manager.fetch_sockets(clients['n2'].sid)
    n2.emit('direct', {'k': 1})
    assert clients['n2'].wait_for('direct') == [{'k': 1}]
    n2.join('py-made')
    a.sio.emit('in-py-made', to='py-made')
    clients['n2'].wait_for('in-py-made')
    n2.leave('py-made')
    wait_until(lambda: 'py-made' not in clients['n0'].ctl(
        op='rooms', nsp='/', sid=clients['n2'].sid)['rooms'],
        message='n2 out of py-made')
    n2.disconnect()
    clients['n2'].wait_disconnect()


def test_node_remote_socket_on_a_python_socket(mixed3):
    a, b, node, clients = mixed3
    n0, sid = clients['n0'], clients['b1'].sid
    assert n0.ctl(op='remoteSocket', nsp='/', sid=sid, action='emit',
                  event='direct', args=[7])['found']
    assert clients['b1'].wait_for('direct') == [7]
    n0.ctl(op='remoteSocket', nsp='/', sid=sid, action='join', room='node-made')
    wait_until(lambda: 'node-made' in b.sio.rooms(sid), message='b1 in node-made')
    n0.ctl(op='remoteSocket', nsp='/', sid=sid, action='leave', room='node-made')
    wait_until(lambda: 'node-made' not in b.sio.rooms(sid), message='b1 out')
    n0.ctl(op='remoteSocket', nsp='/', sid=sid, action='disconnect')
    assert clients['b1'].disconnected.wait(5)


def test_python_sockets_join_leave_disconnect_reach_node_sockets(mixed3):
    a, b, node, clients = mixed3
    n0 = clients['n0']

    def node_rooms(name):
        return set(n0.ctl(op='rooms', nsp='/', sid=clients[name].sid)['rooms'])

    a.manager.sockets_join('joined', room='r1', skip='r2')    # a1 and n1
    wait_until(lambda: 'joined' in node_rooms('n1'), message='n1 joined')
    wait_until(lambda: 'joined' in a.sio.rooms(clients['a1'].sid), message='a1')
    assert 'joined' not in node_rooms('n2') | set(b.sio.rooms(clients['b1'].sid))
    b.manager.sockets_leave('joined')
    wait_until(lambda: 'joined' not in node_rooms('n1'), message='n1 left')
    a.manager.disconnect_sockets(room='r2', close=True)        # b1 and n2
    clients['n2'].wait_disconnect()
    assert clients['b1'].disconnected.wait(5)
    assert clients['n1'].sid and clients['a1'].client.connected


def test_a_stopped_node_server_makes_requests_time_out(mixed3):
    a, b, node, clients = mixed3
    emitter = Emitter(a.manager.url, key=a.manager.key)
    node.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(RequestTimeout) as caught:
            a.manager.fetch_sockets(timeout=0.5)
        assert '1 of 2 servers responded' in str(caught.value)
        assert {s['id'] for s in caught.value.replies[0]} == sids(clients, 'b1')
        with pytest.raises(RequestTimeout, match='2 of 3 servers responded'):
            emitter.all_rooms(timeout=0.5)
        with pytest.raises(RequestTimeout, match=r'2 of 3 servers responded, '
                           r'1 of 1 client acks arrived'):
            clients['b1'].client.on('poll', lambda: 'b1')
            a.manager.emit_with_ack('poll', to='r2', timeout=0.5)
    finally:
        node.process.send_signal(signal.SIGCONT)
        emitter.close()
    assert len(a.manager._pending) == 0
    # once it runs again, the cluster is whole
    assert len(a.manager.fetch_sockets()) == 5


def test_node_requests_time_out_on_a_silent_subscriber_like_ours_do(mixed3, redis_url, key):
    a, b, node, clients = mixed3
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe('%s-request#/#' % key)
    try:
        assert pubsub.get_message(timeout=5)['type'] == 'subscribe'
        answer = clients['n0'].ctl(op='fetchSockets', nsp='/')
        assert answer.get('timedOut'), answer
        with pytest.raises(RequestTimeout, match='2 of 3 servers responded'):
            a.manager.fetch_sockets(timeout=0.5)
    finally:
        pubsub.close()
        client.close()
