"""A Socket.IO server with RedisManager in one concurrency model, run as its
own process by tests/test_models.py.

    python model_server.py threading|eventlet|gevent PORT
    gunicorn -k gthread --preload ... 'model_server:create_app()'

Settings come from the environment: SIO_REDIS_URL, SIO_KEY. Clients join
the rooms of their ``rooms`` query parameter.
"""
import sys

MODE = sys.argv[1] if __name__ == '__main__' else 'threading'
if MODE == 'eventlet':
    import eventlet
    eventlet.monkey_patch()
elif MODE == 'gevent':
    from gevent import monkey
    monkey.patch_all()

import os  # noqa: E402 -- after monkey patching
import urllib.parse  # noqa: E402

import socketio  # noqa: E402

from sio_redis_sync import Emitter, RedisManager  # noqa: E402

MAX_CONNECTIONS = 4


def create_app(mode=MODE):
    """The WSGI app; made at import time under gunicorn --preload, so the
    manager and the emitter exist (and have published) before the fork."""
    url, key = os.environ['SIO_REDIS_URL'], os.environ['SIO_KEY']
    manager = RedisManager(url, key=key, max_connections=MAX_CONNECTIONS)
    sio = socketio.Server(async_mode=mode, client_manager=manager)
    emitter = Emitter(url, key=key, max_connections=MAX_CONNECTIONS)
    # publish before any fork: both pools have a connection in this process
    emitter.emit('boot', os.getpid())
    sio.emit('boot', os.getpid())

    @sio.on('connect')
    def on_connect(sid, environ, auth=None):
        query = urllib.parse.parse_qs(environ.get('QUERY_STRING', ''))
        for rooms in query.get('rooms', []):
            for room in filter(None, rooms.split(',')):
                sio.enter_room(sid, room)

    @sio.on('whoami')
    def whoami(sid):
        return {'pid': os.getpid(), 'uid': manager.uid}

    @sio.on('shout')
    def shout(sid, data):
        sio.emit('shouted', data)

    @sio.on('pull')
    def pull(sid, target, room):
        sio.enter_room(target, room)  # a socket of another server
        return True

    @sio.on('to_room')
    def to_room(sid, room, data):
        sio.emit('room_msg', data, to=room)

    @sio.on('via_emitter')
    def via_emitter(sid, room, data):
        emitter.to(room).emit('from_emitter', data)

    @sio.on('burst')
    def burst(sid, n):
        sio.emit('burst', n, to='sink')

    @sio.on('stats')
    def stats(sid):
        return manager.stats()

    return socketio.WSGIApp(sio)


def serve(mode, port):
    app = create_app(mode)
    if mode == 'eventlet':
        import eventlet.wsgi
        eventlet.wsgi.server(eventlet.listen(('127.0.0.1', port)), app,
                             log_output=False)
    elif mode == 'gevent':
        from gevent import pywsgi
        pywsgi.WSGIServer(('127.0.0.1', port), app, log=None).serve_forever()
    else:
        from werkzeug.serving import make_server
        make_server('127.0.0.1', port, app, threaded=True).serve_forever()


if __name__ == '__main__':
    serve(MODE, int(sys.argv[2]))
