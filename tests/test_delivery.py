"""DeliveryCheck: a publish that reaches fewer servers than usual raises
PartialDelivery only when the missing servers were subscribing again; a
server gone for good, a new one, or a monitor that left raise nothing.
The pure rules first (a scripted NUMSUB), then real servers on a real Redis.
"""
import pytest

from rig import PyServer
from sio_redis_sync import Emitter, PartialDelivery
from sio_redis_sync.delivery import DeliveryCheck


class Script:
    """NUMSUB answers in order (the last one repeats); a clock moved by sleep."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.now = 0.0
        self.asked = 0

    def numsub(self, channel):
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def sleep(self, seconds):
        self.now += seconds

    def check(self):
        return DeliveryCheck(self.numsub, self.sleep, clock=lambda: self.now)


def test_the_usual_count_costs_no_round_trip():
    script = Script(2)
    check = script.check()
    check.check('g', 'req', 'ch', 2)
    check.check('g', 'req', 'ch', 2)
    check.check('g', 'req', 'ch', 2)
    assert script.asked == 1


def test_a_server_subscribing_again_makes_it_raise():
    script = Script(2, 1, 1, 2)   # first publish; then resubscribing, back
    check = script.check()
    check.check('g', 'req', 'ch', 2)
    with pytest.raises(PartialDelivery) as caught:
        check.check('g', 'req', 'ch', 1)
    assert (caught.value.receivers, caught.value.expected) == (1, 2)
    assert 'reached 1 of the usual 2 subscribers' in str(caught.value)
    check.check('g', 'req', 'ch', 2)


def test_a_server_gone_for_good_is_accepted_after_the_wait():
    script = Script(3, 2)
    check = script.check()
    check.check('g', 'req', 'ch', 3)
    check.check('g', 'req', 'ch', 2)    # waits, NUMSUB stays at 2
    assert script.now >= 1.0
    script.now += 10
    check.check('g', 'req', 'ch', 2)    # the new normal: no wait
    assert script.now == pytest.approx(11.0, abs=0.1)


def test_a_new_server_raises_the_count():
    script = Script(1, 2)
    check = script.check()
    check.check('g', 'req', 'ch', 1)
    check.check('g', 'req', 'ch', 2)
    with pytest.raises(PartialDelivery):
        check.check('g', 'req', 'ch', 1)


def test_a_monitor_that_left_settles_after_a_while():
    script = Script(2)              # NUMSUB never changes: 2 servers
    check = script.check()
    check.check('g', 'req', 'ch', 3)    # 2 servers + a PSUBSCRIBE monitor
    with pytest.raises(PartialDelivery):
        check.check('g', 'req', 'ch', 2)
    script.now += 2.5
    check.check('g', 'req', 'ch', 2)    # same servers for 2 s: accepted
    check.check('g', 'req', 'ch', 2)


def test_groups_are_counted_apart():
    script = Script(2)
    check = script.check()
    check.check('broadcasts', 'req', 'ch', 2)
    check.check('requests', 'req', 'req', 3)
    check.check('broadcasts', 'req', 'ch', 2)
    check.check('requests', 'req', 'req', 3)


def test_a_server_that_leaves_costs_one_wait_and_no_error(redis_url, key):
    with PyServer(redis_url, key) as a:
        a.start_listening()
        b = PyServer(redis_url, key)
        b.start_listening()
        emitter = Emitter(redis_url, key=key)
        try:
            assert emitter.to('r1').emit('x') == 2
            b.stop()
            assert emitter.to('r1').emit('x') == 1   # after NUMSUB said 1
            assert emitter.stats()['partial_deliveries'] == 0
        finally:
            emitter.close()


def test_a_room_channel_with_fewer_servers_passes_at_once_outside_an_outage():
    script = Script(1)
    check = script.check()
    check.check_room('room', 2, after_outage=False)
    check.check_room('room', 1, after_outage=False)   # the room emptied on a server
    check.check_room('room', 1, after_outage=True)    # and stays so: no wait either
    assert (script.asked, script.now) == (0, 0.0)


def test_a_room_channel_after_an_outage_raises_if_its_servers_come_back():
    script = Script(1, 1, 2)   # two servers resubscribing on a promoted master
    check = script.check()
    check.check_room('room', 2, after_outage=False)
    with pytest.raises(PartialDelivery) as caught:
        check.check_room('room', 1, after_outage=True)
    assert (caught.value.receivers, caught.value.expected) == (1, 2)
    check.check_room('room', 2, after_outage=True)    # back to the usual
    assert script.asked == 3


def test_a_room_channel_after_an_outage_accepts_fewer_servers_after_the_wait():
    script = Script(1)
    check = script.check()
    check.check_room('room', 2, after_outage=False)
    check.check_room('room', 1, after_outage=True)
    assert script.now >= 1.0
    check.check_room('room', 1, after_outage=True)    # the new count: no wait
    assert script.now < 1.2


def test_room_channels_are_remembered_within_a_bound(monkeypatch):
    monkeypatch.setattr('sio_redis_sync.delivery.ROOMS_REMEMBERED', 3)
    script = Script(0)
    check = script.check()
    for n in range(5):
        check.check_room('room%d' % n, 1, after_outage=False)
    assert list(check._rooms) == ['room2', 'room3', 'room4']
    check.check_room('room0', 0, after_outage=True)   # forgotten: nothing to compare
    assert script.asked == 0
