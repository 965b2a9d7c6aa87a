"""RedisManager: python-socketio's client manager for a cluster of servers.

Owns the lifecycle (publisher, listener task, worker, fork) and the
python-socketio API: local changes are applied first (LocalClients), then
published in the dialect of its mode; what other servers publish is
RemoteMessages'; Node's cluster API is ClusterAPI's.
"""
import logging
import os
import secrets
import threading
import time
import weakref

from . import connection, envelope, listener, protocol, redis_cluster, streams
from . import worker as workers_
from .cluster_api import PRIVATE_HEADERS, READY_TIMEOUT, ClusterAPI
from .handlers import RemoteMessages, _ack_ttl  # noqa: F401 (tests read _ack_ttl here)
from .legacy import LegacyBridge
from .health import Health
from .local import LocalClients
from .requests import PendingRequests
from .routes import Routes
from .state_recovery import StateRecovery
from .stream_reader import StreamReaders
from .modes import new_dialect

# the documented default (module loggers are its children, by __name__)
default_logger = logging.getLogger('sio_redis_sync')

_GREEN_MODES = {'eventlet': 'eventlet', 'gevent': 'gevent',
                'gevent_uwsgi': 'gevent'}
# Redis's own hard limit for a subscriber's output buffer (32mb): a larger
# message would get the subscriber disconnected anyway.
MAX_MESSAGE_SIZE = 32 * 1024 * 1024
# How long a callback waits for acks from clients on other servers; then it is
# forgotten (python-socketio's call() gives up after 60 s by default).
ACK_TTL = 60.0
#: the values of ``mode``
CLASSIC = 'classic'
SHARDED = 'sharded'
STREAMS = 'streams'


def _check_monkey_patched(async_mode):
    """Refuse eventlet/gevent unless socket, threading and time are patched:
    a blocking read on a real socket, or a wait on a real lock or event,
    would freeze every green thread of the process."""
    library = _GREEN_MODES.get(async_mode)
    if library == 'eventlet':
        import eventlet.patcher
        patched = all(eventlet.patcher.is_monkey_patched(module)
                      for module in ('socket', 'thread', 'time'))
    elif library == 'gevent':
        import gevent.monkey
        patched = all(gevent.monkey.is_module_patched(module)
                      for module in ('socket', 'threading', 'time'))
    else:
        return
    if not patched:
        raise RuntimeError(
            'sio_redis_sync.RedisManager under %s needs a monkey patched '
            'standard library: call %s at the very top of your program'
            % (async_mode, 'eventlet.monkey_patch()' if library == 'eventlet'
               else 'gevent.monkey.patch_all()'))


def _header_filter(handshake_headers):
    """``(allow, names)``: which handshake headers other servers see."""
    if handshake_headers is None:
        return (False, PRIVATE_HEADERS)   # deny-list
    if isinstance(handshake_headers, str):
        raise ValueError('handshake_headers is an iterable of header '
                         'names, not a string')
    return (True, frozenset(name.lower() for name in handshake_headers))


def _dialect(mode, key, subscription_mode, cluster, legacy_channel, stream_options):
    """The dialect of ``mode``, refusing the options it cannot have."""
    if mode == CLASSIC and cluster:
        raise ValueError("a Redis Cluster needs mode='sharded'")
    if mode == STREAMS and cluster and not stream_options.get('use_sharded_pubsub'):
        raise ValueError("on a Redis Cluster, mode='streams' needs use_sharded_pubsub=True "
                         "(its requests and answers go through the masters of their slots)")
    if mode != CLASSIC and legacy_channel is not None:
        raise ValueError("legacy_channel needs mode='classic': "
                         "python-socketio's queue is classic Pub/Sub")
    read_count = stream_options.pop('read_count')
    if read_count is not None and mode != STREAMS:
        raise ValueError("read_count needs mode='streams'")
    if read_count is not None and (not isinstance(read_count, int) or read_count < 1):
        raise ValueError('read_count must be an integer >= 1, got %r' % (read_count,))
    return new_dialect(mode, key, subscription_mode, **stream_options)


def _renew_after_fork(after_fork):
    """Call the weak method ``after_fork`` in a forked child (gunicorn
    --preload, Celery prefork: each child is a server of its own, and a
    listener of the parent's did not survive the fork)."""
    def renew():
        method = after_fork()
        if method is not None:
            method()
    if hasattr(os, 'register_at_fork'):
        os.register_at_fork(after_in_child=renew)


class RedisManager(Health, ClusterAPI, StateRecovery, RemoteMessages, LocalClients):
    """A client manager that joins servers into one Socket.IO cluster through
    Redis, speaking the wire protocol of Node's ``@socket.io/redis-adapter``.

    Use it as ``socketio.Server(client_manager=RedisManager(url))`` or
    ``SocketIO(app, client_manager=RedisManager(url))``. Node servers with
    the Redis adapter, ``@socket.io/redis-emitter`` and
    :class:`sio_redis_sync.Emitter` on the same Redis and key are part of the
    same cluster.

    Beyond python-socketio's API it has Node's cluster API:
    :meth:`fetch_sockets`, :meth:`all_rooms`, :meth:`server_count`,
    :meth:`server_side_emit` / :meth:`server_side_call` / :meth:`on`,
    :meth:`sockets_join`, :meth:`sockets_leave`, :meth:`disconnect_sockets`
    and :meth:`emit_with_ack`.

    :param url: the Redis URL: ``redis://``, ``rediss://`` (TLS:
                ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``,
                ``ssl_cert_reqs`` as query options or in ``redis_options``),
                ``unix://``,
                ``redis+sentinel://[:password@]host[:port][,...]/db/name``
                (python-socketio's format; the master is asked of the sentinels at every connect;
                ``sentinel_kwargs``, ``min_other_sentinels`` and
                ``force_master_ip`` go in ``redis_options``), and the same
                with ``valkey`` in place of ``redis``; with ``cluster=True``,
                any node of the Redis Cluster.
    :param key: the channel prefix; Node's ``key`` option (default
                ``socket.io``), or ``channelPrefix`` in sharded mode.
    :param mode: ``'classic'`` (default: Node's ``createAdapter``,
                 PUBLISH/PSUBSCRIBE, any Redis) or ``'sharded'`` (Node's
                 ``createShardedAdapter``: SPUBLISH/SSUBSCRIBE, Redis >= 7,
                 standalone or Redis Cluster) or ``'streams'`` (Node's
                 ``@socket.io/redis-streams-adapter``: broadcasts and room
                 changes go through a Redis stream that each server reads
                 from its last id, so a server that reconnects misses
                 nothing still in the stream; Redis >= 5, not on a Redis
                 Cluster yet). Every server of a namespace must use the same
                 mode; :meth:`initialize` refuses sharded mode on Redis < 7
                 with an error naming the version.
    :param stream_name: streams mode: the stream's name (Node's
                        ``streamName``, default ``socket.io``).
    :param stream_count: streams mode: how many streams the namespaces are
                         spread over (Node's ``streamCount``, default 1).
    :param max_len: streams mode: each stream's approximate cap (``XADD
                    MAXLEN ~``; Node's ``maxLen``, default 10000): what a
                    server can catch up on after an outage.
    :param read_count: streams mode: entries per ``XREAD`` at most (Node's
                       ``readCount``, default 100).
    :param use_sharded_pubsub: streams mode: requests and answers through
                               sharded Pub/Sub (SPUBLISH, Redis >= 7).
    :param subscription_mode: sharded mode only: ``'dynamic'`` (default),
                              ``'dynamic-private'`` or ``'static'``, Node's
                              ``subscriptionMode`` (the same on every
                              server): which rooms get a channel of their
                              own, subscribed while this server hosts them.
    :param cluster: sharded mode only: ``True`` if ``url`` is a node of a
                    Redis Cluster (publishes are routed by slot, and the
                    listener subscribes on each master that owns a
                    channel). :meth:`initialize` refuses a cluster given
                    without it, and the reverse.
    :param write_only: if ``True``, never listen: the manager only publishes,
                       and works without a server (an emitter).
    :param redis_options: extra keyword arguments for ``redis.Redis.from_url``
                          (copied, never modified; ``decode_responses`` is
                          always forced off).
    :param requests_timeout: seconds to wait for other servers' answers;
                             Node's ``requestsTimeout``.
    :param ack_ttl: seconds a python-socketio ``emit(..., callback=...)``
                    waits for acks; then the callback is forgotten, for
                    clients of this server as for those of others.
    :param logger: a logger; default ``logging.getLogger('sio_redis_sync')``.
    :param max_message_size: messages from Redis larger than this many bytes
                             are logged and dropped undecoded; None for no
                             limit.
    :param max_connections: the cap of the publisher pool shared by every
                            thread or greenlet of this server (default 10);
                            the listener has one connection of its own.
    :param publish_timeout: the most one publish may take, in seconds, every
                            retry included (default 5); then
                            :class:`~sio_redis_sync.PublishError` is raised
                            (after local delivery).
    :param publish_retries: how many times a publish whose connection failed
                            before the message was sent is tried again
                            (default 2).
    :param health_check_interval: seconds of silence on the subscriber
                                  connection after which it is checked with
                                  a PING (default 1).
    :param health_check_timeout: seconds Redis has to answer that PING, and
                                 the bound of every other wait of the
                                 subscriber (default 2); then the listener
                                 reconnects and subscribes again.
    :param legacy_channel: also listen to python-socketio's own queue channel
                           (``'flask-socketio'`` or ``'socketio'``; JSON,
                           python-socketio >= 5.14) and apply its messages to
                           this server's clients: the migration bridge of
                           :mod:`sio_redis_sync.legacy`.
    :param legacy_mirror: with ``legacy_channel``, also write this server's
                          emits and room changes there, for the clients of
                          python-socketio servers still running (default).
                          A mirror write that fails after the real publish
                          succeeded is logged and counted
                          (``legacy_mirror_failures`` in :meth:`stats`), not
                          raised: the caller would retry and duplicate.
    :param workers: how many tasks (threads, or green threads under
                    eventlet/gevent, started with the server's
                    ``start_background_task``) run the work that messages
                    from Redis start: answers to other servers' requests,
                    server-side event handlers, remote disconnects, acks and
                    ack callbacks, client counts (default 4). The listener
                    itself only reads, decodes and delivers to local clients.
    :param max_queued: how many pieces of such work may wait (default 1000);
                       more are dropped, counted (``tasks_dropped`` in
                       :meth:`stats`) and logged once per 10 s.
    :param handshake_headers: which HTTP headers of a client's handshake other
                              servers see (``fetch_sockets()`` answers, and
                              this server's own results): None (default) for
                              every header but ``cookie``, ``authorization``
                              and ``proxy-authorization``; or an iterable of
                              header names (any case) to share exactly those
                              (``()`` for none). The rest of the handshake
                              (address, url, query, the client's ``auth``
                              payload) and ``data`` (the python-socketio
                              session, if it is JSON) are shared as with
                              Node: anyone who can publish on the channels
                              can read them.
    """
    name = 'sio_redis_sync'

    def __init__(self, url='redis://localhost:6379/0', key=protocol.DEFAULT_KEY,
                 write_only=False, redis_options=None, requests_timeout=5.0,
                 logger=None, max_message_size=MAX_MESSAGE_SIZE,
                 ack_ttl=ACK_TTL,
                 max_connections=connection.MAX_CONNECTIONS,
                 publish_timeout=connection.PUBLISH_TIMEOUT,
                 publish_retries=connection.PUBLISH_RETRIES,
                 health_check_interval=listener.HEALTH_CHECK_INTERVAL,
                 health_check_timeout=listener.HEALTH_CHECK_TIMEOUT,
                 mode=CLASSIC, subscription_mode=envelope.DYNAMIC,
                 cluster=False, legacy_channel=None, legacy_mirror=True,
                 workers=workers_.WORKERS, max_queued=workers_.MAX_QUEUED,
                 handshake_headers=None, stream_name=None, stream_count=None,
                 max_len=None, read_count=None, use_sharded_pubsub=None,
                 connection_state_recovery=None):
        header_filter = _header_filter(handshake_headers)
        self._dialect = _dialect(mode, key, subscription_mode, cluster, legacy_channel, dict(
            stream_name=stream_name, stream_count=stream_count, max_len=max_len,
            use_sharded_pubsub=use_sharded_pubsub, read_count=read_count))
        #: streams mode: entries read per XREAD at most (Node's ``readCount``)
        self.read_count = read_count or streams.DEFAULT_READ_COUNT
        self.logger = logger
        self._log = logger or default_logger
        super().__init__(header_filter, ack_ttl, self._log)
        self.mode, self.cluster, self.url, self.key = mode, cluster, url, key
        self.write_only = write_only
        self.redis_options = dict(redis_options or {})
        self.redis_options['decode_responses'] = False
        self.health_check_interval = health_check_interval
        self.health_check_timeout = health_check_timeout
        self.requests_timeout = requests_timeout
        self.max_message_size = max_message_size
        #: this server's id on the wire (Node's adapter ``uid``); also the
        #: ``host_id`` the Socket.IO Admin UI shows
        self.uid = self.host_id = secrets.token_urlsafe(9)
        _renew_after_fork(weakref.WeakMethod(self._after_fork))
        # initialize() and close(), one at a time
        self._lifecycle = threading.RLock()
        self._closed = False  # close() was called, initialize() was not since
        self._server_checked = False
        self._worker = workers_.Worker(self._start_task, workers, max_queued,
                                       log=self._log)
        self._publisher = redis_cluster.new_publisher(
            url, self.redis_options, self._dialect.sharded, cluster,
            max_connections=max_connections,
            timeout=publish_timeout, retries=publish_retries, log=self._log,
            sleep=lambda seconds: (self.server.sleep if self.server is not None
                                   else time.sleep)(seconds))
        # the listener, its client (made by the listener), the stream readers
        self._listener = self._subscriber = self._readers = None
        self._routes = Routes(self._dialect)
        self._pending = PendingRequests()
        self._server_handlers = {}  # (namespace, event) -> handler
        self._init_handlers()
        self._init_recovery(connection_state_recovery, mode == STREAMS)
        self._legacy = None if legacy_channel is None else LegacyBridge(
            self, legacy_channel, legacy_mirror, self._log,
            handle=self._handle, deliver_event=self._deliver_event,
            publish=self._publisher.publish)

    # ------------------------------------------------------------ lifecycle

    def _spawn(self, target, *args):
        """Run ``target(*args)`` in a task of its own (a thread or a green
        thread): for what the application starts (a server-side call's
        callback) and the listeners of a Redis Cluster's nodes. Work started
        by a message from Redis goes to :meth:`_submit` instead."""
        if self.server is not None:
            self.server.start_background_task(target, *args)
        else:
            threading.Thread(target=target, args=args, daemon=True).start()

    def _start_task(self, target):
        # how the worker starts its tasks: the server's kind of task, or a
        # thread when there is no server (yet)
        if self.server is not None:
            self.server.start_background_task(target)
        else:
            workers_.thread_starter(target)

    def _submit(self, function, *args):
        """Run ``function(*args)`` on this manager's bounded worker (work
        started by a message from Redis); False if it was dropped."""
        return self._worker.submit(function, *args)

    def _after_fork(self):
        """In a forked child (gunicorn --preload, Celery prefork): a server
        of its own. No thread of the parent survived, so every lock is new
        (one a parent thread held would stay held), the listener and the
        worker are gone (the child's initialize() starts its own), and what
        the parent waited for is not the child's."""
        self.uid = self.host_id = secrets.token_urlsafe(9)
        self._lock = threading.RLock()
        self._lifecycle = threading.RLock()
        self._listener = self._subscriber = self._readers = None
        if self._legacy is not None:
            self._legacy.after_fork()
        self._routes.after_fork()
        self._recovery_after_fork()
        self._worker.after_fork()
        self._pending.after_fork()
        publisher = self._publisher
        publisher_after_fork = getattr(publisher, 'after_fork', None)
        if publisher_after_fork is not None:
            publisher_after_fork()
        delivery = getattr(publisher, 'delivery', None)
        if delivery is not None:
            delivery.after_fork()

    def initialize(self):
        """Start listening (called by the server on its first connection;
        call it again after :meth:`close` to listen again).

        Waits up to a few seconds for the subscriptions to be confirmed so
        that nothing published right after the first connection is missed.
        """
        with self._lifecycle:
            super().initialize()
            if not self._server_checked:
                self._check_server()
                self._server_checked = True
            self._closed = False
            self._publisher.reopen()  # close() refused every later publish
            if self.write_only or self._listener is not None:
                return
            if self.server is not None:
                _check_monkey_patched(self.server.async_mode)
            self._worker.enable()  # its tasks start with the first work
            listener_ = self._new_listener()
            with self._lock:
                self._listener = listener_
            for namespace in self._known_namespaces():
                self._subscribe(namespace)
            if self._legacy is not None:
                listener_.subscribe(channels=[self._legacy.channel])
            self._spawn(listener_.run)
            if self.mode == STREAMS:
                self._readers = self._new_readers()
                self._readers.read(self._dialect.stream_keys(self._known_namespaces()))
                self._start_recovery()
            if not listener_.settled.wait(READY_TIMEOUT) or \
                    not listener_.ready.is_set() or not self._streams_ready():
                self._log.warning('not subscribed to Redis yet; other servers '
                                  'cannot reach this one until it is')

    def close(self, timeout=5.0):
        """Stop the listener (within 0.25 s, unless it is connecting to an
        unresponsive Redis: then within ``health_check_timeout``) and the
        worker's tasks, and release every Redis connection.

        Nothing listens again until :meth:`initialize` is called.
        """
        with self._lifecycle:
            self._save_all_sessions()  # connection state recovery: as Node at shutdown
            self._stop_recovery()
            self._closed = True
            with self._lock:
                listener_, self._listener = self._listener, None
                readers, self._readers = self._readers, None
                self._routes.clear()
            if readers is not None:
                readers.stop(timeout)
            if listener_ is not None:
                listener_.stop()
                listener_.stopped.wait(timeout)
            self._worker.stop(timeout)
            subscriber, self._subscriber = self._subscriber, None
            if subscriber is not None:
                subscriber.connection_pool.disconnect()
            self._publisher.close()

    def _new_readers(self):
        """The stream readers of streams mode, each with a connection of its
        own, reading entries into :meth:`_on_entry`."""
        if self.cluster:
            connected = set()   # keys read before: reconnecting, read the slot map again

            def connect(key):
                client = redis_cluster.stream_node_client(
                    self._publisher.client, self.url, self.redis_options,
                    self.health_check_timeout, key, key in connected)
                connected.add(key)
                return client
        else:
            def connect(key):
                return connection.subscriber_client(self.url, self.redis_options,
                                                    self.health_check_timeout)
        return StreamReaders(connect, self._spawn, callback=self._on_entry,
                             read_count=self.read_count,
                             health_check_timeout=self.health_check_timeout, log=self._log,
                             where=connection.redact(self.url),
                             secrets=connection.secrets(self.url, self.redis_options))

    def _new_listener(self):
        health = dict(health_check_interval=self.health_check_interval,
                      health_check_timeout=self.health_check_timeout)
        if self.cluster:
            return redis_cluster.ClusterListener(
                self.url, self.redis_options, self._on_message, self._spawn,
                self._log, **health)
        return listener.Listener(self._new_pubsub, self._on_message, self._log,
                                 where=connection.redact(self.url),
                                 secrets=connection.secrets(self.url, self.redis_options),
                                 sharded=self._dialect.sharded, **health)

    def _check_server(self):
        """Sharded mode: refuse Redis < 7, or a cluster that was not declared
        (and the reverse), naming what is wrong. Classic works on any Redis."""
        if not self._dialect.sharded:
            return
        if not self.cluster:
            redis_cluster.check_server(self._publisher.client, False)
            return
        redis_cluster.check_url_node(self.url, self.redis_options, self._publisher.timeout)
        # read the slot map now, while the node of the URL answers: the
        # cluster client then knows every node, and a publish made after that
        # node died finds the others
        self._publisher.client  # noqa: B018

    def _known_namespaces(self):
        namespaces = {'/'}
        server = self.server
        if server is not None:
            namespaces.update(server.handlers)
            namespaces.update(server.namespace_handlers)
            if isinstance(server.namespaces, (list, tuple, set)):
                namespaces.update(server.namespaces)
        namespaces.update(self.rooms)
        namespaces.discard('*')
        return namespaces

    def _new_pubsub(self):
        # called by the listener task only
        if self._subscriber is None:
            self._subscriber = connection.subscriber_client(
                self.url, self.redis_options, self.health_check_timeout)
        return self._subscriber.pubsub()

    def _subscribe(self, namespace):
        """Listen to ``namespace`` (what that means is the dialect's), and to
        the channels of its rooms hosted here (sharded dynamic modes)."""
        listener_ = self._listener
        if listener_ is None or not self._routes.add_namespace(listener_, namespace,
                                                               self.uid):
            return
        readers = self._readers
        if readers is not None:  # a namespace of a stream not read yet (Node's quirk)
            readers.read([self._dialect.stream_key(namespace)])
        with self._lock:
            rooms = list(self.rooms.get(namespace, ()))
        for room in rooms:
            self._room_created(namespace, room)

    def _room_created(self, namespace, room):
        self._routes.add_room(self._listener, namespace, room,
                              room in self.rooms.get(namespace, {}).get(None, {}))

    def _room_deleted(self, namespace, room):
        self._routes.remove_room(self._listener, namespace, room)

