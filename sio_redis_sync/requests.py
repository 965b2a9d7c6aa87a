"""Callbacks waiting for acks that clients on other servers send back.

Owns the table ``request id -> callback`` behind one lock. Every entry has a
deadline and expired ones are dropped whenever the table is touched, so it
cannot grow without bound (python-socketio keeps them forever). No redis here.
"""
import heapq
import threading
import time


class PendingAcks:
    """Ack callbacks by request id, each kept until its deadline.

    :param clock: a monotonic clock in seconds (tests may pass their own).
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = {}    # request id -> (callback, single)
        self._deadlines = []  # heap of (deadline, request id)

    def add(self, request_id, callback, ttl, single=False):
        """Keep ``callback`` for ``ttl`` seconds; with ``single`` it is
        dropped after its first ack."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._entries[request_id] = (callback, single)
            heapq.heappush(self._deadlines, (now + ttl, request_id))

    def pop_callback(self, request_id):
        """The callback an ack for ``request_id`` goes to, or None if it is
        unknown or expired (single-ack entries are removed here)."""
        with self._lock:
            self._expire(self._clock())
            entry = self._entries.get(request_id)
            if entry is None:
                return None
            callback, single = entry
            if single:
                del self._entries[request_id]
            return callback

    def discard(self, request_id):
        with self._lock:
            self._entries.pop(request_id, None)

    def __len__(self):
        with self._lock:
            self._expire(self._clock())
            return len(self._entries)

    def _expire(self, now):
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, request_id = heapq.heappop(deadlines)
            self._entries.pop(request_id, None)
