"""Sharded servers and the Emitter on a Redis Cluster that wants a password
(default user, ACL user) and TLS, all from the URL (and ``redis_options``).

Owns the claim that the URL's credentials and TLS options reach every node
connection: slot reads, per-master listeners, response subscriptions, publishes.
"""
import logging
import threading
import urllib.parse

import pytest

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, RedisManager
from sio_redis_sync.envelope import ShardedChannels
from topology import RedisCluster

# every character that needs quoting in a URL's userinfo
PASSWORD = 'p/w?#@:%x'
USER, USER_PASSWORD = 'sio', 'u:s/e#r?@'
MAX_CONNECTIONS = 4


def quote(text):
    return urllib.parse.quote(text, safe='')


@pytest.fixture(scope='module')
def secure_cluster():
    """One cluster of 3 masters for the module: requirepass and masterauth,
    an ACL user, and a TLS port beside each plain port."""
    cluster = RedisCluster(password=PASSWORD, users={USER: USER_PASSWORD}, tls=True)
    yield cluster
    cluster.close()


@pytest.fixture(params=['password', 'acl-user', 'tls', 'tls-options-in-url'])
def access(request, secure_cluster):
    """``(url, redis_options)``: each way into the cluster."""
    cluster = secure_cluster
    plain = cluster.ports[0]
    return {
        'password': (cluster.url, {}),
        'acl-user': ('redis://%s:%s@127.0.0.1:%d/0' % (USER, quote(USER_PASSWORD), plain),
                     {}),
        'tls': (cluster.tls_url, {'ssl_ca_certs': cluster.ca}),
        'tls-options-in-url': ('%s?ssl_ca_certs=%s&ssl_cert_reqs=required'
                               % (cluster.tls_url, quote(cluster.ca)), {}),
    }[request.param]


def room_on(cluster, channels, port, taken=()):
    """A room whose channel lives on the master at ``port``."""
    for n in range(10000):
        room = 'r%d' % n
        if room not in taken and cluster.master_of(channels.room(room)) == port:
            return room
    raise AssertionError('no room channel hashes to port %d' % port)


def _client_list(cluster, port):
    admin = cluster.admin(port)
    try:
        return admin.client_list()
    finally:
        admin.close()


def _concurrent_requests(emitter, sids):
    """Requests from more threads than the emitter has connections, while
    it emits: every one answered, every emit sent."""
    outcomes, emits = [], []

    def ask(n):
        for i in range(3):
            try:
                if (n + i) % 2:
                    outcomes.append(emitter.server_count() == 2)
                else:
                    outcomes.append({s.id for s in emitter.fetch_sockets(timeout=10)}
                                    == sids)
            except Exception as exc:  # the test reports every failure
                outcomes.append(exc)
    threads = [threading.Thread(target=ask, args=(n,)) for n in range(2 * MAX_CONNECTIONS)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        emits.append(emitter.emit('busy', len(emits)))
    for thread in threads:
        thread.join(30)
    assert outcomes == [True] * len(outcomes) and len(outcomes) == 6 * MAX_CONNECTIONS, \
        [o for o in outcomes if o is not True][:3]
    assert emits and set(emits) == {2}


def test_servers_and_an_emitter_on_a_cluster_with_auth_or_tls(
        secure_cluster, access, key, caplog):
    caplog.set_level(logging.INFO, logger='sio_redis_sync')
    url, options = access
    channels = ShardedChannels(key, '/')
    # a room on each master: every master's listener and publish path is used
    rooms = []
    for port in secure_cluster.masters():
        rooms.append(room_on(secure_cluster, channels, port, rooms))
    servers, clients, emitter = [], [], None
    try:
        servers = [PyServer(url, key, mode='sharded', cluster=True,
                            redis_options=options) for _ in range(2)]
        for server in servers:
            server.start_listening(timeout=15)
        clients = [PyClient(server.url, rooms=rooms) for server in servers]
        wait_until(lambda: all(s.manager.ready for s in servers), 15,
                   message='room subscriptions on every master')
        a, b = (server.manager for server in servers)

        servers[0].sio.emit('all', 1)
        for room in rooms:
            servers[1].sio.emit('room', room, to=room)
        for client in clients:
            assert client.wait_for('all', 10) == [1]
            client.wait_for('room', 10, count=len(rooms))
            assert sorted(args[0] for args in client.received('room')) == sorted(rooms)
        assert a.server_count() == b.server_count() == 2
        sids = {client.sid for client in clients}
        assert {s.id for s in a.fetch_sockets(timeout=10)} == sids
        assert {s.id for s in b.fetch_sockets(rooms[1], timeout=10)} == sids

        emitter = Emitter(url, key=key, mode='sharded', cluster=True,
                          max_connections=MAX_CONNECTIONS,
                          redis_options=dict(options, client_name=key))
        emitter.emit('from_emitter', 2)
        for room in rooms:
            emitter.emit('emitted_to_room', room, to=room)
        for client in clients:
            assert client.wait_for('from_emitter', 10) == [2]
            client.wait_for('emitted_to_room', 10, count=len(rooms))
        assert emitter.server_count() == 2
        assert {s.id for s in emitter.fetch_sockets(timeout=10)} == sids
        assert {s.id for s in emitter.fetch_sockets(rooms[2], timeout=10)} == sids
        _concurrent_requests(emitter, sids)
        # per master: its publish pool; and one connection for the answers
        named = sum(1 for port in secure_cluster.masters()
                    for entry in _client_list(secure_cluster, port)
                    if entry.get('name') == key)
        assert 1 <= named <= 3 * MAX_CONNECTIONS + 1
        assert emitter.stats()['publish_failures'] == 0
    finally:
        if emitter is not None:
            emitter.close()
        for client in clients:
            client.close()
        for server in servers:
            server.stop()
    for secret in (PASSWORD, quote(PASSWORD), USER_PASSWORD, quote(USER_PASSWORD)):
        assert secret not in caplog.text



@pytest.mark.parametrize('scheme', ['valkey', 'valkeys'])
def test_an_emitter_reaches_the_cluster_by_a_valkey_url(secure_cluster, key, scheme):
    """valkey:// and valkeys:// name the same cluster (redis-py only knows
    redis:// and rediss://): publishes, counts and requests work."""
    url = secure_cluster.url if scheme == 'valkey' else secure_cluster.tls_url
    url = scheme + url[url.index(':'):]
    emitter = Emitter(url, key=key, mode='sharded', cluster=True,
                      redis_options={'ssl_ca_certs': secure_cluster.ca}
                      if scheme == 'valkeys' else None)
    try:
        assert emitter.emit('nobody', 1) == 0
        assert emitter.server_count() == 0
        assert emitter.fetch_sockets(timeout=5) == []
    finally:
        emitter.close()


@pytest.mark.parametrize('scheme', ['valkey', 'valkeys'])
def test_a_manager_joins_the_cluster_by_a_valkey_url(secure_cluster, key, scheme):
    """The manager's start-up check (Redis >= 7, a cluster) reads the node of
    a valkey:// or valkeys:// URL with its password and TLS options too."""
    url = secure_cluster.url if scheme == 'valkey' else secure_cluster.tls_url
    url = scheme + url[url.index(':'):]
    manager = RedisManager(url, key=key, mode='sharded', cluster=True,
                           redis_options={'ssl_ca_certs': secure_cluster.ca}
                           if scheme == 'valkeys' else None)
    try:
        manager.initialize()
        wait_until(lambda: manager.ready, 10, message='subscriptions')
        assert manager.server_count() == 1
    finally:
        manager.close()
