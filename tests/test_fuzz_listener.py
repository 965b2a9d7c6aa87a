"""Hostile input through a real Redis to a real listening server, on every
channel kind: random bytes and mutated valid messages, with valid broadcasts
interleaved. Nothing crashes, every malformed message is logged, dropped and
counted, and every interleaved valid one reaches its client.
"""
import json
import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import ProtocolError, classic, protocol
from sio_redis_sync.protocol import RequestType

SEEDS = {
    'broadcast': [
        classic.encode_broadcast('other', '/', ['ev', 1, {'a': [1, 2]}]),
        classic.encode_broadcast('other', '/', ['ev', b'\x00bin'], ['r1'],
                                  ['nobody'], {'volatile': True}),
        classic.encode_broadcast(protocol.EMITTER_UID, '/', ['ev'], ['r1']),
    ],
    'request': [
        classic.encode_remote_join('other', ['r1'], [], ['joined']),
        classic.encode_server_side_emit('other', ['hello', 1]),
        classic.encode_broadcast_request('other', 'rid1', '/', ['ev', 2],
                                          ['r1'], [], {'timeout': 100}),
        classic.encode_remote_join('other', ['r1'], [], [b'\x01'.decode()]),
        json.dumps({'type': RequestType.ALL_ROOMS, 'uid': 'other',
                    'requestId': 'rid2'}).encode(),
    ],
    'response': [
        classic.encode_client_count('rid1', 3),
        classic.encode_broadcast_ack('rid1', {'ok': True}),
        classic.encode_response({'requestId': 'rid3', 'rooms': ['a']}),
    ],
}
DECODERS = {'broadcast': classic.decode_broadcast,
            'request': classic.decode_request,
            'response': classic.decode_response}
# valid requests that would take the test's client away: not sent
DESTRUCTIVE = (RequestType.REMOTE_LEAVE, RequestType.REMOTE_DISCONNECT)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


@st.composite
def mutated(draw, kind):
    """A valid message of ``kind``, mangled one way or another."""
    seed = draw(st.sampled_from(SEEDS[kind]))
    how = draw(st.sampled_from(['flip', 'truncate', 'insert', 'field', 'same']))
    if how == 'flip':
        at = draw(st.integers(0, len(seed) - 1))
        return seed[:at] + bytes([seed[at] ^ draw(st.integers(1, 255))]) + \
            seed[at + 1:]
    if how == 'truncate':
        return seed[:draw(st.integers(0, len(seed) - 1))]
    if how == 'insert':
        at = draw(st.integers(0, len(seed)))
        return seed[:at] + draw(st.binary(min_size=1, max_size=6)) + seed[at:]
    if how == 'field':  # a field of the decoded value replaced
        value = protocol.loads_auto(seed)
        target = value[draw(st.integers(0, len(value) - 1))] \
            if isinstance(value, list) else value
        if isinstance(target, dict) and target:
            target[draw(st.sampled_from(sorted(target)))] = draw(json_values)
        elif isinstance(value, list):
            value[draw(st.integers(0, len(value) - 1))] = draw(json_values)
        encode = protocol.dumps_json if seed[:1] == b'{' else \
            protocol.dumps_msgpack
        try:
            return encode(value)
        except (TypeError, ValueError):
            return seed  # bytes in JSON: keep the valid seed
    return seed


def payloads(kind):
    return st.binary(max_size=64) | mutated(kind)


hostile = st.lists(st.sampled_from(sorted(SEEDS)).flatmap(
    lambda kind: st.tuples(st.just(kind), payloads(kind))), min_size=1,
    max_size=6)


def _malformed(kind, payload):
    try:
        decoded = DECODERS[kind](payload)
    except ProtocolError:
        return True
    if kind == 'request' and decoded.type in DESTRUCTIVE:
        return None  # valid, but it is not sent
    return False


def test_hostile_payloads_on_every_channel(redis_url, key, redis_client, caplog):
    caplog.set_level(logging.WARNING, logger='sio_redis_sync')
    channels = protocol.Channels(key, '/')
    targets = {'broadcast': [channels.broadcast, channels.for_rooms(['r1'])],
               'request': [channels.request],
               'response': [channels.response]}
    with PyServer(redis_url, key) as server, \
            PyClient(server.url, rooms=['r1']) as client:
        wait_until(lambda: server.manager.ready)
        manager = server.manager
        targets['response'].append(channels.response_for(manager.uid))
        counters = {'sent': 0, 'malformed': 0, 'valid': 0}

        @settings(max_examples=150, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(batch=hostile, where=st.integers(0, 5), pick=st.integers(0, 1))
        def run(batch, where, pick):
            before = manager.stats()
            sent = malformed = 0
            for n, (kind, payload) in enumerate(batch):
                if n == where % len(batch):  # a valid one in the middle
                    counters['valid'] += 1
                    redis_client.publish(channels.for_rooms(['r1']),
                                         classic.encode_broadcast(
                                             'other', '/',
                                             ['valid', counters['valid']],
                                             ['r1']))
                    sent += 1
                bad = _malformed(kind, payload)
                if bad is None:
                    continue
                options = targets[kind]
                redis_client.publish(options[pick % len(options)], payload)
                sent += 1
                malformed += bad
            counters['valid'] += 1  # and one last: all before it were read
            redis_client.publish(channels.for_rooms(['r1']),
                                 classic.encode_broadcast(
                                     'other', '/', ['valid', counters['valid']],
                                     ['r1']))
            client.wait_for('valid', count=counters['valid'])
            after = manager.stats()
            # at least: this server also hears what it publishes itself
            # (client counts and acks for valid BROADCAST requests)
            assert after['received'] - before['received'] >= sent + 1
            assert after['dropped_malformed'] - before['dropped_malformed'] \
                == malformed
            counters['sent'] += sent
            counters['malformed'] += malformed

        run()
        valid = [args[0] for args in client.received('valid')]
        assert valid == list(range(1, counters['valid'] + 1))
        assert counters['malformed'] > 100  # the fuzz did reach the decoders
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, errors[:3]
        dropped = [r for r in caplog.records if 'malformed' in r.getMessage()]
        assert len(dropped) == counters['malformed']
        assert manager.stats()['reconnects'] == 0


class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError('no text for you')


def _deep_recursion(depth=0):
    return _deep_recursion(depth + 1)


# what a handler of the manager may raise on bad input, by payload
HANDLER_ERRORS = {
    b'protocol': lambda: (_ for _ in ()).throw(ProtocolError('bad field')),
    b'value': lambda: int('x'),
    b'type': lambda: len(5),
    b'key': lambda: {}['missing'],
    b'recursion': _deep_recursion,
    b'unprintable': lambda: (_ for _ in ()).throw(_Unprintable()),
    b'unicode': lambda: b'\xff'.decode('utf-8'),
}


def test_listener_survives_every_handler_error(redis_url, key, redis_client, caplog):
    """The listener goes on after any exception of its callback: a
    ProtocolError is one warning line without a traceback (and counted),
    anything else an error with its traceback; never a reconnect."""
    import threading

    import redis

    from sio_redis_sync.listener import Listener
    caplog.set_level(logging.DEBUG, logger='sio_redis_sync')
    delivered = []

    def callback(channel, pattern, data):
        delivered.append(data)
        if data in HANDLER_ERRORS:
            HANDLER_ERRORS[data]()

    client = redis.Redis.from_url(redis_url)
    listener = Listener(client.pubsub, callback)
    listener.subscribe(channels=[key])
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    try:
        wait_until(listener.ready.is_set, 10)
        payloads = list(HANDLER_ERRORS) * 3 + [b'last']
        for payload in payloads:
            redis_client.publish(key, payload)
        wait_until(lambda: delivered[-1:] == [b'last'], 20,
                   message='every message delivered: %r' % delivered[-3:])
        assert delivered == payloads
        assert listener.connections == 1 and thread.is_alive()
        assert listener.dropped_malformed == 3
        malformed = [r for r in caplog.records if 'malformed' in r.getMessage()]
        assert len(malformed) == 3
        for record in malformed:
            assert record.levelno == logging.WARNING and not record.exc_info
            assert 'bad field' in record.getMessage()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 3 * (len(HANDLER_ERRORS) - 1)
        assert all(r.exc_info for r in errors)
    finally:
        listener.stop()
        thread.join(5)
        client.close()
    assert listener.stopped.is_set()
