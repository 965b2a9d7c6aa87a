"""RedisManager: python-socketio's client manager for a cluster of servers.

Owns this server's room bookkeeping (under one lock), the publisher client and
the listener task, and glues them with the wire protocol: local changes are
applied here, then published; messages from other servers are dispatched by type.
"""
import functools
import json
import logging
import os
import secrets
import threading
import time
import weakref

import socketio
from socketio import packet as sio_packet

from . import connection, envelope, listener, protocol, redis_cluster, socketio_internals
from . import worker as workers_
from .classic import ClassicDialect, new_request
from .cluster_api import PRIVATE_HEADERS, ClusterAPI, handshake
from .exceptions import ProtocolError, PublishError, SioRedisError
from .legacy import LegacyBridge
from .protocol import Broadcast, Ignored, Request, RequestType, Response
from .publisher import Publisher
from .requests import AckCallback, Deadlines, PendingRequests, new_request_id
from .routes import Routes
from .socketio_internals import forward_members
from .sharded import ShardedDialect

default_logger = logging.getLogger('sio_redis_sync')

_GREEN_MODES = {'eventlet': 'eventlet', 'gevent': 'gevent',
                'gevent_uwsgi': 'gevent'}
# How long initialize() waits for the first subscription before going on.
READY_TIMEOUT = 5.0
# Redis's own hard limit for a subscriber's output buffer (32mb): a larger
# message would get the subscriber disconnected anyway.
MAX_MESSAGE_SIZE = 32 * 1024 * 1024
# How long a callback waits for acks from clients on other servers; then it is
# forgotten (python-socketio's call() gives up after 60 s by default).
ACK_TTL = 60.0
# While legacy mirror publishes fail, one error line per this many seconds.
LOG_EVERY = 10.0
#: the values of ``mode``
CLASSIC = 'classic'
SHARDED = 'sharded'


def _ack_ttl(timeout_ms, ack_ttl):
    """How long a remote server's ack request lives here: its ``timeout``
    (milliseconds) if a finite positive number, never more than
    ``ack_ttl`` seconds; ``ack_ttl`` for anything else (NaN, infinities,
    negative, bool, strings)."""
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)):
        return ack_ttl
    try:
        seconds = timeout_ms / 1000
    except OverflowError:  # an int too large for a float
        return ack_ttl
    if not seconds > 0 or seconds != seconds or seconds == float('inf'):
        return ack_ttl
    return min(seconds, ack_ttl)


# what python-socketio's Packet.encode does for a text event, without making
# a new encoder each time
_encode_json = json.JSONEncoder(separators=(',', ':')).encode


def _event_packets(packet_class, namespace, data):
    """The Engine.IO packets of an EVENT, encoded once for every recipient.

    Text events of the default JSON packet class are written directly (the
    same string as ``Packet.encode``, without its per-packet binary scan);
    anything else, binary data included, goes through ``packet_class``.
    """
    if packet_class is sio_packet.Packet and packet_class.json.dumps is json.dumps:
        try:
            text = _encode_json(data)
        except TypeError:  # bytes somewhere: a binary event
            pass
        else:
            prefix = '2' if namespace == '/' else '2%s,' % namespace
            return [socketio_internals.message_packet(prefix + text)]
    encoded = packet_class(sio_packet.EVENT, namespace=namespace, data=data).encode()
    if not isinstance(encoded, list):
        encoded = [encoded]
    return [socketio_internals.message_packet(p) for p in encoded]


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


class RedisManager(ClusterAPI, socketio.Manager):
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
                 standalone or Redis Cluster). Every server of a namespace
                 must use the same mode; :meth:`initialize` refuses sharded
                 mode on Redis < 7 with an error naming the version.
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
                 handshake_headers=None):
        super().__init__()
        if handshake_headers is None:
            self._header_filter = (False, PRIVATE_HEADERS)   # deny-list
        else:
            if isinstance(handshake_headers, str):
                raise ValueError('handshake_headers is an iterable of header '
                                 'names, not a string')
            self._header_filter = (True, frozenset(
                name.lower() for name in handshake_headers))  # allow-list
        if mode == CLASSIC:
            if cluster:
                raise ValueError("a Redis Cluster needs mode='sharded'")
            self._dialect = ClassicDialect(key)
        elif mode == SHARDED:
            if legacy_channel is not None:
                raise ValueError("legacy_channel needs mode='classic': "
                                 "python-socketio's queue is classic Pub/Sub")
            self._dialect = ShardedDialect(key, subscription_mode)
        else:
            raise ValueError("mode must be 'classic' or 'sharded', got %r" % (mode,))
        self.mode = mode
        self.cluster = cluster
        self._routes = Routes(self._dialect)
        self._server_checked = False
        self.url = url
        self.key = key
        self.write_only = write_only
        self.redis_options = dict(redis_options or {})
        self.redis_options['decode_responses'] = False
        self.health_check_interval = health_check_interval
        self.health_check_timeout = health_check_timeout
        self.requests_timeout = requests_timeout
        self.ack_ttl = ack_ttl
        self.max_message_size = max_message_size
        self.logger = logger
        self._log = logger or default_logger
        #: this server's id on the wire (Node's adapter ``uid``); also the
        #: ``host_id`` the Socket.IO Admin UI shows
        self.uid = self.host_id = secrets.token_urlsafe(9)
        after_fork = weakref.WeakMethod(self._after_fork)

        def renew_after_fork():
            # gunicorn --preload, Celery prefork: each child is a server of
            # its own, and a listener of the parent's did not survive the fork
            method = after_fork()
            if method is not None:
                method()
        if hasattr(os, 'register_at_fork'):
            os.register_at_fork(after_in_child=renew_after_fork)
        self._lock = threading.RLock()
        # initialize() and close(), one at a time
        self._lifecycle = threading.RLock()
        self._closed = False  # close() was called, initialize() was not since
        self._mirror_lock = threading.Lock()
        self._mirror_failures = 0
        self._mirror_logged_at = None
        self._worker = workers_.Worker(self._start_task, workers, max_queued,
                                       log=self._log)
        self._publisher = self._new_publisher(
            url, self.redis_options, max_connections=max_connections,
            timeout=publish_timeout, retries=publish_retries, log=self._log,
            sleep=lambda seconds: (self.server.sleep if self.server is not None
                                   else time.sleep)(seconds))
        self._subscriber = None  # the listener's client, made by the listener
        self._listener = None
        self._handlers = {
            Broadcast: self._on_broadcast,
            Request: self._on_request,
            Response: self._on_response,
            Ignored: self._on_ignored,
        }
        self._request_handlers = {
            RequestType.REMOTE_JOIN: self._on_remote_join,
            RequestType.REMOTE_LEAVE: self._on_remote_leave,
            RequestType.REMOTE_DISCONNECT: self._on_remote_disconnect,
            RequestType.BROADCAST: self._on_broadcast_request,
        }
        # answered off the listener thread: they read many sockets or run
        # the application's code
        self._background_requests = {
            RequestType.SOCKETS: self._on_sockets,
            RequestType.ALL_ROOMS: self._on_all_rooms,
            RequestType.REMOTE_FETCH: self._on_fetch_sockets,
            RequestType.SERVER_SIDE_EMIT: self._on_server_side_emit,
        }
        self._pending = PendingRequests()
        self._legacy = None if legacy_channel is None else \
            LegacyBridge(self, legacy_channel, legacy_mirror, self._log)
        self._server_handlers = {}  # (namespace, event) -> handler
        self._handshakes = {}       # (namespace, sid) -> Node-shaped handshake
        self._auth = {}             # (eio_sid, namespace) -> auth, while connecting
        # of the callbacks: keys (sid, ack id)
        self._ack_deadlines = Deadlines(self._ack_alive)
        self._received = 0           # written by the listener task only
        self._dropped_malformed = 0  # idem
        self._last_message = None    # idem (time.monotonic())

    # ------------------------------------------------------------ lifecycle

    def set_server(self, server):
        super().set_server(server)
        # python-socketio keeps no client's auth payload; Node's handshake has
        # it, so note it while the connection is being accepted
        socketio_internals.wrap_handle_connect(server, self._noting_auth)

    def _noting_auth(self, original):
        @functools.wraps(original)
        def handle_connect(eio_sid, namespace, data):
            key = (eio_sid, namespace or '/')
            self._auth[key] = data
            try:
                return original(eio_sid, namespace, data)
            finally:
                self._auth.pop(key, None)
        return handle_connect

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
        self._mirror_lock = threading.Lock()
        self._listener = self._subscriber = None
        self._routes.after_fork()
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
            if self.server is not None:
                self.server.start_background_task(listener_.run)
            else:
                threading.Thread(target=listener_.run, daemon=True).start()
            if not listener_.settled.wait(READY_TIMEOUT) or \
                    not listener_.ready.is_set():
                self._log.warning('not subscribed to Redis yet; other servers '
                                  'cannot reach this one until it is')

    def close(self, timeout=5.0):
        """Stop the listener (within 0.25 s, unless it is connecting to an
        unresponsive Redis: then within ``health_check_timeout``) and the
        worker's tasks, and release every Redis connection.

        Nothing listens again until :meth:`initialize` is called.
        """
        with self._lifecycle:
            self._closed = True
            with self._lock:
                listener_, self._listener = self._listener, None
                self._routes.clear()
            if listener_ is not None:
                listener_.stop()
                listener_.stopped.wait(timeout)
            self._worker.stop(timeout)
            subscriber, self._subscriber = self._subscriber, None
            if subscriber is not None:
                subscriber.connection_pool.disconnect()
            self._publisher.close()

    @property
    def ready(self):
        """True while every subscription of this server is confirmed."""
        return self._listener is not None and self._listener.ready.is_set()

    @property
    def publish_failures(self):
        """Publishes that failed (each one also raised to its caller)."""
        return self._publisher.failures

    def stats(self):
        """Counters and health of this server's Redis side, as a dict:

        - ``published``, ``publish_failures``: publishes that succeeded and
          that raised :class:`~sio_redis_sync.PublishError`;
          ``partial_deliveries``: those that raised
          :class:`~sio_redis_sync.PartialDelivery` (a server was subscribing
          again after an outage);
        - ``received``: messages read from Redis for this server;
          ``dropped_malformed``: those dropped as malformed or too large;
        - ``reconnects``: times the listener reconnected after a loss;
        - ``last_message_age``: seconds since the last message received
          (None before the first);
        - ``subscribed``: every subscription confirmed (see :attr:`ready`);
          ``channels``, ``patterns``: the subscriptions;
        - ``connections_opened``: connections opened to Redis so far,
          publisher pool and listener together (also given apart as
          ``publisher_connections_opened`` and
          ``subscriber_connections_opened``); ``max_connections``: the
          publisher pool's cap;
        - ``pending_acks``: callbacks waiting for a client's ack (of this
          server's clients, for any server); ``pending_requests``: requests
          of this server waiting for other servers' answers or acks;
        - ``tasks_queued``: work from Redis waiting for the worker;
          ``tasks_dropped``: work dropped because the queue was full (see
          ``max_queued``) or the manager closed;
        - ``legacy_mirror_failures``: legacy mirror writes that failed after
          the real publish succeeded (see ``legacy_mirror``).
        """
        with self._lock:
            self._expire_acks(time.monotonic())
            pending_acks = sum(len(acks) - (0 in acks)
                               for acks in self.callbacks.values())
        listener_ = self._listener
        channels, patterns = listener_.subscriptions() if listener_ else ([], [])
        last = self._last_message
        publisher = self._publisher
        subscriber = self._subscriber
        sub_opened = subscriber.connection_pool.connections_opened \
            if subscriber is not None else 0
        pub_opened = publisher.connections_opened or 0
        return {
            'published': publisher.published,
            'publish_failures': publisher.failures,
            'partial_deliveries': publisher.partial_deliveries,
            'received': self._received,
            'dropped_malformed': self._dropped_malformed,
            'reconnects': max(listener_.connections - 1, 0) if listener_ else 0,
            'last_message_age': None if last is None
            else time.monotonic() - last,
            'subscribed': self.ready,
            'channels': channels,
            'patterns': patterns,
            'connections_opened': pub_opened + sub_opened,
            'publisher_connections_opened': pub_opened,
            'subscriber_connections_opened': sub_opened,
            'max_connections': publisher.max_connections,
            'pending_acks': pending_acks,
            'pending_requests': len(self._pending),
            'tasks_queued': self._worker.queued,
            'tasks_dropped': self._worker.dropped,
            'legacy_mirror_failures': self._mirror_failures,
        }

    def _new_publisher(self, url, options, **kwargs):
        if self.cluster:
            return redis_cluster.ClusterPublisher(url, options, **kwargs)
        return Publisher(url, options, sharded=self._dialect.sharded, **kwargs)

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
        with self._lock:
            rooms = list(self.rooms.get(namespace, ()))
        for room in rooms:
            self._room_created(namespace, room)

    def _room_created(self, namespace, room):
        self._routes.add_room(self._listener, namespace, room,
                              room in self.rooms.get(namespace, {}).get(None, {}))

    def _room_deleted(self, namespace, room):
        self._routes.remove_room(self._listener, namespace, room)

    def _request(self, namespace, kind, request_id=None, rooms=(), except_=(),
                 **fields):
        """The dialect's message of a request (or notification) of this server."""
        return self._dialect.encode_request(namespace, self.uid, new_request(
            kind, request_id, rooms, except_, **fields))

    def _send(self, message):
        """Publish an :class:`~sio_redis_sync.protocol.Outgoing` made by the
        dialect (see :meth:`_publish`)."""
        return self._publish(message.channel, message.payload, message.channels)

    def _publish(self, channel, payload, channels=None):
        """PUBLISH within the deadline; a failure is counted, logged with its
        cause, and raised as PublishError. With the namespace's ``channels``,
        a message that missed a server subscribing again after an outage
        raises PartialDelivery."""
        sent = self._publisher.publish(channel, payload, channels)
        if self._legacy is not None:
            try:
                self._legacy.mirror(channel, payload)
            except PublishError as exc:
                # the real publish succeeded: raising would make the caller
                # publish it again
                self._mirror_failed(exc)
        return sent

    def _mirror_failed(self, exc):
        now = time.monotonic()
        with self._mirror_lock:
            self._mirror_failures += 1
            logged = self._mirror_logged_at
            if logged is not None and now - logged < LOG_EVERY:
                return
            self._mirror_logged_at = now
            failures = self._mirror_failures
        self._log.error('legacy mirror write failed (%s); the message itself '
                        'was published (%d mirror failures so far)', exc,
                        failures)


    # ------------------------------------------- room bookkeeping, locked

    def pre_connect(self, eio_sid, namespace):
        with self._lock:
            sid = super().pre_connect(eio_sid, namespace)
        self._subscribe(namespace)
        return sid

    def connect(self, sid, namespace):
        with self._lock:
            sid = super().connect(sid, namespace)
        server = self.server
        if sid is not None and server is not None:
            eio_sid = self.eio_sid_from_sid(sid, namespace)
            environ = getattr(server, 'environ', None)
            self._handshakes[(namespace, sid)] = handshake(
                environ.get(eio_sid) if isinstance(environ, dict) else None,
                self._auth.get((eio_sid, namespace)),
                headers=self._header_filter)
        return sid

    def pre_disconnect(self, sid, namespace):
        with self._lock:
            return super().pre_disconnect(sid, namespace)

    def basic_disconnect(self, sid, namespace, **kwargs):
        self._handshakes.pop((namespace, sid), None)
        with self._lock:
            acks = self.callbacks.get(sid)
            gone = len(acks) - (0 in acks) if acks else 0
            result = super().basic_disconnect(sid, namespace, **kwargs)
            if gone and sid not in self.callbacks:
                self._acks_gone(gone)
            return result

    def _handshake_of(self, sid, namespace):
        found = self._handshakes.get((namespace, sid))
        if found is None:  # connected before this manager kept handshakes
            found = handshake({}, headers=self._header_filter)
        return found

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        with self._lock:
            created = room not in self.rooms.get(namespace, ())
            result = super().basic_enter_room(sid, namespace, room,
                                              eio_sid=eio_sid)
            if created and room in self.rooms.get(namespace, ()):
                self._room_created(namespace, room)
            return result

    def basic_leave_room(self, sid, namespace, room):
        with self._lock:
            result = super().basic_leave_room(sid, namespace, room)
            if room not in self.rooms.get(namespace, ()):
                self._room_deleted(namespace, room)
            return result

    def basic_close_room(self, room, namespace):
        with self._lock:
            result = super().basic_close_room(room, namespace)
            if room not in self.rooms.get(namespace, ()):
                self._room_deleted(namespace, room)
            return result

    def get_namespaces(self):
        """The namespaces with clients on this server (a snapshot)."""
        with self._lock:
            return list(self.rooms)

    def get_participants(self, namespace, room):
        """The ``(sid, eio_sid)`` pairs of ``room`` on this server only."""
        with self._lock:
            participants = list(super().get_participants(namespace, room))
        yield from participants

    def get_rooms(self, sid, namespace):
        with self._lock:
            return super().get_rooms(sid, namespace)

    def _select(self, namespace, rooms, except_):
        """Local sockets targeted by ``rooms``/``except_`` (Node's rules):
        ``{sid: eio_sid}``, a snapshot taken under the lock."""
        with self._lock:
            ns = self.rooms.get(namespace)
            if not ns:
                return {}
            if rooms:
                targets = {}
                for room in rooms:
                    members = ns.get(room)
                    if members:
                        targets.update(forward_members(members))
            else:
                targets = dict(forward_members(ns.get(None, {})))
            for room in except_:
                for sid in ns.get(room, ()):
                    targets.pop(sid, None)
        return targets

    def _is_local(self, sid, namespace):
        return self.is_connected(sid, namespace) or \
            self.is_pre_connected(sid, namespace)

    def _all_local_sids(self, namespace, rooms):
        """True if ``rooms`` name only sockets of this server (sids are
        unique in the cluster, so nobody else needs the message)."""
        return bool(rooms) and all(
            isinstance(room, str) and self.is_connected(room, namespace)
            for room in rooms)

    # ------------------------------------------------ python-socketio API

    def emit(self, event, data, namespace=None, room=None, skip_sid=None,
             callback=None, to=None, **kwargs):
        """Emit to one client, a room, several rooms or a whole namespace of
        the cluster. Same parameters as :meth:`socketio.Server.emit`.

        Delivers to this server's clients first, then publishes for the
        others. With a ``callback``, every client's ack reaches it, wherever
        the client is, with every value the client acked (as for a local
        client; Node servers only send the first); a callback that expects
        one ack (a single target not on this server) is dropped after it,
        others after ``ack_ttl`` seconds.

        With a ``callback``, the first call starts the listener if the server
        did not yet. During an outage (the listener is reconnecting) the call
        does not wait for it: local clients get the event, then Redis's
        refusal raises :class:`~sio_redis_sync.PublishError`; acks that other
        servers send before the listener is subscribed again are lost.

        :raises TypeError: if ``data`` cannot be sent (checked before anything
                           is delivered).
        :raises sio_redis_sync.PublishError: if Redis refused the message (this
                                             server's clients have it).
        :raises sio_redis_sync.SioRedisError: with a ``callback``, after
                                               :meth:`close` (until
                                               :meth:`initialize`).
        """
        namespace = namespace or '/'
        rooms = protocol.unique_rooms(protocol.as_rooms(to or room))
        skip = protocol.as_rooms(skip_sid)
        data = [event] + protocol.as_args(data)
        targets = self._select(namespace, rooms, skip)
        if kwargs.get('ignore_queue') or self._all_local_sids(namespace, rooms):
            self._deliver(namespace, data, targets, callback)
            return
        if callback is None:
            message = self._dialect.encode_broadcast(namespace, self.uid, data, rooms,
                                                     skip)
        else:
            self._listen_for_responses(namespace)
            request_id = new_request_id()
            single = len(rooms) == 1 and not targets
            flags = {'timeout': int(self.ack_ttl * 1000)}
            if single:
                flags['expectSingleResponse'] = True
            message = self._request(namespace, RequestType.BROADCAST, request_id,
                                    rooms, skip, flags=flags, data=data)
            self._pending.add(request_id,
                              AckCallback(callback, single, self._submit),
                              self.ack_ttl)
        self._deliver(namespace, data, targets, callback)
        try:
            self._send(message)
        except PublishError:
            if callback is not None:
                self._pending.discard(request_id)
            raise

    def _listen_for_responses(self, namespace):
        """Make sure answers from other servers can reach this manager.

        The first time (the server did not start the listener yet) it is
        started, as python-socketio's first connection would. A namespace
        subscribed just now is waited for (up to :data:`READY_TIMEOUT`)
        only if the listener was subscribed a moment before (Redis answers
        the subscription in a round trip); while it is reconnecting nothing
        is waited for: the publish that follows tells the caller whether
        Redis is there (:class:`~sio_redis_sync.PublishError` if not).

        :raises sio_redis_sync.SioRedisError: after :meth:`close`, until
                                               :meth:`initialize` is called
                                               again (no listener is
                                               restarted behind the user's
                                               back).
        """
        if self.write_only:
            raise RuntimeError('a write_only RedisManager never hears acks or '
                               'answers: emit without a callback, or use a '
                               'listening manager')
        listener_ = self._listener
        if listener_ is None:
            with self._lifecycle:
                if self._closed:
                    raise SioRedisError(
                        'this RedisManager is closed: call initialize() to '
                        'listen again before asking other servers')
                if self._listener is None:
                    self.initialize()
                listener_ = self._listener
            if listener_ is None:
                raise SioRedisError('this RedisManager is not listening')
        was_ready = listener_.ready.is_set()
        self._subscribe(namespace)
        if was_ready and not listener_.ready.is_set():
            listener_.ready.wait(READY_TIMEOUT)

    def _deliver(self, namespace, data, targets, callback=None, ttl=None):
        """Send an event to the local sockets ``targets`` ({sid: eio_sid}).

        With a ``callback``, each client gets its own ack id, kept ``ttl``
        seconds (default ``ack_ttl``); returns ``{sid: ack id}``.
        """
        if not targets:
            return {}
        server = self.server
        if callback is not None:
            ack_ids = {}
            for sid, eio_sid in targets.items():
                ack_ids[sid] = self._generate_ack_id(sid, callback, ttl)
                socketio_internals.send_packet(server, eio_sid, server.packet_class(
                    sio_packet.EVENT, namespace=namespace, data=data,
                    id=ack_ids[sid]))
            return ack_ids
        packets = _event_packets(server.packet_class, namespace, data)
        send = socketio_internals.eio_packet_sender(server)
        if len(packets) == 1:
            pkt = packets[0]
            for eio_sid in targets.values():
                send(eio_sid, pkt)
        else:
            for eio_sid in targets.values():
                for pkt in packets:
                    send(eio_sid, pkt)
        return {}

    def _generate_ack_id(self, sid, callback, ttl=None):
        """An ack id for ``callback``, forgotten after ``ttl`` seconds
        (python-socketio keeps unanswered ones until the client leaves)."""
        now = time.monotonic()
        with self._lock:
            self._expire_acks(now)
            ack_id = super()._generate_ack_id(sid, callback)
            self._ack_deadlines.add(now + (self.ack_ttl if ttl is None else ttl),
                                    (sid, ack_id))
        return ack_id

    def _ack_alive(self, key):
        sid, ack_id = key
        return ack_id in self.callbacks.get(sid, ())

    def _acks_gone(self, count):
        """``count`` callbacks left before their deadline (answered,
        forgotten, or their client left): see :class:`Deadlines`."""
        self._ack_deadlines.forgotten(count)

    def _expire_acks(self, now):
        for sid, ack_id in self._ack_deadlines.pop_expired(now):
            self.callbacks[sid].pop(ack_id, None)

    def _forget_ack(self, sid, ack_id):
        # python-socketio's id counter (key 0) stays: a late ack must never
        # meet a new callback under a reused id
        if self.callbacks.get(sid, {}).pop(ack_id, None) is not None:
            self._acks_gone(1)

    def _forget_acks(self, ack_ids):
        """Drop the callbacks of ``{sid: ack id}`` (their request is over)."""
        with self._lock:
            for sid, ack_id in ack_ids.items():
                self._forget_ack(sid, ack_id)

    def trigger_callback(self, sid, id, data):
        with self._lock:
            self._expire_acks(time.monotonic())
            callback = self.callbacks.get(sid, {}).pop(id, None)
            if callback is not None:
                self._acks_gone(1)
        if callback is None:
            self._log.warning('Unknown callback received, ignoring.')
            return
        callback(*data)

    def enter_room(self, sid, namespace, room, eio_sid=None):
        """Put ``sid`` (on any server of the cluster) in ``room``."""
        if self._is_local(sid, namespace):
            return self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._send(self._request(namespace, RequestType.REMOTE_JOIN, rooms=[sid],
                                 rooms_arg=[room]))

    def leave_room(self, sid, namespace, room):
        """Take ``sid`` (on any server of the cluster) out of ``room``."""
        if self._is_local(sid, namespace):
            return self.basic_leave_room(sid, namespace, room)
        self._send(self._request(namespace, RequestType.REMOTE_LEAVE, rooms=[sid],
                                 rooms_arg=[room]))

    def close_room(self, room, namespace):
        """Empty ``room`` on every server of the cluster."""
        self.basic_close_room(room, namespace)
        self._send(self._request(namespace, RequestType.REMOTE_LEAVE, rooms=[room],
                                 rooms_arg=[room]))

    def can_disconnect(self, sid, namespace):
        if self._is_local(sid, namespace):
            return self.is_connected(sid, namespace)
        self._publish_disconnect(sid, namespace)
        return False

    def disconnect(self, sid, namespace=None, **kwargs):
        """Disconnect ``sid`` wherever it is connected."""
        namespace = namespace or '/'
        if kwargs.get('ignore_queue'):
            return self.basic_disconnect(sid, namespace)
        if self._is_local(sid, namespace) and self.server is not None:
            return self.server.disconnect(sid, namespace, ignore_queue=True)
        self._publish_disconnect(sid, namespace)

    def _publish_disconnect(self, sid, namespace, close=False):
        self._send(self._request(namespace, RequestType.REMOTE_DISCONNECT, rooms=[sid],
                                 close=close))

    # ---------------------------------------------- messages from Redis

    def _on_message(self, channel, pattern, data):
        """Every message the listener reads: one decode (the dialect's),
        one dispatch by the kind of message."""
        self._received += 1
        self._last_message = time.monotonic()
        legacy = self._legacy
        if legacy is not None and channel == legacy.channel_bytes:
            return self._guarded(channel, data, legacy.on_message, None, channel, data)
        namespace = self._routes.namespace_of(channel, pattern)
        if namespace is None:
            self._log.debug('ignoring a message on unknown channel %r', channel)
            return
        room = self._dialect.channel_room(namespace, channel)
        if room is not None and not self._has_room(namespace, room):
            return  # single-room broadcast for a room not hosted here
        self._guarded(channel, data, self._dispatch, namespace, channel, data)

    def _guarded(self, channel, data, handler, *args):
        """``handler(*args)``, dropping a too large or malformed message."""
        if self.max_message_size is not None and \
                len(data) > self.max_message_size:
            self._dropped_malformed += 1
            self._log.warning('dropped a message of %d bytes on %r: larger '
                              'than max_message_size (%d)', len(data), channel,
                              self.max_message_size)
            return
        try:
            handler(*args)
        except ProtocolError as exc:
            self._dropped_malformed += 1
            self._log.warning('dropped a malformed message on %r: %s',
                              channel, exc)

    def _dispatch(self, namespace, channel, data):
        message = self._dialect.decode(namespace, channel, data)
        if message.uid == self.uid:
            return  # this server's own
        self._handlers[type(message)](namespace, message)

    def _on_ignored(self, namespace, message):
        self._log.debug('ignoring %s', message.reason)

    def _on_broadcast(self, namespace, message):
        self._deliver_remote(namespace, message.data,
                             self._select(namespace, message.rooms, message.except_))

    def _deliver_remote(self, namespace, data, targets, callback=None,
                        ttl=None):
        """:meth:`_deliver` of an event from Redis: data that cannot be
        encoded for a client (a bytes map key, say) is a malformed message.

        :raises ProtocolError: then, before anything is delivered.
        """
        if not targets:
            return {}
        try:
            if callback is not None:  # _deliver encodes per client: check first
                _event_packets(self.server.packet_class, namespace, data)
            return self._deliver(namespace, data, targets, callback, ttl)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ProtocolError('event data cannot be sent to a client (%s: %s)'
                                % (type(exc).__name__, exc)) from None

    def _has_room(self, namespace, room):
        ns = self.rooms.get(namespace, {})
        if room in ns:
            return True
        number = protocol.numeric_room(room)  # Node looks these up as numbers
        return number is not None and number in ns

    def _on_request(self, namespace, request):
        if request.request_id in self._pending:
            return  # this server's own: it acted or answered already
        handler = self._request_handlers.get(request.type)
        if handler is not None:
            handler(namespace, request)
        else:
            self._submit(self._answer_request,
                         self._background_requests[request.type], namespace,
                         request)

    def _on_response(self, namespace, response):
        # unknown ids are other servers' requests, or expired ones
        self._pending.feed(response.request_id, response.body)

    def _answer_request(self, handler, namespace, request):
        # on the worker
        try:
            handler(namespace, request)
        except PublishError:
            pass  # logged and counted by _publish; the requester times out

    def _send_quietly(self, message):
        """Publish on the worker, for another server: a failure is logged
        and counted by the publisher; that server times out."""
        try:
            self._send(message)
        except PublishError:
            pass

    def _on_broadcast_request(self, namespace, request):
        """BROADCAST (7) from another server: deliver with a callback per
        client, count them, then send each ack back as it comes."""
        targets = self._select(namespace, request.rooms, request.except_)
        # deliver first: a count that cannot be published must not cost the
        # local clients their event; the publish is the worker's
        self._deliver_remote(
            namespace, request.packet['data'], targets,
            functools.partial(self._send_ack, namespace, request),
            ttl=_ack_ttl(request.flags.get('timeout'), self.ack_ttl))
        self._submit(self._send_quietly, self._dialect.encode_answer(
            namespace, self.uid, request, RequestType.BROADCAST_CLIENT_COUNT,
            len(targets)))

    def _send_ack(self, namespace, request, *args):
        # a local client acked another server's broadcast: every value
        # travels (Node's peers read the first)
        self._submit(self._send_quietly, self._dialect.encode_answer(
            namespace, self.uid, request, RequestType.BROADCAST_ACK, list(args)))

    def _answer_legacy(self, namespace, request):
        if request.request_id is not None:
            self._submit(self._send_quietly, self._dialect.encode_answer(
                namespace, self.uid, request, request.type, None))

    def _on_remote_join(self, namespace, request):
        self._apply_to_rooms(namespace, request, self.basic_enter_room)

    def _on_remote_leave(self, namespace, request):
        self._apply_to_rooms(namespace, request, self.basic_leave_room)

    def _apply_to_rooms(self, namespace, request, apply):
        """REMOTE_JOIN/LEAVE: ``apply(sid, namespace, room)`` to the selected
        local sockets, or (legacy form) to one sid, answering the requester."""
        if request.sid is not None:
            with self._lock:
                local = self._is_local(request.sid, namespace)
                if local:
                    apply(request.sid, namespace, request.room)
            if local:
                self._answer_legacy(namespace, request)
            return
        self._apply_locally(namespace, request.rooms, request.except_,
                            request.rooms_arg, apply)

    def _apply_locally(self, namespace, selection, skip, rooms, apply):
        """``apply(sid, namespace, room)`` for each of ``rooms`` and each local
        socket selected by ``selection``/``skip``, all under the lock: a
        socket that leaves meanwhile is neither missed nor brought back."""
        with self._lock:
            for sid in self._select(namespace, selection, skip):
                for room in rooms:
                    apply(sid, namespace, room)

    def _on_remote_disconnect(self, namespace, request):
        if request.sid is not None:
            targets = {}
            if self._is_local(request.sid, namespace):
                targets[request.sid] = self.eio_sid_from_sid(request.sid,
                                                             namespace)
                self._answer_legacy(namespace, request)
        else:
            targets = self._select(namespace, request.rooms, request.except_)
        if targets and self.server is not None:
            # the application's disconnect handlers run on the worker, so a
            # slow one cannot stall the listener
            self._submit(self._disconnect_local, namespace, targets,
                         request.close)

    def _disconnect_local(self, namespace, targets, close):
        for sid, eio_sid in targets.items():
            self.server.disconnect(sid, namespace, ignore_queue=True)
            if close:
                self.server.eio.disconnect(eio_sid)
