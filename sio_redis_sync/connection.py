"""How this package opens Redis connections: the URL schemes it accepts, the
options it forces, the bounded pools (Sentinel's too), and URLs made safe for
log lines.

Owns no connection itself (the Publisher and the Listener own theirs); nothing
here reads or writes a socket.
"""
import re
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

from . import internals

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


# what a URL, an exception text or a repr may carry a secret in: a URL's
# userinfo (everything from its "://" to its last "@"), a query parameter or
# a ``name=value`` / ``'name': 'value'`` pair whose name says it is one
_SECRET_NAME = re.compile(r'pass|secret|token|credential|auth', re.I)
_PARAM = re.compile(r'[?&;]([^=&;?#\s]*)=')
_NEXT_PARAM = re.compile(r'[&;][A-Za-z_][A-Za-z0-9_.-]*=')
_PAIR = re.compile(r"""([\w.-]*(?:pass|secret|token|credential)[\w.-]*)
                       (['"]?\s*[=:]\s*)   # = or ': '
                       (?:(['"])(.*?)(?<!\\)\3   # a quoted value
                        # or a bare one, up to the next ",name=" (a repr's
                        # next field: the password itself may hold , or ))
                        |[^\s;&'"]*?(?=,[A-Za-z_][\w.-]*=|[\s;&'"]|(?:\)>)+(?:[\s,.;:]|$)|$))""",
                   re.I | re.X)
_URL_START = re.compile(r'\s*[A-Za-z][A-Za-z0-9+.-]*://')
_URL_TOKEN = re.compile(r'\S*(?:://|@)\S*')
_USERNAME = re.compile(r'[A-Za-z0-9._~-]*\Z')
_HIDDEN = '***'
_ESCAPE_HINT = 'write / ? # @ in a password as %2F %3F %23 %40'
# one host[:port] of a URL's host list
_HOST = re.compile(r'(\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9._~%-]*)(:[0-9]*)?\Z')


def _url_spans(url):
    """The ``(start, end)`` spans of ``url`` that may hold a secret: the
    password of the userinfo (the whole userinfo unless it is a plain user
    name; it ends at the last ``@``, so a password with an unescaped ``/``,
    ``?``, ``#``, ``@`` or ``:`` is covered whole), and the value of every
    query parameter named like a password (up to the next ``&name=``)."""
    spans = []
    start = url.find('://')
    start = 0 if start < 0 else start + 3
    at = url.rfind('@')
    if at >= start:
        colon = url.find(':', start, at)
        user_end = at if colon < 0 else colon
        hosts = re.match(r'[^/?#]*', url[at + 1:]).group()
        if not all(_HOST.match(host) for host in hosts.split(',')):
            # no host list after it: the last "@" is the password's own
            spans.append((start, at + 1 + len(hosts)))
        elif not _USERNAME.match(url, start, user_end):
            spans.append((start, at))  # no plain user name: all of it
        elif colon >= 0:
            spans.append((colon + 1, at))
    for match in _PARAM.finditer(url):
        if _SECRET_NAME.search(urllib.parse.unquote(match.group(1))):
            following = _NEXT_PARAM.search(url, match.end())
            spans.append((match.end(),
                          following.start() if following else len(url)))
    return sorted((a, b) for a, b in spans if b > a)


def _hide_spans(text, spans):
    merged = []
    for start, end in spans:  # sorted by start
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, done = [], 0
    for start, end in merged:
        out.append(text[done:start])
        out.append(_HIDDEN)
        done = end
    out.append(text[done:])
    return ''.join(out)


def _secret_pattern(secret):
    """A regex matching ``secret`` as written, percent-encoded (any case,
    ``+`` for a space) or escaped as in a repr, character by character."""
    parts = []
    for char in secret:
        forms = {re.escape(char),
                 re.escape(''.join('%%%02x' % b for b in char.encode('utf-8'))),
                 re.escape(repr(char)[1:-1]),
                 re.escape(char.encode('unicode_escape').decode('ascii'))}
        if char == ' ':
            forms.add(r'\+')
        parts.append('(?:%s)' % '|'.join(sorted(forms, key=len, reverse=True)))
    pattern = ''.join(parts)
    if len(secret) < 4:  # a short one only as a word of its own
        pattern = r'(?<![A-Za-z0-9])%s(?![A-Za-z0-9])' % pattern
    return re.compile(pattern, re.I)


def _secrets_of(value):
    """The strings to hide for ``value``: a password itself, or for a URL
    of a scheme this package accepts each part :func:`_url_spans` finds in
    it, as written and decoded."""
    name, sep, _ = value.partition('://')
    if not sep or name.lower() not in _SCHEMES:
        return {value}
    found = set()  # a URL: not itself (redact() shows it redacted)
    for start, end in _url_spans(value):
        found.add(value[start:end])
        found.add(urllib.parse.unquote(value[start:end]))
        found.add(urllib.parse.unquote_plus(value[start:end]))
    return found


def redact(text, secrets=()):
    """``text`` with every secret it may hold replaced by ``***``: the only
    form of a URL, a client description, a repr or an exception text put in
    a log line, an error message or CLI output.

    A text that starts with ``scheme://`` is read as one URL (however
    malformed): its userinfo password, up to the last ``@``, and every query
    parameter named like a password (``password=``, ``sentinel_password=``)
    are hidden. In any other text, every word holding ``://`` or ``@`` is
    read so, and ``name=value`` or ``'name': 'value'`` pairs whose name
    says ``pass``, ``secret``, ``token`` or ``credential`` are hidden too
    (redis-py 6 puts ``password=...`` in a connection's repr).

    :param secrets: passwords (or URLs: their passwords) to hide wherever
                    they appear in ``text``, as written or percent-encoded.
    """
    if not isinstance(text, str):
        text = str(text)
    if isinstance(secrets, str):
        secrets = (secrets,)
    hidden = set()
    for secret in secrets:
        if secret:
            hidden |= _secrets_of(str(secret))
    for secret in sorted((s for s in hidden if s), key=len, reverse=True):
        text = _secret_pattern(secret).sub(_HIDDEN, text)
    if _URL_START.match(text):
        text = _hide_spans(text, _url_spans(text))
    else:
        text = _URL_TOKEN.sub(
            lambda m: _hide_spans(m.group(), _url_spans(m.group())), text)
    return _PAIR.sub(lambda m: m.group(1) + m.group(2) + (
        m.group(3) + _HIDDEN + m.group(3) if m.group(3) else _HIDDEN), text)


def describe(client):
    """How log lines and errors name the Redis server of ``client`` (a
    ``redis.Redis``, or anything with a ``connection_pool``): its address
    and database from the pool's connection options (``redis://host:port/db``,
    ``rediss://...``, ``unix:///path?db=n``, or a Sentinel service), never
    its repr, which may hold the password."""
    pool = getattr(client, 'connection_pool', None)
    kwargs = getattr(pool, 'connection_kwargs', None) or {}
    db = kwargs.get('db', 0)
    service = getattr(pool, 'service_name', None)
    if service is not None:
        return 'redis+sentinel service %s/%s' % (service, db)
    if kwargs.get('path'):
        return 'unix://%s?db=%s' % (kwargs['path'], db)
    if 'host' not in kwargs:
        nodes = getattr(getattr(client, 'nodes_manager', None),
                        'startup_nodes', None)
        if nodes:
            return 'Redis Cluster %s' % ','.join(sorted(nodes))
        return 'a %s client' % type(client).__name__
    connection_class = getattr(pool, 'connection_class', None)
    tls = connection_class is not None and \
        issubclass(connection_class, redis.SSLConnection)
    host = kwargs.get('host', 'localhost')
    return '%s://%s:%s/%s' % ('rediss' if tls else 'redis',
                              '[%s]' % host if ':' in host else host,
                              kwargs.get('port', 6379), db)


def secrets(url=None, options=None, client=None):
    """The passwords a publisher or listener knows of, for :func:`redact`:
    the URL itself (its password found there), ``options``' ``password``
    (and ``sentinel_kwargs``'), and those of ``client``'s pool."""
    found = [url] if isinstance(url, str) else []
    sources = [options or {}]
    pool = getattr(client, 'connection_pool', None)
    sources.append(getattr(pool, 'connection_kwargs', None) or {})
    manager = getattr(pool, 'sentinel_manager', None)
    sources.append(getattr(manager, 'sentinel_kwargs', None) or {})
    sources += [source['sentinel_kwargs'] for source in sources
                if isinstance(source.get('sentinel_kwargs'), dict)]
    for source in sources:
        for name, value in source.items():
            if isinstance(value, str) and value and _SECRET_NAME.search(name):
                found.append(value)
    return tuple(found)


def _check_shape(url):
    """Refuse a URL with an ``@`` after its host (outside a password query
    value): a password with an unescaped ``/``, ``?`` or ``#``, which
    redis-py would read as a host, port or socket path (and look it up in
    the DNS, or quote it in its errors)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise _bad_url(url, exc) from None
    after = url.find('//') + 2 + len(parts.netloc) if '//' in url else 0
    secret_values = [span for span in _url_spans(url) if span[0] > after]
    for at in (i for i in range(after, len(url)) if url[i] == '@'):
        if not any(start <= at < end for start, end in secret_values):
            raise ValueError(
                'invalid Redis URL %s: an @ after its host (%s)'
                % (redact(url), _ESCAPE_HINT))


def _bad_url(url, exc):
    """A ValueError for a URL redis-py or urllib could not parse: redis-py's
    own text may quote a piece of the password (a password with an unescaped
    ``/`` is read as a port), so it is replaced when it does."""
    reason = redact(str(exc), (url,))
    if 'port' in reason.lower():
        reason = 'its port is not a number (%s)' % _ESCAPE_HINT
    return ValueError('invalid Redis URL %s: %s' % (redact(url), reason))


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
    try:
        name = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise _bad_url(url, exc) from None
    try:
        return _SCHEMES[name]
    except KeyError:
        shown = redact(url)
        raise ValueError('unsupported Redis URL scheme %r in %s; use one of %s'
                         % (name if name in shown.lower() else _HIDDEN, shown,
                            ', '.join(s + '://' for s in _SCHEMES))) from None


def _address(address, url):
    if address.endswith(']') or ':' not in address:  # no port
        host, port = address, str(SENTINEL_PORT)
    else:
        host, _, port = address.rpartition(':')
    host = host.strip('[]')
    if not host or not port.isdigit():
        shown = redact(url)
        # only what the redacted URL shows: a password with an unescaped
        # "/" ends the address list inside it
        raise ValueError('bad sentinel address %r in %s; expected host:port'
                         % (address if address in shown else _HIDDEN, shown))
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
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise _bad_url(url, exc) from None
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
    try:
        options = parse_url('redis://?' + parts.query) if parts.query else {}
    except ValueError as exc:
        raise _bad_url(url, exc) from None
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
    _check_shape(url)
    options = dict(options or {})
    sentinel = None
    if kind == _SENTINEL:
        sentinels, service_name, url_options = parse_sentinel_url(url)
        options.update(url_options)
        sentinel = sentinels, service_name
    else:
        url = kind + url[url.index(':'):]  # valkey://, or REDIS://
        connection_class = options.get('connection_class')
        try:
            options.update(parse_url(url))
        except ValueError as exc:
            raise _bad_url(url, exc) from None
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

    def after_fork(self):
        """In a forked child: new locks, and the parent's connections
        forgotten without being closed (their sockets are the parent's)."""
        for name in ('_fork_lock', '_lock'):
            lock = getattr(self, name, None)
            if lock is not None:  # as redis-py made it
                setattr(self, name, threading.RLock()
                        if 'RLock' in type(lock).__name__ else threading.Lock())
        self.reset()

    def make_connection(self):
        connection = super().make_connection()
        internals.register_connect_callback(connection, self._on_connect)
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
    # the URL's ?sentinel_password= (and ?sentinel_username=) are theirs
    for name in ('sentinel_username', 'sentinel_password'):
        if name in options:
            sentinel_kwargs[name[len('sentinel_'):]] = options.pop(name)
    sentinel_kwargs['retry'] = Retry(NoBackoff(), 0)
    _bound(sentinel_kwargs, timeout)
    options.setdefault('connection_class', SentinelManagedSSLConnection
                       if options.pop('ssl', False) else SentinelManagedConnection)
    return SentinelPool(
        service_name=service_name,
        sentinel_manager=Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs,
                                  **manager_options),
        max_connections=max_connections, timeout=timeout, **options)


def check_url(url):
    """Parse ``url`` as the pools will (no I/O).

    :raises ValueError: naming what is wrong, with the URL redacted.
    """
    if not isinstance(url, str):
        raise ValueError('a Redis URL must be a string, got %s'
                         % type(url).__name__)
    _options(url, None, PUBLISH_TIMEOUT, {})


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
    _check_shape(url)
    try:
        parse_url(url)
    except ValueError as exc:
        raise _bad_url(url, exc) from None
    return RedisCluster.from_url(url, max_connections=max_connections, **options)
