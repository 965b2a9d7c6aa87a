"""Workload 8: streams mode (issue 16) beside classic mode and beside Node's
``@socket.io/redis-streams-adapter`` 0.3.1.

Delivery: workload 3's cluster, clients, paths and rates (2 servers x 10 Node
load clients; max rate and latency at 200 msg/s on the emitter path and on
the server path) for sio_redis_sync in classic mode, sio_redis_sync in
streams mode and Node streams servers, in the same run so their ratios are
comparable. Our ``Emitter(mode='streams')`` feeds both streams clusters (Node
never published a streams emitter). Rows ``streams`` (deliveries/s, server
CPU per delivery) and ``streams_latency`` (p50/p99), with ``mode``.

Memory: one streams-mode server (one client) over many broadcasts with
``max_len`` 10,000: its RSS and the stream's length (``XLEN``) and size
(``MEMORY USAGE``) sampled along, as one ``streams_memory`` row. Flat means
the RSS does not grow and the stream stays near ``max_len`` (``MAXLEN ~``
trims whole nodes of 100 entries). No speed is asserted.
"""
import redis

from .cluster import Cluster, broadcast_rss, delivery_cluster, measure_paths

KINDS = ('streams', 'streams_latency', 'streams_memory')
# (implementation, mode): the three clusters compared
CLUSTERS = (('ours', 'classic'), ('ours', 'streams'), ('node', 'streams'))


def run(results, redis_url, impls, short):
    # the CI smoke test runs every workload short: half of workload 3's
    sizes = {'duration': 0.5, 'seconds': 0.5} if short else {}
    for impl, mode in CLUSTERS:
        if impl not in impls:
            continue
        cluster = delivery_cluster(redis_url, impl, streams={} if mode == 'streams' else None)
        try:
            measure_paths(results, cluster, short, kinds=KINDS[:2], mode=mode, **sizes)
        finally:
            cluster.close()
    if 'ours' in impls:
        memory(results, redis_url, broadcasts=2000 if short else 100000,
               max_len=500 if short else 10000)


def memory(results, redis_url, broadcasts, max_len, samples=20):
    """The ``streams_memory`` row of ``broadcasts`` sent to one streams-mode
    server whose stream is capped at ``max_len``."""
    cluster = Cluster(redis_url, 'ours', servers=1, clients=1, streams={'max_len': max_len})
    client = redis.Redis.from_url(redis_url)
    stream = cluster.wire['stream_name']   # stream_count 1: the key is the name

    def probe():
        return client.xlen(stream), client.memory_usage(stream) or 0
    try:
        row = broadcast_rss(cluster, broadcasts, samples, probe=probe)
        lengths, sizes = zip(*row.pop('probes'))
        results.add('streams_memory', 'ours', mode='streams', max_len=max_len,
                    stream_len_end=lengths[-1], stream_len_max=max(lengths),
                    stream_mb_end=round(sizes[-1] / 2**20, 2),
                    stream_samples=[[n, length, round(size / 2**20, 3)] for (n, _), length, size
                                    in zip(row['samples'], lengths, sizes)], **row)
    finally:
        client.close()
        cluster.close()
