"""The reader of one Redis stream: one connection, and the loop that reads it.

Owns that connection alone (no other thread touches it): reads the stream with
``XREAD BLOCK`` from its last id, resumes from that id after every drop, tells
when the stream was trimmed past it, and hands each entry ``(key, id, fields)``
to one callback. Decodes nothing.
"""
import logging
import threading
import time

import redis

from .connection import redact
from .exceptions import ProtocolError
from .listener import BACKOFF_MAX, HEALTH_CHECK_TIMEOUT, POLL_INTERVAL, Outage
from .publisher import checkout
from .streams import BLOCK_TIME_MS, DEFAULT_READ_COUNT

logger = logging.getLogger(__name__)

#: a batch whose delivery took this many seconds makes the reader look for a
#: gap before its next read (it may have fallen behind a trim)
SLOW_BATCH = 1.0
#: while entries flow, the reader compares what it read with what Redis says
#: was added at most this often (seconds): a burst trimmed while it waited in
#: XREAD is found that way (Redis >= 7)
GAP_CHECK_INTERVAL = 1.0
_REDIS_DOWN = (redis.RedisError, OSError)
_NO_ID = '0-0'


def parse_id(entry_id):
    """A stream id ``'<ms>-<seq>'`` (or ``'<ms>'``) as a tuple of ints, for
    comparisons.

    :raises ValueError: if it is not one.
    """
    ms, _, seq = entry_id.partition('-')
    if not ms.isdigit() or not (seq or '0').isdigit():
        raise ValueError('not a stream id: %r' % (entry_id,))
    return int(ms), int(seq or 0)


def _text(value):
    return value.decode('utf-8', 'replace') if isinstance(value, bytes) else str(value)


def _pairs(flat):
    """A RESP2 flat list of names and values (or a RESP3 map) as a dict."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2]))


def _entries(reply):
    """The ``(id, fields)`` of an XREAD reply for one stream (RESP2 or 3);
    ``fields`` a dict of bytes, or None for an entry Redis gave no fields."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [item[1] for item in reply]
    return [(_text(entry_id), _pairs(fields) if isinstance(fields, (list, dict)) else None)
            for entries in streams for entry_id, fields in entries]


class StreamReader:
    """Reads the stream ``key`` and passes every entry to ``callback``.

    It starts where ``XREAD ... $`` would (the stream's last id, resolved once
    on the first connection, so nothing added after it is missed), or after
    ``last_id``, and keeps the id of the last entry it handed over: after any
    drop (a killed client, a cut link, a Redis restart) it connects again
    (after 0.05 s, then doubling up to 0.25 s) and goes on from that id.

    A blocked ``XREAD`` is not silence: its answer is awaited ``block_ms``
    plus ``health_check_timeout`` at most, then the link counts as dead.
    Before resuming, and when it may have fallen behind (a full batch, a slow
    one), it compares its last id with the stream's first entry: entries
    trimmed (``MAXLEN``) before it read them are a gap, logged as a warning
    and counted in :attr:`stream_gaps` (and their number in
    :attr:`lost_entries` when Redis >= 7 tells how many entries were added).

    :param connect: a callable returning a ``redis.Redis`` for the stream's
                    server (called again after each drop, so it may follow a
                    failover); the reader takes one connection of its pool
                    while connected, and gives it back disconnected. Its
                    socket timeout bounds the reading of an answer that has
                    started to arrive.
    :param key: the stream key (str).
    :param callback: called as ``callback(key, entry_id, fields)`` with the
                     key and id as str and ``fields`` a dict of bytes. A
                     :class:`~sio_redis_sync.ProtocolError` it raises (a
                     malformed entry) is one warning line, counted in
                     :attr:`dropped_malformed`; any other exception is logged
                     with its traceback; either way the loop goes on.
    :param block_ms: Node's ``blockTimeInMs``.
    :param read_count: Node's ``readCount``: entries per XREAD at most.
    :param last_id: read the entries after this id (default: only new ones).
    :raises ValueError: if ``last_id`` is not a stream id ``<ms>-<seq>``.
    :param where: how log lines name the Redis server (no password in it).
    :param secrets: passwords to hide in the error texts it logs.
    """

    def __init__(self, connect, key, callback, block_ms=BLOCK_TIME_MS,
                 read_count=DEFAULT_READ_COUNT, health_check_timeout=HEALTH_CHECK_TIMEOUT,
                 last_id=None, log=None, where='Redis', secrets=()):
        if last_id is not None:
            parse_id(last_id)
        self._connect = connect
        self.key = key
        self._callback = callback
        self._block_ms = block_ms
        self._read_count = read_count
        self._answer_within = block_ms / 1000 + health_check_timeout
        self._log = log or logger
        self._where = where
        self._secrets = secrets
        self._client = None
        self._conn = None
        self._check_due = False
        self._checked_at = 0.0
        self._unsettled = False  # entries read since the last conclusive check
        # the number of the last entry read since the stream began (Redis >=
        # 7's entries-added counts them), when known: how many a gap lost
        self._ordinal = None
        self._stop = threading.Event()
        self.stopped = threading.Event()
        #: set while connected, the start id resolved
        self.ready = threading.Event()
        #: the id of the last entry handed over (None until resolved)
        self.last_id = last_id
        #: how many times it has connected (more than 1: it reconnected)
        self.connections = 0
        #: entries read (handed to ``callback``, but those without fields)
        self.entries = 0
        #: entries ``callback`` refused with a ProtocolError, or without fields
        self.dropped_malformed = 0
        #: times entries were trimmed from the stream before it read them
        self.stream_gaps = 0
        #: how many entries those gaps lost, where Redis tells
        self.lost_entries = 0

    def stop(self):
        """Ask the loop to end (within POLL_INTERVAL, even during a blocked
        XREAD); it closes the connection on its way out."""
        self._stop.set()

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
                    self._stop.wait(outage.next_delay())
                    continue
                if outage.lost_at is not None:
                    self._log.warning('stream %r on %s: reading again after %.1f s, from %s',
                                      self.key, self._where, outage.duration(), self.last_id)
                    outage.reset()
        finally:
            self._drop_connection()
            self.stopped.set()

    def _log_lost(self, exc, failures, down_for):
        if not isinstance(exc, _REDIS_DOWN):  # a bug, not Redis: say where
            self._log.exception('unexpected error reading stream %r on %s; reconnecting',
                                self.key, self._where)
        elif failures:
            self._log.warning('still no connection for stream %r to %s after %.0f s and %d '
                              'attempts (%s: %s); retrying every %.1f s', self.key,
                              self._where, down_for, failures, type(exc).__name__,
                              self._text(exc), BACKOFF_MAX)
        else:
            self._log.warning('connection for stream %r to %s lost (%s: %s); reconnecting',
                              self.key, self._where, type(exc).__name__, self._text(exc))

    def _text(self, exc):
        try:
            return redact(str(exc), self._secrets)
        except Exception:  # a hostile __str__ must not escape from here
            return '<%s>' % type(exc).__name__

    # ------------------------------------------------------------ one step

    def _step(self):
        if self._conn is None:
            self._open()
        if self._check_due:
            self._check_gap()
        entries = self._read()
        if entries is None:  # stopping
            return
        started = time.monotonic()
        for entry_id, fields in entries:
            self._deliver(entry_id, fields)
        now = time.monotonic()
        self._unsettled = self._unsettled or bool(entries)
        # at the end (a short batch, or none: the XREAD waited) and entries
        # came since the last conclusive check: compare the counts
        at_end_check = self._unsettled and (
            not entries or now - self._checked_at >= GAP_CHECK_INTERVAL)
        self._check_due = len(entries) >= self._read_count or \
            now - started > SLOW_BATCH or at_end_check

    def _open(self):
        self._client = self._connect()
        self._conn = checkout(self._client.connection_pool)
        self._conn.connect()
        self.connections += 1
        if self.last_id is None:
            self._resolve_start()
        else:
            self._check_due = True
        self.ready.set()

    def _command(self, *args):
        self._conn.send_command(*args)
        return self._conn.read_response()

    def _info(self):
        """XINFO STREAM as a dict with str names, or None if there is no stream."""
        try:
            reply = self._command('XINFO', 'STREAM', self.key)
        except redis.ResponseError as exc:
            if 'no such key' in str(exc).lower():
                return None
            raise
        return {_text(name): value for name, value in _pairs(reply).items()}

    def _resolve_start(self):
        """``$``, once: the stream's last id (and its count of entries)."""
        info = self._info()
        if info is None:
            self.last_id, self._ordinal = _NO_ID, 0
        else:
            self.last_id = _text(info['last-generated-id'])
            self._ordinal = info.get('entries-added')

    def _read(self):
        """One ``XREAD BLOCK``: its entries, or None once stopping.

        :raises redis.TimeoutError: if no answer came within ``block_ms``
                                    plus ``health_check_timeout``.
        """
        self._conn.send_command('XREAD', 'BLOCK', self._block_ms, 'COUNT', self._read_count,
                                'STREAMS', self.key, self.last_id)
        deadline = time.monotonic() + self._answer_within
        while not self._conn.can_read(timeout=POLL_INTERVAL):
            if self._stop.is_set():
                return None  # the connection, an answer pending, is dropped
            if time.monotonic() > deadline:
                raise redis.TimeoutError('no answer to XREAD BLOCK %d within %.1f s'
                                         % (self._block_ms, self._answer_within))
        return _entries(self._conn.read_response())

    def _deliver(self, entry_id, fields):
        self.last_id = entry_id
        if self._ordinal is not None:
            self._ordinal += 1
        self.entries += 1
        try:
            if fields is None:
                raise ProtocolError('an entry without fields')
            self._callback(self.key, entry_id, fields)
        except ProtocolError as exc:  # malformed input: one line, no traceback
            self.dropped_malformed += 1
            self._log.warning('dropped malformed entry %s of stream %r: %s', entry_id,
                              self.key, self._text(exc))
        except Exception as exc:  # a handler bug must not kill the reader
            self._log.error('error handling entry %s of stream %r: %s: %s', entry_id,
                            self.key, type(exc).__name__, self._text(exc), exc_info=exc)

    # ------------------------------------------------------------ gaps

    def _check_gap(self):
        """Log and count the entries trimmed before they were read.

        With Redis >= 7 (``entries-added``), when the reader is at the
        stream's end: every entry added but not handed over was lost,
        wherever in the stream it was. Otherwise (or not at the end): lost if
        the stream's first entry is past :attr:`last_id`. Not at the end, the
        check is made again later.
        """
        self._check_due = False
        self._checked_at = time.monotonic()
        info = self._info()
        if info is None:
            if self.last_id != _NO_ID:  # gone (deleted, or no persistence)
                self._gap(None, 'the stream is gone')
                self.last_id, self._ordinal = _NO_ID, 0
            return
        first = info.get('first-entry')
        first_id = _text(first[0]) if first else None
        added, length = info.get('entries-added'), info.get('length', 0)
        at_end = _text(info.get('last-generated-id', b'')) == self.last_id
        if added is not None and self._ordinal is not None and at_end:
            self._unsettled = False
            if added > self._ordinal:
                self._gap(added - self._ordinal, 'trimmed before they were read')
            self._ordinal = added
            return
        self._unsettled = added is not None  # Redis >= 7: conclusive at the end only
        if first_id is None or parse_id(first_id) <= parse_id(self.last_id):
            return  # what follows last_id is all there
        lost = None
        if added is not None and self._ordinal is not None:
            lost = max(added - length - self._ordinal, 0)
            self._ordinal = added - length
        if lost != 0 and self.last_id != _NO_ID:
            self._gap(lost, 'trimmed up to %s' % first_id)

    def _gap(self, lost, why):
        self.stream_gaps += 1
        if lost is not None:
            self.lost_entries += lost
        self._log.warning('stream %r on %s: %s entries after %s were lost before they were '
                          'read (%s; max_len too small for the delay?)', self.key,
                          self._where, 'unknown number of' if lost is None else lost,
                          self.last_id, why)

    def _drop_connection(self):
        self.ready.clear()
        conn, client = self._conn, self._client
        self._conn = self._client = None
        if conn is not None:
            conn.disconnect()  # an XREAD may be pending on it: never reused
            client.connection_pool.release(conn)


class StreamReaders:
    """The readers of a streams-mode server: one :class:`StreamReader` per
    stream key, each run as a task of its own, all handing their entries to
    one callback. Owns nothing else; a key once read is read until
    :meth:`stop`.

    :param connect: ``connect(key)`` -> a ``redis.Redis`` for the server
                    holding ``key`` (called at each connection).
    :param start: ``start(function)`` runs ``function`` as a task (the
                  server's kind: a thread or a green thread).
    :param options: the :class:`StreamReader` options (``callback``,
                    ``read_count``, ``health_check_timeout``, ``log``,
                    ``where``, ``secrets``).
    """

    def __init__(self, connect, start, **options):
        self._connect = connect
        self._start = start
        self._options = options
        self._lock = threading.Lock()
        self._readers = {}   # key -> StreamReader

    def read(self, keys):
        """Start reading each of ``keys`` not read yet (from its current end)."""
        new = []
        with self._lock:
            for key in keys:
                if key not in self._readers:
                    reader = StreamReader(lambda key=key: self._connect(key), key,
                                          **self._options)
                    self._readers[key] = reader
                    new.append(reader)
        for reader in new:
            self._start(reader.run)

    def _all(self):
        with self._lock:
            return list(self._readers.values())

    def wait_ready(self, timeout):
        """Wait until every reader has connected and knows where it starts
        (at most ``timeout`` seconds in all); True if they all have."""
        deadline = time.monotonic() + timeout
        return all(reader.ready.wait(max(deadline - time.monotonic(), 0))
                   for reader in self._all())

    @property
    def ready(self):
        """True while every reader is connected."""
        return all(reader.ready.is_set() for reader in self._all())

    def stop(self, timeout):
        """Stop every reader and wait (``timeout`` seconds in all) for them."""
        readers = self._all()
        for reader in readers:
            reader.stop()
        deadline = time.monotonic() + timeout
        for reader in readers:
            reader.stopped.wait(max(deadline - time.monotonic(), 0))

    def stats(self):
        """``stream_entries`` read, ``stream_gaps`` and ``stream_lost_entries``
        (entries trimmed before they were read, where known),
        ``stream_reconnects``, ``stream_dropped`` (malformed entries), and
        ``streams``: each key's last id read."""
        readers = self._all()
        return {'stream_entries': sum(reader.entries for reader in readers),
                'stream_gaps': sum(reader.stream_gaps for reader in readers),
                'stream_lost_entries': sum(reader.lost_entries for reader in readers),
                'stream_reconnects': sum(max(reader.connections - 1, 0)
                                         for reader in readers),
                'stream_dropped': sum(reader.dropped_malformed for reader in readers),
                'streams': {reader.key: reader.last_id for reader in readers}}
