"""How this package opens Redis connections: the URL schemes it accepts, the
options it forces, the bounded pools (Sentinel's too), and URLs made safe for
log lines.

Owns no connection itself (the Publisher and the Listener own theirs); nothing
here reads or writes a socket.
"""
import socket
import threading
import urllib.parse

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import (Sentinel, SentinelConnectionPool,
                            SentinelManagedConnection,
                            SentinelManagedSSLConnection)

#: default cap of the publisher pool (per Emitter or manager, whatever the
#: number of threads or greenlets publishing through it)
MAX_CONNECTIONS = 10
#: default deadline of one publish, every retry included, in seconds
PUBLISH_TIMEOUT = 5.0
#: default number of retries of a publish whose connection failed
PUBLISH_RETRIES = 2
#: the port of a sentinel named without one
SENTINEL_PORT = 26379
# TCP keepalive on every connection: a peer gone without a FIN (a crashed
# host, a proxy or NAT that forgot the flow) is noticed after about
# KEEPIDLE + KEEPCNT * KEEPINTVL = 11 s of silence even with no traffic.
_KEEPALIVE = (('TCP_KEEPIDLE', 5), ('TCP_KEEPINTVL', 2), ('TCP_KEEPCNT', 3))
# every scheme accepted -> the one redis-py knows it by. Valkey speaks RESP
# as Redis does: its schemes are redis-py's under another name.
_SCHEMES = {
    'redis': 'redis', 'rediss': 'rediss', 'unix': 'unix',
    'valkey': 'redis', 'valkeys': 'rediss',
    'redis+sentinel': 'redis+sentinel', 'valkey+sentinel': 'redis+sentinel',
}
_SENTINEL = 'redis+sentinel'
_TCP_ONLY = ('socket_keepalive', 'socket_keepalive_options')
# options of redis.sentinel.Sentinel itself, not of the master's connections
_SENTINEL_OPTIONS = ('sentinel_kwargs', 'min_other_sentinels',
                     'force_master_ip')


def redact(url):
    """``url`` with its password (in the userinfo, or a query parameter whose
    name contains ``password``) replaced by ``***``: the only form of a URL
    put in a log line or an error message."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition('@')
        netloc = '%s:***@%s' % (userinfo.split(':', 1)[0], hostinfo)
        url = url.replace('//' + parts.netloc, '//' + netloc, 1)
    if parts.query:
        pairs = [pair.partition('=') for pair in parts.query.split('&')]
        query = '&'.join(name + sep + ('***' if 'password' in name.lower()
                                       else value)
                         for name, sep, value in pairs)
        url = url.replace('?' + parts.query, '?' + query, 1)
    return url


def keepalive_options():
    """The TCP keepalive settings this platform supports."""
    return {getattr(socket, name): value for name, value in _KEEPALIVE
            if hasattr(socket, name)}


def scheme(url):
    """The scheme redis-py knows ``url`` by: ``redis``, ``rediss``, ``unix``
    or ``redis+sentinel`` (``valkey://``, ``valkeys://`` and
    ``valkey+sentinel://`` are the same with another name).

    :raises ValueError: for any other scheme.
    """
    name = urllib.parse.urlsplit(url).scheme.lower()
    try:
        return _SCHEMES[name]
    except KeyError:
        raise ValueError('unsupported Redis URL scheme %r in %s; use one of %s'
                         % (name, redact(url),
                            ', '.join(s + '://' for s in _SCHEMES))) from None


def _address(address, url):
    if address.endswith(']') or ':' not in address:  # no port
        host, port = address, str(SENTINEL_PORT)
    else:
        host, _, port = address.rpartition(':')
    host = host.strip('[]')
    if not host or not port.isdigit():
        raise ValueError('bad sentinel address %r in %s; expected host:port'
                         % (address, redact(url)))
    return host, int(port)


def parse_sentinel_url(url):
    """Split a Sentinel URL, in python-socketio's format::

        redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/db/service_name

    (``valkey+sentinel://`` too; the port defaults to 26379; query parameters
    are redis-py's, as in a ``redis://`` URL).

    :return: ``(sentinels, service_name, options)``: the sentinels'
             ``(host, port)``, the name of the master they watch, and the
             master connections' ``db``, ``username``, ``password`` and
             query options.
    :raises ValueError: if the URL is not one.
    """
    parts = urllib.parse.urlsplit(url)
    if _SCHEMES.get(parts.scheme.lower()) != _SENTINEL:
        raise ValueError('not a Sentinel URL: %s' % redact(url))
    hosts = parts.netloc.rpartition('@')[2]
    sentinels = [_address(address, url) for address in hosts.split(',')]
    path = parts.path.strip('/').split('/')
    if len(path) != 2 or not path[0].isdigit() or not path[1]:
        raise ValueError(
            'the Sentinel URL %s must end with /db/service_name (as in '
            'redis+sentinel://host:26379/0/mymaster)' % redact(url))
    # redis-py parses the query as in any URL of its own
    options = parse_url('redis://?' + parts.query) if parts.query else {}
    options.setdefault('db', int(path[0]))
    if parts.username:
        options['username'] = urllib.parse.unquote(parts.username)
    if parts.password:
        options['password'] = urllib.parse.unquote(parts.password)
    return sentinels, urllib.parse.unquote(path[1]), options


def _options(url, options, timeout, forced):
    """The user's ``options``, copied, with the URL's own (which win, as in
    redis-py's ``from_url``) and what this package cannot work without:
    bytes replies, no redis-py retries (callers retry with their own
    deadline; redis-py's retries sleep for seconds), keepalive on TCP,
    socket waits bounded by ``timeout``, then the caller's ``forced``.

    :return: ``(options, sentinel)``: ``sentinel`` is None, or the
             ``(sentinels, service_name)`` of a Sentinel URL.
    """
    kind = scheme(url)
    options = dict(options or {})
    sentinel = None
    if kind == _SENTINEL:
        sentinels, service_name, url_options = parse_sentinel_url(url)
        options.update(url_options)
        sentinel = sentinels, service_name
    else:
        url = kind + url[url.index(':'):]  # valkey://, or REDIS://
        connection_class = options.get('connection_class')
        options.update(parse_url(url))
        if connection_class is not None:
            options['connection_class'] = connection_class
    options.pop('max_connections', None)
    options['decode_responses'] = False
    options['retry'] = Retry(NoBackoff(), 0)
    options.pop('retry_on_timeout', None)
    if kind == 'unix':
        for name in _TCP_ONLY:
            options.pop(name, None)
    else:
        options.setdefault('socket_keepalive', True)
        options.setdefault('socket_keepalive_options', keepalive_options())
    options.update(forced)
    _bound(options, timeout)
    return options, sentinel


def _bound(options, timeout):
    # redis-py before 8 waits forever by default
    for name in ('socket_timeout', 'socket_connect_timeout'):
        if options.get(name) is None or options[name] > timeout:
            options[name] = timeout


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
        # public since redis-py 5.1
        register = getattr(connection, 'register_connect_callback', None) or \
            connection._register_connect_callback
        register(self._on_connect)
        return connection

    def _on_connect(self, connection):
        with self._count_lock:
            self.connections_opened += 1


class SentinelPool(CountingPool, SentinelConnectionPool):
    """A :class:`CountingPool` of connections to the master a Sentinel setup
    names: each connection asks the sentinels where the master is whenever it
    (re)connects, so after a failover every one follows the new master.

    Made as redis-py's ``SentinelConnectionPool``:
    ``SentinelPool(service_name=..., sentinel_manager=Sentinel(...),
    connection_class=SentinelManagedConnection, max_connections=...,
    timeout=..., **connection_options)``.
    """

    def owns_connection(self, connection):
        # redis-py drops a connection to a former master from the queue but
        # keeps it in the pool's list (one leaked per failed connect while no
        # master is known): disconnect it instead and keep it for reuse
        if not redis.ConnectionPool.owns_connection(self, connection):
            return False  # another process's
        if not SentinelConnectionPool.owns_connection(self, connection):
            connection.disconnect()
        return True

    def disconnect(self, inuse_connections=True):
        if not inuse_connections:
            # the master moved (redis-py's call): drop the idle connections,
            # which may point at the former one
            for connection in list(self.pool.queue):
                if connection is not None:
                    connection.disconnect()
            return
        super().disconnect()
        for sentinel in self.sentinel_manager.sentinels:
            sentinel.connection_pool.disconnect()


def _pool(url, options, max_connections, timeout, **forced):
    options, sentinel = _options(url, options, timeout, forced)
    if sentinel is None:
        return CountingPool(max_connections=max_connections, timeout=timeout,
                            **options)
    sentinels, service_name = sentinel
    manager_options = {name: options.pop(name) for name in _SENTINEL_OPTIONS
                       if name in options}
    # the sentinels' own connections: sentinel_kwargs (a sentinel password,
    # say), else the master's socket options, as redis-py does; no retries
    # and bounded waits either way
    sentinel_kwargs = dict(manager_options.pop('sentinel_kwargs', None) or {
        name: value for name, value in options.items()
        if name.startswith('socket_')})
    sentinel_kwargs['retry'] = Retry(NoBackoff(), 0)
    _bound(sentinel_kwargs, timeout)
    options.setdefault('connection_class', SentinelManagedSSLConnection
                       if options.pop('ssl', False) else SentinelManagedConnection)
    return SentinelPool(
        service_name=service_name,
        sentinel_manager=Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs,
                                  **manager_options),
        max_connections=max_connections, timeout=timeout, **options)


def publisher_pool(url, options, max_connections=MAX_CONNECTIONS,
                   timeout=PUBLISH_TIMEOUT):
    """The bounded pool every publish of one Emitter or manager goes through.

    :param url: ``redis://``, ``rediss://``, ``unix://``,
                ``redis+sentinel://`` or their ``valkey`` names.
    :param options: redis-py connection options (and for Sentinel URLs
                    ``sentinel_kwargs``, ``min_other_sentinels`` and
                    ``force_master_ip``).

    Socket timeouts default to ``timeout`` (redis-py before 8 waits forever
    by default); smaller ones in ``options`` are kept.
    """
    return _pool(url, options, max_connections, timeout)


def subscriber_client(url, options, timeout):
    """A client of its own for the listener's one Pub/Sub connection (its
    pool holds that one connection, and counts how often it was opened).

    Every socket wait is bounded by ``timeout`` (the health-check deadline),
    whatever ``options`` or redis-py's defaults say: connecting to a paused
    Redis fails in ``timeout`` instead of hanging, and the listener's reads
    give their own timeouts.
    """
    return redis.Redis(connection_pool=_pool(
        url, options, 1, timeout, socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=0))  # the listener runs its own


def cluster_options(url, options):
    """The options of a connection to one node of a Redis Cluster (those of
    :func:`_options`, without the URL's own; a cluster has only database 0)."""
    options = dict(options or {})
    for name in ('max_connections', 'db', 'retry_on_timeout'):
        options.pop(name, None)
    options['decode_responses'] = False
    options['retry'] = Retry(NoBackoff(), 0)
    options.setdefault('socket_keepalive', True)
    options.setdefault('socket_keepalive_options', keepalive_options())
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
