"""Bad input and failed publishes, against real Redis servers.

Malformed messages are logged and dropped with the listener alive; a publish
Redis refuses raises to the caller; a restarted Redis is resubscribed.
"""
import logging

import pytest
import redis

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, PublishError, protocol

GARBAGE = [
    b'',
    b'\xc1',                                      # never-used msgpack byte
    b'{"json": "on the broadcast channel"}',      # Node's Z1 crash
    b'\x93\xa2py',                                # truncated array
    protocol.dumps_msgpack(['u', {'type': 2, 'data': ['x']}]),  # 2 elements
    protocol.dumps_msgpack(['u', {'type': 5, 'data': ['x']}, {}]),
    protocol.dumps_msgpack(['u', {'type': 2, 'data': [1]}, {}]),
    protocol.dumps_msgpack(['u', {'type': 2, 'data': ['x']}, {'rooms': 'r'}]),
    protocol.dumps_msgpack(['u', {'type': 2, 'data': ['x']}, {}]) + b'\x00',
    b'\x92' + b'\x91' * 100000,                   # deep nesting
    b'\xdd\xff\xff\xff\xff',                      # claims 4G elements
]
BAD_REQUESTS = [b'{', b'{"type": 42}', b'{"type": "2"}', b'[1, 2]',
                b'{"type": 2, "opts": {"rooms": {"a": 1}}, "rooms": []}',
                b'\xff\xfe', protocol.dumps_msgpack({'type': 99})]


def test_malformed_messages_are_logged_dropped_and_survived(
        redis_url, key, redis_client, caplog):
    caplog.set_level(logging.WARNING, logger='sio_redis_sync')
    with PyServer(redis_url, key) as server, \
            PyClient(server.url, rooms=['r1']) as client:
        wait_until(lambda: server.manager.ready)
        channels = protocol.Channels(key, '/')
        for payload in GARBAGE:
            redis_client.publish(channels.broadcast, payload)
            redis_client.publish(channels.for_rooms(['r1']), payload)
        for payload in BAD_REQUESTS:
            redis_client.publish(channels.request, payload)
        redis_client.publish(channels.response, b'{"no": "requestId"}')
        Emitter(redis_client, key=key).to('r1').emit('still-alive', 1)
        assert client.wait_for('still-alive') == [1]
        expected = 2 * len(GARBAGE) + len(BAD_REQUESTS) + 1
        wait_until(lambda: len([r for r in caplog.records
                                if 'malformed' in r.getMessage()]) >= expected,
                   message='%d warnings' % expected)
        dropped = [r for r in caplog.records if 'malformed' in r.getMessage()]
        assert all(r.levelno == logging.WARNING for r in dropped)
        assert any(channels.request in r.getMessage() for r in dropped)
        assert any(channels.broadcast in r.getMessage() for r in dropped)


def test_emitter_raises_when_redis_is_down(own_redis):
    emitter = Emitter(own_redis.url, redis_options={'socket_connect_timeout': 1})
    assert emitter.emit('up', 1) == 0
    own_redis.stop()
    with pytest.raises(PublishError) as info:
        emitter.emit('down', 1)
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    assert "'socket.io#/#'" in str(info.value)
    emitter.close()


def test_server_emit_with_redis_down_delivers_locally_and_raises(own_redis, key):
    with PyServer(own_redis.url, key) as server, \
            PyClient(server.url) as client:
        wait_until(lambda: server.manager.ready)
        own_redis.stop()
        with pytest.raises(PublishError):
            server.sio.emit('local', 'x')
        assert client.wait_for('local') == ['x']
        assert server.manager.publish_failures == 1


def test_listener_resubscribes_after_redis_restarts(own_redis, key):
    with PyServer(own_redis.url, key) as server, \
            PyClient(server.url, rooms=['r1']) as client:
        wait_until(lambda: server.manager.ready)
        own_redis.stop()
        wait_until(lambda: not server.manager.ready, message='connection lost')
        own_redis.start()
        wait_until(lambda: server.manager.ready, timeout=10,
                   message='resubscribed')
        emitter = Emitter(own_redis.url, key=key)
        emitter.to('r1').emit('back', 2)
        assert client.wait_for('back') == [2]
        emitter.close()


def test_messages_over_max_message_size_are_dropped_with_a_warning(
        redis_url, key, caplog):
    caplog.set_level(logging.WARNING, logger='sio_redis_sync')
    with PyServer(redis_url, key, max_message_size=1000) as server, \
            PyClient(server.url) as client:
        wait_until(lambda: server.manager.ready)
        emitter = Emitter(redis_url, key=key)
        emitter.emit('huge', 'x' * 2000)
        emitter.emit('small', 'x' * 100)
        assert client.wait_for('small') == ['x' * 100]
        client.assert_no_event('huge', within=0.2)
        assert any('larger than max_message_size' in r.getMessage()
                   and '%s#/#' % key in r.getMessage() for r in caplog.records)
        emitter.close()
