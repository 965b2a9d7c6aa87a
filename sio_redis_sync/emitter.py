"""Emitter: publish to a Socket.IO cluster from any process, with no thread.

Owns one bounded publisher pool and immutable broadcast operators; every call
is one PUBLISH, byte-identical to what ``@socket.io/redis-emitter`` 5.1.0
sends for the same call, and a failed publish raises within a deadline.
"""
import redis

from . import connection, protocol
from .exceptions import PublishError
from .publisher import Publisher

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


def _check_event(event):
    if event in RESERVED_EVENTS:
        raise ValueError('"%s" is a reserved event name' % event)


def _namespace(nsp):
    return nsp if nsp.startswith('/') else '/' + nsp


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
        _check_event(event)
        rooms = protocol.unique_rooms(self._rooms)
        payload = protocol.encode_broadcast(
            protocol.EMITTER_UID, self._channels.nsp, [event, *args], rooms,
            self._except, self._flags, emitter_order=True)
        return self._publish(self._channels.for_rooms(rooms), payload)

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

    :param url_or_client: a Redis URL, or a ``redis.Redis`` client to use
                          (then its own pool and timeouts apply).
    :param key: the channel prefix; the servers' ``key`` (default
                ``socket.io``).
    :param redis_options: keyword arguments for ``redis.Redis.from_url``
                          (copied; ``decode_responses`` is always off).
    :param max_connections: the cap of the connection pool shared by every
                            thread or greenlet using this emitter (default
                            10); a publish that finds them all busy waits
                            for one, within ``publish_timeout``.
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
    """

    def __init__(self, url_or_client='redis://localhost:6379/0',
                 key=protocol.DEFAULT_KEY, redis_options=None,
                 max_connections=connection.MAX_CONNECTIONS,
                 publish_timeout=connection.PUBLISH_TIMEOUT,
                 publish_retries=connection.PUBLISH_RETRIES):
        if isinstance(url_or_client, str):
            self._publisher = Publisher(
                url_or_client, redis_options, max_connections=max_connections,
                timeout=publish_timeout, retries=publish_retries)
        else:
            self._publisher = Publisher(client=url_or_client,
                                        timeout=publish_timeout,
                                        retries=publish_retries)
        #: the ``redis.Redis`` client every publish goes through
        self.redis = self._publisher.client
        self.key = key
        self._root = self.of('/')

    def _publish(self, channel, payload):
        return self._publisher.publish(channel, payload)

    def stats(self):
        """Counters of this emitter (in this process): ``published``,
        ``publish_failures`` and ``connections_opened`` (by its pool; None
        for a client given to it)."""
        publisher = self._publisher
        return {'published': publisher.published,
                'publish_failures': publisher.failures,
                'connections_opened': publisher.connections_opened}

    def of(self, namespace):
        """An operator for ``namespace`` (a missing leading ``/`` is added)."""
        return BroadcastOperator(self._publish, protocol.Channels(
            self.key, _namespace(namespace)))

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
        operator = self.of(namespace or '/').to(to or room).except_(skip_sid)
        return operator.emit(event, *args)

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
        self._publisher.close()
