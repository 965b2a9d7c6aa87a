"""The cluster API of RedisManager: ask every server, act on every server.

Owns what reaches every server: python-socketio's emit, rooms and disconnect
(local first, then published), Node's requests (fetch_sockets, all_rooms,
server_count, server-side events, sockets_join/leave, disconnect_sockets,
emit_with_ack), RemoteSocket and the Node-shaped handshake.
"""
import time
import urllib.parse

from . import protocol
from .exceptions import PublishError, SioRedisError
from .protocol import RequestType
from .requests import AckCallback, Acks, Replies, new_request_id

# How long initialize() waits for the first subscription before going on, and
# a request for a namespace subscribed just now.
READY_TIMEOUT = 5.0
# Python's strftime gives the zone's abbreviation where Node prints its name
_JS_DATE = '%a %b %d %Y %H:%M:%S GMT%z'
#: headers left out of the handshakes other servers see, by default
#: (RedisManager's ``handshake_headers``)
PRIVATE_HEADERS = frozenset(('cookie', 'authorization', 'proxy-authorization'))


def _text(environ, name, default=''):
    value = environ.get(name)
    return value if isinstance(value, str) else default


def _shared(name, headers):
    allow, names = headers
    return (name in names) if allow else (name not in names)


def handshake(environ, auth=None, now=None, headers=(False, PRIVATE_HEADERS)):
    """A Node-shaped ``socket.handshake`` built from a WSGI ``environ``:
    ``headers, time, address, xdomain, secure, issued, url, query, auth``.

    Never raises: an ``environ`` that is not a dict, or values that are not
    strings, give empty fields.

    :param now: the connection time in seconds since the epoch.
    :param headers: which headers to keep: ``(False, names)`` all but
                    ``names`` (default: all but :data:`PRIVATE_HEADERS`),
                    ``(True, names)`` only ``names`` (lowercase, with ``-``).
    """
    now = time.time() if now is None else now
    if not isinstance(environ, dict):
        environ = {}
    shared = {}
    for name, value in environ.items():
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if name.startswith('HTTP_'):
            name = name[5:].replace('_', '-').lower()
        elif name in ('CONTENT_TYPE', 'CONTENT_LENGTH') and value:
            name = name.replace('_', '-').lower()
        else:
            continue
        if _shared(name, headers):
            shared[name] = value
    query_string = _text(environ, 'QUERY_STRING')
    query = {}
    for name, values in urllib.parse.parse_qs(
            query_string, keep_blank_values=True).items():
        query[name] = values[0] if len(values) == 1 else values
    url = _text(environ, 'RAW_URI') or _text(environ, 'REQUEST_URI') or (
        urllib.parse.quote(_text(environ, 'PATH_INFO', '/'))
        + ('?' + query_string if query_string else ''))
    local = time.localtime(now)
    return {
        'headers': shared,
        'time': '%s (%s)' % (time.strftime(_JS_DATE, local), local.tm_zone),
        'address': _text(environ, 'REMOTE_ADDR'),
        'xdomain': isinstance(environ.get('HTTP_ORIGIN'), str),
        'secure': environ.get('wsgi.url_scheme') == 'https',
        'issued': int(now * 1000),
        'url': url,
        'query': query,
        'auth': auth if isinstance(auth, dict) else {},
    }


class RemoteSocket:
    """A socket of the cluster, as :meth:`ClusterAPI.fetch_sockets` returns
    it, on this server or any other (Python or Node).

    :ivar id: its sid.
    :ivar handshake: Node's ``socket.handshake`` (headers, query, auth, ...).
    :ivar rooms: the rooms it is in, its own sid included.
    :ivar data: Node's ``socket.data``; for Python sockets, the
                python-socketio session of its namespace.
    """
    __slots__ = ('id', 'handshake', 'rooms', 'data', 'namespace', '_manager')

    def __init__(self, manager, namespace, details):
        self._manager = manager
        self.namespace = namespace
        self.id = details.get('id')
        self.handshake = details.get('handshake') or {}
        self.rooms = list(details.get('rooms') or ())
        self.data = details.get('data')

    def emit(self, event, *args, callback=None):
        """Send ``event`` to this socket, wherever it is connected; a
        ``callback`` gets its ack (not from an Emitter's sockets)."""
        extra = {} if callback is None else {'callback': callback}
        self._manager.emit(event, args, namespace=self.namespace, to=self.id,
                           **extra)

    def join(self, room):
        """Put this socket in ``room`` (a room or a list of rooms)."""
        self._manager.sockets_join(room, room=self.id, namespace=self.namespace)

    def leave(self, room):
        """Take this socket out of ``room`` (a room or a list of rooms)."""
        self._manager.sockets_leave(room, room=self.id, namespace=self.namespace)

    def disconnect(self, close=False):
        """Disconnect this socket; ``close`` also closes its connection."""
        self._manager.disconnect_sockets(close, room=self.id,
                                         namespace=self.namespace)

    def __repr__(self):
        return '<RemoteSocket %s in %s, rooms %r>' % (self.id, self.namespace,
                                                      self.rooms)


class ClusterAPI:
    """The cluster-wide operations of :class:`sio_redis_sync.RedisManager`:
    python-socketio's (emit, rooms, disconnect: local first, then published)
    and Node's adapter's (``fetchSockets``, ``allRooms``, ``serverCount``,
    ``serverSideEmit``, ``socketsJoin``, ...), wire-compatible with Node.

    Every request counts the servers with ``PUBSUB NUMSUB`` like Node and
    returns as soon as all of them answered; ``timeout`` defaults to the
    manager's ``requests_timeout``.

    What it uses of its host, and nothing else: the dialect and ``uid``
    (``_dialect``), the publisher and the legacy mirror (``_publisher``,
    ``_legacy``), the pending requests (``_pending``), the lifecycle
    (``_listener``, ``_lifecycle``, ``_closed``, ``initialize``,
    ``_subscribe``, ``_spawn``, ``_submit``), LocalClients (``_lock``,
    ``_select``, ``_is_local``, ``_all_local_sids``, ``_deliver``,
    ``_forget_acks``) and RemoteMessages (``_apply_locally``,
    ``_disconnect_local``, ``_server_handlers``).
    """

    # ------------------------------------------------------- publishing

    def _request(self, namespace, kind, request_id=None, rooms=(), except_=(),
                 **fields):
        """The dialect's message of a request (or notification) of this server."""
        return self._dialect.encode_request(namespace, self.uid, protocol.new_request(
            kind, request_id, rooms, except_, **fields))

    def _send(self, message):
        """Send what the dialect made (an
        :class:`~sio_redis_sync.protocol.Outgoing`, or a stream entry in
        streams mode) within the deadline; a failure is counted, logged with
        its cause, and raised as PublishError. With the namespace's
        ``channels``, a message that missed a server subscribing again after
        an outage raises PartialDelivery."""
        sent = self._publisher.send(message)
        if self._legacy is not None:
            self._legacy.mirror(message.channel, message.payload)
        return sent

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
        if callback is None and self._recovery is not None and not kwargs.get('ignore_queue'):
            self._emit_recoverable(namespace, data, rooms, skip, targets)
            return
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

    def _emit_recoverable(self, namespace, data, rooms, skip, targets):
        """With connection state recovery: into the stream only; this
        server's clients get it from its stream reader like everyone's, in
        the stream's order, so the offsets a client gets only grow (Node
        delivers its own first, before older entries still unread: a client
        recovering from such an offset can miss or repeat events). Without a
        reader (not listening yet) the local clients get it at once."""
        offset = self._send(self._dialect.encode_broadcast(namespace, self.uid, data,
                                                           rooms, skip))
        if self._readers is None:
            self._deliver(namespace, data + [offset], targets)

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

    # --------------------------------------------------------- requester

    def server_count(self, namespace='/'):
        """How many servers (Python and Node) serve ``namespace``: the
        subscribers of its request channel, like Node's ``serverCount()``.

        :raises sio_redis_sync.PublishError: if Redis cannot be asked.
        """
        return self._publisher.numsub(self._dialect.servers_channel(namespace))

    def all_rooms(self, namespace='/', timeout=None):
        """Every room of ``namespace`` on every server, sids included (Node's
        ``adapter.allRooms()``).

        :raises sio_redis_sync.RequestTimeout: if a server did not answer in
                                                time.
        :raises sio_redis_sync.SioRedisError: in sharded mode, where no such
                                               request exists (Node's sharded
                                               adapter throws too).
        """
        self._dialect.check_request(RequestType.ALL_ROOMS)
        rooms = set(self._local_rooms(namespace))
        for answer in self._ask(namespace, 'all_rooms', 'rooms', timeout,
                                lambda request_id: self._request(
                                    namespace, RequestType.ALL_ROOMS, request_id)):
            if isinstance(answer, list):
                rooms.update(room for room in answer
                             if isinstance(room, (str, int)))
        return rooms

    def fetch_sockets(self, room=None, namespace='/', skip=None, timeout=None):
        """Every socket of ``namespace`` in the cluster, or those in ``room``
        (a room or a list of rooms), leaving out those in ``skip`` (Node's
        ``io.in(room).except(skip).fetchSockets()``).

        :return: a list of :class:`RemoteSocket`.
        :raises sio_redis_sync.RequestTimeout: if a server did not answer in
                                                time.
        """
        rooms = protocol.unique_rooms(protocol.as_rooms(room))
        skip = protocol.as_rooms(skip)
        found = self._socket_details(namespace, rooms, skip)
        for answer in self._ask(
                namespace, 'fetch_sockets', 'sockets', timeout,
                lambda request_id: self._request(
                    namespace, RequestType.REMOTE_FETCH, request_id, rooms, skip)):
            if isinstance(answer, list):
                found.extend(s for s in answer
                             if isinstance(s, dict) and 'id' in s)
        return [RemoteSocket(self, namespace, details) for details in found]

    def server_side_emit(self, event, *args, namespace='/', callback=None):
        """Send ``event`` with ``args`` to every other server of
        ``namespace``; they receive it in their :meth:`on` handlers (Node:
        ``io.serverSideEmit``, received with ``io.on(event)``).

        :param callback: if given, called as ``callback(error, replies)``
                         (Node's order) once every server answered or the
                         timeout passed, then ``error`` is a
                         :class:`~sio_redis_sync.RequestTimeout` and
                         ``replies`` the answers that did arrive. It runs in
                         a background task; the call itself returns at once.
        """
        if callback is None:
            self._send(self._request(namespace, RequestType.SERVER_SIDE_EMIT,
                                     data=[event, *args]))
            return
        self._spawn(self._server_side_call_back, callback, event, args,
                    namespace)

    def _server_side_call_back(self, callback, event, args, namespace):
        try:
            replies = self.server_side_call(event, *args, namespace=namespace)
        except SioRedisError as exc:
            callback(exc, getattr(exc, 'replies', []))
        else:
            callback(None, replies)

    def server_side_call(self, event, *args, namespace='/', timeout=None):
        """Like :meth:`server_side_emit`, and wait for every other server's
        answer (what its handler returned; Node: ``serverSideEmitWithAck``).

        :return: the answers, one per server.
        :raises sio_redis_sync.RequestTimeout: if a server did not answer in
                                                time (a Node server without a
                                                listener never does).
        """
        data = [event, *args]
        return self._ask(
            namespace, 'server_side_call(%r)' % event, 'data', timeout,
            lambda request_id: self._request(
                namespace, RequestType.SERVER_SIDE_EMIT, request_id, data=data))

    def on(self, event, handler=None, namespace='/'):
        """Register the handler of server-side event ``event`` sent by other
        servers (:meth:`server_side_emit`, Node's ``io.serverSideEmit``, the
        emitters' ``server_side_emit``). Use as a decorator or call it.

        The handler runs in a background task with the event's arguments; what
        it returns is the answer the sender's callback gets. An exception is
        logged and nothing is answered.
        """
        def register(function):
            with self._lock:
                self._server_handlers[(namespace, event)] = function
            return function
        return register if handler is None else register(handler)

    def sockets_join(self, rooms, room=None, skip=None, namespace='/'):
        """Make the sockets of ``room`` (all if None) but those of ``skip``
        join ``rooms``, on every server (Node: ``io.in(room).socketsJoin``)."""
        self._apply_everywhere(namespace, room, skip, rooms,
                               self.basic_enter_room, RequestType.REMOTE_JOIN)

    def sockets_leave(self, rooms, room=None, skip=None, namespace='/'):
        """Make the selected sockets leave ``rooms``, on every server."""
        self._apply_everywhere(namespace, room, skip, rooms,
                               self.basic_leave_room, RequestType.REMOTE_LEAVE)

    def _apply_everywhere(self, namespace, room, skip, rooms, apply, kind):
        selection = protocol.as_rooms(room)
        skip = protocol.as_rooms(skip)
        rooms = protocol.as_rooms(rooms)
        self._apply_locally(namespace, selection, skip, rooms, apply)
        self._send(self._request(namespace, kind, rooms=selection, except_=skip,
                                 rooms_arg=protocol.unique_rooms(rooms)))

    def disconnect_sockets(self, close=False, room=None, skip=None,
                           namespace='/'):
        """Disconnect the sockets of ``room`` (all if None) but those of
        ``skip``, on every server; ``close`` also closes their connections
        (Node: ``io.in(room).disconnectSockets(close)``)."""
        selection = protocol.as_rooms(room)
        skip = protocol.as_rooms(skip)
        targets = self._select(namespace, selection, skip)
        self._send(self._request(namespace, RequestType.REMOTE_DISCONNECT, rooms=selection,
                                 except_=skip, close=close))
        if targets:
            self._disconnect_local(namespace, targets, close)

    def emit_with_ack(self, event, data=None, to=None, room=None,
                      skip_sid=None, namespace='/', timeout=None):
        """Emit like :meth:`socketio.Server.emit` and wait for the ack of
        every targeted client of the cluster (Node:
        ``io.timeout(t).emitWithAck``).

        :return: one ack per client: its first argument (all that travels
                 between servers, as with Node).
        :raises sio_redis_sync.RequestTimeout: if an ack is missing after
                                                ``timeout`` seconds; it holds
                                                the acks that did arrive.
        """
        timeout = self.requests_timeout if timeout is None else timeout
        rooms = protocol.unique_rooms(protocol.as_rooms(to or room))
        skip = protocol.as_rooms(skip_sid)
        data = [event] + protocol.as_args(data)
        self._listen_for_responses(namespace)
        acks = Acks('emit_with_ack(%r)' % event, self.server_count(namespace))
        request_id = new_request_id()
        self._pending.add(request_id, acks, timeout)
        targets = self._select(namespace, rooms, skip)
        ack_ids = {}
        try:
            self._send(self._request(
                namespace, RequestType.BROADCAST, request_id, rooms, skip,
                flags={'timeout': int(timeout * 1000)}, data=data))
            ack_ids = self._deliver(namespace, data, targets,
                                    lambda *args: acks.add_ack(
                                        args[0] if args else None),
                                    ttl=timeout)
            acks.add_count(len(targets))
            return acks.wait(timeout)
        finally:
            self._pending.discard(request_id)
            self._forget_acks(ack_ids)

    def _ask(self, namespace, what, field, timeout, encode):
        """Publish the request ``encode(request_id)`` (a message of the
        wire) and wait for the ``field`` of every other server's answer."""
        timeout = self.requests_timeout if timeout is None else timeout
        self._listen_for_responses(namespace)
        replies = Replies(what, field, self.server_count(namespace) - 1)
        if replies.done.is_set():
            return replies.replies
        request_id = new_request_id()
        self._pending.add(request_id, replies, timeout)
        try:
            self._send(encode(request_id))
            return replies.wait(timeout)
        finally:
            self._pending.discard(request_id)
