"""The subscriber side: one Redis Pub/Sub connection and the loop that reads it.

Owns that connection alone (no other thread touches it): keeps the wanted
channels and patterns, resubscribes them after every reconnect, and hands raw
``(channel, pattern, data)`` to one callback. Decodes nothing.
"""
import logging
import threading

import redis

logger = logging.getLogger('sio_redis_sync')

# How long one read waits before the loop looks at stop and new subscriptions.
POLL_INTERVAL = 0.1
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError)


class Listener:
    """Reads every message of its subscriptions and passes it to ``callback``.

    :param connect: a callable returning a new ``redis.client.PubSub``.
    :param callback: called as ``callback(channel, pattern, data)`` with bytes
                     (``pattern`` is None for plain subscriptions); an
                     exception it raises is logged and the loop goes on.
    """

    def __init__(self, connect, callback, log=None):
        self._connect = connect
        self._callback = callback
        self._log = log or logger
        self._lock = threading.Lock()
        self._channels = set()
        self._patterns = set()
        self._dirty = False
        self._pubsub = None
        self._confirmed = set()
        self._stop = threading.Event()
        self.stopped = threading.Event()
        #: set while every wanted subscription is confirmed by Redis
        self.ready = threading.Event()
        #: set once the first connection attempt has ended, either way
        self.settled = threading.Event()
        #: how many times it has connected (more than 1: it reconnected)
        self.connections = 0

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

    def stop(self):
        """Ask the loop to end; it closes the connection on its way out."""
        self._stop.set()

    def run(self):
        """The loop: run it as a background task; returns after :meth:`stop`."""
        delay = BACKOFF_FIRST
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                    delay = BACKOFF_FIRST
                except _REDIS_DOWN as exc:
                    self._drop_connection()
                    self.settled.set()
                    self._log.warning(
                        'Redis subscriber connection lost (%s: %s); '
                        'reconnecting in %.1f s', type(exc).__name__, exc, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
        finally:
            self._drop_connection()
            self.stopped.set()

    def _step(self):
        if self._pubsub is None:
            self._open()
        elif self._dirty:
            self._apply()
        message = self._pubsub.get_message(timeout=POLL_INTERVAL)
        if message is None:
            return
        kind = message['type']
        if kind in ('message', 'pmessage'):
            self._deliver(message)
        elif kind in ('subscribe', 'psubscribe'):
            self._confirmed.add(message['channel'])
            self._check_ready()

    def _deliver(self, message):
        try:
            self._callback(message['channel'], message.get('pattern'),
                           message['data'])
        except Exception as exc:  # a handler bug must not kill the listener
            self._log.exception('error handling a message from channel %r: %s',
                                message['channel'], exc)

    def _open(self):
        self._pubsub = self._connect()
        self._confirmed = set()
        self._apply()
        if self.connections:
            self._log.warning('Redis subscriber reconnected')
        self.connections += 1

    def _apply(self):
        with self._lock:
            channels, patterns = set(self._channels), set(self._patterns)
            self._dirty = False
        missing_channels = channels - set(self._pubsub.channels)
        missing_patterns = patterns - set(self._pubsub.patterns)
        if missing_channels:
            self._pubsub.subscribe(*sorted(missing_channels))
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
