"""RemoteMessages: what this server does with the messages other servers and
emitters publish: one decode (the dialect's), one dispatch table, one handler
per request type, and the answers.

A base of :class:`~sio_redis_sync.RedisManager`; the bytes are the dialect's,
the delivery is :class:`~sio_redis_sync.local.LocalClients`'.
"""
import functools
import time

from . import protocol
from .exceptions import ProtocolError, PublishError
from .local import event_packets
from .protocol import Broadcast, Ignored, Request, RequestType, Response


# a broadcast entry's type field (MessageType.BROADCAST): with connection
# state recovery this server's own are delivered by its reader
OWN_BROADCAST = b'3'


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


class RemoteMessages:
    """The listener's side of the manager: :meth:`_on_message` is the
    listener's callback. Requests are handled on the listener (those that
    only touch rooms or deliver) or on the worker (those that read many
    sockets or run the application's code).

    What it uses of its host, and nothing else: the dialect and ``uid``
    (``_dialect``), the routes (``_routes``), the legacy bridge
    (``_legacy``), the pending requests (``_pending``), ``_send`` and
    ``_submit``, and LocalClients (``_lock``, ``_select``, ``_is_local``,
    ``_deliver``, ``_handshake_of``, ``basic_enter_room``...).
    A new request type is one row of ``_request_handlers`` and its handler.
    """

    def _init_handlers(self):
        self._handlers = {
            Broadcast: self._on_broadcast,
            Request: self._on_request,
            Response: self._on_response,
            Ignored: self._on_ignored,
        }
        # request type -> (handler, run on the worker)
        self._request_handlers = {
            RequestType.REMOTE_JOIN: (self._on_remote_join, False),
            RequestType.REMOTE_LEAVE: (self._on_remote_leave, False),
            RequestType.REMOTE_DISCONNECT: (self._on_remote_disconnect, False),
            RequestType.BROADCAST: (self._on_broadcast_request, False),
            RequestType.SOCKETS: (self._on_sockets, True),
            RequestType.ALL_ROOMS: (self._on_all_rooms, True),
            RequestType.REMOTE_FETCH: (self._on_fetch_sockets, True),
            RequestType.SERVER_SIDE_EMIT: (self._on_server_side_emit, True),
        }
        self._received = 0           # written by the listener task only
        self._dropped_malformed = 0  # idem
        self._last_message = None    # idem (time.monotonic())

    def _on_message(self, channel, pattern, data):
        """Every message the listener reads: one decode (the dialect's),
        one dispatch by the kind of message. A message too large or
        malformed is logged, counted and dropped."""
        self._received += 1
        self._last_message = time.monotonic()
        namespace = self._routes.namespace_of(channel, pattern)
        legacy = self._legacy
        if namespace is None and (legacy is None or channel != legacy.channel_bytes):
            self._log.debug('ignoring a message on unknown channel %r', channel)
            return
        if self.max_message_size is not None and len(data) > self.max_message_size:
            self._dropped_malformed += 1
            self._log.warning('dropped a message of %d bytes on %r: larger '
                              'than max_message_size (%d)', len(data), channel,
                              self.max_message_size)
            return
        try:
            if namespace is None:
                legacy.on_message(None, channel, data)
                return
            room = self._dialect.channel_room(namespace, channel)
            if room is not None and not self._has_room(namespace, room):
                return  # single-room broadcast for a room not hosted here
            message = self._dialect.decode(namespace, channel, data)
            if message.uid != self.uid:  # else this server's own
                self._handlers[type(message)](namespace, message)
        except ProtocolError as exc:
            self._dropped_malformed += 1
            self._log.warning('dropped a malformed message on %r: %s',
                              channel, exc)

    def _on_entry(self, key, entry_id, fields):
        """Every entry a stream reader reads (streams mode): skipped if its
        namespace is not served here (as Node does) or it is this server's
        own, else decoded by the dialect and dispatched as a message.

        :raises ProtocolError: if it is malformed or larger than
                               ``max_message_size`` (the reader logs, counts
                               and drops it).
        """
        self._last_message = time.monotonic()
        own = fields.get(b'uid') == self.uid.encode()
        if own and not (self._recovery is not None and fields.get(b'type') == OWN_BROADCAST):
            return  # this server's own (applied before it was added): not decoded
        nsp = self._dialect.entry_namespace(fields)
        if nsp is None or not self._routes.serves(nsp):
            return
        if self.max_message_size is not None:
            size = sum(len(value) for value in fields.values() if isinstance(value, bytes))
            if size > self.max_message_size:
                raise ProtocolError('%d bytes: larger than max_message_size (%d)'
                                    % (size, self.max_message_size))
        message = self._dialect.decode_entry(nsp, fields, key)
        if own or message.uid != self.uid:  # own: a recoverable broadcast (_emit_recoverable)
            self._handlers[type(message)](nsp, self._with_offset(message, entry_id))

    def _with_offset(self, message, entry_id):
        """``message`` as local clients get it (see StateRecovery)."""
        return message

    def _handle(self, namespace, message):
        """Act on a decoded message (a Broadcast, Request, Response or
        Ignored) of ``namespace``; the legacy bridge's way in too."""
        self._handlers[type(message)](namespace, message)

    def _deliver_event(self, namespace, data, rooms, skip, callback=None):
        """Deliver ``data`` (``[event, *args]``) from elsewhere to the local
        sockets of ``rooms`` but ``skip`` (Node's rules).

        :raises ProtocolError: if it cannot be sent to a client.
        """
        self._deliver_remote(namespace, data, self._select(namespace, rooms, skip),
                             callback)

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
                event_packets(self.server.packet_class, namespace, data)
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
        handler, on_worker = self._request_handlers[request.type]
        if on_worker:
            self._submit(self._answer_request, handler, namespace, request)
        else:
            handler(namespace, request)

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
    # ------------------------------------------------------ answering

    def _local_rooms(self, namespace):
        with self._lock:
            return [room for room in self.rooms.get(namespace, ())
                    if room is not None]

    def _socket_details(self, namespace, rooms, skip):
        """REMOTE_FETCH entries ``{id, handshake, rooms, data}`` of the local
        sockets selected by ``rooms``/``skip``."""
        targets = self._select(namespace, rooms, skip)
        if not targets:
            return []
        rooms_of = {sid: [] for sid in targets}
        with self._lock:
            for name, members in self.rooms.get(namespace, {}).items():
                if name is None:
                    continue
                for sid in members:
                    if sid in rooms_of:
                        rooms_of[sid].append(name)
        return [{'id': sid, 'handshake': self._handshake_of(sid, namespace),
                 'rooms': rooms_of[sid], 'data': self._data_of(sid, namespace)}
                for sid in targets]

    def _data_of(self, sid, namespace):
        """Node's ``socket.data``: the python-socketio session, if it can
        travel as JSON."""
        try:
            session = self.server.get_session(sid, namespace=namespace)
            protocol.dumps_json(session)
        except (KeyError, TypeError) as exc:
            self._log.debug('socket %s: no session data to share (%s)', sid, exc)
            return {}
        return session

    def _answer(self, namespace, request, kind, value):
        self._send(self._dialect.encode_answer(namespace, self.uid, request, kind, value))

    def _on_sockets(self, namespace, request):
        """SOCKETS (0, legacy): the sids of the local sockets in rooms."""
        self._answer(namespace, request, RequestType.SOCKETS, list(
            self._select(namespace, request.rooms, ())))

    def _on_all_rooms(self, namespace, request):
        self._answer(namespace, request, RequestType.ALL_ROOMS, self._local_rooms(namespace))

    def _on_fetch_sockets(self, namespace, request):
        self._answer(namespace, request, RequestType.REMOTE_FETCH, self._socket_details(
            namespace, request.rooms, request.except_))

    def _on_server_side_emit(self, namespace, request):
        event, args = request.data[0], request.data[1:]
        with self._lock:
            handler = self._server_handlers.get((namespace, event))
        if handler is None:
            self._log.debug('no handler for server-side event %r in %s',
                            event, namespace)
            return
        try:
            answer = handler(*args)
        except Exception:  # the application's bug: log it, answer nothing
            self._log.exception('server-side event %r handler failed', event)
            return
        if request.request_id is not None:
            self._answer(namespace, request, RequestType.SERVER_SIDE_EMIT, answer)
