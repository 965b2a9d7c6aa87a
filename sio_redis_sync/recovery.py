"""Connection state recovery's data: the session of a socket kept in Redis
(``SET sio:session:<pid> <base64 msgpack> PX <ms>``) and the missed packets.

Owns the session codec (Node's ``@socket.io/redis-streams-adapter`` 0.3.1
layout ``{sid, pid, rooms, data}``), the offset rules, which stream entries a
recovered socket missed, and :class:`SessionStore`, the few Redis calls of it
on a client it is given. A pid recovers someone's session: it is never logged.
"""
import base64
import binascii
import re
import secrets

import redis

from . import protocol
from .exceptions import ProtocolError, PublishError

#: Node's ``sessionKeyPrefix``
SESSION_KEY_PREFIX = 'sio:session:'
#: Node's ``maxDisconnectionDuration`` default, in seconds
MAX_DISCONNECTION_DURATION = 120.0
#: the reasons an Engine.IO connection ended after which a session is kept
#: (Node's RECOVERABLE_DISCONNECT_REASONS in python-engineio's words: a client
#: that closes its Engine.IO connection is 'client disconnect' here and
#: 'transport close' in Node; a namespace DISCONNECT packet never is)
RECOVERABLE = frozenset(('transport close', 'transport error', 'ping timeout',
                         'client disconnect', 'server shutting down'))
#: XRANGE calls at most when collecting missed packets (Node's 100)
MAX_XRANGE_CALLS = 100
XRANGE_COUNT = 1000
_OFFSET = re.compile(r'[0-9]{1,20}-[0-9]{1,20}\Z')
_PID_MAX = 256
# compare and set, compare and delete: a server writes (or deletes) a session
# only while Redis holds what it wrote last (else another server has the
# socket now, or it was taken); one key each, so a cluster routes them
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_REDIS_ERRORS = (redis.RedisError, OSError)


def new_pid():
    """A private id: whoever holds it recovers the session."""
    return secrets.token_urlsafe(15)


def valid_offset(offset):
    """True if ``offset`` is a stream id ``<ms>-<seq>`` (Node's check)."""
    return isinstance(offset, str) and _OFFSET.match(offset) is not None


def offset_order(value):
    """``(ms, seq)`` of an offset, to compare them; None if ``value`` is not
    one (the last argument of an event without an offset)."""
    if not valid_offset(value):
        return None
    ms, seq = value.split('-')
    return int(ms), int(seq)


def next_offset(offset):
    """The smallest id after ``offset`` (exclusive ranges need Redis 6.2)."""
    ms, seq = offset.split('-')
    return '%s-%d' % (ms, int(seq) + 1)


def options_of(value):
    """The ``connection_state_recovery`` option as ``{max_disconnection_duration}``
    (seconds), or None when off.

    :raises ValueError: for anything but None, a bool, or a dict of known
                        names with a positive number.
    """
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise ValueError('connection_state_recovery is True, False, None or a dict, '
                         'got %r' % (value,))
    unknown = set(value) - {'max_disconnection_duration'}
    if unknown:
        raise ValueError('unknown connection_state_recovery option(s): %s'
                         % ', '.join(sorted(map(str, unknown))))
    duration = value.get('max_disconnection_duration', MAX_DISCONNECTION_DURATION)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or \
            not 0 < duration < 10 ** 7:
        raise ValueError('max_disconnection_duration is a number of seconds > 0, got %r'
                         % (duration,))
    return {'max_disconnection_duration': float(duration)}


def encode_session(sid, pid, rooms, data):
    """A session as Node stores it: base64 of msgpack ``{sid, pid, rooms, data}``.

    :raises TypeError: if ``data`` cannot be encoded.
    """
    return base64.b64encode(protocol.dumps_msgpack(
        {'sid': sid, 'pid': pid, 'rooms': list(rooms), 'data': data}))


def decode_session(raw):
    """A stored session as a dict ``{sid, pid, rooms, data}``.

    :raises ProtocolError: if it is not one.
    """
    if not isinstance(raw, bytes):
        raise ProtocolError('a session is bytes, got %s' % type(raw).__name__)
    try:
        packed = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError('a session is base64') from None
    session = protocol.loads_msgpack(packed)
    if not isinstance(session, dict):
        raise ProtocolError('a session is a map')
    if not isinstance(session.get('sid'), str) or not isinstance(session.get('pid'), str):
        raise ProtocolError('a session has a string sid and pid')
    rooms = protocol.room_list(session.get('rooms'), 'session rooms')
    return {'sid': session['sid'], 'pid': session['pid'], 'rooms': list(rooms),
            'data': session.get('data')}


def includes(rooms, opts_rooms, opts_except):
    """Whether a socket in ``rooms`` was a target of a broadcast to
    ``opts_rooms`` (all if empty) but ``opts_except`` (Node's
    ``shouldIncludePacket``)."""
    rooms = set(rooms)
    included = not opts_rooms or not rooms.isdisjoint(opts_rooms)
    return included and rooms.isdisjoint(opts_except)


class SessionStore:
    """The sessions and the stream reads of recovery, on ``client`` (a
    ``redis.Redis`` or ``RedisCluster``). Every Redis failure raises
    :class:`~sio_redis_sync.PublishError` naming the key (never a pid).

    :param prefix: Node's ``sessionKeyPrefix``.
    """

    def __init__(self, client, prefix=SESSION_KEY_PREFIX):
        self._client = client
        self._prefix = prefix

    def _key(self, pid):
        return self._prefix + pid

    def save(self, sessions, ttl):
        """Keep each ``(pid, encoded, expected)`` of ``sessions`` for ``ttl``
        seconds (one pipelined round trip, or one per slot on a cluster):
        whatever Redis holds if ``expected`` is None (the first write of a
        new or recovered socket), else only if it still holds ``expected``.

        :return: the pids not written (Redis holds something else, or nothing).
        """
        if not sessions:
            return []
        px = max(int(ttl * 1000), 1)
        try:
            pipe = self._client.pipeline(transaction=False)
            for pid, encoded, expected in sessions:
                if expected is None:
                    pipe.set(self._key(pid), encoded, px=px)
                else:
                    pipe.eval(_SWAP, 1, self._key(pid), expected, encoded, px)
            done = pipe.execute()
        except _REDIS_ERRORS as exc:
            raise PublishError(self._prefix + '*', exc) from exc
        return [pid for (pid, _, expected), written in zip(sessions, done)
                if expected is not None and not written]

    def forget(self, sessions):
        """Delete each ``(pid, expected)`` of ``sessions`` (a socket that left
        for good): whatever Redis holds if ``expected`` is None, else only if
        it still holds ``expected``."""
        if not sessions:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for pid, expected in sessions:
                if expected is None:
                    pipe.delete(self._key(pid))
                else:
                    pipe.eval(_DELETE_IF, 1, self._key(pid), expected)
            pipe.execute()
        except _REDIS_ERRORS as exc:
            raise PublishError(self._prefix + '*', exc) from exc

    def take(self, pid):
        """The session of ``pid`` (deleted: a pid recovers once), or None.

        :raises ProtocolError: if what is stored is not a session.
        """
        if not isinstance(pid, str) or not 0 < len(pid) <= _PID_MAX:
            return None
        key = self._key(pid)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.get(key)
            pipe.delete(key)
            raw, _ = pipe.execute()
        except _REDIS_ERRORS as exc:
            raise PublishError(self._prefix + '*', exc) from exc
        if raw is None:
            return None
        session = decode_session(raw)
        if session['pid'] != pid:
            raise ProtocolError('a session stored under another pid')
        return session

    def entries_after(self, stream, offset):
        """The entries of ``stream`` after ``offset`` as ``(id, fields)``, or
        None if ``offset`` is not in the stream (trimmed, or never there):
        then what was missed cannot be known. At most
        :data:`MAX_XRANGE_CALLS` pages are read, as Node does."""
        try:
            if not self._client.xrange(stream, offset, offset, count=1):
                return None
            found = []
            for _ in range(MAX_XRANGE_CALLS):
                page = self._client.xrange(stream, next_offset(offset), '+',
                                           count=XRANGE_COUNT)
                if not page:
                    break
                found.extend(page)
                offset = page[-1][0].decode('ascii')
            return found
        except _REDIS_ERRORS as exc:
            raise PublishError(stream, exc) from exc
