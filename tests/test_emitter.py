"""The Emitter where users put it: shared by many threads, and created before
a fork (Celery's prefork pool), against a real Redis subscriber.
"""
import multiprocessing
import threading

import pytest

from sio_redis_sync import Emitter, protocol


@pytest.fixture
def subscriber(redis_client, key):
    """Every broadcast published under ``key``, decoded."""
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(protocol.Channels(key, '/').broadcast_pattern)
    assert pubsub.get_message(timeout=2)['type'] == 'psubscribe'

    def drain(count, timeout=5.0):
        messages = []
        while len(messages) < count:
            message = pubsub.get_message(timeout=timeout)
            assert message is not None, 'got %d of %d' % (len(messages), count)
            if message['type'] == 'pmessage':
                messages.append(protocol.decode_broadcast(message['data']))
        return messages

    yield drain
    pubsub.close()


def test_many_threads_share_one_emitter(redis_url, key, subscriber):
    emitter = Emitter(redis_url, key=key)
    operator = emitter.to('r1')

    def work(n):
        for i in range(50):
            operator.emit('t', n, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    messages = subscriber(8 * 50)
    assert sorted(tuple(m.data[1:]) for m in messages) == \
        [(n, i) for n in range(8) for i in range(50)]
    assert all(m.rooms == ('r1',) and m.uid == 'emitter' for m in messages)
    assert 1 <= emitter.stats()['connections_opened'] <= 8
    emitter.close()


def _emit_in_child(emitter, queue):
    try:
        queue.put(emitter.emit('from-child', 'hi'))
    except Exception as exc:  # report anything to the parent test
        queue.put(repr(exc))


def test_an_emitter_made_before_fork_works_in_the_child(redis_url, key, subscriber):
    emitter = Emitter(redis_url, key=key)
    emitter.emit('from-parent', 1)  # the parent's pool has a connection now
    context = multiprocessing.get_context('fork')
    queue = context.Queue()
    child = context.Process(target=_emit_in_child, args=(emitter, queue))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == 1
    assert [m.data for m in subscriber(2)] == [['from-parent', 1],
                                              ['from-child', 'hi']]
    emitter.emit('parent-again', 2)
    assert subscriber(1)[0].data == ['parent-again', 2]
    emitter.close()


def test_reserved_event_names_are_refused(redis_url):
    emitter = Emitter(redis_url)
    for name in ('connect', 'disconnect', 'newListener'):
        with pytest.raises(ValueError):
            emitter.emit(name)
    emitter.close()


def test_operators_are_immutable(redis_url, key):
    emitter = Emitter(redis_url, key=key)
    base = emitter.to('a')
    narrowed = base.to('b').except_('c').volatile
    assert base._rooms == ('a',) and base._except == () and base._flags == {}
    assert narrowed._rooms == ('a', 'b') and narrowed._except == ('c',)
    assert narrowed._flags == {'volatile': True}
    emitter.close()
