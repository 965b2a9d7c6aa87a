"""Emitter: publish to a Socket.IO cluster from any process, with no thread.

Owns one bounded publisher pool, the one response subscription its requests
share, and immutable broadcast operators; every emit is one PUBLISH,
byte-identical to what ``@socket.io/redis-emitter`` 5.1.0 sends for the same
call, and a failed publish raises within a deadline.
"""
import functools
import secrets

from . import connection, envelope, protocol
from .answers import Answers
from .cluster_api import RemoteSocket
from .modes import new_dialect
from .protocol import RequestType
from .redis_cluster import ClusterAnswers, new_publisher
from .requests import Acks, Replies

__all__ = ['Emitter', 'Batch', 'BroadcastOperator', 'Targets']
# how long the Emitter waits for answers by default (Node's requestsTimeout)
REQUESTS_TIMEOUT = 5.0
# @socket.io/redis-emitter refuses these: the servers reserve them
RESERVED_EVENTS = frozenset(('connect', 'connect_error', 'disconnect',
                             'disconnecting', 'newListener', 'removeListener'))


def _subscriber(url, options, timeout):
    """A Pub/Sub of the response subscription, on a connection of its own."""
    return connection.subscriber_client(url, options, timeout).pubsub()


def _check_event(event):
    if event in RESERVED_EVENTS:
        raise ValueError('"%s" is a reserved event name' % event)


def _namespace(nsp):
    return nsp if nsp.startswith('/') else '/' + nsp


class BroadcastOperator:
    """A target selection (namespace, rooms, except, flags) in the cluster.

    Immutable: :meth:`to`, :meth:`except_` and the flag helpers return a new
    operator, so one can be kept and shared between threads. Every call is
    one message of its emitter's dialect (classic or sharded).
    """
    __slots__ = ('_emitter', '_nsp', '_rooms', '_except', '_flags')

    def __init__(self, emitter, nsp, rooms=(), except_=(), flags=None):
        self._emitter = emitter
        self._nsp = nsp
        self._rooms = rooms
        self._except = except_
        self._flags = flags or {}

    def _but(self, **changes):
        fields = {'rooms': self._rooms, 'except_': self._except,
                  'flags': self._flags, **changes}
        return BroadcastOperator(self._emitter, self._nsp, **fields)

    def to(self, room):
        """Target ``room`` too (a room name, a sid, or a list of them)."""
        return self._but(rooms=self._rooms + protocol.as_rooms(room))

    in_ = to

    def except_(self, room):
        """Leave out the members of ``room`` (a room, a sid or a list)."""
        return self._but(except_=self._except + protocol.as_rooms(room))

    @property
    def volatile(self):
        """The event may be dropped for clients that are not ready for it."""
        return self._but(flags={**self._flags, 'volatile': True})

    def compress(self, compress=True):
        """Set the ``compress`` flag of the event."""
        return self._but(flags={**self._flags, 'compress': bool(compress)})

    def emit(self, event, *args):
        """Send ``event`` with ``args`` to the selected sockets.

        :return: how many Redis subscribers (servers) received the message.
        :raises ValueError: for an event name the servers reserve.
        :raises TypeError: if an argument cannot be encoded.
        :raises sio_redis_sync.PublishError: if Redis refused the message.
        """
        _check_event(event)
        return self._emitter.send(self._emitter.dialect.encode_broadcast(
            self._nsp, None, [event, *args], self._rooms, self._except, self._flags))

    def _notify(self, kind, **fields):
        return self._emitter.send(self._emitter.dialect.encode_request(
            self._nsp, None, protocol.new_request(kind, None, self._rooms, self._except, **fields)))

    def sockets_join(self, rooms):
        """Make the selected sockets join ``rooms``, on every server."""
        return self._notify(RequestType.REMOTE_JOIN, rooms_arg=protocol.as_rooms(rooms))

    def sockets_leave(self, rooms):
        """Make the selected sockets leave ``rooms``, on every server."""
        return self._notify(RequestType.REMOTE_LEAVE, rooms_arg=protocol.as_rooms(rooms))

    def disconnect_sockets(self, close=False):
        """Disconnect the selected sockets; ``close`` closes their connection."""
        return self._notify(RequestType.REMOTE_DISCONNECT, close=close)

    def server_side_emit(self, event, *args):
        """Send ``event`` to the servers of this namespace (Node's
        ``serverSideEmit``, without acknowledgement)."""
        _check_event(event)
        return self._emitter.send(self._emitter.dialect.encode_request(
            self._nsp, None, protocol.new_request(RequestType.SERVER_SIDE_EMIT,
                                                  data=[event, *args])))

    def _ask(self, entry, kind, timeout, rooms=(), except_=(), **fields):
        return self._emitter.ask(self._nsp, entry, lambda uid, request_id: protocol.new_request(
            kind, request_id, rooms, except_, **fields), timeout)

    def emit_with_ack(self, event, *args, timeout=REQUESTS_TIMEOUT):
        """Send ``event`` to the selected sockets and wait for every
        client's ack (what Node's emitter cannot do).

        :return: one ack per client (its first argument).
        :raises sio_redis_sync.RequestTimeout: if an ack is missing after
                                                ``timeout`` seconds; it holds
                                                the acks that did arrive.
        """
        _check_event(event)
        return self._ask(lambda servers: Acks('emit_with_ack(%r)' % event, servers),
                         RequestType.BROADCAST, timeout, self._rooms, self._except,
                         flags={**self._flags, 'timeout': int(timeout * 1000)},
                         data=[event, *args])

    def fetch_sockets(self, timeout=REQUESTS_TIMEOUT):
        """The selected sockets of the cluster, as
        :class:`~sio_redis_sync.RemoteSocket` (their ``emit``, ``join``,
        ``leave`` and ``disconnect`` publish through this emitter).

        :raises sio_redis_sync.RequestTimeout: if a server did not answer in
                                                time.
        """
        answers = self._ask(lambda servers: Replies('fetch_sockets', 'sockets', servers),
                            RequestType.REMOTE_FETCH, timeout, self._rooms, self._except)
        return [RemoteSocket(self._emitter, self._nsp, details)
                for answer in answers if isinstance(answer, list)
                for details in answer
                if isinstance(details, dict) and 'id' in details]

    def all_rooms(self, timeout=REQUESTS_TIMEOUT):
        """Every room of the namespace on every server, sids included.

        :raises sio_redis_sync.SioRedisError: in sharded mode (Node's sharded
                                               adapter has no such request).
        """
        self._emitter.dialect.check_request(RequestType.ALL_ROOMS)
        answers = self._ask(lambda servers: Replies('all_rooms', 'rooms', servers),
                            RequestType.ALL_ROOMS, timeout)
        return {room for answer in answers if isinstance(answer, list)
                for room in answer if isinstance(room, (str, int))}

    def server_side_call(self, event, *args, timeout=REQUESTS_TIMEOUT):
        """Send ``event`` to every server of the namespace and wait for each
        one's answer (Node's ``serverSideEmitWithAck``).

        :raises sio_redis_sync.RequestTimeout: if a server did not answer in
                                                time.
        """
        _check_event(event)
        return self._ask(
            lambda servers: Replies('server_side_call(%r)' % event, 'data', servers),
            RequestType.SERVER_SIDE_EMIT, timeout, data=[event, *args])

    def server_count(self):
        """How many servers serve this namespace (PUBSUB NUMSUB, or
        SHARDNUMSUB in sharded mode)."""
        return self._emitter.server_count(self._nsp)


class Targets:
    """What an :class:`Emitter` and a :class:`Batch` both offer: operators
    and the calls that select sockets, over the subclass's ``dialect``,
    ``send(outgoing)``, ``ask(nsp, entry, make_request, timeout)`` and
    ``server_count(namespace)``."""

    def of(self, namespace):
        """An operator for ``namespace`` (a missing leading ``/`` is added)."""
        return BroadcastOperator(self, _namespace(namespace))

    def to(self, room):
        """An operator for the sockets of ``room`` in the ``/`` namespace."""
        return self._root.to(room)

    in_ = to

    def except_(self, room):
        """An operator for every socket of ``/`` but those of ``room``."""
        return self._root.except_(room)

    @property
    def volatile(self):
        return self._root.volatile

    def compress(self, compress=True):
        return self._root.compress(compress)

    def emit(self, event, data=None, to=None, room=None, skip_sid=None,
             namespace=None):
        """Emit like :meth:`socketio.Server.emit`: ``data`` is one argument,
        a tuple is several, None is none.

        :param to: the recipient: a sid, a room or a list of them; all
                   clients of the namespace if omitted.
        :param room: an alias of ``to``.
        :param skip_sid: a sid or room, or a list of them, to leave out.
        :param namespace: default ``/``.
        :return: how many Redis subscribers (servers) received the message.
        :raises TypeError: if ``data`` cannot be encoded.
        :raises sio_redis_sync.PublishError: if Redis refused the message.
        """
        _check_event(event)
        return self.send(self.dialect.encode_broadcast(
            _namespace(namespace or '/'), None, [event, *protocol.as_args(data)],
            protocol.as_rooms(to or room), protocol.as_rooms(skip_sid)))

    def _select(self, room, skip, namespace):
        return self.of(namespace).to(room).except_(skip)

    def sockets_join(self, rooms, room=None, skip=None, namespace='/'):
        """Make the sockets of ``room`` (all if None) but those of ``skip``
        join ``rooms``, on every server (like ``to(room).sockets_join()``)."""
        return self._select(room, skip, namespace).sockets_join(rooms)

    def sockets_leave(self, rooms, room=None, skip=None, namespace='/'):
        """Make the selected sockets leave ``rooms``, on every server."""
        return self._select(room, skip, namespace).sockets_leave(rooms)

    def disconnect_sockets(self, close=False, room=None, skip=None,
                           namespace='/'):
        """Disconnect the selected sockets (every socket of ``namespace`` if
        ``room`` is None)."""
        return self._select(room, skip, namespace).disconnect_sockets(close)

    def server_side_emit(self, event, *args, namespace='/'):
        """Send ``event`` to the servers of ``namespace`` (Node's
        ``serverSideEmit``)."""
        return self.of(namespace).server_side_emit(event, *args)

    def server_side_call(self, event, *args, namespace='/',
                         timeout=REQUESTS_TIMEOUT):
        """Send ``event`` to every server and wait for each one's answer."""
        return self.of(namespace).server_side_call(event, *args,
                                                   timeout=timeout)

    def emit_with_ack(self, event, data=None, to=None, room=None,
                      skip_sid=None, namespace=None, timeout=REQUESTS_TIMEOUT):
        """Like :meth:`emit`, and wait for every targeted client's ack.

        :return: one ack per client (its first argument).
        :raises sio_redis_sync.RequestTimeout: if an ack is missing after
                                                ``timeout`` seconds.
        """
        operator = self._select(to or room, skip_sid, namespace or '/')
        return operator.emit_with_ack(event, *protocol.as_args(data), timeout=timeout)

    def fetch_sockets(self, room=None, namespace='/', skip=None,
                      timeout=REQUESTS_TIMEOUT):
        """The sockets of the cluster in ``room`` (all if None) but those in
        ``skip``, as :class:`~sio_redis_sync.RemoteSocket`."""
        return self._select(room, skip, namespace).fetch_sockets(timeout)

    def all_rooms(self, namespace='/', timeout=REQUESTS_TIMEOUT):
        """Every room of ``namespace`` on every server, sids included."""
        return self.of(namespace).all_rooms(timeout)


class Emitter(Targets):
    """Emit to a Socket.IO cluster (Python or Node servers) through Redis.

    Thread-free and safe to share: each call is one PUBLISH through a
    connection pool. Requests (:meth:`fetch_sockets`, :meth:`server_count`,
    ...) from any number of threads share one response subscription, opened
    at the first request on a connection of its own (one per master on a
    Redis Cluster; on the client's pool for a client given); it is
    subscribed only while a request waits, and the threads waiting take turns
    reading it. Use one per process (a module-level object) in Flask
    views, Celery tasks and scripts::

        emitter = Emitter('redis://localhost:6379/0')
        emitter.emit('progress', {'pct': 50}, to=user_room)
        emitter.of('/admin').to('ops').except_('bots').emit('alert', 'disk')

    :param url_or_client: a Redis URL, or a ``redis.Redis`` client to use
                          (then its own pool and timeouts apply). URLs are
                          those of :class:`~sio_redis_sync.RedisManager`:
                          ``redis://``, ``rediss://``, ``unix://``,
                          ``redis+sentinel://`` and their ``valkey`` forms.
    :param key: the channel prefix; the servers' ``key`` (default
                ``socket.io``).
    :param redis_options: keyword arguments for ``redis.Redis.from_url``
                          (copied; ``decode_responses`` is always off).
    :param max_connections: the cap of the connection pool shared by every
                            thread or greenlet using this emitter (default
                            10); a publish that finds them all busy waits
                            for one, within ``publish_timeout``. Requests
                            take a connection of the pool only to count the
                            servers and to publish; their answers arrive on
                            the one connection of the response subscription.
    :param publish_timeout: the most one emit may take, in seconds (default
                            5): waiting for a connection, connecting,
                            retries and Redis's reply. Then it raises
                            :class:`~sio_redis_sync.PublishError`; it never
                            blocks forever.
    :param publish_retries: how many times an emit whose connection failed
                            before the message was sent is tried again
                            (default 2, with short pauses). A message sent
                            but not acknowledged is not resent, as it may
                            have been delivered.
    :param mode: ``'classic'`` (default; what ``@socket.io/redis-emitter``
                 sends) or ``'sharded'``: for servers on Node's
                 ``createShardedAdapter`` (or RedisManager in sharded mode),
                 which Node's emitter cannot reach. Then every call is one
                 SPUBLISH of an envelope carrying ``nsp`` (Redis >= 7), and
                 :meth:`all_rooms` raises (no such request exists there).
    :param subscription_mode: sharded mode: the servers' ``subscriptionMode``
                              (decides which single-room emits go to the
                              room's own channel, as the servers do).
    :param cluster: sharded mode: ``url_or_client`` is a node of a Redis
                    Cluster (a URL is needed then).
    :param stream_name: ``mode='streams'``, for servers in streams mode (Node's
                        ``@socket.io/redis-streams-adapter``): broadcasts and
                        room changes are XADDed to the stream of their
                        namespace (``emit`` returns the entry's id), requests
                        published as in sharded mode; ``stream_name``,
                        ``stream_count``, ``max_len`` and
                        ``use_sharded_pubsub`` must be the servers'.
    :param stream_count: streams mode: see ``stream_name``.
    :param max_len: streams mode: see ``stream_name``.
    :param use_sharded_pubsub: streams mode: see ``stream_name``.
    :param read_count: accepted in streams mode, so that one dict of options
                       serves the servers and the emitter; an emitter reads
                       no stream.
    """

    def __init__(self, url_or_client='redis://localhost:6379/0',
                 key=protocol.DEFAULT_KEY, redis_options=None,
                 max_connections=connection.MAX_CONNECTIONS,
                 publish_timeout=connection.PUBLISH_TIMEOUT,
                 publish_retries=connection.PUBLISH_RETRIES, mode='classic',
                 subscription_mode=envelope.DYNAMIC, cluster=False, stream_name=None,
                 stream_count=None, max_len=None, use_sharded_pubsub=None, read_count=None):
        if read_count is not None and mode != 'streams':
            raise ValueError("read_count needs mode='streams'")
        #: what every call becomes on the wire
        self.dialect = new_dialect(mode, key, subscription_mode, emitter=True,
                                   stream_name=stream_name, stream_count=stream_count,
                                   max_len=max_len, use_sharded_pubsub=use_sharded_pubsub)
        envelope.check_mode(subscription_mode)  # classic mode too, as always
        self.mode = mode
        self.subscription_mode = subscription_mode
        if cluster and (not self.dialect.sharded or not isinstance(url_or_client, str)):
            raise ValueError("a Redis Cluster needs mode='sharded' (or 'streams' with "
                             "use_sharded_pubsub=True) and a URL")
        self._publisher = new_publisher(url_or_client, redis_options, self.dialect.sharded,
                                        cluster, max_connections=max_connections,
                                        timeout=publish_timeout, retries=publish_retries)
        #: the ``redis.Redis`` client every publish goes through (None on a
        #: Redis Cluster: the publisher makes its ``RedisCluster`` when needed)
        self.redis = None if cluster else self._publisher.client
        self.key = key
        #: this emitter's id in the requests it sends (answers come back to it)
        self.uid = secrets.token_urlsafe(9)
        self._answers = self._new_answers(url_or_client, redis_options,
                                          publish_timeout, cluster)
        self._root = self.of('/')

    def _new_answers(self, url_or_client, redis_options, timeout, cluster):
        """Where the answers to this emitter's requests are read."""
        dialect = self.dialect
        if cluster:
            return ClusterAnswers(self._publisher, timeout, dialect)
        if isinstance(url_or_client, str):
            return Answers(functools.partial(_subscriber, url_or_client,
                                             redis_options, timeout), dialect)
        # a connection of the user's pool, given back while no request waits
        return Answers(url_or_client.pubsub, dialect, keep=False)

    def send(self, message):
        """Send what :attr:`dialect` made: PUBLISH an
        :class:`~sio_redis_sync.protocol.Outgoing` (with the delivery check
        when it has channels), XADD a stream entry (streams mode).

        :return: how many Redis subscribers received it; in streams mode, a
                 stream entry's id.
        :raises sio_redis_sync.PublishError: if Redis refused it.
        """
        return self._publisher.send(message)

    def send_many(self, messages):
        """Publish each :class:`~sio_redis_sync.protocol.Outgoing`, in order,
        in one round trip where the connection allows (see :meth:`pipeline`)."""
        return self._publisher.publish_many(messages)

    def stats(self):
        """Counters of this emitter (in this process): ``published``,
        ``publish_failures``, ``partial_deliveries``, ``connections_opened``
        (by its pool; None for a client given to it) and
        ``dropped_malformed`` (answers to its requests that could not be
        decoded, logged and skipped)."""
        publisher = self._publisher
        return {'published': publisher.published,
                'publish_failures': publisher.failures,
                'partial_deliveries': publisher.partial_deliveries,
                'connections_opened': publisher.connections_opened,
                'dropped_malformed': self._answers.dropped_malformed}

    def ask(self, nsp, entry, make_request, timeout):
        """Send a request of this emitter to the servers of ``nsp`` and
        collect their answers.

        :param entry: ``entry(servers)`` -> the pending entry fed the answers.
        :param make_request: ``make_request(uid, request_id)`` -> the
                             :class:`~sio_redis_sync.protocol.Request`.
        :raises sio_redis_sync.RequestTimeout: after ``timeout`` seconds.
        :raises sio_redis_sync.PublishError: if Redis failed.
        """
        dialect, uid = self.dialect, self.uid
        responses = dialect.response_channels(nsp, uid)
        return self._answers.for_channel(responses[-1]).ask(
            responses, lambda: self.server_count(nsp), entry,
            lambda request_id: dialect.encode_request(
                nsp, uid, make_request(uid, request_id)),
            self.send, timeout)

    def server_count(self, namespace='/'):
        """How many servers serve ``namespace`` (PUBSUB NUMSUB, or
        SHARDNUMSUB in sharded mode)."""
        return self._publisher.numsub(self.dialect.servers_channel(_namespace(namespace)))

    def close(self):
        """Release the connections (only those of a client it created) and
        the response subscription; a request waiting for answers raises
        :class:`~sio_redis_sync.PublishError`. A later call opens
        connections again."""
        self._answers.close()
        self._publisher.close()
        # like redis-py's close(): the emitter stays usable, a later call
        # connects again (a module-level Emitter closed by one Celery task
        # still serves the next)
        self._publisher.reopen()

    def pipeline(self):
        """A batch of emits sent to Redis together, in one round trip.

        The batch has this emitter's API (:meth:`emit`, :meth:`of`,
        :meth:`to`, :meth:`except_`, :meth:`sockets_join`, ...); each call
        encodes its message at once (so bad arguments raise at the call) and
        queues it. The block's end PUBLISHes every queued message through one
        connection, in order; an exception inside the block discards them
        instead::

            with emitter.pipeline() as batch:
                for user, pct in progress.items():
                    batch.emit('progress', pct, to=user)
                batch.of('/admin').to('ops').emit('alert', 'batch done')
            print(batch.results)  # subscribers reached, one per message

        Byte for byte, each message is what :meth:`emit` would publish. A
        batch belongs to one thread; the emitter itself stays shareable.

        :return: a :class:`Batch` (also usable without ``with``: call
                 :meth:`Batch.execute`).
        """
        return Batch(self)


class Batch(Targets):
    """Emits queued by :meth:`Emitter.pipeline`, published by :meth:`execute`.

    It has the :class:`Emitter`'s API for what publishes (:meth:`emit`,
    :meth:`of`, :meth:`to`, :meth:`sockets_join`, ...): each call is encoded by
    the emitter's dialect at once and queued. Requests that wait for answers
    (``fetch_sockets``, ``emit_with_ack``, ...) raise RuntimeError.

    :param emitter: the :class:`Emitter` whose publisher and dialect it uses.
    """

    def __init__(self, emitter):
        self._emitter = emitter
        #: the emitter's, so encoding is the same
        self.dialect = emitter.dialect
        self.mode = emitter.mode
        self.subscription_mode = emitter.subscription_mode
        self.redis = emitter.redis
        self.key = emitter.key
        self.uid = emitter.uid
        self._root = self.of('/')
        self._queued = []
        #: after :meth:`execute`: how many subscribers got each message
        self.results = None

    def send(self, message):
        """Queue an :class:`~sio_redis_sync.protocol.Outgoing`."""
        self._queued.append(message)

    def ask(self, nsp, entry, make_request, timeout):
        raise RuntimeError('a Batch only publishes: ask through the Emitter')

    def server_count(self, namespace='/'):
        """The emitter's :meth:`Emitter.server_count` (asked now)."""
        return self._emitter.server_count(namespace)

    def stats(self):
        """The emitter's :meth:`Emitter.stats`."""
        return self._emitter.stats()

    def __len__(self):
        return len(self._queued)

    def execute(self):
        """PUBLISH every queued message, in order, in one round trip.

        :return: how many subscribers received each message.
        :raises sio_redis_sync.PublishError: if Redis refused a message or
            could not be reached; the messages before it may have been
            published, and none is retried.
        :raises sio_redis_sync.PartialDelivery: if a message missed a server
            that was subscribing again after an outage.
        """
        queued, self._queued = self._queued, []
        self.results = self._emitter.send_many(queued) if queued else []
        return self.results

    def close(self):
        """Discard what is queued (the emitter's connections stay open)."""
        self._queued = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.execute()
        else:
            self.close()
