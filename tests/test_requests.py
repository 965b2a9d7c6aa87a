"""PendingAcks, pure: deadlines, one-ack entries, and no growth when acks
never come (python-socketio keeps such callbacks forever)."""
import threading

from sio_redis_sync.requests import PendingAcks


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_single_entry_goes_after_its_first_ack():
    acks = PendingAcks()
    acks.add('r', print, ttl=10, single=True)
    assert acks.pop_callback('r') is print
    assert acks.pop_callback('r') is None
    assert len(acks) == 0


def test_a_multi_entry_takes_acks_until_its_deadline():
    clock = Clock()
    acks = PendingAcks(clock)
    acks.add('r', print, ttl=10)
    assert acks.pop_callback('r') is print
    clock.now += 9.9
    assert acks.pop_callback('r') is print
    clock.now += 0.2
    assert acks.pop_callback('r') is None
    assert len(acks) == 0


def test_no_growth_after_100k_acks_that_never_came():
    clock = Clock()
    acks = PendingAcks(clock)
    for i in range(100_000):
        acks.add('r%d' % i, print, ttl=5)
        clock.now += 0.001
    assert len(acks) <= 5001
    clock.now += 5
    assert len(acks) == 0
    acks.add('last', print, ttl=5)
    assert len(acks._deadlines) == 1


def test_unknown_and_discarded_ids():
    acks = PendingAcks()
    assert acks.pop_callback('nope') is None
    acks.add('r', print, ttl=10)
    acks.discard('r')
    assert acks.pop_callback('r') is None


def test_threads_add_and_pop_without_losing_entries():
    acks = PendingAcks()
    seen = []

    def work(n):
        for i in range(2000):
            acks.add((n, i), i, ttl=60, single=True)
            seen.append(acks.pop_callback((n, i)))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(seen) == sorted(list(range(2000)) * 8)
    assert len(acks) == 0
