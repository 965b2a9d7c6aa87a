"""The sharded wire protocol of @socket.io/redis-adapter 8.3.0 (createShardedAdapter).

Pure and sans-IO: message types, channel names and the channel choice per
subscription mode, and bytes <-> envelopes ``{type, data, uid, nsp}``; incoming
envelopes are also translated into the classic shapes (``protocol.Broadcast``,
``protocol.Request``, response dicts) that the manager already handles.
Decoders of untrusted bytes return a value or raise :class:`ProtocolError`.
"""
import enum
import functools
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

from . import protocol
from .exceptions import ProtocolError
from .protocol import RequestType

#: subscription modes of Node's ``createShardedAdapter`` (option
#: ``subscriptionMode``); every server of a namespace must use the same one
STATIC = 'static'
DYNAMIC = 'dynamic'
DYNAMIC_PRIVATE = 'dynamic-private'
SUBSCRIPTION_MODES = (STATIC, DYNAMIC, DYNAMIC_PRIVATE)
# Node's looksLikeASocketId: in mode dynamic, a single-room broadcast to a
# 20-character room goes to the main channel (sids are 20 characters long)
SOCKET_ID_LENGTH = 20


class MessageType(enum.IntEnum):
    """``MessageType`` of socket.io-adapter's ClusterAdapter.

    Wire values: must match socket.io-adapter 2.5.x; never renumber.
    """
    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13


#: the values of MessageType
TYPE_VALUES = frozenset(kind.value for kind in MessageType)
#: types whose data may carry binary: msgpack when it does (Node's encode())
MAY_CONTAIN_BINARY = frozenset((
    MessageType.BROADCAST, MessageType.BROADCAST_ACK,
    MessageType.FETCH_SOCKETS_RESPONSE, MessageType.SERVER_SIDE_EMIT,
    MessageType.SERVER_SIDE_EMIT_RESPONSE))
#: types sent without data (ClusterAdapterWithHeartbeat's; ignored here)
NO_DATA = frozenset((MessageType.INITIAL_HEARTBEAT, MessageType.HEARTBEAT,
                      MessageType.ADAPTER_CLOSE))
#: the response types: handled as answers to this server's requests
RESPONSE_TYPES = frozenset((
    MessageType.FETCH_SOCKETS_RESPONSE, MessageType.SERVER_SIDE_EMIT_RESPONSE,
    MessageType.BROADCAST_CLIENT_COUNT, MessageType.BROADCAST_ACK))


def check_mode(mode):
    """``mode`` if it is a subscription mode, else ValueError."""
    if mode not in SUBSCRIPTION_MODES:
        raise ValueError('subscription_mode must be one of %s, got %r'
                         % (', '.join(SUBSCRIPTION_MODES), mode))
    return mode


@dataclass(frozen=True)
class ShardedChannels:
    """Channel names of one namespace ``nsp`` under the prefix ``key``:
    ``key#nsp#`` (every message), ``key#nsp#<uid>#`` (answers to ``uid``),
    ``key#nsp#<room>#`` (single-room broadcasts in the dynamic modes)."""
    key: str
    nsp: str
    #: a room channel reaches only the servers hosting the room: the
    #: delivery check counts each apart (see ``DeliveryCheck.check_room``)
    rooms_counted_apart = True

    @functools.cached_property
    def main(self) -> str:
        return '%s#%s#' % (self.key, self.nsp)

    @functools.cached_property
    def main_bytes(self) -> bytes:
        return self.main.encode('utf-8')

    # what the Publisher's delivery check reads (one group: the main channel)
    @property
    def request(self) -> str:
        return self.main

    @property
    def broadcast(self) -> str:
        return self.main

    def response_for(self, uid: str) -> str:
        """The channel of the answers to the server (or emitter) ``uid``."""
        return '%s%s#' % (self.main, uid)

    def room(self, room) -> str:
        """The channel of single-room broadcasts to ``room``."""
        return '%s%s#' % (self.main, room)

    def for_broadcast(self, mode: str, rooms, with_ack: bool = False) -> str:
        """Where a BROADCAST goes (Node's ``computeChannel``): the room's
        channel if it has no ack, exactly one room and (mode ``dynamic`` and
        the room does not look like a socket id, or mode
        ``dynamic-private``); else the main channel."""
        if not with_ack and len(rooms) == 1 and (
                (mode == DYNAMIC and not looks_like_socket_id(rooms[0]))
                or mode == DYNAMIC_PRIVATE):
            return self.room(rooms[0])
        return self.main


def looks_like_socket_id(room) -> bool:
    """Node's ``looksLikeASocketId``: a string of 20 characters."""
    return isinstance(room, str) and len(room) == SOCKET_ID_LENGTH


def subscribes_room(mode: str, room, is_local_sid: bool) -> bool:
    """Whether a server listens on ``room``'s channel while it hosts the
    room (Node's ``shouldUseASeparateNamespace``): never in ``static``; in
    ``dynamic`` unless the room is the id of one of its own sockets; always
    in ``dynamic-private``. The internal ``None`` room never."""
    if room is None:
        return False
    return (mode == DYNAMIC and not is_local_sid) or mode == DYNAMIC_PRIVATE


# ---------------------------------------------------------------- encoding

def has_binary(value) -> bool:
    """True if ``value`` holds bytes anywhere (Node's ``hasBinary``)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return True
    if isinstance(value, (list, tuple)):
        return any(has_binary(item) for item in value)
    if isinstance(value, dict):
        return any(has_binary(item) for item in value.values())
    return False


def encode_envelope(kind: MessageType, data: Optional[dict], uid: str, nsp: str,
                    emitter_order: bool = False) -> bytes:
    """One envelope, as Node lays it out: ``{type, data, uid, nsp}`` (data
    left out when None); msgpack of the whole envelope when ``kind`` may
    carry binary and ``data`` does, else JSON.

    :param emitter_order: lay it out ``{uid, nsp, type, data}`` (the layout
                          verified for an emitter).
    :raises TypeError: if a value cannot be encoded.
    """
    if emitter_order:
        message = {'uid': uid, 'nsp': nsp, 'type': int(kind)}
        if data is not None:
            message['data'] = data
    else:
        message = {'type': int(kind)}
        if data is not None:
            message['data'] = data
        message['uid'] = uid
        message['nsp'] = nsp
    if kind in MAY_CONTAIN_BINARY and has_binary(data):
        return protocol.dumps_msgpack(message)
    return protocol.dumps_json(message)


def _opts(rooms, except_, flags=None) -> dict:
    return {'rooms': protocol.unique_rooms(rooms),
            'except': protocol.unique_rooms(except_), 'flags': flags or {}}


def broadcast_data(data: list, rooms=(), except_=(), flags=None,
                   request_id=None, nsp=None) -> dict:
    """The ``data`` of a BROADCAST of ``[event, *args]`` (with
    ``request_id``: a broadcast whose clients' acks come back). The packet
    carries ``nsp`` only if given (Node's servers leave it out)."""
    packet = {'type': protocol.EVENT, 'data': data}
    if nsp is not None:
        packet['nsp'] = nsp
    body: dict = {'packet': packet}
    if request_id is not None:
        body['requestId'] = request_id
    body['opts'] = _opts(rooms, except_, flags)
    return body


def join_data(rooms, except_, join) -> dict:
    """The ``data`` of SOCKETS_JOIN / SOCKETS_LEAVE."""
    return {'opts': _opts(rooms, except_), 'rooms': protocol.unique_rooms(join)}


def disconnect_data(rooms, except_, close=False) -> dict:
    """The ``data`` of DISCONNECT_SOCKETS."""
    return {'opts': _opts(rooms, except_), 'close': bool(close)}


def fetch_data(request_id, rooms=(), except_=(), flags=None) -> dict:
    """The ``data`` of FETCH_SOCKETS."""
    return {'opts': _opts(rooms, except_, flags), 'requestId': request_id}


def server_side_emit_data(data: list, request_id=None) -> dict:
    """The ``data`` of SERVER_SIDE_EMIT of ``[event, *args]``."""
    if request_id is None:
        return {'packet': data}
    return {'requestId': request_id, 'packet': data}


def response_data(kind: MessageType, request_id, value, packets=None) -> dict:
    """The ``data`` of a response: ``sockets`` (8), ``packet`` (10, 12) or
    ``clientCount`` (11).

    :param packets: for BROADCAST_ACK (12), every value of the client's ack
                    as a list (``value`` is its first, Node's ``packet``):
                    carried in the extra field ``packets`` that Node ignores
                    and Python servers read; None leaves it out.
    """
    field = _RESPONSE_FIELDS[kind][0]
    data = {'requestId': request_id, field: value}
    if packets is not None:
        data['packets'] = list(packets)
    return data


# ---------------------------------------------------------------- decoding

class Envelope(NamedTuple):
    """A decoded sharded message."""
    type: MessageType
    data: Any
    uid: str
    nsp: str


def decode_envelope(payload: bytes) -> Envelope:
    """Decode a sharded message (JSON if it starts with ``{``, else msgpack).

    :raises ProtocolError: if it is not a map with a known ``type``, a
        string ``uid`` and a string ``nsp`` (mandatory: Node's servers drop
        messages without it), and a map ``data`` for the types that have one.
    """
    if not payload:
        raise ProtocolError('empty message')
    message = protocol.loads_auto(payload)
    if not isinstance(message, dict):
        raise ProtocolError('a sharded message is a map')
    kind = message.get('type')
    if not isinstance(kind, int) or isinstance(kind, bool) or \
            kind not in TYPE_VALUES:
        raise ProtocolError('unknown message type %s' % protocol.quote(kind))
    kind = MessageType(kind)
    uid, nsp = message.get('uid'), message.get('nsp')
    if not isinstance(uid, str):
        raise ProtocolError('uid must be a string, got %s' % protocol.quote(uid))
    if not isinstance(nsp, str):
        raise ProtocolError('nsp must be a string (servers drop messages '
                            'without it), got %s' % protocol.quote(nsp))
    data = message.get('data')
    if kind not in NO_DATA and not isinstance(data, dict):
        raise ProtocolError('%s needs a map data, got %s'
                            % (kind.name, type(data).__name__))
    return Envelope(kind, data, uid, nsp)


def _event_data(value, what):
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise ProtocolError('%s must be [event, ...args]' % what)
    return value


def _request_id(data, required):
    request_id = data.get('requestId')
    if request_id is None and not required:
        return None
    if not isinstance(request_id, str):
        raise ProtocolError('requestId must be a string, got %s'
                            % protocol.quote(request_id))
    return request_id


def broadcast_of(envelope: Envelope) -> protocol.Broadcast:
    """A BROADCAST without ``requestId`` as the classic
    :class:`~sio_redis_sync.protocol.Broadcast` (``nsp`` from the envelope).

    :raises ProtocolError: if its packet or opts are malformed.
    """
    data = envelope.data
    packet = protocol.as_dict(data.get('packet'), 'packet')
    if packet.get('type', protocol.EVENT) != protocol.EVENT:
        raise ProtocolError('broadcast packet type must be 2 (EVENT), got %s'
                            % protocol.quote(packet.get('type')))
    selection = protocol.parse_selection(data)
    return protocol.Broadcast(
        uid=envelope.uid, nsp=envelope.nsp,
        data=_event_data(packet.get('data'), 'packet data'),
        rooms=selection['rooms'], except_=selection['except_'],
        flags=selection['flags'])


def _broadcast_request(data):
    packet = protocol.as_dict(data.get('packet'), 'packet')
    _event_data(packet.get('data'), 'packet data')
    return {**protocol.parse_selection(data), 'packet': packet}


def _join_leave(data):
    return {**protocol.parse_selection(data),
            'rooms_arg': protocol.room_list(data.get('rooms'), 'rooms')}


def _disconnect(data):
    return {**protocol.parse_selection(data),
            'close': protocol.as_bool(data, 'close')}


def _server_side_emit(data):
    return {'data': _event_data(data.get('packet'), 'server-side emit packet')}


# sharded type -> (classic request type, parser of data, requestId required)
_REQUESTS = {
    MessageType.BROADCAST: (RequestType.BROADCAST, _broadcast_request, True),
    MessageType.SOCKETS_JOIN: (RequestType.REMOTE_JOIN, _join_leave, False),
    MessageType.SOCKETS_LEAVE: (RequestType.REMOTE_LEAVE, _join_leave, False),
    MessageType.DISCONNECT_SOCKETS: (RequestType.REMOTE_DISCONNECT, _disconnect,
                                     False),
    MessageType.FETCH_SOCKETS: (RequestType.REMOTE_FETCH,
                                protocol.parse_selection, True),
    MessageType.SERVER_SIDE_EMIT: (RequestType.SERVER_SIDE_EMIT,
                                   _server_side_emit, False),
}


def request_of(envelope: Envelope) -> Optional[protocol.Request]:
    """A request or notification (BROADCAST with ``requestId``, SOCKETS_JOIN,
    SOCKETS_LEAVE, DISCONNECT_SOCKETS, FETCH_SOCKETS, SERVER_SIDE_EMIT) as
    the classic :class:`~sio_redis_sync.protocol.Request`; None for the
    types that are not requests.

    :raises ProtocolError: if its data is malformed.
    """
    entry = _REQUESTS.get(envelope.type)
    if entry is None:
        return None
    kind, parse, needs_id = entry
    data = envelope.data
    return protocol.Request(type=kind, uid=envelope.uid,
                            request_id=_request_id(data, needs_id),
                            **parse(data))


# sharded response type -> (its field, classic type or None, classic field)
_RESPONSE_FIELDS = {
    MessageType.FETCH_SOCKETS_RESPONSE: ('sockets', None, 'sockets'),
    MessageType.SERVER_SIDE_EMIT_RESPONSE: (
        'packet', RequestType.SERVER_SIDE_EMIT, 'data'),
    MessageType.BROADCAST_CLIENT_COUNT: (
        'clientCount', RequestType.BROADCAST_CLIENT_COUNT, 'clientCount'),
    MessageType.BROADCAST_ACK: ('packet', RequestType.BROADCAST_ACK, 'packet'),
}


def message_of(message: Envelope, where):
    """What an envelope of the namespace served means: a Broadcast (one
    without ``requestId``), a Request, a Response, or Ignored (another
    adapter's business); the sharded and streams dialects' one reading.

    :raises ProtocolError: if its data is malformed.
    """
    if message.type == MessageType.BROADCAST and message.data.get('requestId') is None:
        return broadcast_of(message)
    request = request_of(message)
    if request is not None:
        return request
    response = response_of(message)
    if response is not None:
        return protocol.Response(response['requestId'], response, message.uid)
    return protocol.Ignored("%s%s: other adapters' business" % (message.type.name, where),
                            message.uid, message.type.name, message.nsp)


def response_of(envelope: Envelope) -> Optional[dict]:
    """A response (8, 10, 11, 12) as the classic response dict that
    :class:`~sio_redis_sync.requests.PendingRequests` entries read; None for
    other types. A BROADCAST_ACK's ``packets`` (every value of the ack, sent
    by Python servers) is passed through.

    :raises ProtocolError: if it has no string ``requestId``, or a field is
        malformed (:func:`sio_redis_sync.protocol.check_response`: e.g. a
        ``clientCount`` that is not an integer >= 0, ``packets`` not a list).
    """
    entry = _RESPONSE_FIELDS.get(envelope.type)
    if entry is None:
        return None
    field, classic_type, classic_field = entry
    data = envelope.data
    response = {'requestId': _request_id(data, True)}
    if classic_type is not None:
        response['type'] = classic_type.value
    if field in data:
        response[classic_field] = data[field]
    if envelope.type == MessageType.BROADCAST_ACK and 'packets' in data:
        response['packets'] = data['packets']
    return protocol.check_response(response)
