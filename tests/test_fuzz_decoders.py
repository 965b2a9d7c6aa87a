"""Every decoder of a message read from Redis, fuzzed directly: only
ProtocolError may escape, with a short message, and what decodes can be delivered.

Classic (protocol), sharded (envelope) and legacy decoders get random bytes,
random msgpack/JSON values, valid messages with one field replaced, and deep
nesting; valid seeds are the captured Node vectors and our own encoders' output.
"""
import json
import math
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from socketio import packet as sio_packet

from sio_redis_sync import ProtocolError, classic, envelope, legacy, protocol
from sio_redis_sync.envelope import MessageType

DATA = Path(__file__).parent / 'data'
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
MESSAGE_LIMIT = 300  # an error message never echoes a payload


def _deliverable(data):
    """What the manager does with a decoded event: python-socketio's encode."""
    sio_packet.Packet(sio_packet.EVENT, data=data, namespace='/').encode()


def _broadcast(payload):
    message = classic.decode_broadcast(payload)
    _deliverable(message.data)
    return message


def _sharded(payload):
    """decode_envelope, then each translation the manager and CLI apply."""
    message = envelope.decode_envelope(payload)
    results = []
    for translate in (envelope.broadcast_of, envelope.request_of,
                      envelope.response_of):
        if message.data is None and translate is not envelope.response_of:
            continue
        try:
            results.append(translate(message))
        except ProtocolError as exc:
            _check_error(exc)
    return message, results


def _legacy(payload):
    message = legacy.decode_legacy(payload)
    if message.event is not None:
        _deliverable([message.event, *message.args])
    return message


def _mirror(payload):
    return legacy.mirror_messages('k', 'host', 'k#/#', payload) + \
        legacy.mirror_messages('k', 'host', 'k-request#/#', payload)


DECODERS = {
    'loads_msgpack': protocol.loads_msgpack,
    'loads_json': protocol.loads_json,
    'loads_auto': protocol.loads_auto,
    'broadcast': _broadcast,
    'request': classic.decode_request,
    'response': classic.decode_response,
    'sharded': _sharded,
    'legacy': _legacy,
    'mirror': _mirror,
}


def _check_error(exc):
    assert type(exc) is ProtocolError, repr(exc)
    assert len(str(exc)) < MESSAGE_LIMIT, str(exc)[:500]


def _decode(name, payload):
    """Run decoder ``name``: a value or a short ProtocolError, nothing else."""
    try:
        return DECODERS[name](payload)
    except ProtocolError as exc:
        _check_error(exc)
        return None


# ------------------------------------------------------------------- seeds

# captured on purpose as undecodable: JSON on the broadcast channel (Z1) and
# a sharded message without nsp (X5), which Node's servers drop too
INVALID_STEPS = {'Z1', 'X5'}


def _vectors(steps=None):
    """(decoder name, payload) of the captured vectors (``steps``: only those)."""
    classic_vectors = json.loads((DATA / 'node_vectors.json').read_text('utf-8'))
    sharded = json.loads((DATA / 'sharded_vectors.json').read_text('utf-8'))
    seeds = []
    for vector in classic_vectors['classic']:
        if 'hex' not in vector or (vector['step'] in INVALID_STEPS) != bool(steps):
            continue
        channel = vector['channel']
        kind = 'request' if '-request#' in channel else \
            'response' if '-response#' in channel else 'broadcast'
        seeds.append((kind, bytes.fromhex(vector['hex'])))
    for vector in sharded['sharded']:
        if 'hex' in vector and (vector['step'] in INVALID_STEPS) == bool(steps):
            seeds.append(('sharded', bytes.fromhex(vector['hex'])))
    return seeds


OURS = [
    ('broadcast', classic.encode_broadcast('u', '/', ['ev', 1, {'a': [1, 2]}])),
    ('broadcast', classic.encode_broadcast('u', '/', ['ev', b'\x00bin'], ['r'],
                                            ['s'], {'volatile': True})),
    ('request', classic.encode_remote_join('u', ['r1'], ['x'], ['j'])),
    ('request', classic.encode_remote_disconnect('u', ['r1'], [], True)),
    ('request', classic.encode_broadcast_request('u', 'rid', '/', ['e', 2],
                                                  ['r'], [], {'timeout': 100})),
    ('request', classic.encode_server_side_emit('u', ['hello', 1], 'rid')),
    ('request', b'{"uid":"u","requestId":"r","type":2,"sid":"s","room":"r"}'),
    ('response', classic.encode_client_count('rid', 3)),
    ('response', classic.encode_broadcast_ack('rid', 'one', ['one', 2, b'\x03'])),
    ('response', classic.encode_response({'requestId': 'r', 'sockets': [
        {'id': 's', 'handshake': {}, 'rooms': ['s', 'r'], 'data': {}}]})),
    ('response', classic.encode_response({'requestId': 'r', 'rooms': ['a', 1]})),
    ('sharded', envelope.encode_envelope(MessageType.BROADCAST_ACK,
                                         envelope.response_data(
                                             MessageType.BROADCAST_ACK, 'r', 1,
                                             [1, b'\x02']), 'u', '/')),
    ('sharded', envelope.encode_envelope(MessageType.BROADCAST,
                                         envelope.broadcast_data(['e', b'\x01'],
                                                                 ['r']), 'u', '/')),
    ('sharded', envelope.encode_envelope(
        MessageType.BROADCAST_CLIENT_COUNT, envelope.response_data(
            MessageType.BROADCAST_CLIENT_COUNT, 'r', 2), 'u', '/')),
    ('sharded', envelope.encode_envelope(MessageType.SOCKETS_JOIN,
                                         envelope.join_data(['a'], [], ['b']),
                                         'u', '/')),
    ('legacy', legacy.encode_emit('h', 'ev', [{'a': b'\x00\x01'}, 2], '/',
                                  ['r1'], ['s1'], ('r1', '/', 7), mark=False)),
    ('legacy', legacy.encode_room_change('enter_room', 'h', 'sid', 'room')),
    ('legacy', legacy.encode_close_room('h', 'room')),
    ('legacy', legacy.encode_callback('h', 'sid', '/', 3, ['a', 1])),
    ('legacy', legacy.encode_disconnect('h', 'sid')),
]
SEEDS = _vectors() + OURS


def test_seeds_decode():
    """The valid messages the mutations start from are accepted as they are
    (test_protocol and test_envelope check the decoded values)."""
    for kind, payload in SEEDS:
        assert DECODERS[kind](payload) is not None, (kind, payload)
    invalid = _vectors(INVALID_STEPS)
    assert len(invalid) == 2
    for kind, payload in invalid:
        with pytest.raises(ProtocolError):
            DECODERS[kind](payload)


# -------------------------------------------------------------- strategies

scalars = (st.none() | st.booleans() | st.integers()
           | st.integers(-2 ** 64, 2 ** 64)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.binary(max_size=12))
# msgpack maps may have keys of any scalar type
keys = st.text(max_size=6) | st.integers() | st.binary(max_size=4) \
    | st.booleans() | st.none() | st.floats()
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(keys, inner, max_size=5), max_leaves=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=6), inner, max_size=5), max_leaves=20)
# values that look like messages: the right field names, random contents
FIELDS = ['type', 'uid', 'nsp', 'data', 'packet', 'opts', 'rooms', 'except',
          'flags', 'requestId', 'clientCount', 'packet', 'packets', 'sockets',
          'sid', 'room', 'close', 'method', 'event', 'binary', 'namespace',
          'skip_sid', 'callback', 'host_id', 'id', 'args', 'timeout']
messages = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6),
    max_leaves=25)


def _pack(value):
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (ValueError, TypeError, OverflowError):
        return None


def _json(value):
    try:  # NaN and Infinity on purpose: they must be refused
        return json.dumps(value, default=lambda v: list(bytes(v))).encode()
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None


def _paths(value, path=()):
    yield path
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, path + (index,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))


def _replace(value, path, new):
    if not path:
        return new
    node = value
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = new
    return value


@st.composite
def mutated(draw):
    """A valid seed with one field (at any depth) replaced by a random value,
    re-encoded the way the seed was (JSON or msgpack)."""
    kind, seed = draw(st.sampled_from(SEEDS))
    is_json = seed[:1] == b'{'
    value = json.loads(seed) if is_json else msgpack.unpackb(
        seed, raw=False, strict_map_key=False, ext_hook=msgpack.ExtType,
        timestamp=0)
    paths = list(_paths(value))
    path = draw(st.sampled_from(paths))
    new = draw(json_values if is_json else values)
    how = draw(st.sampled_from(['replace', 'delete']))
    if how == 'delete' and path:
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        del parent[path[-1]]
    else:
        value = _replace(value, path, new)
    payload = _json(value) if is_json else _pack(value)
    return kind, seed if payload is None else payload


# the decoders alone, for deep values (python-socketio's own encode recurses)
RAW = dict(DECODERS, broadcast=classic.decode_broadcast,
           legacy=legacy.decode_legacy)


def _everywhere(payload):
    for name in DECODERS:
        _decode(name, payload)


# ------------------------------------------------------------------- tests

@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes(payload):
    _everywhere(payload)


@FUZZ
@given(st.sampled_from([b'{', b'\x93', b'\x83', b'\x80', b'[']),
       st.binary(max_size=100))
def test_arbitrary_bytes_after_a_plausible_first_byte(first, rest):
    _everywhere(first + rest)


@FUZZ
@given(values)
def test_arbitrary_msgpack_values(value):
    payload = _pack(value)
    if payload is not None:
        _everywhere(payload)


@FUZZ
@given(messages)
def test_message_shaped_values(value):
    for payload in (_pack(value), _json(value)):
        if payload is not None:
            _everywhere(payload)


@settings(FUZZ, max_examples=200)
@given(mutated())
def test_valid_messages_with_one_field_mutated(case):
    kind, payload = case
    _decode(kind, payload)
    if kind == 'legacy':
        _decode('mirror', payload)


@settings(FUZZ, max_examples=25)
@given(st.integers(1, 3000), st.sampled_from(['list', 'map']),
       st.sampled_from([b'\xc0', b'\xd6\xff\x00\x00\x00\x01', b'\xc4\x00',
                        b'\xd4\x00\x00', b'\xc7\x03\x00abc']))
def test_deep_msgpack(depth, container, leaf):
    opener = b'\x91' if container == 'list' else b'\x81\xa1k'
    value = opener * depth + leaf
    for payload in (value, b'\x93\xa1u\x83\xa4type\x02\xa4data\x92\xa2ev' + value
                    + b'\xa3nsp\xa1/\x80',
                    b'\x83\xa4type\x09\xa9requestId\xa1r\xa6packet' + value):
        for name in ('loads_msgpack', 'loads_auto', 'broadcast', 'response',
                     'request', 'sharded'):
            try:
                RAW[name](payload)
            except ProtocolError as exc:
                _check_error(exc)


@settings(FUZZ, max_examples=15)
@given(st.integers(1, 100000), st.sampled_from(['[', '{"k":']))
def test_deep_json(depth, opener):
    closer = ']' if opener == '[' else '}'
    inner = opener * depth + '1' + closer * depth
    for payload in (
            '{"a":%s}' % inner,
            '{"type":6,"uid":"u","data":["e",%s]}' % inner,
            '{"requestId":"r","data":%s}' % inner,
            '{"type":9,"uid":"u","nsp":"/","data":{"packet":["e",%s]}}' % inner,
            '{"method":"emit","event":"e","data":[%s]}' % inner,
            '{"method":"emit","event":"e","binary":true,"data":[%s,"AA=="]}'
            % inner):
        for name in ('loads_json', 'request', 'response', 'sharded', 'legacy'):
            try:
                RAW[name](payload.encode())
            except ProtocolError as exc:
                _check_error(exc)


@FUZZ
@given(st.sampled_from(list(MessageType)),
       st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))
def test_sharded_translations_of_any_data(kind, data):
    message = envelope.Envelope(kind, data, 'u', '/')
    for translate in (envelope.broadcast_of, envelope.request_of,
                      envelope.response_of):
        try:
            translate(message)
        except ProtocolError as exc:
            _check_error(exc)


@FUZZ
@given(st.text(max_size=6).map(lambda s: s.encode('utf-8'))
       | st.binary(max_size=8))
def test_invalid_utf8_inside_strings(raw):
    # a str header followed by arbitrary bytes: invalid UTF-8 must be refused
    header = bytes([0xa0 | len(raw)]) if len(raw) < 32 else None
    if header is None:
        return
    payload = b'\x93' + header + raw + b'\x83\xa4type\x02\xa4data\x91\xa1e' \
        b'\xa3nsp\xa1/\x80'
    _decode('broadcast', payload)
    _decode('legacy', b'{"method":"emit","event":"' + raw + b'","data":[1]}')


@pytest.mark.parametrize('number', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_msgpack_numbers_are_no_room_or_count(number):
    """msgpack may carry NaN (Node's notepack sends it as a float64) as an
    argument, or as an ack timeout (the receiver clamps it to its ack_ttl);
    never as a room or a count."""
    rooms = msgpack.packb(['u', {'type': 2, 'data': ['e', number], 'nsp': '/'},
                           {'rooms': [number]}])
    count = msgpack.packb({'type': 8, 'requestId': 'r', 'clientCount': number})
    timeout = msgpack.packb({'type': 7, 'uid': 'u', 'requestId': 'r',
                             'packet': {'type': 2, 'data': ['e']},
                             'opts': {'flags': {'timeout': number}}})
    for decoder, payload in ((classic.decode_broadcast, rooms),
                             (classic.decode_response, count)):
        with pytest.raises(ProtocolError):
            decoder(payload)
    assert classic.decode_request(timeout).packet['data'] == ['e']
    argument = msgpack.packb(['u', {'type': 2, 'data': ['e', number]}, {}])
    assert classic.decode_broadcast(argument).data[1] == number or \
        math.isnan(number)
