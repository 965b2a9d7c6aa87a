"""DeliveryCheck over sequences of publishes: shortfall, recovery, second shortfall.

NUMSUB answers are scripted per channel (asking about the wrong channel fails), the
clock moves only when the check sleeps or the test says so (pure, no Redis).
"""
import pytest

from sio_redis_sync import PartialDelivery
from sio_redis_sync.delivery import DeliveryCheck

REQ, CH, ROOM, MAIN = 'key-request#/#', 'key#/#', 'key#/#room#', 'key#/#'


class Redis:
    """Subscriber counts per channel, set by the test; a clock moved by sleep."""

    def __init__(self, step=None, **counts):
        self.counts = dict(counts)
        self.asked = []
        self.now = 0.0
        self.step = step      # how far one sleep moves the clock (None: as asked)
        self.changes = {}     # from the n-th NUMSUB on: {channel: count}

    def numsub(self, channel):
        self.asked.append(channel)
        self.counts.update(self.changes.pop(len(self.asked), {}))
        return self.counts[channel]

    def sleep(self, seconds):
        self.now += seconds if self.step is None else self.step

    def check(self, **kwargs):
        return DeliveryCheck(self.numsub, self.sleep, clock=lambda: self.now, **kwargs)


def test_the_first_publish_asks_the_servers_channel_only():
    redis = Redis(**{REQ: 2})
    check = redis.check()
    check.check('g', REQ, CH, 3)     # 2 servers and a monitor received it
    assert redis.asked == [REQ]


def test_a_shortfall_asks_numsub_of_the_servers_channel_not_the_published_one():
    redis = Redis(**{REQ: 2})
    check = redis.check()
    check.check('g', REQ, CH, 2)
    with pytest.raises(PartialDelivery) as caught:
        check.check('g', REQ, CH, 1)
    assert set(redis.asked) == {REQ}
    assert (caught.value.receivers, caught.value.expected) == (1, 2)
    assert CH in str(caught.value)


def test_recovery_then_a_second_shortfall_raises_again():
    redis = Redis(**{REQ: 2})
    check = redis.check(settle_after=2.0)
    check.check('g', REQ, CH, 2)
    with pytest.raises(PartialDelivery):
        check.check('g', REQ, CH, 1)        # short since t=0
    redis.now = 1.0
    check.check('g', REQ, CH, 2)            # back: the shortfall is over
    redis.now = 2.5
    with pytest.raises(PartialDelivery):     # a new shortfall, not 2.5 s of one
        check.check('g', REQ, CH, 1)


def test_a_lower_count_settles_exactly_after_the_settling_period():
    redis = Redis(**{REQ: 2})
    redis.now = 100.0                       # a monotonic clock starts anywhere
    check = redis.check(settle_after=2.0)
    check.check('g', REQ, CH, 3)            # 2 servers + a monitor
    with pytest.raises(PartialDelivery):
        check.check('g', REQ, CH, 2)
    redis.now = 101.9
    with pytest.raises(PartialDelivery):
        check.check('g', REQ, CH, 2)
    redis.now = 102.0
    check.check('g', REQ, CH, 2)            # the monitor left: the new normal
    asked = len(redis.asked)
    check.check('g', REQ, CH, 2)
    assert len(redis.asked) == asked        # the usual count: no round trip
    with pytest.raises(PartialDelivery) as caught:
        check.check('g', REQ, CH, 1)        # now measured against 2
    assert caught.value.expected == 2


def test_fewer_servers_for_good_become_the_usual_receivers_and_servers():
    redis = Redis(**{REQ: 3})
    check = redis.check()
    check.check('g', REQ, CH, 4)            # 3 servers + a monitor
    redis.counts[REQ] = 2                   # a server is gone for good
    check.check('g', REQ, CH, 3)            # waits, then accepts
    assert redis.now >= 1.0
    waited, asked = redis.now, len(redis.asked)
    check.check('g', REQ, CH, 3)            # the new usual: no wait, no NUMSUB
    assert (redis.now, len(redis.asked)) == (waited, asked)
    # a shortfall from there is judged against 2 servers: all there, so it raises
    with pytest.raises(PartialDelivery) as caught:
        check.check('g', REQ, CH, 2)
    assert caught.value.expected == 3
    assert redis.now == waited              # NUMSUB said 2 at once: no wait


def test_fewer_receivers_than_usual_but_more_than_servers_is_a_shortfall():
    redis = Redis(**{REQ: 2})
    check = redis.check()
    check.check('g', REQ, CH, 4)            # 2 servers + 2 pattern subscribers
    with pytest.raises(PartialDelivery) as caught:
        check.check('g', REQ, CH, 3)        # NUMSUB still 2: someone missed it
    assert (caught.value.receivers, caught.value.expected) == (3, 4)


def test_the_wait_for_servers_ends_at_its_deadline():
    redis = Redis(step=0.5, **{REQ: 2})
    check = redis.check()
    check.check('g', REQ, CH, 2)
    redis.counts[REQ] = 1
    check.check('g', REQ, CH, 1)            # NUMSUB at 0, 0.5 and 1.0: gone for good
    assert redis.now == 1.0
    assert redis.asked.count(REQ) == 4


def test_servers_coming_back_during_the_wait_make_it_raise():
    redis = Redis(step=0.25, **{REQ: 2})
    check = redis.check()
    check.check('g', REQ, CH, 2)
    redis.counts[REQ] = 1
    redis.changes = {3: {REQ: 2}}           # back on the second poll
    with pytest.raises(PartialDelivery):
        check.check('g', REQ, CH, 1)
    assert redis.now == 0.25


def test_a_higher_count_is_the_new_usual_with_a_fresh_server_count():
    redis = Redis(**{REQ: 1})
    check = redis.check()
    check.check('g', REQ, CH, 1)
    redis.counts[REQ] = 2
    check.check('g', REQ, CH, 2)            # a new server
    assert redis.asked == [REQ, REQ]
    with pytest.raises(PartialDelivery) as caught:
        check.check('g', REQ, CH, 1)        # NUMSUB 2: as many servers as before
    assert (caught.value.receivers, caught.value.expected) == (1, 2)


# ---------------------------------------------------------------- room channels

def test_a_room_shortfall_waits_on_the_room_channel():
    redis = Redis(step=0.25, **{MAIN: 2, ROOM: 1})
    check = redis.check()
    check.check_room(ROOM, 2, MAIN, after_outage=False)
    redis.counts[MAIN] = 1                  # a server is subscribing again
    redis.changes = {4: {ROOM: 2}}
    with pytest.raises(PartialDelivery) as caught:
        check.check_room(ROOM, 1, MAIN, after_outage=False)
    assert (caught.value.receivers, caught.value.expected) == (1, 2)
    assert ROOM in str(caught.value)
    assert redis.asked == [MAIN, MAIN, ROOM, ROOM]
    assert redis.now == 0.25


def test_after_a_partial_room_delivery_the_same_shortfall_is_checked_again():
    redis = Redis(**{MAIN: 2, ROOM: 2})
    check = redis.check()
    check.check_room(ROOM, 2, MAIN, after_outage=False)
    with pytest.raises(PartialDelivery):
        check.check_room(ROOM, 1, MAIN, after_outage=True)
    with pytest.raises(PartialDelivery) as caught:   # still judged against 2
        check.check_room(ROOM, 1, MAIN, after_outage=True)
    assert caught.value.expected == 2


def test_a_room_that_stays_short_is_accepted_at_the_deadline():
    redis = Redis(step=0.5, **{MAIN: 3, ROOM: 1})
    check = redis.check()
    check.check_room(ROOM, 2, MAIN, after_outage=False)
    redis.counts[MAIN] = 2
    check.check_room(ROOM, 1, MAIN, after_outage=False)
    assert redis.now == 1.0                 # polled at 0, 0.5, 1.0
    assert redis.asked.count(ROOM) == 3
    asked_main = redis.asked.count(MAIN)    # the new server count was read
    # the namespace now has 2 servers: a room emptied on one of them passes
    # at once (NUMSUB 2 is as many as before)
    other = 'key#/#other#'
    redis.counts[other] = 0
    check.check_room(other, 2, MAIN, after_outage=False)
    check.check_room(other, 1, MAIN, after_outage=False)
    assert redis.now == 1.0 and other not in redis.asked
    assert redis.asked.count(MAIN) == asked_main + 1   # one read: the shortfall


def test_a_room_emptied_with_every_server_there_passes_and_keeps_the_count():
    redis = Redis(**{MAIN: 2, ROOM: 1})
    check = redis.check()
    check.check_room(ROOM, 3, MAIN, after_outage=False)
    check.check_room(ROOM, 2, MAIN, after_outage=False)
    check.check_room(ROOM, 2, MAIN, after_outage=False)
    assert redis.asked == [MAIN, MAIN]
    assert redis.now == 0.0


def test_a_pattern_gone_with_the_missing_receiver_is_a_monitor_that_left():
    redis = Redis(**{REQ: 2})
    patterns = [3]
    check = DeliveryCheck(redis.numsub, redis.sleep, clock=lambda: redis.now,
                          numpat=lambda: patterns[0])
    check.check('g', REQ, CH, 3)            # 2 servers + a monitor's own pattern
    patterns[0] = 2                         # the monitor left
    check.check('g', REQ, CH, 2)            # accepted at once, no wait
    assert redis.now == 0
    asked = len(redis.asked)
    check.check('g', REQ, CH, 2)            # the new usual: no round trip
    assert len(redis.asked) == asked
    with pytest.raises(PartialDelivery) as caught:
        check.check('g', REQ, CH, 1)        # a server missing now: same patterns
    assert caught.value.expected == 2


def test_a_server_that_missed_a_publish_is_caught_while_a_monitor_listens():
    """2 servers + a monitor usually; one server was subscribing again when
    the publish went out (2 receivers: the other and the monitor) and is back
    when NUMSUB is read: no pattern went away, so it missed the message."""
    redis = Redis(**{REQ: 2})
    check = DeliveryCheck(redis.numsub, redis.sleep, clock=lambda: redis.now,
                          numpat=lambda: 5)
    check.check('g', REQ, CH, 3)
    with pytest.raises(PartialDelivery) as caught:
        check.check('g', REQ, CH, 2)
    assert (caught.value.receivers, caught.value.expected) == (2, 3)


def test_a_forked_child_checks_publishes_with_a_lock_of_its_own():
    redis = Redis(**{REQ: 2})
    check = redis.check()
    check.check('g', REQ, CH, 2)
    check.after_fork()
    check.check('g', REQ, CH, 2)    # the usual count, remembered across the fork
    with pytest.raises(PartialDelivery):
        check.check('g', REQ, CH, 1)
