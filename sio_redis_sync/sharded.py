"""The sharded dialect (Node's ``createShardedAdapter``, Redis >= 7): what each
operation becomes on the wire, and what each message read means.

Pure: no I/O, no manager. Envelopes ``{type, data, uid, nsp}`` come from
:mod:`sio_redis_sync.envelope`; channels are ``K#N#``, ``K#N#<uid>#`` and
``K#N#<room>#``. The Redis Cluster I/O is :mod:`sio_redis_sync.redis_cluster`.
"""
import functools

from . import envelope, protocol
from .envelope import MessageType
from .exceptions import SioRedisError
from .protocol import (EMITTER_UID, Ignored, Outgoing, Request, RequestType, Response,
                       Subscriptions)

__all__ = ['ShardedDialect']


def _broadcast(request, nsp):
    return envelope.broadcast_data(request.data, request.rooms, request.except_,
                                   request.flags, request.request_id)


# request type -> (envelope type, data(request, nsp))
_REQUESTS = {
    RequestType.REMOTE_JOIN: (MessageType.SOCKETS_JOIN, lambda request, nsp: envelope.join_data(
        request.rooms, request.except_, request.rooms_arg)),
    RequestType.REMOTE_LEAVE: (MessageType.SOCKETS_LEAVE, lambda request, nsp: envelope.join_data(
        request.rooms, request.except_, request.rooms_arg)),
    RequestType.REMOTE_DISCONNECT: (
        MessageType.DISCONNECT_SOCKETS, lambda request, nsp: envelope.disconnect_data(
            request.rooms, request.except_, request.close)),
    RequestType.SERVER_SIDE_EMIT: (
        MessageType.SERVER_SIDE_EMIT, lambda request, nsp: envelope.server_side_emit_data(
            request.data, request.request_id)),
    RequestType.REMOTE_FETCH: (MessageType.FETCH_SOCKETS, lambda request, nsp: envelope.fetch_data(
        request.request_id, request.rooms, request.except_)),
    RequestType.BROADCAST: (MessageType.BROADCAST, _broadcast),
}
# answer type -> the envelope type of the answer
_ANSWERS = {
    RequestType.REMOTE_FETCH: MessageType.FETCH_SOCKETS_RESPONSE,
    RequestType.SERVER_SIDE_EMIT: MessageType.SERVER_SIDE_EMIT_RESPONSE,
    RequestType.BROADCAST_CLIENT_COUNT: MessageType.BROADCAST_CLIENT_COUNT,
    RequestType.BROADCAST_ACK: MessageType.BROADCAST_ACK,
}


# a response's classic type -> its envelope type (FETCH_SOCKETS_RESPONSE has none)
_RESPONSE_NAMES = {
    RequestType.SERVER_SIDE_EMIT: MessageType.SERVER_SIDE_EMIT_RESPONSE,
    RequestType.BROADCAST_CLIENT_COUNT: MessageType.BROADCAST_CLIENT_COUNT,
    RequestType.BROADCAST_ACK: MessageType.BROADCAST_ACK,
}


class ShardedDialect:
    """The sharded wire mode under the channel prefix ``key``.

    :param subscription_mode: ``static``, ``dynamic`` or ``dynamic-private``
                              (Node's ``subscriptionMode``): which rooms have
                              a channel of their own.
    :param emitter: lay notifications out as an emitter does (uid
                    ``emitter``, ``{uid, nsp, type, data}``, ``nsp`` in the
                    broadcast packet).
    """
    name = 'sharded'
    sharded = True   # SPUBLISH/SSUBSCRIBE
    has_all_rooms = False

    def __init__(self, key=protocol.DEFAULT_KEY, subscription_mode=envelope.DYNAMIC,
                 emitter=False):
        self.key = key
        self.subscription_mode = envelope.check_mode(subscription_mode)
        self.emitter = emitter
        self.channels = functools.lru_cache(maxsize=1024)(self._channels)

    def _channels(self, nsp):
        return envelope.ShardedChannels(self.key, nsp)

    # ------------------------------------------------------------ channels

    def subscriptions(self, nsp, uid):
        """``K#N#`` (every message) and ``K#N#<uid>#`` (answers to ``uid``);
        room channels come and go with the rooms (:meth:`room_channel`)."""
        channels = self.channels(nsp)
        return Subscriptions(channels=(channels.main, channels.response_for(uid)))

    def servers_channel(self, nsp):
        """The channel whose subscribers are the servers of ``nsp``."""
        return self.channels(nsp).main

    def response_channels(self, nsp, uid):
        """Where the answers to ``uid``'s requests come."""
        return [self.channels(nsp).response_for(uid)]

    def room_channel(self, nsp, room, is_local_sid):
        """The channel a server subscribes while it hosts ``room`` (Node's
        ``shouldUseASeparateNamespace``), or None."""
        if not envelope.subscribes_room(self.subscription_mode, room, is_local_sid):
            return None
        return self.channels(nsp).room(room)

    # ------------------------------------------------------------ encoding

    def _envelope(self, kind, data, uid, nsp, emitter_order=False):
        return envelope.encode_envelope(kind, data, uid, nsp, emitter_order=emitter_order)

    def encode_broadcast(self, nsp, uid, data, rooms=(), except_=(), flags=None):
        """A broadcast of ``data = [event, *args]`` to ``rooms``/``except_``,
        on the room's channel when the subscription mode routes it there."""
        channels = self.channels(nsp)
        rooms = protocol.unique_rooms(rooms)
        body = envelope.broadcast_data(data, rooms, except_, flags,
                                       nsp=nsp if self.emitter else None)
        if self.emitter:
            payload = self._envelope(MessageType.BROADCAST, body, EMITTER_UID, nsp, True)
        else:
            payload = self._envelope(MessageType.BROADCAST, body, uid, nsp)
        return Outgoing(channels.for_broadcast(self.subscription_mode, rooms), payload,
                        channels)

    def encode_request(self, nsp, uid, request):
        """The :class:`~sio_redis_sync.protocol.Request` ``request`` (a
        notification when it has no ``request_id``), sent by ``uid``.

        :raises sio_redis_sync.SioRedisError: for ALL_ROOMS (Node's sharded
                                               adapter has no such request).
        """
        self.check_request(request.type)
        kind, data_of = _REQUESTS[request.type]
        channels = self.channels(nsp)
        notification = self.emitter and request.request_id is None
        payload = self._envelope(kind, data_of(request, nsp),
                                 EMITTER_UID if notification else uid, nsp, notification)
        return Outgoing(channels.main, payload, channels)

    def encode_answer(self, nsp, uid, request, kind, value):
        """The answer of type ``kind`` (see :meth:`ClassicDialect.encode_answer`)
        to ``request``, on the requester's own channel."""
        packets = None
        if kind == RequestType.BROADCAST_ACK:  # value: every value of one ack
            value, packets = protocol.ack_fields(value)
        kind = _ANSWERS[kind]
        data = envelope.response_data(kind, request.request_id, value, packets=packets)
        return Outgoing(self.channels(nsp).response_for(request.uid),
                        self._envelope(kind, data, uid, nsp), None)

    def check_request(self, kind):
        """:raises sio_redis_sync.SioRedisError: for ALL_ROOMS."""
        if kind not in _REQUESTS:
            raise SioRedisError("all_rooms() does not exist in sharded mode: Node's "
                                'sharded adapter has no such request')

    # ------------------------------------------------------------ decoding

    def decode(self, nsp, channel, payload):
        """What ``payload``, read on ``channel`` of a subscription of ``nsp``,
        is: a Broadcast, a Request, a Response, or Ignored (another
        namespace's, heartbeats, ADAPTER_CLOSE).

        :raises sio_redis_sync.ProtocolError: if it is malformed.
        """
        message = envelope.decode_envelope(payload)
        if message.nsp != nsp:
            return Ignored('a message for %r on %r' % (message.nsp, channel), message.uid,
                           message.type.name, message.nsp)
        return envelope.message_of(message, '')

    def decode_answer(self, payload):
        """An answer read on ``K#N#<uid>#``, as a Response (None for another
        kind of message).

        :raises sio_redis_sync.ProtocolError: if it is malformed.
        """
        message = envelope.decode_envelope(payload)
        response = envelope.response_of(message)
        if response is None:
            return None
        return Response(response['requestId'], response, message.uid)

    def wire_name(self, message):
        """The name of a decoded message's envelope type (what a monitor
        shows): ``BROADCAST``, ``SOCKETS_JOIN``, ..., ``HEARTBEAT``."""
        if isinstance(message, Request):
            return _REQUESTS[message.type][0].name
        if isinstance(message, Response):
            return _RESPONSE_NAMES.get(message.body.get('type'),
                                       MessageType.FETCH_SOCKETS_RESPONSE).name
        if isinstance(message, Ignored):
            return message.kind or 'IGNORED'
        return MessageType.BROADCAST.name

    def channel_room(self, nsp, channel):
        """None: a room's channel is subscribed only while the room is here."""
        return None
