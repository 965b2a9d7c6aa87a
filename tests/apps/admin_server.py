"""A Socket.IO server with RedisManager and the Socket.IO Admin UI
(``sio.instrument()``), run as its own process by tests/test_admin_ui.py
(instrument() patches Engine.IO's Socket class for the whole process).

    python admin_server.py REDIS_URL KEY

Prints ``READY <port>``; clients join the rooms of their ``rooms`` query
parameter; stops on SIGTERM.
"""
import sys
import urllib.parse

import socketio
from werkzeug.serving import make_server

from sio_redis_sync import RedisManager


def main(redis_url, key):
    sio = socketio.Server(async_mode='threading',
                          client_manager=RedisManager(redis_url, key=key))
    sio.instrument(auth=False, server_stats_interval=0.2)

    @sio.on('connect')
    def connect(sid, environ, auth=None):
        query = urllib.parse.parse_qs(environ.get('QUERY_STRING', ''))
        for rooms in query.get('rooms', []):
            for room in filter(None, rooms.split(',')):
                sio.enter_room(sid, room)

    @sio.on('join')
    def join(sid, room):
        sio.enter_room(sid, room)
        return 'joined'

    http = make_server('127.0.0.1', 0, socketio.WSGIApp(sio), threaded=True)
    sio.manager.initialize()
    print('READY %d' % http.server_port, flush=True)
    http.serve_forever()


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
