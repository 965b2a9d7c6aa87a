"""``sio-redis-sync``: the operator's command line (emit, monitor, status, bench).

Owns argument parsing, the one-line error policy (exit 2 for usage, 1 for
runtime failures), the monitor's subscriber connection and its stream reading
connection (streams mode); every URL it prints goes through
:func:`sio_redis_sync.connection.redact`.
"""
import argparse
import base64
import datetime
import json
import logging
import os
import re
import signal
import sys
import threading
import time

import redis

from . import __version__, connection, envelope, legacy, protocol
from .classic import ClassicDialect
from .emitter import Emitter
from .exceptions import ProtocolError, RequestTimeout, SioRedisError
from .modes import DIALECTS
from .protocol import Broadcast, Ignored, Request, RequestType, Response
from .sharded import ShardedDialect
from .streams import StreamsDialect

PROG = 'sio-redis-sync'
DEFAULT_URL = 'redis://localhost:6379/0'
#: how often monitor looks for new sharded channels (PUBSUB SHARDCHANNELS)
#: and, in streams mode, for the streams of new namespaces
SHARD_POLL_INTERVAL = 1.0
#: streams mode: how long one XREAD of the monitor waits for entries (ms),
#: while Pub/Sub is quiet; entries per stream and read at most
STREAM_BLOCK_MS = 100
STREAM_READ_COUNT = 100
#: streams mode: how often a monitor busy with Pub/Sub still reads the streams
STREAM_READ_INTERVAL = 0.05
#: how much of a malformed stream entry monitor shows: fields, bytes of each
MALFORMED_FIELDS = 16
MALFORMED_BYTES = 200
_GLOB_SPECIAL = re.compile(r'([\\*?\[\]])')
RUNTIME_ERRORS = (SioRedisError, redis.RedisError, OSError)
#: how deep monitor shows a nested value (deeper levels become "...")
MAX_DEPTH = 32
# what a terminal would act on: C0 and C1 controls (ESC, CSI, BEL, ...), DEL,
# and the Unicode line separators and bidirectional overrides
_CONTROL = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e'
                      '\u2066-\u2069]')


class UsageError(Exception):
    """Bad arguments: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError('%s (see %s --help)' % (message, self.prog))


def _glob(text):
    return _GLOB_SPECIAL.sub(r'\\\1', text)


def _scrub(text, url):
    """``text`` as it may be printed: without the password of ``url`` (error
    messages may quote it) and without terminal control characters."""
    return _printable(connection.redact(text, (url,)))


def _printable(text):
    """``text`` with every control character a terminal would act on shown
    as ``\\uXXXX`` (still valid inside a JSON string, and the same value
    once decoded)."""
    return _CONTROL.sub(lambda m: '\\u%04x' % ord(m.group()), text)


def _json_value(value, depth=0):
    """A JSON-able copy: bytes become ``{"$bin": base64}``; what lies deeper
    than :data:`MAX_DEPTH` becomes ``"..."`` (a hostile message may nest
    thousands of levels)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {'$bin': base64.b64encode(bytes(value)).decode('ascii')}
    if isinstance(value, (list, tuple, dict)) and depth >= MAX_DEPTH:
        return '...'
    if isinstance(value, (list, tuple)):
        return [_json_value(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_text(k): _json_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return _text(value)


def _text(value):
    """``value`` as text for a human line (a str as it is)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict, bytes, bytearray, memoryview)):
        return _dumps(value)
    try:
        return repr(value)
    except RecursionError:
        return '<%s>' % type(value).__name__


def _dumps(value):
    return json.dumps(_json_value(value), ensure_ascii=False,
                      separators=(',', ':'), default=_text)


# ------------------------------------------------------------------ emit

def _namespace(nsp):
    return nsp if nsp.startswith('/') else '/' + nsp


#: the command line's name of an option whose Python name differs
OPTION_NAMES = {'use_sharded_pubsub': 'sharded_pubsub'}


def _mode_options(args):
    """The Emitter options of ``--mode`` and its companions; a companion
    given for a mode that has no such option is a usage error."""
    streams = {'stream_name': args.stream_name, 'stream_count': args.stream_count,
               'max_len': getattr(args, 'max_len', None),
               'use_sharded_pubsub': getattr(args, 'sharded_pubsub', None)}
    given = [name for name, value in streams.items() if value is not None]
    if given and args.mode != StreamsDialect.name:
        raise UsageError('%s need%s --mode streams' % (', '.join(
            '--' + OPTION_NAMES.get(name, name).replace('_', '-') for name in given),
            '' if len(given) > 1 else 's'))
    options = {name: value for name, value in streams.items() if value is not None}
    subscription_mode = getattr(args, 'subscription_mode', None)
    if subscription_mode is not None:
        if args.mode != ShardedDialect.name:
            raise UsageError('--subscription-mode needs --mode sharded')
        options['subscription_mode'] = subscription_mode
    return options


def _emitter(args):
    """The Emitter of the mode the arguments name."""
    options = _mode_options(args)
    try:
        return Emitter(args.url, key=args.key, mode=args.mode, **options)
    except ValueError as exc:  # a bad option value (an empty --stream-name)
        raise UsageError(str(exc)) from None


def cmd_emit(args):
    values = []
    for number, text in enumerate(args.args, 1):
        try:
            values.append(json.loads(text))
        except ValueError:
            raise UsageError('argument %d is not JSON: %r (quote strings: '
                             '\'"text"\')' % (number, text)) from None
    emitter = _emitter(args)
    nsp = _namespace(args.namespace)
    try:
        operator = emitter.of(nsp).to(args.to or []).except_(args.except_ or [])
        try:
            sent = operator.emit(args.event, *values)
        except ValueError as exc:  # a reserved event name
            raise UsageError(str(exc)) from None
        if args.mode == StreamsDialect.name:
            servers = emitter.server_count(nsp)
            what = 'entry %s of stream %s, %d server%s listening' % (
                sent, emitter.dialect.stream_key(nsp), servers, _plural(servers))
        else:
            what = '%d server%s subscribed' % (sent, _plural(sent))
    finally:
        emitter.close()
    print(_printable('emitted %r to %s: %s' % (
        args.event, ', '.join(args.to) if args.to else 'everyone', what)))
    return 0


def _plural(count):
    return '' if count == 1 else 's'


# --------------------------------------------------------------- monitor

def _summary(kind, uid, nsp, rooms=(), except_=(), event=None, payload=None,
             **extra):
    return {'type': kind, 'uid': uid, 'nsp': nsp, 'rooms': list(rooms),
            'except': list(except_), 'event': event, 'payload': payload, **extra}


def _event_parts(data):
    if isinstance(data, list) and data:
        return data[0], data[1:]
    return None, data


def _request_summary(request, nsp, name):
    event, payload = None, None
    extra = {}
    if request.data is not None:
        event, payload = _event_parts(request.data)
    elif request.packet is not None:
        event, payload = _event_parts(request.packet.get('data'))
    if request.rooms_arg:
        extra['join' if request.type == RequestType.REMOTE_JOIN else 'leave'] = \
            list(request.rooms_arg)
    if request.sid is not None:
        extra['sid'] = request.sid
    if request.request_id is not None:
        extra['request_id'] = request.request_id
    return _summary(name, request.uid, nsp, request.rooms, request.except_,
                    event, payload, **extra)


def _broadcast_summary(message, nsp, name, channel, sharded):
    return _summary(name, message.uid, message.nsp, message.rooms, message.except_,
                    message.data[0], message.data[1:], flags=message.flags)


def _response_summary(message, nsp, name, channel, sharded):
    body = {k: v for k, v in message.body.items() if k not in ('type', 'requestId')}
    if sharded:
        return _summary(name, message.uid, nsp, payload=body,
                        request_id=message.request_id)
    to = channel.rsplit('#', 2)[1] if channel.count('#') >= 3 else None
    return _summary(name, None, nsp, payload=body, request_id=message.request_id,
                    to=to or None)


#: how a monitor shows each kind of decoded message
SUMMARIES = {
    Broadcast: _broadcast_summary,
    Request: lambda message, nsp, name, channel, sharded: _request_summary(
        message, nsp, name),
    Response: _response_summary,
    Ignored: lambda message, nsp, name, channel, sharded: _summary(
        name, message.uid, message.nsp or nsp),
}


def _decode_with(dialect, channel, nsp, data):
    """A message of ``dialect`` as the monitor shows it."""
    if nsp is None:
        raise ProtocolError('the channel names no namespace')
    message = dialect.decode(nsp, channel.encode('utf-8'), data)
    return SUMMARIES[type(message)](message, nsp, dialect.wire_name(message),
                                    channel, dialect.name != ClassicDialect.name)


def _decode_entry(dialect, key, fields):
    """A stream entry as the monitor shows it."""
    nsp = dialect.entry_namespace(fields)
    if nsp is None:
        raise ProtocolError('the entry names no namespace (field nsp, UTF-8)')
    message = dialect.decode_entry(nsp, fields, key)
    return SUMMARIES[type(message)](message, nsp, dialect.wire_name(message), key, True)


def _entry_preview(fields):
    """What a malformed entry held: its first fields, each value cut."""
    if not isinstance(fields, dict):
        return repr(fields)[:MALFORMED_BYTES]
    shown = {}
    for name, value in list(fields.items())[:MALFORMED_FIELDS]:
        shown[repr(name[:MALFORMED_BYTES])] = repr(value[:MALFORMED_BYTES])
    if len(fields) > MALFORMED_FIELDS:
        shown['...'] = '%d fields' % len(fields)
    return shown


def _entry_size(fields):
    if not isinstance(fields, dict):
        return 0
    return sum(len(name) + len(value) for name, value in fields.items())


def _decode_legacy(channel, nsp, data):
    message = legacy.decode_legacy(data)
    extra = {}
    for name in ('sid', 'room', 'callback'):
        if getattr(message, name) is not None:
            extra[name] = getattr(message, name)
    return _summary('LEGACY_' + message.method.upper(), message.host_id,
                    message.namespace, message.rooms, message.skip,
                    message.event, list(message.args) if message.event else None,
                    **extra)



def _id_text(value):
    return value.decode('ascii', 'replace') if isinstance(value, bytes) else str(value)


def _xread_entries(reply):
    """``(key, id, fields)`` of each entry of an XREAD reply (RESP2's list or
    RESP3's map), in order; ``fields`` a dict of bytes (or None)."""
    if not reply:
        return []
    found = []
    for key, entries in (reply.items() if isinstance(reply, dict) else reply):
        if entries and isinstance(entries[0], list) and \
                not isinstance(entries[0][0], (bytes, str)):
            entries = entries[0]  # redis-py 8 nests RESP3's entries once more
        for entry_id, fields in entries:
            if isinstance(fields, list):  # unparsed: names and values
                fields = dict(zip(fields[::2], fields[1::2]))
            found.append((_id_text(key), _id_text(entry_id), fields))
    return found


def _namespaces_in(channels, prefix):
    """The namespaces ``N`` of the channels ``<prefix>N#`` among
    ``channels`` (those with a ``#`` in ``N`` are servers' own channels)."""
    names = set()
    for channel in channels:
        if isinstance(channel, bytes):
            channel = channel.decode('utf-8', 'replace')
        rest = channel[len(prefix):]
        if channel.startswith(prefix) and rest.endswith('#') and '#' not in rest[:-1]:
            names.add(rest[:-1])
    return sorted(names)


class StreamTail:
    """Reads streams from their end on (``XREAD`` from ``$``, each stream's
    last id resolved when it is first followed, so nothing added later is
    missed between reads); owns its one connection (a Monitor's).

    A dead link raises from :meth:`read` (its socket waits are bounded).
    """

    def __init__(self, url):
        self._client = redis.Redis(connection_pool=connection.publisher_pool(
            url, {}, max_connections=1, timeout=5))
        self._last = {}

    @property
    def keys(self):
        """The streams followed."""
        return list(self._last)

    def follow(self, keys):
        """Read ``keys`` too, from their current last entry on."""
        for key in keys:
            if key not in self._last:
                newest = self._client.xrevrange(key, count=1)
                self._last[key] = _id_text(newest[0][0]) if newest else '0-0'

    def read(self, block_ms=None):
        """The entries added since the last read, as ``(key, id, fields)``;
        waits up to ``block_ms`` for one (not at all if None)."""
        entries = _xread_entries(self._client.xread(
            dict(self._last), count=STREAM_READ_COUNT, block=block_ms))
        for key, entry_id, _ in entries:
            self._last[key] = entry_id
        return entries

    def close(self):
        self._client.close()
        self._client.connection_pool.disconnect()


class Monitor:
    """Subscribes to every channel of ``key`` (and to ``legacy_channel``)
    and decodes each message into a dict; owns its one subscriber connection
    and, in streams mode, the :class:`StreamTail` reading the streams.

    Classic channels by pattern; sharded channels (which cannot be
    pattern-subscribed) found with ``PUBSUB SHARDCHANNELS`` every
    :data:`SHARD_POLL_INTERVAL` seconds.

    :param streams: a :class:`~sio_redis_sync.streams.StreamsDialect` to read
                    the streams of, and to decode the messages on ``key#``
                    channels with (its requests and answers); None: classic.
    :param namespaces: streams mode: namespaces whose streams are read even
                       before a server serves them (with ``stream_count``
                       above 1, the streams of the namespaces servers
                       subscribe to are found as sharded channels are).
    """

    def __init__(self, url, key, legacy_channel=None, sharded=True, streams=None,
                 namespaces=()):
        self.url = url
        self.key = key
        self.legacy_channel = legacy_channel
        self.sharded = sharded
        self._stop = threading.Event()
        # a silent link is PINGed every 5 s: a dead one ends the monitor
        # with an error instead of leaving it waiting forever; every URL form
        # of the package works (valkey://, unix://, Sentinel)
        self._client = redis.Redis(connection_pool=connection.publisher_pool(
            url, {'health_check_interval': 5}, max_connections=2, timeout=5))
        self._pubsub = self._client.pubsub()
        self._prefixes = (('request', key + '-request#'),
                          ('response', key + '-response#'),
                          ('broadcast', key + '#'))
        self._shard_channels = set()
        self._shard_polled = 0.0
        self._classic = ClassicDialect(key)
        self._sharded = ShardedDialect(key)
        self._streams = streams
        self._namespaces = list(namespaces)
        self._tail = StreamTail(url) if streams is not None else None
        self._tail_read = 0.0

    def stop(self):
        self._stop.set()

    def start(self):
        patterns = [_glob(prefix) + '*' for _, prefix in self._prefixes]
        self._pubsub.psubscribe(*patterns)
        if self.legacy_channel:
            self._pubsub.subscribe(self.legacy_channel)
        expected = len(patterns) + bool(self.legacy_channel)
        confirmed = 0
        deadline = time.monotonic() + 5
        while confirmed < expected and time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=0.1)
            if message and message['type'] in ('subscribe', 'psubscribe'):
                confirmed += 1
        if confirmed < expected:
            raise SioRedisError('Redis did not confirm the subscriptions')
        self._poll()

    @property
    def stream_keys(self):
        """The streams read (streams mode), in the order first read."""
        return self._tail.keys if self._tail is not None else []

    def _poll(self):
        self._shard_polled = time.monotonic()
        self._poll_shards()
        if self._tail is not None:
            namespaces = list(self._namespaces)
            if self._streams.stream_count > 1:  # a namespace may hash to its own
                channels = self._client.pubsub_channels(_glob(self.key) + '#*')
                namespaces += _namespaces_in(list(channels) + list(self._shard_channels),
                                             self.key + '#')
            self._tail.follow(self._streams.stream_keys(namespaces))

    def _poll_shards(self):
        if not self.sharded:
            return
        try:
            found = self._client.pubsub_shardchannels(_glob(self.key) + '#*')
        except redis.ResponseError:  # Redis < 7 has no sharded Pub/Sub
            self.sharded = False
            return
        new = {c.decode('utf-8', 'replace') for c in found} - self._shard_channels
        if new:
            self._shard_channels |= new
            self._pubsub.ssubscribe(*sorted(new))

    def _route(self, kind, channel):
        """The family of a Pub/Sub message, and the dialect that decodes it
        (None: python-socketio's legacy format)."""
        if kind == 'smessage':
            return 'sharded', self._sharded
        if kind == 'message':
            return 'legacy', None
        if self._streams is not None and channel.startswith(self.key + '#'):
            # streams mode's requests on K#N#, their answers on K#N#<uid>#
            parts = channel[len(self.key):].split('#')
            return ('response' if len(parts) > 3 else 'request'), self._streams
        for family, prefix in self._prefixes:
            if channel.startswith(prefix):
                return family, self._classic
        return 'broadcast', self._classic

    def decode(self, kind, channel, data):
        """One Pub/Sub message (of redis-py's type ``kind``: ``message``,
        ``pmessage``, ``smessage``) as a dict; a malformed one as type
        ``MALFORMED``."""
        family, dialect = self._route(kind, channel)
        nsp = None
        if family != 'legacy':
            rest = channel[len(self.key):].split('#')
            nsp = rest[1] if len(rest) > 2 else None
        try:
            if dialect is None:
                record = _decode_legacy(channel, nsp, data)
            else:
                record = _decode_with(dialect, channel, nsp, data)
        except ProtocolError as exc:
            record = _summary('MALFORMED', None, nsp, payload=repr(data[:200]),
                              error=str(exc))
        record.update(time=time.time(), family=family, channel=channel,
                      size=len(data))
        return record

    def decode_entry(self, key, entry_id, fields):
        """One stream entry as a dict (family ``stream``, with its ``id``);
        a malformed one as type ``MALFORMED``."""
        try:
            record = _decode_entry(self._streams, key, fields)
        except ProtocolError as exc:
            record = _summary('MALFORMED', None, self._streams.entry_namespace(fields),
                              payload=_entry_preview(fields), error=str(exc))
        record.update(time=time.time(), family='stream', channel=key, id=entry_id,
                      size=_entry_size(fields))
        return record

    def messages(self):
        """Yield decoded messages (and stream entries) until :meth:`stop`."""
        while not self._stop.is_set():
            if (self.sharded or self._tail is not None) and \
                    time.monotonic() - self._shard_polled >= SHARD_POLL_INTERVAL:
                self._poll()
            message = self._pubsub.get_message(
                timeout=0 if self._tail is not None else 0.1)
            if message is not None and message['type'] in (
                    'message', 'pmessage', 'smessage'):
                yield self.decode(message['type'],
                                  message['channel'].decode('utf-8', 'replace'),
                                  message['data'])
            if self._tail is not None:
                yield from self._read_streams(busy=message is not None)

    def _read_streams(self, busy):
        """The new stream entries, decoded: waiting for them while Pub/Sub
        is quiet, not waiting (and not more often than every
        :data:`STREAM_READ_INTERVAL`) while it is busy."""
        if busy and time.monotonic() - self._tail_read < STREAM_READ_INTERVAL:
            return
        self._tail_read = time.monotonic()
        for key, entry_id, fields in self._tail.read(None if busy else STREAM_BLOCK_MS):
            yield self.decode_entry(key, entry_id, fields)

    def close(self):
        self._pubsub.close()
        self._client.close()
        if self._tail is not None:
            self._tail.close()


def _matches(record, args):
    if args.namespace and record['nsp'] not in args.namespace:
        return False
    if args.type:
        names = {record['type'].upper(), record['family'].upper()}
        if not names & {t.upper() for t in args.type}:
            return False
    if args.room:
        rooms = set(map(str, record['rooms'] + record['except']
                        + record.get('join', []) + record.get('leave', [])))
        for name in ('sid', 'room'):
            if record.get(name) is not None:
                rooms.add(str(record[name]))
        if not rooms & set(args.room):
            return False
    return True


def _truncate(text, width):
    return text if len(text) <= width else text[:max(width - 3, 0)] + '...'


def format_line(record, width):
    """The human form of a decoded message: one line."""
    stamp = datetime.datetime.fromtimestamp(record['time']).strftime('%H:%M:%S.%f')[:-3]
    parts = [stamp, record['channel'], record['uid'] or '-', record['type']]
    if record['rooms']:
        parts.append('rooms=%s' % ','.join(map(_text, record['rooms'])))
    if record['except']:
        parts.append('except=%s' % ','.join(map(_text, record['except'])))
    for name in ('id', 'join', 'leave', 'sid', 'room', 'to', 'request_id'):
        if record.get(name) is not None:
            parts.append('%s=%s' % (name, _text(record[name])))
    if record.get('event') is not None:
        parts.append('event=%s' % _text(record['event']))
    if record['type'] == 'MALFORMED':
        parts.append('error=%s' % record['error'])
    if record.get('payload') is not None:
        parts.append(_truncate(_dumps(record['payload']), width))
    return _printable('  '.join(map(_text, parts)))


def json_line(record, width):
    """The ``--json`` form: the same fields, the payload kept as a value
    when its JSON is at most ``width`` characters, else truncated text."""
    record = dict(record)
    text = _dumps(record.get('payload'))
    if len(text) > width:
        record['payload'] = _truncate(text, width)
        record['truncated'] = True
    return _printable(_dumps(record))


def _dialect(args):
    """The streams dialect ``--mode streams`` and its options name (None in
    the other modes)."""
    _mode_options(args)
    if args.mode != StreamsDialect.name:
        return None
    options = {'stream_name': args.stream_name, 'stream_count': args.stream_count}
    try:
        return StreamsDialect(args.key, **{k: v for k, v in options.items() if v is not None})
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_monitor(args):
    if args.count is not None and args.count < 1:
        raise UsageError('--count must be at least 1')
    monitor = Monitor(args.url, args.key, args.legacy_channel,
                      sharded=not args.no_sharded, streams=_dialect(args),
                      namespaces=[_namespace(nsp) for nsp in args.namespace or ()])
    stop = monitor.stop
    previous = {sig: signal.signal(sig, lambda *_: stop())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    timer = None
    if args.duration is not None:
        timer = threading.Timer(args.duration, stop)
        timer.daemon = True
        timer.start()
    shown = 0
    try:
        monitor.start()
        streams = monitor.stream_keys
        print(_printable('monitoring %s key %r%s%s (Ctrl-C to stop)' % (
            connection.redact(args.url), args.key,
            ' and channel %r' % args.legacy_channel if args.legacy_channel else '',
            ' and stream%s %s' % (_plural(len(streams)), ', '.join(map(repr, streams)))
            if streams else '')), file=sys.stderr, flush=True)
        for record in monitor.messages():
            if not _matches(record, args):
                continue
            print(json_line(record, args.width) if args.json
                  else format_line(record, args.width), flush=True)
            shown += 1
            if args.count is not None and shown >= args.count:
                break
    finally:
        if timer is not None:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        monitor.close()
    return 0


# ---------------------------------------------------------------- status

def _namespaces(client, args):
    """The namespaces servers of ``--mode`` listen to, from their channels:
    ``KEY-request#N#`` (classic), ``KEY#N#`` (sharded: sharded channels;
    streams: Pub/Sub channels, sharded ones with ``--sharded-pubsub``)."""
    if args.mode == ClassicDialect.name:
        prefix = args.key + '-request#'
        found = client.pubsub_channels(_glob(prefix) + '*')
        names = []
        for channel in found:
            channel = channel.decode('utf-8', 'replace')
            if channel.endswith('#'):
                names.append(channel[len(prefix):-1])
        return sorted(set(names))
    pattern = _glob(args.key) + '#*'
    if args.mode == ShardedDialect.name or args.sharded_pubsub:
        found = client.pubsub_shardchannels(pattern)
    else:
        found = client.pubsub_channels(pattern)
    return _namespaces_in(found, args.key + '#')


def _inspect(emitter, nsp, timeout):
    """Servers, rooms and sockets of ``nsp``, through the cluster API."""
    entry = {'servers': emitter.server_count(nsp)}
    if not entry['servers']:
        return entry
    if emitter.dialect.has_all_rooms:
        entry['rooms'] = sorted(map(str, emitter.all_rooms(nsp, timeout)))
    sockets = emitter.fetch_sockets(namespace=nsp, timeout=timeout)
    if not emitter.dialect.has_all_rooms:  # the rooms of the sockets, then
        entry['rooms'] = sorted({str(room) for socket in sockets for room in socket.rooms})
    entry['sockets'] = len(sockets)
    per_room = {}
    for socket in sockets:
        for room in socket.rooms:
            per_room[str(room)] = per_room.get(str(room), 0) + 1
    entry['sockets_per_room'] = dict(sorted(per_room.items()))
    return entry


def _stream_info(client, key):
    """Length, first and last entry ids and (Redis >= 7) entries added of
    the stream ``key`` (a missing key: an empty stream)."""
    try:
        info = client.xinfo_stream(key)
    except redis.ResponseError as exc:
        if 'no such key' not in str(exc).lower():
            raise
        return {'length': 0, 'first_id': None, 'last_id': None, 'entries_added': None}
    first, last = info.get('first-entry'), info.get('last-entry')
    added = info.get('entries-added')
    return {'length': info.get('length'),
            'first_id': _id_text(first[0]) if first else None,
            'last_id': _id_text(last[0]) if last else None,
            'entries_added': added}


def _stream_line(key, stream):
    if not stream['length']:
        text = 'stream %s: empty' % key
    else:
        text = 'stream %s: %d entr%s, first %s, last %s' % (
            key, stream['length'], 'y' if stream['length'] == 1 else 'ies',
            stream['first_id'], stream['last_id'])
    if stream['entries_added'] is not None:
        text += ', %d added in all' % stream['entries_added']
    return _printable(text)


def _gather(args, emitter, report, failures):
    client = emitter.redis
    started = time.perf_counter()
    client.ping()
    report['ping_ms'] = round((time.perf_counter() - started) * 1000, 3)
    report['redis_version'] = client.info('server').get('redis_version')
    namespaces = [_namespace(nsp) for nsp in args.namespace or ()] or \
        _namespaces(client, args)
    for nsp in namespaces:
        try:
            report['namespaces'][nsp] = _inspect(emitter, nsp, args.timeout)
        except RequestTimeout as exc:
            report['namespaces'].setdefault(nsp, {'servers': exc.expected})
            failures.append('%s: %s' % (nsp, exc))
    if args.mode == StreamsDialect.name:
        report['streams'] = {}
        for key in emitter.dialect.stream_keys(namespaces):
            try:
                report['streams'][key] = _stream_info(client, key)
            except redis.ResponseError as exc:  # not a stream (WRONGTYPE)
                failures.append('stream %s: %s' % (key, exc))


def cmd_status(args):
    emitter = _emitter(args)
    report = {'redis': connection.redact(args.url), 'key': args.key, 'mode': args.mode,
              'namespaces': {}}
    failures = []
    try:
        _gather(args, emitter, report, failures)
    finally:
        emitter.close()
    servers = max([n['servers'] for n in report['namespaces'].values()] or [0])
    report['servers'] = servers
    if args.json:
        print(_printable(_dumps(report)))
    else:
        _print_status(report, args)
    for failure in failures:
        print(_printable('%s: warning: %s' % (PROG, failure)), file=sys.stderr)
    if not servers:
        print('%s: error: no server answers on key %r' % (PROG, args.key),
              file=sys.stderr)
        return 1
    return 1 if failures else 0


def _print_status(report, args):
    print('redis %s: version %s, ping %.3f ms' % (
        report['redis'], report['redis_version'], report['ping_ms']))
    mode = '' if args.mode == ClassicDialect.name else ' (%s mode)' % args.mode
    print(_printable('key %r%s: %d server%s' % (
        args.key, mode, report['servers'], _plural(report['servers']))))
    for nsp, entry in report['namespaces'].items():
        print(_printable('namespace %s: %d server%s, %s sockets' % (
            nsp, entry['servers'], _plural(entry['servers']),
            entry.get('sockets', '?'))))
        for room, count in entry.get('sockets_per_room', {}).items():
            print(_printable('  room %s: %d' % (room, count)))
    for key, stream in report.get('streams', {}).items():
        print(_stream_line(key, stream))


# ----------------------------------------------------------------- bench

def cmd_bench(args):
    """The quick benchmark (its own module: it needs a RedisManager)."""
    from .quickbench import run_bench
    if args.count < 1:
        raise UsageError('--count must be at least 1')
    results = run_bench(args.url, args.key, args.count, args.timeout)
    if args.json:
        print(_dumps(results))
    else:
        print('%d messages to %s' % (args.count, connection.redact(args.url)))
        print('publish: raw redis-py %.0f/s, Emitter.emit %.0f/s (%.2fx raw)' % (
            results['raw_publish_per_s'], results['emitter_per_s'],
            results['emitter_ratio']))
        print('receive: raw redis-py %.0f/s, RedisManager listener %.0f/s '
              '(%.2fx raw)' % (results['raw_receive_per_s'],
                               results['listener_per_s'], results['listener_ratio']))
    return 0


# ------------------------------------------------------------------ main

def _positive(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not a number: %r' % text) from None
    if value <= 0:
        raise argparse.ArgumentTypeError('must be positive: %r' % text)
    return value


def _count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not an integer: %r' % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1: %r' % text)
    return value


def _mode_parser():
    """``--mode`` and the streams options, as the library names them."""
    modes = _Parser(add_help=False)
    group = modes.add_argument_group(
        'wire mode', "the servers' mode (RedisManager's mode=): classic "
        "(Node's createAdapter), sharded (createShardedAdapter, Redis >= 7) or "
        "streams (@socket.io/redis-streams-adapter); the stream options must "
        "be the servers'")
    group.add_argument('--mode', choices=sorted(DIALECTS), default=ClassicDialect.name,
                       help='default %(default)s')
    group.add_argument('--stream-name', metavar='NAME',
                       help="streams mode: the stream's name (Node's streamName, "
                       'default socket.io)')
    group.add_argument('--stream-count', type=_count, metavar='N',
                       help='streams mode: how many streams the namespaces are spread '
                       "over (Node's streamCount, default 1)")
    return modes, group


def build_parser():
    """The argument parser of every subcommand."""
    common = _Parser(add_help=False)
    common.add_argument('--url', default=os.environ.get('REDIS_URL', DEFAULT_URL),
                        help='the Redis URL (default $REDIS_URL, else %s)'
                        % DEFAULT_URL)
    common.add_argument('--key', default=protocol.DEFAULT_KEY,
                        help="the cluster's channel prefix (Node's key, or "
                        'channelPrefix in streams mode; default %(default)s)')
    common.add_argument('-v', '--verbose', action='store_true',
                        help="show the package's log (warnings and retries)")
    parser = _Parser(prog=PROG, description='Emit to, watch and inspect a '
                     'Socket.IO cluster on Redis (python-socketio servers with '
                     'sio_redis_sync, and Node servers with @socket.io/redis-adapter '
                     'or @socket.io/redis-streams-adapter).')
    parser.add_argument('--version', action='version', version=__version__)
    commands = parser.add_subparsers(dest='command', metavar='COMMAND',
                                     parser_class=_Parser)
    commands.required = True
    for add in (_add_emit, _add_monitor, _add_status, _add_bench):
        add(commands, common)
    return parser


def _add_emit(commands, common):
    modes, group = _mode_parser()
    group.add_argument('--max-len', type=_count, metavar='N',
                       help="streams mode: the stream's approximate cap (XADD MAXLEN ~; "
                       "Node's maxLen, default 10000)")
    group.add_argument('--sharded-pubsub', action='store_const', const=True,
                       help="streams mode: the servers' useShardedPubSub (requests "
                       'through SPUBLISH)')
    group.add_argument('--subscription-mode', choices=envelope.SUBSCRIPTION_MODES,
                       help="sharded mode: the servers' subscriptionMode (which "
                       "single-room emits go to the room's channel; default dynamic)")
    emit = commands.add_parser(
        'emit', parents=[common, modes], help='emit an event',
        description='Emit EVENT with JSON arguments (quote strings: \'"text"\'). '
        'Classic and sharded modes print how many servers Redis reached; streams '
        "mode prints the entry's id and stream, and how many servers listen.")
    emit.add_argument('event', metavar='EVENT')
    emit.add_argument('args', metavar='JSON_ARGS', nargs='*')
    emit.add_argument('--to', action='append', metavar='ROOM',
                      help='a room or sid (repeatable); everyone if omitted')
    emit.add_argument('--except', dest='except_', action='append', metavar='ROOM',
                      help='leave out the members of ROOM (repeatable)')
    emit.add_argument('--namespace', default='/', metavar='NSP')
    emit.set_defaults(run=cmd_emit)


def _add_monitor(commands, common):
    modes, _ = _mode_parser()
    monitor = commands.add_parser(
        'monitor', parents=[common, modes], help="watch the cluster's messages",
        description='Print every message on the cluster\'s channels, decoded: '
        'broadcasts, requests and responses, classic and sharded (in every '
        '--mode). With --mode streams, also every entry added to the streams '
        'from now on (XREAD from $, on a connection of its own; family "stream", '
        'with the entry\'s id), and the messages on KEY#NSP# and KEY#NSP#UID# are '
        "decoded as that mode's requests and answers. With --stream-count above 1, "
        'the streams read are those Node reads and those of the namespaces '
        'servers listen to (looked for every second) or --namespace names.')
    monitor.add_argument('--json', action='store_true', help='one JSON object per line')
    monitor.add_argument('--namespace', action='append', metavar='NSP',
                         help='only this namespace (repeatable)')
    monitor.add_argument('--room', action='append', metavar='ROOM',
                         help='only messages naming this room or sid (repeatable)')
    monitor.add_argument('--type', action='append', metavar='TYPE',
                         help='only this type (BROADCAST, REMOTE_JOIN, ...) or '
                         'family (broadcast, request, response, sharded, legacy, '
                         'stream, MALFORMED) (repeatable)')
    monitor.add_argument('--legacy-channel', metavar='CHANNEL',
                         help="also python-socketio's queue channel (e.g. "
                         'flask-socketio)')
    monitor.add_argument('--no-sharded', action='store_true',
                         help='do not look for sharded channels')
    monitor.add_argument('--width', type=int, default=120,
                         help='payload characters shown (default %(default)s)')
    monitor.add_argument('--count', type=int, metavar='N',
                         help='stop after N messages shown')
    monitor.add_argument('--duration', type=_positive, metavar='SECONDS',
                         help='stop after SECONDS')
    monitor.set_defaults(run=cmd_monitor)


def _add_status(commands, common):
    modes, group = _mode_parser()
    group.add_argument('--sharded-pubsub', action='store_const', const=True,
                       help="streams mode: the servers' useShardedPubSub")
    status = commands.add_parser(
        'status', parents=[common, modes], help='servers, rooms and sockets',
        description='Server count, rooms and sockets per namespace (through '
        'the cluster API), Redis version and latency; with --mode streams, also '
        "each stream's length, first and last entry ids and (Redis >= 7) how "
        'many entries were ever added. Exit code 1 when no server answers.')
    status.add_argument('--namespace', action='append', metavar='NSP',
                        help='namespace to inspect (repeatable; default: those '
                        'servers listen to)')
    status.add_argument('--timeout', type=_positive, default=5.0,
                        help='seconds to wait for the servers (default %(default)s)')
    status.add_argument('--json', action='store_true')
    status.set_defaults(run=cmd_status)


def _add_bench(commands, common):
    bench = commands.add_parser(
        'bench', parents=[common], help='a quick throughput benchmark',
        description='Publish and receive COUNT messages with Emitter and a '
        'RedisManager listener, against raw redis-py in the same process '
        '(on a key of its own). The full comparison with python-socketio '
        'and Node is "python -m bench" in a source checkout.')
    bench.add_argument('--count', type=int, default=20000)
    bench.add_argument('--timeout', type=_positive, default=60.0,
                       help='seconds to wait for the messages (default %(default)s)')
    bench.add_argument('--json', action='store_true')
    bench.set_defaults(run=cmd_bench)


class _SafeFormatter(logging.Formatter):
    """Log lines as :func:`_scrub` makes error lines."""

    def __init__(self, fmt, url):
        super().__init__(fmt)
        self.url = url

    def format(self, record):
        return _scrub(super().format(record), self.url)


def _configure_logging(verbose, url):
    """The package's log on stderr with ``--verbose``; otherwise silent,
    as every failure ends in the one error line of :func:`main`."""
    log = logging.getLogger('sio_redis_sync')
    if verbose:
        handler = logging.StreamHandler()
        handler.setFormatter(_SafeFormatter(
            '%(asctime)s %(levelname)s %(message)s', url))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    else:
        log.addHandler(logging.NullHandler())
        log.propagate = False


def main(argv=None):
    """Run the command line; returns the exit code."""
    parser = build_parser()
    url = DEFAULT_URL
    try:
        args = parser.parse_args(argv)
        url = args.url
        try:
            connection.check_url(url)
        except ValueError as exc:  # its text is redacted already
            raise UsageError(str(exc)) from None
        _configure_logging(args.verbose, url)
        return args.run(args)
    except UsageError as exc:
        print('%s: error: %s' % (PROG, _scrub(str(exc), url)), file=sys.stderr)
        return 2
    except RUNTIME_ERRORS as exc:
        print('%s: error: %s' % (PROG, _scrub(' '.join(str(exc).split()), url)),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run():
    """The console script's entry point."""
    sys.exit(main())
