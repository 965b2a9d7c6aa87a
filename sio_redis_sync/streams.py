"""The streams dialect (Node's ``@socket.io/redis-streams-adapter`` 0.3.1): what
each operation becomes on the wire, and what each message read means.

Pure: no I/O, no manager. Broadcasts, joins, leaves and disconnects are stream
entries (``XADD <stream> MAXLEN ~ <max_len> * uid U nsp N type T data D``), read
back by :mod:`sio_redis_sync.stream_reader`; requests go through Pub/Sub on
``K#N#`` and answers on ``K#N#<uid>#`` as msgpack envelopes ``{type, data, uid,
nsp}``: the sharded dialect's cluster protocol (:class:`ShardedDialect
<sio_redis_sync.sharded.ShardedDialect>`, whose channels, answers and decoding
of Pub/Sub messages it inherits).
"""
import base64
import binascii
import functools
from typing import NamedTuple, Tuple

from . import envelope, protocol
from .envelope import MessageType
from .exceptions import ProtocolError, SioRedisError
from .protocol import EMITTER_UID, Ignored, Outgoing, RequestType
from .sharded import ShardedDialect

__all__ = ['StreamsDialect', 'StreamEntry', 'hash_code', 'stream_key']

# Node's defaults (createAdapter's options streamName, streamCount, maxLen,
# readCount, blockTimeInMs)
DEFAULT_STREAM_NAME = 'socket.io'
DEFAULT_STREAM_COUNT = 1
DEFAULT_MAX_LEN = 10000
DEFAULT_READ_COUNT = 100
BLOCK_TIME_MS = 5000

def hash_code(name: str) -> int:
    """Node's ``hashCode``: Java's string hash over the UTF-16 code units of
    ``name`` (``h = h * 31 + unit``), wrapped to a signed 32-bit integer."""
    units = name.encode('utf-16-le', 'surrogatepass')
    value = 0
    for at in range(0, len(units), 2):
        value = (value * 31 + int.from_bytes(units[at:at + 2], 'little')) & 0xffffffff
    return value - (1 << 32) if value & 0x80000000 else value


def stream_key(stream_name: str, stream_count: int, nsp: str) -> str:
    """The stream of namespace ``nsp`` (Node's ``computeStreamName``):
    ``stream_name`` itself when ``stream_count`` is 1, else
    ``stream_name-<hash mod stream_count>``. JavaScript's ``%`` keeps the
    sign of the hash, so a negative one names a stream like ``socket.io--2``
    that Node's readers (``-0`` to ``-<count - 1>``) never read."""
    if stream_count == 1:
        return stream_name
    value = hash_code(nsp)
    rest = abs(value) % stream_count
    return '%s-%d' % (stream_name, -rest if value < 0 else rest)


def _positive(value, name):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError('%s must be an integer >= 1, got %r' % (name, value))
    return value


class StreamEntry(NamedTuple):
    """A message a dialect made for a stream: ``XADD key MAXLEN ~ max_len *
    <fields>``. ``fields`` are ``(name, value)`` bytes pairs, in Node's order
    (``uid``, ``nsp``, ``type``, ``data``)."""
    key: str
    fields: Tuple[Tuple[bytes, bytes], ...]
    max_len: int

    @property
    def channel(self) -> str:
        """Where it goes (the stream key), for log lines and errors."""
        return self.key

    def command(self) -> tuple:
        """The XADD arguments, for ``execute_command(*entry.command())``
        (answer: the new entry's id)."""
        flat = [item for pair in self.fields for item in pair]
        return ('XADD', self.key, 'MAXLEN', '~', self.max_len, '*', *flat)


def encode_entry(key, max_len, kind, data, uid, nsp) -> StreamEntry:
    """One stream entry of type ``kind``: ``data`` (a dict, or None) as JSON,
    or as base64 of its msgpack when ``kind`` may carry binary and it does.

    :raises TypeError: if a value cannot be encoded.
    """
    fields = [(b'uid', uid.encode()), (b'nsp', nsp.encode()),
              (b'type', b'%d' % kind)]
    if data is not None:
        if kind in envelope.MAY_CONTAIN_BINARY and envelope.has_binary(data):
            value = base64.b64encode(protocol.dumps_msgpack(data))
        else:
            value = protocol.dumps_json(data)
        fields.append((b'data', value))
    return StreamEntry(key, tuple(fields), max_len)


def _text(value, name):
    if not isinstance(value, bytes):
        raise ProtocolError('field %s must be bytes, got %s' % (name, type(value).__name__))
    try:
        return value.decode('utf-8')
    except UnicodeDecodeError:
        raise ProtocolError('field %s is not UTF-8: %s' % (name, protocol.quote(value))) \
            from None


def _entry_type(value):
    if not isinstance(value, bytes) or not 1 <= len(value) <= 2 or not value.isdigit():
        raise ProtocolError('unknown message type %s' % protocol.quote(value))
    kind = int(value)
    if kind not in envelope.TYPE_VALUES:
        raise ProtocolError('unknown message type %d' % kind)
    return MessageType(kind)


def _entry_data(value):
    """An entry's ``data``: JSON if it starts with ``{``, else base64 of
    msgpack (Node's decode()); empty or missing means none."""
    if not value:
        return None
    if not isinstance(value, bytes):
        raise ProtocolError('field data must be bytes, got %s' % type(value).__name__)
    if value[:1] == b'{':
        return protocol.loads_json(value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError('field data is neither JSON nor base64: %s' % exc) from None
    return protocol.loads_msgpack(raw)


def decode_entry_envelope(fields) -> envelope.Envelope:
    """An entry's fields (a dict of bytes, as XREAD gives them) as an
    envelope.

    :raises ProtocolError: if ``uid``, ``nsp`` or ``type`` is missing or
        malformed, or ``data`` is malformed or missing where needed.
    """
    if not isinstance(fields, dict):
        raise ProtocolError('an entry is a map of fields, got %s' % type(fields).__name__)
    kind = _entry_type(fields.get(b'type'))
    uid = _text(fields.get(b'uid'), 'uid')
    nsp = _text(fields.get(b'nsp'), 'nsp')
    data = _entry_data(fields.get(b'data'))
    if kind not in envelope.NO_DATA and not isinstance(data, dict):
        raise ProtocolError('%s needs a map data, got %s' % (kind.name, type(data).__name__))
    return envelope.Envelope(kind, data, uid, nsp)


# request type -> (envelope type, data(request)); requests with a request id
# (and a server's SERVER_SIDE_EMIT) go through Pub/Sub, the others in the stream
_REQUESTS = {
    RequestType.REMOTE_JOIN: (MessageType.SOCKETS_JOIN, lambda request: envelope.join_data(
        request.rooms, request.except_, request.rooms_arg)),
    RequestType.REMOTE_LEAVE: (MessageType.SOCKETS_LEAVE, lambda request: envelope.join_data(
        request.rooms, request.except_, request.rooms_arg)),
    RequestType.REMOTE_DISCONNECT: (
        MessageType.DISCONNECT_SOCKETS, lambda request: envelope.disconnect_data(
            request.rooms, request.except_, request.close)),
    RequestType.SERVER_SIDE_EMIT: (
        MessageType.SERVER_SIDE_EMIT, lambda request: envelope.server_side_emit_data(
            request.data, request.request_id)),
    RequestType.REMOTE_FETCH: (MessageType.FETCH_SOCKETS, lambda request: envelope.fetch_data(
        request.request_id, request.rooms, request.except_)),
    RequestType.BROADCAST: (MessageType.BROADCAST, lambda request: envelope.broadcast_data(
        request.data, request.rooms, request.except_, request.flags, request.request_id)),
}


class StreamsDialect(ShardedDialect):
    """The streams wire mode: Pub/Sub channels under the prefix ``key``
    (Node's ``channelPrefix``), streams named after ``stream_name``.

    Its Pub/Sub part is the sharded dialect's cluster protocol in its
    ``static`` subscription mode (``K#N#``, ``K#N#<uid>#``, no room
    channels), every envelope msgpack; what differs is here: broadcasts,
    joins, leaves and disconnects are :class:`StreamEntry` s, and stream
    entries are decoded by :meth:`decode_entry`.

    :param subscription_mode: ignored (no room channels in this mode).
    :param emitter: lay messages out as ``@socket.io/redis-streams-emitter``
                    does: notifications (SERVER_SIDE_EMIT without ack too)
                    are stream entries with uid ``emitter``, a broadcast's
                    packet carries ``nsp`` and its opts are ``rooms, flags,
                    except``.
    :param stream_count: how many streams the namespaces are spread over
                         (Node's ``streamCount``; see :func:`stream_key`).
    :param max_len: the approximate cap of each stream (``MAXLEN ~``).
    :param use_sharded_pubsub: SPUBLISH/SSUBSCRIBE for the Pub/Sub part.
    """
    name = 'streams'

    def __init__(self, key=protocol.DEFAULT_KEY, subscription_mode=None, emitter=False,
                 stream_name=DEFAULT_STREAM_NAME, stream_count=DEFAULT_STREAM_COUNT,
                 max_len=DEFAULT_MAX_LEN, use_sharded_pubsub=False):
        super().__init__(key, envelope.STATIC, emitter=emitter)
        if not isinstance(stream_name, str) or not stream_name:
            raise ValueError('stream_name must be a non-empty string, got %r' % (stream_name,))
        self.stream_name = stream_name
        self.stream_count = _positive(stream_count, 'stream_count')
        self.max_len = _positive(max_len, 'max_len')
        #: SPUBLISH/SSUBSCRIBE (True) or PUBLISH/SUBSCRIBE for the Pub/Sub part
        self.sharded = bool(use_sharded_pubsub)
        self.stream_key = functools.lru_cache(maxsize=1024)(self._stream_key)

    def _stream_key(self, nsp):
        """The stream key of ``nsp`` (see :func:`stream_key`)."""
        return stream_key(self.stream_name, self.stream_count, nsp)

    def stream_keys(self, namespaces=()):
        """The streams a server reads: those Node's servers read
        (``stream_name``, or ``stream_name-0`` to ``-<count - 1>``), then
        the negatively hashed streams of ``namespaces``, which Node never
        reads (Python servers do: nothing of theirs is lost)."""
        if self.stream_count == 1:
            keys = [self.stream_name]
        else:
            keys = ['%s-%d' % (self.stream_name, n) for n in range(self.stream_count)]
        return list(dict.fromkeys(keys + [self.stream_key(nsp) for nsp in namespaces]))

    # ------------------------------------------------------------ encoding

    def _envelope(self, kind, data, uid, nsp, emitter_order=False):
        # Node (@msgpack/msgpack) sends every Pub/Sub message as msgpack
        return protocol.dumps_msgpack({'type': int(kind), 'data': data, 'uid': uid, 'nsp': nsp})

    def _entry(self, nsp, kind, data, uid):
        return encode_entry(self.stream_key(nsp), self.max_len, kind, data, uid, nsp)

    def encode_broadcast(self, nsp, uid, data, rooms=(), except_=(), flags=None):
        """A broadcast of ``data = [event, *args]`` to ``rooms``/``except_``:
        a stream entry."""
        rooms = protocol.unique_rooms(rooms)
        if not self.emitter:
            return self._entry(nsp, MessageType.BROADCAST,
                               envelope.broadcast_data(data, rooms, except_, flags), uid)
        body = {'packet': {'type': protocol.EVENT, 'data': data, 'nsp': nsp},
                'opts': {'rooms': rooms, 'flags': flags or {},
                         'except': protocol.unique_rooms(except_)}}
        return self._entry(nsp, MessageType.BROADCAST, body, EMITTER_UID)

    def encode_request(self, nsp, uid, request):
        """The :class:`~sio_redis_sync.protocol.Request` ``request`` sent by
        ``uid``: a :class:`StreamEntry` for a notification (no
        ``request_id``) but a server's SERVER_SIDE_EMIT, else an
        :class:`~sio_redis_sync.protocol.Outgoing` on ``K#N#``.

        :raises sio_redis_sync.SioRedisError: for ALL_ROOMS (Node's streams
                                               adapter has no such request).
        """
        self.check_request(request.type)
        kind, data_of = _REQUESTS[request.type]
        if request.request_id is None and (
                self.emitter or request.type != RequestType.SERVER_SIDE_EMIT):
            return self._entry(nsp, kind, data_of(request),
                               EMITTER_UID if self.emitter else uid)
        return Outgoing(self.channels(nsp).main, self._envelope(kind, data_of(request), uid, nsp),
                        None)

    def check_request(self, kind):
        """:raises sio_redis_sync.SioRedisError: for ALL_ROOMS."""
        if kind not in _REQUESTS:
            raise SioRedisError("all_rooms() does not exist in streams mode: Node's "
                                'streams adapter has no such request')

    # ------------------------------------------------------------ decoding

    @staticmethod
    def entry_namespace(fields):
        """The namespace a stream entry is for (str), or None if it names
        none (Node skips those) or not as UTF-8: read before decoding the
        entry, to skip those of namespaces not served here."""
        nsp = fields.get(b'nsp') if isinstance(fields, dict) else None
        if not isinstance(nsp, bytes) or not nsp:
            return None
        try:
            return nsp.decode('utf-8')
        except UnicodeDecodeError:
            return None

    def decode_entry(self, nsp, fields, key=None):
        """What a stream entry of ``nsp`` is: a Broadcast, a Request (joins,
        leaves, disconnects; anything a peer put there), a Response, or
        Ignored (another namespace's, heartbeats of 0.2.x adapters).

        :param nsp: the namespace :meth:`entry_namespace` read.
        :param fields: the entry's field -> value map (bytes), as XREAD
                       gives it.
        :param key: the stream it was read from, for messages.
        :raises sio_redis_sync.ProtocolError: if it is malformed (an entry
            without ``nsp`` included: call :meth:`entry_namespace` first,
            Node skips those silently).
        """
        message = decode_entry_envelope(fields)
        where = 'stream %r' % key
        if message.nsp != nsp:
            return Ignored('an entry for %r in %s' % (message.nsp, where), message.uid,
                           message.type.name, message.nsp)
        return envelope.message_of(message, ' in ' + where)
