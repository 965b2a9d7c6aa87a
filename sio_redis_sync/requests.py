"""What this process waits for from other servers: answers and acks.

Owns the table ``request id -> pending entry`` behind one lock and the entries'
counting rules (Node's); every entry has a deadline and expired ones are dropped
whenever the table is touched, so it cannot grow. No redis here.
"""
import heapq
import secrets
import threading
import time

from .exceptions import RequestTimeout
from .protocol import RequestType


def new_request_id():
    """A request id: unique in the cluster, short on the wire."""
    return secrets.token_urlsafe(12)


class Replies:
    """Answers to one ALL_ROOMS, REMOTE_FETCH or SERVER_SIDE_EMIT request.

    Like Node, every response counts (even one without ``field``), and the
    request is done once ``expected`` servers answered.

    :param what: what is asked, for the timeout message (``'fetch_sockets'``).
    :param field: the response field that carries the answer.
    :param expected: how many servers answer.
    """

    def __init__(self, what, field, expected):
        self.what = what
        self.field = field
        self.expected = expected
        self.replies = []
        self.received = 0
        self.done = threading.Event()
        if expected <= 0:
            self.done.set()

    def feed(self, response):
        """Take one response; True once the request is complete."""
        self.received += 1
        if self.field in response:
            self.replies.append(response[self.field])
        if self.received >= self.expected:
            self.done.set()
        return self.done.is_set()

    def wait(self, timeout):
        """The answers, once every server gave one.

        :raises sio_redis_sync.RequestTimeout: after ``timeout`` seconds, with
                                                the answers that did arrive.
        """
        if not self.done.wait(timeout):
            raise self.timed_out(timeout)
        return self.replies

    def timed_out(self, timeout):
        """The error saying how many of how many servers answered."""
        return RequestTimeout(self.what, timeout, list(self.replies),
                              self.received, self.expected)


class Acks:
    """Client acks of one broadcast (BROADCAST 7) across the cluster.

    Each of ``servers`` servers first says how many clients it sent to
    (BROADCAST_CLIENT_COUNT), then sends one ack per client; the broadcast is
    complete when every server counted and every counted client acked. Local
    clients are counted and acked through :meth:`add_count`/:meth:`add_ack`
    from other threads, hence the lock.
    """

    def __init__(self, what, servers):
        self.what = what
        self.servers = servers
        self.counted = 0
        self.clients = 0
        self.replies = []
        self.done = threading.Event()
        self._lock = threading.Lock()

    def add_count(self, clients):
        with self._lock:
            self.counted += 1
            self.clients += clients
            return self._check()

    def add_ack(self, packet):
        with self._lock:
            self.replies.append(packet)
            return self._check()

    def _check(self):
        if self.counted >= self.servers and len(self.replies) >= self.clients:
            self.done.set()
        return self.done.is_set()

    def feed(self, response):
        """Take a client count or an ack; True once the broadcast is complete.

        A ``clientCount`` that is not a non-negative int (a bool, a negative
        or fractional number, a string, missing) counts the server with 0
        clients: malformed, yet an answer (as Node counts it).
        """
        kind = response.get('type')
        if kind == RequestType.BROADCAST_CLIENT_COUNT:
            count = response.get('clientCount')
            valid = isinstance(count, int) and not isinstance(count, bool) \
                and count >= 0
            return self.add_count(count if valid else 0)
        if kind == RequestType.BROADCAST_ACK:
            return self.add_ack(response.get('packet'))
        return self.done.is_set()

    def wait(self, timeout):
        """Every client's ack (its first argument), once all arrived.

        :raises sio_redis_sync.RequestTimeout: after ``timeout`` seconds, with
                                                the acks that did arrive.
        """
        if not self.done.wait(timeout):
            raise self.timed_out(timeout)
        return self.replies

    def timed_out(self, timeout):
        """The error saying how many servers counted and clients acked."""
        with self._lock:
            return RequestTimeout(
                self.what, timeout, list(self.replies), self.counted,
                self.servers, acks=(len(self.replies), self.clients))


def ack_values(response):
    """Every value of one client's ack in a BROADCAST_ACK: the list in
    ``packets`` (sent by Python servers), else Node's ``packet`` alone."""
    values = response.get('packets')
    if isinstance(values, list):
        return values
    return [response.get('packet')]


class AckCallback:
    """python-socketio's ``emit(..., callback=cb)`` for clients of other
    servers: ``cb(*values)`` for each client's ack (every value it acked
    when its server is a Python one, the first from Node servers), run
    through ``spawn`` (the manager's worker) so that the application's code
    never runs on the listener thread.

    :param single: the emit targets one client: done after its ack.
    """

    def __init__(self, callback, single, spawn):
        self.callback = callback
        self.single = single
        self.spawn = spawn

    def feed(self, response):
        if response.get('type') != RequestType.BROADCAST_ACK:
            return False
        self.spawn(self.callback, *ack_values(response))
        return self.single


class Deadlines:
    """Keys that expire: a heap of ``(deadline, key)``, for the requests of
    :class:`PendingRequests` and the manager's ack callbacks alike.

    A key forgotten before its deadline leaves a stale entry behind; once
    those outnumber the live ones the heap is rebuilt without them
    (amortized constant), so it never holds more than twice the live keys
    (+64). Not locked: its owner's lock guards it.

    :param alive: ``alive(key)`` -> whether ``key`` is still wanted.
    """

    def __init__(self, alive):
        self._alive = alive
        self._heap = []
        self._stale = 0   # entries whose key was forgotten

    def add(self, deadline, key):
        heapq.heappush(self._heap, (deadline, key))

    def pop_expired(self, now):
        """The live keys whose deadline is ``now`` or before, removed."""
        heap = self._heap
        expired = []
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            if self._alive(key):
                expired.append(key)
            else:
                self._stale = max(self._stale - 1, 0)
        return expired

    def forgotten(self, count=1):
        """``count`` keys went away before their deadline."""
        self._stale += count
        if 2 * self._stale > len(self._heap) + 64:
            self._heap = [entry for entry in self._heap if self._alive(entry[1])]
            heapq.heapify(self._heap)
            self._stale = 0

    def clear(self):
        self._heap = []
        self._stale = 0

    def __len__(self):
        return len(self._heap)


class PendingRequests:
    """Pending entries (:class:`Replies`, :class:`Acks`, :class:`AckCallback`)
    by request id, each kept until its deadline at most.

    :param clock: a monotonic clock in seconds (tests may pass their own).
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = {}    # request id -> entry
        self._deadlines = Deadlines(self._entries.__contains__)

    def after_fork(self):
        """In a forked child: a new lock (a parent thread may have held
        it), and nothing pending (the parent's waiters are not here)."""
        self._lock = threading.Lock()
        self._entries = {}
        self._deadlines = Deadlines(self._entries.__contains__)

    def add(self, request_id, entry, ttl):
        """Keep ``entry`` for ``ttl`` seconds at most."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._entries[request_id] = entry
            self._deadlines.add(now + ttl, request_id)

    def __contains__(self, request_id):
        with self._lock:
            return request_id in self._entries

    def feed(self, request_id, response):
        """Hand ``response`` to its entry; a complete entry is removed.

        :return: False if ``request_id`` is unknown or expired.
        """
        with self._lock:
            self._expire(self._clock())
            entry = self._entries.get(request_id)
        if entry is None:
            return False
        if entry.feed(response):
            self.discard(request_id)
        return True

    def discard(self, request_id):
        with self._lock:
            if self._entries.pop(request_id, None) is not None:
                self._deadlines.forgotten()

    def __len__(self):
        with self._lock:
            self._expire(self._clock())
            return len(self._entries)

    @property
    def size(self):
        """Entries plus deadlines held (what memory the table uses)."""
        with self._lock:
            return len(self._entries) + len(self._deadlines)

    def _expire(self, now):
        for request_id in self._deadlines.pop_expired(now):
            del self._entries[request_id]
