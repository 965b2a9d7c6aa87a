"""What every dialect shares: Node-compatible msgpack and JSON, the validators,
the message types (Broadcast, Request, Response, Ignored, Outgoing), RequestType.

Pure and sans-IO: no redis, threading, logging or clocks here. The codecs of
each mode live in its dialect (:mod:`~sio_redis_sync.classic`, and
:mod:`~sio_redis_sync.envelope` for sharded mode). Decoders of untrusted bytes
return a value or raise :class:`ProtocolError`, nothing else.
"""
import datetime
import enum
import functools
import json
import math
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
    def request_bytes(self) -> bytes:
        return self.request.encode('utf-8')

    @functools.cached_property
    def response(self) -> str:
        return '%s-response#%s#' % (self.key, self.nsp)

    @functools.cached_property
    def response_prefix_bytes(self) -> bytes:
        """What every response channel of ``nsp`` starts with."""
        return self.response.encode('utf-8')

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


_NUMERIC_ROOM = re.compile(r'-?[0-9]+')


def numeric_room(room: str) -> Optional[int]:
    """The int a room channel's suffix names, as Node's ``hasRoom`` also
    looks numeric room names up as numbers; None if it is not ASCII digits
    (``'\u00b2'.isdigit()`` is true, but ``int('\u00b2')`` raises).

    :param room: what :meth:`Channels.room_of` returned.
    """
    if len(room) <= 20 and _NUMERIC_ROOM.fullmatch(room):
        return int(room)
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
        raise TypeError('cannot encode %s as JSON: %s' % (quote(obj), exc)) from exc


def dumps_msgpack(obj) -> bytes:
    """notepack.io-compatible msgpack (bytes become ``bin``).

    :raises TypeError: if ``obj`` holds a value msgpack cannot carry.
    """
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except (ValueError, OverflowError) as exc:
        raise TypeError('cannot encode %s as msgpack: %s' % (quote(obj), exc)) \
            from exc


def _check_user_room(room):
    if not isinstance(room, (str, int)) or isinstance(room, bool):
        raise TypeError('a room must be a str or an int (Node has no other '
                        'room type), got %s' % type(room).__name__)
    return room


def as_rooms(value) -> tuple:
    """python-socketio's and Node's room arguments: None, one room, or a
    list/tuple/set of them.

    :raises TypeError: if a room is not a str or an int (bool, None inside a
                       list, float, bytes, containers).
    """
    if value is None:
        return ()
    if isinstance(value, (list, tuple, set, frozenset)):
        rooms = tuple(value)
        for room in rooms:
            _check_user_room(room)
        return rooms
    return (_check_user_room(value),)


def as_args(data) -> list:
    """python-socketio's ``data`` argument: a tuple is several arguments,
    None is none, anything else is one."""
    if isinstance(data, tuple):
        return list(data)
    return [] if data is None else [data]


def unique_rooms(rooms) -> list:
    """Deduplicate, keep the order (Node keeps rooms in a Set)."""
    return list(dict.fromkeys(rooms)) if rooms else []


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


#: what an error message quotes of a value read from Redis, at most
QUOTE_LIMIT = 40
#: the largest ``clientCount`` taken (a server's clients, with room to spare)
MAX_CLIENT_COUNT = 2 ** 32


def quote(value, limit=QUOTE_LIMIT) -> str:
    """A short description of ``value`` for an error message: the repr of a
    scalar (strings and bytes cut to ``limit``), the type of anything else,
    so that a message never echoes a huge or deep payload."""
    if isinstance(value, (str, bytes)):
        text = repr(value[:limit])
        return text + '...' if len(value) > limit else text
    if value is None or isinstance(value, (bool, float)) or (
            isinstance(value, int) and -2 ** 64 < value < 2 ** 64):
        return repr(value)
    return 'a %s' % type(value).__name__


def _cut(exc) -> str:
    return str(exc)[:100] or type(exc).__name__


# Most messages hold plain values only: decoded once with bin and ext values
# refused (msgpack's limits, in C), they need no walk. Bytes (bin, or ext 0
# through _ext_hook) and timestamps send the message the slow way: decoded
# again, then walked. An empty bin passes those limits: it is a zero byte
# after 0xc4, 0xc5 or 0xc6, found by memchr (most payloads have no zero byte).
_EMPTY_BINS = (b'\xc4\x00', b'\xc5\x00\x00', b'\xc6\x00\x00\x00\x00')


def _has_empty_bin(payload) -> bool:
    """Whether ``payload`` may hold an empty bin (false positives are fine:
    they take the slow, exact way)."""
    find = payload.find
    at = find(b'\x00')
    for _ in range(8):
        if at < 0:
            return False
        if at and 0xc4 <= payload[at - 1] <= 0xc6:
            return True
        at = find(b'\x00', at + 1)
    return any(empty in payload for empty in _EMPTY_BINS)  # many zeros


_BAD_KEYS = frozenset((bytes, datetime.datetime))
_CONTAINERS = frozenset((list, dict))  # msgpack makes exactly these
_TIMESTAMP_MARKERS = (b'\xd6\xff', b'\xd7\xff', b'\xc7\x0c\xff')


class _Extension(Exception):
    """Raised by the fast path's ext hook: decode the slow way."""


def _refuse_extension(code, data):
    raise _Extension


def _check_keys(value):
    """ProtocolError if a map holds a bytes or date key (JSON and
    python-socketio's packets cannot carry them). Iterative."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if type(node) is dict:
            for key, item in node.items():
                if type(key) in _BAD_KEYS:
                    raise ProtocolError('a map key must be text or a number, '
                                        'got %s' % type(key).__name__)
                if type(item) in _CONTAINERS:
                    push(item)
        elif type(node) is list:
            for item in node:
                if type(item) in _CONTAINERS:
                    push(item)


def _dates_to_iso(value):
    """Dates (msgpack timestamps) become ISO strings, in place. Iterative:
    nesting depth costs no recursion."""
    if isinstance(value, datetime.datetime):
        return _iso(value)
    stack = [value]
    while stack:
        node = stack.pop()
        items = enumerate(node) if type(node) is list else \
            list(node.items()) if type(node) is dict else ()
        for key, item in items:
            if type(item) in _CONTAINERS:
                stack.append(item)
            elif isinstance(item, datetime.datetime):
                node[key] = _iso(item)
    return value


def _walk_extensions(value, payload):
    """What a message with bytes or extension values needs: its keys
    checked, its dates (if it may have some) made ISO strings."""
    _check_keys(value)
    # every timestamp marker holds 0xff: one scan rules them all out
    if b'\xff' in payload and any(marker in payload
                                   for marker in _TIMESTAMP_MARKERS):
        value = _dates_to_iso(value)
    return value


_DECODE_ERRORS = (msgpack.UnpackException, ValueError, TypeError,
                  OverflowError, RecursionError)


def loads_msgpack(payload: bytes):
    """Decode notepack.io msgpack; timestamps become ISO strings.

    Depth is bounded by msgpack's own stack (about 1000 levels).

    :raises ProtocolError: on anything that is not exactly one valid value,
                           or a map with a bytes or date key.
    """
    try:
        try:
            value = msgpack.unpackb(payload, raw=False, strict_map_key=False,
                                    max_bin_len=0, max_ext_len=0,
                                    ext_hook=_refuse_extension)
            if b'\x00' not in payload or not _has_empty_bin(payload):
                return value
        except (ValueError, _Extension):  # bytes, extensions, or malformed
            pass
        value = msgpack.unpackb(payload, raw=False, strict_map_key=False,
                                timestamp=3, ext_hook=_ext_hook)
        return _walk_extensions(value, payload)
    except msgpack.StackError as exc:
        raise ProtocolError('invalid msgpack: nested too deeply') from exc
    except ProtocolError:
        raise
    except _DECODE_ERRORS as exc:
        raise ProtocolError('invalid msgpack: %s' % _cut(exc)) from exc


def _not_finite(text):
    raise ValueError('%s is not finite (JSON has no NaN or Infinity)'
                     % quote(text))


def _finite_float(text):
    value = float(text)
    if math.isinf(value):
        _not_finite(text)
    return value


def loads_json(payload: bytes):
    """Decode JSON as Node's ``JSON.parse`` of a UTF-8 buffer would (no
    NaN, no Infinity, numbers that overflow to Infinity refused).

    :raises ProtocolError: on anything else.
    """
    try:
        return json.loads(payload.decode('utf-8'), parse_constant=_not_finite,
                          parse_float=_finite_float)
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            raise ProtocolError('invalid JSON: nested too deeply') from exc
        raise ProtocolError('invalid JSON: %s' % _cut(exc)) from exc


def loads_auto(payload: bytes):
    """Decode by the first-byte rule: ``{`` means JSON, else msgpack."""
    if payload[:1] != b'{':
        return loads_msgpack(payload)
    return loads_json(payload)


def _is_room(value) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def room_list(value, what) -> Tuple:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProtocolError('%s must be an array, got %s'
                            % (what, type(value).__name__))
    for room in value:
        if not isinstance(room, (str, int)) or isinstance(room, bool):
            raise ProtocolError('%s must hold strings or integers, got %s'
                                % (what, type(room).__name__))
    return tuple(value)


def as_room(value, what):
    """One room (str or int): never None, python-socketio's connected room."""
    if not _is_room(value):
        raise ProtocolError('%s must be a string or an integer, got %s'
                            % (what, quote(value)))
    return value


def as_dict(value, what) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError('%s must be a map, got %s'
                            % (what, type(value).__name__))
    return value


def as_flags(value, what) -> dict:
    flags = as_dict(value, what)
    if flags:
        # any number: the receiver clamps it (NaN, negative, infinite or
        # huge ones mean its own ack_ttl), so that a peer's odd timeout never
        # costs the clients their event
        timeout = flags.get('timeout')
        if timeout is not None and (
                not isinstance(timeout, (int, float)) or isinstance(timeout, bool)):
            raise ProtocolError('%s.timeout must be a number of ms, got %s'
                                % (what, quote(timeout)))
    return flags


def as_bool(message, name) -> bool:
    value = message.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ProtocolError('%s must be a boolean, got %s' % (name, quote(value)))
    return value


class Outgoing(NamedTuple):
    """A message a dialect made: PUBLISH (or SPUBLISH) ``payload`` on
    ``channel``. ``channels`` are the namespace's channel names when the
    publisher's delivery check applies (None for answers)."""
    channel: str
    payload: bytes
    channels: Any = None


class Subscriptions(NamedTuple):
    """What a server subscribes for one namespace."""
    channels: Tuple = ()
    patterns: Tuple = ()


class Response(NamedTuple):
    """An answer to a request: ``body`` is the classic response dict that
    :mod:`sio_redis_sync.requests` entries read; ``uid`` its sender, when
    the mode says (sharded)."""
    request_id: str
    body: dict
    uid: Optional[str] = None


class Ignored(NamedTuple):
    """A well-formed message that is not for this reader (another
    namespace's, a heartbeat): ``reason`` is worth a debug line; ``kind``
    the message's wire type name, ``nsp`` its namespace, where known."""
    reason: str
    uid: Optional[str] = None
    kind: Optional[str] = None
    nsp: Optional[str] = None


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


@dataclass(frozen=True)
class Request:
    """A decoded request from ``K-request#N#``.

    ``rooms``/``except_`` select the target sockets (``opts``); ``rooms_arg``
    is the ``rooms`` field of REMOTE_JOIN/LEAVE (the rooms to join or leave).
    ``sid``/``room`` are set by the legacy per-socket forms only (then both
    are set for REMOTE_JOIN/LEAVE, and ``room`` is a str or an int).
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


def new_request(kind, request_id=None, rooms=(), except_=(), **fields):
    """A :class:`Request` to send (rooms deduplicated, as lists)."""
    return Request(type=kind, request_id=request_id, rooms=unique_rooms(rooms),
                   except_=unique_rooms(except_), **fields)


def ack_fields(values):
    """``(packet, packets)`` of one client's ack values (a list): Node's
    ``packet`` (the first) and, for Python servers, every value in
    ``packets`` (Node ignores it) unless there is exactly one, the common
    case, whose bytes stay Node's."""
    packet = values[0] if values else None
    return packet, (None if len(values) == 1 else list(values))


def parse_selection(message) -> dict:
    opts = as_dict(message.get('opts'), 'opts')
    return {'rooms': room_list(opts.get('rooms'), 'opts.rooms'),
            'except_': room_list(opts.get('except'), 'opts.except'),
            'flags': as_flags(opts.get('flags'), 'opts.flags')}


def _check_type(value):
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ProtocolError('response type must be an integer, got %s'
                            % quote(value))
    return value


def _check_client_count(value):
    if not isinstance(value, int) or isinstance(value, bool) \
            or not 0 <= value <= MAX_CLIENT_COUNT:
        raise ProtocolError('clientCount must be an integer from 0 to %d, got %s'
                            % (MAX_CLIENT_COUNT, quote(value)))
    return value


def _check_packets(value):
    if not isinstance(value, list):
        raise ProtocolError('packets (every value of an ack) must be an '
                            'array, got %s' % type(value).__name__)
    return value


def _answered_rooms(value, what):
    """An answer's rooms: an array; rooms that are not a str or an int (a
    peer's local room of another type) are left out, not the whole answer."""
    if not isinstance(value, list):
        raise ProtocolError('%s must be an array, got %s'
                            % (what, type(value).__name__))
    if all(_is_room(room) for room in value):
        return value
    return [room for room in value if _is_room(room)]


def _check_sockets(value):
    # SOCKETS (0) answers sids, REMOTE_FETCH (5) socket details
    if not isinstance(value, list):
        raise ProtocolError('sockets must be an array, got %s'
                            % type(value).__name__)
    for socket in value:
        if isinstance(socket, str):
            continue
        if not isinstance(socket, dict) or not isinstance(socket.get('id'), str):
            raise ProtocolError('sockets must hold sids or {id, handshake, '
                                'rooms, data} maps with a string id')
        if socket.get('rooms') is not None:
            socket['rooms'] = _answered_rooms(socket['rooms'], 'socket rooms')
        as_dict(socket.get('handshake'), 'socket handshake')
    return value


# field -> its check, which returns the value to keep
_RESPONSE_CHECKS = (
    ('type', _check_type),
    ('clientCount', _check_client_count),
    ('packets', _check_packets),
    ('rooms', lambda value: _answered_rooms(value, 'rooms')),
    ('sockets', _check_sockets),
)


def check_response(response: dict) -> dict:
    """``response`` (a map with a string ``requestId``) if its known fields
    are well-formed: ``type`` an integer, ``clientCount`` an integer from 0
    to :data:`MAX_CLIENT_COUNT` (required by BROADCAST_CLIENT_COUNT),
    ``packets`` an array, ``rooms`` an array, ``sockets`` an array of sids
    or of socket maps with a string ``id``, an array ``rooms`` and a map
    ``handshake``. Rooms that are not a str or an int are left out of the
    arrays (a peer's local room of another type must not void its answer).

    :raises ProtocolError: if one is not.
    """
    for name, check in _RESPONSE_CHECKS:
        if name in response:
            response[name] = check(response[name])
    if response.get('type') == RequestType.BROADCAST_CLIENT_COUNT \
            and 'clientCount' not in response:
        raise ProtocolError('BROADCAST_CLIENT_COUNT without a clientCount')
    return response
