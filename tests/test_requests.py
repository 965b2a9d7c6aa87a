"""PendingRequests and its entries, pure: Node's counting rules, deadlines,
and no growth when answers never come (python-socketio keeps such callbacks
forever)."""
import threading

import pytest

from sio_redis_sync import RequestTimeout
from sio_redis_sync.requests import AckCallback, Acks, PendingRequests, Replies


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def ack(packet, request_id='r'):
    return {'type': 9, 'requestId': request_id, 'packet': packet}


def count(n, request_id='r'):
    return {'type': 8, 'requestId': request_id, 'clientCount': n}


def collecting_callback():
    got = []
    return got, AckCallback(got.append, single=False, spawn=lambda f, *a: f(*a))


def test_replies_finish_when_every_server_answered():
    replies = Replies('all_rooms', 'rooms', expected=2)
    assert not replies.feed({'requestId': 'r', 'rooms': ['a']})
    # like Node, an answer without the field still counts
    assert replies.feed({'requestId': 'r'})
    assert replies.wait(0) == [['a']]


def test_replies_time_out_saying_how_many_answered():
    replies = Replies('fetch_sockets', 'sockets', expected=3)
    replies.feed({'requestId': 'r', 'sockets': [{'id': 'x'}]})
    with pytest.raises(RequestTimeout) as caught:
        replies.wait(0.01)
    error = caught.value
    assert '1 of 3 servers responded' in str(error)
    assert 'fetch_sockets' in str(error)
    assert (error.received, error.expected, error.replies) == (1, 3, [[{'id': 'x'}]])
    assert isinstance(error, TimeoutError)


def test_no_servers_to_ask_is_done_at_once():
    assert Replies('all_rooms', 'rooms', expected=0).wait(0) == []


def test_acks_need_every_count_and_every_counted_ack():
    acks = Acks('emit_with_ack', servers=2)
    assert not acks.feed(count(2))
    assert not acks.feed(ack('a'))
    assert not acks.add_count(0)        # the second server: no client
    assert acks.feed(ack('b'))
    assert acks.wait(0) == ['a', 'b']


def test_acks_timeout_tells_servers_and_clients():
    acks = Acks('emit_with_ack', servers=3)
    acks.feed(count(2))
    acks.feed(ack('a'))
    with pytest.raises(RequestTimeout) as caught:
        acks.wait(0.01)
    assert str(caught.value).endswith(
        '1 of 3 servers responded, 1 of 2 client acks arrived')
    assert caught.value.replies == ['a']


def test_an_ack_callback_gets_each_ack_and_a_single_one_is_done_after_it():
    got, entry = collecting_callback()
    assert not entry.feed(count(2))
    assert not entry.feed(ack('x'))
    assert got == ['x']
    single = AckCallback(got.append, single=True, spawn=lambda f, *a: f(*a))
    assert single.feed(ack('y'))


def test_a_complete_entry_leaves_the_table():
    table = PendingRequests()
    table.add('r', Replies('all_rooms', 'rooms', expected=1), ttl=10)
    assert 'r' in table
    assert table.feed('r', {'requestId': 'r', 'rooms': []})
    assert 'r' not in table
    assert not table.feed('r', {'requestId': 'r', 'rooms': []})


def test_an_entry_takes_answers_until_its_deadline():
    clock = Clock()
    table = PendingRequests(clock)
    got, entry = collecting_callback()
    table.add('r', entry, ttl=10)
    assert table.feed('r', ack(1))
    clock.now += 9.9
    assert table.feed('r', ack(2))
    clock.now += 0.2
    assert not table.feed('r', ack(3))
    assert got == [1, 2]
    assert len(table) == 0


def test_no_growth_after_100k_requests_that_timed_out():
    clock = Clock()
    table = PendingRequests(clock)
    for i in range(100_000):
        table.add('r%d' % i, Replies('x', 'rooms', 1), ttl=5)
        clock.now += 0.001
    assert len(table) <= 5001
    clock.now += 5
    assert len(table) == 0
    table.add('last', Replies('x', 'rooms', 1), ttl=5)
    assert table.size == 2


def test_no_growth_when_requesters_discard_before_the_deadline():
    table = PendingRequests()
    for i in range(100_000):
        table.add(i, Replies('x', 'rooms', 1), ttl=3600)
        table.discard(i)
    assert len(table) == 0
    assert table.size < 200


def test_threads_add_and_feed_without_losing_entries():
    table = PendingRequests()
    got = []

    def work(n):
        for i in range(2000):
            table.add((n, i), AckCallback(got.append, True, lambda f, *a: f(*a)),
                      ttl=60)
            assert table.feed((n, i), ack(i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(got) == sorted(list(range(2000)) * 8)
    assert len(table) == 0
