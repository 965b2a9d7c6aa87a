"""The Socket.IO Admin UI (``sio.instrument()``) on a server using RedisManager:
a real admin client gets its events, and the cluster keeps working.
"""
import os
import subprocess
import sys
import threading

import pytest

from rig import PyClient, PyServer, Recorder, wait_until
import socketio
from sio_redis_sync import Emitter

APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'apps', 'admin_server.py')


@pytest.fixture
def admin_server(redis_url, key):
    process = subprocess.Popen([sys.executable, APP, redis_url, key],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith('READY '), process.stderr.read() if process.poll() else line
        yield 'http://127.0.0.1:%d' % int(line.split()[1])
    finally:
        process.terminate()
        process.wait(10)


class AdminClient:
    """A ``socketio.Client`` on the admin namespace, recording every event."""

    def __init__(self, url):
        self.recorder = Recorder()
        self.client = socketio.Client()
        self.client.on('*', lambda event, *args: self.recorder.add(event, args),
                       namespace='/admin')
        self.client.connect(url, namespaces=['/admin'], transports=['websocket'],
                            wait_timeout=10)

    def close(self):
        threading.Thread(target=self.client.disconnect, daemon=True).start()


def test_admin_ui_events_with_the_cluster(admin_server, redis_url, key):
    with PyClient(admin_server, rooms=['r1']) as first:
        admin = AdminClient(admin_server)
        try:
            config = admin.recorder.wait_for('config', 10)
            assert 'ALL_EVENTS' in config[0]['supportedFeatures']
            (sockets,) = admin.recorder.wait_for('all_sockets', 10)
            assert any(s['id'] == first.sid and 'r1' in s['rooms'] for s in sockets)
            (stats,) = admin.recorder.wait_for('server_stats', 10)
            root = [n for n in stats['namespaces'] if n['name'] == '/']
            assert root and root[0]['socketsCount'] == 1 and stats['serverId']

            with PyClient(admin_server) as second:
                wait_until(lambda: any(args[0]['id'] == second.sid for args in
                                       admin.recorder.received('socket_connected')),
                           10, message='socket_connected of the second client')
                assert second.client.call('join', 'r2', timeout=10) == 'joined'
                wait_until(lambda: ['/', 'r2', second.sid] in [
                    args[:3] for args in admin.recorder.received('room_joined')],
                    10, message='room_joined of r2')
                # emits from the cluster still reach the instrumented server
                emitter = Emitter(redis_url, key=key)
                emitter.to('r2').emit('news', 1)
                emitter.close()
                assert second.wait_for('news') == [1]
                with PyServer(redis_url, key) as other:
                    other.start_listening()
                    other.sio.emit('from-other', 2, to='r1')
                    assert first.wait_for('from-other') == [2]
                    assert other.manager.server_count() == 2
                    assert set(other.manager.all_rooms()) >= {'r1', 'r2'}
                second.close()
                wait_until(lambda: admin.recorder.received('socket_disconnected'),
                           10, message='socket_disconnected')
        finally:
            admin.close()
