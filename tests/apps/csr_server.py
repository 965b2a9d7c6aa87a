"""A python-socketio server with connection state recovery (RedisManager in
streams mode), for tests/test_recovery.py: built in the test's process
(:func:`build`), or run as its own process to be stopped or SIGKILLed::

    python csr_server.py NAME

Settings come from the environment: SIO_REDIS_URL, SIO_KEY, SIO_STREAM,
SIO_RECOVERY (max_disconnection_duration, seconds). The process prints
``READY <port>`` once it listens; SIGTERM is a graceful shutdown
(``manager.close()``, which saves every session, then the process ends).

A new socket joins the rooms of its ``rooms`` query parameter and gets the
session ``{'first': NAME}``; a recovered one is left as it came back.
Events: ``remember(note, room)`` saves ``{'note': note}`` as its session,
joins ``room`` and answers ``remembered``; ``whoami()`` answers with a ``me``
event (sid, recovered, rooms, session, server name).
"""
import os
import pathlib
import signal
import sys
import threading
import urllib.parse

import socketio
from werkzeug.serving import make_server

from sio_redis_sync import RedisManager


def build(redis_url, key, stream_name, duration, name):
    """The server and its manager; ``connects`` lists ``(sid, recovered)``
    of every connect handler call, in order."""
    manager = RedisManager(redis_url, key=key, mode='streams', stream_name=stream_name,
                           connection_state_recovery={'max_disconnection_duration': duration})
    sio = socketio.Server(async_mode='threading', client_manager=manager)
    sio.connects = []

    @sio.on('connect')
    def on_connect(sid, environ, auth=None):
        recovered = manager.recovered(sid)
        sio.connects.append((sid, recovered))
        if recovered:
            return
        query = urllib.parse.parse_qs(environ.get('QUERY_STRING', ''))
        for rooms in query.get('rooms', []):
            for room in filter(None, rooms.split(',')):
                sio.enter_room(sid, room)
        sio.save_session(sid, {'first': name})

    @sio.on('remember')
    def remember(sid, note, room):
        sio.save_session(sid, {'note': note})
        sio.enter_room(sid, room)
        sio.emit('remembered', note, to=sid)

    @sio.on('whoami')
    def whoami(sid):
        sio.emit('me', {'sid': sid, 'recovered': manager.recovered(sid),
                        'rooms': sorted(sio.rooms(sid)), 'session': sio.get_session(sid),
                        'server': name}, to=sid)

    return sio, manager


def static_files():
    """The browser test's page (``/csr.html``) and the JS client it loads."""
    here = pathlib.Path(__file__).resolve().parent
    bundle = here.parent / 'node_modules' / 'socket.io-client' / 'dist' / 'socket.io.min.js'
    return {'/csr.html': {'content_type': 'text/html', 'filename': str(here / 'csr.html')},
            '/socket.io.min.js': {'content_type': 'application/javascript',
                                  'filename': str(bundle)}}


class Served:
    """:func:`build`'s server on a free loopback port, served by Werkzeug
    (threaded, real WebSocket) in a thread of this process, with the
    browser test's page."""

    def __init__(self, redis_url, key, stream_name, duration, name):
        self.name = name
        self.sio, self.manager = build(redis_url, key, stream_name, duration, name)
        app = socketio.WSGIApp(self.sio, static_files=static_files())
        self._http = make_server('127.0.0.1', 0, app, threaded=True)
        self.port = self._http.server_port
        self.url = 'http://127.0.0.1:%d' % self.port
        self.manager.initialize()  # in the cluster before the first client
        self.thread = threading.Thread(target=self._http.serve_forever,
                                        kwargs={'poll_interval': 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        """Disconnect every socket (for good: no session kept), stop serving."""
        for namespace in list(self.manager.get_namespaces()):
            for sid, _ in self.manager.get_participants(namespace, None):
                self.sio.disconnect(sid, namespace, ignore_queue=True)
        self._http.shutdown()
        self.manager.close()
        self.thread.join(5)


def main(name):
    served = Served(os.environ['SIO_REDIS_URL'], os.environ['SIO_KEY'],
                    os.environ['SIO_STREAM'], float(os.environ['SIO_RECOVERY']), name)

    def graceful(signum, frame):
        served.manager.close()  # saves the session of every socket
        os._exit(0)             # the connections end with the process

    signal.signal(signal.SIGTERM, graceful)
    sys.stdout.write('READY %d\n' % served.port)
    sys.stdout.flush()
    served.thread.join()


if __name__ == '__main__':
    main(sys.argv[1])
