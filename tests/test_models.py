"""Every concurrency model, with real servers (their own processes) and real
clients: threading (Werkzeug), gunicorn gthread (--preload, so the manager and
an emitter are made and used before the fork), eventlet and gevent (monkey
patched). In each, two servers form a cluster: broadcasts and a cross-server
room join work, and a burst of thousands of handler-triggered emits opens no
more publisher connections than the pool's cap.
"""
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest
import redis
import socketio

from rig import Recorder, free_port, wait_until

APPS = pathlib.Path(__file__).resolve().parent / 'apps'
MAX_CONNECTIONS = 4  # model_server.MAX_CONNECTIONS
MODELS = ['threading', 'gthread', 'eventlet', 'gevent']
BURST = 2000


class ModelServer:
    """``tests/apps/model_server.py`` in one model, as a subprocess."""

    def __init__(self, model, redis_url, key, workers=1):
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        env = dict(os.environ, SIO_REDIS_URL=redis_url, SIO_KEY=key,
                   PYTHONPATH=str(APPS))
        if model == 'gthread':
            command = [sys.executable, '-m', 'gunicorn', '-k', 'gthread',
                       '--threads', '64', '-w', str(workers), '--preload',
                       '-b', '127.0.0.1:%d' % self.port, '--log-level',
                       'warning', 'model_server:create_app()']
        else:
            command = [sys.executable, str(APPS / 'model_server.py'), model,
                       str(self.port)]
        self.process = subprocess.Popen(command, env=env, cwd=str(APPS),
                                        stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        wait_until(self._answers, timeout=30, interval=0.1,
                   message='%s server on port %d' % (model, self.port))

    def _answers(self):
        if self.process.poll() is not None:
            raise AssertionError('server exited: %s'
                                 % self.process.stderr.read().decode()[-3000:])
        try:  # a TCP connection only: a Socket.IO one would start the listener
            socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Client:
    """A real socketio.Client over WebSocket, recording every event."""

    def __init__(self, url, rooms=()):
        self.recorder = Recorder()
        self.sio = socketio.Client()
        self.sio.on('*', lambda event, *args: self.recorder.add(event, args))
        query = '?rooms=' + ','.join(rooms) if rooms else ''
        self.sio.connect(url + query, transports=['websocket'], wait_timeout=10)
        self.sid = self.sio.get_sid()
        self.server = self.sio.call('whoami', timeout=10)

    def wait_for(self, event, timeout=10.0, count=1):
        return self.recorder.wait_for(event, timeout, count)

    def close(self):
        self.sio.disconnect()


@pytest.fixture
def servers(request, own_redis, key):
    started = []

    def start(model, count=2, workers=1):
        for _ in range(count):
            started.append(ModelServer(model, own_redis.url, key, workers))
        return started
    yield start
    for server in started:
        server.stop()


@pytest.fixture
def clients():
    made = []

    def connect(url, rooms=()):
        made.append(Client(url, rooms))
        return made[-1]
    yield connect
    for client in made:
        client.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize('model', MODELS)
def test_two_servers_form_a_cluster(model, servers, clients, own_redis, key):
    one, two = servers(model)
    admin = redis.Redis.from_url(own_redis.url)
    # the managers were made (and published) at start, nothing listens yet
    assert admin.pubsub_numpat() == 0
    a = clients(one.url)
    b = clients(two.url)
    sink = clients(two.url, rooms=['sink'])
    assert a.server['uid'] != b.server['uid']

    a.sio.emit('shout', 'hello')  # a broadcast from server one's handler
    assert a.wait_for('shouted') == ['hello']
    assert b.wait_for('shouted') == ['hello']

    assert a.sio.call('pull', (b.sid, 'club'), timeout=10) is True
    a.sio.emit('to_room', ('club', 'members only'))
    assert b.wait_for('room_msg') == ['members only']
    a.sio.emit('via_emitter', ('club', 'from a task'))
    assert b.wait_for('from_emitter') == ['from a task']

    accepted = admin.info('stats')['total_connections_received']
    for n in range(BURST):  # each handler runs in its own thread/greenlet
        a.sio.emit('burst', n)
    sink.wait_for('burst', timeout=60, count=BURST)
    assert sorted(args[0] for args in sink.recorder.received('burst')) == \
        list(range(BURST))
    stats = a.sio.call('stats', timeout=10)
    assert stats['publish_failures'] == 0
    assert stats['published'] >= BURST
    assert stats['publisher_connections_opened'] <= MAX_CONNECTIONS
    opened = admin.info('stats')['total_connections_received'] - accepted
    assert opened <= MAX_CONNECTIONS, opened
    admin.close()


@pytest.mark.timeout(120)
def test_gunicorn_preload_workers_are_servers_of_their_own(servers, clients):
    [master] = servers('gthread', count=1, workers=2)
    seen = {}
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        client = clients(master.url)
        seen.setdefault(client.server['pid'], client)
    assert len(seen) == 2, 'every connection went to one worker'
    a, b = seen.values()
    assert a.server['uid'] != b.server['uid']
    a.sio.emit('shout', 'to both workers')
    assert b.wait_for('shouted') == ['to both workers']
    assert a.sio.call('pull', (b.sid, 'club'), timeout=10) is True
    a.sio.emit('to_room', ('club', 'across workers'))
    assert b.wait_for('room_msg') == ['across workers']
