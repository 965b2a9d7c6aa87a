"""A python-socketio server for the cluster workloads, one per process.

``--impl ours`` uses sio_redis_sync.RedisManager (``--options``: a JSON
object of its keyword arguments, e.g. ``mode='streams'``), ``--impl psio``
python-socketio's own socketio.RedisManager. Clients join the rooms of their
``rooms`` query; a ``relay`` event (room, seq, t, pad) is broadcast to
``room`` as ``b`` (seq, t, pad). Prints ``READY <port>``; ends on SIGTERM.
"""
import argparse
import sys

parser = argparse.ArgumentParser()
parser.add_argument('--impl', choices=('ours', 'psio'), required=True)
parser.add_argument('--redis', required=True)
parser.add_argument('--key', required=True)
parser.add_argument('--mode', choices=('threading', 'eventlet'), default='threading')
parser.add_argument('--options', default='{}', help='RedisManager keyword arguments (JSON)')
ARGS = parser.parse_args()
if ARGS.mode == 'eventlet':
    import eventlet
    eventlet.monkey_patch()

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

import socketio  # noqa: E402

logging.getLogger('werkzeug').setLevel(logging.CRITICAL)


def make_manager():
    if ARGS.impl == 'ours':
        from sio_redis_sync import RedisManager
        return RedisManager(ARGS.redis, key=ARGS.key, **json.loads(ARGS.options))
    return socketio.RedisManager(ARGS.redis, channel=ARGS.key)


def make_server():
    sio = socketio.Server(async_mode=ARGS.mode, client_manager=make_manager(),
                          max_http_buffer_size=100_000_000)

    @sio.on('connect')
    def on_connect(sid, environ, auth=None):
        query = urllib.parse.parse_qs(environ.get('QUERY_STRING', ''))
        for rooms in query.get('rooms', []):
            for room in filter(None, rooms.split(',')):
                sio.enter_room(sid, room)

    @sio.on('relay')
    def on_relay(sid, room, seq, t, text):
        sio.emit('b', (seq, t, text), room=room)

    return sio


def serve(sio):
    app = socketio.WSGIApp(sio)
    if ARGS.mode == 'eventlet':
        import eventlet.wsgi
        listener = eventlet.listen(('127.0.0.1', 0))
        port = listener.getsockname()[1]
        eventlet.spawn(eventlet.wsgi.server, listener, app, log_output=False)
        return port
    from werkzeug.serving import make_server as make_http
    http = make_http('127.0.0.1', 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    return http.server_port


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def timeouts(manager, op):
    """``op['count']`` server_side_call requests that time out (a silent
    subscriber counts as a server); RSS sampled along the way."""
    from sio_redis_sync import RequestTimeout
    step = max(1, op['count'] // 20)
    samples, timed_out = [[0, round(rss_mb(), 2)]], 0
    for i in range(1, op['count'] + 1):
        try:
            manager.server_side_call('silence', timeout=op['request_timeout'])
        except RequestTimeout:
            timed_out += 1
        if i % step == 0:
            samples.append([i, round(rss_mb(), 2)])
    return {'reply': op['op'], 'timed_out': timed_out, 'samples': samples}


def cluster_api(sio, op):
    """Time the Cluster API calls of sio_redis_sync's manager (op['count'] each)."""
    manager = sio.manager
    if op['op'] == 'timeouts':
        return timeouts(manager, op)
    times, found = [], None
    for _ in range(op['count']):
        start = time.perf_counter()
        if op['op'] == 'fetch_sockets':
            found = len(manager.fetch_sockets())
        else:
            found = len(manager.server_side_call('ping', 1))
        times.append((time.perf_counter() - start) * 1000)
    return {'reply': op['op'], 'times': times, 'found': found}


def main():
    sio = make_server()
    if ARGS.impl == 'ours' and hasattr(sio.manager, 'on'):
        sio.manager.on('ping')(lambda *args: args[0] if args else None)
    port = serve(sio)
    # listen now, before the first client: broadcasts must not be missed
    # (the driver waits until Redis lists the subscription)
    sio.manager_initialized = True
    sio.manager.initialize()
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    print('READY %d' % port, flush=True)
    if ARGS.mode == 'eventlet':
        while True:
            eventlet.sleep(3600)
    for line in sys.stdin:
        op = json.loads(line)
        print(json.dumps(cluster_api(sio, op)), flush=True)
    os._exit(0)


if __name__ == '__main__':
    main()
