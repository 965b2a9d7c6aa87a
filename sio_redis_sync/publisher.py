"""Publishing with a deadline: one bounded pool, retries only where they are
safe, counters, and a PublishError naming the real cause.

Owns the publisher pool of one Emitter or RedisManager (shared by all its
threads and greenlets); never touches a subscriber connection.
"""
import functools
import inspect
import logging
import queue
import threading
import time

import redis

from . import connection
from .delivery import OUTAGE_WINDOW, DeliveryCheck
from .exceptions import PartialDelivery, PublishError
from .streams import StreamEntry
from .answers import PUBLISH_ERRORS, numsub, shardnumsub

logger = logging.getLogger(__name__)
# first pause between two attempts; doubled each time, within the deadline
RETRY_DELAY = 0.05


class PublisherClosed(Exception):
    """The cause of the :class:`~sio_redis_sync.PublishError` of a publish
    made after (or while) its publisher's ``close()`` ran."""

    def __init__(self):
        super().__init__('the publisher was closed (close() was called)')


class _NotSent(Exception):
    """The connection failed before Redis could have read the whole command:
    trying again cannot deliver the message twice."""

    def __init__(self, cause):
        super().__init__(cause)
        self.cause = cause


@functools.lru_cache(maxsize=None)
def _wants_command_name(pool_class):
    # redis-py < 5.3 wants a command name; later ones warn if given one
    parameter = inspect.signature(pool_class.get_connection).parameters.get(
        'command_name')
    return parameter is not None and \
        parameter.default is inspect.Parameter.empty


def checkout(pool):
    if _wants_command_name(type(pool)):
        return pool.get_connection('PUBLISH')
    return pool.get_connection()


class Publisher:
    """PUBLISH through one bounded pool, with bounded retries and a deadline.

    :param url: the Redis URL (ignored if ``client`` is given).
    :param options: keyword arguments for the pool (see
                    :func:`sio_redis_sync.connection.publisher_pool`).
    :param client: a ``redis.Redis`` to publish through instead; its pool is
                   used as it is and not closed by :meth:`close`.
    :param max_connections: the pool's cap.
    :param timeout: the deadline of one publish, in seconds: waiting for a
                    free connection, connecting, retries and the reply.
    :param retries: how many times a publish whose connection failed before
                    the command was sent is tried again (None: until the
                    deadline). A command sent but not answered is never
                    resent (it may have been delivered): it raises at once.
    :param sleep: how to pause between attempts (the server's ``sleep`` under
                  eventlet/gevent).
    :param sharded: SPUBLISH and SHARDNUMSUB (sharded Pub/Sub, Redis >= 7)
                    instead of PUBLISH and NUMSUB.
    """

    def __init__(self, url=None, options=None, client=None,
                 max_connections=connection.MAX_CONNECTIONS,
                 timeout=connection.PUBLISH_TIMEOUT,
                 retries=connection.PUBLISH_RETRIES, log=None, sleep=time.sleep,
                 sharded=False):
        #: the publish command
        self.command = 'SPUBLISH' if sharded else 'PUBLISH'
        self._count = shardnumsub if sharded else numsub
        if timeout is None or timeout <= 0:
            raise ValueError('publish timeout must be a positive number')
        if client is not None:
            self._client = client
            # never repr(client): redis-py 6 puts the password in it
            self.where = connection.describe(client)
            self._owns_client = False
        elif url is not None:
            self._client = redis.Redis(connection_pool=connection.publisher_pool(
                url, options, max_connections, timeout))
            self.where = connection.redact(url)
            self._owns_client = True
        else:  # a subclass brings its own client (see ``client``)
            self._client = None
            self.where = 'Redis'
            self._owns_client = False
        #: what error texts must not show (see connection.redact)
        self._secrets = connection.secrets(url, options, client)
        self.timeout = timeout
        self.retries = retries
        self.sleep = sleep
        self._log = log or logger
        self._lock = threading.Lock()
        # set by close(): no connection is taken any more
        self._closed = False
        # connections this publisher has taken from the pool and not given
        # back: close() leaves them to the publish using them
        self._in_use = set()
        self.published = 0
        self.failures = 0
        #: publishes that raised PartialDelivery
        self.partial_deliveries = 0
        self.delivery = DeliveryCheck(self.numsub, sleep, numpat=self.numpat)
        # when an attempt last failed (monotonic), for the room check
        self._failed_at = None
        # the head of a RESP ``<command> channel payload`` command
        self._head = b'*3\r\n$%d\r\n%s\r\n' % (len(self.command),
                                                   self.command.encode())

    @property
    def client(self):
        """The ``redis.Redis`` every publish goes through."""
        return self._client

    def numsub(self, channel):
        """How many subscribers ``channel`` has (``PUBSUB NUMSUB``).

        :raises sio_redis_sync.PublishError: if Redis cannot be asked, or
            the publisher is closed.
        """
        if self._closed:
            raise PublishError(channel, PublisherClosed())
        return self._count(self.client, channel)

    def numpat(self):
        """How many distinct patterns are subscribed (``PUBSUB NUMPAT``); 0
        for sharded Pub/Sub, which patterns never receive.

        :raises sio_redis_sync.PublishError: as :meth:`numsub`.
        """
        if self.command != 'PUBLISH':
            return 0
        if self._closed:
            raise PublishError('PUBSUB NUMPAT', PublisherClosed())
        try:
            return int(self.client.execute_command('PUBSUB', 'NUMPAT'))
        except PUBLISH_ERRORS as exc:
            raise PublishError('PUBSUB NUMPAT', exc, self._secrets) from exc

    def publish(self, channel, payload, channels=None):
        """PUBLISH ``payload`` on ``channel``.

        :param channels: the namespace's :class:`~sio_redis_sync.protocol.
                         Channels`, to check that a broadcast or request
                         reached as many servers as usual (see
                         :class:`~sio_redis_sync.delivery.DeliveryCheck`).
        :return: how many subscribers received it.
        :raises sio_redis_sync.PublishError: when Redis could not take it
            within the deadline (logged with the cause, and counted), or
            when the publisher is closed (its cause a :class:`PublisherClosed`).
        :raises sio_redis_sync.PartialDelivery: when it reached fewer
            servers than usual because some were subscribing again.
        """
        receivers = self._run(channel, (self.command, channel, payload))
        if channels is not None:
            self._check_delivery(channels, channel, receivers)
        return receivers

    def add(self, entry):
        """XADD a stream entry (streams mode's
        :class:`~sio_redis_sync.streams.StreamEntry`), with the deadline,
        retries and errors of :meth:`publish`.

        :return: the new entry's id (str).
        """
        entry_id = self._run(entry.key, entry.command())
        return entry_id.decode('ascii') if isinstance(entry_id, bytes) else entry_id

    def send(self, message):
        """Send what a dialect made: an :class:`~sio_redis_sync.protocol.
        Outgoing` is published (:meth:`publish`), a stream entry added
        (:meth:`add`)."""
        if isinstance(message, StreamEntry):
            return self.add(message)
        return self.publish(message.channel, message.payload, message.channels)

    def _run(self, where, command):
        """Send ``command`` within the deadline, trying again while it was
        not sent; its reply."""
        started = time.monotonic()
        deadline = started + self.timeout
        delay, attempts = RETRY_DELAY, 0
        while True:
            attempts += 1
            try:
                if self._closed:  # also for subclasses' own _send_once
                    raise PublisherClosed()
                reply = self._send_once(command)
            except PublisherClosed as exc:
                self._refuse(where, exc)
            except _NotSent as exc:
                self._failed_at = time.monotonic()
                if (self.retries is not None and attempts > self.retries) or \
                        time.monotonic() + delay >= deadline:
                    self._fail(where, exc.cause, attempts, started)
                self.sleep(delay)
                delay *= 2
                continue
            except PUBLISH_ERRORS as exc:
                self._fail(where, exc, attempts, started)
            with self._lock:
                self.published += 1
            return reply

    def publish_many(self, messages):
        """Send every message a dialect made (see :meth:`send`), in order,
        in one round trip on one connection of the pool (the commands are
        packed here). Not retried: a batch half-sent cannot be told apart
        from one half-delivered.

        :return: what each message got: how many subscribers received it, or
                 a stream entry's id.
        :raises sio_redis_sync.PublishError: for the first message Redis
            refused (after reading every reply), or if the connection failed.
        :raises sio_redis_sync.PartialDelivery: see :meth:`publish`.
        """
        started = time.monotonic()
        first = messages[0].channel
        try:
            conn = self._take()
        except PublisherClosed as exc:
            self._refuse(first, exc)
        except PUBLISH_ERRORS as exc:
            self._fail(first, exc, 1, started)
        refused = None
        try:
            conn.send_packed_command([b''.join(self._pack(conn, messages))],
                                     check_health=False)
            results = []
            for message in messages:
                try:
                    results.append(conn.read_response())
                except redis.ResponseError as exc:
                    results.append(exc)
                    refused = refused or (message.channel, exc)
        except PUBLISH_ERRORS as exc:
            conn.disconnect()
            self._fail(first, exc, 1, started)
        finally:
            self._give_back(conn)
        if refused is not None:
            self._fail(refused[0], refused[1], 1, started)
        with self._lock:
            self.published += len(messages)
        for at, message in enumerate(messages):
            if isinstance(message, StreamEntry):
                results[at] = results[at].decode('ascii')
            elif message.channels is not None:
                self._check_delivery(message.channels, message.channel, results[at])
        return results

    def _pack(self, conn, messages):
        """The RESP bytes of ``messages`` (PUBLISH packed by hand: the hot path)."""
        encode = conn.encoder.encode
        parts = []
        for message in messages:
            if isinstance(message, StreamEntry):
                parts.extend(conn.pack_command(*message.command()))
                continue
            name, payload = encode(message.channel), message.payload
            parts.append(b'%s$%d\r\n%s\r\n$%d\r\n' % (
                self._head, len(name), name, len(payload)))
            parts.append(payload)
            parts.append(b'\r\n')
        return parts

    def _check_delivery(self, channels, channel, receivers):
        if self._closed:
            return  # sent; nothing to compare with any more
        try:
            if channel == channels.request:
                self.delivery.check(channel, channel, channel, receivers)
            elif channel == channels.broadcast or not channels.rooms_counted_apart:
                # classic room channels reach the broadcast's subscribers
                self.delivery.check(channels.broadcast, channels.request,
                                    channel, receivers)
            else:
                failed_at = self._failed_at
                self.delivery.check_room(
                    channel, receivers, channels.request, failed_at is not None
                    and time.monotonic() - failed_at < OUTAGE_WINDOW)
        except PartialDelivery as exc:
            with self._lock:
                self.partial_deliveries += 1
            self._log.warning('%s (Redis %s)', exc, self.where)
            raise
        except PublishError as exc:  # NUMSUB failed: Redis went away again
            self._fail(channels.request, exc.__cause__, 1, time.monotonic())

    def _take(self):
        """A connection of the pool, this publisher's until :meth:`_give_back`.

        :raises PublisherClosed: once :meth:`close` has run.
        """
        if self._closed:
            raise PublisherClosed()
        conn = checkout(self.client.connection_pool)
        with self._lock:
            if not self._closed:
                self._in_use.add(conn)
                return conn
        self._give_back(conn)  # close() ran meanwhile
        raise PublisherClosed()

    def _give_back(self, conn):
        with self._lock:
            self._in_use.discard(conn)
            closed = self._closed
        if closed and self._owns_client:
            conn.disconnect()  # close() left it to this publish
        self.client.connection_pool.release(conn)

    def _send_once(self, command):
        try:
            conn = self._take()
        except PUBLISH_ERRORS as exc:
            raise _NotSent(exc) from exc
        try:
            try:
                conn.send_command(*command)
            except PUBLISH_ERRORS as exc:
                conn.disconnect()
                raise _NotSent(exc) from exc
            try:
                return conn.read_response()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                conn.disconnect()
                raise
        finally:
            self._give_back(conn)

    def _refuse(self, channel, cause):
        with self._lock:
            self.failures += 1
        error = PublishError(channel, cause)
        self._log.debug('%s (Redis %s)', error, self.where)
        raise error from cause

    def _fail(self, channel, cause, attempts, started):
        self._failed_at = time.monotonic()
        with self._lock:
            self.failures += 1
        error = PublishError(channel, cause, self._secrets)
        self._log.error('%s (Redis %s, %d attempt%s in %.2f s)', error,
                        self.where, attempts, 's' if attempts > 1 else '',
                        time.monotonic() - started)
        raise error from cause

    @property
    def max_connections(self):
        """The cap of the pool."""
        return self.client.connection_pool.max_connections

    @property
    def connections_opened(self):
        """Connections this pool has opened (None for a client not ours)."""
        return getattr(self.client.connection_pool, 'connections_opened', None)

    def close(self):
        """Stop publishing: every publish from now on, and one under way
        that has no connection yet, raises :class:`~sio_redis_sync.
        PublishError` (caused by :class:`PublisherClosed`); one that is
        already sending finishes (its message may be delivered) and its
        connection is closed when it is given back. The idle connections
        are closed now (only those of a pool it made). See :meth:`reopen`.
        """
        self._shut()
        if self._owns_client:
            pool = self.client.connection_pool
            _disconnect_idle(pool)
            for sentinel in getattr(getattr(pool, 'sentinel_manager', None),
                                    'sentinels', ()):
                sentinel.connection_pool.disconnect(inuse_connections=False)

    def _shut(self):
        with self._lock:
            self._closed = True

    @property
    def closed(self):
        """True after :meth:`close` (until :meth:`reopen`)."""
        return self._closed

    def reopen(self):
        """Publish again after :meth:`close` (connections are made anew)."""
        with self._lock:
            self._closed = False

    def after_fork(self):
        """Make this publisher usable in a forked child: new locks, and the
        connections inherited from the parent forgotten without being closed
        (their sockets are still the parent's). Call it in the child only."""
        self._lock = threading.Lock()
        self._in_use = set()
        self._failed_at = None
        self.delivery = DeliveryCheck(self.numsub, self.sleep, numpat=self.numpat)
        if self._owns_client:
            self.client.connection_pool.after_fork()


def _disconnect_idle(pool):
    """Close the connections waiting in ``pool`` (a BlockingConnectionPool),
    not those in use: taken out of its queue first, so no thread can pick one
    up while it is being closed, then put back."""
    idle = []
    while True:
        try:
            idle.append(pool.pool.get_nowait())
        except queue.Empty:
            break
    try:
        for conn in idle:
            if conn is not None:
                conn.disconnect()
    finally:
        for conn in idle:
            pool.pool.put_nowait(conn)
