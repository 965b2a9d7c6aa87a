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


def test_a_monitor_that_left_is_accepted_at_once():
    script = Script(2)              # NUMSUB never changes: 2 servers
    patterns = [4]
    check = DeliveryCheck(script.numsub, script.sleep, clock=lambda: script.now,
                          numpat=lambda: patterns[0])
    check.check('g', 'req', 'ch', 3)    # 2 servers + a PSUBSCRIBE monitor
    patterns[0] = 3                     # its pattern went away with it
    check.check('g', 'req', 'ch', 2)    # every server still got it
    check.check('g', 'req', 'ch', 2)
    assert script.now == 0              # no wait either


def test_fewer_receivers_than_servers_still_raise_with_a_monitor_gone():
    script = Script(2)
    check = script.check()
    check.check('g', 'req', 'ch', 3)
    with pytest.raises(PartialDelivery):
        check.check('g', 'req', 'ch', 1)    # a server missed it


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


class Counts(Script):
    """NUMSUB answers per channel, in order (the last one repeats)."""

    def __init__(self, **answers):
        super().__init__(0)
        self.by_channel = {channel: list(values) for channel, values in answers.items()}

    def numsub(self, channel):
        self.asked += 1
        answers = self.by_channel[channel]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def test_a_room_emptied_on_a_server_passes_with_one_numsub_and_no_wait():
    counts = Counts(main=[2], room=[1])
    check = counts.check()
    check.check_room('room', 2, 'main', after_outage=False)  # reads the servers once
    assert counts.asked == 1
    check.check_room('room', 2, 'main', after_outage=False)
    assert counts.asked == 1
    check.check_room('room', 1, 'main', after_outage=False)  # every server is there
    check.check_room('room', 1, 'main', after_outage=False)  # the new count
    assert (counts.asked, counts.now) == (2, 0.0)


def test_a_room_emit_while_servers_subscribe_again_raises():
    # two servers' listeners are subscribing again: the namespace's channel
    # shows one server, and the room's subscribers come back
    counts = Counts(main=[2, 1], room=[1, 2])
    check = counts.check()
    check.check_room('room', 2, 'main', after_outage=False)
    with pytest.raises(PartialDelivery) as caught:
        check.check_room('room', 1, 'main', after_outage=False)
    assert (caught.value.receivers, caught.value.expected) == (1, 2)
    check.check_room('room', 2, 'main', after_outage=False)  # back to the usual


def test_after_a_failed_attempt_the_room_is_waited_for_whatever_the_servers():
    # a cluster master was replaced: the namespace's channel lives elsewhere
    counts = Counts(main=[2], room=[1, 1, 2])
    check = counts.check()
    check.check_room('room', 2, 'main', after_outage=False)
    with pytest.raises(PartialDelivery):
        check.check_room('room', 1, 'main', after_outage=True)


def test_fewer_servers_for_good_are_accepted_after_the_wait():
    counts = Counts(main=[3, 2], room=[1])
    check = counts.check()
    check.check_room('room', 2, 'main', after_outage=False)
    check.check_room('room', 1, 'main', after_outage=False)  # waits: no one comes back
    assert counts.now >= 1.0
    check.check_room('other', 3, 'main', after_outage=False)
    check.check_room('other', 2, 'main', after_outage=False)  # 2 servers is the norm now
    assert counts.now < 1.2


def test_room_channels_are_remembered_within_a_bound(monkeypatch):
    monkeypatch.setattr('sio_redis_sync.delivery.ROOMS_REMEMBERED', 3)
    counts = Counts(main=[1], room0=[0])
    check = counts.check()
    for n in range(5):
        check.check_room('room%d' % n, 1, 'main', after_outage=False)
    assert list(check._rooms) == ['room2', 'room3', 'room4']
    check.check_room('room0', 0, 'main', after_outage=True)  # forgotten: no wait
    assert counts.now == 0.0
