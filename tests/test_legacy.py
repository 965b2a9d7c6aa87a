"""The migration bridge: python-socketio / Flask-SocketIO queue messages reach
clients of a RedisManager server, and its emits reach old servers' clients.

Senders are the real packages (Flask-SocketIO 5.7 in a process of its own,
python-socketio's RedisManager); servers and clients are real, on real Redis.
"""
import json
import logging
import subprocess
import sys
import threading

import pytest
import socketio
from werkzeug.serving import make_server

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import ProtocolError, legacy

FLASK_SENDER = r'''
import json, sys
from flask_socketio import SocketIO
url, channel, ops = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
socketio = SocketIO(message_queue=url, channel=channel, async_mode='threading')
server = socketio.server
for op in ops:
    kind = op.pop('op')
    if kind == 'emit':
        data = op.get('data')
        if op.pop('binary', False):
            data = {'blob': bytes(data), 'n': len(data)}
        socketio.emit(op['event'], data, to=op.get('to'),
                      namespace=op.get('namespace', '/'))
    elif kind == 'enter_room':
        server.enter_room(op['sid'], op['room'], namespace=op.get('namespace', '/'))
    elif kind == 'leave_room':
        server.leave_room(op['sid'], op['room'], namespace=op.get('namespace', '/'))
    elif kind == 'close_room':
        socketio.close_room(op['room'], namespace=op.get('namespace', '/'))
    elif kind == 'disconnect':
        server.disconnect(op['sid'], namespace=op.get('namespace', '/'))
print('SENT', len(ops))
'''


def flask_send(redis_url, channel, *ops):
    """Run the ops through Flask-SocketIO's write-only ``SocketIO(message_queue=)``
    in a separate process, on ``channel`` (each test has its own: tests of
    other runs may share the Redis)."""
    result = subprocess.run(
        [sys.executable, '-c', FLASK_SENDER, redis_url, channel, json.dumps(ops)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'SENT %d' % len(ops) in result.stdout


# ------------------------------------------------------------------ pure

def test_decodes_what_python_socketio_writes():
    payload = legacy.encode_emit('h1', 'ev', [{'a': b'\x00\x01'}, 2], '/chat',
                                 ['r1'], ['s1', 's2'], ('r1', '/chat', 7), mark=False)
    message = legacy.decode_legacy(payload)
    assert message.method == 'emit' and message.host_id == 'h1'
    assert message.args == ({'a': b'\x00\x01'}, 2)
    assert message.rooms == ('r1',) and message.skip == ('s1', 's2')
    assert message.callback == ('r1', '/chat', 7) and not message.mirrored
    no_data = legacy.decode_legacy(legacy.encode_emit('h1', 'ev', []))
    assert no_data.args == () and no_data.mirrored


@pytest.mark.parametrize('payload, error', [
    (b'\x80\x04\x95', 'python-socketio < 5.14'),
    (b'{not json', 'invalid JSON'),
    (b'[1, 2]', 'JSON object'),
    (b'{"method": "exec"}', 'unknown method'),
    (b'{"method": "emit", "event": 3, "data": []}', 'event must be a string'),
    (b'{"method": "emit", "event": "e", "binary": true, '
     b'"data": [{"_placeholder": true, "num": 1}, "AAE="]}', 'no attachment'),
    (b'{"method": "emit", "event": "e", "binary": true, "data": [1, "%%%"]}',
     'base64'),
    (b'{"method": "enter_room", "sid": null, "room": "r"}', 'sid must be'),
])
def test_rejects_pickle_and_malformed_messages(payload, error):
    with pytest.raises(ProtocolError, match=error):
        legacy.decode_legacy(payload)


# ------------------------------------------------------------ with servers

@pytest.fixture
def channel(key):
    """Flask-SocketIO's default channel name, made unique to the test."""
    return 'flask-socketio-' + key


@pytest.fixture
def bridged(redis_url, key, channel):
    with PyServer(redis_url, key, legacy_channel=channel) as server:
        server.start_listening()
        yield server


def test_flask_socketio_emitter_process_reaches_bridged_clients(bridged, redis_url,
                                                                channel):
    with PyClient(bridged.url, rooms=['room1']) as member, \
            PyClient(bridged.url) as other, \
            PyClient(bridged.url, namespace='/admin') as admin:
        flask_send(redis_url, channel,
                   {'op': 'emit', 'event': 'to_room', 'data': 'r', 'to': 'room1'},
                   {'op': 'emit', 'event': 'to_all', 'data': [1, 2]},
                   {'op': 'emit', 'event': 'to_sid', 'data': {'x': 1}, 'to': other.sid},
                   {'op': 'emit', 'event': 'bin', 'data': [0, 255, 7], 'binary': True},
                   {'op': 'emit', 'event': 'nsp', 'data': 'a', 'namespace': '/admin'})
        assert member.wait_for('to_room') == ['r']
        assert member.wait_for('to_all') == [[1, 2]]
        assert other.wait_for('to_all') == [[1, 2]]
        assert other.wait_for('to_sid') == [{'x': 1}]
        assert other.wait_for('bin') == [{'blob': b'\x00\xff\x07', 'n': 3}]
        assert admin.wait_for('nsp') == ['a']
        other.assert_no_event('to_room', within=0.2)
        member.assert_no_event('to_sid', within=0.2)
        assert admin.received('to_all') == []

        flask_send(redis_url, channel,
                   {'op': 'enter_room', 'sid': other.sid, 'room': 'vip'},
                   {'op': 'emit', 'event': 'vip', 'data': 1, 'to': 'vip'},
                   {'op': 'leave_room', 'sid': other.sid, 'room': 'vip'},
                   {'op': 'emit', 'event': 'vip', 'data': 2, 'to': 'vip'},
                   {'op': 'close_room', 'room': 'room1'},
                   {'op': 'emit', 'event': 'closed', 'data': 3, 'to': 'room1'},
                   {'op': 'emit', 'event': 'done', 'data': 4})
        member.wait_for('done')
        other.wait_for('done')
        assert other.received('vip') == [[1]]
        assert member.received('closed') == []
        assert 'room1' not in bridged.sio.rooms(member.sid)

        flask_send(redis_url, channel, {'op': 'disconnect', 'sid': member.sid})
        assert member.disconnected.wait(10)
        assert not other.disconnected.is_set()


def test_python_socketio_write_only_manager_on_its_default_channel(redis_url, key):
    channel = 'socketio-' + key  # python-socketio's default name, made unique
    with PyServer(redis_url, key, legacy_channel=channel) as server:
        server.start_listening()
        sender = socketio.RedisManager(redis_url, channel=channel, write_only=True)
        with PyClient(server.url, rooms=['r']) as client:
            sender.emit('hello', ('a', b'\x01'), room='r', namespace='/')
            assert client.wait_for('hello') == ['a', b'\x01']


def test_pickled_message_is_dropped_with_a_warning(bridged, channel, redis_client,
                                                  caplog):
    with PyClient(bridged.url) as client:
        with caplog.at_level(logging.WARNING, logger='sio_redis_sync'):
            redis_client.publish(channel, b'\x80\x04\x95\x00.')
            redis_client.publish(channel, legacy.encode_emit(
                'x', 'after', ['ok'], mark=False))
            assert client.wait_for('after') == ['ok']
        assert 'python-socketio < 5.14' in caplog.text
        assert bridged.manager.stats()['dropped_malformed'] == 1


class OldServer:
    """A python-socketio server on python-socketio's own RedisManager (the
    one being migrated away from)."""

    def __init__(self, redis_url, channel):
        self.manager = socketio.RedisManager(redis_url, channel=channel)
        self.sio = socketio.Server(async_mode='threading', client_manager=self.manager)
        self._http = make_server('127.0.0.1', 0, socketio.WSGIApp(self.sio), threaded=True)
        self.url = 'http://127.0.0.1:%d' % self._http.server_port
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self):
        self._http.shutdown()


def test_old_and_new_servers_side_by_side(redis_url, key, redis_client):
    """Emits, room changes and acks go both ways; clients of the new servers
    get each event once (the mirrored copy is dropped by the new servers)."""
    channel = 'flask-socketio-%s' % key
    old = OldServer(redis_url, channel)
    try:
        with PyServer(redis_url, key, legacy_channel=channel) as new_a, \
                PyServer(redis_url, key, legacy_channel=channel) as new_b:
            new_a.start_listening()
            new_b.start_listening()
            with PyClient(old.url) as on_old, PyClient(new_a.url) as on_a, \
                    PyClient(new_b.url) as on_b:
                # the old server subscribes in the background at its first client
                wait_until(lambda: redis_client.pubsub_numsub(channel)[0][1] == 3,
                           10, message='the old server subscribed')
                new_a.sio.emit('from_new', 1)
                assert on_old.wait_for('from_new') == [1]
                old.sio.emit('from_old', 2)
                for client in (on_a, on_b):
                    assert client.wait_for('from_old') == [2]
                new_a.sio.enter_room(on_old.sid, 'mixed')
                new_b.sio.enter_room(on_a.sid, 'mixed')
                wait_until(lambda: 'mixed' in old.sio.rooms(on_old.sid))
                new_b.sio.emit('mixed', 3, to='mixed')
                assert on_old.wait_for('mixed') == [3]
                assert on_a.wait_for('mixed') == [3]
                on_a.client.on('ask', lambda n: n * 2)
                assert old.sio.call('ask', 21, to=on_a.sid, timeout=10) == 42
                new_b.sio.emit('last', 4)
                for client in (on_old, on_a, on_b):
                    client.wait_for('last')
                for client in (on_a, on_b):
                    assert client.received('from_old') == [[2]]
                assert on_old.received('from_new') == [[1]]
                assert on_a.received('mixed') == [[3]]
                new_a.sio.disconnect(on_old.sid)
                assert on_old.disconnected.wait(10)
    finally:
        old.close()
