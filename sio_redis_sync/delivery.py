"""Whether a publish reached every server: Redis Pub/Sub keeps nothing, so a
server that is subscribing again after an outage misses what is sent meanwhile.

Owns, per channel group (and per sharded room channel), how many subscribers
the last publishes reached; a publish that reaches fewer is checked against
NUMSUB before it counts as a server gone for good, or raises PartialDelivery.
"""
import collections
import threading
import time

from .exceptions import PartialDelivery

# How long a publish that reached fewer servers than before waits for them to
# subscribe again (listeners do within a few tenths of a second of Redis).
RESUBSCRIBE_WAIT = 1.0
# How long a lower count may persist while NUMSUB stays the same before it is
# taken as the new normal (a monitoring client that left, say).
SETTLE_AFTER = 2.0
POLL = 0.05
# How long after a failed publish attempt (a cluster failover) a room channel
# that reached fewer servers than last time is checked whatever the others do.
OUTAGE_WINDOW = 30.0
# How many room channels' last counts are kept (least recently published
# forgotten first).
ROOMS_REMEMBERED = 10000


class DeliveryCheck:
    """Compares each publish's receiver count with the usual one.

    :param numsub: ``numsub(channel)`` -> subscribers of ``channel`` now.
    :param sleep: how to pause (the server's ``sleep`` under eventlet/gevent).
    :param numpat: ``numpat()`` -> the distinct patterns subscribed in Redis
                   (``PUBSUB NUMPAT``), or None where patterns receive
                   nothing (sharded Pub/Sub).
    """

    def __init__(self, numsub, sleep=time.sleep, clock=time.monotonic,
                 wait=RESUBSCRIBE_WAIT, settle_after=SETTLE_AFTER, numpat=None):
        self._numsub = numsub
        self._numpat = numpat or (lambda: 0)
        self._sleep = sleep
        self._clock = clock
        self._wait = wait
        self._settle_after = settle_after
        self._lock = threading.Lock()
        # group -> [receivers, servers (NUMSUB of the request channel), time
        # the count first fell short or None, distinct patterns (NUMPAT)]
        self._usual = {}
        # sharded room channel -> receivers of its last publish
        self._rooms = collections.OrderedDict()
        # namespace channel -> its subscribers (the servers) when last read
        # for a room channel
        self._servers = {}

    def after_fork(self):
        """In a forked child: a new lock (a parent thread may have held it)."""
        self._lock = threading.Lock()

    def check(self, group, servers_channel, channel, receivers):
        """After a publish on ``channel`` of ``group`` reached ``receivers``.

        :param servers_channel: the channel whose NUMSUB counts the servers
                                (the namespace's request channel).
        :raises sio_redis_sync.PartialDelivery: if fewer subscribers than
            usual received it while the missing servers were subscribing
            again (they did not get it).

        Receivers that are not servers (a monitor's pattern subscription,
        which PUBLISH counts too) may come and go. Counts alone cannot tell a
        monitor that left from a server that missed the publish and is back
        by the time NUMSUB is read, so a publish that reached fewer than
        usual while as many servers as before are subscribed passes only if
        a pattern went away meanwhile (``PUBSUB NUMPAT`` fell: servers share
        one pattern per namespace, a monitor has its own), or once the lower
        count has lasted ``settle_after`` seconds.
        """
        with self._lock:
            usual = self._usual.get(group)
            if usual is not None and receivers == usual[0]:
                usual[2] = None
                return
        if usual is None or receivers > usual[0]:
            self._remember(group, receivers, self._numsub(servers_channel))
            return
        expected, servers_before, short_since, patterns_before = usual
        now = self._clock()
        deadline = now + self._wait
        while True:
            servers = self._numsub(servers_channel)
            if servers >= servers_before:
                break
            if self._clock() >= deadline:
                # fewer servers for good: this publish reached all there are
                self._remember(group, receivers, servers)
                return
            self._sleep(POLL)
        if self._numpat() < patterns_before:
            # a pattern subscription (a monitor, not a server) went away
            self._remember(group, receivers, servers)
            return
        with self._lock:
            if short_since is None:
                usual[2] = short_since = now
            elif now - short_since >= self._settle_after:
                # as many servers as before, yet fewer receivers for a while:
                # a subscriber that was not a server left
                self._usual[group] = [receivers, servers, None, patterns_before]
                return
        raise PartialDelivery(channel, receivers, expected)

    def _remember(self, group, receivers, servers):
        """``receivers`` is the usual count of ``group`` from now on."""
        patterns = self._numpat()
        with self._lock:
            self._usual[group] = [receivers, servers, None, patterns]

    def check_room(self, channel, receivers, servers_channel, after_outage):
        """After a publish on the sharded room channel ``channel`` reached
        ``receivers`` (the servers hosting the room that are subscribed).

        Fewer than last time is normally a room emptied on some server, and
        passes once NUMSUB of ``servers_channel`` (the namespace's channel)
        finds as many servers as before: listeners subscribe a namespace's
        channel after its rooms' channels, so none is subscribing again. If
        it finds fewer, or within :data:`OUTAGE_WINDOW` of a failed publish
        attempt (``after_outage``: a master of a cluster was replaced), the
        room's subscribers are waited for: if they come back to the last
        count, they missed this publish. The first publish on a room channel
        of a namespace reads its servers once (no wait).

        :raises sio_redis_sync.PartialDelivery: in that case.
        """
        with self._lock:
            before = self._rooms.pop(channel, None)
            self._rooms[channel] = receivers
            if len(self._rooms) > ROOMS_REMEMBERED:
                self._rooms.popitem(last=False)
            servers_before = self._servers.get(servers_channel)
        if servers_before is None:
            servers_before = self._servers[servers_channel] = \
                self._numsub(servers_channel)
        if before is None or receivers >= before:
            return
        servers = self._numsub(servers_channel)
        if servers >= servers_before and not after_outage:
            self._servers[servers_channel] = servers
            return
        deadline = self._clock() + self._wait
        while self._numsub(channel) < before:
            if self._clock() >= deadline:
                # fewer servers host the room now (or are there at all)
                self._servers[servers_channel] = self._numsub(servers_channel)
                return
            self._sleep(POLL)
        with self._lock:
            self._rooms[channel] = before
        raise PartialDelivery(channel, receivers, before)
