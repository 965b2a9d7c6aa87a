"""redis+sentinel:// URLs against a real Sentinel setup (master, replica, three
sentinels): master discovery, passwords, and a failover while emitting.
"""
import logging
import threading

import pytest

from faults import Ticker, assert_arrived, ticks
from rig import PyClient, PyServer, wait_until
from sentinel import SentinelSetup
from sio_redis_sync import Emitter, PublishError


def test_sentinel_url_finds_the_master_for_servers_and_emitter(key, caplog):
    caplog.set_level(logging.WARNING, logger='sio_redis_sync')
    with SentinelSetup(password='m-secret', sentinel_password='s-secret') as setup:
        url = setup.url(userinfo=':m-secret')
        options = {'sentinel_kwargs': {'password': 's-secret'}}
        server = PyServer(url, key, redis_options=options)
        try:
            server.start_listening()
            client = PyClient(server.url)
            # the valkey name of the scheme is the same thing
            emitter = Emitter(setup.url('valkey+sentinel', ':m-secret'), key=key,
                              redis_options=options)
            assert emitter.emit('hello', 'via sentinel') == 1
            assert client.wait_for('hello') == ['via sentinel']
            assert emitter.server_count() == 1
            assert emitter.redis.connection_pool.master_address == \
                ('127.0.0.1', setup.master.port)
            with setup.master.client() as admin:
                # the listener is on the master (the sentinels subscribe
                # there too, to a channel, not to patterns)
                listeners = [c for c in admin.client_list(_type='pubsub')
                             if int(c['psub'])]
                assert len(listeners) == 1
            emitter.close()
            client.close()
        finally:
            server.stop()
    assert 'secret' not in caplog.text


def test_sentinel_refusals_raise_publish_error_naming_the_cause(key, caplog):
    caplog.set_level(logging.ERROR, logger='sio_redis_sync')
    with SentinelSetup(sentinels=1, sentinel_password='s-secret') as setup:
        wrong = Emitter(setup.url(userinfo=':m-secret'), key=key, redis_options={
            'sentinel_kwargs': {'password': 'not-it'}})
        with pytest.raises(PublishError, match='No master found.*(?i:password)'):
            wrong.emit('x')
        unknown = Emitter(setup.url().replace('mymaster', 'nosuch'), key=key,
                          redis_options={'sentinel_kwargs': {'password': 's-secret'}})
        for _ in range(5):
            with pytest.raises(PublishError, match="No master found for 'nosuch'"):
                unknown.emit('x')
        # each attempt made no new connection (redis-py's pool kept one each)
        assert len(unknown.redis.connection_pool._connections) == 1
        assert wrong.stats()['publish_failures'] == 1
        wrong.close()
        unknown.close()
    assert 'm-secret' not in caplog.text and 'not-it' not in caplog.text
    assert 'redis+sentinel://:***@127.0.0.1:' in caplog.text


@pytest.mark.timeout(300)
def test_failover_while_emitting_resumes_delivery_and_loses_nothing_silently(key):
    crashed = []
    hook, threading.excepthook = threading.excepthook, crashed.append
    setup = SentinelSetup()
    servers = []
    try:
        url = setup.url()
        servers = [PyServer(url, key) for _ in range(2)]
        for server in servers:
            server.start_listening()
        clients = [PyClient(server.url) for server in servers]
        emitter = Emitter(url, key=key)
        ticker = Ticker(lambda n: emitter.emit('tick', n))
        wait_until(lambda: all(len(ticks(c)) >= 20 for c in clients), 30,
                   message='ticks before the failover')

        setup.master.kill()
        setup.wait_promoted()
        after = len(ticker.outcomes)
        wait_until(lambda: all(max(ticks(c)) > after for c in clients), 60,
                   message='ticks from the new master')
        wait_until(lambda: len(ticker.outcomes) > after + 50, 60,
                   message='more ticks')
        ticker.stop()

        sent = ticker.sent()
        for client in clients:  # every emit that did not raise arrived
            assert_arrived(client, sent, ticker.outcomes)
        failed = ticker.failed()
        assert failed, 'the master was killed, yet no emit failed'
        stats = emitter.stats()
        assert stats['publish_failures'] + stats['partial_deliveries'] == \
            len(failed)
        assert emitter.redis.connection_pool.master_address == \
            ('127.0.0.1', setup.replica.port)
        assert stats['connections_opened'] >= 2  # the new master's too
        for server in servers:
            assert server.manager.ready
            assert server.manager.stats()['reconnects'] >= 1
            assert not server.manager._listener.stopped.is_set()
        assert crashed == []
        for client in clients:
            client.close()
        emitter.close()
    finally:
        threading.excepthook = hook
        for server in servers:
            server.stop()
        setup.close()
