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


class PendingRequests:
    """Pending entries (:class:`Replies`, :class:`Acks`, :class:`AckCallback`)
    by request id, each kept until its deadline at most.

    :param clock: a monotonic clock in seconds (tests may pass their own).
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = {}    # request id -> entry
        self._deadlines = []  # heap of (deadline, request id)

    def after_fork(self):
        """In a forked child: a new lock (a parent thread may have held
        it), and nothing pending (the parent's waiters are not here)."""
        self._lock = threading.Lock()
        self._entries = {}
        self._deadlines = []

    def add(self, request_id, entry, ttl):
        """Keep ``entry`` for ``ttl`` seconds at most."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._entries[request_id] = entry
            heapq.heappush(self._deadlines, (now + ttl, request_id))

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
            self._entries.pop(request_id, None)
            # entries removed early leave their deadline behind: rebuild the
            # heap before those outnumber the live ones
            if len(self._deadlines) > 2 * len(self._entries) + 64:
                self._deadlines = [(d, r) for d, r in self._deadlines
                                   if r in self._entries]
                heapq.heapify(self._deadlines)

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
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, request_id = heapq.heappop(deadlines)
            self._entries.pop(request_id, None)
