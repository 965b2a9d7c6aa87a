"""The classic dialect (Node's ``createAdapter``, ``@socket.io/redis-emitter``):
what each operation becomes on the wire, and what each message read means.

Pure: no I/O, no manager. Bytes come from :mod:`sio_redis_sync.protocol`'s
codecs; channels are ``K#N#[room#]``, ``K-request#N#``, ``K-response#N#[uid#]``.
"""
import functools

from . import protocol
from .protocol import (EMITTER_UID, Ignored, Outgoing, Request, RequestType, Response,
                       Subscriptions)

__all__ = ['ClassicDialect']


def _join(uid, nsp, request):
    return protocol.encode_remote_join(uid, request.rooms, request.except_,
                                       request.rooms_arg)


def _leave(uid, nsp, request):
    return protocol.encode_remote_leave(uid, request.rooms, request.except_,
                                        request.rooms_arg)


def _disconnect(uid, nsp, request):
    return protocol.encode_remote_disconnect(uid, request.rooms, request.except_,
                                             request.close)


def _server_side_emit(uid, nsp, request):
    return protocol.encode_server_side_emit(uid, request.data, request.request_id)


def _fetch(uid, nsp, request):
    return protocol.encode_fetch_sockets(uid, request.request_id, request.rooms,
                                         request.except_)


def _all_rooms(uid, nsp, request):
    return protocol.encode_all_rooms(uid, request.request_id)


def _broadcast(uid, nsp, request):
    return protocol.encode_broadcast_request(uid, request.request_id, nsp, request.data,
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
    return protocol.encode_broadcast_ack(request_id, *protocol.ack_fields(values))


# answer type -> encode(request id, value): the payload on ``K-response#N#``
_ANSWERS = {
    RequestType.REMOTE_FETCH: lambda request_id, value: protocol.encode_response(
        {'requestId': request_id, 'sockets': value}),
    RequestType.SOCKETS: lambda request_id, value: protocol.encode_response(
        {'requestId': request_id, 'sockets': value}),
    RequestType.ALL_ROOMS: lambda request_id, value: protocol.encode_response(
        {'requestId': request_id, 'rooms': value}),
    # Node publishes these on the common channel whatever its options
    RequestType.SERVER_SIDE_EMIT: lambda request_id, value: protocol.encode_response({
        'type': RequestType.SERVER_SIDE_EMIT.value, 'requestId': request_id,
        'data': value}),
    RequestType.BROADCAST_CLIENT_COUNT: protocol.encode_client_count,
    RequestType.BROADCAST_ACK: _ack,
}
# the answer of a legacy per-socket join, leave or disconnect: its id only
for _legacy in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE,
                RequestType.REMOTE_DISCONNECT):
    _ANSWERS[_legacy] = lambda request_id, value: protocol.encode_response(
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
            payload = protocol.encode_broadcast(EMITTER_UID, nsp, data, rooms, except_,
                                                flags, emitter_order=True)
        else:
            payload = protocol.encode_broadcast(uid, nsp, data, rooms, except_, flags)
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
            return protocol.decode_request(payload)
        if channel.startswith(channels.response_prefix_bytes):
            response = protocol.decode_response(payload)
            return Response(response['requestId'], response)
        message = protocol.decode_broadcast(payload)
        if message.nsp != nsp:
            return Ignored('a broadcast for %r on %r' % (message.nsp, channel),
                           message.uid, 'BROADCAST', message.nsp)
        return message

    def decode_answer(self, payload):
        """An answer read on a response channel, as a Response.

        :raises sio_redis_sync.ProtocolError: if it is malformed.
        """
        response = protocol.decode_response(payload)
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
