"""Workload 5: Cluster API latency (fetch_sockets, server_side_call) on
sio_redis_sync and Node, vs the number of servers and sockets per server."""
from sio_redis_sync import RedisManager

from .cluster import Cluster
from .common import percentile

CALLS = ('fetch_sockets', 'server_side_call')


def run(results, redis_url, impls, short):
    count = 20 if short else 200
    shapes = [(2, 10)] if short else [(2, 10), (4, 10), (2, 100)]
    for impl in impls:
        if impl == 'psio':
            continue  # python-socketio has no cluster-wide queries
        if impl == 'ours' and not all(hasattr(RedisManager, c) for c in CALLS):
            results.add('cluster_api', impl, unavailable='this build of sio_redis_sync has '
                        'no Cluster API (fetch_sockets / server_side_call) yet')
            continue
        for servers, sockets in shapes:
            cluster = Cluster(redis_url, impl, servers=servers, clients=sockets)
            try:
                for call in CALLS:
                    reply = cluster.servers[0].call(op=call, count=count)
                    times = reply['times'][max(1, count // 10):]  # after a warm-up
                    results.add('cluster_api', impl, call=call, servers=servers,
                                sockets=sockets, calls=len(times),
                                p50_ms=round(percentile(times, 50), 3),
                                p99_ms=round(percentile(times, 99), 3),
                                result=reply.get('found', reply.get('replies')))
            finally:
                cluster.close()
