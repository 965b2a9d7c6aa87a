"""How this package opens Redis connections: the options it forces, the bounded
publisher pool, the subscriber's client, and URLs made safe for log lines.

Owns no connection itself (the Publisher and the Listener own theirs); nothing
here reads or writes a socket.
"""
import socket
import threading
import urllib.parse

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: default cap of the publisher pool (per Emitter or manager, whatever the
#: number of threads or greenlets publishing through it)
MAX_CONNECTIONS = 10
#: default deadline of one publish, every retry included, in seconds
PUBLISH_TIMEOUT = 5.0
#: default number of retries of a publish whose connection failed
PUBLISH_RETRIES = 2
# TCP keepalive on every connection: a peer gone without a FIN (a crashed
# host, a proxy or NAT that forgot the flow) is noticed after about
# KEEPIDLE + KEEPCNT * KEEPINTVL = 11 s of silence even with no traffic.
_KEEPALIVE = (('TCP_KEEPIDLE', 5), ('TCP_KEEPINTVL', 2), ('TCP_KEEPCNT', 3))
_TCP_SCHEMES = ('redis', 'rediss')


def redact(url):
    """``url`` with its password (in the userinfo or a ``password=`` query
    parameter) replaced by ``***``: the only form of a URL put in a log line."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition('@')
        netloc = '%s:***@%s' % (userinfo.split(':', 1)[0], hostinfo)
        url = url.replace('//' + parts.netloc, '//' + netloc, 1)
    if parts.query:
        pairs = [pair.partition('=') for pair in parts.query.split('&')]
        query = '&'.join(name + sep + ('***' if name.lower() == 'password'
                                       else value)
                         for name, sep, value in pairs)
        url = url.replace('?' + parts.query, '?' + query, 1)
    return url


def keepalive_options():
    """The TCP keepalive settings this platform supports."""
    return {getattr(socket, name): value for name, value in _KEEPALIVE
            if hasattr(socket, name)}


def _base_options(url, options):
    """The user's ``options``, copied, with what this package cannot work
    without: bytes replies, no redis-py retries (callers retry with their own
    deadline; redis-py's retries sleep for seconds), keepalive on TCP."""
    options = dict(options or {})
    options['decode_responses'] = False
    options['retry'] = Retry(NoBackoff(), 0)
    options.pop('retry_on_timeout', None)
    if urllib.parse.urlsplit(url).scheme in _TCP_SCHEMES:
        options.setdefault('socket_keepalive', True)
        options.setdefault('socket_keepalive_options', keepalive_options())
    return options


class CountingPool(redis.BlockingConnectionPool):
    """A BlockingConnectionPool that counts the connections it opens in this
    process (first connects and reconnects alike); a caller that finds every connection busy
    waits ``timeout`` seconds at most, then gets ``redis.ConnectionError``."""

    def reset(self):
        # also what redis-py calls in a forked child: counts are per process
        super().reset()
        self._count_lock = threading.Lock()
        self.connections_opened = 0

    def make_connection(self):
        connection = super().make_connection()
        connection.register_connect_callback(self._on_connect)
        return connection

    def _on_connect(self, connection):
        with self._count_lock:
            self.connections_opened += 1


def publisher_pool(url, options, max_connections=MAX_CONNECTIONS,
                   timeout=PUBLISH_TIMEOUT):
    """The bounded pool every publish of one Emitter or manager goes through.

    Socket timeouts default to ``timeout`` (redis-py before 8 waits forever
    by default); smaller ones in ``options`` are kept.
    """
    options = _base_options(url, options)
    options.pop('max_connections', None)
    for name in ('socket_timeout', 'socket_connect_timeout'):
        if options.get(name) is None or options[name] > timeout:
            options[name] = timeout
    return CountingPool.from_url(url, max_connections=max_connections,
                                 timeout=timeout, **options)


def subscriber_client(url, options, timeout):
    """A client of its own for the listener's one Pub/Sub connection (its
    pool holds that one connection, and counts how often it was opened).

    Every socket wait is bounded by ``timeout`` (the health-check deadline),
    whatever ``options`` or redis-py's defaults say: connecting to a paused
    Redis fails in ``timeout`` instead of hanging, and the listener's reads
    give their own timeouts.
    """
    options = _base_options(url, options)
    options.pop('max_connections', None)
    options['socket_timeout'] = timeout
    options['socket_connect_timeout'] = timeout
    options['health_check_interval'] = 0  # the listener runs its own
    return redis.Redis(connection_pool=CountingPool.from_url(
        url, max_connections=1, timeout=timeout, **options))


def cluster_options(url, options):
    """The options of a connection to one node of a Redis Cluster (those of
    :func:`_base_options`; a cluster has only database 0)."""
    options = _base_options(url, options)
    for name in ('max_connections', 'db'):
        options.pop(name, None)
    return options


def cluster_client(url, options, timeout=PUBLISH_TIMEOUT,
                   max_connections=MAX_CONNECTIONS):
    """A ``redis.cluster.RedisCluster`` for publishing to the cluster that
    the node of ``url`` belongs to (any node works as a startup node).

    It makes one attempt per command (callers retry within their deadline),
    every socket wait is bounded by ``timeout``, and each node's pool holds
    ``max_connections`` at most. Reads the slot map now: raises
    ``redis.RedisError`` (or ``RedisClusterException``) if no node answers.
    """
    from redis.cluster import RedisCluster
    options = cluster_options(url, options)
    for name in ('socket_timeout', 'socket_connect_timeout'):
        if options.get(name) is None or options[name] > timeout:
            options[name] = timeout
    return RedisCluster.from_url(url, max_connections=max_connections, **options)
