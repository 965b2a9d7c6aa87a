"""The sharded envelope against the bytes Node 8.3.0 really published.

Owns the checks of sio_redis_sync.envelope against tests/data/sharded_vectors.json
(the SPUBLISH payloads of the captured sharded run) and the sharded deterministic vectors.
"""
import json
from pathlib import Path

import pytest

from sio_redis_sync import envelope, protocol
from sio_redis_sync.envelope import (
    DYNAMIC, DYNAMIC_PRIVATE, STATIC, MessageType, ShardedChannels,
    decode_envelope, encode_envelope)
from sio_redis_sync.exceptions import ProtocolError
from sio_redis_sync.protocol import RequestType

DATA = Path(__file__).parent / 'data'
CAPTURED = json.loads((DATA / 'sharded_vectors.json').read_text('utf-8'))['sharded']
DETERMINISTIC = {v['name']: v for v in json.loads(
    (DATA / 'node_vectors.json').read_text('utf-8'))['deterministic']
    if v['name'].startswith('sharded.')}
# every capture but X5, the one without nsp (Node drops it, and so do we)
VALID = [v for v in CAPTURED if v['step'] != 'X5']
# the Node servers' own publishes (layout {type, data, uid, nsp})
FROM_SERVERS = [v for v in VALID if v['text'].startswith('{"type"')]
# what the test rig published by hand (layout {uid, nsp, type, data})
HAND_MADE = [v for v in VALID if v['text'].startswith('{"uid"')]


def _raw(vector):
    return bytes.fromhex(vector['hex'])


def _ids(vectors):
    return ['%s:%s:%d' % (v['step'], v['channel'], i) for i, v in enumerate(vectors)]


def test_the_capture_has_every_message_kind():
    kinds = {decode_envelope(_raw(v)).type for v in VALID}
    # fetch responses are too long to be kept whole in the capture
    assert kinds == set(MessageType) - {
        MessageType.INITIAL_HEARTBEAT, MessageType.HEARTBEAT,
        MessageType.ADAPTER_CLOSE, MessageType.FETCH_SOCKETS_RESPONSE}
    assert {v['encoding'] for v in FROM_SERVERS} == {'json', 'msgpack'}
    assert len(FROM_SERVERS) > 20 and len(HAND_MADE) > 5


@pytest.mark.parametrize('vector', FROM_SERVERS, ids=_ids(FROM_SERVERS))
def test_server_envelopes_reencode_byte_for_byte(vector):
    message = decode_envelope(_raw(vector))
    assert encode_envelope(message.type, message.data, message.uid,
                           message.nsp) == _raw(vector)


@pytest.mark.parametrize('vector', HAND_MADE, ids=_ids(HAND_MADE))
def test_hand_made_envelopes_reencode_in_emitter_order(vector):
    message = decode_envelope(_raw(vector))
    assert encode_envelope(message.type, message.data, message.uid, message.nsp,
                           emitter_order=True) == _raw(vector)


@pytest.mark.parametrize('name', sorted(DETERMINISTIC))
def test_deterministic_vectors(name):
    vector = DETERMINISTIC[name]
    raw = bytes.fromhex(vector['hex'])
    message = decode_envelope(raw)
    emitter_order = raw.startswith(b'{"uid"')
    assert encode_envelope(message.type, message.data, message.uid, message.nsp,
                           emitter_order=emitter_order) == raw


def test_an_envelope_without_nsp_is_refused():
    x5 = next(v for v in CAPTURED if v['step'] == 'X5')
    with pytest.raises(ProtocolError, match='nsp'):
        decode_envelope(_raw(x5))


@pytest.mark.parametrize('payload', [
    b'', b'{', b'[1,2]', b'"x"', b'\xc1', b'{"type":3}',
    b'{"type":99,"uid":"a","nsp":"/","data":{}}',
    b'{"type":true,"uid":"a","nsp":"/","data":{}}',
    b'{"type":"3","uid":"a","nsp":"/","data":{}}',
    b'{"type":3,"uid":1,"nsp":"/","data":{}}',
    b'{"type":3,"uid":"a","nsp":null,"data":{}}',
    b'{"type":3,"uid":"a","nsp":"/"}',
    b'{"type":4,"uid":"a","nsp":"/","data":[]}',
    protocol.dumps_msgpack(['emitter', {}, {}]),
])
def test_malformed_envelopes_raise_protocol_error(payload):
    with pytest.raises(ProtocolError):
        decode_envelope(payload)


def test_heartbeats_decode_without_data():
    message = decode_envelope(bytes.fromhex(DETERMINISTIC['sharded.heartbeat']['hex']))
    assert message == (MessageType.HEARTBEAT, None, '0123456789abcdef', '/')
    assert envelope.request_of(message) is None
    assert envelope.response_of(message) is None


def _broadcasts_from_servers():
    for vector in FROM_SERVERS:
        message = decode_envelope(_raw(vector))
        if message.type == MessageType.BROADCAST:
            yield vector, message


def test_node_servers_channel_choice_in_dynamic_mode():
    seen = 0
    for vector, message in _broadcasts_from_servers():
        channels = ShardedChannels('socket.io', message.nsp)
        rooms = message.data['opts']['rooms']
        with_ack = 'requestId' in message.data
        assert channels.for_broadcast(DYNAMIC, rooms, with_ack) == vector['channel']
        seen += 1
    assert seen >= 8


def test_channel_choice_per_mode():
    channels = ShardedChannels('socket.io', '/')
    sid = 'HMnFuLXqUKsuxEhlAAAC'
    assert channels.for_broadcast(DYNAMIC, ['room1']) == 'socket.io#/#room1#'
    assert channels.for_broadcast(DYNAMIC, [sid]) == 'socket.io#/#'
    assert channels.for_broadcast(DYNAMIC_PRIVATE, [sid]) == 'socket.io#/#%s#' % sid
    assert channels.for_broadcast(STATIC, ['room1']) == 'socket.io#/#'
    assert channels.for_broadcast(DYNAMIC, ['room1'], with_ack=True) == 'socket.io#/#'
    assert channels.for_broadcast(DYNAMIC, ['a', 'b']) == 'socket.io#/#'
    assert channels.for_broadcast(DYNAMIC, []) == 'socket.io#/#'
    assert channels.response_for('abc') == 'socket.io#/#abc#'


def test_room_subscription_rules():
    assert not envelope.subscribes_room(STATIC, 'room1', False)
    assert envelope.subscribes_room(DYNAMIC, 'room1', False)
    assert not envelope.subscribes_room(DYNAMIC, 'HMnFuLXqUKsuxEhlAAAC', True)
    # a 20-character room that is no local sid is public
    assert envelope.subscribes_room(DYNAMIC, 'x' * 20, False)
    assert envelope.subscribes_room(DYNAMIC_PRIVATE, 'HMnFuLXqUKsuxEhlAAAC', True)
    assert not envelope.subscribes_room(DYNAMIC_PRIVATE, None, False)
    with pytest.raises(ValueError, match='subscription_mode'):
        envelope.check_mode('sharded')


def test_responses_go_to_the_requester_channel():
    requests = {}
    for vector in VALID:
        message = decode_envelope(_raw(vector))
        request_id = (message.data or {}).get('requestId')
        if message.type in envelope.RESPONSE_TYPES:
            requester = requests[request_id]
            assert vector['channel'] == ShardedChannels(
                'socket.io', message.nsp).response_for(requester)
        elif request_id is not None:
            requests[request_id] = message.uid


def test_python_encoders_match_node_layouts():
    by_step = {}
    for vector in FROM_SERVERS:
        by_step.setdefault(vector['step'], []).append(_raw(vector))
    uid, nsp = '4d5e1bf0bdf89668', '/'
    assert encode_envelope(MessageType.BROADCAST, envelope.broadcast_data(
        ['s1_all', 'from A', 2]), uid, nsp) == by_step['S1'][0]
    assert encode_envelope(MessageType.BROADCAST, envelope.broadcast_data(
        ['s4_bin', b'\xde\xad\xbe\xef', 'txt'], ['room1']), uid, nsp) == by_step['S4'][0]
    assert encode_envelope(MessageType.BROADCAST, envelope.broadcast_data(
        ['s11_ack', 'q'], ['room1'], flags={'timeout': 2000},
        request_id='3c38beda5c9e410e'), uid, nsp) == by_step['S11'][0]
    assert encode_envelope(MessageType.SOCKETS_JOIN, envelope.join_data(
        [], ['room2'], ['room4']), uid, nsp) == by_step['S12'][0]
    assert encode_envelope(MessageType.DISCONNECT_SOCKETS, envelope.disconnect_data(
        ['room2'], [], True), uid, nsp) == by_step['D2'][0]
    assert encode_envelope(MessageType.FETCH_SOCKETS, envelope.fetch_data(
        'c89a46e327f713d2'), uid, nsp) == by_step['S8'][0]
    assert encode_envelope(MessageType.SERVER_SIDE_EMIT, envelope.server_side_emit_data(
        ['s7_ping', 7], '9519c26bf99d99c7'), uid, nsp) == by_step['S7'][0]
    assert encode_envelope(MessageType.SERVER_SIDE_EMIT, envelope.server_side_emit_data(
        ['s6b_bin', b'\x01\x02\x03']), uid, nsp) == by_step['S6b'][0]
    other = 'd16ae4ba8f5c85a3'
    assert encode_envelope(MessageType.BROADCAST_CLIENT_COUNT, envelope.response_data(
        MessageType.BROADCAST_CLIENT_COUNT, '3c38beda5c9e410e', 1), other, nsp) \
        == by_step['S11'][1]
    assert encode_envelope(MessageType.SERVER_SIDE_EMIT_RESPONSE, envelope.response_data(
        MessageType.SERVER_SIDE_EMIT_RESPONSE, '9519c26bf99d99c7',
        {'server': 'B', 'event': 's7_ping', 'args': [7]}), other, nsp) == by_step['S7'][1]


def test_translation_into_the_classic_shapes():
    decoded = {}
    for vector in VALID:
        message = decode_envelope(_raw(vector))
        decoded.setdefault((vector['step'], message.type), message)
    s2 = envelope.broadcast_of(decoded[('S2', MessageType.BROADCAST)])
    assert s2 == protocol.Broadcast('4d5e1bf0bdf89668', '/', ['s2_room2'], ('room2',), (), {})
    s4 = envelope.broadcast_of(decoded[('S4', MessageType.BROADCAST)])
    assert s4.data == ['s4_bin', b'\xde\xad\xbe\xef', 'txt']
    join = envelope.request_of(decoded[('X7', MessageType.SOCKETS_JOIN)])
    assert (join.type, join.uid, join.rooms, join.rooms_arg) == (
        RequestType.REMOTE_JOIN, 'emitter', ('room1',), ('room5',))
    leave = envelope.request_of(decoded[('S13', MessageType.SOCKETS_LEAVE)])
    assert (leave.type, leave.rooms, leave.rooms_arg) == (
        RequestType.REMOTE_LEAVE, ('room4',), ('room4',))
    d2 = envelope.request_of(decoded[('D2', MessageType.DISCONNECT_SOCKETS)])
    assert (d2.type, d2.rooms, d2.close) == (RequestType.REMOTE_DISCONNECT, ('room2',), True)
    fetch = envelope.request_of(decoded[('S9', MessageType.FETCH_SOCKETS)])
    assert (fetch.type, fetch.request_id, fetch.rooms) == (
        RequestType.REMOTE_FETCH, 'a7338d56de18d263', ('room1',))
    call = envelope.request_of(decoded[('S7', MessageType.SERVER_SIDE_EMIT)])
    assert (call.type, call.request_id, call.data) == (
        RequestType.SERVER_SIDE_EMIT, '9519c26bf99d99c7', ['s7_ping', 7])
    emit = envelope.request_of(decoded[('X8', MessageType.SERVER_SIDE_EMIT)])
    assert (emit.request_id, emit.data) == (None, ['x8_ping', 42])
    acked = envelope.request_of(decoded[('S11', MessageType.BROADCAST)])
    assert (acked.type, acked.request_id, acked.flags, acked.packet['data']) == (
        RequestType.BROADCAST, '3c38beda5c9e410e', {'timeout': 2000}, ['s11_ack', 'q'])
    assert envelope.response_of(decoded[('S11', MessageType.BROADCAST_CLIENT_COUNT)]) == {
        'requestId': '3c38beda5c9e410e', 'type': 8, 'clientCount': 1}
    assert envelope.response_of(decoded[('S11', MessageType.BROADCAST_ACK)]) == {
        'requestId': '3c38beda5c9e410e', 'type': 9,
        'packet': {'client': 'c2', 'event': 's11_ack'}}
    assert envelope.response_of(decoded[('S7', MessageType.SERVER_SIDE_EMIT_RESPONSE)]) == {
        'requestId': '9519c26bf99d99c7', 'type': 6,
        'data': {'server': 'B', 'event': 's7_ping', 'args': [7]}}
    assert envelope.request_of(decoded[('S11', MessageType.BROADCAST_ACK)]) is None


@pytest.mark.parametrize('translate, payload', [
    (envelope.broadcast_of,
     b'{"type":3,"data":{"packet":{"type":2,"data":[]},"opts":{}},"uid":"a","nsp":"/"}'),
    (envelope.broadcast_of,
     b'{"type":3,"data":{"packet":{"type":5,"data":["x"]}},"uid":"a","nsp":"/"}'),
    (envelope.broadcast_of,
     b'{"type":3,"data":{"packet":{"data":["x"]},"opts":{"rooms":"r"}},"uid":"a","nsp":"/"}'),
    (envelope.broadcast_of, b'{"type":3,"data":{"packet":[],"opts":{}},"uid":"a","nsp":"/"}'),
    (envelope.request_of, b'{"type":7,"data":{"opts":{}},"uid":"a","nsp":"/"}'),
    (envelope.request_of,
     b'{"type":4,"data":{"opts":{"rooms":[{}]},"rooms":[]},"uid":"a","nsp":"/"}'),
    (envelope.request_of, b'{"type":9,"data":{"packet":"x"},"uid":"a","nsp":"/"}'),
    (envelope.request_of,
     b'{"type":3,"data":{"requestId":1,"packet":{"data":["x"]}},"uid":"a","nsp":"/"}'),
    (envelope.response_of, b'{"type":8,"data":{"sockets":[]},"uid":"a","nsp":"/"}'),
])
def test_malformed_data_raises_protocol_error(translate, payload):
    with pytest.raises(ProtocolError):
        translate(decode_envelope(payload))
