"""The streams dialect against Node's own bytes, and its decoder rules (pure, no Redis).

Owns the checks against tests/data/streams_vectors.json, captured from the pinned
@socket.io/redis-streams-adapter 0.3.1 by tests/node/capture_streams.js: every XADD
(argument bytes) and every PUBLISH (payload bytes) is decoded, encoded again by
StreamsDialect, and must come out byte for byte.
"""
import base64
import json
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sio_redis_sync import ProtocolError, SioRedisError, streams
from sio_redis_sync.protocol import (Broadcast, Ignored, Outgoing, Request, RequestType, Response,
                                     new_request)
from sio_redis_sync.streams import StreamEntry, StreamsDialect

VECTORS = json.loads((Path(__file__).parent / 'data' / 'streams_vectors.json')
                     .read_text('utf-8'))
CAPTURED = VECTORS['captured']
KEY = 'socket.io'  # the capture's channelPrefix
FUZZ = settings(max_examples=80, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _xadds(step):
    return [v for v in CAPTURED if v['step'] == step and v['command'] == 'XADD']


def _publishes(step):
    return [v for v in CAPTURED if v['step'] == step and v['command'] == 'PUBLISH']


def _fields(vector):
    """The field map XREAD would give for a captured XADD (args after ``*``)."""
    raw = [bytes.fromhex(arg) for arg in vector['hex']]
    assert raw[2:4] == [b'MAXLEN', b'~'] and raw[5] == b'*'
    pairs = raw[6:]
    return dict(zip(pairs[::2], pairs[1::2]))


def _args(entry):
    """``entry.command()`` as the bytes redis-py sends."""
    return [arg if isinstance(arg, bytes) else str(arg).encode() for arg in entry.command()]


def _dialect(vector, **options):
    args = vector['args']
    return StreamsDialect(KEY, stream_name=args[1], max_len=int(args[4]), **options)


def test_the_capture_has_every_step():
    assert {v['step'] for v in CAPTURED} - {None} == {'T%d' % n for n in range(1, 18)}


# ---------------------------------------------------------------- stream names

@pytest.mark.parametrize('vector', VECTORS['hashes'], ids=lambda v: v['name'] or 'empty')
def test_the_namespace_hash_is_nodes(vector):
    assert streams.hash_code(vector['name']) == vector['hash']


def test_stream_keys_with_stream_count_3_are_nodes_including_the_negative_hash():
    counted = VECTORS['streams']['counted']
    dialect = StreamsDialect(KEY, stream_name=counted, stream_count=3, max_len=500)
    seen = {_fields(v)[b'nsp'].decode(): v['args'][1] for v in _xadds('T17')}
    assert seen == {'/': counted + '-2', '/users': counted + '-0',
                    '/notifications': counted + '--2', '/admin': counted + '-1'}
    for nsp, key in seen.items():
        assert dialect.stream_key(nsp) == key
    # Node reads -0 to -2 only; a Python server reads its namespaces' too
    assert dialect.stream_keys() == [counted + '-0', counted + '-1', counted + '-2']
    assert dialect.stream_keys(['/', '/notifications']) == \
        [counted + '-0', counted + '-1', counted + '-2', counted + '--2']


def test_a_single_stream_is_the_stream_name_itself():
    dialect = StreamsDialect(KEY, stream_name='s')
    assert dialect.stream_key('/notifications') == 's'
    assert dialect.stream_keys(['/a', '/b']) == ['s']


@pytest.mark.parametrize('options', [
    {'stream_count': 0}, {'stream_count': True}, {'stream_count': 1.0},
    {'max_len': 0}, {'max_len': None}, {'stream_name': ''}, {'stream_name': None}])
def test_bad_stream_options_are_refused(options):
    with pytest.raises(ValueError):
        StreamsDialect(KEY, **options)


# ---------------------------------------------------------------- stream entries

STREAM_STEPS = ['T1', 'T2', 'T3', 'T4', 'T5', 'T11', 'T12', 'T13', 'T15', 'T16', 'T17']


def _stream_vectors():
    return [v for step in STREAM_STEPS for v in _xadds(step)]


@pytest.mark.parametrize('vector', _stream_vectors(),
                         ids=lambda v: '%s-%s' % (v['step'], v['args'][9]))
def test_a_node_stream_entry_decodes_and_encodes_again_byte_for_byte(vector):
    fields = _fields(vector)
    dialect = _dialect(vector)
    nsp = dialect.entry_namespace(fields)
    assert nsp == vector['args'][9]
    uid = fields[b'uid'].decode()
    message = dialect.decode_entry(nsp, fields, vector['args'][1])
    assert message.uid == uid
    if isinstance(message, Broadcast):
        entry = dialect.encode_broadcast(nsp, uid, message.data, message.rooms,
                                         message.except_, message.flags)
    else:
        assert isinstance(message, Request) and message.request_id is None
        entry = dialect.encode_request(nsp, uid, message)
    assert isinstance(entry, StreamEntry)
    assert _args(entry) == [bytes.fromhex(arg) for arg in vector['hex']]
    assert entry.channel == vector['args'][1]


def test_node_entries_decode_to_what_was_sent():
    def decode(step):
        vector, = _xadds(step)
        fields = _fields(vector)
        return _dialect(vector).decode_entry(fields[b'nsp'].decode(), fields)

    t1 = decode('T1')
    assert (t1.nsp, t1.data, t1.rooms, t1.except_, t1.flags) == \
        ('/', ['t1', 'from A', 2], (), (), {})
    t4 = decode('T4')  # binary: base64 msgpack
    assert t4.data == ['t4', b'\xde\xad\xbe\xef', {'nested': [b'\x07' * 300], 's': 'x' * 40},
                       'txt', -1, 1.5, None]
    assert t4.rooms == ('room1',)
    t5 = decode('T5')
    assert (t5.rooms, t5.except_, t5.flags) == \
        (('room1', 'room2'), ('x1',), {'volatile': True, 'compress': False})
    join, leave, close = decode('T11'), decode('T12'), decode('T15')
    assert (join.type, join.except_, join.rooms_arg) == \
        (RequestType.REMOTE_JOIN, ('room2',), ('room4', 'room5'))
    assert (leave.type, leave.rooms, leave.rooms_arg) == \
        (RequestType.REMOTE_LEAVE, ('room4',), ('room4',))
    assert (close.type, close.rooms, close.close) == \
        (RequestType.REMOTE_DISCONNECT, ('room2',), True)
    assert decode('T13').nsp == '/admin'


# ---------------------------------------------------------------- Pub/Sub

def _decode_publish(vector, dialect):
    payload = bytes.fromhex(vector['hex'])
    nsp = msgpack.unpackb(payload)['nsp']
    return nsp, payload, dialect.decode(nsp, vector['channel'].encode(), payload)


@pytest.mark.parametrize('step', ['T6', 'T7', 'T8', 'T9', 'T10'])
def test_a_node_request_decodes_and_encodes_again_byte_for_byte(step):
    dialect = StreamsDialect(KEY)
    vector = [v for v in _publishes(step) if v['channel'] == 'socket.io#/#'][0]
    nsp, payload, request = _decode_publish(vector, dialect)
    assert isinstance(request, Request)
    if request.type == RequestType.BROADCAST:  # decoded with its packet
        request = new_request(RequestType.BROADCAST, request.request_id, request.rooms,
                              request.except_, data=request.packet['data'],
                              flags=request.flags)
    outgoing = dialect.encode_request(nsp, json.loads(vector['text'])['uid'], request)
    assert outgoing == Outgoing(vector['channel'], payload, None)
    assert dialect.servers_channel(nsp) == vector['channel']


# answer type -> (its step, the value an answer carries, read from a decoded body)
ANSWERS = {
    RequestType.SERVER_SIDE_EMIT: ('T8', lambda body: body['data']),
    RequestType.REMOTE_FETCH: ('T9', lambda body: body['sockets']),
    RequestType.BROADCAST_CLIENT_COUNT: ('T10', lambda body: body['clientCount']),
    RequestType.BROADCAST_ACK: ('T10', lambda body: [body['packet']]),  # every ack value
}


@pytest.mark.parametrize('kind', list(ANSWERS), ids=lambda kind: kind.name)
def test_a_node_answer_decodes_and_encodes_again_byte_for_byte(kind):
    step, value_of = ANSWERS[kind]
    dialect = StreamsDialect(KEY)
    requester = json.loads(_publishes(step)[0]['text'])['uid']
    answers = []
    for vector in _publishes(step)[1:]:
        nsp, payload, response = _decode_publish(vector, dialect)
        assert isinstance(response, Response)
        if response.body.get('type', RequestType.REMOTE_FETCH) == kind:
            answers.append((vector, nsp, payload, response))
    (vector, nsp, payload, response), = answers
    assert vector['channel'] in dialect.response_channels(nsp, requester)
    request = Request(type=kind, uid=requester, request_id=response.request_id)
    outgoing = dialect.encode_answer(nsp, response.uid, request, kind, value_of(response.body))
    assert outgoing == Outgoing(vector['channel'], payload, None)


def test_subscriptions_and_server_count_channel_are_nodes():
    dialect = StreamsDialect(KEY)
    assert [v['args'] for v in CAPTURED if v['step'] == 'T14'] == \
        [['PUBSUB', 'NUMSUB', dialect.servers_channel('/')]]
    assert dialect.subscriptions('/admin', 'u1').channels == ('socket.io#/admin#',
                                                              'socket.io#/admin#u1#')
    assert dialect.sharded is False
    assert StreamsDialect(KEY, use_sharded_pubsub=True).sharded is True
    # no room has a channel of its own
    assert dialect.room_channel('/', 'room1', False) is None
    assert dialect.room_channel('/', 'room1', True) is None
    assert dialect.channel_room('/', b'socket.io#/#room1#') is None


def test_wire_names_are_the_envelope_types():
    dialect = StreamsDialect(KEY)
    names = []
    for vector in CAPTURED:
        if vector['command'] == 'PUBLISH':
            payload = bytes.fromhex(vector['hex'])
            names.append(dialect.wire_name(dialect.decode('/', b'', payload)))
        elif vector['command'] == 'XADD':
            fields = _fields(vector)
            nsp = dialect.entry_namespace(fields)
            names.append(dialect.wire_name(dialect.decode_entry(nsp, fields)))
    assert set(names) == {'BROADCAST', 'SOCKETS_JOIN', 'SOCKETS_LEAVE', 'DISCONNECT_SOCKETS',
                          'SERVER_SIDE_EMIT', 'SERVER_SIDE_EMIT_RESPONSE', 'FETCH_SOCKETS',
                          'FETCH_SOCKETS_RESPONSE', 'BROADCAST_CLIENT_COUNT', 'BROADCAST_ACK'}


def test_all_rooms_does_not_exist():
    dialect = StreamsDialect(KEY)
    with pytest.raises(SioRedisError):
        dialect.check_request(RequestType.ALL_ROOMS)
    with pytest.raises(SioRedisError):
        dialect.encode_request('/', 'u', new_request(RequestType.ALL_ROOMS, 'r1'))


def test_a_servers_server_side_emit_without_ack_is_published_but_an_emitters_is_an_entry():
    request = new_request(RequestType.SERVER_SIDE_EMIT, data=['ev', 1])
    assert isinstance(StreamsDialect(KEY).encode_request('/', 'u', request), Outgoing)
    entry = StreamsDialect(KEY, emitter=True).encode_request('/', 'u', request)
    assert entry.fields == ((b'uid', b'emitter'), (b'nsp', b'/'), (b'type', b'9'),
                            (b'data', b'{"packet":["ev",1]}'))


def test_the_emitter_lays_a_broadcast_out_as_nodes_streams_emitter():
    # @socket.io/redis-streams-emitter (socket.io monorepo, unreleased on npm):
    # packet {type, data, nsp}, opts {rooms, flags, except}, uid "emitter"
    dialect = StreamsDialect(KEY, emitter=True, max_len=7)
    entry = dialect.encode_broadcast('/admin', 'ignored', ['ev', 'a'], ['r1', 'r1'], ['x'],
                                     {'volatile': True})
    assert entry.command() == (
        'XADD', 'socket.io', 'MAXLEN', '~', 7, '*', b'uid', b'emitter', b'nsp', b'/admin',
        b'type', b'3', b'data',
        b'{"packet":{"type":2,"data":["ev","a"],"nsp":"/admin"},'
        b'"opts":{"rooms":["r1"],"flags":{"volatile":true},"except":["x"]}}')
    message = StreamsDialect(KEY).decode_entry('/admin', dict(entry.fields))
    assert (message.uid, message.data, message.rooms) == ('emitter', ['ev', 'a'], ('r1',))


def test_an_emitter_request_expecting_answers_is_published_with_its_own_uid():
    dialect = StreamsDialect(KEY, emitter=True)
    outgoing = dialect.encode_request('/', 'me', new_request(RequestType.REMOTE_FETCH, 'r1'))
    assert outgoing.channel == 'socket.io#/#'
    assert msgpack.unpackb(outgoing.payload)['uid'] == 'me'


# ---------------------------------------------------------------- decoder rules

def _entry(**fields):
    base = {b'uid': b'u', b'nsp': b'/', b'type': b'3',
            b'data': b'{"packet":{"type":2,"data":["ev"]},"opts":{}}'}
    base.update({name.encode(): value for name, value in fields.items()})
    return {name: value for name, value in base.items() if value is not None}


def test_entries_of_other_namespaces_heartbeats_and_responses():
    dialect = StreamsDialect(KEY)
    assert dialect.entry_namespace(_entry(nsp=None)) is None  # Node skips it
    assert dialect.entry_namespace(_entry(nsp=b'\xff')) is None
    assert dialect.entry_namespace(None) is None
    other = dialect.decode_entry('/', _entry(nsp=b'/admin'))
    assert isinstance(other, Ignored) and other.nsp == '/admin'
    heartbeat = dialect.decode_entry('/', _entry(type=b'2', data=None))
    assert isinstance(heartbeat, Ignored) and heartbeat.kind == 'HEARTBEAT'
    ack = dialect.decode_entry('/', _entry(type=b'12', data=b'{"requestId":"r","packet":1}'))
    assert isinstance(ack, Response) and ack.body['packet'] == 1
    with_ack = dialect.decode_entry('/', _entry(
        data=b'{"requestId":"r","packet":{"data":["ev"]},"opts":{}}'))
    assert isinstance(with_ack, Request) and with_ack.type == RequestType.BROADCAST


DEEP_JSON = b'{"a":' * 100000 + b'1' + b'}' * 100000
DEEP_MSGPACK = base64.b64encode(b'\x81\xa1a' * 100000 + b'\x01')


@pytest.mark.parametrize('fields', [
    _entry(type=None), _entry(type=b''), _entry(type=b'x'), _entry(type=b'99'),
    _entry(type=b'0'), _entry(type=b'-3'), _entry(type=b'3 '), _entry(type=b'003'),
    _entry(uid=None), _entry(uid=b'\xff\xfe'), _entry(nsp=None),
    _entry(data=None), _entry(data=b'[1]'), _entry(data=b'{"packet":'), _entry(data=b'{]'),
    _entry(data=b'not base64!'), _entry(data=b'AAA'), _entry(data=base64.b64encode(b'\xc1')),
    _entry(data=base64.b64encode(msgpack.packb([1, 2]))),
    _entry(data=base64.b64encode(msgpack.packb({'packet': 1}))),
    _entry(data=b'{"packet":{"type":2,"data":[]},"opts":{}}'),
    _entry(data=b'{"packet":{"type":5,"data":["ev"]},"opts":{}}'),
    _entry(data=b'{"packet":{"data":["ev"]},"opts":{"rooms":"r"}}'),
    _entry(type=b'4', data=b'{"opts":{},"rooms":[{}]}'),
    _entry(type=b'6', data=b'{"opts":{},"close":"yes"}'),
    _entry(type=b'11', data=b'{"requestId":"r","clientCount":-1}'),
    _entry(data=DEEP_JSON), _entry(data=DEEP_MSGPACK),
    _entry(data=base64.b64encode(b'\xdd\xff\xff\xff\xff')),  # a 4-billion-item array
    {'uid': 'u', 'nsp': '/', 'type': '3'},  # str, not bytes
    [(b'uid', b'u')], None,
])
def test_a_malformed_entry_raises_protocol_error_only(fields):
    with pytest.raises(ProtocolError) as info:
        StreamsDialect(KEY).decode_entry('/', fields)
    assert len(str(info.value)) < 300


def test_a_huge_entry_decodes():
    data = json.dumps({'packet': {'type': 2, 'data': ['ev', 'x' * 5_000_000]},
                       'opts': {}}).encode()
    message = StreamsDialect(KEY).decode_entry('/', _entry(data=data))
    assert len(message.data[1]) == 5_000_000


def _decode_entry(fields):
    try:
        message = StreamsDialect(KEY).decode_entry('/', fields)
    except ProtocolError as exc:
        assert type(exc) is ProtocolError and len(str(exc)) < 300
        return None
    assert isinstance(message, (Broadcast, Request, Response, Ignored))
    return message


FIELD_NAMES = st.sampled_from([b'uid', b'nsp', b'type', b'data', b'x'])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=20)
DATA_KEYS = st.sampled_from(['packet', 'opts', 'requestId', 'rooms', 'close', 'sockets',
                             'clientCount', 'packets', 'data', 'type', 'flags', 'except'])


@FUZZ
@given(st.dictionaries(FIELD_NAMES, st.binary(max_size=40), max_size=5))
def test_random_fields_raise_protocol_error_only(fields):
    _decode_entry(fields)


@FUZZ
@given(st.sampled_from([b'%d' % n for n in range(15)]),
       st.dictionaries(DATA_KEYS, JSON_VALUES, max_size=5), st.booleans())
def test_random_data_of_every_type_raises_protocol_error_only(kind, data, as_msgpack):
    value = base64.b64encode(msgpack.packb(data)) if as_msgpack else json.dumps(data).encode()
    _decode_entry(_entry(type=kind, data=value))


@FUZZ
@given(st.binary(max_size=200))
def test_random_pubsub_payloads_raise_protocol_error_only(payload):
    dialect = StreamsDialect(KEY)
    for decode in (lambda: dialect.decode('/', b'socket.io#/#', payload),
                   lambda: dialect.decode_answer(payload)):
        try:
            decode()
        except ProtocolError as exc:
            assert type(exc) is ProtocolError


@FUZZ
@given(st.lists(JSON_VALUES, max_size=4), st.lists(st.text(max_size=4), max_size=3),
       st.booleans())
def test_what_the_dialect_encodes_it_decodes(args, rooms, binary):
    dialect = StreamsDialect(KEY)
    data = ['ev', *args] + ([b'\x00bin'] if binary else [])
    entry = dialect.encode_broadcast('/', 'u', data, rooms)
    assert dict(entry.fields)[b'data'][:1] == (b'g' if binary else b'{')
    message = dialect.decode_entry('/', dict(entry.fields))
    assert (message.uid, message.data, list(message.rooms)) == \
        ('u', data, list(dict.fromkeys(rooms)))
