"""The Python side of the test rig: Socket.IO servers on real ports, real clients,
and the ``own_redis`` process (a redisproc.RedisServer). Waits poll with deadlines.
"""
import logging
import threading
import urllib.parse

import socketio
from werkzeug.serving import make_server

from redisproc import RedisServer, free_port, wait_until  # noqa: F401 (re-exported)
from sio_redis_sync import RedisManager

# Werkzeug's dev server logs every request, and reads the last WebSocket frames
# of a closed connection as a bad HTTP request: noise, not test failures.
logging.getLogger('werkzeug').setLevel(logging.CRITICAL)


class RedisProcess(RedisServer):
    """A plain ``redis-server`` on a free loopback port, owned by one test
    (the ``own_redis`` fixture); ``stop()`` then ``start()`` keeps the port."""

    def __init__(self):
        super().__init__(name='redis')


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
        # shutdown() waits for the serving loop's next poll: 0.5 s by default,
        # paid at the end of every test that stops a server
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        kwargs={'poll_interval': 0.05}, daemon=True)
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
