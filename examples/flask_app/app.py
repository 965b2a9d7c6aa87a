"""The demo server: a Flask-SocketIO chat whose servers form one cluster.

Run several (``python app.py --port 5000``, ``--port 5001``) on one Redis:
a message sent on one reaches the people in the same room on every server.
"""
import argparse
import os
import pathlib

from flask import Flask, abort, render_template, send_file
from flask_socketio import SocketIO, emit, join_room, leave_room

from sio_redis_sync import RedisManager

HERE = pathlib.Path(__file__).resolve().parent
CLIENT_JS = HERE / 'node_modules' / 'socket.io-client' / 'dist' / 'socket.io.min.js'


def create_app(redis_url, name):
    """The chat app of the server called ``name``, on the Redis ``redis_url``."""
    app = Flask(__name__)
    # threading: the demo runs on Werkzeug's threads (Flask-SocketIO would
    # pick eventlet or gevent if one of them is installed)
    socketio = SocketIO(app, async_mode='threading',
                        client_manager=RedisManager(redis_url))

    @app.route('/')
    def index():
        return render_template('index.html', server=name)

    @app.route('/socket.io.min.js')
    def client_js():
        if not CLIENT_JS.exists():
            abort(404, 'run "npm ci" in examples/flask_app first')
        return send_file(CLIENT_JS, mimetype='application/javascript')

    @socketio.on('join')
    def on_join(room):
        join_room(room)
        emit('chat', {'room': room, 'from': 'server ' + name,
                      'text': 'someone joined'}, to=room)

    @socketio.on('leave')
    def on_leave(room):
        leave_room(room)

    @socketio.on('chat')
    def on_chat(message):
        emit('chat', {'room': message['room'], 'from': 'server ' + name,
                      'text': str(message['text'])[:500]}, to=message['room'])

    return app, socketio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, default=5000)
    parser.add_argument('--redis', default=os.environ.get(
        'REDIS_URL', 'redis://127.0.0.1:6379/0'))
    args = parser.parse_args()
    app, socketio = create_app(args.redis, str(args.port))
    print('server %d: http://127.0.0.1:%d (Redis %s)'
          % (args.port, args.port, args.redis), flush=True)
    socketio.run(app, host='127.0.0.1', port=args.port,
                 allow_unsafe_werkzeug=True)


if __name__ == '__main__':
    main()
