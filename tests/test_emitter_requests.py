"""Emitter requests (fetch_sockets, server_count, all_rooms, server_side_call)
from many threads at once, against real servers, classic and sharded.

Owns the claim that concurrent requests share one response subscription: they
never starve each other or the emits, and the connections stay bounded.
"""
import multiprocessing
import threading

import pytest
import redis

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, PublishError, protocol
from topology import Standalone

MAX_CONNECTIONS = 4
THREADS = 8
ROUNDS = 6


@pytest.fixture(scope='module')
def redis7():
    server = Standalone()
    yield server
    server.close()


@pytest.fixture(params=['classic', 'sharded'])
def cluster_of_two(request, redis_url, key):
    """``(url, mode, servers, clients)``: two servers, a client on each (in
    room ``r``); classic on the shared Redis, sharded on a Redis 7."""
    mode = request.param
    url = redis_url if mode == 'classic' else request.getfixturevalue('redis7').url
    servers = [PyServer(url, key, mode=mode) for _ in range(2)]
    clients = []
    try:
        for server in servers:
            server.start_listening(timeout=10)
        clients = [PyClient(server.url, rooms=['r']) for server in servers]
        yield url, mode, servers, clients
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.stop()


class ConnectionCounter:
    """Samples ``CLIENT LIST`` for the connections named ``name`` while the
    test runs; ``most`` is the largest count seen."""

    def __init__(self, url, name):
        self.admin = redis.Redis.from_url(url)
        self.name = name
        self.most = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def count(self):
        return sum(1 for entry in self.admin.client_list()
                   if entry.get('name') == self.name)

    def _run(self):
        while not self.stop.is_set():
            self.most = max(self.most, self.count())
            self.stop.wait(0.01)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.admin.close()


@pytest.mark.parametrize('given', ['url', 'client'])
def test_concurrent_requests_share_the_connections_with_emits(cluster_of_two, key, given):
    url, mode, servers, clients = cluster_of_two
    if given == 'url':
        emitter = Emitter(url, key=key, mode=mode, max_connections=MAX_CONNECTIONS,
                          redis_options={'client_name': key})
    else:  # the answers take a connection of the user's pool while requests wait
        emitter = Emitter(redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=5, client_name=key)),
            key=key, mode=mode)
    counter = ConnectionCounter(url, key)
    sids = {client.sid for client in clients}
    servers[0].manager.on('ask', lambda n: n + 1)
    servers[1].manager.on('ask', lambda n: n + 2)
    requests = [
        lambda: {s.id for s in emitter.fetch_sockets(timeout=10)} == sids,
        lambda: emitter.server_count() == 2,
        lambda: sorted(emitter.server_side_call('ask', 1, timeout=10)) == [2, 3],
    ]
    if mode == 'classic':
        requests.append(lambda: sids <= emitter.all_rooms(timeout=10))
    outcomes, emitted, start = [], [], threading.Barrier(THREADS + 1)

    def ask(n):
        start.wait(10)
        for i in range(ROUNDS):
            try:
                outcomes.append(requests[(n + i) % len(requests)]())
            except Exception as exc:  # the test reports every failure
                outcomes.append(exc)

    def emit():
        start.wait(10)
        while len(outcomes) < THREADS * ROUNDS:
            try:
                emitted.append(emitter.emit('tick', len(emitted)))
            except Exception as exc:  # the test reports every failure
                emitted.append(exc)
    threads = [threading.Thread(target=ask, args=(n,)) for n in range(THREADS)]
    threads.append(threading.Thread(target=emit))
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert outcomes == [True] * (THREADS * ROUNDS), \
            [o for o in outcomes if o is not True][:5]
        assert emitted and all(receivers == 2 for receivers in emitted), \
            [e for e in emitted if e != 2][:5]
        for client in clients:
            client.wait_for('tick', 10, count=len(emitted))
        # the pool's connections and one for the answers, whatever the load
        assert 1 <= counter.most <= MAX_CONNECTIONS + (given == 'url')
        assert emitter.stats()['publish_failures'] == 0
    finally:
        counter.close()
        emitter.close()
        if given == 'client':
            emitter.redis.close()


def response_subscribers(url, key, mode, uid):
    client = redis.Redis.from_url(url)
    try:
        if mode == 'classic':
            channels = protocol.Channels(key, '/')
            return [count for _, count in client.pubsub_numsub(
                channels.response, channels.response_for(uid))]
        from sio_redis_sync.envelope import ShardedChannels
        channel = ShardedChannels(key, '/').response_for(uid)
        return [client.execute_command('PUBSUB SHARDNUMSUB', channel)[0][1]]
    finally:
        client.close()


def test_an_idle_emitter_is_not_subscribed_and_close_stops_a_request(
        cluster_of_two, key):
    """No request: no response subscription (classic's shared response
    channel carries every answer of the cluster). close() during a request
    makes it raise PublishError; the emitter works again afterwards."""
    url, mode, servers, clients = cluster_of_two
    emitter = Emitter(url, key=key, mode=mode)
    release, asked = threading.Event(), threading.Event()

    def slow():
        asked.set()
        return release.wait(10) and 'late'
    for server in servers:
        server.manager.on('slow', slow)
    # the servers' own subscriptions (classic servers listen to the
    # response channel too)
    servers_only = response_subscribers(url, key, mode, emitter.uid)
    try:
        assert len(emitter.fetch_sockets(timeout=10)) == 2
        wait_until(lambda: response_subscribers(url, key, mode, emitter.uid) == servers_only,
                   5, message='response channels unsubscribed when idle')
        failures = []

        def call():
            try:
                emitter.server_side_call('slow', timeout=10)
            except PublishError as exc:
                failures.append(exc)
        thread = threading.Thread(target=call)
        thread.start()
        # the request is sent: it waits for its answers only
        assert asked.wait(10)
        assert response_subscribers(url, key, mode, emitter.uid) != servers_only
        emitter.close()
        thread.join(5)
        assert not thread.is_alive() and len(failures) == 1, failures
        release.set()
        assert len(emitter.fetch_sockets(timeout=10)) == 2
        assert emitter.server_count() == 2
    finally:
        release.set()
        emitter.close()


def _fetch_in_child(emitter, queue):
    try:
        queue.put(sorted(s.id for s in emitter.fetch_sockets(timeout=10)))
    except Exception as exc:  # report anything to the parent test
        queue.put(repr(exc))


def test_requests_work_in_a_child_forked_after_requests(cluster_of_two, key):
    url, mode, servers, clients = cluster_of_two
    emitter = Emitter(url, key=key, mode=mode)
    sids = sorted(client.sid for client in clients)
    try:
        assert sorted(s.id for s in emitter.fetch_sockets(timeout=10)) == sids
        context = multiprocessing.get_context('fork')
        queue = context.Queue()
        child = context.Process(target=_fetch_in_child, args=(emitter, queue))
        child.start()
        child.join(30)
        assert queue.get(timeout=5) == sids
        assert sorted(s.id for s in emitter.fetch_sockets(timeout=10)) == sids
    finally:
        emitter.close()


def test_a_request_after_a_redis_restart_opens_a_new_connection(own_redis, key):
    """The connection kept for answers died while idle: the next request
    finds out before it sends anything, and asks on a new connection."""
    emitter = Emitter(own_redis.url, key=key)
    try:
        assert emitter.fetch_sockets(timeout=5) == []
        own_redis.stop()
        own_redis.start()
        assert emitter.fetch_sockets(timeout=5) == []
        assert emitter.all_rooms(timeout=5) == set()
    finally:
        emitter.close()
