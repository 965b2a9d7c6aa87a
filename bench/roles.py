"""Child-process roles of the micro workloads: a listener with a stub server
(no websockets) and a pipelined publisher, so neither shares a GIL with the
other. ``python -m bench.roles listener|publish ...``; JSON lines out.
"""
import argparse
import json
import logging
import sys
import threading
import time

import redis
import socketio
from socketio import packet as sio_packet


class StubServer:
    """What a client manager needs from ``socketio.Server``; counts the
    packets it is asked to send. The first send blocks until ``go`` so that
    the backlog builds up in Redis before the timed read starts."""
    async_mode = 'threading'
    packet_class = sio_packet.Packet

    def __init__(self, expected):
        self.handlers, self.namespace_handlers, self.namespaces = {}, {}, '*'
        self.environ = {}
        self.go = threading.Event()
        self.sent = 0
        self.expected = expected
        self.done = threading.Event()
        self.started = None
        self.eio = self
        self.logger = logging.getLogger('bench.stub')
        self._ids = 0

    def generate_id(self):
        self._ids += 1
        return 'sid%d' % self._ids

    def start_background_task(self, target, *args, **kwargs):
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread

    def _send_eio_packet(self, eio_sid, pkt):
        if self.sent == 0:
            self.go.wait()
            self.started = time.perf_counter()
        self.sent += 1
        if self.sent == self.expected:
            self.done.set()

    def _send_packet(self, eio_sid, pkt):
        self._send_eio_packet(eio_sid, pkt)


def listener(args):
    """Subscribe, print READY, read ``count + 1`` messages once told to go."""
    expected = args.count + 1
    if args.impl == 'raw':
        client = redis.Redis.from_url(args.redis)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(args.channel)
        print('READY', flush=True)
        sys.stdin.readline()
        received, start = 0, time.perf_counter()
        while received < expected:
            if pubsub.get_message(timeout=1.0) is not None:
                received += 1
        elapsed = time.perf_counter() - start
    else:
        server = StubServer(expected)
        if args.impl == 'ours':
            from sio_redis_sync import RedisManager
            manager = RedisManager(args.redis, key=args.key)
        else:
            manager = socketio.RedisManager(args.redis, channel=args.key)
        manager.set_server(server)
        manager.initialize()
        manager.connect('eio1', '/')
        print('READY', flush=True)
        sys.stdin.readline()
        server.go.set()
        if not server.done.wait(120):
            raise SystemExit('listener saw %d of %d messages' % (server.sent, expected))
        elapsed = time.perf_counter() - server.started
        received = server.sent
    print(json.dumps({'reply': 'go', 'received': received - 1,
                      'seconds': elapsed}), flush=True)


def publish(args):
    """PUBLISH ``count`` copies of a payload, ``batch`` per pipeline."""
    client = redis.Redis.from_url(args.redis)
    payload = bytes.fromhex(args.payload)
    start = time.perf_counter()
    left = args.count
    while left:
        n = min(args.batch, left)
        pipe = client.pipeline(transaction=False)
        for _ in range(n):
            pipe.publish(args.channel, payload)
        pipe.execute()
        left -= n
    print(json.dumps({'reply': 'publish', 'seconds': time.perf_counter() - start}),
          flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('role', choices=('listener', 'publish'))
    parser.add_argument('--impl', choices=('raw', 'ours', 'psio'))
    parser.add_argument('--redis', required=True)
    parser.add_argument('--key')
    parser.add_argument('--channel')
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--batch', type=int, default=1000)
    parser.add_argument('--payload')
    args = parser.parse_args()
    (listener if args.role == 'listener' else publish)(args)


if __name__ == '__main__':
    main()
