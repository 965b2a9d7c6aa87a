"""Emitter: publish to a Socket.IO cluster from any process, with no thread.

Owns one pooled publisher client and immutable broadcast operators; every call
is one PUBLISH, byte-identical to what ``@socket.io/redis-emitter`` 5.1.0
sends for the same call, and a failed publish raises.
"""
import functools

import redis

from . import protocol
from .exceptions import PublishError

PUBLISH_ERRORS = (redis.RedisError, OSError)
# @socket.io/redis-emitter refuses these: the servers reserve them
RESERVED_EVENTS = frozenset(('connect', 'connect_error', 'disconnect',
                             'disconnecting', 'newListener', 'removeListener'))


def publish(client, channel, payload):
    """PUBLISH through ``client``; a Redis failure raises PublishError.

    :return: how many subscribers received the message.
    """
    try:
        return client.publish(channel, payload)
    except PUBLISH_ERRORS as exc:
        raise PublishError(channel, exc) from exc


_PUBLISH = b'*3\r\n$7\r\nPUBLISH\r\n'


def publish_many(client, messages):
    """PUBLISH every ``(channel, payload)`` of ``messages`` in one round trip.

    The commands are packed here (RESP) and written at once on one
    connection of ``client``'s pool (a ``redis.Redis``, Sentinel's included).

    :return: how many subscribers received each message.
    :raises PublishError: for the first message Redis refused (after reading
        every reply), or if the connection failed; none is retried.
    """
    pool = client.connection_pool
    try:
        connection = _get_connection(pool)
    except PUBLISH_ERRORS as exc:
        raise PublishError(messages[0][0], exc) from exc
    try:
        encode = connection.encoder.encode
        parts = []
        for channel, payload in messages:
            channel = encode(channel)
            parts.append(b'%s$%d\r\n%s\r\n$%d\r\n' % (
                _PUBLISH, len(channel), channel, len(payload)))
            parts.append(payload)
            parts.append(b'\r\n')
        connection.send_packed_command([b''.join(parts)], check_health=False)
        results, refused = [], None
        for channel, _ in messages:
            try:
                results.append(connection.read_response())
            except redis.ResponseError as exc:
                results.append(exc)
                refused = refused or (channel, exc)
    except PUBLISH_ERRORS as exc:
        connection.disconnect()
        raise PublishError(messages[0][0], exc) from exc
    finally:
        pool.release(connection)
    if refused is not None:
        raise PublishError(*refused) from refused[1]
    return results


def _get_connection(pool):
    try:
        return pool.get_connection()
    except TypeError:  # redis-py < 5.3 wants a command name
        return pool.get_connection('PUBLISH')


def _check_event(event):
    if event in RESERVED_EVENTS:
        raise ValueError('"%s" is a reserved event name' % event)


def _namespace(nsp):
    return nsp if nsp.startswith('/') else '/' + nsp


@functools.lru_cache(maxsize=1024)
def _channels(key, nsp):
    """The (immutable) channel names of ``nsp``, computed once per process."""
    return protocol.Channels(key, _namespace(nsp))


def _encode_emit(channels, event, args, rooms, except_, flags):
    """``(channel, payload)`` of an emit, as @socket.io/redis-emitter lays it out."""
    _check_event(event)
    rooms = protocol.unique_rooms(rooms)
    payload = protocol.encode_broadcast(
        protocol.EMITTER_UID, channels.nsp, [event, *args], rooms, except_, flags,
        emitter_order=True)
    return channels.for_rooms(rooms), payload


class BroadcastOperator:
    """A target selection (namespace, rooms, except, flags) in the cluster.

    Immutable: :meth:`to`, :meth:`except_` and the flag helpers return a new
    operator, so one can be kept and shared between threads.
    """
    __slots__ = ('_publish', '_channels', '_rooms', '_except', '_flags')

    def __init__(self, publish, channels, rooms=(), except_=(), flags=None):
        self._publish = publish
        self._channels = channels
        self._rooms = rooms
        self._except = except_
        self._flags = flags or {}

    def _but(self, **changes):
        fields = {'rooms': self._rooms, 'except_': self._except,
                  'flags': self._flags, **changes}
        return BroadcastOperator(self._publish, self._channels, **fields)

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
        return self._publish(*_encode_emit(self._channels, event, args, self._rooms,
                                           self._except, self._flags))

    def sockets_join(self, rooms):
        """Make the selected sockets join ``rooms``, on every server."""
        return self._publish(self._channels.request, protocol.encode_remote_join(
            None, self._rooms, self._except, protocol.as_rooms(rooms)))

    def sockets_leave(self, rooms):
        """Make the selected sockets leave ``rooms``, on every server."""
        return self._publish(self._channels.request, protocol.encode_remote_leave(
            None, self._rooms, self._except, protocol.as_rooms(rooms)))

    def disconnect_sockets(self, close=False):
        """Disconnect the selected sockets; ``close`` closes their connection."""
        return self._publish(self._channels.request,
                             protocol.encode_remote_disconnect(
                                 None, self._rooms, self._except, close))

    def server_side_emit(self, event, *args):
        """Send ``event`` to the servers of this namespace (Node's
        ``serverSideEmit``, without acknowledgement)."""
        _check_event(event)
        return self._publish(self._channels.request,
                             protocol.encode_server_side_emit(
                                 protocol.EMITTER_UID, [event, *args]))


class Emitter:
    """Emit to a Socket.IO cluster (Python or Node servers) through Redis.

    Thread-free and safe to share: each call is one PUBLISH through a
    connection pool. Use one per process (a module-level object) in Flask
    views, Celery tasks and scripts::

        emitter = Emitter('redis://localhost:6379/0')
        emitter.emit('progress', {'pct': 50}, to=user_room)
        emitter.of('/admin').to('ops').except_('bots').emit('alert', 'disk')

    :param url_or_client: a Redis URL, or a ``redis.Redis`` client to use.
    :param key: the channel prefix; the servers' ``key`` (default
                ``socket.io``).
    :param redis_options: keyword arguments for ``redis.Redis.from_url``.
    """

    def __init__(self, url_or_client='redis://localhost:6379/0',
                 key=protocol.DEFAULT_KEY, redis_options=None):
        if isinstance(url_or_client, str):
            self.redis = redis.Redis.from_url(url_or_client,
                                              **dict(redis_options or {}))
            self._owns_client = True
        else:
            self.redis = url_or_client
            self._owns_client = False
        self.key = key
        self._root = self.of('/')

    def _publish(self, channel, payload):
        return publish(self.redis, channel, payload)

    def of(self, namespace):
        """An operator for ``namespace`` (a missing leading ``/`` is added)."""
        return BroadcastOperator(self._publish, _channels(self.key, namespace))

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
        if isinstance(data, tuple):
            args = data
        else:
            args = () if data is None else (data,)
        return self._publish(*_encode_emit(
            _channels(self.key, namespace or '/'), event, args,
            protocol.as_rooms(to or room), protocol.as_rooms(skip_sid), None))

    def sockets_join(self, rooms):
        """Make every socket of ``/`` join ``rooms`` (see ``to()``)."""
        return self._root.sockets_join(rooms)

    def sockets_leave(self, rooms):
        """Make every socket of ``/`` leave ``rooms``."""
        return self._root.sockets_leave(rooms)

    def disconnect_sockets(self, close=False):
        """Disconnect every socket of ``/``."""
        return self._root.disconnect_sockets(close)

    def server_side_emit(self, event, *args):
        """Send ``event`` to the servers of ``/`` (Node's ``serverSideEmit``)."""
        return self._root.server_side_emit(event, *args)

    def close(self):
        """Release the connections (only those of a client it created)."""
        if self._owns_client:
            self.redis.close()

    def pipeline(self):
        """A batch of emits sent to Redis together, in one round trip.

        The batch has this emitter's API (:meth:`emit`, :meth:`of`,
        :meth:`to`, :meth:`except_`, :meth:`sockets_join`, ...); each call
        encodes its message at once (so bad arguments raise at the call) and
        queues it. The block's end PUBLISHes every queued message through one
        Redis pipeline, in order; an exception inside the block discards
        them instead::

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


class Batch(Emitter):
    """Emits queued by :meth:`Emitter.pipeline`, published by :meth:`execute`.

    :param emitter: the :class:`Emitter` whose Redis client and key it uses.
    """

    def __init__(self, emitter):
        self.redis = emitter.redis
        self.key = emitter.key
        self._owns_client = False
        self._root = self.of('/')
        self._queued = []
        #: after :meth:`execute`: how many subscribers got each message
        self.results = None

    def _publish(self, channel, payload):
        self._queued.append((channel, payload))

    def __len__(self):
        return len(self._queued)

    def execute(self):
        """PUBLISH every queued message, in order, in one round trip.

        :return: how many subscribers received each message.
        :raises sio_redis_sync.PublishError: if Redis refused a message or
            could not be reached; the messages before it may have been
            published, and none is retried.
        """
        queued, self._queued = self._queued, []
        if not queued:
            self.results = []
            return self.results
        self.results = publish_many(self.redis, queued)
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


