"""The demo server: a Flask-SocketIO app whose servers form one cluster
through Redis (streams mode, with connection state recovery), with chat rooms,
Celery jobs reporting live progress, and a panel fed by the cluster API.

Run modes (``run.sh`` starts two servers and a Celery worker in any of them):

- Werkzeug, threading: ``python app.py --port 5000``
- gunicorn, one worker per port: ``gunicorn -k gthread --threads 100 -w 1
  -b 127.0.0.1:5000 'app:from_env()'`` (``DEMO_NAME`` names the server)
- eventlet, monkey patched: ``python serve_eventlet.py --port 5000``

``settings`` says which Redis, channel prefix and Celery queue they share.
"""
import argparse
import logging
import os
import pathlib
import re
import uuid

from flask import Flask, abort, render_template, request, send_file
from flask_socketio import SocketIO, emit, join_room, leave_room, rooms

import settings
import tasks
from sio_redis_sync import RedisManager, RequestTimeout

HERE = pathlib.Path(__file__).resolve().parent
CLIENT_JS = HERE / 'node_modules' / 'socket.io-client' / 'dist' / 'socket.io.min.js'
NAME = re.compile(r'^[\w.-]{1,32}$')
CLUSTER_TIMEOUT = 2.0  # seconds a server has to answer the cluster panel


def create_app(redis_url=None, name='demo', key=None, async_mode='threading'):
    """The app of the server called ``name``; its cluster is the Redis at
    ``redis_url`` with channel prefix ``key`` (defaults from ``settings``).

    ``async_mode`` is explicit: left to itself, Flask-SocketIO would pick
    eventlet whenever it is installed, monkey patched or not."""
    app = Flask(__name__)
    # streams mode: a client whose connection drops for a moment comes back,
    # on any server, with its socket id, its rooms and what it missed
    manager = RedisManager(redis_url or settings.REDIS_URL, key=key or settings.KEY,
                           mode='streams', stream_name=key or settings.KEY,
                           connection_state_recovery=True)
    socketio = SocketIO(app, client_manager=manager, async_mode=async_mode)
    # Listen now, not at the first connection: a server without clients yet
    # still answers the cluster panel's requests and counts in server_count.
    manager.initialize()
    mode = socketio.server.async_mode

    @app.route('/')
    def index():
        return render_template('index.html', server=name, mode=mode,
                               pid=os.getpid())

    @app.route('/socket.io.min.js')
    def client_js():
        if not CLIENT_JS.exists():
            abort(404, 'run "npm ci" in examples/flask_app first')
        return send_file(CLIENT_JS, mimetype='application/javascript')

    @socketio.on('connect')
    def on_connect(auth):
        if manager.recovered(request.sid):  # its rooms are back: its user's among them
            user = next((room[5:] for room in rooms() if room.startswith('user:')), None)
            emit('welcome', {'server': name, 'mode': mode, 'pid': os.getpid(),
                             'user': user, 'recovered': True})
            return
        user = auth.get('user') if isinstance(auth, dict) else None
        if not isinstance(user, str) or not NAME.match(user):
            user = 'guest-' + uuid.uuid4().hex[:4]
        join_room('user:' + user)    # where this user's jobs report progress
        join_room('server:' + name)  # so the cluster panel shows who is where
        emit('welcome', {'server': name, 'mode': mode, 'pid': os.getpid(),
                         'user': user, 'recovered': False})

    @socketio.on('join')
    def on_join(room):
        if not is_room_name(room):
            return 'a room is a name of 1 to 64 characters'
        join_room(room)
        emit('chat', {'room': room, 'from': 'server ' + name,
                      'text': 'someone joined'}, to=room)

    @socketio.on('leave')
    def on_leave(room):
        if not is_room_name(room):
            return 'a room is a name of 1 to 64 characters'
        emit('chat', {'room': room, 'from': 'server ' + name,
                      'text': 'someone left'}, to=room)
        leave_room(room)

    @socketio.on('chat')
    def on_chat(message):
        if not isinstance(message, dict) or not is_room_name(message.get('room')):
            return 'a message is {"room": name, "text": text}'
        emit('chat', {'room': message['room'], 'from': 'server ' + name,
                      'text': str(message.get('text', ''))[:500]}, to=message['room'])

    @socketio.on('start_job')
    def on_start_job(steps=10):
        """Enqueue a Celery job for this user; answers with its id."""
        if not isinstance(steps, int) or not 1 <= steps <= 100:
            return {'error': 'steps is a number from 1 to 100'}
        user_room = next(room for room in rooms() if room.startswith('user:'))
        job_id = uuid.uuid4().hex[:8]
        tasks.run_job.delay(user_room, job_id, steps)
        return job_id

    @socketio.on('cluster')
    def on_cluster():
        """What the cluster API says: servers, rooms, and every socket."""
        try:
            sockets = manager.fetch_sockets(timeout=CLUSTER_TIMEOUT)
        except RequestTimeout as exc:
            return {'error': str(exc)}
        # streams mode has no all_rooms(): the rooms are those of the sockets
        return {
            'servers': manager.server_count(),
            'rooms': sorted({room for socket in sockets for room in socket.rooms
                             if room != socket.id and is_chat_room(room)}),
            'sockets': [describe(socket) for socket in sockets],
        }

    return app, socketio


def describe(socket):
    """A row of the cluster panel: the socket, its user, server and rooms."""
    def named(prefix):
        return [room[len(prefix):] for room in socket.rooms
                if isinstance(room, str) and room.startswith(prefix)]
    return {'id': socket.id, 'user': ', '.join(named('user:')),
            'server': ', '.join(named('server:')),
            'rooms': sorted(room for room in socket.rooms
                            if room != socket.id and is_chat_room(room))}


def is_room_name(room):
    """What a client may call a room."""
    return isinstance(room, str) and 0 < len(room) <= 64


def is_chat_room(room):
    """Not one of the rooms the demo puts every socket in."""
    return not str(room).startswith(('user:', 'server:'))


def from_env():
    """The WSGI app for gunicorn: named by ``DEMO_NAME``, cluster per ``settings``."""
    app, _ = create_app(name=os.environ.get('DEMO_NAME', 'gunicorn'))
    return app


def main(async_mode='threading'):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, default=5000)
    parser.add_argument('--name', help='what the page calls this server '
                        '(default: its port)')
    parser.add_argument('--redis', default=settings.REDIS_URL)
    args = parser.parse_args()
    # Werkzeug logs each request, and the last frames of a closed WebSocket
    # as a bad request: noise in the demo's terminal.
    logging.getLogger('werkzeug').setLevel(logging.ERROR)
    app, socketio = create_app(args.redis, args.name or str(args.port),
                               async_mode=async_mode)
    print('server %s (%s): http://127.0.0.1:%d (Redis %s)'
          % (args.name or args.port, socketio.server.async_mode, args.port,
             args.redis), flush=True)
    socketio.run(app, host='127.0.0.1', port=args.port, log_output=False,
                 allow_unsafe_werkzeug=True)


if __name__ == '__main__':
    main()
