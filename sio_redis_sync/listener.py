"""The subscriber side: one Redis Pub/Sub connection and the loop that reads it.

Owns that connection alone (no other thread touches it): keeps the wanted
channels and patterns, resubscribes them after every reconnect, and hands raw
``(channel, pattern, data)`` to one callback. Decodes nothing.
"""
import logging
import threading
import time

import redis

from .connection import redact
from .exceptions import ProtocolError

logger = logging.getLogger(__name__)

# How long one wait for data lasts before the loop looks at stop, new
# subscriptions and the health check.
POLL_INTERVAL = 0.1
# Pauses between reconnection attempts: short, so that delivery resumes well
# within a second of Redis coming back, however long it was away.
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 0.25
# While Redis stays unreachable, one warning per this many seconds.
LOG_EVERY = 10.0
#: default seconds of silence after which the listener PINGs Redis
HEALTH_CHECK_INTERVAL = 1.0
#: default seconds Redis has to answer that PING (and any socket wait of the
#: subscriber: connecting, reading a started message)
HEALTH_CHECK_TIMEOUT = 2.0
PING_TOKEN = b'sio_redis_sync-health'
_REDIS_DOWN = (redis.RedisError, OSError)


class Outage:
    """One connection's outage, for a reading loop: the backoff (from
    BACKOFF_FIRST, doubling up to BACKOFF_MAX), the failures, since when, and
    whether to log (once at first, then every LOG_EVERY seconds)."""

    def __init__(self):
        self.reset()

    def reset(self):
        """The connection is back (or never failed)."""
        self.delay, self.failures, self.lost_at, self._logged_at = \
            BACKOFF_FIRST, 0, None, None

    def failed(self):
        """One more failure; True if it should be logged."""
        now = time.monotonic()
        if self.lost_at is None:
            self.lost_at = now
        self.failures += 1
        if self._logged_at is None or now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            return True
        return False

    def duration(self):
        """Seconds since the outage began."""
        return time.monotonic() - self.lost_at

    def next_delay(self):
        """How long to wait before the next attempt."""
        delay, self.delay = self.delay, min(self.delay * 2, BACKOFF_MAX)
        return delay


class Listener:
    """Reads every message of its subscriptions and passes it to ``callback``.

    A connection that stays silent for ``health_check_interval`` seconds gets
    a PING through it; no answer within ``health_check_timeout`` seconds (a
    paused Redis, a half-open link) counts as a lost connection, like a
    reset or a killed client: the loop reconnects (after 0.05 s, then
    doubling up to 0.25 s) and subscribes again to every channel and pattern.

    :param connect: a callable returning a new ``redis.client.PubSub``.
    :param callback: called as ``callback(channel, pattern, data)`` with bytes
                     (``pattern`` is None for plain subscriptions); an
                     exception it raises is logged and the loop goes on.
    :param where: how log lines name the Redis server (no password in it).
    :param sharded: subscribe with SSUBSCRIBE (Redis 7 sharded Pub/Sub)
                    instead of SUBSCRIBE (no patterns then).
    :param on_dropped: called as ``on_dropped(channel)`` (str) when Redis
                       itself ends a sharded subscription that is still
                       wanted (its slot moved to another node); without it
                       the channel is subscribed again here.
    :param secrets: passwords to hide in the error texts it logs (see
                    :func:`sio_redis_sync.connection.secrets`).

    A :class:`~sio_redis_sync.ProtocolError` from ``callback`` (a malformed
    message) is logged as one warning line without a traceback and counted
    in :attr:`dropped_malformed`; any other exception is logged with its
    traceback (a bug); either way the loop goes on.
    """

    def __init__(self, connect, callback, log=None, where='Redis',
                 health_check_interval=HEALTH_CHECK_INTERVAL,
                 health_check_timeout=HEALTH_CHECK_TIMEOUT, sharded=False,
                 on_dropped=None, secrets=()):
        self._connect = connect
        self._sharded = sharded
        self._on_dropped = on_dropped
        # (subscribe, unsubscribe) method names of redis-py's PubSub
        self._commands = ('ssubscribe', 'sunsubscribe') if sharded \
            else ('subscribe', 'unsubscribe')
        self._callback = callback
        self._log = log or logger
        self._where = where
        self._secrets = secrets
        self._health_interval = health_check_interval
        self._health_timeout = health_check_timeout
        self._lock = threading.Lock()
        self._channels = set()
        self._patterns = set()
        self._dirty = False
        self._pubsub = None
        self._applied = set()    # channels asked for on this connection
        self._confirmed = set()
        self._last_heard = 0.0
        self._ping_sent = None
        self._stop = threading.Event()
        self.stopped = threading.Event()
        #: set while every wanted subscription is confirmed by Redis
        self.ready = threading.Event()
        #: set once the first connection attempt has ended, either way
        self.settled = threading.Event()
        #: how many times it has connected (more than 1: it reconnected)
        self.connections = 0
        #: messages ``callback`` refused with a ProtocolError
        self.dropped_malformed = 0

    def subscriptions(self):
        """The wanted ``(channels, patterns)``, as sorted lists of str."""
        with self._lock:
            return (sorted(c.decode() for c in self._channels),
                    sorted(p.decode() for p in self._patterns))

    def subscribe(self, channels=(), patterns=()):
        """Add subscriptions (str); applied by the loop within POLL_INTERVAL."""
        with self._lock:
            new_channels = {c.encode() for c in channels} - self._channels
            new_patterns = {p.encode() for p in patterns} - self._patterns
            if new_channels or new_patterns:
                self._channels |= new_channels
                self._patterns |= new_patterns
                self._dirty = True
                self.ready.clear()

    def unsubscribe(self, channels=()):
        """Drop channel subscriptions (str); applied by the loop within
        POLL_INTERVAL. Channels not subscribed are ignored."""
        with self._lock:
            gone = {c.encode() for c in channels} & self._channels
            if gone:
                self._channels -= gone
                self._dirty = True

    def stop(self):
        """Ask the loop to end; it closes the connection on its way out."""
        self._stop.set()

    def after_fork(self):
        """In a forked child: the loop's thread did not survive the fork, so
        this copy is left stopped (:meth:`run` returns at once; make a new
        Listener to listen), with a new lock, and its connection forgotten
        without being closed (the socket is still the parent's)."""
        self._lock = threading.Lock()
        self._pubsub = None
        self._stop = threading.Event()
        self._stop.set()
        self.stopped = threading.Event()
        self.stopped.set()
        self.ready = threading.Event()

    def run(self):
        """The loop: run it as a background task; returns after :meth:`stop`."""
        outage = Outage()
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception as exc:  # every failure, even a bug, reconnects
                    if outage.failed():
                        self._log_lost(exc, outage.failures - 1, outage.duration())
                    self._drop_connection()
                    self.settled.set()
                    self._stop.wait(outage.next_delay())
                    continue
                if outage.lost_at is not None and self.ready.is_set():
                    self._log.warning(
                        'Redis subscriber connection to %s is back after '
                        '%.1f s; every subscription renewed', self._where,
                        outage.duration())
                    outage.reset()
        finally:
            self._drop_connection()
            self.stopped.set()

    def _log_lost(self, exc, failures, down_for):
        if isinstance(exc, _REDIS_DOWN):
            if failures:
                self._log.warning(
                    'still no Redis subscriber connection to %s after %.0f s '
                    'and %d attempts (%s: %s); retrying every %.1f s',
                    self._where, down_for, failures, type(exc).__name__,
                    self._text(exc), BACKOFF_MAX)
            else:
                self._log.warning(
                    'Redis subscriber connection to %s lost (%s: %s); '
                    'reconnecting', self._where, type(exc).__name__,
                    self._text(exc))
        else:  # a bug, not Redis: say where, and keep listening
            self._log.exception('unexpected error in the Redis listener of %s; '
                                'reconnecting', self._where)

    def _step(self):
        if self._pubsub is None:
            self._open()
        elif self._dirty:
            self._apply()
        if self._pubsub.connection is None:  # nothing to subscribe to yet
            self._stop.wait(POLL_INTERVAL)
            return
        # waits at most POLL_INTERVAL for data; a message that stops half-way
        # is bounded by the connection's socket timeout (health_check_timeout)
        message = self._pubsub.get_message(timeout=POLL_INTERVAL)
        if message is None:
            self._check_health()
            return
        self._last_heard = time.monotonic()
        kind = message['type']
        if kind in ('message', 'pmessage', 'smessage'):
            self._deliver(message)
        elif kind in ('subscribe', 'psubscribe', 'ssubscribe'):
            self._confirmed.add(message['channel'])
            self._check_ready()
        elif kind in ('unsubscribe', 'sunsubscribe'):
            self._unsubscribed(message['channel'])
        elif kind == 'pong' and message['data'] == PING_TOKEN:
            self._ping_sent = None

    def _unsubscribed(self, channel):
        self._confirmed.discard(channel)
        with self._lock:
            wanted = channel in self._channels
        if not wanted or channel not in self._applied:
            return  # one this loop asked to drop
        # Redis ended it (sharded: the slot moved to another node)
        self._applied.discard(channel)
        self.ready.clear()
        if self._on_dropped is not None:
            self._on_dropped(channel.decode('utf-8', 'replace'))
        else:
            with self._lock:
                self._dirty = True

    def _check_health(self):
        """PING after ``health_check_interval`` of silence; raise if Redis
        has not answered within ``health_check_timeout``."""
        now = time.monotonic()
        if self._ping_sent is None:
            if now - self._last_heard >= self._health_interval:
                self._pubsub.ping(PING_TOKEN)
                self._ping_sent = now
        elif now - self._ping_sent > self._health_timeout:
            raise redis.TimeoutError(
                'no answer to PING within %.1f s' % self._health_timeout)

    def _text(self, exc):
        """``exc``'s text, redacted (redis-py 6 may put a connection's repr,
        password included, in it), or its type if it has none to give."""
        try:
            return redact(str(exc), self._secrets)
        except Exception:  # a hostile __str__ must not escape from here
            return '<%s>' % type(exc).__name__

    def _deliver(self, message):
        try:
            self._callback(message['channel'], message.get('pattern'),
                           message['data'])
        except ProtocolError as exc:  # malformed input: one line, no traceback
            self.dropped_malformed += 1
            self._log.warning('dropped a malformed message on %r: %s',
                              message['channel'], self._text(exc))
        except Exception as exc:  # a handler bug must not kill the listener
            self._log.error('error handling a message from channel %r: %s: %s',
                            message['channel'], type(exc).__name__,
                            self._text(exc), exc_info=exc)

    def _open(self):
        self._pubsub = self._connect()
        self._applied = set()
        self._confirmed = set()
        self._ping_sent = None
        self._apply()
        self._last_heard = time.monotonic()
        self.connections += 1

    def _apply(self):
        with self._lock:
            channels, patterns = set(self._channels), set(self._patterns)
            self._dirty = False
        subscribe, unsubscribe = (getattr(self._pubsub, name)
                                  for name in self._commands)
        missing_channels = channels - self._applied
        extra_channels = self._applied - channels
        missing_patterns = patterns - set(self._pubsub.patterns)
        # one channel per SSUBSCRIBE: a cluster wants one slot per command;
        # in reverse order, so that a namespace's channel K#N# comes after
        # its rooms' K#N#room# (the delivery check relies on it)
        groups = (lambda names: [[name] for name in sorted(names, reverse=True)]) \
            if self._sharded else (lambda names: [sorted(names)])
        for group in groups(missing_channels) if missing_channels else ():
            subscribe(*group)
        self._applied |= missing_channels
        for group in groups(extra_channels) if extra_channels else ():
            unsubscribe(*group)
        if extra_channels:
            self._applied -= extra_channels
            self._confirmed -= extra_channels
        if missing_patterns:
            self._pubsub.psubscribe(*sorted(missing_patterns))

    def _check_ready(self):
        with self._lock:
            done = not self._dirty and \
                (self._channels | self._patterns) <= self._confirmed
        if done:
            self.ready.set()
            self.settled.set()

    def _drop_connection(self):
        self.ready.clear()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except _REDIS_DOWN:
                pass  # the connection is already gone; nothing to release
