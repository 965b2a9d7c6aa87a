"""Sanity of the Node interop rig alone: two Node servers on one Redis key,
Node clients and the Node emitter, with no Python peer involved."""
import contextlib
import time

import pytest

from nodepeers import NodeClient, NodeEmitter, NodeServer


@pytest.fixture
def cluster(redis_url, key):
    """Two Node servers sharing ``key`` on the test Redis."""
    with NodeServer(redis_url, key) as a, NodeServer(redis_url, key) as b:
        yield a, b


@contextlib.contextmanager
def clients(*specs):
    """Start one NodeClient per (url, nsp, rooms) and wait until each connected."""
    with contextlib.ExitStack() as stack:
        started = [stack.enter_context(NodeClient(url, nsp, rooms))
                   for url, nsp, rooms in specs]
        for client in started:
            assert client.sid
        yield started


def test_ctl_emit_reaches_a_room_on_the_other_server(cluster):
    a, b = cluster
    with clients((a.url, '/', ['r1']), (b.url, '/', ['r1']),
                 (b.url, '/', ['r2'])) as (on_a, on_b, outsider):
        assert on_a.ctl(op='rooms', nsp='/', sid=on_a.sid)['rooms'] == [on_a.sid, 'r1']
        assert on_a.ctl(op='rooms', nsp='/', sid=on_b.sid)['rooms'] is None

        on_a.ctl(op='emit', nsp='/', to=['r1'], event='hello',
                 args=['text', b'\x00\x01\xff', {'nested': b'ok'}])

        expected = ['text', b'\x00\x01\xff', {'nested': b'ok'}]
        assert on_b.wait_for('hello') == expected
        assert on_a.wait_for('hello') == expected
        outsider.assert_no_event('hello')


def test_emitter_reaches_both_servers_namespaces_and_except(cluster, redis_url, key):
    a, b = cluster
    with clients((a.url, '/', ['r1']), (b.url, '/', ['r1', 'vip']),
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


def test_emitter_sockets_join_then_room_emit(cluster, redis_url, key):
    a, b = cluster
    with clients((a.url, '/', []), (b.url, '/', ['r2'])) as (on_a, on_b), \
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
