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
    """

    def __init__(self, numsub, sleep=time.sleep, clock=time.monotonic,
                 wait=RESUBSCRIBE_WAIT, settle_after=SETTLE_AFTER):
        self._numsub = numsub
        self._sleep = sleep
        self._clock = clock
        self._wait = wait
        self._settle_after = settle_after
        self._lock = threading.Lock()
        # group -> [receivers, servers (NUMSUB of the request channel), time
        # the count first fell short, or None]
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
        which PUBLISH counts too) may come and go: a publish that reached
        fewer than usual yet at least as many as there are servers (NUMSUB
        of ``servers_channel``, as many as before) reached every server,
        and becomes the usual count at once. (A server subscribing again
        in the very instant a monitor leaves goes unnoticed then.)
        """
        with self._lock:
            usual = self._usual.get(group)
            if usual is not None and receivers == usual[0]:
                usual[2] = None
                return
        if usual is None or receivers > usual[0]:
            servers = self._numsub(servers_channel)
            with self._lock:
                self._usual[group] = [receivers, servers, None]
            return
        expected, servers_before, short_since = usual
        now = self._clock()
        deadline = now + self._wait
        while True:
            servers = self._numsub(servers_channel)
            if servers >= servers_before:
                break
            if self._clock() >= deadline:
                # fewer servers for good: this publish reached all there are
                with self._lock:
                    self._usual[group] = [receivers, servers, None]
                return
            self._sleep(POLL)
        if receivers >= servers:
            # every server got it: the receivers missing were not servers
            with self._lock:
                self._usual[group] = [receivers, servers, None]
            return
        with self._lock:
            if short_since is None:
                usual[2] = short_since = now
            elif now - short_since >= self._settle_after:
                # as many servers as before, yet fewer receivers for a while:
                # a subscriber that was not a server left
                self._usual[group] = [receivers, servers, None]
                return
        raise PartialDelivery(channel, receivers, expected)

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
