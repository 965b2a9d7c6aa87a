"""``sio-redis-sync``: the operator's command line (emit, monitor, status, bench).

Owns argument parsing, the one-line error policy (exit 2 for usage, 1 for
runtime failures) and the monitor's subscriber connection; every URL it prints
goes through :func:`sio_redis_sync.connection.redact`.
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

from . import __version__, connection, legacy, protocol
from .emitter import Emitter
from .exceptions import ProtocolError, RequestTimeout, SioRedisError
from .classic import ClassicDialect
from .protocol import Broadcast, Ignored, Request, RequestType, Response
from .sharded import ShardedDialect

PROG = 'sio-redis-sync'
DEFAULT_URL = 'redis://localhost:6379/0'
#: how often monitor looks for new sharded channels (PUBSUB SHARDCHANNELS)
SHARD_POLL_INTERVAL = 1.0
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

def cmd_emit(args):
    values = []
    for number, text in enumerate(args.args, 1):
        try:
            values.append(json.loads(text))
        except ValueError:
            raise UsageError('argument %d is not JSON: %r (quote strings: '
                             '\'"text"\')' % (number, text)) from None
    emitter = Emitter(args.url, key=args.key)
    try:
        operator = emitter.of(args.namespace).to(args.to or []).except_(
            args.except_ or [])
        try:
            servers = operator.emit(args.event, *values)
        except ValueError as exc:  # a reserved event name
            raise UsageError(str(exc)) from None
    finally:
        emitter.close()
    print('emitted %r to %s: %d server%s subscribed'
          % (args.event, ', '.join(args.to) if args.to else 'everyone',
             servers, '' if servers == 1 else 's'))
    return 0


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
                                    channel, dialect.sharded)


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




class Monitor:
    """Subscribes to every channel of ``key`` (and to ``legacy_channel``)
    and decodes each message into a dict; owns its one subscriber connection.

    Classic channels by pattern; sharded channels (which cannot be
    pattern-subscribed) found with ``PUBSUB SHARDCHANNELS`` every
    :data:`SHARD_POLL_INTERVAL` seconds.
    """

    def __init__(self, url, key, legacy_channel=None, sharded=True):
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
        self._poll_shards()

    def _poll_shards(self):
        if not self.sharded:
            return
        self._shard_polled = time.monotonic()
        try:
            found = self._client.pubsub_shardchannels(_glob(self.key) + '#*')
        except redis.ResponseError:  # Redis < 7 has no sharded Pub/Sub
            self.sharded = False
            return
        new = {c.decode('utf-8', 'replace') for c in found} - self._shard_channels
        if new:
            self._shard_channels |= new
            self._pubsub.ssubscribe(*sorted(new))

    def _family(self, kind, channel):
        if kind == 'smessage':
            return 'sharded'
        if kind == 'message':
            return 'legacy'
        for family, prefix in self._prefixes:
            if channel.startswith(prefix):
                return family
        return 'broadcast'

    def decode(self, family, channel, data):
        """One message as a dict; a malformed one as type ``MALFORMED``."""
        nsp = None
        if family in ('request', 'response', 'broadcast', 'sharded'):
            rest = channel[len(self.key):].split('#')
            nsp = rest[1] if len(rest) > 2 else None
        try:
            if family == 'legacy':
                record = _decode_legacy(channel, nsp, data)
            else:
                record = _decode_with(self._sharded if family == 'sharded'
                                      else self._classic, channel, nsp, data)
        except ProtocolError as exc:
            record = _summary('MALFORMED', None, nsp, payload=repr(data[:200]),
                              error=str(exc))
        record.update(time=time.time(), family=family, channel=channel,
                      size=len(data))
        return record

    def messages(self):
        """Yield decoded messages until :meth:`stop`."""
        while not self._stop.is_set():
            if self.sharded and \
                    time.monotonic() - self._shard_polled >= SHARD_POLL_INTERVAL:
                self._poll_shards()
            message = self._pubsub.get_message(timeout=0.1)
            if message is None or message['type'] not in (
                    'message', 'pmessage', 'smessage'):
                continue
            channel = message['channel'].decode('utf-8', 'replace')
            yield self.decode(self._family(message['type'], channel), channel,
                              message['data'])

    def close(self):
        self._pubsub.close()
        self._client.close()


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
    for name in ('join', 'leave', 'sid', 'room', 'to', 'request_id'):
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


def cmd_monitor(args):
    if args.count is not None and args.count < 1:
        raise UsageError('--count must be at least 1')
    monitor = Monitor(args.url, args.key, args.legacy_channel,
                      sharded=not args.no_sharded)
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
        print('monitoring %s key %r%s (Ctrl-C to stop)'
              % (connection.redact(args.url), args.key,
                 ' and channel %r' % args.legacy_channel if args.legacy_channel
                 else ''), file=sys.stderr, flush=True)
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

def _namespaces(client, key):
    prefix = key + '-request#'
    found = client.pubsub_channels(_glob(prefix) + '*')
    names = []
    for channel in found:
        channel = channel.decode('utf-8', 'replace')
        if channel.endswith('#'):
            names.append(channel[len(prefix):-1])
    return sorted(set(names))


def cmd_status(args):
    emitter = Emitter(args.url, key=args.key)
    client = emitter.redis
    report = {'redis': connection.redact(args.url), 'key': args.key,
              'namespaces': {}}
    failures = []
    try:
        started = time.perf_counter()
        client.ping()
        report['ping_ms'] = round((time.perf_counter() - started) * 1000, 3)
        report['redis_version'] = client.info('server').get('redis_version')
        namespaces = args.namespace or _namespaces(client, args.key)
        for nsp in namespaces:
            entry = report['namespaces'][nsp] = {
                'servers': emitter.server_count(nsp)}
            if not entry['servers']:
                continue
            try:
                entry['rooms'] = sorted(map(str, emitter.all_rooms(nsp, args.timeout)))
                sockets = emitter.fetch_sockets(namespace=nsp, timeout=args.timeout)
            except RequestTimeout as exc:
                failures.append('%s: %s' % (nsp, exc))
                continue
            entry['sockets'] = len(sockets)
            per_room = {}
            for socket in sockets:
                for room in socket.rooms:
                    per_room[str(room)] = per_room.get(str(room), 0) + 1
            entry['sockets_per_room'] = dict(sorted(per_room.items()))
    finally:
        emitter.close()
    servers = max([n['servers'] for n in report['namespaces'].values()] or [0])
    report['servers'] = servers
    if args.json:
        print(_printable(_dumps(report)))
    else:
        print('redis %s: version %s, ping %.3f ms' % (
            report['redis'], report['redis_version'], report['ping_ms']))
        print('key %r: %d server%s' % (args.key, servers, '' if servers == 1 else 's'))
        for nsp, entry in report['namespaces'].items():
            print(_printable('namespace %s: %d server%s, %s sockets' % (
                nsp, entry['servers'], '' if entry['servers'] == 1 else 's',
                entry.get('sockets', '?'))))
            for room, count in entry.get('sockets_per_room', {}).items():
                print(_printable('  room %s: %d' % (room, count)))
    for failure in failures:
        print(_printable('%s: warning: %s' % (PROG, failure)), file=sys.stderr)
    if not servers:
        print('%s: error: no server answers on key %r' % (PROG, args.key),
              file=sys.stderr)
        return 1
    return 1 if failures else 0


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


def build_parser():
    """The argument parser of every subcommand."""
    common = _Parser(add_help=False)
    common.add_argument('--url', default=os.environ.get('REDIS_URL', DEFAULT_URL),
                        help='the Redis URL (default $REDIS_URL, else %s)'
                        % DEFAULT_URL)
    common.add_argument('--key', default=protocol.DEFAULT_KEY,
                        help="the cluster's channel prefix (default %(default)s)")
    common.add_argument('-v', '--verbose', action='store_true',
                        help="show the package's log (warnings and retries)")
    parser = _Parser(prog=PROG, description='Emit to, watch and inspect a '
                     'Socket.IO cluster on Redis (python-socketio servers with '
                     'sio_redis_sync, and Node servers with @socket.io/redis-adapter).')
    parser.add_argument('--version', action='version', version=__version__)
    commands = parser.add_subparsers(dest='command', metavar='COMMAND',
                                     parser_class=_Parser)
    commands.required = True
    for add in (_add_emit, _add_monitor, _add_status, _add_bench):
        add(commands, common)
    return parser


def _add_emit(commands, common):
    emit = commands.add_parser('emit', parents=[common], help='emit an event',
                               description='Emit EVENT with JSON arguments '
                               '(quote strings: \'"text"\').')
    emit.add_argument('event', metavar='EVENT')
    emit.add_argument('args', metavar='JSON_ARGS', nargs='*')
    emit.add_argument('--to', action='append', metavar='ROOM',
                      help='a room or sid (repeatable); everyone if omitted')
    emit.add_argument('--except', dest='except_', action='append', metavar='ROOM',
                      help='leave out the members of ROOM (repeatable)')
    emit.add_argument('--namespace', default='/', metavar='NSP')
    emit.set_defaults(run=cmd_emit)


def _add_monitor(commands, common):
    monitor = commands.add_parser(
        'monitor', parents=[common], help="watch the cluster's messages",
        description='Print every message on the cluster\'s channels, decoded: '
        'broadcasts, requests and responses, classic and sharded.')
    monitor.add_argument('--json', action='store_true', help='one JSON object per line')
    monitor.add_argument('--namespace', action='append', metavar='NSP',
                         help='only this namespace (repeatable)')
    monitor.add_argument('--room', action='append', metavar='ROOM',
                         help='only messages naming this room or sid (repeatable)')
    monitor.add_argument('--type', action='append', metavar='TYPE',
                         help='only this type (BROADCAST, REMOTE_JOIN, ...) or '
                         'family (broadcast, request, response, sharded, legacy, '
                         'MALFORMED) (repeatable)')
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
    status = commands.add_parser(
        'status', parents=[common], help='servers, rooms and sockets',
        description='Server count, rooms and sockets per namespace (through '
        'the cluster API), Redis version and latency. Exit code 1 when no '
        'server answers.')
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
