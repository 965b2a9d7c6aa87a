"""The classic dialect (Node's ``createAdapter``, ``@socket.io/redis-emitter``):
its codecs (bytes <-> values) and what each operation becomes on the wire.

Pure: no I/O, no manager. Channels are ``K#N#[room#]``, ``K-request#N#``,
``K-response#N#[uid#]``; broadcasts, BROADCAST requests and acks are msgpack,
the other requests and responses JSON (:mod:`sio_redis_sync.protocol` has what
every dialect shares). Decoders of untrusted bytes return a value or raise
:class:`~sio_redis_sync.ProtocolError`, nothing else.
"""
import functools
from typing import Optional

from . import protocol
from .exceptions import ProtocolError
from .protocol import (EMITTER_UID, EVENT, Broadcast, Ignored, Outgoing, Request, RequestType,
                       Response, Subscriptions, as_bool, as_dict, as_flags, as_room,
                       check_response, dumps_json, dumps_msgpack, loads_auto, loads_msgpack,
                       parse_selection, quote, room_list, unique_rooms)

__all__ = ['ClassicDialect']

# ------------------------------------------------------------- the codecs

def encode_broadcast(uid: str, nsp: str, data: list, rooms=(), except_=(),
                     flags: Optional[dict] = None,
                     emitter_order: bool = False) -> bytes:
    """Encode a broadcast ``[uid, packet, opts]``.

    :param data: ``[event, *args]``.
    :param emitter_order: lay ``opts`` out as redis-emitter does
                          (``rooms, flags, except``) instead of the adapter's
                          ``rooms, except, flags``.
    :raises TypeError: if an argument cannot be encoded.
    """
    packet = {'type': EVENT, 'data': data, 'nsp': nsp}
    rooms, except_, flags = unique_rooms(rooms), unique_rooms(except_), flags or {}
    if emitter_order:
        opts = {'rooms': rooms, 'flags': flags, 'except': except_}
    else:
        opts = {'rooms': rooms, 'except': except_, 'flags': flags}
    return dumps_msgpack([uid, packet, opts])


def _opts(rooms, except_) -> dict:
    return {'rooms': unique_rooms(rooms), 'except': unique_rooms(except_)}


def _with_uid(uid, body: dict) -> dict:
    # Emitter requests other than serverSideEmit carry no uid at all.
    return body if uid is None else {'uid': uid, **body}


def encode_remote_join(uid, rooms, except_, join) -> bytes:
    """REMOTE_JOIN: sockets selected by ``rooms``/``except_`` join ``join``."""
    return dumps_json(_with_uid(uid, {
        'type': RequestType.REMOTE_JOIN.value, 'opts': _opts(rooms, except_),
        'rooms': unique_rooms(join)}))


def encode_remote_leave(uid, rooms, except_, leave) -> bytes:
    """REMOTE_LEAVE: sockets selected by ``rooms``/``except_`` leave ``leave``."""
    return dumps_json(_with_uid(uid, {
        'type': RequestType.REMOTE_LEAVE.value, 'opts': _opts(rooms, except_),
        'rooms': unique_rooms(leave)}))


def encode_remote_disconnect(uid, rooms, except_, close=False) -> bytes:
    """REMOTE_DISCONNECT of the sockets selected by ``rooms``/``except_``."""
    return dumps_json(_with_uid(uid, {
        'type': RequestType.REMOTE_DISCONNECT.value,
        'opts': _opts(rooms, except_), 'close': bool(close)}))


def encode_server_side_emit(uid, data: list, request_id=None) -> bytes:
    """SERVER_SIDE_EMIT of ``data = [event, *args]`` (JSON, as Node sends it)."""
    body = {'uid': uid}
    if request_id is not None:
        body['requestId'] = request_id
    body['type'] = RequestType.SERVER_SIDE_EMIT.value
    body['data'] = data
    return dumps_json(body)


def encode_all_rooms(uid, request_id) -> bytes:
    """ALL_ROOMS (1): every server answers with its room names."""
    return dumps_json({'uid': uid, 'requestId': request_id,
                       'type': RequestType.ALL_ROOMS.value})


def encode_fetch_sockets(uid, request_id, rooms=(), except_=()) -> bytes:
    """REMOTE_FETCH (5): every server answers with its sockets selected by
    ``rooms``/``except_``."""
    return dumps_json({'uid': uid, 'requestId': request_id,
                       'type': RequestType.REMOTE_FETCH.value,
                       'opts': _opts(rooms, except_)})


def encode_broadcast_request(uid, request_id, nsp, data: list, rooms=(),
                             except_=(), flags: Optional[dict] = None) -> bytes:
    """BROADCAST (7): a broadcast whose receivers send their clients' acks
    back (msgpack, like every broadcast)."""
    return dumps_msgpack({
        'uid': uid, 'requestId': request_id,
        'type': RequestType.BROADCAST.value,
        'packet': {'type': EVENT, 'data': data, 'nsp': nsp},
        'opts': {**_opts(rooms, except_), 'flags': flags or {}}})


def encode_client_count(request_id, count) -> bytes:
    """BROADCAST_CLIENT_COUNT (8): how many clients a BROADCAST reached here."""
    return dumps_json({'type': RequestType.BROADCAST_CLIENT_COUNT.value,
                       'requestId': request_id, 'clientCount': count})


def encode_broadcast_ack(request_id, packet, packets=None) -> bytes:
    """BROADCAST_ACK (9): one client's ack, msgpack.

    :param packet: the ack's first value (Node's field: Node reads only it).
    :param packets: every value of the ack, as a list, or None: carried in
                    the extra field ``packets`` that Node ignores and Python
                    servers read (a multi-value ack keeps its shape).
    """
    body = {'type': RequestType.BROADCAST_ACK.value, 'requestId': request_id,
            'packet': packet}
    if packets is not None:
        body['packets'] = list(packets)
    return dumps_msgpack(body)


def encode_response(body: dict) -> bytes:
    """A JSON response (every response type but BROADCAST_ACK)."""
    return dumps_json(body)


def decode_broadcast(payload: bytes) -> Broadcast:
    """Decode a broadcast published by any adapter or emitter.

    :raises ProtocolError: if ``payload`` is not a valid broadcast.
    """
    message = loads_msgpack(payload)
    if not isinstance(message, list) or len(message) < 3:
        raise ProtocolError('a broadcast is an array [uid, packet, opts]')
    uid, packet, opts = message[0], message[1], message[2]
    if not isinstance(uid, str):
        raise ProtocolError('broadcast uid must be a string')
    packet, opts = as_dict(packet, 'packet'), as_dict(opts, 'opts')
    if packet.get('type') != EVENT:
        raise ProtocolError('broadcast packet type must be 2 (EVENT), got %s'
                            % quote(packet.get('type')))
    data = packet.get('data')
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ProtocolError('packet data must be [event, ...args]')
    nsp = packet.get('nsp', '/')
    if not isinstance(nsp, str):
        raise ProtocolError('packet nsp must be a string')
    return Broadcast(uid, nsp, data, room_list(opts.get('rooms'), 'rooms'),
                     room_list(opts.get('except'), 'except'),
                     as_flags(opts.get('flags'), 'flags'))


def _optional_str(message, name):
    value = message.get(name)
    if value is not None and not isinstance(value, str):
        raise ProtocolError('%s must be a string, got %s'
                            % (name, type(value).__name__))
    return value


def _sid(message):
    sid = message.get('sid')
    if not isinstance(sid, str):
        raise ProtocolError('sid must be a string, got %s' % quote(sid))
    return sid


def _parse_join_leave(message) -> dict:
    if 'sid' in message:  # legacy form: one socket, one room
        return {'sid': _sid(message), 'room': as_room(message.get('room'), 'room')}
    return {**parse_selection(message),
            'rooms_arg': room_list(message.get('rooms'), 'rooms')}


def _parse_disconnect(message) -> dict:
    fields = {'close': as_bool(message, 'close')}
    if 'sid' in message:
        fields['sid'] = _sid(message)
    else:
        fields.update(parse_selection(message))
    return fields


def _parse_sockets(message) -> dict:
    return {'rooms': room_list(message.get('rooms'), 'rooms')}


def _event(value, what):
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise ProtocolError('%s must be [event, ...args]' % what)
    return value


def _parse_server_side_emit(message) -> dict:
    return {'data': _event(message.get('data'), 'server-side emit data')}


def _parse_broadcast_request(message) -> dict:
    if not isinstance(message.get('requestId'), str):
        raise ProtocolError('a broadcast with acks needs a string requestId')
    packet = as_dict(message.get('packet'), 'packet')
    _event(packet.get('data'), 'packet data')
    return {**parse_selection(message), 'packet': packet}


_REQUEST_PARSERS = {
    RequestType.SOCKETS: _parse_sockets,
    RequestType.ALL_ROOMS: lambda message: {},
    RequestType.REMOTE_JOIN: _parse_join_leave,
    RequestType.REMOTE_LEAVE: _parse_join_leave,
    RequestType.REMOTE_DISCONNECT: _parse_disconnect,
    RequestType.REMOTE_FETCH: parse_selection,
    RequestType.SERVER_SIDE_EMIT: _parse_server_side_emit,
    RequestType.BROADCAST: _parse_broadcast_request,
}


# the requests every server answers: they need an id to be answered
_ASKING = frozenset((RequestType.SOCKETS, RequestType.ALL_ROOMS, RequestType.REMOTE_FETCH))


def decode_request(payload: bytes) -> Request:
    """Decode a request (JSON or msgpack, by the first byte).

    :raises ProtocolError: if it is malformed or of an unknown type.
    """
    message = loads_auto(payload)
    if not isinstance(message, dict):
        raise ProtocolError('a request is a map')
    kind = message.get('type')
    if not isinstance(kind, int) or isinstance(kind, bool) \
            or kind not in _REQUEST_PARSERS:
        raise ProtocolError('unknown request type %s' % quote(kind))
    kind = RequestType(kind)
    request_id = _optional_str(message, 'requestId')
    if request_id is None and kind in _ASKING:
        # an answer without an id reaches no one (Node's sharded adapter
        # refuses such a FETCH_SOCKETS too)
        raise ProtocolError('a %s request needs a string requestId' % kind.name)
    return Request(type=kind, uid=_optional_str(message, 'uid'), request_id=request_id,
                   **_REQUEST_PARSERS[kind](message))


def decode_response(payload: bytes) -> dict:
    """Decode a response (JSON or msgpack); it always has a ``requestId``.

    A BROADCAST_ACK may carry ``packets`` (every value of the client's ack,
    sent by Python servers besides Node's ``packet``, its first value).

    :raises ProtocolError: if it is malformed (see :func:`check_response`).
    """
    message = loads_auto(payload)
    if not isinstance(message, dict) or \
            not isinstance(message.get('requestId'), str):
        raise ProtocolError('a response is a map with a string requestId')
    return check_response(message)




def _join(uid, nsp, request):
    return encode_remote_join(uid, request.rooms, request.except_,
                                       request.rooms_arg)


def _leave(uid, nsp, request):
    return encode_remote_leave(uid, request.rooms, request.except_,
                                        request.rooms_arg)


def _disconnect(uid, nsp, request):
    return encode_remote_disconnect(uid, request.rooms, request.except_,
                                             request.close)


def _server_side_emit(uid, nsp, request):
    return encode_server_side_emit(uid, request.data, request.request_id)


def _fetch(uid, nsp, request):
    return encode_fetch_sockets(uid, request.request_id, request.rooms,
                                         request.except_)


def _all_rooms(uid, nsp, request):
    return encode_all_rooms(uid, request.request_id)


def _broadcast(uid, nsp, request):
    return encode_broadcast_request(uid, request.request_id, nsp, request.data,
                                             request.rooms, request.except_, request.flags)


# request type -> encode(uid, nsp, request): the payload on ``K-request#N#``
_REQUESTS = {
    RequestType.REMOTE_JOIN: _join,
    RequestType.REMOTE_LEAVE: _leave,
    RequestType.REMOTE_DISCONNECT: _disconnect,
    RequestType.SERVER_SIDE_EMIT: _server_side_emit,
    RequestType.REMOTE_FETCH: _fetch,
    RequestType.ALL_ROOMS: _all_rooms,
    RequestType.BROADCAST: _broadcast,
}
# what @socket.io/redis-emitter puts as uid in its notifications (it has no
# uid of its own): none at all, except in serverSideEmit
_EMITTER_UIDS = {RequestType.SERVER_SIDE_EMIT: EMITTER_UID}


def _ack(request_id, values):
    return encode_broadcast_ack(request_id, *protocol.ack_fields(values))


# answer type -> encode(request id, value): the payload on ``K-response#N#``
_ANSWERS = {
    RequestType.REMOTE_FETCH: lambda request_id, value: encode_response(
        {'requestId': request_id, 'sockets': value}),
    RequestType.SOCKETS: lambda request_id, value: encode_response(
        {'requestId': request_id, 'sockets': value}),
    RequestType.ALL_ROOMS: lambda request_id, value: encode_response(
        {'requestId': request_id, 'rooms': value}),
    # Node publishes these on the common channel whatever its options
    RequestType.SERVER_SIDE_EMIT: lambda request_id, value: encode_response({
        'type': RequestType.SERVER_SIDE_EMIT.value, 'requestId': request_id,
        'data': value}),
    RequestType.BROADCAST_CLIENT_COUNT: encode_client_count,
    RequestType.BROADCAST_ACK: _ack,
}
# the answer of a legacy per-socket join, leave or disconnect: its id only
for _legacy in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE,
                RequestType.REMOTE_DISCONNECT):
    _ANSWERS[_legacy] = lambda request_id, value: encode_response(
        {'requestId': request_id})


_REQUEST_TYPES = frozenset(kind.value for kind in RequestType)
# answers without a type, recognised by their field
_RESPONSE_SHAPES = (('rooms', 'ALL_ROOMS'), ('sockets', 'REMOTE_FETCH'),
                    ('data', 'SERVER_SIDE_EMIT'))


def _response_name(body):
    kind = body.get('type')
    if kind in (RequestType.BROADCAST_CLIENT_COUNT, RequestType.BROADCAST_ACK):
        return RequestType(kind).name
    if isinstance(kind, int) and kind in _REQUEST_TYPES:
        return RequestType(kind).name + '_RESPONSE'
    return next((name for field, name in _RESPONSE_SHAPES if field in body),
                'EMPTY') + '_RESPONSE'


class ClassicDialect:
    """The classic wire mode under the channel prefix ``key``.

    :param subscription_mode: ignored (one pattern covers every room).
    :param emitter: lay notifications out as ``@socket.io/redis-emitter``
                    does (uid ``emitter`` or none, its ``opts`` order).
    """
    name = 'classic'
    sharded = False   # PUBLISH/PSUBSCRIBE (not SPUBLISH/SSUBSCRIBE)
    has_all_rooms = True

    def __init__(self, key=protocol.DEFAULT_KEY, subscription_mode=None, emitter=False):
        # subscription_mode: sharded mode's; classic has no room channels
        self.key = key
        self.emitter = emitter
        self.channels = functools.lru_cache(maxsize=1024)(self._channels)

    def _channels(self, nsp):
        return protocol.Channels(self.key, nsp)

    # ------------------------------------------------------------ channels

    def subscriptions(self, nsp, uid):
        """One pattern for every broadcast of ``nsp``; its request channel
        (Node counts servers with NUMSUB on it) and both response channels."""
        channels = self.channels(nsp)
        return Subscriptions(
            channels=(channels.request, channels.response, channels.response_for(uid)),
            patterns=(channels.broadcast_pattern,))

    def servers_channel(self, nsp):
        """The channel whose subscribers are the servers of ``nsp``."""
        return self.channels(nsp).request

    def response_channels(self, nsp, uid):
        """Where the answers to ``uid``'s requests come."""
        channels = self.channels(nsp)
        return [channels.response, channels.response_for(uid)]

    def room_channel(self, nsp, room, is_local_sid):
        """None: one pattern covers every room."""
        return None

    # ------------------------------------------------------------ encoding

    def encode_broadcast(self, nsp, uid, data, rooms=(), except_=(), flags=None):
        """A broadcast of ``data = [event, *args]`` to ``rooms``/``except_``."""
        channels = self.channels(nsp)
        rooms = protocol.unique_rooms(rooms)
        if self.emitter:
            payload = encode_broadcast(EMITTER_UID, nsp, data, rooms, except_,
                                                flags, emitter_order=True)
        else:
            payload = encode_broadcast(uid, nsp, data, rooms, except_, flags)
        return Outgoing(channels.for_rooms(rooms), payload, channels)

    def encode_request(self, nsp, uid, request):
        """The :class:`~sio_redis_sync.protocol.Request` ``request`` (a
        notification when it has no ``request_id``), sent by ``uid``.

        :raises sio_redis_sync.SioRedisError: for a request this mode lacks.
        """
        if self.emitter and request.request_id is None:
            uid = _EMITTER_UIDS.get(request.type)
        channels = self.channels(nsp)
        return Outgoing(channels.request, _REQUESTS[request.type](uid, nsp, request),
                        channels)

    def encode_answer(self, nsp, uid, request, kind, value):
        """The answer of type ``kind`` to ``request``: the request's own type,
        or ``BROADCAST_CLIENT_COUNT``/``BROADCAST_ACK`` (value: every value
        of one client's ack) for a ``BROADCAST``."""
        return Outgoing(self.channels(nsp).response,
                        _ANSWERS[kind](request.request_id, value), None)

    def check_request(self, kind):
        """Every request type exists in classic mode."""

    # ------------------------------------------------------------ decoding

    def decode(self, nsp, channel, payload):
        """What ``payload``, read on ``channel`` (bytes) of a subscription of
        ``nsp``, is: a Broadcast, a Request, a Response, or Ignored.

        :raises sio_redis_sync.ProtocolError: if it is malformed.
        """
        channels = self.channels(nsp)
        if channel == channels.request_bytes:
            return decode_request(payload)
        if channel.startswith(channels.response_prefix_bytes):
            response = decode_response(payload)
            return Response(response['requestId'], response)
        message = decode_broadcast(payload)
        if message.nsp != nsp:
            return Ignored('a broadcast for %r on %r' % (message.nsp, channel),
                           message.uid, 'BROADCAST', message.nsp)
        return message

    def decode_answer(self, payload):
        """An answer read on a response channel, as a Response.

        :raises sio_redis_sync.ProtocolError: if it is malformed.
        """
        response = decode_response(payload)
        return Response(response['requestId'], response)

    def wire_name(self, message):
        """The name of a decoded message's type on the wire (what a monitor
        shows): ``BROADCAST``, a request type, ``<type>_RESPONSE`` (answers
        without a type are named by their field), ``BROADCAST_CLIENT_COUNT``,
        ``BROADCAST_ACK``, or ``IGNORED``."""
        if isinstance(message, Request):
            return message.type.name
        if isinstance(message, Response):
            return _response_name(message.body)
        return 'IGNORED' if isinstance(message, Ignored) else 'BROADCAST'

    def channel_room(self, nsp, channel):
        """The room a single-room broadcast ``channel`` (bytes) names, or
        None: the listener skips those of rooms it does not host, undecoded."""
        channels = self.channels(nsp)
        if channel == channels.broadcast_bytes or \
                not channel.startswith(channels.broadcast_bytes):
            return None
        return channels.room_of(channel.decode('utf-8', 'replace'))
