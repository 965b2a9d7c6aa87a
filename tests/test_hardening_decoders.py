"""Regression tests of issue 14 for the decoders: every malformed input is a
ProtocolError, rooms are str or int, clientCount is a count, acks carry every value.

Pure decoders are called directly; the legacy close_room case runs through a
real RedisManager, a real Redis and a real socketio.Client.
"""
import json
import logging

import msgpack
import pytest

from rig import PyClient, PyServer
from sio_redis_sync import ProtocolError, classic, envelope, legacy, protocol
from sio_redis_sync.envelope import MessageType

# msgpack timestamp (ext -1): what protocol.loads_msgpack turns into a string
DATE = b'\xd6\xff' + (1704164645).to_bytes(4, 'big')
ISO = '2024-01-02T03:04:05.000Z'


def _nested(depth, leaf):
    """msgpack of ``[[[...leaf...]]]``, ``depth`` arrays deep."""
    return b'\x91' * depth + leaf


def _broadcast_with(data_item):
    """A valid broadcast whose only argument is the raw msgpack ``data_item``."""
    return (b'\x93\xa1u\x83\xa4type\x02\xa4data\x92\xa2ev' + data_item
            + b'\xa3nsp\xa1/\x80')


def _response_with(value):
    """A msgpack BROADCAST_ACK whose packet is the raw msgpack ``value``."""
    return b'\x83\xa4type\x09\xa9requestId\xa1r\xa6packet' + value


# ------------------------------------------------- deep nesting, item 7

@pytest.mark.parametrize('depth', [600, 1000])
def test_deep_value_with_a_date_decodes_without_recursion_error(depth):
    """Failed before: RecursionError from _dates_to_iso (protocol.py:303)."""
    message = classic.decode_broadcast(_broadcast_with(_nested(depth, DATE)))
    value = message.data[1]
    for _ in range(depth):
        value = value[0]
    assert value == ISO
    response = classic.decode_response(_response_with(_nested(depth, DATE)))
    assert response['requestId'] == 'r'


@pytest.mark.parametrize('decoder, wrap', [
    (classic.decode_broadcast, _broadcast_with),
    (classic.decode_response, _response_with),
    (protocol.loads_msgpack, lambda v: v),
])
def test_msgpack_nested_100000_deep_is_a_short_protocol_error(decoder, wrap):
    with pytest.raises(ProtocolError, match='nested too deeply') as info:
        decoder(wrap(_nested(100000, DATE)))
    assert len(str(info.value)) < 200


@pytest.mark.parametrize('decoder', [classic.decode_request,
                                     classic.decode_response,
                                     envelope.decode_envelope,
                                     legacy.decode_legacy])
def test_json_nested_100000_deep_is_a_protocol_error(decoder):
    payload = b'{"a":' + b'[' * 100000 + b']' * 100000 + b'}'
    with pytest.raises(ProtocolError):
        decoder(payload)


def test_legacy_binary_emit_nested_deep_is_a_protocol_error_or_decodes():
    """Failed before: RecursionError from legacy._rebuild."""
    structure = '[' * 900 + '{"_placeholder":true,"num":0}' + ']' * 900
    payload = ('{"method":"emit","event":"e","binary":true,"data":[%s,"AAE="]}'
               % structure).encode()
    try:
        message = legacy.decode_legacy(payload)
    except ProtocolError:
        return
    value = message.args[0]
    while isinstance(value, list):
        value = value[0]
    assert value == b'\x00\x01'


# ----------------------------------------------------- map keys, item 7

@pytest.mark.parametrize('key', [b'\xc4\x01k',        # bin key
                                 b'\xc4\x00',         # empty bin key
                                 b'\xc6\x00\x00\x00\x00',  # empty bin32
                                 b'\xc7\x01\x00k',    # ArrayBuffer ext key
                                 b'\xd6\xff\x00\x00\x00\x01'])  # timestamp key
def test_non_text_map_keys_are_protocol_errors(key):
    """Failed before: decoded, then delivery raised (manager.py:62-70)."""
    item = b'\x81' + key + b'\x01'
    with pytest.raises(ProtocolError, match='map key'):
        classic.decode_broadcast(_broadcast_with(item))
    with pytest.raises(ProtocolError, match='map key'):
        classic.decode_response(_response_with(item))
    sharded = msgpack.packb({'type': 3, 'uid': 'u', 'nsp': '/', 'data': {
        'packet': {'type': 2, 'data': ['ev', 0]}, 'opts': {}}})
    with pytest.raises(ProtocolError, match='map key'):
        envelope.decode_envelope(sharded[:-1] + item)


def test_empty_bin_key_after_many_zero_bytes_is_a_protocol_error():
    item = b'\x92' + b'\xdc\x00\x20' + b'\x00' * 32 + b'\x81\xc5\x00\x00\x01'
    with pytest.raises(ProtocolError, match='map key'):
        classic.decode_broadcast(_broadcast_with(item))
    assert classic.decode_broadcast(_broadcast_with(
        b'\x92' + b'\xdc\x00\x20' + b'\x00' * 32 + b'\xc4\x00')).data == [
        'ev', [[0] * 32, b'']]


def test_int_map_keys_of_python_senders_still_decode():
    """A Python server emitting {1: 'a'} publishes an int key (python-socketio
    delivers it as JSON "1"); dropping it would lose the emit."""
    payload = classic.encode_broadcast('u', '/', ['ev', {1: 'a'}, b'\x00'])
    assert classic.decode_broadcast(payload).data == ['ev', {1: 'a'}, b'\x00']


# ------------------------------------------------- JSON specials, item 7

@pytest.mark.parametrize('number', ['NaN', 'Infinity', '-Infinity', '1e999',
                                    '-1e999'])
@pytest.mark.parametrize('decoder, template', [
    (classic.decode_request, '{"type":6,"uid":"u","data":["e",%s]}'),
    (classic.decode_response, '{"requestId":"r","data":%s}'),
    (envelope.decode_envelope,
     '{"type":9,"uid":"u","nsp":"/","data":{"packet":["e",%s]}}'),
    (legacy.decode_legacy, '{"method":"emit","event":"e","data":[%s]}'),
])
def test_non_finite_json_numbers_are_protocol_errors(number, decoder, template):
    """Failed before: NaN/Infinity decoded (JSON has none; JS clients cannot
    parse what the server would then send them)."""
    with pytest.raises(ProtocolError, match='not finite'):
        decoder((template % number).encode())


@pytest.mark.parametrize('decoder', [classic.decode_response,
                                     envelope.decode_envelope,
                                     legacy.decode_legacy])
def test_json_is_utf8_only(decoder):
    """Failed before: a '{' followed by a NUL was decoded as UTF-16."""
    payload = json.dumps({'requestId': 'r', 'method': 'emit', 'event': 'e',
                          'type': 9, 'uid': 'u', 'nsp': '/',
                          'data': {'packet': ['e']}}).encode('utf-16-le')
    with pytest.raises(ProtocolError):
        decoder(payload)


# ------------------------------------------------------- rooms, item 6

BAD_ROOMS = [None, True, 1.5, [1], {'a': 1}]


@pytest.mark.parametrize('room', BAD_ROOMS, ids=repr)
@pytest.mark.parametrize('method', ['enter_room', 'leave_room', 'close_room'])
def test_legacy_room_changes_need_a_str_or_int_room(method, room):
    """Failed before: accepted (None is python-socketio's connected room)."""
    payload = json.dumps({'method': method, 'sid': 'abc', 'room': room})
    with pytest.raises(ProtocolError, match='room'):
        legacy.decode_legacy(payload.encode())


def test_legacy_close_room_without_a_room_is_a_protocol_error():
    with pytest.raises(ProtocolError, match='room'):
        legacy.decode_legacy(b'{"method":"close_room","namespace":"/"}')


@pytest.mark.parametrize('room', BAD_ROOMS, ids=repr)
def test_legacy_emit_rooms_are_checked(room):
    for field in ('room', 'skip_sid'):
        payload = json.dumps({'method': 'emit', 'event': 'e', 'data': [1],
                              field: [room] if room is not None else [None]})
        with pytest.raises(ProtocolError):
            legacy.decode_legacy(payload.encode())


@pytest.mark.parametrize('callback', [
    [None, '/', 1], ['r', None, 1], ['r', '/', None], ['r', '/', True],
    ['r', '/', -1], ['r', '/', 1.5], [True, '/', 1],
], ids=repr)
def test_legacy_emit_callback_is_room_namespace_id(callback):
    payload = json.dumps({'method': 'emit', 'event': 'e', 'data': [1],
                          'room': 'r', 'callback': callback})
    with pytest.raises(ProtocolError, match='callback'):
        legacy.decode_legacy(payload.encode())


@pytest.mark.parametrize('fields', [
    {'sid': None, 'id': 1}, {'sid': 's', 'id': None}, {'sid': 's', 'id': True},
    {'sid': 7, 'id': 1},
], ids=repr)
def test_legacy_callback_fields_are_typed(fields):
    payload = json.dumps({'method': 'callback', 'args': [], **fields})
    with pytest.raises(ProtocolError):
        legacy.decode_legacy(payload.encode())


@pytest.mark.parametrize('message', [
    {'method': 'emit', 'event': 'e', 'data': [], 'host_id': ['x']},
    {'method': 'emit', 'event': 'e', 'data': [], 'namespace': 5},
    {'method': 'emit', 'event': 'e', 'binary': True,
     'data': [{'_placeholder': True, 'num': True}, 'AA==', 'AA==']},
], ids=['host_id', 'namespace', 'bool-placeholder'])
def test_legacy_wrong_types_are_protocol_errors(message):
    with pytest.raises(ProtocolError):
        legacy.decode_legacy(json.dumps(message).encode())


@pytest.mark.parametrize('message', [
    {'type': 2, 'uid': 'u', 'sid': None, 'room': 'r'},
    {'type': 2, 'uid': 'u', 'sid': 'abc'},
    {'type': 2, 'uid': 'u', 'sid': 'abc', 'room': None},
    {'type': 3, 'uid': 'u', 'sid': 'abc', 'room': True},
    {'type': 3, 'uid': 'u', 'sid': 'abc', 'room': 1.5},
    {'type': 4, 'uid': 'u', 'sid': None},
    {'type': 4, 'uid': 'u', 'sid': 5},
    {'type': 4, 'uid': 'u', 'opts': {}, 'close': 'yes'},
], ids=repr)
def test_legacy_request_forms_need_a_sid_and_a_room(message):
    """Failed before: a null sid, and a missing or null room, were accepted."""
    with pytest.raises(ProtocolError):
        classic.decode_request(json.dumps(message).encode())


@pytest.mark.parametrize('room', [None, True, 1.5, [1], {'a': 1}, b'r'], ids=repr)
def test_user_rooms_are_str_or_int(room):
    """Failed before: as_rooms took anything."""
    with pytest.raises(TypeError, match='room'):
        protocol.as_rooms([room])
    if room is not None and not isinstance(room, (list, tuple)):
        with pytest.raises(TypeError, match='room'):
            protocol.as_rooms(room)
    assert protocol.as_rooms(None) == ()
    assert protocol.as_rooms(['a', 2]) == ('a', 2)
    assert protocol.as_rooms('a') == ('a',)


def _ack_requests(timeout):
    in_classic = classic.encode_broadcast_request('u', 'r', '/', ['e'], [], [],
                                                {'timeout': timeout})
    sharded = protocol.dumps_msgpack({
        'type': 3, 'uid': 'u', 'nsp': '/', 'data': envelope.broadcast_data(
            ['e'], flags={'timeout': timeout}, request_id='r')})
    return in_classic, sharded


@pytest.mark.parametrize('timeout', [-1, float('nan'), float('inf'), 1e300],
                         ids=repr)
def test_an_odd_ack_timeout_number_still_delivers(timeout):
    """The receiver clamps any number to its ack_ttl: the event is kept."""
    in_classic, sharded = _ack_requests(timeout)
    assert classic.decode_request(in_classic).packet['data'] == ['e']
    request = envelope.request_of(envelope.decode_envelope(sharded))
    assert request.packet['data'] == ['e']


@pytest.mark.parametrize('timeout', [True, 'x', [1], {}], ids=repr)
def test_ack_timeout_flag_is_a_number(timeout):
    in_classic, sharded = _ack_requests(timeout)
    with pytest.raises(ProtocolError, match='timeout'):
        classic.decode_request(in_classic)
    with pytest.raises(ProtocolError, match='timeout'):
        envelope.request_of(envelope.decode_envelope(sharded))


# -------------------------------------------------- clientCount, item 15

@pytest.mark.parametrize('count', [-1, True, False, 1.0, '3', None, 2 ** 64],
                         ids=repr)
def test_client_count_is_a_non_negative_int(count):
    """Failed before: any value passed (Acks then counted -1 or True)."""
    payload = json.dumps({'type': 8, 'requestId': 'r',
                          'clientCount': count}).encode()
    with pytest.raises(ProtocolError, match='clientCount'):
        classic.decode_response(payload)
    sharded = json.dumps({'type': 11, 'uid': 'u', 'nsp': '/', 'data': {
        'requestId': 'r', 'clientCount': count}}).encode()
    with pytest.raises(ProtocolError, match='clientCount'):
        envelope.response_of(envelope.decode_envelope(sharded))


def test_client_count_missing_is_a_protocol_error():
    with pytest.raises(ProtocolError, match='clientCount'):
        classic.decode_response(b'{"type":8,"requestId":"r"}')


def test_valid_client_count_decodes():
    assert classic.decode_response(classic.encode_client_count('r', 0)) == {
        'type': 8, 'requestId': 'r', 'clientCount': 0}


# -------------------------------------------- every ack value, item 18

def test_classic_ack_carries_every_value_besides_nodes_packet():
    """Failed before: encode_broadcast_ack took no packets."""
    payload = classic.encode_broadcast_ack('r', 'one', packets=['one', 2, 'three'])
    assert msgpack.unpackb(payload) == {'type': 9, 'requestId': 'r',
                                        'packet': 'one',
                                        'packets': ['one', 2, 'three']}
    assert classic.decode_response(payload)['packets'] == ['one', 2, 'three']
    # without packets the bytes are Node's, unchanged
    assert classic.encode_broadcast_ack('r', 'one') == msgpack.packb(
        {'type': 9, 'requestId': 'r', 'packet': 'one'})


def test_sharded_ack_carries_every_value_besides_nodes_packet():
    data = envelope.response_data(MessageType.BROADCAST_ACK, 'r', 'one',
                                  packets=['one', b'\x02'])
    assert data == {'requestId': 'r', 'packet': 'one', 'packets': ['one', b'\x02']}
    payload = envelope.encode_envelope(MessageType.BROADCAST_ACK, data, 'u', '/')
    assert envelope.response_of(envelope.decode_envelope(payload)) == {
        'requestId': 'r', 'type': 9, 'packet': 'one', 'packets': ['one', b'\x02']}
    assert envelope.response_data(MessageType.BROADCAST_ACK, 'r', 'one') == {
        'requestId': 'r', 'packet': 'one'}


@pytest.mark.parametrize('packets', ['one', 1, {'a': 1}, None], ids=repr)
def test_packets_must_be_a_list(packets):
    payload = msgpack.packb({'type': 9, 'requestId': 'r', 'packet': 1,
                             'packets': packets})
    with pytest.raises(ProtocolError, match='packets'):
        classic.decode_response(payload)
    sharded = msgpack.packb({'type': 12, 'uid': 'u', 'nsp': '/', 'data': {
        'requestId': 'r', 'packet': 1, 'packets': packets}})
    with pytest.raises(ProtocolError, match='packets'):
        envelope.response_of(envelope.decode_envelope(sharded))


# ------------------------------------------------ response shapes

@pytest.mark.parametrize('response', [
    {'requestId': 'r', 'rooms': 'room'},
    {'requestId': 'r', 'sockets': 5},
    {'requestId': 'r', 'sockets': [None]},
    {'requestId': 'r', 'sockets': [{'id': 5}]},
    {'requestId': 'r', 'sockets': [{'id': 's', 'rooms': 5}]},
    {'requestId': 'r', 'sockets': [{'id': 's', 'handshake': [1]}]},
    {'requestId': 'r', 'type': 'x'},
    {'requestId': 'r', 'type': True},
], ids=repr)
def test_malformed_response_fields(response):
    """Failed before: passed to RemoteSocket, where list(5) raised TypeError."""
    with pytest.raises(ProtocolError):
        classic.decode_response(json.dumps(response).encode())


def test_answered_rooms_of_other_types_are_left_out():
    response = classic.decode_response(json.dumps({
        'requestId': 'r', 'rooms': ['a', None, 1, True, [2], 1.5],
        'sockets': [{'id': 's', 'rooms': ['s', None, {'x': 1}]}, 'sid2']}).encode())
    assert response['rooms'] == ['a', 1]
    assert response['sockets'] == [{'id': 's', 'rooms': ['s']}, 'sid2']


@pytest.mark.parametrize('suffix, number', [
    ('12', 12), ('-3', -3), ('0', 0), ('\u00b2', None), ('\u0663', None),
    ('1.5', None), ('', None), ('abc', None), ('1' * 21, None), (' 1', None),
])
def test_numeric_room_of_a_channel_suffix(suffix, number):
    """'\u00b2'.isdigit() is true and int() of it raised in the listener
    (manager.py:770); numeric_room is what the manager can use instead."""
    assert protocol.numeric_room(suffix) == number


def test_legacy_binary_flag_is_a_boolean():
    with pytest.raises(ProtocolError, match='binary'):
        legacy.decode_legacy(b'{"method":"emit","event":"e","binary":"no",'
                             b'"data":[1]}')


# ------------------------------------------------ short messages

@pytest.mark.parametrize('decoder, payload', [
    (envelope.decode_envelope,
     json.dumps({'type': 3, 'uid': ['x' * 100000], 'nsp': '/'})),
    (envelope.decode_envelope, json.dumps({'type': 'x' * 100000})),
    (classic.decode_request, json.dumps({'type': 'x' * 100000})),
    (legacy.decode_legacy, json.dumps({'method': 'x' * 100000})),
    (legacy.decode_legacy, json.dumps({'method': 'emit', 'event': ['x' * 100000]})),
    (classic.decode_broadcast, msgpack.packb(
        ['u', {'type': 'x' * 100000, 'data': ['e']}, {}])),
])
def test_error_messages_never_echo_huge_payloads(decoder, payload):
    """Failed before: the whole value was quoted."""
    if isinstance(payload, str):
        payload = payload.encode()
    with pytest.raises(ProtocolError) as info:
        decoder(payload)
    assert len(str(info.value)) < 300


# ------------------------------------------------ with a real server, item 6

def test_legacy_close_room_without_room_detaches_nobody(redis_url, key,
                                                        redis_client, caplog):
    """Failed before: every socket of / left python-socketio's connected room
    (None): the client stayed connected but received nothing any more."""
    channel = 'flask-socketio-' + key
    with PyServer(redis_url, key, legacy_channel=channel) as server:
        server.start_listening()
        with PyClient(server.url) as client:
            with caplog.at_level(logging.WARNING, logger='sio_redis_sync'):
                redis_client.publish(channel, b'{"method":"close_room",'
                                     b'"namespace":"/","host_id":"old"}')
                redis_client.publish(channel, json.dumps({
                    'method': 'close_room', 'namespace': '/', 'room': None,
                    'host_id': 'old'}))
                redis_client.publish(channel, legacy.encode_emit(
                    'old', 'via_legacy', [2], mark=False))
                assert client.wait_for('via_legacy', timeout=10) == [2]
            assert server.manager.stats()['dropped_malformed'] == 2
            assert 'room' in caplog.text and 'Traceback' not in caplog.text
            assert server.manager.is_connected(client.sid, '/')
            server.sio.emit('still_here', 1)
            assert client.wait_for('still_here') == [1]
            assert client.client.connected
