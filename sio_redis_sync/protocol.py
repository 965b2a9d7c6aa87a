"""The classic wire protocol of @socket.io/redis-adapter 8.x and redis-emitter 5.x.

Pure and sans-IO: channel names, and bytes <-> values for broadcasts, requests
and responses. No redis, threading, logging or clocks here. Decoders of
untrusted bytes return a value or raise :class:`ProtocolError`, nothing else.
"""
import datetime
import enum
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, NamedTuple, Optional, Tuple

import msgpack

from .exceptions import ProtocolError

DEFAULT_KEY = 'socket.io'
# wire value: the uid @socket.io/redis-emitter puts in every message
EMITTER_UID = 'emitter'
# wire value: socket.io-parser's EVENT packet type; broadcasts never use 5
EVENT = 2


class RequestType(enum.IntEnum):
    """Request/response codes on ``K-request#N#`` / ``K-response#N#``.

    Wire values: must match @socket.io/redis-adapter 8.x; never renumber.
    """
    SOCKETS = 0
    ALL_ROOMS = 1
    REMOTE_JOIN = 2
    REMOTE_LEAVE = 3
    REMOTE_DISCONNECT = 4
    REMOTE_FETCH = 5
    SERVER_SIDE_EMIT = 6
    BROADCAST = 7
    BROADCAST_CLIENT_COUNT = 8
    BROADCAST_ACK = 9


_GLOB_SPECIAL = re.compile(r'([\\*?\[\]])')


@dataclass(frozen=True)
class Channels:
    """Channel names of one namespace ``nsp`` under the prefix ``key``
    (each computed once: they are read for every message)."""
    key: str
    nsp: str
    #: every room channel reaches the same pattern subscribers as
    #: :attr:`broadcast`: the delivery check keeps one count for all of them
    rooms_counted_apart = False

    @functools.cached_property
    def broadcast(self) -> str:
        return '%s#%s#' % (self.key, self.nsp)

    @functools.cached_property
    def broadcast_bytes(self) -> bytes:
        """:attr:`broadcast` as Redis hands it to subscribers."""
        return self.broadcast.encode('utf-8')

    @functools.cached_property
    def broadcast_pattern(self) -> str:
        """PSUBSCRIBE pattern matching every broadcast channel of ``nsp``."""
        return _GLOB_SPECIAL.sub(r'\\\1', self.broadcast) + '*'

    @functools.cached_property
    def request(self) -> str:
        return '%s-request#%s#' % (self.key, self.nsp)

    @functools.cached_property
    def response(self) -> str:
        return '%s-response#%s#' % (self.key, self.nsp)

    def response_for(self, uid: str) -> str:
        """The response channel addressed to the server ``uid``."""
        return '%s-response#%s#%s#' % (self.key, self.nsp, uid)

    def for_rooms(self, rooms) -> str:
        """Where a broadcast to ``rooms`` goes: the room's own channel when
        there is exactly one room, else the namespace channel."""
        if len(rooms) == 1:
            return '%s%s#' % (self.broadcast, rooms[0])
        return self.broadcast

    def room_of(self, channel: str) -> Optional[str]:
        """The room encoded in a broadcast ``channel`` name, or None."""
        prefix = self.broadcast
        if len(channel) > len(prefix) and channel.startswith(prefix) \
                and channel.endswith('#'):
            return channel[len(prefix):-1]
        return None


# ---------------------------------------------------------------- encoding

def _buffer_json(value):
    # JSON.stringify(Buffer) gives {"type":"Buffer","data":[...]}; match it so
    # Node peers see exactly what a Node sender would have produced.
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {'type': 'Buffer', 'data': list(bytes(value))}
    raise TypeError('Object of type %s is not JSON serializable'
                    % type(value).__name__)


def dumps_json(obj) -> bytes:
    """``JSON.stringify``-compatible bytes (compact, raw UTF-8)."""
    try:
        # allow_nan=False: NaN/Infinity are not JSON and Node's JSON.parse
        # rejects them; they raise TypeError here like any unsendable value
        return json.dumps(obj, separators=(',', ':'), ensure_ascii=False,
                          allow_nan=False, default=_buffer_json).encode('utf-8')
    except (ValueError, OverflowError, RecursionError) as exc:
        raise TypeError('cannot encode %r as JSON: %s' % (obj, exc)) from exc


def dumps_msgpack(obj) -> bytes:
    """notepack.io-compatible msgpack (bytes become ``bin``).

    :raises TypeError: if ``obj`` holds a value msgpack cannot carry.
    """
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except (ValueError, OverflowError) as exc:
        raise TypeError('cannot encode %r as msgpack: %s' % (obj, exc)) from exc


def as_rooms(value) -> tuple:
    """python-socketio's and Node's room arguments: None, one room, or a
    list/tuple/set of them."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(value)
    return (value,)


def as_args(data) -> list:
    """python-socketio's ``data`` argument: a tuple is several arguments,
    None is none, anything else is one."""
    if isinstance(data, tuple):
        return list(data)
    return [] if data is None else [data]


def unique_rooms(rooms) -> list:
    """Deduplicate, keep the order (Node keeps rooms in a Set)."""
    return list(dict.fromkeys(rooms)) if rooms else []


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


def encode_broadcast_ack(request_id, packet) -> bytes:
    """BROADCAST_ACK (9): one client's ack (its first argument), msgpack."""
    return dumps_msgpack({'type': RequestType.BROADCAST_ACK.value,
                          'requestId': request_id, 'packet': packet})


def encode_response(body: dict) -> bytes:
    """A JSON response (every response type but BROADCAST_ACK)."""
    return dumps_json(body)


# ---------------------------------------------------------------- decoding

def _iso(dt: datetime.datetime) -> str:
    # Date.prototype.toISOString: what a Node client would have received
    return '%s.%03dZ' % (dt.strftime('%Y-%m-%dT%H:%M:%S'), dt.microsecond // 1000)


def _ext_hook(code, data):
    # notepack.io: fixext1 type 0 = undefined, fixext8 type 0 = legacy Date
    # (ms as int64), other type 0 = ArrayBuffer, any other ext = [type, bytes]
    if code == 0:
        if data == b'\x00':
            return None
        if len(data) == 8:
            ms = int.from_bytes(data, 'big', signed=True)
            epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
            return _iso(epoch + datetime.timedelta(milliseconds=ms))
        return data
    return [code, data]


def _dates_to_iso(value):
    if isinstance(value, datetime.datetime):
        return _iso(value)
    if isinstance(value, list):
        return [_dates_to_iso(v) for v in value]
    if isinstance(value, dict):
        return {k: _dates_to_iso(v) for k, v in value.items()}
    return value


_TIMESTAMP_MARKERS = (b'\xd6\xff', b'\xd7\xff', b'\xc7\x0c\xff')
_DECODE_ERRORS = (msgpack.UnpackException, ValueError, TypeError,
                  OverflowError, RecursionError)


def loads_msgpack(payload: bytes):
    """Decode notepack.io msgpack; timestamps become ISO strings.

    :raises ProtocolError: on anything that is not exactly one valid value.
    """
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=False,
                                timestamp=3, ext_hook=_ext_hook)
    except _DECODE_ERRORS as exc:
        raise ProtocolError('invalid msgpack: %s' % exc) from exc
    # every timestamp marker holds 0xff: one scan rules them all out
    if b'\xff' in payload and any(marker in payload for marker in _TIMESTAMP_MARKERS):
        value = _dates_to_iso(value)
    return value


def loads_auto(payload: bytes):
    """Decode by the first-byte rule: ``{`` means JSON, else msgpack."""
    if payload[:1] != b'{':
        return loads_msgpack(payload)
    try:
        return json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError('invalid JSON: %s' % exc) from exc


def _room_list(value, what) -> Tuple:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProtocolError('%s must be an array, got %s'
                            % (what, type(value).__name__))
    for room in value:
        if not isinstance(room, (str, int)) or isinstance(room, bool):
            raise ProtocolError('%s must hold strings, got %s'
                                % (what, type(room).__name__))
    return tuple(value)


def _dict(value, what) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError('%s must be a map, got %s'
                            % (what, type(value).__name__))
    return value


class Broadcast(NamedTuple):
    """A decoded broadcast: deliver ``data`` (``[event, *args]``) in ``nsp``
    to the members of ``rooms`` (all sockets if empty) minus ``except_``.

    A named tuple: one is made for every message the listener reads.
    """
    uid: str
    nsp: str
    data: list
    rooms: Tuple = ()
    except_: Tuple = ()
    flags: Dict[str, Any] = {}  # never mutated: decoders pass their own


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
    packet, opts = _dict(packet, 'packet'), _dict(opts, 'opts')
    if packet.get('type') != EVENT:
        raise ProtocolError('broadcast packet type must be 2 (EVENT), got %r'
                            % (packet.get('type'),))
    data = packet.get('data')
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ProtocolError('packet data must be [event, ...args]')
    nsp = packet.get('nsp', '/')
    if not isinstance(nsp, str):
        raise ProtocolError('packet nsp must be a string')
    return Broadcast(uid=uid, nsp=nsp, data=data,
                     rooms=_room_list(opts.get('rooms'), 'rooms'),
                     except_=_room_list(opts.get('except'), 'except'),
                     flags=_dict(opts.get('flags'), 'flags'))


@dataclass(frozen=True)
class Request:
    """A decoded request from ``K-request#N#``.

    ``rooms``/``except_`` select the target sockets (``opts``); ``rooms_arg``
    is the ``rooms`` field of REMOTE_JOIN/LEAVE (the rooms to join or leave).
    ``sid``/``room`` are set by the legacy per-socket forms only.
    """
    type: RequestType
    uid: Optional[str] = None
    request_id: Optional[str] = None
    rooms: Tuple = ()
    except_: Tuple = ()
    flags: Dict[str, Any] = field(default_factory=dict)
    rooms_arg: Tuple = ()
    close: bool = False
    sid: Optional[str] = None
    room: Optional[str] = None
    data: Optional[list] = None
    packet: Optional[dict] = None


def _optional_str(message, name):
    value = message.get(name)
    if value is not None and not isinstance(value, str):
        raise ProtocolError('%s must be a string' % name)
    return value


def _parse_selection(message) -> dict:
    opts = _dict(message.get('opts'), 'opts')
    return {'rooms': _room_list(opts.get('rooms'), 'opts.rooms'),
            'except_': _room_list(opts.get('except'), 'opts.except'),
            'flags': _dict(opts.get('flags'), 'opts.flags')}


def _parse_join_leave(message) -> dict:
    if 'sid' in message:  # legacy form: one socket, one room
        return {'sid': _optional_str(message, 'sid'),
                'room': message.get('room')}
    return {**_parse_selection(message),
            'rooms_arg': _room_list(message.get('rooms'), 'rooms')}


def _parse_disconnect(message) -> dict:
    fields = {'close': bool(message.get('close', False))}
    if 'sid' in message:
        fields['sid'] = _optional_str(message, 'sid')
    else:
        fields.update(_parse_selection(message))
    return fields


def _parse_sockets(message) -> dict:
    return {'rooms': _room_list(message.get('rooms'), 'rooms')}


def _parse_server_side_emit(message) -> dict:
    data = message.get('data')
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ProtocolError('server-side emit data must be [event, ...args]')
    return {'data': data}


def _parse_broadcast_request(message) -> dict:
    if not isinstance(message.get('requestId'), str):
        raise ProtocolError('a broadcast with acks needs a string requestId')
    packet = _dict(message.get('packet'), 'packet')
    data = packet.get('data')
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ProtocolError('packet data must be [event, ...args]')
    return {**_parse_selection(message), 'packet': packet}


_REQUEST_PARSERS = {
    RequestType.SOCKETS: _parse_sockets,
    RequestType.ALL_ROOMS: lambda message: {},
    RequestType.REMOTE_JOIN: _parse_join_leave,
    RequestType.REMOTE_LEAVE: _parse_join_leave,
    RequestType.REMOTE_DISCONNECT: _parse_disconnect,
    RequestType.REMOTE_FETCH: _parse_selection,
    RequestType.SERVER_SIDE_EMIT: _parse_server_side_emit,
    RequestType.BROADCAST: _parse_broadcast_request,
}


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
        raise ProtocolError('unknown request type %r' % (kind,))
    kind = RequestType(kind)
    return Request(type=kind, uid=_optional_str(message, 'uid'),
                   request_id=_optional_str(message, 'requestId'),
                   **_REQUEST_PARSERS[kind](message))


def decode_response(payload: bytes) -> dict:
    """Decode a response (JSON or msgpack); it always has a ``requestId``.

    :raises ProtocolError: if it is malformed.
    """
    message = loads_auto(payload)
    if not isinstance(message, dict) or \
            not isinstance(message.get('requestId'), str):
        raise ProtocolError('a response is a map with a string requestId')
    return message
