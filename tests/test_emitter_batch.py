"""Emitter.pipeline(): many emits in one round trip to a real Redis, each
message byte-identical to a single emit, and a failed batch raises.
"""
import pytest

from sio_redis_sync import Emitter, PublishError, classic, protocol


@pytest.fixture
def raw_subscriber(redis_client, key):
    """Every message published under ``key`` as raw ``(channel, bytes)``."""
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(key + '*')
    assert pubsub.get_message(timeout=2)['type'] == 'psubscribe'

    def drain(count, timeout=5.0):
        messages = []
        while len(messages) < count:
            message = pubsub.get_message(timeout=timeout)
            assert message is not None, 'got %d of %d' % (len(messages), count)
            if message['type'] == 'pmessage':
                messages.append((message['channel'].decode(), message['data']))
        return messages

    def assert_empty(within=0.3):
        message = pubsub.get_message(timeout=within)
        assert message is None, 'unexpected %r' % (message,)

    drain.assert_empty = assert_empty
    yield drain
    pubsub.close()


def _emit_all(target):
    target.emit('plain', 'hi')
    target.emit('room', {'n': 1}, to='r1')
    target.emit('rooms', (1, 2.5, b'\x00bin'), to=['r1', 'r2', 'r1'], skip_sid='s9')
    target.of('admin').to('ops').except_('bots').emit('alert', 'disk', 3)
    target.to('r3').volatile.emit('vol')
    target.emit('unicode', 'é', to='café ☕')
    target.sockets_join('joined')
    target.to('r4').disconnect_sockets(close=True)
    target.server_side_emit('hello', 1)


def test_a_batch_publishes_exactly_what_single_emits_do(redis_url, key, raw_subscriber):
    emitter = Emitter(redis_url, key=key)
    _emit_all(emitter)
    single = raw_subscriber(9)
    with emitter.pipeline() as batch:
        _emit_all(batch)
        raw_subscriber.assert_empty()  # nothing leaves before the block ends
        assert len(batch) == 9
    assert raw_subscriber(9) == single
    assert batch.results == [1] * 9
    assert batch.stats() == emitter.stats()  # the emitter's counters
    assert emitter.stats()['published'] == 18
    emitter.close()


def test_a_batch_keeps_the_order_of_many_messages(redis_url, key, raw_subscriber):
    emitter = Emitter(redis_url, key=key)
    batch = emitter.pipeline()
    for i in range(2000):
        batch.emit('n', i, to='r%d' % (i % 3))
    assert batch.execute() == [1] * 2000
    received = raw_subscriber(2000)
    assert [classic.decode_broadcast(data).data[1] for _, data in received] == \
        list(range(2000))
    assert received[4][0] == protocol.Channels(key, '/').for_rooms(['r1'])
    assert batch.execute() == []  # executed batches are empty again
    emitter.close()


def test_an_exception_in_the_block_publishes_nothing(redis_url, key, raw_subscriber):
    emitter = Emitter(redis_url, key=key)
    with pytest.raises(KeyError):
        with emitter.pipeline() as batch:
            batch.emit('first', 1)
            raise KeyError('user code failed')
    raw_subscriber.assert_empty()
    emitter.close()


def test_bad_arguments_raise_at_the_call(redis_url, key, raw_subscriber):
    emitter = Emitter(redis_url, key=key)
    with emitter.pipeline() as batch:
        batch.emit('ok', 1)
        with pytest.raises(TypeError):
            batch.emit('bad', object())
        with pytest.raises(ValueError):
            batch.emit('disconnect')
    assert [classic.decode_broadcast(d).data for _, d in raw_subscriber(1)] == [['ok', 1]]
    raw_subscriber.assert_empty()
    emitter.close()


def test_a_batch_refused_by_redis_raises(own_redis, key):
    admin = Emitter(own_redis.url, key=key)
    admin.redis.execute_command('ACL', 'SETUSER', 'nopub', 'on', 'nopass', '~*', '&*',
                                '+@all', '-publish')
    emitter = Emitter(own_redis.url.replace('redis://', 'redis://nopub:x@'), key=key)
    with pytest.raises(PublishError) as raised:
        with emitter.pipeline() as batch:
            batch.emit('a', 1, to='r1')
            batch.emit('b', 2, to='r2')
    assert raised.value.channel == protocol.Channels(key, '/').for_rooms(['r1'])
    assert 'NOPERM' in str(raised.value) or 'permission' in str(raised.value)
    emitter.close()
    admin.close()


def test_a_batch_raises_when_redis_is_down(own_redis, key):
    emitter = Emitter(own_redis.url, key=key,
                      redis_options={'socket_connect_timeout': 0.5})
    emitter.emit('warm', 1)  # a pooled connection that the stop will break
    own_redis.stop()
    batch = emitter.pipeline()
    batch.emit('lost', 1)
    with pytest.raises(PublishError) as raised:
        batch.execute()
    assert raised.value.__cause__ is not None
    emitter.close()
