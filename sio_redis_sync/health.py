"""Health: what a RedisManager tells of its Redis side, ``ready`` and
``stats()``, read from its publisher, listener, stream readers and worker.

A base of :class:`~sio_redis_sync.RedisManager`; reads, never changes.
"""
import time

from .cluster_api import READY_TIMEOUT


class Health:
    """What it uses of its host: the publisher (``_publisher``), the
    listener and its client (``_listener``, ``_subscriber``), the stream
    readers (``_readers``), the worker (``_worker``), the legacy bridge
    (``_legacy``), the pending requests (``_pending``, ``_pending_acks``)
    and RemoteMessages' counters."""

    @property
    def ready(self):
        """True while every subscription of this server is confirmed (and,
        in streams mode, every stream reader connected)."""
        readers = self._readers
        return self._listener is not None and self._listener.ready.is_set() and \
            (readers is None or readers.ready)

    def _streams_ready(self):
        readers = self._readers
        return readers is None or readers.wait_ready(READY_TIMEOUT)

    @property
    def publish_failures(self):
        """Publishes that failed (each one also raised to its caller)."""
        return self._publisher.failures

    def stats(self):
        """Counters and health of this server's Redis side, as a dict:

        - ``published``, ``publish_failures``: publishes that succeeded and
          that raised :class:`~sio_redis_sync.PublishError`;
          ``partial_deliveries``: those that raised
          :class:`~sio_redis_sync.PartialDelivery` (a server was subscribing
          again after an outage);
        - ``received``: messages read from Redis for this server;
          ``dropped_malformed``: those dropped as malformed or too large;
        - ``reconnects``: times the listener reconnected after a loss;
        - ``last_message_age``: seconds since the last message received
          (None before the first);
        - ``subscribed``: every subscription confirmed (see :attr:`ready`);
          ``channels``, ``patterns``: the subscriptions;
        - ``connections_opened``: connections opened to Redis so far,
          publisher pool and listener together (also given apart as
          ``publisher_connections_opened`` and
          ``subscriber_connections_opened``); ``max_connections``: the
          publisher pool's cap;
        - ``pending_acks``: callbacks waiting for a client's ack (of this
          server's clients, for any server); ``pending_requests``: requests
          of this server waiting for other servers' answers or acks;
        - ``tasks_queued``: work from Redis waiting for the worker;
          ``tasks_dropped``: work dropped because the queue was full (see
          ``max_queued``) or the manager closed;
        - ``legacy_mirror_failures``: legacy mirror writes that failed after
          the real publish succeeded (see ``legacy_mirror``);
        - streams mode: ``stream_entries`` read (also counted in
          ``received``), ``stream_gaps`` (times entries were trimmed from a
          stream before this server read them; see ``max_len``) and
          ``stream_lost_entries`` (how many, where Redis >= 7 tells),
          ``stream_reconnects``, and ``streams``: each stream's last id read.
        """
        publisher = self._publisher
        subscriber = self._subscriber
        sub_opened = subscriber.connection_pool.connections_opened \
            if subscriber is not None else 0
        pub_opened = publisher.connections_opened or 0
        return {
            'published': publisher.published,
            'publish_failures': publisher.failures,
            'partial_deliveries': publisher.partial_deliveries,
            **self._listener_stats(),
            'connections_opened': pub_opened + sub_opened,
            'publisher_connections_opened': pub_opened,
            'subscriber_connections_opened': sub_opened,
            'max_connections': publisher.max_connections,
            'pending_acks': self._pending_acks(),
            'pending_requests': len(self._pending),
            'tasks_queued': self._worker.queued,
            'tasks_dropped': self._worker.dropped,
            'legacy_mirror_failures': self._legacy.mirror_failures
            if self._legacy is not None else 0,
            **self._stream_stats(),
        }

    def _stream_stats(self):
        readers = self._readers
        if readers is None:
            return {}
        found = readers.stats()
        found['received'] = self._received + found['stream_entries']
        found['dropped_malformed'] = self._dropped_malformed + found.pop('stream_dropped')
        return found

    def _listener_stats(self):
        listener_ = self._listener
        channels, patterns = listener_.subscriptions() if listener_ else ([], [])
        last = self._last_message
        return {
            'received': self._received,
            'dropped_malformed': self._dropped_malformed,
            'reconnects': max(listener_.connections - 1, 0) if listener_ else 0,
            'last_message_age': None if last is None
            else time.monotonic() - last,
            'subscribed': self.ready,
            'channels': channels,
            'patterns': patterns,
        }
