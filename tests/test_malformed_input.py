"""Owns bad input from Redis: malformed messages on every channel and messages
over max_message_size are logged (one warning) and dropped, the listener alive.

(Formerly test_failures.py; its Redis-outage tests moved to test_reliability.py.)
"""
import logging

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter, protocol

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
