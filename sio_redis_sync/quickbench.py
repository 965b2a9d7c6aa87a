"""The quick throughput check of ``sio-redis-sync bench``: Emitter.emit and a
RedisManager listener against raw redis-py in the same process.

Kept out of cli.py so the command line imports no manager for its other
commands; the full comparison with python-socketio and Node is bench/.
"""
import os
import sys
import time

import redis

from . import connection, protocol, classic
from .emitter import Emitter
from .exceptions import SioRedisError
from .manager import RedisManager

class Progress:
    """A one-line progress bar on a terminal stream (redrawn at most every
    0.1 s; nothing but the final line when the stream is not a terminal)."""

    def __init__(self, total, label, stream=None, width=30):
        self.total, self.label, self.width = total, label, width
        self.stream = stream or sys.stderr
        self._drawn = 0.0
        self._tty = self.stream.isatty()

    def update(self, done, force=False):
        now = time.monotonic()
        if not force and (not self._tty or now - self._drawn < 0.1):
            return
        self._drawn = now
        filled = self.width * done // max(self.total, 1)
        self.stream.write('\r%-18s [%s%s] %3d%%' % (
            self.label, '#' * filled, ' ' * (self.width - filled),
            100 * done // max(self.total, 1)))
        self.stream.flush()

    def done(self):
        self.update(self.total, force=True)
        self.stream.write('\n')
        self.stream.flush()


def _timed(count, label, step, chunk=200):
    """Run ``step(i)`` ``count`` times with a progress bar; messages/s."""
    bar = Progress(count, label)
    started = time.perf_counter()
    for i in range(count):
        step(i)
        if i % chunk == 0:
            bar.update(i)
    seconds = time.perf_counter() - started
    bar.done()
    return count / seconds if seconds > 0 else float('inf')


def _flood(client, channel, payload, count, batch=500):
    """PUBLISH ``count`` times, ``batch`` per round trip; when it started."""
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for sent in range(1, count + 1):
        pipe.publish(channel, payload)
        if sent % batch == 0 or sent == count:
            pipe.execute()  # and the pipeline is empty again
    return started


def _received(count, label, read, timeout, started=None):
    """Wait until ``read()`` reaches ``count``, with a progress bar; the
    seconds since ``started`` (default: now)."""
    bar = Progress(count, label)
    started = time.perf_counter() if started is None else started
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        bar.update(got)
        if got >= count:
            break
        if time.monotonic() > deadline:
            raise SioRedisError('%s: %d of %d messages after %.0f s'
                                % (label, got, count, timeout))
        time.sleep(0.01)
    bar.done()
    return time.perf_counter() - started


def run_bench(url, key, count, timeout):
    """Publish and receive ``count`` messages on a key of its own (``key``
    and this process's id) with raw redis-py, Emitter.emit and a
    RedisManager listener.

    :return: the rates (per second) and the ratios to raw redis-py.
    """
    key = '%s-bench-%d' % (key, os.getpid())
    emitter = Emitter(url, key=key)
    raw = redis.Redis(connection_pool=connection.publisher_pool(url, None, timeout=timeout))
    channel = protocol.Channels(key, '/').broadcast
    payload = classic.encode_broadcast(protocol.EMITTER_UID, '/', ['bench', {'i': 0}])
    results = {'count': count}
    try:
        results['raw_publish_per_s'] = _timed(
            count, 'raw publish', lambda i: raw.publish(channel, payload))
        results['emitter_per_s'] = _timed(
            count, 'Emitter.emit', lambda i: emitter.emit('bench', {'i': i}))
        results['raw_receive_per_s'] = _raw_receive(raw, channel, payload, count, timeout)
        results['listener_per_s'] = _listener_receive(url, key, raw, channel, payload,
                                                      count, timeout)
    finally:
        emitter.close()
        raw.close()
    results['emitter_ratio'] = results['emitter_per_s'] / results['raw_publish_per_s']
    results['listener_ratio'] = results['listener_per_s'] / results['raw_receive_per_s']
    return results


def _raw_receive(raw, channel, payload, count, timeout):
    got = [0]
    pubsub = raw.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(**{channel: lambda message: got.__setitem__(0, got[0] + 1)})
    thread = pubsub.run_in_thread(sleep_time=0.05, daemon=True)
    try:
        _received(1, 'subscribing', lambda: raw.pubsub_numsub(channel)[0][1], 10)
        started = _flood(raw, channel, payload, count)
        return count / _received(count, 'raw receive', lambda: got[0], timeout, started)
    finally:
        thread.stop()
        thread.join(5)


def _listener_receive(url, key, raw, channel, payload, count, timeout):
    manager = RedisManager(url, key=key)
    try:
        manager.initialize()
        started = _flood(raw, channel, payload, count)
        return count / _received(count, 'listener receive',
                                 lambda: manager.stats()['received'], timeout, started)
    finally:
        manager.close()
