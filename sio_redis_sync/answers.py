"""The Redis calls the manager and the Emitter share: NUMSUB, and the answers
to an Emitter's requests, read on one response subscription shared by them.

Owns that subscription's connection (opened on demand, closed by its owner)
and turns every Redis failure into :class:`PublishError`, so a caller learns
that its request was not sent or not answered.
"""
import logging
import os
import threading
import time

import redis
from redis.exceptions import RedisClusterException

from .exceptions import ProtocolError, PublishError
from .requests import new_request_id

PUBLISH_ERRORS = (redis.RedisError, OSError)
logger = logging.getLogger(__name__)
# the longest a thread reading the answers waits in one read before it looks
# again at what the other requests want subscribed
READ_SLICE = 0.05
_SUBSCRIBE, _UNSUBSCRIBE = 'subscribe', 'unsubscribe'


def numsub(client, channel):
    """How many subscribers ``channel`` has (Node's ``serverCount()`` when it
    is a request channel)."""
    try:
        ((_, count),) = client.pubsub_numsub(channel)
    except PUBLISH_ERRORS as exc:
        raise PublishError(channel, exc) from exc
    return count


def shardnumsub(client, channel, **kwargs):
    """``PUBSUB SHARDNUMSUB channel`` (on a cluster: ask the node owning the
    channel's slot, where every subscriber of it is)."""
    try:
        answer = client.execute_command('PUBSUB SHARDNUMSUB', channel, **kwargs)
    except PUBLISH_ERRORS + (RedisClusterException,) as exc:
        raise PublishError(channel, exc) from exc
    if isinstance(answer, dict):  # redis-py's cluster answer per node
        answer = next(iter(answer.values()))
    ((_, count),) = answer
    return count


class _Closed(redis.ConnectionError):
    """The owner closed the response subscription during the request."""


class _Waiter:
    """One request waiting in :class:`Answers`."""
    __slots__ = ('channels', 'entry', 'error')

    def __init__(self, channels):
        self.channels = channels
        self.entry = None
        self.error = None


class Answers:
    """The answers to every request of one process that does not listen (an
    Emitter), on one Pub/Sub connection its requests share: concurrent
    requests neither wait for each other's connection nor take the
    publishers', and one connection serves them all.

    No thread of its own: the threads waiting for answers take turns reading
    the connection; the one reading routes each answer to its request by
    request id and hands over once its own request is done. A response
    channel is subscribed while a request wants it and unsubscribed when none
    does (classic mode's response channel carries every answer of the
    cluster: an idle subscription would fill Redis's output buffer for
    nothing). The connection is opened by the first request and kept (or, with
    ``keep=False``, closed when idle); :meth:`close` closes it and fails the
    requests waiting, a later request opens it again, and a forked child
    opens one of its own.

    :param open_pubsub: ``open_pubsub()`` -> a new ``redis.client.PubSub``.
    :param dialect: the wire mode: its ``decode_answer(payload)`` reads the
                    answers (SSUBSCRIBE if it is sharded).
    :param keep: keep the connection open while no request waits.
    """

    def __init__(self, open_pubsub, dialect, keep=True, log=None):
        self._open = open_pubsub
        self._decode = dialect.decode_answer
        prefix = 's' if dialect.sharded else ''
        self._commands = {_SUBSCRIBE: prefix + 'subscribe',
                          _UNSUBSCRIBE: prefix + 'unsubscribe'}
        self._kinds = {prefix + 'subscribe': _SUBSCRIBE,
                       prefix + 'unsubscribe': _UNSUBSCRIBE}
        self._message = prefix + 'message'
        self._keep = keep
        self._log = log or logger
        #: malformed answers logged and skipped
        self.dropped_malformed = 0
        self._new_state()

    def _new_state(self):
        self._pid = os.getpid()
        self._cond = threading.Condition(threading.Lock())
        self._pubsub = None
        self._reading = False   # a thread is reading the connection
        self._close_wanted = False
        self._waiters = set()
        self._pending = {}      # request id -> _Waiter
        self._wanted = {}       # channel (bytes) -> requests wanting it
        self._sent = {}         # channel -> the last (un)subscribe sent
        self._unconfirmed = {}  # channel -> commands sent, not answered yet

    def _check_fork(self):
        if self._pid != os.getpid():
            with _fork_lock:
                if self._pid != os.getpid():
                    # the parent's connection, lock and readers are not ours:
                    # leave the socket to the parent, start afresh
                    self._new_state()

    def ask(self, channels, count, entry, payload, publish, timeout):
        """Send one request and collect its answers.

        :param channels: the response channels (str) its answers come on;
                         subscribed before ``count`` is called, so no
                         answer is missed.
        :param count: ``count()`` -> how many servers will answer.
        :param entry: ``entry(servers)`` -> the pending entry
                      (:class:`~sio_redis_sync.requests.Replies` or
                      :class:`~sio_redis_sync.requests.Acks`) fed the
                      answers.
        :param payload: ``payload(request_id)`` -> the request's
                        :class:`~sio_redis_sync.protocol.Outgoing`.
        :param publish: ``publish(outgoing)``, the caller's own.
        :return: what the entry collected.
        :raises sio_redis_sync.RequestTimeout: after ``timeout`` seconds.
        :raises sio_redis_sync.PublishError: if Redis failed, or
                                              :meth:`close` was called.
        """
        self._check_fork()
        deadline = time.monotonic() + timeout
        request_id = new_request_id()
        where = channels[0]
        names = [channel.encode('utf-8') for channel in channels]
        waiter = _Waiter(names)
        self._enter(waiter)
        try:
            for attempt in (1, 2):
                subscribed = self._wait(lambda: waiter.error is not None or
                                        self._subscribed(names), deadline)
                if waiter.error is None or attempt == 2 or \
                        isinstance(waiter.error, _Closed):
                    break
                # the connection failed before this request was sent (one
                # that died while idle is found out here): once more, on a
                # new connection
                with self._cond:
                    waiter.error = None
            self._raise(waiter, where)
            pending = entry(count())
            if pending.done.is_set():
                return pending.replies
            if not subscribed:
                raise pending.timed_out(timeout)
            with self._cond:
                waiter.entry = pending
                self._pending[request_id] = waiter
            publish(payload(request_id))
            self._wait(lambda: waiter.error is not None or pending.done.is_set(),
                       deadline)
            if pending.done.is_set():
                return pending.replies
            self._raise(waiter, where)
            raise pending.timed_out(timeout)
        finally:
            with self._cond:
                self._pending.pop(request_id, None)
            self._leave(waiter)

    def for_channel(self, channel):
        """This object: its one connection serves every channel."""
        return self

    @staticmethod
    def _raise(waiter, where):
        if waiter.error is not None:
            raise PublishError(where, waiter.error) from waiter.error

    def _enter(self, waiter):
        with self._cond:
            self._waiters.add(waiter)
            for channel in waiter.channels:
                self._wanted[channel] = self._wanted.get(channel, 0) + 1

    def _leave(self, waiter):
        with self._cond:
            if waiter not in self._waiters:
                return
            self._waiters.discard(waiter)
            for channel in waiter.channels:
                self._wanted[channel] -= 1
                if not self._wanted[channel]:
                    del self._wanted[channel]
            idle = not self._reading and (self._close_wanted or self._changes())
            if idle:
                self._reading = True  # the turn, to unsubscribe now
        if idle:
            self._sync_in_turn()

    def _sync_in_turn(self):
        """:meth:`_sync` by a thread that took the reading turn (under the
        lock); then the turn is given back."""
        try:
            self._sync()
        finally:
            with self._cond:
                self._reading = False
                self._cond.notify_all()

    def _subscribed(self, names):
        return all(self._sent.get(channel) == _SUBSCRIBE and
                   not self._unconfirmed.get(channel) for channel in names)

    def _wait(self, done, deadline):
        """Wait until ``done()`` (checked under the lock) or ``deadline``,
        reading the connection whenever no other thread does.

        :return: ``done()``.
        """
        cond = self._cond
        while True:
            with cond:
                while not done():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    if not self._reading:
                        self._reading = True
                        break
                    cond.wait(remaining)
                else:
                    return True
            try:
                return self._read(done, deadline)
            finally:
                with cond:
                    self._reading = False
                    cond.notify_all()

    def _read(self, done, deadline):
        """The reading turn: subscribe and unsubscribe as the requests want,
        route answers, until ``done()`` or ``deadline``."""
        while True:
            with self._cond:
                if done():
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not self._sync():
                with self._cond:  # failed or closed: done() says so
                    self._cond.wait(min(remaining, READ_SLICE))
                continue
            try:
                message = self._pubsub.get_message(timeout=min(remaining, READ_SLICE))
            except PUBLISH_ERRORS as exc:
                self._broken(exc)
                continue
            if message is not None:
                self._route(message)

    def _changes(self):
        """What the connection must be told: ``[(action, channel)]`` (under
        the lock)."""
        changes = [(_SUBSCRIBE, channel) for channel in self._wanted
                   if self._sent.get(channel) != _SUBSCRIBE]
        changes += [(_UNSUBSCRIBE, channel) for channel, sent in self._sent.items()
                    if sent == _SUBSCRIBE and channel not in self._wanted]
        return changes

    def _sync(self):
        """Open, close, subscribe and unsubscribe as wanted (by the thread
        holding the reading turn).

        :return: True if the connection is open.
        """
        with self._cond:
            close = self._close_wanted or (not self._keep and not self._wanted)
            self._close_wanted = False
            changes = [] if close else self._changes()
            for action, channel in changes:
                self._sent[channel] = action
                self._unconfirmed[channel] = self._unconfirmed.get(channel, 0) + 1
            if close:
                pubsub, self._pubsub = self._pubsub, None
                self._sent.clear()
                self._unconfirmed.clear()
                for waiter in self._waiters:  # those that came since close()
                    waiter.error = waiter.error or _Closed(
                        'the response subscription was closed')
                self._cond.notify_all()
            elif self._pubsub is None and self._wanted:
                pubsub = self._pubsub = self._open()
            else:
                pubsub = self._pubsub
        if close:
            if pubsub is not None:
                pubsub.close()
            return False
        if pubsub is None:
            return False
        try:
            # one channel per command: a cluster wants one slot per command
            for action, channel in changes:
                getattr(pubsub, self._commands[action])(channel)
        except PUBLISH_ERRORS as exc:
            self._broken(exc)
            return False
        return True

    def _broken(self, error):
        """The connection failed: close it, and fail every waiting request
        (a request not yet sent is tried again on a new connection)."""
        with self._cond:
            pubsub, self._pubsub = self._pubsub, None
            self._sent.clear()
            self._unconfirmed.clear()
            for waiter in self._waiters:
                waiter.error = error
            self._cond.notify_all()
        if pubsub is not None:
            pubsub.close()

    def _route(self, message):
        kind = message['type']
        if kind == self._message:
            try:
                response = self._decode(message['data'])
            except ProtocolError as exc:
                self.dropped_malformed += 1
                self._log.warning('dropped a malformed response on %r: %s',
                                  message['channel'], exc)
                return
            if response is None:
                return
            with self._cond:
                waiter = self._pending.get(response.request_id)
                if waiter is not None and waiter.entry.feed(response.body):
                    self._cond.notify_all()
        elif kind in self._kinds:
            with self._cond:
                channel = message['channel']
                if self._unconfirmed.get(channel):
                    self._unconfirmed[channel] -= 1
                self._cond.notify_all()

    def close(self):
        """Close the connection (now, or by the thread reading it at its next
        turn) and fail the requests waiting with PublishError; a later
        request opens a new connection."""
        self._check_fork()
        with self._cond:
            for waiter in self._waiters:
                waiter.error = _Closed('the response subscription was closed')
            self._close_wanted = True
            self._cond.notify_all()
            if self._reading:
                return
            self._reading = True
        self._sync_in_turn()


def _new_fork_lock():
    global _fork_lock
    _fork_lock = threading.Lock()


_fork_lock = threading.Lock()
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_new_fork_lock)
