"""Cluster workloads (3 and 4): an emitter or a client event -> servers -> Node
load clients, for sio_redis_sync, python-socketio's RedisManager and Node.

Deliveries/s at max rate (closed loop: a bounded number of messages in
flight), server CPU per delivery from /proc, latency percentiles at a fixed
moderate rate, and loss (expected minus received deliveries; must be 0).
"""
import json
import time
import uuid

import redis
import socketio

from sio_redis_sync import Emitter

from .common import node_peer, percentile, python_peer, wait_until

IMPLS = ('ours', 'psio', 'node')


def blocked_readers(redis_url):
    """How many clients of that Redis are blocked in an XREAD now (Redis
    does not say which stream they read: the bench counts the increase)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(1 for entry in client.client_list()
                   if entry.get('cmd') == 'xread' and 'b' in entry.get('flags', ''))
    finally:
        client.close()


class Cluster:
    """``servers`` servers of one implementation, each with a process of
    ``clients`` Node load clients; the clients of server ``s`` join
    ``rooms_of(s)`` and ``range`` numbered rooms each.

    ``streams``: None for classic Pub/Sub, or the streams-mode options of the
    servers and the emitter (``stream_name``, by default the key's, and
    ``max_len`` for Node's; the stream is deleted on :meth:`close`);
    ours then run ``RedisManager(mode='streams')``, Node
    ``@socket.io/redis-streams-adapter``, and both are fed by our
    ``Emitter(mode='streams')`` (Node has no streams emitter).
    """

    def __init__(self, redis_url, impl, servers=2, clients=10, rooms_of=None,
                 room_range=0, mode='threading', sender_on=None, streams=None):
        self.impl = impl
        self.redis_url = redis_url
        self.key = 'bench-%s' % uuid.uuid4().hex[:8]
        self.wire = {} if streams is None else dict(
            {'stream_name': '%s-stream' % self.key}, **streams, mode='streams')
        self.servers, self.clients = [], []
        self.per_server = clients
        readers = blocked_readers(redis_url) if self.wire else 0
        try:
            for _ in range(servers):
                self.servers.append(self._start_server(mode))
            for peer in self.servers:  # started together, then waited for
                peer.url = 'http://127.0.0.1:%d' % int(
                    peer.wait_line('READY ', timeout=30).split()[1])
            self._wait_subscribed(servers, readers)
            for index, server in enumerate(self.servers):
                rooms = rooms_of(index) if rooms_of else ''
                args = ['--url', server.url, '--n', clients, '--rooms', rooms,
                        '--range', room_range, '--offset', index * clients * room_range]
                if sender_on == index:
                    args += ['--sender', '1']
                self.clients.append(node_peer('clients.js', args, 'clients-%d' % index))
            for peer in self.clients:
                peer.wait_line('READY', timeout=60 + clients / 5)
            self.emitter = self._make_emitter()
        except BaseException:
            self.close()
            raise

    def _start_server(self, mode):
        """A server process (its ``READY <port>`` line not awaited yet)."""
        if self.impl == 'node':
            args = ['--redis', self.redis_url, '--key', self.key]
            if self.wire:
                args += ['--stream-name', self.wire['stream_name'],
                         '--max-len', self.wire.get('max_len', 10000)]
            return node_peer('server.js', args, 'node-server')
        args = ['--impl', self.impl, '--redis', self.redis_url, '--key', self.key,
                '--mode', mode]
        if self.wire:
            args += ['--options', json.dumps(self.wire)]
        return python_peer('bench.pyserver', args, '%s-server' % self.impl)

    def _wait_subscribed(self, servers, readers):
        if self.wire:
            # each server reads the stream with XREAD BLOCK from its end: an
            # entry added before a server's first read would not reach it
            wait_until(lambda: blocked_readers(self.redis_url) >= readers + servers, 20,
                       '%d servers reading the stream' % servers, interval=0.05)
            return
        client = redis.Redis.from_url(self.redis_url)
        try:
            channel = self.key if self.impl == 'psio' else '%s-request#/#' % self.key
            wait_until(lambda: client.pubsub_numsub(channel)[0][1] >= servers, 20,
                       'servers subscribed to %s' % channel)
        finally:
            client.close()

    def _make_emitter(self):
        if self.impl == 'psio':
            manager = socketio.RedisManager(self.redis_url, channel=self.key,
                                            write_only=True)
            return lambda event, data, room=None: manager.emit(event, data, namespace='/',
                                                                room=room)
        emitter = Emitter(self.redis_url, key=self.key, **self.wire)
        self._emitter = emitter
        return lambda event, data, room=None: emitter.emit(event, data, to=room)

    def publish(self, start, count, pad, room_for=None, batched=True):
        """Emit ``count`` messages ``b`` (seq, t, pad) from the driver, in one
        ``Emitter.pipeline()`` batch where there is one and ``batched``."""
        emitter = getattr(self, '_emitter', None)
        if batched and emitter is not None:
            with emitter.pipeline() as batch:
                for seq in range(start, start + count):
                    batch.emit('b', (seq, time.time() * 1000, pad),
                               to=room_for(seq) if room_for else None)
            return
        for seq in range(start, start + count):
            self.emitter('b', (seq, time.time() * 1000, pad),
                         room_for(seq) if room_for else None)

    def stats(self, latencies=False):
        total, last, lats = 0, None, []
        for peer in self.clients:
            reply = peer.call(op='stats', latencies=latencies)
            total += reply['received']
            if reply['last'] is not None:
                last = max(last or 0, reply['last'])
            lats.extend(reply['latencies'])
        return total, last, lats

    def reset(self):
        for peer in self.clients:
            peer.call(op='reset')

    def cpu(self):
        return sum(server.cpu_seconds() for server in self.servers)

    def close(self):
        for peer in self.clients + self.servers:
            peer.stop()
        emitter = getattr(self, '_emitter', None)
        if emitter is not None:
            emitter.close()
        if self.wire:
            client = redis.Redis.from_url(self.redis_url)
            try:
                client.delete(self.wire['stream_name'])  # stream_count 1: its key
            finally:
                client.close()


def wait_delivered(cluster, expected, stall=10.0, interval=0.02):
    """Wait until ``expected`` deliveries, or no progress for ``stall`` s."""
    seen, since = -1, time.monotonic()
    while True:
        total, last, _ = cluster.stats()
        if total >= expected:
            return total, last
        if total != seen:
            seen, since = total, time.monotonic()
        elif time.monotonic() - since > stall:
            return total, last
        time.sleep(interval)


def max_rate(cluster, duration, deliveries_per_msg, chunk=50, window=300, pad='',
             room_for=None, relay_room=None, batched=True):
    """Closed loop for ``duration`` s: publish ``chunk`` messages at a time
    while at most ``window`` are undelivered. Deliveries/s, CPU per delivery."""
    cluster.reset()
    cpu0 = cluster.cpu()
    start_wall = time.time() * 1000
    start = time.monotonic()
    sent = 0
    sender = cluster.clients[0] if relay_room else None
    while time.monotonic() - start < duration:
        if sender is not None:
            sender.call(op='relay', count=chunk, room=relay_room, size=len(pad))
        else:
            cluster.publish(sent, chunk, pad, room_for, batched)
        sent += chunk
        target = (sent - window) * deliveries_per_msg
        if target > 0 and wait_delivered(cluster, target, interval=0.002)[0] < target:
            break  # stalled: lost deliveries, reported below
    expected = sent * deliveries_per_msg
    total, last = wait_delivered(cluster, expected)
    cpu = cluster.cpu() - cpu0
    elapsed = ((last or time.time() * 1000) - start_wall) / 1000
    return {'messages': sent, 'deliveries': total, 'expected': expected,
            'loss': expected - total, 'seconds': round(elapsed, 3),
            'deliveries_per_s': round(total / elapsed, 1) if elapsed > 0 else None,
            'server_cpu_us_per_delivery': round(cpu * 1e6 / total, 2) if total else None,
            'server_cpu_s': round(cpu, 3)}


def fixed_rate(cluster, rate, seconds, deliveries_per_msg, pad='', relay_room=None):
    """Open loop at ``rate`` msg/s: latency percentiles (ms) and loss."""
    cluster.reset()
    count = int(rate * seconds)
    cpu0 = cluster.cpu()
    if relay_room:
        cluster.clients[0].call(op='relay', count=count, rate=rate, room=relay_room,
                                size=len(pad), timeout=seconds * 3 + 30)
    else:
        start = time.monotonic()
        for seq in range(count):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            cluster.emitter('b', (seq, time.time() * 1000, pad))
    expected = count * deliveries_per_msg
    total, _ = wait_delivered(cluster, expected)
    cpu = cluster.cpu() - cpu0
    _, _, lats = cluster.stats(latencies=True)
    return {'rate': rate, 'messages': count, 'deliveries': total, 'expected': expected,
            'loss': expected - total,
            'p50_ms': round(percentile(lats, 50), 3) if lats else None,
            'p99_ms': round(percentile(lats, 99), 3) if lats else None,
            'max_ms': round(max(lats), 3) if lats else None,
            'server_cpu_us_per_delivery': round(cpu * 1e6 / total, 2) if total else None}


def _flag(row, cluster):
    """Keep a lossy row (the report flags it) with the servers' last errors."""
    if row.get('loss'):
        errors = []
        for server in cluster.servers:
            lines = [line for line in server.stderr_tail(20000).splitlines()
                     if 'Error' in line or 'error' in line]
            errors.extend(lines[-3:])
        row['server_errors'] = errors
    return row


def delivery(results, redis_url, impls, short, modes=('threading',)):
    """Workload 3: emitter -> 2 servers x 10 clients, and the server-initiated
    path (a client event on server 0 broadcast to the clients of server 1)."""
    for mode in modes:
        for impl in impls:
            if impl == 'node' and mode != modes[0]:
                continue
            cluster = delivery_cluster(redis_url, impl, mode=mode)
            try:
                # under eventlet every relay is a green thread holding a Redis
                # connection while it publishes: redis-py 8 pools at most 100
                burst = {'chunk': 20, 'window': 60} if mode == 'eventlet' else {'chunk': 100}
                measure_paths(results, cluster, short, burst=burst,
                              mode=mode if impl != 'node' else 'node')
            finally:
                cluster.close()


def delivery_cluster(redis_url, impl, **options):
    """Workload 3's cluster: 2 servers x 10 clients, those of server 1 in
    the room ``far``, a sender client on server 0."""
    return Cluster(redis_url, impl, servers=2, clients=10, sender_on=0,
                   rooms_of=lambda s: 'far' if s == 1 else '', **options)


def measure_paths(results, cluster, short, kinds=('delivery', 'latency'), burst=None,
                  duration=None, seconds=None, **labels):
    """Workload 3's measures on a :func:`delivery_cluster`: max rate (for
    ``duration`` s) and latency at 200 msg/s (for ``seconds``) on the emitter
    path and on the server path, as rows of the ``kinds`` (deliveries,
    latency), with ``labels``."""
    duration = duration or (1.0 if short else 4.0)
    moderate = 200
    seconds = seconds or (1.0 if short else 5.0)
    impl, (delivered, latency) = cluster.impl, kinds
    # python-socketio's emitter has one call per message; ours is measured
    # that way too, then with Emitter.pipeline() batches (bursts let the
    # servers' writer threads send several packets per wake-up, which alone
    # halves their CPU per delivery)
    for batched in ((False, True) if impl == 'ours' else (impl == 'node',)):
        row = max_rate(cluster, duration, 20, batched=batched)
        results.add(delivered, impl, path='emitter', **labels,
                    emits='batched' if batched else 'single', **_flag(row, cluster))
    row = fixed_rate(cluster, moderate, seconds, 20)
    results.add(latency, impl, path='emitter', **labels, **_flag(row, cluster))
    row = max_rate(cluster, duration, 10, relay_room='far', **(burst or {'chunk': 100}))
    results.add(delivered, impl, path='server', **labels, **_flag(row, cluster))
    row = fixed_rate(cluster, moderate, seconds, 10, relay_room='far')
    results.add(latency, impl, path='server', **labels, **_flag(row, cluster))


def growth(results, redis_url, impls, short):
    """Workload 4: how deliveries/s and CPU per delivery grow with clients,
    rooms, message size and servers (max rate, emitter path)."""
    duration = 0.7 if short else 3.0
    sweeps = [
        ('clients', [1] if short else [1, 10, 100, 1000]),
        ('rooms', [100] if short else [20, 100, 10000]),
        ('size', [10000] if short else [100, 1000, 10000, 100000]),
        ('servers', [4] if short else [2, 4]),
    ]
    for sweep, values in sweeps:
        for value in values:
            for impl in impls:
                servers, clients, pad, room_range, room_for = 2, 10, 'x' * 64, 0, None
                per_msg = None
                if sweep == 'clients':
                    clients = value
                elif sweep == 'servers':
                    servers = value
                elif sweep == 'size':
                    pad = 'x' * max(0, value - 40)
                elif sweep == 'rooms':
                    room_range = value // (servers * clients)
                    total_rooms = room_range * servers * clients
                    per_msg = 1

                    def room_for(seq, total_rooms=total_rooms):
                        return 'r%d' % (seq % total_rooms)
                per_msg = per_msg or servers * clients
                window = max(2, min(300, 6000 // per_msg))
                chunk = max(1, min(50, window // 2))
                if sweep == 'size' and value >= 10000:
                    window, chunk = max(2, min(window, 40)), max(1, min(chunk, 10))
                cluster = Cluster(redis_url, impl, servers=servers, clients=clients,
                                  room_range=room_range)
                try:
                    row = max_rate(cluster, duration, per_msg, chunk=chunk, window=window,
                                   pad=pad, room_for=room_for)
                    results.add('growth', impl, sweep=sweep, value=value, **_flag(row, cluster))
                finally:
                    cluster.close()


def _wait_received(cluster, count):
    wait_until(lambda: cluster.stats()[0] >= count, 60, '%d deliveries' % count)


def memory(results, redis_url, impls, short, broadcasts=None):
    """Workload 6: RSS of one server (one client) sampled over many broadcasts."""
    total = broadcasts or (5000 if short else 100000)
    for impl in impls:
        cluster = Cluster(redis_url, impl, servers=1, clients=1)
        try:
            row = broadcast_rss(cluster, total, 10 if short else 20)
            results.add('memory', impl, **row)
            if impl == 'ours':
                _timed_out_requests(results, cluster, 200 if short else 5000)
        finally:
            cluster.close()


def broadcast_rss(cluster, total, samples, probe=None):
    """Send ``total`` broadcasts to a cluster of one server, in batches of
    100 (at most about 500 undelivered), and sample the server's RSS
    ``samples`` times: a memory row's fields. ``probe()``, when given, is
    sampled along (``probes``: each sample's value)."""
    step = max(1, total // samples)
    server = cluster.servers[0]
    rss, probes = [(0, server.rss())], [probe()] if probe else None
    sent = 0
    start = time.monotonic()
    while sent < total:
        n = min(step, total - sent)
        for first in range(sent, sent + n, 100):
            cluster.publish(first, min(100, sent + n - first), 'x' * 64)
            if cluster.stats()[0] < first - 500:
                _wait_received(cluster, first - 200)
        sent += n
        _wait_received(cluster, sent)
        rss.append((sent, server.rss()))
        if probe:
            probes.append(probe())
    received = cluster.stats()[0]
    row = {'broadcasts': sent, 'deliveries': received, 'loss': sent - received,
           'seconds': round(time.monotonic() - start, 1),
           'rss_start_mb': round(rss[1][1] / 2**20, 2),
           'rss_end_mb': round(rss[-1][1] / 2**20, 2),
           'rss_growth_mb': round((rss[-1][1] - rss[1][1]) / 2**20, 2),
           'samples': [[n, round(b / 2**20, 2)] for n, b in rss]}
    if probe:
        row['probes'] = probes
    return row


def _timed_out_requests(results, cluster, count, timeout=0.005):
    """Requests that time out: a silent subscriber of the request channel
    counts as a server that never answers server_side_call."""
    client = redis.Redis.from_url(cluster.redis_url)
    silent = client.pubsub()
    silent.subscribe('%s-request#/#' % cluster.key)
    try:
        wait_until(lambda: client.pubsub_numsub('%s-request#/#' % cluster.key)[0][1] >= 2,
                   10, 'the silent subscriber')
        reply = cluster.servers[0].call(timeout=count * timeout * 20 + 60, op='timeouts',
                                        count=count, request_timeout=timeout)
        samples = reply['samples']
        results.add('memory', 'ours', what='timed-out requests', requests=count,
                    loss=count - reply['timed_out'], rss_start_mb=samples[1][1],
                    rss_end_mb=samples[-1][1],
                    rss_growth_mb=round(samples[-1][1] - samples[1][1], 2), samples=samples)
    finally:
        silent.close()
        client.close()
