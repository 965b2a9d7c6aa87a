"""Flask-SocketIO with RedisManager: its own test client keeps working (it
refuses python-socketio's pub/sub managers) and emits reach the cluster.
"""
from flask import Flask
from flask_socketio import SocketIO, join_room

from rig import wait_until
from sio_redis_sync import Emitter, RedisManager


def test_flask_socketio_test_client_with_the_cluster(redis_url, key, redis_client):
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode='threading',
                        client_manager=RedisManager(redis_url, key=key))

    @socketio.on('join')
    def on_join(room):
        join_room(room)
        return 'joined ' + room

    client = socketio.test_client(app)
    try:
        assert client.emit('join', 'room-a', callback=True) == 'joined room-a'
        manager = socketio.server.manager
        wait_until(lambda: manager.ready)
        Emitter(redis_client, key=key).to('room-a').emit('hello', 'from afar')
        wait_until(lambda: any(m['name'] == 'hello'
                               for m in client.get_received()
                               if m['args'] == ['from afar']),
                   message='the emitter\'s event at the test client')
    finally:
        client.disconnect()
        socketio.server.manager.close()
