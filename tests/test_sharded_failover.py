"""A master of a real Redis Cluster (3 masters, 1 replica each) is SIGKILLed
while a sharded Emitter and a sharded Python server keep emitting.

Owns the claim that sharded mode survives a cluster failover: delivery resumes
once the replica is promoted, no thread dies, and every emit arrived or raised.
"""
import threading

import pytest

from faults import Ticker, assert_arrived, ticks
from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter
from sio_redis_sync.envelope import ShardedChannels
from topology import RedisCluster


def room_beside(cluster, channels, port):
    """A room whose channel lives on the master at ``port``."""
    for n in range(10000):
        if cluster.master_of(channels.room('r%d' % n)) == port:
            return 'r%d' % n
    raise AssertionError('no room channel hashes to port %d' % port)


@pytest.mark.timeout(300)
@pytest.mark.parametrize('subscription_mode', ['dynamic', 'static'])
def test_killing_a_master_while_emitting_resumes_delivery_and_loses_nothing_silently(
        key, subscription_mode):
    crashed = []
    hook, threading.excepthook = threading.excepthook, crashed.append
    cluster = RedisCluster(replicas=1)
    servers, clients, tickers, emitter = [], [], [], None
    try:
        channels = ShardedChannels(key, '/')
        # the master that carries this namespace's messages: the one to kill
        victim = cluster.master_of(channels.main)
        room = room_beside(cluster, channels, victim)
        # every process names the victim as its one startup node: the worst case
        url = 'redis://127.0.0.1:%d/0' % victim
        options = dict(mode='sharded', subscription_mode=subscription_mode, cluster=True)
        servers = [PyServer(url, key, **options) for _ in range(2)]
        for server in servers:
            server.start_listening(timeout=15)
        clients = [PyClient(server.url, rooms=[room]) for server in servers]
        wait_until(lambda: all(s.manager.ready for s in servers), 15,
                   message='room subscriptions')
        emitter = Emitter(url, key=key, mode='sharded',
                          subscription_mode=subscription_mode, cluster=True)
        assert emitter.server_count() == 2
        tickers = [
            # to everyone, from a process with no server (main channel)
            Ticker(lambda n: emitter.emit('tick', n)),
            # to the room, from a server (the room's channel in dynamic mode)
            Ticker(lambda n: servers[0].sio.emit('room', n, to=room)),
        ]
        events = ('tick', 'room')
        wait_until(lambda: all(len(ticks(c, e)) >= 20 for c in clients for e in events),
                   30, message='ticks before the failover')

        cluster.kill(victim)
        wait_until(lambda: victim not in cluster.masters() and cluster.healthy(), 60,
                   0.2, message='a replica promoted in place of the killed master')
        after = [len(t.outcomes) for t in tickers]
        for ticker, event, last in zip(tickers, events, after):
            wait_until(lambda e=event, n=last: all(
                ticks(c, e) and max(ticks(c, e)) > n for c in clients),
                60, message='%s ticks from the promoted master' % event)
            wait_until(lambda t=ticker, n=last: len(t.outcomes) > n + 50, 60,
                       message='more %s ticks' % event)
        for ticker in tickers:
            ticker.stop()

        for ticker, event in zip(tickers, events):
            for client in clients:  # every emit that did not raise arrived
                assert_arrived(client, ticker.sent(), ticker.outcomes, event)
        # the channels moved to the promoted master, and the cluster API answers
        assert cluster.master_of(channels.main) != victim
        assert emitter.server_count() == 2
        assert len(emitter.fetch_sockets(room, timeout=10)) == 2
        for server in servers:
            assert server.manager.ready
            assert not server.manager._listener.stopped.is_set()
        assert crashed == []
    finally:
        threading.excepthook = hook
        for ticker in tickers:
            ticker.stop()
        for client in clients:
            client.close()
        if emitter is not None:
            emitter.close()
        for server in servers:
            server.stop()
        cluster.close()
