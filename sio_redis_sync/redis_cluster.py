"""The Redis Cluster I/O of sharded mode: the publisher routed by slot, one
subscriber connection per master, and the Emitter's answers per master.

Owns, on a cluster, one subscriber connection per master (each owned by one
Listener task) plus the slot map that tells which master a channel belongs
to; moves channels when the map changes. Also the check that a server can do
sharded Pub/Sub. Every connection to a cluster node carries the URL's
credentials and TLS. (The sharded dialect itself is sio_redis_sync.sharded.)
"""
import functools
import logging
import os
import threading
import time
import urllib.parse

import redis
import redis.crc
from redis.exceptions import (AskError, ClusterDownError, ClusterError,
                              MovedError, RedisClusterException,
                              SlotNotCoveredError, TryAgainError)

from . import connection
from .exceptions import PublishError, SioRedisError
from .listener import (BACKOFF_MAX, HEALTH_CHECK_INTERVAL, HEALTH_CHECK_TIMEOUT,
                       POLL_INTERVAL, Listener)
from .publisher import Publisher, PublisherClosed, _NotSent
from .answers import PUBLISH_ERRORS, Answers, shardnumsub

logger = logging.getLogger(__name__)
#: the first Redis version with sharded Pub/Sub
MIN_VERSION = (7, 0)
# what a cluster answers while a failover or a slot migration is going on:
# the command was not executed, so it is sent again within the deadline
_CLUSTER_RETRY = (redis.ConnectionError, ClusterDownError, SlotNotCoveredError,
                  MovedError, AskError, TryAgainError, ClusterError,
                  RedisClusterException, OSError)
# how often the slot map is read again while a channel is not subscribed
REFRESH_INTERVAL = 0.5


def check_server(client, cluster):
    """Refuse a Redis that cannot do sharded Pub/Sub, or a cluster taken for a
    standalone server (and the reverse), with an error saying what to do.

    :raises sio_redis_sync.SioRedisError: if the server does not fit.
    :raises sio_redis_sync.PublishError: if it cannot be asked.
    """
    try:
        info = client.info('server')
        cluster_info = client.info('cluster')
    except PUBLISH_ERRORS as exc:
        raise PublishError('INFO', exc) from exc
    version = info.get('redis_version', '0')
    if isinstance(version, bytes):
        version = version.decode()
    numbers = tuple(int(part) for part in str(version).split('.')[:2]
                    if part.isdigit())
    if numbers < MIN_VERSION:
        raise SioRedisError(
            'sharded Pub/Sub needs Redis >= 7.0; this server is Redis %s: use '
            "mode='classic' or upgrade Redis" % version)
    enabled = bool(int(cluster_info.get('cluster_enabled', 0) or 0))
    if enabled and not cluster:
        raise SioRedisError('this Redis is a Redis Cluster: pass cluster=True')
    if cluster and not enabled:
        raise SioRedisError('cluster=True but this Redis is not a cluster '
                            '(cluster_enabled:0)')


class ClusterPublisher(Publisher):
    """SPUBLISH to a Redis Cluster (``redis.cluster.RedisCluster``), routed
    by the channel's slot, within the deadline.

    During a failover or a slot migration (connection refused, MOVED, ASK,
    TRYAGAIN, CLUSTERDOWN) the slot map is read again and the publish sent
    again until the deadline, whatever ``retries`` says; a publish whose
    connection dropped after the command was written may then be delivered
    twice (Pub/Sub keeps no ids to tell). A timeout raises at once. The
    cluster client is made at the first publish (no I/O in the constructor).
    """
    def __init__(self, url, options=None, max_connections=connection.MAX_CONNECTIONS,
                 timeout=connection.PUBLISH_TIMEOUT,
                 retries=connection.PUBLISH_RETRIES, log=None, sleep=time.sleep):
        self._cluster_url = cluster_url(url)  # refuses what no cluster is reached by
        # no pool of the base class's (url None): the RedisCluster is made at
        # the first publish; retried until the deadline, whatever ``retries``
        super().__init__(timeout=timeout, retries=None, log=log, sleep=sleep,
                         sharded=True)
        self.url = url
        self.where = connection.redact(url)
        self.options = options
        self._max_connections = max_connections
        self._cluster = None
        self._cluster_lock = threading.Lock()
        self._secrets = connection.secrets(url, options)

    @property
    def client(self):
        """The ``RedisCluster`` (made on first use)."""
        with self._cluster_lock:
            if self._cluster is None:
                options = dict(self.options or {})
                # each master's pool makes a publish wait for a connection
                # (redis-py's default one raises at once when all are busy),
                # within the deadline (a partial: redis-py 5.0 drops a
                # ``timeout`` given with the options)
                options.setdefault('connection_pool_class', functools.partial(
                    connection.CountingPool, timeout=self.timeout))
                self._cluster = connection.cluster_client(
                    self._cluster_url, options, self.timeout,
                    self._max_connections)
            return self._cluster

    def numsub(self, channel):
        if self._closed:
            raise PublishError(channel, PublisherClosed())
        try:
            client = self.client
            node = client.get_node_from_key(channel)
        except _CLUSTER_RETRY as exc:
            raise PublishError(channel, exc) from exc
        return shardnumsub(client, channel, target_nodes=node)

    def _send_once(self, command):
        # the cluster client sends it to the master of its key's slot
        # (SPUBLISH's channel, XADD's stream)
        try:
            return self.client.execute_command(*command)
        except _CLUSTER_RETRY as exc:
            raise _NotSent(exc) from exc

    def publish_many(self, messages):
        """Publish each ``(channel, payload, channels)`` in order (one
        SPUBLISH each: their slots may live on different masters)."""
        return [self.send(message) for message in messages]

    @property
    def max_connections(self):
        return self._max_connections

    @property
    def connections_opened(self):
        return None

    def close(self):
        self._shut()
        with self._cluster_lock:
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()

    def after_fork(self):
        """In a forked child: new locks, and the parent's cluster client
        forgotten without closing its sockets (the next publish makes one)."""
        super().after_fork()
        self._cluster_lock = threading.Lock()
        self._cluster = None


def new_publisher(url_or_client, options, sharded, cluster, **kwargs):
    """The publisher of a mode: a :class:`ClusterPublisher` on a Redis
    Cluster, else a :class:`~sio_redis_sync.publisher.Publisher` (SPUBLISH
    when ``sharded``) on a pool of its own for a URL, or on the client given
    (whose pool it uses as it is: ``max_connections`` does not apply)."""
    if cluster:
        return ClusterPublisher(url_or_client, options, **kwargs)
    if isinstance(url_or_client, str):
        return Publisher(url_or_client, options, sharded=sharded, **kwargs)
    kwargs.pop('max_connections', None)
    return Publisher(client=url_or_client, sharded=sharded, **kwargs)


def cluster_url(url):
    """``url`` under the scheme redis-py knows it by (``valkey://`` is
    ``redis://``, ``valkeys://`` is ``rediss://``).

    :raises ValueError: for a scheme a Redis Cluster cannot be reached by
                        (``unix://``, Sentinel).
    """
    kind = connection.scheme(url)
    if kind not in ('redis', 'rediss'):
        raise ValueError('a Redis Cluster is reached by redis:// or rediss:// '
                         '(or valkey://, valkeys://), not %s' % connection.redact(url))
    return kind + url[url.index(':'):]


def _node_url(url, host, port):
    """``url`` (scheme, credentials, options) pointing at ``host:port``."""
    parts = urllib.parse.urlsplit(cluster_url(url))
    userinfo = parts.netloc.rpartition('@')[0]
    netloc = '%s%s:%d' % (userinfo + '@' if userinfo else '', host, port)
    return urllib.parse.urlunsplit((parts.scheme, netloc, '/0', parts.query, ''))


def node_client(url, options, host, port, timeout):
    """A client of the node at ``host:port`` of the Redis Cluster that ``url``
    names, as every connection of this package to a cluster node is made:
    ``options`` (``redis_options``), then what the URL says (user, password,
    TLS and query options, which win as in redis-py's ``from_url``), one
    attempt per command, every socket wait bounded by ``timeout``."""
    options = connection.cluster_options(url, options)
    for name in ('socket_timeout', 'socket_connect_timeout'):
        if options.get(name) is None or options[name] > timeout:
            options[name] = timeout
    return redis.Redis.from_url(_node_url(url, host, port), **options)


def stream_node_client(cluster, url, options, timeout, key, refresh):
    """A client of the master that holds the stream ``key`` (streams mode on
    a Redis Cluster), for one stream reader.

    :param cluster: a ``RedisCluster`` that knows the slot map.
    :param refresh: read the slot map again first (the reader is
                    reconnecting: its master may have failed over).
    """
    if refresh:
        cluster.nodes_manager.initialize()
    node = cluster.get_node_from_key(key)
    return node_client(url, options, node.host, node.port, timeout)


def check_url_node(url, options, timeout):
    """:func:`check_server` on the cluster node ``url`` names."""
    address = urllib.parse.urlsplit(url)
    client = node_client(url, options, address.hostname, address.port or 6379, timeout)
    try:
        check_server(client, True)
    finally:
        client.close()


class ClusterListener:
    """SSUBSCRIBEs channels on the masters of a Redis Cluster that own them.

    One :class:`~sio_redis_sync.listener.Listener` per master (each with its
    own connection and task: health checks and backoff as in classic mode).
    This object's own loop reads the slot map (``CLUSTER SLOTS``) from any
    reachable node and gives each channel to the listener of its master; it
    reads the map again while a channel is not confirmed (a master died and
    its replica is being promoted), when Redis ends a subscription (the slot
    moved), and every few seconds, and moves the channels that changed owner.

    Same interface as :class:`~sio_redis_sync.listener.Listener` (channels
    only, no patterns).

    :param spawn: ``spawn(function)`` runs a listener task.
    """

    def __init__(self, url, options, callback, spawn, log=None,
                 health_check_interval=HEALTH_CHECK_INTERVAL,
                 health_check_timeout=HEALTH_CHECK_TIMEOUT, check_every=5.0):
        self._url = url
        self.options = options
        self._secrets = connection.secrets(url, options)
        self._callback = callback
        # the masters' listeners hand messages over one at a time: the
        # manager's handlers expect a single listener thread
        self._callback_lock = threading.Lock()
        self._spawn = spawn
        self._log = log or logger
        self._health_interval = health_check_interval
        self._health_timeout = health_check_timeout
        self._check_every = check_every
        self._lock = threading.Lock()
        self._channels = set()     # wanted (str)
        self._owner = {}           # channel -> (host, port) it is given to
        self._nodes = {}           # (host, port) -> Listener
        self._known = [self._address(url)]  # nodes to read the slot map from
        self._slots = []           # [(first, last, (host, port))]
        self._refresh = threading.Event()
        self._last_refresh = 0.0
        self._reconnects_of_gone = 0
        self._stop = threading.Event()
        self.stopped = threading.Event()
        self.ready = threading.Event()
        self.settled = threading.Event()

    @staticmethod
    def _address(url):
        parts = urllib.parse.urlsplit(url)
        return parts.hostname or '127.0.0.1', parts.port or 6379

    @property
    def connections(self):
        """1 + how many times a master's connection was opened again."""
        with self._lock:
            nodes = list(self._nodes.values())
        return 1 + self._reconnects_of_gone + sum(
            max(node.connections - 1, 0) for node in nodes)

    def subscriptions(self):
        with self._lock:
            return sorted(self._channels), []

    def subscribe(self, channels=(), patterns=()):
        """Add channel subscriptions (str); ``patterns`` are refused."""
        if patterns:
            raise ValueError('sharded Pub/Sub has no pattern subscriptions')
        with self._lock:
            new = set(channels) - self._channels
            self._channels |= new
        if new:
            self.ready.clear()
            self._assign()

    def unsubscribe(self, channels=()):
        with self._lock:
            gone = set(channels) & self._channels
            self._channels -= gone
            owners = {}
            for channel in gone:
                owner = self._owner.pop(channel, None)
                if owner in self._nodes:
                    owners.setdefault(owner, []).append(channel)
            for owner, names in owners.items():
                self._nodes[owner].unsubscribe(names)

    def stop(self):
        self._stop.set()

    def _deliver(self, channel, pattern, data):
        with self._callback_lock:
            self._callback(channel, pattern, data)

    def _dropped(self, channel):
        # a master ended a subscription: its slot moved
        self._refresh.set()

    def run(self):
        """The loop: run it as a background task; returns after :meth:`stop`."""
        delay = POLL_INTERVAL
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                wanted = self._refresh.is_set() or not self._all_ready() or \
                    now - self._last_refresh >= self._check_every
                if wanted and now - self._last_refresh >= REFRESH_INTERVAL:
                    self._refresh.clear()
                    self._last_refresh = now
                    try:
                        self._read_slots()
                    except (redis.RedisError, OSError) as exc:
                        self._log.warning('cannot read the slot map of the Redis '
                                          'Cluster (%s: %s); retrying',
                                          type(exc).__name__, connection.redact(
                                              str(exc), self._secrets))
                        self.settled.set()
                        self._stop.wait(min(delay, BACKOFF_MAX))
                        continue
                    self._assign()
                if self._all_ready():
                    self.ready.set()
                    self.settled.set()
                else:
                    self.ready.clear()
                self._stop.wait(POLL_INTERVAL)
        finally:
            with self._lock:
                nodes, self._nodes = list(self._nodes.values()), {}
            for node in nodes:
                node.stop()
            for node in nodes:
                node.stopped.wait(self._health_timeout + 1)
            self.stopped.set()

    def _all_ready(self):
        with self._lock:
            if not self._slots or set(self._owner) != self._channels:
                return False
            used = set(self._owner.values())
            return all(self._nodes[node].ready.is_set() for node in used)

    def _read_slots(self):
        """Read ``CLUSTER SLOTS`` from the first node of those known that
        answers; remember every node it names for next time."""
        error = None
        for host, port in list(self._known):
            client = node_client(self._url, self.options, host, port,
                                 self._health_timeout)
            try:
                entries = client.execute_command('CLUSTER SLOTS')
            except (redis.RedisError, OSError) as exc:
                error = exc
                continue
            finally:
                client.close()
            slots, known = [], list(self._known)
            for entry in entries:
                for node in entry[2:]:
                    address = (node[0].decode() if isinstance(node[0], bytes)
                               else node[0]) or host, int(node[1])
                    if address not in known:
                        known.append(address)
                master = entry[2]
                master_host = master[0].decode() if isinstance(master[0], bytes) \
                    else master[0]
                slots.append((int(entry[0]), int(entry[1]),
                              (master_host or host, int(master[1]))))
            with self._lock:
                self._slots = slots
                # the node that answered first next time
                known.remove((host, port))
                self._known = [(host, port)] + known
            return
        raise error or redis.ConnectionError('no node of the cluster known')

    def _master_of(self, channel):
        slot = redis.crc.key_slot(channel.encode('utf-8'))
        for first, last, master in self._slots:
            if first <= slot <= last:
                return master
        return None

    def _assign(self):
        """Give every wanted channel to the listener of its master now."""
        moves = {}   # (old owner, new owner) -> [channels]
        with self._lock:
            if not self._slots:
                return
            for channel in self._channels:
                master = self._master_of(channel)
                old = self._owner.get(channel)
                if master is not None and master != old:
                    moves.setdefault((old, master), []).append(channel)
                    self._owner[channel] = master
            for (old, new), channels in moves.items():
                if old in self._nodes:
                    self._nodes[old].unsubscribe(channels)
                self._node(new).subscribe(channels)
            used = set(self._owner.values())
            idle = [address for address in self._nodes if address not in used]
            stopped = [self._nodes.pop(address) for address in idle]
        for node in stopped:
            self._reconnects_of_gone += max(node.connections - 1, 0)
            node.stop()

    def _node(self, address):
        """The listener of the master at ``address`` (started if new)."""
        node = self._nodes.get(address)
        if node is None:
            url = _node_url(self._url, *address)
            node = Listener(
                lambda: connection.subscriber_client(
                    url, self.options, self._health_timeout).pubsub(),
                self._deliver, self._log, where=connection.redact(url),
                secrets=self._secrets,
                health_check_interval=self._health_interval,
                health_check_timeout=self._health_timeout, sharded=True,
                on_dropped=self._dropped)
            self._nodes[address] = node
            self._spawn(node.run)
        return node


class ClusterAnswers:
    """The answers to the requests of an Emitter on a Redis Cluster: one
    :class:`~sio_redis_sync.answers.Answers` (one connection) per master
    owning the slot of a response channel, made as every node connection
    (the URL's credentials and TLS, ``redis_options``).

    :param publisher: the emitter's :class:`ClusterPublisher` (its slot map).
    :param timeout: bounds every socket wait of those connections.
    :param dialect: the emitter's (sharded) dialect, which reads the answers.
    """

    def __init__(self, publisher, timeout, dialect, log=None):
        self._publisher = publisher
        self._dialect = dialect
        self._timeout = timeout
        self._log = log
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._nodes = {}  # (host, port) -> Answers

    def for_channel(self, channel):
        """The answers of the master owning ``channel``'s slot now.

        :raises sio_redis_sync.PublishError: if the slot map cannot be read.
        """
        try:
            node = self._publisher.client.get_node_from_key(channel)
        except _CLUSTER_RETRY as exc:
            raise PublishError(channel, exc) from exc
        address = node.host, node.port
        with self._locked():
            answers = self._nodes.get(address)
            if answers is None:
                answers = self._nodes[address] = Answers(
                    functools.partial(self._open, _node_url(self._publisher.url, *address)),
                    self._dialect, log=self._log)
        return answers

    def _locked(self):
        if self._pid != os.getpid():  # a forked child: a lock of its own
            self._pid, self._lock = os.getpid(), threading.Lock()
        return self._lock

    def _open(self, url):
        return connection.subscriber_client(url, self._publisher.options,
                                            self._timeout).pubsub()

    @property
    def dropped_malformed(self):
        with self._locked():
            return sum(answers.dropped_malformed for answers in self._nodes.values())

    def close(self):
        """Close every connection (each opens again at its next request)."""
        with self._locked():
            nodes = list(self._nodes.values())
        for answers in nodes:
            answers.close()
