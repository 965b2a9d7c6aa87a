"""Byte-exact and robustness tests of the classic codecs (sio_redis_sync.classic)
and of what sio_redis_sync.protocol shares (pure, no Redis).

Owns the checks against the Node vectors in tests/data/node_vectors.json.
"""
import base64
import datetime
import json
import re
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sio_redis_sync.exceptions import ProtocolError
from sio_redis_sync.classic import (
    decode_broadcast, decode_request, decode_response, encode_all_rooms, encode_broadcast,
    encode_fetch_sockets, encode_remote_disconnect, encode_remote_join, encode_remote_leave,
    encode_response, encode_server_side_emit)
from sio_redis_sync.protocol import (
    Broadcast, Channels, Request, RequestType, dumps_json, dumps_msgpack, loads_msgpack)

KEY = 'socket.io'
VECTORS = json.loads(
    (Path(__file__).parent / 'data' / 'node_vectors.json').read_text('utf-8'))
DETERMINISTIC = {v['name']: v for v in VECTORS['deterministic']}
CAPTURED = VECTORS['classic']


# ---------------------------------------------------------------- helpers

def _raw(vector) -> bytes:
    return bytes.fromhex(vector['hex'])


def _det(name) -> bytes:
    return _raw(DETERMINISTIC[name])


def _is_marker(value, *names):
    return isinstance(value, dict) and any(n in value for n in names)


def _py(value):
    """A vector value as Python decodes it: {"$bin"} -> bytes, {"$date"} ->
    its ISO string, {"$undefined"} -> None in arrays and dropped from maps."""
    if _is_marker(value, '$bin'):
        return base64.b64decode(value['$bin'])
    if _is_marker(value, '$date'):
        return value['$date']
    if _is_marker(value, '$undefined'):
        return None
    if isinstance(value, list):
        return [_py(v) for v in value]
    if isinstance(value, dict):
        return {k: _py(v) for k, v in value.items()
                if not _is_marker(v, '$undefined', '$function')}
    return value


def _has_marker(value, *names) -> bool:
    if _is_marker(value, *names):
        return True
    items = value.values() if isinstance(value, dict) else \
        value if isinstance(value, list) else ()
    return any(_has_marker(v, *names) for v in items)


def _value(vector):
    """The decoded value of a captured publish (its ``text`` column)."""
    return _py(json.loads(vector['text']))


def _captured(channel_prefix):
    """Captured publishes on channels starting with ``channel_prefix``
    (Z1, the one undecodable payload, excluded)."""
    return [v for v in CAPTURED if v['channel'].startswith(channel_prefix)
            and v['encoding'] != 'unknown']


def _ids(vectors):
    return [v['name'] if 'name' in v else '%s:%s' % (v['step'], v['channel'])
            for v in vectors]


def _nsp_of(channel) -> str:
    """Namespace part of ``socket.io#N#...`` / ``socket.io-request#N#``."""
    return re.match(r'^[^#]+#(/[^#]*)#', channel).group(1)


def _broadcast_kwargs(value) -> dict:
    uid, packet, opts = value
    return dict(uid=uid, nsp=packet['nsp'], data=packet['data'],
                rooms=opts['rooms'], except_=opts['except'],
                flags=opts['flags'], emitter_order=uid == 'emitter')


def _raises_protocol_error(decoder, payload):
    with pytest.raises(ProtocolError) as info:
        decoder(payload)
    assert info.type is ProtocolError, info.type


BROADCASTS = _captured(KEY + '#')
REQUESTS = _captured(KEY + '-request#')
RESPONSES = _captured(KEY + '-response#')
Z1 = next(v for v in CAPTURED if v['step'] == 'Z1')


def test_vector_file_has_the_expected_steps():
    steps = {v['step'] for v in CAPTURED}
    wanted = {'E1', 'E8', 'E10b', 'E11b', 'X1', 'X2', 'X2b', 'S1', 'S17',
              'P1', 'P6', 'D1', 'D3', 'Z1'}
    assert wanted <= steps
    assert len(BROADCASTS) >= 20 and len(REQUESTS) >= 20
    assert len(RESPONSES) >= 20 and len(DETERMINISTIC) >= 30


# ---------------------------------------------------------------- encoding

@pytest.mark.parametrize('name', [
    'emitter.broadcast.all', 'emitter.broadcast.room',
    'emitter.broadcast.flags'])
def test_emitter_broadcast_vectors(name):
    kwargs = _broadcast_kwargs(_py(DETERMINISTIC[name]['value']))
    assert kwargs.pop('emitter_order') is True
    assert encode_broadcast(emitter_order=True, **kwargs) == _det(name)
    channel = re.search(r'channel (\S+)', DETERMINISTIC[name]['description'])
    if channel:
        assert Channels(KEY, kwargs['nsp']).for_rooms(kwargs['rooms']) \
            == channel.group(1).rstrip(';')


@pytest.mark.parametrize('name', [
    'adapter.broadcast.room', 'adapter.broadcast.socket.to',
    'adapter.broadcast.binary', 'adapter.broadcast.bin16'])
def test_adapter_broadcast_vectors(name):
    kwargs = _broadcast_kwargs(_py(DETERMINISTIC[name]['value']))
    assert kwargs.pop('emitter_order') is False
    assert encode_broadcast(**kwargs) == _det(name)


def test_binary_vectors_carry_bytes():
    binary = _py(DETERMINISTIC['adapter.broadcast.binary']['value'])
    assert binary[1]['data'][1:] == [b'\x01\x02\x03', {'nested': b'\xff\x00'}]
    big = _py(DETERMINISTIC['adapter.broadcast.bin16']['value'])[1]['data'][1]
    assert big == b'\x07' * 300
    assert b'\xc5\x01\x2c' + big in _det('adapter.broadcast.bin16')


# X1 is hand-made without nsp and flags: nothing Python should produce
_REENCODABLE = [v for v in BROADCASTS if v['step'] != 'X1']


@pytest.mark.parametrize('vector', _REENCODABLE, ids=_ids(_REENCODABLE))
def test_captured_broadcasts_reencode(vector):
    """E1-E8, E10b, E11b (emitter order) and the Node servers' broadcasts."""
    kwargs = _broadcast_kwargs(_value(vector))
    assert encode_broadcast(**kwargs) == _raw(vector)
    assert Channels(KEY, kwargs['nsp']).for_rooms(kwargs['rooms']) \
        == vector['channel']


def test_emitter_captures_are_covered():
    steps = {v['step'] for v in BROADCASTS if _value(v)[0] == 'emitter'}
    assert steps == {'E1', 'E2', 'E3', 'E4', 'E5', 'E6', 'E7', 'E8', 'E10b',
                     'E11b'}


def test_encoded_broadcast_never_has_type_5_or_id():
    payload = encode_broadcast('u', '/', ['file', b'\x01\x02',
                                          {'nested': bytearray(b'\xff')}])
    _, packet, _ = msgpack.unpackb(payload, raw=False)
    assert list(packet) == ['type', 'data', 'nsp']
    assert packet['type'] == 2 and 'id' not in packet
    assert packet['data'] == ['file', b'\x01\x02', {'nested': b'\xff'}]


def test_broadcast_rooms_are_deduplicated_in_order():
    payload = encode_broadcast('u', '/', ['e'], rooms=['b', 'a', 'b'],
                               except_=('x', 'x'))
    opts = msgpack.unpackb(payload, raw=False)[2]
    assert opts == {'rooms': ['b', 'a'], 'except': ['x'], 'flags': {}}


@pytest.mark.parametrize('arg', [
    {1, 2}, datetime.datetime(2024, 1, 2, 3, 4, 5), 2 ** 64, -2 ** 63 - 1,
    object()], ids=['set', 'datetime', '2**64', '-2**63-1', 'object'])
def test_unencodable_args_raise_type_error(arg):
    with pytest.raises(TypeError):
        encode_broadcast('u', '/', ['ev', {'nested': [arg]}])


def test_emitter_remote_request_vectors():
    assert encode_remote_join(None, ['room1'], [], ['room2']) \
        == _det('emitter.request.socketsJoin')
    assert encode_remote_leave(None, ['room1'], [], ['room2']) \
        == _det('emitter.request.socketsLeave')
    assert encode_remote_disconnect(None, [], [], False) \
        == _det('emitter.request.disconnectSockets')
    assert encode_remote_join('AbC-_9', ['room1'], [], ['room2']) \
        == _det('classic.request.socketsJoin')
    # close is always a JSON boolean, whatever truthy/falsy value is given
    assert encode_remote_disconnect(None, (), ()) \
        == encode_remote_disconnect(None, [], [], None) \
        == _det('emitter.request.disconnectSockets')
    assert b'"close":true}' in encode_remote_disconnect(None, [], [], 1)


def test_cluster_request_vectors():
    assert encode_all_rooms('AbC-_9', 'Req123') == _det('classic.request.allRooms')
    assert encode_fetch_sockets('AbC-_9', 'Req123', ['room1']) \
        == _det('classic.request.fetchSockets')
    assert encode_server_side_emit('AbC-_9', ['ping'], 'Req123') \
        == _det('classic.request.serverSideEmit.ack')
    assert encode_response({'requestId': 'Req123', 'rooms': ['room1', 'sid1']}) \
        == _det('classic.response.allRooms')


_CAPTURED_ASKS = [v for v in REQUESTS if v['encoding'] == 'json'
                  and json.loads(v['text'])['type'] in (1, 5)]


@pytest.mark.parametrize('vector', _CAPTURED_ASKS, ids=_ids(_CAPTURED_ASKS))
def test_captured_fetch_and_all_rooms_requests_reencode(vector):
    message = json.loads(vector['text'])
    if message['type'] == 1:
        encoded = encode_all_rooms(message['uid'], message['requestId'])
    else:
        encoded = encode_fetch_sockets(message['uid'], message['requestId'],
                                       message['opts']['rooms'],
                                       message['opts']['except'])
    assert encoded == _raw(vector)


_REMOTE = [v for v in REQUESTS if v['encoding'] == 'json'
           and json.loads(v['text'])['type'] in (2, 3, 4)
           and 'sid' not in json.loads(v['text'])]


@pytest.mark.parametrize('vector', _REMOTE, ids=_ids(_REMOTE))
def test_captured_remote_requests_reencode(vector):
    """E10, E11, X2, S12, S13, D1-D3."""
    msg = json.loads(vector['text'])
    rooms, except_ = msg['opts']['rooms'], msg['opts']['except']
    if msg['type'] == 4:
        payload = encode_remote_disconnect(msg.get('uid'), rooms, except_,
                                           msg['close'])
    else:
        encoder = encode_remote_join if msg['type'] == 2 \
            else encode_remote_leave
        payload = encoder(msg.get('uid'), rooms, except_, msg['rooms'])
    assert payload == _raw(vector)


def test_server_side_emit_vectors():
    assert encode_server_side_emit('emitter', ['ping', 1, {'a': 'é'}]) \
        == _det('emitter.request.serverSideEmit')
    assert encode_server_side_emit('AbC-_9', ['ping'], 'Req123') \
        == _det('classic.request.serverSideEmit.ack')
    assert encode_server_side_emit('AbC-_9', ['bin', b'\x01\x02\x03']) \
        == _det('classic.serverSideEmit.buffer')


def test_captured_server_side_emit_with_buffer_reencodes():
    s6b = next(v for v in REQUESTS if v['step'] == 'S6b')
    assert encode_server_side_emit('BYTbY1', ['s6b_bin', b'\x01\x02\x03']) \
        == _raw(s6b)


_SSE = [v for v in REQUESTS if json.loads(v['text'])['type'] == 6]


@pytest.mark.parametrize('vector', _SSE, ids=_ids(_SSE))
def test_captured_server_side_emits_reencode(vector):
    msg = json.loads(vector['text'])
    assert encode_server_side_emit(msg['uid'], msg['data'],
                                   msg.get('requestId')) == _raw(vector)


_JSON_RESPONSES = [v for v in RESPONSES if v['encoding'] == 'json']


@pytest.mark.parametrize('vector', _JSON_RESPONSES, ids=_ids(_JSON_RESPONSES))
def test_captured_json_responses_reencode(vector):
    assert encode_response(json.loads(vector['text'])) == _raw(vector)


_JSON_DET = [v for v in VECTORS['deterministic'] if v['encoding'] == 'json']


@pytest.mark.parametrize('vector', _JSON_DET, ids=_ids(_JSON_DET))
def test_json_vectors_reencode(vector):
    assert dumps_json(json.loads(vector['text'])) == _raw(vector)


@pytest.mark.parametrize('number', [float('nan'), float('inf'), -float('inf')],
                         ids=['nan', 'inf', '-inf'])
def test_json_never_carries_non_finite_numbers(number):
    # NaN / Infinity are not JSON (Node's JSON.parse rejects them): they are
    # refused at the call like any other value that cannot be sent.
    with pytest.raises(TypeError):
        encode_server_side_emit('u', ['ev', number])


_MSGPACK_DET = [v for v in VECTORS['deterministic']
                if v['encoding'] == 'msgpack'
                and not _has_marker(v['value'], '$date', '$undefined',
                                    '$function')]


@pytest.mark.parametrize('vector', _MSGPACK_DET, ids=_ids(_MSGPACK_DET))
def test_msgpack_vectors_reencode(vector):
    assert dumps_msgpack(_py(vector['value'])) == _raw(vector)


# ---------------------------------------------------------------- decoding

@pytest.mark.parametrize('vector', BROADCASTS, ids=_ids(BROADCASTS))
def test_captured_broadcasts_decode(vector):
    uid, packet, opts = _value(vector)
    rooms = tuple(opts.get('rooms', ()))
    expected = Broadcast(uid=uid, nsp=packet.get('nsp', '/'),
                         data=packet['data'], rooms=rooms,
                         except_=tuple(opts.get('except', ())),
                         flags=opts.get('flags', {}))
    assert decode_broadcast(_raw(vector)) == expected
    room = Channels(KEY, expected.nsp).room_of(vector['channel'])
    assert room == (rooms[0] if len(rooms) == 1 else None)


def test_x1_without_nsp_and_flags_decodes_with_defaults():
    x1 = next(v for v in BROADCASTS if v['step'] == 'X1')
    assert decode_broadcast(_raw(x1)) == Broadcast(
        uid='py', nsp='/', data=['x1_raw', b'\x00\x01'], rooms=(),
        except_=(), flags={})


def test_broadcast_flags_decode():
    e8 = next(v for v in BROADCASTS if v['step'] == 'E8')
    assert decode_broadcast(_raw(e8)).flags == {'volatile': True,
                                                 'compress': False}
    s17 = next(v for v in BROADCASTS if v['step'] == 'S17')
    assert decode_broadcast(_raw(s17)).flags == {'expectSingleResponse': True}


def _expected_request(msg) -> Request:
    kind = RequestType(msg['type'])
    fields = {'type': kind, 'uid': msg.get('uid'),
              'request_id': msg.get('requestId')}
    if 'sid' in msg:  # legacy per-socket form
        fields.update(sid=msg['sid'], room=msg.get('room'))
    elif 'opts' in msg:
        fields.update(rooms=tuple(msg['opts']['rooms']),
                      except_=tuple(msg['opts']['except']),
                      flags=msg['opts'].get('flags', {}))
    if kind in (RequestType.REMOTE_JOIN, RequestType.REMOTE_LEAVE) \
            and 'sid' not in msg:
        fields['rooms_arg'] = tuple(msg['rooms'])
    if kind is RequestType.SOCKETS:
        fields['rooms'] = tuple(msg['rooms'])
    if kind is RequestType.REMOTE_DISCONNECT:
        fields['close'] = msg['close']
    if kind is RequestType.SERVER_SIDE_EMIT:
        fields['data'] = msg['data']
    if kind is RequestType.BROADCAST:
        fields['packet'] = msg['packet']
    return Request(**fields)


@pytest.mark.parametrize('vector', REQUESTS, ids=_ids(REQUESTS))
def test_captured_requests_decode(vector):
    assert decode_request(_raw(vector)) == _expected_request(_value(vector))


def test_request_channels_and_types_are_covered():
    assert {_nsp_of(v['channel']) for v in REQUESTS} == {'/', '/admin'}
    kinds = {json.loads(v['text'])['type'] for v in REQUESTS}
    assert kinds == {0, 1, 2, 3, 4, 5, 6, 7}
    assert {v['encoding'] for v in REQUESTS} == {'json', 'msgpack'}
    for vector in REQUESTS:
        assert Channels(KEY, _nsp_of(vector['channel'])).request \
            == vector['channel']


def test_msgpack_remote_join_x2b_decodes():
    x2b = next(v for v in REQUESTS if v['step'] == 'X2b')
    assert _raw(x2b)[:1] != b'{'
    assert decode_request(_raw(x2b)) == Request(
        type=RequestType.REMOTE_JOIN, rooms=('gCTpv19IcLWmR02jAAAC',),
        except_=(), rooms_arg=('room6',))


def test_legacy_join_p6_decodes():
    p6 = next(v for v in REQUESTS if v['step'] == 'P6')
    request = decode_request(_raw(p6))
    assert (request.type, request.sid, request.room, request.request_id) == (
        RequestType.REMOTE_JOIN, 'gCTpv19IcLWmR02jAAAC', 'room7', 'pyreq06')


@pytest.mark.parametrize('vector', RESPONSES, ids=_ids(RESPONSES))
def test_captured_responses_decode(vector):
    assert decode_response(_raw(vector)) == _value(vector)


@pytest.mark.parametrize('name', sorted(
    n for n in DETERMINISTIC
    if n.startswith(('classic.request', 'emitter.request'))
    or n in ('classic.serverSideEmit.buffer',
             'adapter.broadcast.withack.request')))
def test_deterministic_requests_decode(name):
    value = _py(DETERMINISTIC[name].get('value') or
                json.loads(DETERMINISTIC[name]['text']))
    assert decode_request(_det(name)) == _expected_request(value)


@pytest.mark.parametrize('name', sorted(
    n for n in DETERMINISTIC if n.startswith('classic.response')
    or n == 'adapter.broadcast_ack.response'))
def test_deterministic_responses_decode(name):
    value = _py(DETERMINISTIC[name].get('value') or
                json.loads(DETERMINISTIC[name]['text']))
    assert decode_response(_det(name)) == value


@pytest.mark.parametrize('name, expected', [
    ('date.ms', '2024-01-02T03:04:05.678Z'),
    ('date.s', '2024-01-02T03:04:05.000Z'),
    ('undefined.in.array', [None, 1]),
    ('undefined.in.map', {'b': 1}),
    ('typedarray.uint8', b'\x09\x08'),
])
def test_js_specials_decode(name, expected):
    assert loads_msgpack(_det(name)) == expected
    assert _py(DETERMINISTIC[name]['value']) == expected


@pytest.mark.parametrize('payload, expected', [
    (b'\x92\xd4\x00\x00\x01', [None, 1]),
    (b'\xd7\x00' + (1704164645678).to_bytes(8, 'big'),
     '2024-01-02T03:04:05.678Z'),
    (b'\xd7\x00' + (-1).to_bytes(8, 'big', signed=True),
     '1969-12-31T23:59:59.999Z'),
    (b'\xc7\x03\x00abc', b'abc'),
    (b'\xd4\x05\x01', [5, b'\x01']),
    (b'\xc7\x02\x07\x01\x02', [7, b'\x01\x02']),
    (b'\xca\x3f\xc0\x00\x00', 1.5),
    (b'\xc7\x0c\xff' + (678000000).to_bytes(4, 'big')
     + (1704164645).to_bytes(8, 'big'), '2024-01-02T03:04:05.678Z'),
], ids=['undefined', 'legacy-date', 'legacy-date-negative', 'arraybuffer',
        'fixext-other', 'ext8-other', 'float32', 'timestamp96'])
def test_notepack_extensions_decode(payload, expected):
    """PROTOCOL.md 2.3 decoding specifics (not produced by any vector)."""
    assert loads_msgpack(payload) == expected


def test_dates_inside_a_broadcast_become_iso_strings():
    payload = encode_broadcast('u', '/', ['ev', {'at': 0}]).replace(
        b'\xa2at\x00', b'\xa2at' + _det('date.ms'))
    assert decode_broadcast(payload).data == [
        'ev', {'at': '2024-01-02T03:04:05.678Z'}]


@pytest.mark.parametrize('name', sorted(
    n for n in DETERMINISTIC if n.startswith('scalars.')))
def test_scalars_roundtrip(name):
    value = loads_msgpack(_det(name))
    assert value == DETERMINISTIC[name]['value']
    assert dumps_msgpack(value) == _det(name)


# ------------------------------------------------------- malformed payloads

def test_z1_json_on_the_broadcast_channel_is_a_protocol_error():
    assert Z1['channel'] == KEY + '#/#' and _raw(Z1)[:1] == b'['
    _raises_protocol_error(decode_broadcast, _raw(Z1))


_ALL_PAYLOADS = [(v, decode_broadcast) for v in BROADCASTS] + \
    [(v, decode_request) for v in REQUESTS] + \
    [(v, decode_response) for v in RESPONSES]


@pytest.mark.parametrize('vector, decoder', _ALL_PAYLOADS,
                         ids=_ids([v for v, _ in _ALL_PAYLOADS]))
def test_every_truncation_is_a_protocol_error(vector, decoder):
    payload = _raw(vector)
    decoder(payload)
    for end in range(len(payload)):
        _raises_protocol_error(decoder, payload[:end])


@pytest.mark.parametrize('vector, decoder', _ALL_PAYLOADS,
                         ids=_ids([v for v, _ in _ALL_PAYLOADS]))
def test_trailing_bytes_are_a_protocol_error(vector, decoder):
    for tail in (b'\x00', b'\xc0', b'{}'):
        _raises_protocol_error(decoder, _raw(vector) + tail)


_GOOD_PACKET = {'type': 2, 'data': ['ev', 1], 'nsp': '/'}
_GOOD_OPTS = {'rooms': ['r'], 'except': [], 'flags': {}}


def _bcast(uid='u', packet=None, opts=None, drop=(), **changes) -> bytes:
    """A msgpack broadcast built from good parts, with ``changes`` applied
    to the packet (``p_*``) or opts (``o_*``) and ``drop`` keys removed."""
    packet = dict(_GOOD_PACKET) if packet is None else packet
    opts = dict(_GOOD_OPTS) if opts is None else opts
    for key, value in changes.items():
        (packet if key.startswith('p_') else opts)[key[2:]] = value
    for key in drop:
        packet.pop(key, None)
    return msgpack.packb([uid, packet, opts], use_bin_type=True)


def test_bcast_helper_builds_a_valid_broadcast():
    assert decode_broadcast(_bcast()) == Broadcast(
        uid='u', nsp='/', data=['ev', 1], rooms=('r',), flags={})


@pytest.mark.parametrize('payload', [
    msgpack.packb(['u', _GOOD_PACKET]),
    msgpack.packb(['u']),
    msgpack.packb([]),
    msgpack.packb({'uid': 'u', 'packet': _GOOD_PACKET}),
    msgpack.packb('u'),
    msgpack.packb(None),
    _bcast(uid=7),
    _bcast(uid=None),
    _bcast(packet='packet'),
    _bcast(packet=[2, ['ev']]),
    _bcast(opts='opts'),
    _bcast(opts=[[], []]),
    _bcast(p_type=5),
    _bcast(p_type='2'),
    _bcast(drop=['type']),
    _bcast(drop=['data']),
    _bcast(p_data=[]),
    _bcast(p_data='ev'),
    _bcast(p_data={'0': 'ev'}),
    _bcast(p_data=[1, 'x']),
    _bcast(p_data=[None]),
    _bcast(p_data=[b'ev']),
    _bcast(p_nsp=1),
    _bcast(o_rooms='room1'),
    _bcast(o_rooms={'room1': True}),
    _bcast(o_rooms=[{'a': 1}]),
    _bcast(o_rooms=[['a']]),
    _bcast(o_rooms=[True]),
    _bcast(o_except='x'),
    _bcast(o_except=[None]),
    _bcast(o_flags=['volatile']),
    _bcast(o_flags='volatile'),
], ids=lambda p: p.hex()[:40])
def test_malformed_broadcasts(payload):
    _raises_protocol_error(decode_broadcast, payload)


def _invalid_utf8_broadcast() -> bytes:
    e1 = _raw(next(v for v in BROADCASTS if v['step'] == 'E1'))
    assert e1[1:9] == b'\xa7emitter'
    return e1[:2] + b'\xff' * 7 + e1[9:]


@pytest.mark.parametrize('payload', [
    _invalid_utf8_broadcast(),
    b'\x93\xa1\xff\x80\x80',
    b'',
    b'\xc1',
    b'\x93',
    b'\xd9\x05ab',
    b'\xc5\x01\x2c\x00',
], ids=lambda p: p.hex()[:40])
def test_undecodable_broadcasts(payload):
    _raises_protocol_error(decode_broadcast, payload)


def _req(**fields) -> bytes:
    return json.dumps(fields, separators=(',', ':')).encode()


@pytest.mark.parametrize('payload', [
    _req(type=42), _req(type='2'), _req(type=True), _req(type=False),
    _req(type=None), _req(type=-1), _req(type=8), _req(type=9),
    _req(uid='u'), b'{}',
    msgpack.packb({'type': 42}), msgpack.packb({'type': '2'}),
    msgpack.packb({'type': True}), msgpack.packb({'type': 2.0}),
], ids=lambda p: p.hex()[:40])
def test_unknown_request_types(payload):
    _raises_protocol_error(decode_request, payload)


@pytest.mark.parametrize('payload', [
    msgpack.packb([2, {'rooms': []}]), msgpack.packb('request'),
    msgpack.packb(2), msgpack.packb(None), msgpack.packb(True),
    b'[{"type":2,"opts":{"rooms":[],"except":[]},"rooms":["a"]}]',
    b'["type",1]', b'"{\\"type\\":1}"', b'2', b'null',
], ids=lambda p: p.hex()[:40])
def test_non_map_requests(payload):
    _raises_protocol_error(decode_request, payload)


@pytest.mark.parametrize('payload', [
    _req(type=2, opts='room1', rooms=['a']),
    _req(type=2, opts={'rooms': 'room1', 'except': []}, rooms=['a']),
    _req(type=2, opts={'rooms': [], 'except': [{}]}, rooms=['a']),
    _req(type=2, opts={'rooms': [], 'except': []}, rooms='a'),
    _req(type=3, opts={'rooms': [], 'except': []}, rooms=[['a']]),
    _req(type=4, opts={'rooms': [None], 'except': []}, close=False),
    _req(type=5, requestId='r', opts={'rooms': {}, 'except': []}),
    _req(type=0, requestId='r', rooms='room2'),
    _req(type=6, uid='u'),
    _req(type=6, uid='u', data=[]),
    _req(type=6, uid='u', data='ping'),
    _req(type=6, uid='u', data=[1, 'ping']),
    _req(type=6, uid=7, data=['ping']),
    _req(type=6, uid='u', requestId=7, data=['ping']),
    _req(type=1, uid='u', requestId=['r']),
    _req(type=2, uid='u', requestId='r', sid=1, room='r'),
    msgpack.packb({'type': 7, 'uid': 'u', 'requestId': 'r',
                   'opts': {'rooms': [], 'except': [], 'flags': {}}}),
    msgpack.packb({'type': 7, 'uid': 'u', 'requestId': 'r',
                   'packet': {'type': 2, 'data': [], 'nsp': '/'}}),
    msgpack.packb({'type': 7, 'uid': 'u', 'requestId': 'r',
                   'packet': ['ev']}),
    msgpack.packb({'type': 7, 'uid': 'u', 'requestId': 'r',
                   'packet': {'data': ['ev']}, 'opts': {'flags': []}}),
], ids=lambda p: p.hex()[:40])
def test_malformed_requests(payload):
    _raises_protocol_error(decode_request, payload)


@pytest.mark.parametrize('payload', [
    b'{}', _req(type=6, data='pong'), _req(requestId=7),
    _req(requestId=None), _req(requestId=['r']),
    msgpack.packb({'type': 9, 'packet': 'answer'}),
    msgpack.packb({'requestId': b'r'}),
    msgpack.packb(['r']), msgpack.packb('r'),
    b'[{"requestId":"r"}]', b'"r"', b'{"requestId":"r"',
], ids=lambda p: p.hex()[:40])
def test_malformed_responses(payload):
    _raises_protocol_error(decode_response, payload)


@pytest.mark.parametrize('decoder', [decode_request, decode_response])
@pytest.mark.parametrize('payload', [
    b'{"uid":"\xff","type":1,"requestId":"r"}',
    b'{"requestId":"\xc3\x28","type":1}',
    b'\x82\xa4type\x01\xa9requestId\xa1\xff',
    b'\x82\xa1\xff\x01\xa9requestId\xa1r',
], ids=lambda p: p.hex()[:40])
def test_invalid_utf8(payload, decoder):
    _raises_protocol_error(decoder, payload)


@pytest.mark.parametrize('decoder', [decode_request, decode_response])
def test_json_array_and_z1_are_not_requests_or_responses(decoder):
    _raises_protocol_error(decoder, _raw(Z1))
    _raises_protocol_error(decoder, b'[]')


# ---------------------------------------------------------------- fuzzing

_SEEDS = sorted({_raw(v) for v in CAPTURED} |
                {_raw(v) for v in VECTORS['deterministic']})
_DECODERS = ((decode_broadcast, Broadcast), (decode_request, Request),
             (decode_response, dict))


def _decoders_are_total(payload):
    """Each decoder returns its own type or raises ProtocolError, nothing
    else (ProtocolError subclasses are not allowed either)."""
    for decoder, result_type in _DECODERS:
        try:
            result = decoder(payload)
        except ProtocolError as exc:
            assert type(exc) is ProtocolError
        else:
            assert isinstance(result, result_type)
            if isinstance(result, Broadcast):
                assert isinstance(result.nsp, str)
                assert isinstance(result.data[0], str)
                assert isinstance(result.rooms, tuple)
                assert isinstance(result.flags, dict)


@st.composite
def _mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(['flip', 'insert', 'delete', 'truncate']))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 'flip' and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == 'insert':
            data[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        elif op == 'delete' and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == 'truncate':
            del data[pos:]
    return bytes(data)


_FUZZ = settings(max_examples=1500, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=120))
def test_fuzz_random_bytes(payload):
    _decoders_are_total(payload)


@_FUZZ
@given(st.one_of(st.binary(max_size=60).map(lambda b: b'{' + b),
                 st.binary(max_size=60).map(lambda b: b'\x93' + b),
                 st.binary(max_size=60).map(lambda b: b'\x85' + b)))
def test_fuzz_random_bytes_after_a_valid_first_byte(payload):
    _decoders_are_total(payload)


@_FUZZ
@given(_mutated())
def test_fuzz_mutated_vectors(payload):
    _decoders_are_total(payload)


_LEAVES = st.one_of(st.none(), st.booleans(),
                    st.integers(-2 ** 63, 2 ** 64 - 1), st.floats(),
                    st.text(max_size=8), st.binary(max_size=8))
_VALUES = st.recursive(_LEAVES, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.sampled_from(['type', 'data', 'nsp', 'rooms', 'except',
                                     'flags', 'uid', 'requestId', 'opts',
                                     'packet', 'sid', 'room', 'close', 'x']),
                    children, max_size=5)), max_leaves=12)


@_FUZZ
@given(_VALUES, st.sampled_from(['uid', 'packet', 'opts', 'type', 'data',
                                  'nsp', 'rooms', 'except', 'flags']),
       st.sampled_from(_SEEDS))
def test_fuzz_structured_values(value, field_name, seed):
    """Random values, and valid vectors with one field replaced by one."""
    _decoders_are_total(msgpack.packb(value, use_bin_type=True))
    try:
        message = msgpack.unpackb(seed, raw=False, strict_map_key=False)
    except ValueError:
        message = json.loads(seed)
    if isinstance(message, list) and len(message) == 3 \
            and isinstance(message[1], dict) and isinstance(message[2], dict):
        index = {'uid': 0, 'packet': 1, 'opts': 2}.get(field_name)
        if index is not None:
            message[index] = value
        else:
            (message[1] if field_name in _GOOD_PACKET else message[2])[
                field_name] = value
    elif isinstance(message, dict):
        message[field_name] = value
        opts = message.get('opts')
        if isinstance(opts, dict) and field_name in _GOOD_OPTS:
            opts[field_name] = value
    _decoders_are_total(msgpack.packb(message, use_bin_type=True))
    try:
        _decoders_are_total(dumps_json(message))
    except TypeError:  # a seed's Timestamp / ExtType has no JSON form
        pass


# ---------------------------------------------------------------- channels

def test_channel_names():
    channels = Channels(KEY, '/')
    assert channels.broadcast == 'socket.io#/#'
    assert channels.request == 'socket.io-request#/#'
    assert channels.response == 'socket.io-response#/#'
    assert channels.response_for('AbC-_9') == 'socket.io-response#/#AbC-_9#'
    assert channels.broadcast_pattern == 'socket.io#/#*'
    assert Channels(KEY, '/admin').for_rooms(['adminroom']) \
        == 'socket.io#/admin#adminroom#'
    assert channels.for_rooms(['a', 'b']) == channels.for_rooms([]) \
        == 'socket.io#/#'


def _redis_glob(pattern) -> 're.Pattern':
    """Regex of a Redis glob (stringmatchlen subset: ``\\x``, ``*``, ``?``,
    ``[...]``)."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == '\\' and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 1
        elif char == '*':
            out.append('.*')
        elif char == '?':
            out.append('.')
        elif char == '[':
            end = pattern.index(']', i + 1)
            out.append('[%s]' % re.escape(pattern[i + 1:end]))
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile('^%s$' % ''.join(out), re.S)


@pytest.mark.parametrize('key, nsp', [
    ('a*b[c]', '/'), ('k?y', '/a*'), ('back\\slash', '/'), (KEY, '/admin')])
def test_broadcast_pattern_escapes_glob_characters(key, nsp):
    channels = Channels(key, nsp)
    pattern = _redis_glob(channels.broadcast_pattern)
    for channel in (channels.broadcast, channels.for_rooms(['room1']),
                    channels.for_rooms(['a#b*'])):
        assert pattern.match(channel), (channels.broadcast_pattern, channel)
    unescaped = channels.broadcast
    for char in '*?[]\\':
        unescaped = unescaped.replace(char, 'X')
    if unescaped != channels.broadcast:
        assert not pattern.match(unescaped + 'room1#')
    assert not pattern.match(Channels(key, nsp + 'x').broadcast)


def test_broadcast_pattern_of_a_glob_key_is_escaped_exactly():
    assert Channels('a*b[c]', '/').broadcast_pattern == 'a\\*b\\[c\\]#/#*'


@pytest.mark.parametrize('room', [
    'room1', 'a#b', '#', '##', 'TmeedvAFo-dOG1k8AAAA', 'é😀', 'sp ace'])
def test_room_of_roundtrips_for_rooms(room):
    for channels in (Channels(KEY, '/'), Channels('a*b[c]', '/admin')):
        assert channels.room_of(channels.for_rooms([room])) == room


def test_room_of_is_none_without_a_room():
    channels = Channels(KEY, '/')
    assert channels.room_of(channels.broadcast) is None
    assert channels.room_of('socket.io#/admin#room1#') is None
    assert channels.room_of('socket.io-request#/#') is None
    assert channels.room_of('socket.io#/#room1') is None
