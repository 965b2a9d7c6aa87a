"""The Emitter where users put it: shared by many threads, and created before
a fork (Celery's prefork pool), against a real Redis subscriber; and its
requests reading past a malformed answer (classic and sharded).
"""
import multiprocessing
import threading

import pytest
import redis

from sio_redis_sync import Emitter, classic, protocol


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
                messages.append(classic.decode_broadcast(message['data']))
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


class Answerer:
    """A stand-in server on a raw Redis connection: subscribed (``kind``
    ``subscribe`` or ``ssubscribe``) to ``channel``, it answers the first
    request with what ``answers(request_bytes)`` returns: ``(channel,
    payload)`` pairs published in order."""

    def __init__(self, client, kind, channel, answers):
        self.pubsub = client.pubsub()
        getattr(self.pubsub, kind)(channel)
        assert self.pubsub.get_message(timeout=2)['type'] == kind
        publish = client.publish if kind == 'subscribe' else client.spublish
        self.thread = threading.Thread(target=self._run, args=(publish, answers),
                                       daemon=True)
        self.thread.start()

    def _run(self, publish, answers):
        while True:
            message = self.pubsub.get_message(timeout=10)
            if message is None or message['type'] in ('message', 'smessage'):
                break
        for channel, payload in answers(message['data']) if message else ():
            publish(channel, payload)

    def close(self):
        self.thread.join(10)
        self.pubsub.close()


def test_a_malformed_answer_is_logged_and_the_request_still_completes(
        redis_client, redis_url, key, caplog):
    channels = protocol.Channels(key, '/')

    def answers(data):
        request_id = classic.decode_request(data).request_id
        return [(channels.response, b'{"not json'),
                (channels.response, classic.encode_response(
                    {'requestId': request_id, 'rooms': ['r1']}))]
    answerer = Answerer(redis_client, 'subscribe', channels.request, answers)
    emitter = Emitter(redis_url, key=key)
    try:
        assert emitter.all_rooms(timeout=10) == {'r1'}
        assert emitter.stats()['dropped_malformed'] == 1
    finally:
        answerer.close()
        emitter.close()
    assert 'dropped a malformed response' in caplog.text


def test_a_malformed_sharded_answer_is_logged_and_the_request_still_completes(
        key, caplog, redis7):
    from sio_redis_sync.envelope import (MessageType, ShardedChannels, decode_envelope,
                                         encode_envelope)
    server = redis7  # a Redis 7 shared by the session (conftest)
    channels = ShardedChannels(key, '/')

    def answers(data):
        request = decode_envelope(data)
        request_id, reply = request.data['requestId'], channels.response_for(request.uid)
        return [(reply, b'\x00garbage'),
                (reply, encode_envelope(MessageType.FETCH_SOCKETS_RESPONSE, {
                    'requestId': request_id, 'sockets': []}, 'srv', '/'))]
    client = redis.Redis(port=server.port)
    answerer = Answerer(client, 'ssubscribe', channels.main, answers)
    emitter = Emitter(server.url, key=key, mode='sharded')
    try:
        assert emitter.fetch_sockets(timeout=10) == []
        assert emitter.stats()['dropped_malformed'] == 1
    finally:
        answerer.close()
        emitter.close()
        client.close()
    assert 'dropped a malformed response' in caplog.text
