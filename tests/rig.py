"""The Python side of the test rig: servers on real ports, real clients, and
redis-server processes that a test owns. Waits poll with deadlines, never sleep.
"""
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest
import redis
import socketio
from werkzeug.serving import make_server

from sio_redis_sync import RedisManager

# Werkzeug's dev server logs every request, and reads the last WebSocket frames
# of a closed connection as a bad HTTP request: noise, not test failures.
logging.getLogger('werkzeug').setLevel(logging.CRITICAL)


def wait_until(predicate, timeout=5.0, interval=0.01, message='condition'):
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.1f s waiting for %s'
                                 % (timeout, message))
        time.sleep(interval)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class RedisProcess:
    """A ``redis-server`` on a free loopback port, owned by one test; it can
    be stopped and started again on the same port."""

    def __init__(self):
        self._binary = shutil.which('redis-server')
        if self._binary is None:
            pytest.fail('redis-server is not on PATH; install it with '
                        '"apt-get install redis-server"')
        self._log = tempfile.NamedTemporaryFile(prefix='redis-', suffix='.log')
        self.process = None
        for attempt in range(3):
            # a free port can be taken by another process before redis-server
            # binds it; then it exits at once and another port is tried
            self.port = free_port()
            self.url = 'redis://127.0.0.1:%d/0' % self.port
            try:
                self.start()
                return
            except AssertionError:
                if attempt == 2:
                    raise

    def start(self):
        self.process = subprocess.Popen(
            [self._binary, '--port', str(self.port), '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no'],
            stdout=self._log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            wait_until(lambda: self._pings(client), 10, 0.05,
                       'redis-server on port %d' % self.port)
        finally:
            client.close()

    def _pings(self, client):
        if self.process.poll() is not None:
            self._log.seek(0)
            raise AssertionError('redis-server exited: %s'
                                 % self._log.read().decode()[-2000:])
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def stop(self):
        """Stop the server (by PID) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self):
        self.stop()
        self._log.close()


class Recorder:
    """Collects ``(event, args)`` as a client receives them."""

    def __init__(self):
        self.events = []
        self._cond = threading.Condition()

    def add(self, event, args):
        with self._cond:
            self.events.append((event, list(args)))
            self._cond.notify_all()

    def received(self, event):
        with self._cond:
            return [args for name, args in self.events if name == event]

    def wait_for(self, event, timeout=5.0, count=1):
        """The args of the first ``event``, once ``count`` have arrived."""
        with self._cond:
            if not self._cond.wait_for(
                    lambda: len(self.received(event)) >= count, timeout):
                raise AssertionError('no %d x %r within %.1f s; received %r'
                                     % (count, event, timeout, self.events))
            return self.received(event)[0]

    def assert_no_event(self, event, within=0.5):
        with self._cond:
            self._cond.wait_for(lambda: self.received(event), within)
            assert not self.received(event), \
                '%r was not expected; received %r' % (event, self.events)


class PyServer:
    """A ``socketio.Server`` with a RedisManager, served by Werkzeug in a
    thread on a free port (threading mode, real WebSocket).

    Clients join the rooms named in their ``rooms`` query parameter.
    """

    def __init__(self, redis_url, key, namespaces=('/', '/admin'), **options):
        self.manager = RedisManager(redis_url, key=key, **options)
        self.sio = socketio.Server(async_mode='threading',
                                   client_manager=self.manager,
                                   namespaces=list(namespaces))
        for namespace in namespaces:
            self.sio.on('connect', self._join_rooms(namespace),
                        namespace=namespace)
        self._http = make_server('127.0.0.1', 0, socketio.WSGIApp(self.sio),
                                 threaded=True)
        self.port = self._http.server_port
        self.url = 'http://127.0.0.1:%d' % self.port
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        daemon=True)
        self._thread.start()

    def _join_rooms(self, namespace):
        def on_connect(sid, environ, auth=None):
            query = urllib.parse.parse_qs(environ.get('QUERY_STRING', ''))
            for rooms in query.get('rooms', []):
                for room in filter(None, rooms.split(',')):
                    self.sio.enter_room(sid, room, namespace=namespace)
        return on_connect

    def start_listening(self, timeout=5.0):
        """Join the cluster now instead of at the first client."""
        self.manager.initialize()
        wait_until(lambda: self.manager.ready, timeout, message='subscriptions')

    def stop(self):
        for namespace in list(self.manager.get_namespaces()):
            for sid, _ in self.manager.get_participants(namespace, None):
                self.sio.disconnect(sid, namespace, ignore_queue=True)
        self._http.shutdown()
        self.manager.close()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class PyClient:
    """A real ``socketio.Client`` over WebSocket that records what it gets."""

    def __init__(self, url, namespace='/', rooms=(), auth=None):
        self.namespace = namespace
        self.recorder = Recorder()
        self.client = socketio.Client()
        self.client.on('*', self._on_any, namespace=namespace)
        self.disconnected = threading.Event()
        self.client.on('disconnect', lambda *a: self.disconnected.set(),
                       namespace=namespace)
        query = '?rooms=' + ','.join(rooms) if rooms else ''
        self.client.connect(url + query, namespaces=[namespace], auth=auth,
                            transports=['websocket'], wait_timeout=10)
        self.sid = self.client.get_sid(namespace)

    def _on_any(self, event, *args):
        self.recorder.add(event, args)

    def wait_for(self, event, timeout=5.0, count=1):
        return self.recorder.wait_for(event, timeout, count)

    def assert_no_event(self, event, within=0.5):
        self.recorder.assert_no_event(event, within)

    def received(self, event):
        return self.recorder.received(event)

    def close(self):
        # websocket-client waits 3 s for a close frame Werkzeug never sends:
        # let that wait happen in the background.
        if self.client.connected:
            threading.Thread(target=self.client.disconnect, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
