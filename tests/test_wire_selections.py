"""Which sockets a message selects survives the wire: rooms, except lists and flags.

Every message type that carries a selection, in both modes (classic protocol, sharded
envelope) and both directions, with non-empty rooms, except lists and flags (pure).
"""
import json

import msgpack
import pytest

from sio_redis_sync import classic, envelope, protocol
from sio_redis_sync.envelope import MessageType, decode_envelope, encode_envelope
from sio_redis_sync.exceptions import ProtocolError
from sio_redis_sync.protocol import RequestType
from sio_redis_sync.classic import decode_request, decode_response

ROOMS = ['r1', 'r2']
EXCEPT = ['x1', 'sid_of_the_sender_01']
FLAGS = {'volatile': True, 'compress': False}


def _json(payload):
    return json.loads(payload.decode('utf-8'))


# ---------------------------------------------------------------- classic: encode

@pytest.mark.parametrize('uid', ['AbC-_9', None])
def test_remote_join_carries_its_selection_and_the_rooms_to_join(uid):
    payload = classic.encode_remote_join(uid, ROOMS, EXCEPT, ['j1', 'j2'])
    body = {'type': 2, 'opts': {'rooms': ROOMS, 'except': EXCEPT}, 'rooms': ['j1', 'j2']}
    if uid is not None:
        body = {'uid': uid, **body}
    assert payload == json.dumps(body, separators=(',', ':')).encode()
    request = decode_request(payload)
    assert (request.type, request.uid, request.rooms, request.except_, request.rooms_arg) \
        == (RequestType.REMOTE_JOIN, uid, ('r1', 'r2'), tuple(EXCEPT), ('j1', 'j2'))


@pytest.mark.parametrize('uid', ['AbC-_9', None])
def test_remote_leave_carries_its_selection_and_the_rooms_to_leave(uid):
    payload = classic.encode_remote_leave(uid, ROOMS, EXCEPT, ['l1'])
    body = {'type': 3, 'opts': {'rooms': ROOMS, 'except': EXCEPT}, 'rooms': ['l1']}
    if uid is not None:
        body = {'uid': uid, **body}
    assert payload == json.dumps(body, separators=(',', ':')).encode()
    request = decode_request(payload)
    assert (request.type, request.uid, request.rooms, request.except_, request.rooms_arg) \
        == (RequestType.REMOTE_LEAVE, uid, ('r1', 'r2'), tuple(EXCEPT), ('l1',))


@pytest.mark.parametrize('close', [True, False])
def test_remote_disconnect_carries_its_selection_and_close(close):
    payload = classic.encode_remote_disconnect('u', ROOMS, EXCEPT, close)
    assert _json(payload) == {'uid': 'u', 'type': 4, 'close': close,
                              'opts': {'rooms': ROOMS, 'except': EXCEPT}}
    assert list(_json(payload)) == ['uid', 'type', 'opts', 'close']
    request = decode_request(payload)
    assert (request.type, request.rooms, request.except_, request.close) \
        == (RequestType.REMOTE_DISCONNECT, ('r1', 'r2'), tuple(EXCEPT), close)


def test_remote_disconnect_does_not_close_by_default():
    assert _json(classic.encode_remote_disconnect(None, ['a'], ()))['close'] is False
    request = decode_request(b'{"type":4,"opts":{"rooms":["a"],"except":["b"]}}')
    assert request.close is False
    assert (request.rooms, request.except_) == (('a',), ('b',))


def test_fetch_sockets_request_carries_its_selection():
    payload = classic.encode_fetch_sockets('u', 'req1', ROOMS, EXCEPT)
    assert payload == (b'{"uid":"u","requestId":"req1","type":5,'
                       b'"opts":{"rooms":["r1","r2"],"except":["x1","sid_of_the_sender_01"]}}')
    request = decode_request(payload)
    assert (request.type, request.request_id, request.rooms, request.except_) \
        == (RequestType.REMOTE_FETCH, 'req1', ('r1', 'r2'), tuple(EXCEPT))


def test_selections_are_deduplicated_in_order():
    payload = classic.encode_remote_leave('u', ['b', 'a', 'b'], ['y', 'x', 'y'], ['c', 'c'])
    assert _json(payload)['opts'] == {'rooms': ['b', 'a'], 'except': ['y', 'x']}
    assert _json(payload)['rooms'] == ['c']


def test_no_selection_given_is_an_empty_one():
    # python-socketio passes room=None / skip_sid=None for "none"
    assert _json(classic.encode_fetch_sockets('u', 'q', None, None))['opts'] == {
        'rooms': [], 'except': []}
    assert _json(classic.encode_remote_disconnect('u', None, None))['opts'] == {
        'rooms': [], 'except': []}
    assert envelope.fetch_data('q', None, None)['opts'] == {
        'rooms': [], 'except': [], 'flags': {}}
    assert envelope.join_data(None, None, ['j'])['opts'] == {
        'rooms': [], 'except': [], 'flags': {}}


def test_broadcast_request_with_acks_carries_packet_selection_and_flags():
    payload = classic.encode_broadcast_request(
        'AbC-_9', 'Req1', '/admin', ['question', 1], ROOMS, EXCEPT, {'timeout': 2000})
    assert msgpack.unpackb(payload) == {
        'uid': 'AbC-_9', 'requestId': 'Req1', 'type': 7,
        'packet': {'type': 2, 'data': ['question', 1], 'nsp': '/admin'},
        'opts': {'rooms': ROOMS, 'except': EXCEPT, 'flags': {'timeout': 2000}}}
    # msgpack (its first byte is not "{"), keys in Node's order
    assert list(msgpack.unpackb(payload)) == ['uid', 'requestId', 'type', 'packet', 'opts']
    assert list(msgpack.unpackb(payload)['opts']) == ['rooms', 'except', 'flags']
    request = decode_request(payload)
    assert (request.type, request.uid, request.request_id) == (RequestType.BROADCAST,
                                                                'AbC-_9', 'Req1')
    assert (request.rooms, request.except_, request.flags) \
        == (('r1', 'r2'), tuple(EXCEPT), {'timeout': 2000})
    assert request.packet == {'type': 2, 'data': ['question', 1], 'nsp': '/admin'}


def test_broadcast_request_without_flags_sends_an_empty_map():
    payload = classic.encode_broadcast_request('u', 'r', '/', ['ev'])
    assert msgpack.unpackb(payload)['opts'] == {'rooms': [], 'except': [], 'flags': {}}


def test_client_count_and_ack_responses_reach_the_requester():
    count = classic.encode_client_count('Req1', 3)
    assert count == b'{"type":8,"requestId":"Req1","clientCount":3}'
    assert decode_response(count) == {'type': 8, 'requestId': 'Req1', 'clientCount': 3}
    ack = classic.encode_broadcast_ack('Req1', {'answer': b'\x01'})
    assert ack[:1] != b'{'    # msgpack: an ack may carry bytes
    assert list(msgpack.unpackb(ack)) == ['type', 'requestId', 'packet']
    assert decode_response(ack) == {'type': 9, 'requestId': 'Req1',
                                    'packet': {'answer': b'\x01'}}


@pytest.mark.parametrize('emitter_order', [False, True])
def test_broadcast_carries_except_and_flags_both_ways(emitter_order):
    payload = classic.encode_broadcast('u', '/admin', ['ev', 1], ROOMS, EXCEPT, FLAGS,
                                        emitter_order=emitter_order)
    uid, packet, opts = msgpack.unpackb(payload)
    assert opts == {'rooms': ROOMS, 'except': EXCEPT, 'flags': FLAGS}
    assert list(opts) == (['rooms', 'flags', 'except'] if emitter_order
                          else ['rooms', 'except', 'flags'])
    message = classic.decode_broadcast(payload)
    assert (message.uid, message.nsp, message.data) == ('u', '/admin', ['ev', 1])
    assert (message.rooms, message.except_, message.flags) \
        == (('r1', 'r2'), tuple(EXCEPT), FLAGS)


# ---------------------------------------------------------------- classic: decode

def test_decoded_request_selection_flags():
    payload = json.dumps({'uid': 'u', 'requestId': 'q', 'type': 5, 'opts': {
        'rooms': ['a'], 'except': ['b'], 'flags': {'local': False}}}).encode()
    request = decode_request(payload)
    assert (request.rooms, request.except_, request.flags) == (('a',), ('b',),
                                                               {'local': False})


def test_legacy_one_socket_disconnect():
    # redis-adapter's old per-socket form: {uid, sid, close, type: 4}
    request = decode_request(b'{"uid":"u","sid":"abc","close":true,"type":4}')
    assert (request.type, request.sid, request.close) == (
        RequestType.REMOTE_DISCONNECT, 'abc', True)
    # it selects that one socket, not every socket of the namespace
    assert (request.rooms, request.except_) == ((), ())
    request = decode_request(b'{"uid":"u","sid":"abc","type":4}')
    assert (request.sid, request.close) == ('abc', False)


def test_legacy_one_socket_disconnect_with_a_bad_sid_is_refused():
    with pytest.raises(ProtocolError):
        decode_request(b'{"uid":"u","sid":5,"type":4}')


def test_legacy_one_socket_join_and_leave():
    for kind in (2, 3):
        payload = ('{"uid":"u","requestId":"q","type":%d,"sid":"abc","room":"r"}'
                   % kind).encode()
        request = decode_request(payload)
        assert (request.sid, request.room, request.request_id) == ('abc', 'r', 'q')
        assert (request.rooms, request.except_, request.rooms_arg) == ((), (), ())


def test_a_selection_disconnect_names_no_socket():
    request = decode_request(b'{"uid":"u","type":4,"opts":{"rooms":["a"]},"close":true}')
    assert request.sid is None and request.close is True


def test_msgpack_maps_with_integer_keys_decode():
    # notepack.io writes a JS object's keys as strings, but a Map or another
    # peer may use integers: the value still decodes instead of being refused
    payload = protocol.dumps_msgpack(['u', {'type': 2, 'data': ['ev', {1: 'one'}],
                                            'nsp': '/'}, {'rooms': [], 'except': []}])
    message = classic.decode_broadcast(payload)
    assert message.data == ['ev', {1: 'one'}]
    assert protocol.loads_msgpack(msgpack.packb({2: 'x'})) == {2: 'x'}


# ---------------------------------------------------------------- helpers

@pytest.mark.parametrize('value, expected', [
    (None, ()), ('room', ('room',)), (7, (7,)), (['a', 'b'], ('a', 'b')),
    (('a',), ('a',)), (frozenset(['a']), ('a',)), ({'a'}, ('a',)), ([], ()),
])
def test_room_arguments_as_python_socketio_takes_them(value, expected):
    assert protocol.as_rooms(value) == expected


@pytest.mark.parametrize('value, expected', [
    (None, []), ('x', ['x']), (('a', 1), ['a', 1]), ((), []), ([1, 2], [[1, 2]]),
    (0, [0]), ('', ['']),
])
def test_data_arguments_as_python_socketio_takes_them(value, expected):
    assert protocol.as_args(value) == expected


# ---------------------------------------------------------------- sharded

def _envelope(kind, data, uid='srv', nsp='/admin'):
    return decode_envelope(encode_envelope(kind, data, uid, nsp))


def test_sharded_broadcast_keeps_except_and_flags():
    data = envelope.broadcast_data(['ev', 2], ROOMS, EXCEPT, FLAGS)
    assert data == {'packet': {'type': 2, 'data': ['ev', 2]},
                    'opts': {'rooms': ROOMS, 'except': EXCEPT, 'flags': FLAGS}}
    message = envelope.broadcast_of(_envelope(MessageType.BROADCAST, data))
    assert (message.uid, message.nsp, message.data) == ('srv', '/admin', ['ev', 2])
    assert (message.rooms, message.except_, message.flags) \
        == (('r1', 'r2'), tuple(EXCEPT), FLAGS)


def test_sharded_broadcast_packet_names_its_namespace_only_if_given():
    assert envelope.broadcast_data(['ev'], nsp='/admin')['packet'] == {
        'type': 2, 'data': ['ev'], 'nsp': '/admin'}
    assert 'nsp' not in envelope.broadcast_data(['ev'])['packet']
    assert list(envelope.broadcast_data(['ev'], request_id='q', nsp='/')) == [
        'packet', 'requestId', 'opts']


def test_sharded_broadcast_without_flags_sends_an_empty_map():
    assert envelope.broadcast_data(['ev'])['opts'] == {'rooms': [], 'except': [],
                                                       'flags': {}}


def test_sharded_broadcast_with_acks_is_a_request_keeping_its_selection():
    data = envelope.broadcast_data(['q', 1], ['r1'], ['x1'], {'timeout': 2000},
                                   request_id='Req1', nsp='/admin')
    request = envelope.request_of(_envelope(MessageType.BROADCAST, data))
    assert (request.type, request.request_id, request.uid) == (RequestType.BROADCAST,
                                                                'Req1', 'srv')
    assert (request.rooms, request.except_, request.flags) \
        == (('r1',), ('x1',), {'timeout': 2000})
    assert request.packet == {'type': 2, 'data': ['q', 1], 'nsp': '/admin'}


def test_a_sharded_broadcast_of_another_packet_type_is_refused():
    for packet_type in (5, 0, None, '2'):
        data = {'packet': {'type': packet_type, 'data': ['ev']},
                'opts': {'rooms': [], 'except': [], 'flags': {}}}
        with pytest.raises(ProtocolError):
            envelope.broadcast_of(_envelope(MessageType.BROADCAST, data))


def test_a_sharded_broadcast_packet_without_type_is_an_event():
    # Node's ClusterAdapter does not check packet.type: none means an event
    data = {'packet': {'data': ['ev']}, 'opts': {'rooms': ['a'], 'except': ['b']}}
    message = envelope.broadcast_of(_envelope(MessageType.BROADCAST, data))
    assert (message.data, message.rooms, message.except_) == (['ev'], ('a',), ('b',))


@pytest.mark.parametrize('kind, classic', [
    (MessageType.SOCKETS_JOIN, RequestType.REMOTE_JOIN),
    (MessageType.SOCKETS_LEAVE, RequestType.REMOTE_LEAVE),
])
def test_sharded_join_and_leave_keep_their_selection(kind, classic):
    data = envelope.join_data(ROOMS, EXCEPT, ['j1', 'j1', 'j2'])
    assert data == {'opts': {'rooms': ROOMS, 'except': EXCEPT, 'flags': {}},
                    'rooms': ['j1', 'j2']}
    request = envelope.request_of(_envelope(kind, data))
    assert (request.type, request.uid, request.request_id) == (classic, 'srv', None)
    assert (request.rooms, request.except_, request.rooms_arg) \
        == (('r1', 'r2'), tuple(EXCEPT), ('j1', 'j2'))


@pytest.mark.parametrize('close', [True, False])
def test_sharded_disconnect_keeps_its_selection_and_close(close):
    data = envelope.disconnect_data(ROOMS, EXCEPT, close)
    assert data == {'opts': {'rooms': ROOMS, 'except': EXCEPT, 'flags': {}},
                    'close': close}
    request = envelope.request_of(_envelope(MessageType.DISCONNECT_SOCKETS, data))
    assert request.type is RequestType.REMOTE_DISCONNECT
    assert (request.rooms, request.except_, request.close) == (('r1', 'r2'),
                                                               tuple(EXCEPT), close)


def test_sharded_disconnect_does_not_close_by_default():
    assert envelope.disconnect_data(['a'], ['b'])['close'] is False
    request = envelope.request_of(_envelope(MessageType.DISCONNECT_SOCKETS,
                                            {'opts': {'rooms': ['a']}}))
    assert request.close is False and request.rooms == ('a',)


def test_sharded_fetch_keeps_its_selection_and_flags():
    data = envelope.fetch_data('Req1', ROOMS, EXCEPT, {'local': False})
    assert data == {'opts': {'rooms': ROOMS, 'except': EXCEPT, 'flags': {'local': False}},
                    'requestId': 'Req1'}
    assert envelope.fetch_data('Req2')['opts'] == {'rooms': [], 'except': [], 'flags': {}}
    request = envelope.request_of(_envelope(MessageType.FETCH_SOCKETS, data))
    assert (request.type, request.request_id) == (RequestType.REMOTE_FETCH, 'Req1')
    assert (request.rooms, request.except_, request.flags) \
        == (('r1', 'r2'), tuple(EXCEPT), {'local': False})


def test_sharded_selection_encodes_as_node_lays_it_out():
    payload = encode_envelope(MessageType.SOCKETS_JOIN,
                              envelope.join_data(['a'], ['b'], ['c']), 'srv', '/')
    assert payload == (b'{"type":4,"data":{"opts":{"rooms":["a"],"except":["b"],'
                       b'"flags":{}},"rooms":["c"]},"uid":"srv","nsp":"/"}')
