"""Streams mode on a Redis Cluster: each stream lives on its slot's master, the
requests go through sharded Pub/Sub, and a reader follows its stream to the
replica promoted when that master is killed.
"""
import pytest

from faults import Ticker
from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, RedisManager
from sio_redis_sync.streams import stream_key
from topology import RedisCluster


def _options(key, count=3):
    return dict(mode='streams', cluster=True, use_sharded_pubsub=True,
                stream_name=key + '-stream', stream_count=count)


def test_streams_mode_on_a_cluster_needs_sharded_pub_sub(redis_cluster, key):
    with pytest.raises(ValueError, match='use_sharded_pubsub=True'):
        RedisManager(redis_cluster.url, key=key, mode='streams', cluster=True)


def test_servers_and_an_emitter_on_a_cluster(redis_cluster, key):
    options = _options(key)
    keys = {stream_key(key + '-stream', 3, nsp) for nsp in ('/', '/admin')}
    with PyServer(redis_cluster.url, key, **options) as a, \
            PyServer(redis_cluster.url, key, **options) as b, \
            PyClient(a.url, rooms=['r1']) as ca, \
            PyClient(b.url, namespace='/admin', rooms=['r2']) as cb:
        wait_until(lambda: a.manager.ready and b.manager.ready, 15)
        emitter = Emitter(redis_cluster.url, key=key, **options)
        emitter.emit('root', 1, to='r1')
        emitter.of('/admin').emit('admin', 2)
        assert ca.wait_for('root') == [1] and cb.wait_for('admin') == [2]
        b.sio.emit('from_b', 3, room='r1')
        assert ca.wait_for('from_b') == [3]
        assert emitter.server_count() == 2
        assert [s.id for s in a.manager.fetch_sockets(room='r2', namespace='/admin')] == \
            [cb.sid]
        # the streams of both namespaces, each on its own slot's master
        assert keys <= set(b.manager.stats()['streams'])
        emitter.close()


@pytest.mark.timeout(240)
def test_a_reader_follows_its_stream_to_the_promoted_replica(key):
    cluster = RedisCluster(replicas=1)
    servers, clients, ticker, emitter = [], [], None, None
    try:
        options = _options(key, count=1)
        victim = cluster.master_of(key + '-stream')
        url = 'redis://127.0.0.1:%d/0' % cluster.ports[0]
        servers = [PyServer(url, key, **options) for _ in range(2)]
        for server in servers:
            server.start_listening(timeout=15)
        clients = [PyClient(server.url) for server in servers]
        emitter = Emitter(url, key=key, **options)
        ticker = Ticker(lambda n: emitter.emit('tick', n))
        wait_until(lambda: all(len(c.received('tick')) >= 20 for c in clients), 30)
        cluster.kill(victim)
        wait_until(lambda: victim not in cluster.masters() and cluster.healthy(), 60, 0.2,
                   message='a replica promoted in place of the killed master')
        after = len(ticker.outcomes)
        wait_until(lambda: len(ticker.sent()) > after + 50, 60, message='ticks after')
        ticker.stop()
        last = max(ticker.sent())
        for client in clients:
            wait_until(lambda c=client: last in [a[0] for a in c.received('tick')], 30,
                       message='the last tick')
            got = [args[0] for args in client.received('tick')]
            # in order, never twice; what the killed master acknowledged but
            # had not yet replicated is gone (Redis replicates asynchronously)
            assert got == sorted(set(got))
            lost = ticker.sent() - set(got)
            assert len(lost) <= 20, sorted(lost)
        assert all(s.manager.stats()['stream_reconnects'] >= 1 for s in servers)
    finally:
        if ticker is not None:
            ticker.stop()
        if emitter is not None:
            emitter.close()
        for client in clients:
            client.close()
        for server in servers:
            server.stop()
        cluster.close()
