"""When a request to other servers counts as answered, and when it is forgotten.

PendingRequests and its entries at the edges: one server to wait for, counts that are
not numbers, the exact deadline, ids discarded by the requester (pure, injected clock).
"""
import pytest

from sio_redis_sync import RequestTimeout
from sio_redis_sync.requests import (
    AckCallback, Acks, PendingRequests, Replies, ack_values, new_request_id)


class Clock:
    def __init__(self):
        self.now = 500.0

    def __call__(self):
        return self.now


def test_a_request_to_one_server_waits_for_its_answer():
    # every request in a two-server cluster waits for exactly one answer
    replies = Replies('all_rooms', 'rooms', expected=1)
    with pytest.raises(RequestTimeout) as caught:
        replies.wait(0)
    assert (caught.value.received, caught.value.expected) == (0, 1)
    assert replies.feed({'requestId': 'r', 'rooms': ['a']})
    assert replies.wait(0) == [['a']]


def test_a_request_to_one_server_stays_in_the_table_until_answered():
    table = PendingRequests(Clock())
    table.add('r', Replies('fetch_sockets', 'sockets', expected=1), ttl=5)
    assert 'r' in table and len(table) == 1
    assert table.feed('r', {'requestId': 'r', 'sockets': []})
    assert 'r' not in table


def test_a_request_to_no_server_is_done_at_once():
    for expected in (0, -1):
        assert Replies('all_rooms', 'rooms', expected=expected).wait(0) == []


def test_replies_keep_answers_in_arrival_order_and_count_the_rest():
    replies = Replies('server_side_emit', 'data', expected=3)
    assert not replies.feed({'requestId': 'r', 'data': 'b'})
    assert not replies.feed({'requestId': 'r', 'data': 'a'})
    assert replies.received == 2
    assert replies.feed({'requestId': 'r'})
    assert replies.wait(0) == ['b', 'a']


def test_a_client_count_that_is_not_a_number_counts_no_client():
    for bad in ('3', None, 2.0, [1]):
        acks = Acks('emit_with_ack', servers=1)
        assert acks.feed({'type': 8, 'requestId': 'r', 'clientCount': bad})
        assert acks.wait(0) == []
    acks = Acks('emit_with_ack', servers=1)
    assert acks.feed({'type': 8, 'requestId': 'r'})


def test_acks_wait_for_the_counted_clients_of_every_server():
    acks = Acks('emit_with_ack', servers=2)
    assert not acks.feed({'type': 8, 'requestId': 'r', 'clientCount': 1})
    assert not acks.feed({'type': 9, 'requestId': 'r', 'packet': 'a'})
    assert not acks.feed({'type': 7, 'requestId': 'r'})      # not an answer
    assert acks.feed({'type': 8, 'requestId': 'r', 'clientCount': 0})
    assert acks.wait(0) == ['a']
    with pytest.raises(RequestTimeout) as caught:
        Acks('emit_with_ack', servers=1).wait(0)
    assert (caught.value.received, caught.value.expected) == (0, 1)
    assert caught.value.what == 'emit_with_ack'


def test_an_ack_callback_ignores_what_is_not_an_ack():
    got = []
    entry = AckCallback(got.append, single=True, spawn=lambda f, *a: f(*a))
    assert entry.feed({'type': 8, 'clientCount': 1}) is False
    assert got == []
    assert entry.feed({'type': 9, 'packet': 'p'}) is True
    assert got == ['p']


def test_an_entry_expires_exactly_at_its_deadline():
    clock = Clock()
    table = PendingRequests(clock)
    got = []
    table.add('r', AckCallback(got.append, False, lambda f, *a: f(*a)), ttl=2)
    clock.now += 2 - 1e-6
    assert table.feed('r', {'type': 9, 'packet': 1})
    clock.now = 502.0
    assert not table.feed('r', {'type': 9, 'packet': 2})
    assert got == [1] and len(table) == 0


def test_an_expired_entry_is_gone_from_the_table():
    clock = Clock()
    table = PendingRequests(clock)
    table.add('old', Replies('x', 'rooms', 2), ttl=1)
    clock.now += 1
    table.add('new', Replies('x', 'rooms', 2), ttl=1)   # adding expires the old one
    assert 'old' not in table and 'new' in table
    assert table.size == 2     # one entry, one deadline


def test_a_discarded_request_takes_no_more_answers():
    # what the cluster API does when a request times out or is cancelled
    table = PendingRequests(Clock())
    replies = Replies('fetch_sockets', 'sockets', expected=2)
    table.add('r', replies, ttl=60)
    table.add('other', Replies('x', 'rooms', 2), ttl=60)
    table.discard('r')
    assert 'r' not in table and len(table) == 1
    assert not table.feed('r', {'requestId': 'r', 'sockets': []})
    assert replies.received == 0
    table.discard('never-added')
    assert 'other' in table


def test_the_deadline_of_a_finished_or_discarded_request_passes_quietly():
    clock = Clock()
    table = PendingRequests(clock)
    table.add('done', Replies('x', 'rooms', 1), ttl=1)
    assert table.feed('done', {'requestId': 'done', 'rooms': []})
    table.add('dropped', Replies('x', 'rooms', 1), ttl=1)
    table.discard('dropped')
    table.add('live', Replies('x', 'rooms', 1), ttl=10)
    clock.now += 5                          # both deadlines are behind us
    assert len(table) == 1
    assert table.feed('live', {'requestId': 'live', 'rooms': []})
    table.add('next', Replies('x', 'rooms', 1), ttl=1)
    assert 'next' in table


def test_a_finished_request_leaves_its_deadline_behind_only_for_a_while():
    table = PendingRequests(Clock())
    for i in range(200):
        table.add(i, Replies('x', 'rooms', 1), ttl=60)
        table.feed(i, {'requestId': i, 'rooms': []})
    assert len(table) == 0
    assert table.size <= 65


def test_request_ids_are_unique_short_strings():
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for request_id in ids:
        assert isinstance(request_id, str) and 8 <= len(request_id) <= 24
        assert request_id.isascii() and ' ' not in request_id


def test_deadlines_left_behind_never_outnumber_the_live_entries_by_more_than_64():
    table = PendingRequests(Clock())
    for i in range(100):
        table.add(('live', i), Replies('x', 'rooms', 1), ttl=60)
    worst = 0
    for i in range(1000):
        table.add(('gone', i), Replies('x', 'rooms', 1), ttl=60)
        table.discard(('gone', i))
        live = len(table)
        left_behind = table.size - 2 * live      # deadlines without an entry
        worst = max(worst, left_behind)
        assert left_behind <= live + 64, (i, table.size, live)
    assert len(table) == 100 and worst > 0


def test_an_ack_from_a_python_server_gives_every_value_node_s_its_first():
    assert ack_values({'type': 9, 'packet': 'a', 'packets': ['a', 2, None]}) == ['a', 2, None]
    assert ack_values({'type': 9, 'packet': 'a', 'packets': []}) == []
    assert ack_values({'type': 9, 'packet': 'a'}) == ['a']
    assert ack_values({'type': 9, 'packet': None}) == [None]
    assert ack_values({'type': 9, 'packet': 'a', 'packets': 'a'}) == ['a']
    calls = []
    entry = AckCallback(lambda *values: calls.append(values), single=False,
                        spawn=lambda f, *a: f(*a))
    assert entry.feed({'type': 9, 'requestId': 'r', 'packet': 1, 'packets': [1, 'two']}) is False
    assert entry.feed({'type': 9, 'requestId': 'r', 'packet': 3}) is False
    assert calls == [(1, 'two'), (3,)]


def test_a_client_count_of_zero_or_more_is_counted_as_sent():
    acks = Acks('emit_with_ack', servers=2)
    assert not acks.feed({'type': 8, 'requestId': 'r', 'clientCount': 0})
    assert not acks.feed({'type': 8, 'requestId': 'r', 'clientCount': 2})
    assert not acks.feed({'type': 9, 'requestId': 'r', 'packet': 'a'})
    assert acks.feed({'type': 9, 'requestId': 'r', 'packet': 'b'})
    assert acks.wait(0) == ['a', 'b'] and (acks.counted, acks.clients) == (2, 2)
    for bad in (-1, True):
        acks = Acks('emit_with_ack', servers=1)
        assert acks.feed({'type': 8, 'requestId': 'r', 'clientCount': bad})
        assert acks.clients == 0


def test_a_forked_child_starts_with_an_empty_working_table():
    clock = Clock()
    table = PendingRequests(clock)
    table.add('parent', Replies('x', 'rooms', 1), ttl=60)
    table.add('gone', Replies('x', 'rooms', 1), ttl=60)
    table.discard('gone')
    assert table.size == 3
    table.after_fork()
    assert 'parent' not in table and len(table) == 0 and table.size == 0
    assert not table.feed('parent', {'requestId': 'parent', 'rooms': []})
    table.add('child', Replies('x', 'rooms', 1), ttl=1)
    assert 'child' in table
    table.discard('child')
    assert 'child' not in table
    table.add('late', Replies('x', 'rooms', 1), ttl=1)
    clock.now += 1
    assert len(table) == 0


def test_deadlines_left_behind_are_dropped_just_past_twice_the_live_entries_plus_64():
    table = PendingRequests(Clock())
    for i in range(64):
        table.add('r%d' % i, Replies('x', 'rooms', 1), ttl=60)
    table.discard('r0')
    assert table.size == 63 + 64            # 64 deadlines <= 2 * 63 + 64: kept
    for i in range(1, 64):
        table.discard('r%d' % i)
    assert len(table) == 0
    assert table.size == 64                 # 64 deadlines <= 2 * 0 + 64: kept
    table.add('one', Replies('x', 'rooms', 1), ttl=60)
    assert table.size == 66
    table.discard('one')
    assert table.size == 0                  # 65 > 64: the heap is rebuilt empty
    table.add('next', Replies('x', 'rooms', 1), ttl=60)
    assert table.size == 2 and 'next' in table
