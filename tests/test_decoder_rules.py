"""What a peer's malformed message does to the decoders: a ProtocolError, never another error.

Each rule is checked on both sides of its line: the malformed value is refused, a valid
one still decodes (classic responses and requests, sharded envelopes; pure, no Redis).
"""
import json

import msgpack
import pytest

from sio_redis_sync import classic, envelope, protocol
from sio_redis_sync.envelope import MessageType, decode_envelope, response_of
from sio_redis_sync.exceptions import ProtocolError
from sio_redis_sync.classic import decode_request, decode_response


def _json(value):
    return json.dumps(value).encode()


def _sharded_response(kind, data):
    return response_of(decode_envelope(_json({'type': kind, 'uid': 'u', 'nsp': '/',
                                              'data': data})))


# ---------------------------------------------------------------- response type

@pytest.mark.parametrize('kind', ['9', True, 1.0, [9]], ids=repr)
def test_a_response_type_that_is_not_an_integer_is_refused(kind):
    with pytest.raises(ProtocolError):
        decode_response(_json({'requestId': 'r', 'type': kind, 'packet': 1}))


def test_a_response_with_a_null_or_no_type_still_decodes():
    # Node's FETCH_SOCKETS / ALL_ROOMS answers have a type; a peer's null one is no harm
    assert decode_response(b'{"requestId":"r","type":null,"rooms":["a"]}')['rooms'] == ['a']
    assert decode_response(b'{"requestId":"r","rooms":["a"]}') == {'requestId': 'r',
                                                                   'rooms': ['a']}


# ---------------------------------------------------------------- packets

@pytest.mark.parametrize('packets', [[], ['one'], ['one', 2, None]], ids=repr)
def test_packets_that_are_a_list_decode_in_both_modes(packets):
    in_classic = msgpack.packb({'type': 9, 'requestId': 'r', 'packet': 'one',
                             'packets': packets})
    assert decode_response(in_classic)['packets'] == packets
    sharded = _sharded_response(12, {'requestId': 'r', 'packet': 'one', 'packets': packets})
    assert sharded == {'requestId': 'r', 'type': 9, 'packet': 'one', 'packets': packets}


@pytest.mark.parametrize('packets', ['one', 1, {'a': 1}, None, True], ids=repr)
def test_packets_that_are_not_a_list_are_refused_in_both_modes(packets):
    with pytest.raises(ProtocolError):
        decode_response(msgpack.packb({'type': 9, 'requestId': 'r', 'packet': 1,
                                       'packets': packets}))
    with pytest.raises(ProtocolError):
        _sharded_response(12, {'requestId': 'r', 'packet': 1, 'packets': packets})


@pytest.mark.parametrize('packets', [['one'], ('one', b'\x02', None), []], ids=repr)
def test_every_value_of_an_ack_reaches_the_requester_in_both_modes(packets):
    in_classic = decode_response(classic.encode_broadcast_ack('r', 'one', packets))
    assert in_classic == {'type': 9, 'requestId': 'r', 'packet': 'one', 'packets': list(packets)}
    data = envelope.response_data(MessageType.BROADCAST_ACK, 'r', 'one', packets)
    sharded = response_of(decode_envelope(envelope.encode_envelope(
        MessageType.BROADCAST_ACK, data, 'u', '/')))
    assert sharded == {'requestId': 'r', 'type': 9, 'packet': 'one', 'packets': list(packets)}


def test_an_ack_without_packets_is_node_s_own():
    assert decode_response(classic.encode_broadcast_ack('r', 'one')) == {
        'type': 9, 'requestId': 'r', 'packet': 'one'}
    data = envelope.response_data(MessageType.BROADCAST_ACK, 'r', 'one')
    assert response_of(decode_envelope(envelope.encode_envelope(
        MessageType.BROADCAST_ACK, data, 'u', '/'))) == {'requestId': 'r', 'type': 9,
                                                         'packet': 'one'}


def test_only_a_sharded_ack_carries_packets():
    # packets is the extra field of BROADCAST_ACK alone: on other answers it is
    # not passed on (nor checked), as Node ignores it
    for kind, data in ((11, {'requestId': 'r', 'clientCount': 2}),
                       (10, {'requestId': 'r', 'packet': 'x'}),
                       (8, {'requestId': 'r', 'sockets': []})):
        response = _sharded_response(kind, {**data, 'packets': 'not a list'})
        assert 'packets' not in response
    response = _sharded_response(12, {'requestId': 'r', 'packet': 'a'})
    assert response == {'requestId': 'r', 'type': 9, 'packet': 'a'}


# ---------------------------------------------------------------- rooms in answers

def test_answered_rooms_keep_str_and_int_and_leave_out_the_rest():
    response = decode_response(_json({'requestId': 'r',
                                      'rooms': ['a', None, 3, True, 1.5, [1], {}, 'b']}))
    assert response['rooms'] == ['a', 3, 'b']
    assert decode_response(_json({'requestId': 'r', 'rooms': ['a', 0]}))['rooms'] == ['a', 0]
    assert decode_response(_json({'requestId': 'r', 'rooms': [None]}))['rooms'] == []
    assert decode_response(_json({'requestId': 'r', 'rooms': []}))['rooms'] == []


@pytest.mark.parametrize('rooms', ['a', 1, {'a': 1}, True], ids=repr)
def test_answered_rooms_that_are_not_an_array_are_refused(rooms):
    with pytest.raises(ProtocolError):
        decode_response(_json({'requestId': 'r', 'rooms': rooms}))


# ---------------------------------------------------------------- sockets in answers

SOCKET = {'id': 's1', 'handshake': {'auth': {}}, 'rooms': ['s1', 'r'], 'data': {'x': 1}}


def test_answered_sockets_as_sids_or_maps_decode_in_both_modes():
    sockets = ['sid0', dict(SOCKET), 'sid2', {'id': 's3'}]
    response = decode_response(_json({'requestId': 'r', 'type': 5, 'sockets': sockets}))
    assert response['sockets'] == sockets
    assert _sharded_response(8, {'requestId': 'r', 'sockets': sockets}) == {
        'requestId': 'r', 'sockets': sockets}


@pytest.mark.parametrize('bad', [
    None, 5, True, ['s'], {'id': 5}, {'id': None}, {'rooms': ['r']},
    {'id': 's', 'rooms': 'r'}, {'id': 's', 'rooms': 5},
    {'id': 's', 'handshake': [1]}, {'id': 's', 'handshake': 'h'},
], ids=repr)
def test_a_malformed_answered_socket_is_refused_wherever_it_is(bad):
    # first, and after a sid: every socket of the answer is checked
    for sockets in ([bad], ['sid0', bad], [dict(SOCKET), 'sid0', bad]):
        with pytest.raises(ProtocolError):
            decode_response(_json({'requestId': 'r', 'sockets': sockets}))
        with pytest.raises(ProtocolError):
            _sharded_response(8, {'requestId': 'r', 'sockets': sockets})


@pytest.mark.parametrize('sockets', ['s', 5, {'id': 's'}], ids=repr)
def test_answered_sockets_that_are_not_an_array_are_refused(sockets):
    with pytest.raises(ProtocolError):
        decode_response(_json({'requestId': 'r', 'sockets': sockets}))


def test_a_socket_rooms_of_other_types_are_left_out():
    response = decode_response(_json({'requestId': 'r', 'sockets': [
        'sid0', {'id': 's', 'rooms': ['s', None, 2, False, 'r']}, {'id': 't'},
        {'id': 'u', 'rooms': None}]}))
    assert response['sockets'] == ['sid0', {'id': 's', 'rooms': ['s', 2, 'r']}, {'id': 't'},
                                   {'id': 'u', 'rooms': None}]


# ---------------------------------------------------------------- flags

@pytest.mark.parametrize('timeout', [5000, 0, -1, 2.5, None], ids=repr)
def test_a_numeric_ack_timeout_flag_decodes_everywhere(timeout):
    flags = {'timeout': timeout, 'volatile': True}
    in_classic = classic.encode_broadcast_request('u', 'q', '/', ['ev'], ['r'], [], flags)
    assert decode_request(in_classic).flags == flags
    broadcast = classic.encode_broadcast('u', '/', ['ev'], ['r'], [], flags)
    assert classic.decode_broadcast(broadcast).flags == flags
    fetch = _json({'type': 5, 'uid': 'u', 'requestId': 'q', 'opts': {'flags': flags}})
    assert decode_request(fetch).flags == flags
    sharded = envelope.encode_envelope(MessageType.BROADCAST, envelope.broadcast_data(
        ['ev'], ['r'], [], flags), 'u', '/')
    assert envelope.broadcast_of(decode_envelope(sharded)).flags == flags


@pytest.mark.parametrize('timeout', ['5000', True, [1], {'ms': 1}], ids=repr)
def test_an_ack_timeout_flag_that_is_not_a_number_is_refused_everywhere(timeout):
    flags = {'timeout': timeout}
    with pytest.raises(ProtocolError):
        decode_request(classic.encode_broadcast_request('u', 'q', '/', ['ev'], [], [], flags))
    with pytest.raises(ProtocolError):
        classic.decode_broadcast(classic.encode_broadcast('u', '/', ['ev'], [], [], flags))
    with pytest.raises(ProtocolError):
        decode_request(_json({'type': 5, 'uid': 'u', 'requestId': 'q',
                              'opts': {'flags': flags}}))
    sharded = envelope.encode_envelope(MessageType.BROADCAST, envelope.broadcast_data(
        ['ev'], flags=flags), 'u', '/')
    with pytest.raises(ProtocolError):
        envelope.broadcast_of(decode_envelope(sharded))


@pytest.mark.parametrize('flags', [[], 'volatile', 1], ids=repr)
def test_flags_that_are_not_a_map_are_refused(flags):
    with pytest.raises(ProtocolError):
        classic.decode_broadcast(msgpack.packb(
            ['u', {'type': 2, 'data': ['ev'], 'nsp': '/'}, {'flags': flags}]))


# ---------------------------------------------------------------- user rooms

@pytest.mark.parametrize('room', [None, True, False, 1.5, b'r', ('a',), {'a': 1}], ids=repr)
def test_a_user_room_that_is_not_str_or_int_is_a_type_error(room):
    with pytest.raises(TypeError):
        protocol.as_rooms(['ok', room])
    if room is not None and not isinstance(room, tuple):
        with pytest.raises(TypeError):
            protocol.as_rooms(room)


def test_user_rooms_of_str_and_int_are_taken():
    assert protocol.as_rooms(['a', 0, -2]) == ('a', 0, -2)
    assert protocol.as_rooms(0) == (0,)
    assert protocol.as_rooms('') == ('',)


# ------------------------------------------------ requests that need an answer

ASKING = {0: {'rooms': ['r']}, 1: {}, 5: {'opts': {'rooms': [], 'except': []}}}


@pytest.mark.parametrize('kind', sorted(ASKING))
@pytest.mark.parametrize('request_id', ['absent', None, 7, ['q']], ids=repr)
def test_a_request_that_asks_for_an_answer_without_a_string_request_id_is_refused(
        kind, request_id):
    # the answer could reach no one, and our own listener would count it as a
    # malformed response (found by test_fuzz_listener); Node's sharded
    # FETCH_SOCKETS is refused the same way
    message = {'type': kind, 'uid': 'u', **ASKING[kind]}
    if request_id != 'absent':
        message['requestId'] = request_id
    with pytest.raises(ProtocolError, match='requestId'):
        decode_request(_json(message))
    message['requestId'] = 'q'
    assert decode_request(_json(message)).request_id == 'q'


@pytest.mark.parametrize('kind', [2, 3, 4, 6])
def test_a_notification_needs_no_request_id(kind):
    message = {'type': kind, 'uid': 'u', 'opts': {'rooms': [], 'except': []},
               'rooms': ['j'], 'close': False, 'data': ['ev']}
    assert decode_request(_json(message)).request_id is None
