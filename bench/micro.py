"""Workloads 1 and 2: emitter publish rate (single calls and batched) and the
listener path (decode and hand over to a stub server), with their ceilings.
"""
import json
import re
import shutil
import subprocess
import time
import uuid

import redis
import socketio

from sio_redis_sync import Emitter, classic, protocol

from .common import BenchError, node_peer, python_peer

PAD = 'x' * 64
ROOM = 'room1'


def _rate(count, seconds):
    return round(count / seconds, 1)


class _Rounds:
    """Collects the rows of several rounds; :meth:`flush` adds one row per
    measurement with the median ``msg_per_s`` (and every round's figure)."""

    def __init__(self):
        self.rows = {}

    def add(self, workload, impl, **values):
        key = (workload, impl) + tuple(sorted((k, v) for k, v in values.items()
                                              if k not in ('msg_per_s', 'loss', 'messages')))
        self.rows.setdefault(key, []).append((impl, values))

    def flush(self, results, workload):
        for rounds in self.rows.values():
            impl, values = rounds[0]
            rates = sorted(v['msg_per_s'] for _, v in rounds)
            results.add(workload, impl, **dict(
                values, msg_per_s=rates[len(rates) // 2], rounds=rates,
                loss=sum(v.get('loss', 0) for _, v in rounds)))


def _in_rounds(measure):
    """Run ``measure`` once per round (alternating implementations within
    each round), report medians: the machine is shared and noisy."""
    def run(results, redis_url, impls, short):
        rounds = _Rounds()
        for _ in range(1 if short else 3):
            measure(rounds, redis_url, impls, short)
        rounds.flush(results, measure.__name__.split('_')[0])
    run.__name__ = measure.__name__
    run.__doc__ = measure.__doc__
    return run


@_in_rounds
def emitter_rate(results, redis_url, impls, short):
    """Workload 1: messages/s an emitter publishes to one room, one call per
    message and batched; ceilings: raw redis-py and redis-benchmark."""
    count = 3000 if short else 30000
    batch = 1000
    key = 'bench-%s' % uuid.uuid4().hex[:8]
    client = redis.Redis.from_url(redis_url)
    try:
        if 'ours' in impls:
            emitter = Emitter(redis_url, key=key)
            results.add('emitter', 'ours', form='single',
                        msg_per_s=_timed(count, lambda i: emitter.emit(
                            'b', (i, time.time() * 1000, PAD), to=ROOM)))
            if hasattr(emitter, 'pipeline'):
                results.add('emitter', 'ours', form='batched', batch=batch,
                            msg_per_s=_batched(count, batch, emitter))
            emitter.close()
        if 'psio' in impls:
            manager = socketio.RedisManager(redis_url, channel=key, write_only=True)
            results.add('emitter', 'psio', form='single', msg_per_s=_timed(
                count, lambda i: manager.emit('b', (i, time.time() * 1000, PAD),
                                              namespace='/', room=ROOM)))
        if 'node' in impls:
            node = node_peer('emitter.js', ['--redis', redis_url, '--key', key], 'node-emitter')
            try:
                node.wait_line('READY')
                node.call(op='emit', count=min(count, 1000), room=ROOM, size=len(PAD))
                reply = node.call(op='emit', count=count * 4, room=ROOM, size=len(PAD))
                results.add('emitter', 'node', form='auto-pipelined',
                            msg_per_s=_rate(count * 4, reply['elapsed']))
            finally:
                node.stop()
        channel = protocol.Channels(key, '/').for_rooms([ROOM])
        payload = classic.encode_broadcast(protocol.EMITTER_UID, '/', ['b', 1, 1.5, PAD],
                                            [ROOM], emitter_order=True)
        results.add('emitter', 'raw', form='single', msg_per_s=_timed(
            count, lambda i: client.publish(channel, payload)))
        results.add('emitter', 'raw', form='batched', batch=batch,
                    msg_per_s=_raw_batched(client, count * 4, batch, channel, payload))
        for pipeline in (1, batch):
            results.add('emitter', 'redis-benchmark', form='single' if pipeline == 1
                        else 'batched', batch=pipeline,
                        msg_per_s=redis_benchmark(redis_url, count * (1 if pipeline == 1
                                                                      else 10),
                                                  pipeline, channel))
    finally:
        client.close()


def _timed(count, call):
    for i in range(min(count // 10, 500)):  # warm up: connections, caches
        call(i)
    start = time.perf_counter()
    for i in range(count):
        call(i)
    return _rate(count, time.perf_counter() - start)


def _batched(count, batch, emitter):
    count *= 4

    def run(n):
        for first in range(0, n, batch):
            with emitter.pipeline() as pipe:
                for i in range(first, min(n, first + batch)):
                    pipe.emit('b', (i, time.time() * 1000, PAD), to=ROOM)
    run(batch)
    start = time.perf_counter()
    run(count)
    return _rate(count, time.perf_counter() - start)


def _raw_batched(client, count, batch, channel, payload):
    start = time.perf_counter()
    for first in range(0, count, batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(batch, count - first)):
            pipe.publish(channel, payload)
        pipe.execute()
    return _rate(count, time.perf_counter() - start)


def redis_benchmark(redis_url, count, pipeline, channel):
    binary = shutil.which('redis-benchmark')
    if binary is None:
        raise BenchError('redis-benchmark is not on PATH (apt-get install redis-tools)')
    port = redis.connection.parse_url(redis_url).get('port', 6379)
    out = subprocess.run(
        [binary, '-p', str(port), '-c', '1', '-n', str(count), '-P', str(pipeline), '-q',
         'PUBLISH', channel, PAD], capture_output=True, text=True, timeout=300).stdout
    found = re.findall(r'([\d.]+) requests per second', out)
    if not found:
        raise BenchError('redis-benchmark said: %r' % out[-500:])
    return float(found[-1])


@_in_rounds
def listener_rate(results, redis_url, impls, short):
    """Workload 2: messages/s a listener reads, decodes and hands to its
    (stub) server, from a backlog; the ceiling is a bare redis-py subscriber."""
    count = 20000 if short else 200000
    for impl in ['raw'] + [i for i in impls if i in ('ours', 'psio')]:
        key = 'bench-%s' % uuid.uuid4().hex[:8]
        if impl == 'psio':
            channel = key
            payload = json.dumps({
                'method': 'emit', 'event': 'b', 'data': [1, 1.5, PAD], 'binary': False,
                'namespace': '/', 'room': None, 'skip_sid': None, 'callback': None,
                'host_id': 'other'}).encode()
        else:
            channel = protocol.Channels(key, '/').broadcast
            payload = classic.encode_broadcast(protocol.EMITTER_UID, '/',
                                                ['b', 1, 1.5, PAD], emitter_order=True)
        listener = python_peer('bench.roles', [
            'listener', '--impl', impl, '--redis', redis_url, '--key', key,
            '--channel', channel, '--count', count], 'listener-%s' % impl)
        try:
            listener.wait_line('READY')
            _wait_numsub(redis_url, channel if impl != 'ours'
                         else protocol.Channels(key, '/').request)
            publisher = python_peer('bench.roles', [
                'publish', '--redis', redis_url, '--channel', channel,
                '--count', count + 1, '--payload', payload.hex()], 'publisher')
            try:
                publisher.wait(lambda lines: [x for x in lines if isinstance(x, dict)],
                               300, 'publisher')
            finally:
                publisher.stop()
            reply = listener.call(op='go', timeout=300)
            results.add('listener', impl, messages=reply['received'],
                        loss=count - reply['received'],
                        msg_per_s=_rate(reply['received'], reply['seconds']))
        finally:
            listener.stop()


def _wait_numsub(redis_url, channel):
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 20
        while client.pubsub_numsub(channel)[0][1] < 1:
            if time.monotonic() > deadline:
                raise BenchError('nobody subscribed to %s' % channel)
            time.sleep(0.01)
    finally:
        client.close()
