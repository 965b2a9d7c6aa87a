"""The decoders' limits at their exact boundaries, and values that take the slow paths.

Numeric room channels (20 characters), clientCount (0 to 2**32), JSON numbers (finite),
msgpack with bytes, extensions and dates anywhere, short error messages (pure, no Redis).
"""
import json

import msgpack
import pytest

from sio_redis_sync import classic, envelope, protocol
from sio_redis_sync.envelope import decode_envelope, response_of
from sio_redis_sync.exceptions import ProtocolError
from sio_redis_sync.protocol import MAX_CLIENT_COUNT, loads_msgpack
from sio_redis_sync.classic import decode_response


# ---------------------------------------------------------------- numeric rooms

@pytest.mark.parametrize('suffix, number', [
    ('0', 0), ('12', 12), ('-3', -3), ('007', 7),
    ('9' * 20, int('9' * 20)), ('-' + '9' * 19, -int('9' * 19)),
    ('9' * 21, None), ('-' + '9' * 20, None),
    ('abc', None), ('', None), ('1a', None), ('a1', None), (' 1', None), ('1.5', None),
    ('\u00b2', None), ('\u0663', None), ('-', None),
])
def test_a_room_channel_suffix_names_a_number_up_to_20_characters(suffix, number):
    assert protocol.numeric_room(suffix) == number


def test_a_numeric_room_channel_suffix_is_found_again_as_the_room():
    channels = protocol.Channels('k', '/')
    for room in (5, -12, 10 ** 19):
        suffix = channels.room_of(channels.for_rooms([room]))
        assert protocol.numeric_room(suffix) == room


# ---------------------------------------------------------------- clientCount

def _counts(count):
    in_classic = decode_response(json.dumps({'type': 8, 'requestId': 'r',
                                          'clientCount': count}).encode())
    sharded = response_of(decode_envelope(json.dumps({
        'type': 11, 'uid': 'u', 'nsp': '/',
        'data': {'requestId': 'r', 'clientCount': count}}).encode()))
    return in_classic['clientCount'], sharded['clientCount']


@pytest.mark.parametrize('count', [0, 1, 7, MAX_CLIENT_COUNT - 1, MAX_CLIENT_COUNT])
def test_a_client_count_from_0_to_2_to_the_32_is_taken(count):
    assert MAX_CLIENT_COUNT == 2 ** 32
    assert _counts(count) == (count, count)


@pytest.mark.parametrize('count', [-1, MAX_CLIENT_COUNT + 1, 2 ** 64, True, False, 1.0,
                                   '3', None, [1], {'n': 1}], ids=repr)
def test_a_client_count_out_of_range_or_not_an_int_is_refused(count):
    with pytest.raises(ProtocolError):
        decode_response(json.dumps({'type': 8, 'requestId': 'r',
                                    'clientCount': count}).encode())
    with pytest.raises(ProtocolError):
        response_of(decode_envelope(json.dumps({
            'type': 11, 'uid': 'u', 'nsp': '/',
            'data': {'requestId': 'r', 'clientCount': count}}).encode()))


def test_a_client_count_answer_without_its_count_is_refused():
    with pytest.raises(ProtocolError):
        decode_response(b'{"type":8,"requestId":"r"}')
    with pytest.raises(ProtocolError):
        response_of(decode_envelope(b'{"type":11,"uid":"u","nsp":"/",'
                                    b'"data":{"requestId":"r"}}'))
    # other answers need no clientCount
    assert decode_response(b'{"type":9,"requestId":"r","packet":1}')['packet'] == 1
    assert decode_response(b'{"type":1,"requestId":"r","rooms":[]}')['rooms'] == []


# ---------------------------------------------------------------- JSON numbers

@pytest.mark.parametrize('text, value', [
    ('1.5', 1.5), ('-0.25', -0.25), ('1e3', 1000.0), ('1.7976931348623157e308',
                                                      1.7976931348623157e308),
    ('5e-324', 5e-324), ('1e-400', 0.0), ('12', 12), ('-12345678901234567890',
                                                      -12345678901234567890),
])
def test_finite_json_numbers_decode_as_json_parse_reads_them(text, value):
    payload = ('{"requestId":"r","type":6,"data":[%s]}' % text).encode()
    decoded = decode_response(payload)['data'][0]
    assert decoded == value and type(decoded) is type(value)
    request = classic.decode_request(('{"type":6,"uid":"u","data":["ev",%s]}'
                                       % text).encode())
    assert request.data == ['ev', value]


@pytest.mark.parametrize('text', ['NaN', 'Infinity', '-Infinity', '1e400', '-1e400',
                                  '1.8e308'])
def test_json_numbers_that_are_not_finite_are_refused(text):
    with pytest.raises(ProtocolError):
        decode_response(('{"requestId":"r","data":[%s]}' % text).encode())
    with pytest.raises(ProtocolError):
        decode_envelope(('{"type":9,"uid":"u","nsp":"/","data":{"packet":["e",%s]}}'
                         % text).encode())


@pytest.mark.parametrize('payload', [b'{', b'{"requestId":"r"', b'{"requestId":"r"} x',
                                     b'{"requestId":"\xff"}', b'{"a":' + b'[' * 100000])
def test_broken_json_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        decode_response(payload)
    with pytest.raises(ProtocolError):
        classic.decode_request(payload)


# ---------------------------------------------------------------- msgpack paths

DATE = b'\xd6\xff' + (1704164645).to_bytes(4, 'big')       # msgpack timestamp 32
ISO = '2024-01-02T03:04:05.000Z'


def _broadcast(*args):
    """msgpack of a broadcast whose arguments are the raw msgpack ``args``."""
    return (b'\x93\xa1u\x83\xa4type\x02\xa4data' + bytes([0x91 + len(args)])
            + b'\xa2ev' + b''.join(args) + b'\xa3nsp\xa1/\x80')


@pytest.mark.parametrize('raw, value', [
    (b'\xc4\x02\xd6\xff', b'\xd6\xff'),          # bin holding a timestamp marker
    (b'\xc4\x00', b''), (b'\xc5\x00\x00', b''), (b'\xc6\x00\x00\x00\x00', b''),
    (b'\xc4\x01\x00', b'\x00'),
    (b'\xc7\x00\x00', b''),                       # ext 0: ArrayBuffer
    (b'\xd4\x00\x00', None),                      # fixext1 type 0: undefined
    (b'\xd7\x00' + (0).to_bytes(8, 'big'), '1970-01-01T00:00:00.000Z'),
    (b'\xd7\x00' + (-1).to_bytes(8, 'big', signed=True), '1969-12-31T23:59:59.999Z'),
    (b'\xd7\x00' + (1704164645123).to_bytes(8, 'big'), '2024-01-02T03:04:05.123Z'),
    (b'\xd4\x05\x07', [5, b'\x07']),              # other ext: [type, bytes]
    (DATE, ISO),
    (b'\x92' + DATE + b'\xc4\x01z', [ISO, b'z']),
    (b'\x81\xa1k\x92\xc4\x00' + DATE, {'k': [b'', ISO]}),
    (b'\x81\x01' + DATE, {1: ISO}),
    (b'\x91\x91\x91' + DATE, [[[ISO]]]),
    (b'\xcd\xd6\xff', 0xd6ff),                   # a timestamp marker inside a number
    (b'\x92\xcd\xd6\xff\x00', [0xd6ff, 0]),
    (b'\x92\xcd\xc4\x00\x01', [0xc400, 1]),        # looks like an empty bin, is not
])
def test_bytes_extensions_and_dates_decode_wherever_they_are(raw, value):
    assert loads_msgpack(raw) == value
    assert classic.decode_broadcast(_broadcast(b'\x01', raw)).data == ['ev', 1, value]
    assert decode_response(b'\x82\xa9requestId\xa1r\xa6packet' + raw)['packet'] == value


def test_a_date_decodes_with_its_milliseconds():
    stamp = b'\xd7\xff' + ((123456789 << 2) << 32 | 1704164645).to_bytes(8, 'big')
    assert loads_msgpack(stamp) == '2024-01-02T03:04:05.123Z'
    assert loads_msgpack(b'\x92' + stamp + b'\xc4\x00') == ['2024-01-02T03:04:05.123Z', b'']


def test_dates_of_all_three_timestamp_sizes_in_one_message_decode():
    ts32 = b'\xd6\xff' + (1704164645).to_bytes(4, 'big')
    ts64 = b'\xd7\xff' + ((5000000 << 34) | 1704164645).to_bytes(8, 'big')
    ts96 = b'\xc7\x0c\xff' + (7000000).to_bytes(4, 'big') + (-1).to_bytes(8, 'big',
                                                                           signed=True)
    assert loads_msgpack(b'\x93' + ts32 + ts64 + ts96) == [
        ISO, '2024-01-02T03:04:05.005Z', '1969-12-31T23:59:59.007Z']
    assert classic.decode_broadcast(_broadcast(ts32, ts64, ts96)).data == [
        'ev', ISO, '2024-01-02T03:04:05.005Z', '1969-12-31T23:59:59.007Z']


def test_many_zero_bytes_before_an_empty_bin_still_find_it():
    raw = b'\x92\xdc\x00\x20' + b'\x00' * 32 + b'\xc4\x00'
    assert loads_msgpack(raw) == [[0] * 32, b'']
    raw = b'\x92\xdc\x00\x08' + b'\x00' * 8 + b'\xc4\x00'
    assert loads_msgpack(raw) == [[0] * 8, b'']
    raw = b'\x92\xdc\x00\x07' + b'\x00' * 7 + b'\xc4\x00'
    assert loads_msgpack(raw) == [[0] * 7, b'']


@pytest.mark.parametrize('key', [b'\xc4\x01k', b'\xc4\x00', b'\xc5\x00\x00',
                                 b'\xc6\x00\x00\x00\x00', b'\xc7\x01\x00k', DATE],
                         ids=['bin', 'empty-bin8', 'empty-bin16', 'empty-bin32', 'ext0',
                              'date'])
@pytest.mark.parametrize('where', ['top', 'nested-map', 'in-array', 'after-zeros'])
def test_a_map_key_of_bytes_or_a_date_is_refused_wherever_it_is(key, where):
    item = b'\x81' + key + b'\x01'
    raw = {'top': item, 'nested-map': b'\x81\xa1a' + item,
           'in-array': b'\x92\x01' + item,
           'after-zeros': b'\x92\xdc\x00\x20' + b'\x00' * 32 + item}[where]
    with pytest.raises(ProtocolError):
        loads_msgpack(raw)
    with pytest.raises(ProtocolError):
        classic.decode_broadcast(_broadcast(raw))
    with pytest.raises(ProtocolError):
        decode_response(b'\x82\xa9requestId\xa1r\xa6packet' + raw)


def test_text_and_number_keys_beside_bytes_are_taken():
    raw = b'\x83\xa1a\xc4\x01x\x01\xc4\x00\xa1b' + DATE
    assert loads_msgpack(raw) == {'a': b'x', 1: b'', 'b': ISO}


@pytest.mark.parametrize('payload', [
    b'', b'\xc1', b'\x92\x01', b'\x01\x02', b'\xc4\x05ab', b'\xd7\x00\x00',
    b'\xd6\xff\x00', b'\x91' * 100000 + b'\x01', b'\xc4\x01a\x01',
])
def test_malformed_msgpack_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        loads_msgpack(payload)


def test_a_msgpack_request_and_envelope_decode_by_their_first_byte():
    request = classic.decode_request(msgpack.packb({'type': 1, 'uid': 'u', 'requestId': 'q'}))
    assert (request.type, request.request_id) == (protocol.RequestType.ALL_ROOMS, 'q')
    sharded = msgpack.packb({'type': 12, 'uid': 'u', 'nsp': '/',
                             'data': {'requestId': 'r', 'packet': b'\x00'}})
    assert response_of(decode_envelope(sharded))['packet'] == b'\x00'
    with pytest.raises(ProtocolError):
        decode_envelope(b'')
    with pytest.raises(ProtocolError):
        classic.decode_request(b'')


# ---------------------------------------------------------------- short messages

def _message_of(decoder, payload):
    with pytest.raises(ProtocolError) as caught:
        decoder(payload)
    return str(caught.value)


@pytest.mark.parametrize('decoder, payload', [
    (decode_response, b'{"requestId":"r","clientCount":"' + b'9' * 5000 + b'","type":8}'),
    (decode_response, b'{"requestId":"r","type":"' + b't' * 5000 + b'"}'),
    (decode_response, b'{"requestId":"r' + b'x' * 5000),
    (decode_response, b'\x92' + b'\xa1x' * 5000),
    (classic.decode_request, b'{"type":2,"uid":"u","sid":"' + b's' * 5000 + b'"}'),
    (classic.decode_request, b'{"type":4,"uid":"u","opts":{},"close":"' + b'c' * 5000 + b'"}'),
    (classic.decode_request, b'{"type":4,"uid":"u","sid":' + b'9' * 4000 + b'}'),
    (classic.decode_request, b'{"type":4,"uid":"u","sid":-' + b'9' * 4000 + b'}'),
    (classic.decode_request, b'{"type":' + b'9' * 4000 + b'}'),
    (classic.decode_request, b'{"type":2,"uid":"u","sid":"s","room":["' + b'r' * 5000 + b'"]}'),
    (classic.decode_broadcast, msgpack.packb(['u', {'type': 'x' * 5000, 'data': ['e']}, {}])),
    (decode_envelope, json.dumps({'type': 3, 'uid': ['u' * 5000], 'nsp': '/'}).encode()),
    (decode_envelope, json.dumps({'type': 3, 'uid': 'u', 'nsp': ['n' * 5000]}).encode()),
    (decode_envelope, json.dumps({'type': 'x' * 5000}).encode()),
    (decode_envelope, json.dumps({'type': 3, 'uid': 7, 'nsp': '/'}).encode()),
])
def test_an_error_never_quotes_more_than_a_short_part_of_the_message(decoder, payload):
    assert len(_message_of(decoder, payload)) < 200


def test_a_sharded_error_never_quotes_a_long_request_id_or_packet_type():
    for data in ({'requestId': ['q'] * 5000},
                 {'packet': {'type': 'x' * 5000, 'data': ['e']}, 'opts': {}}):
        message = decode_envelope(json.dumps({'type': 3, 'uid': 'u', 'nsp': '/',
                                              'data': data}).encode())
        with pytest.raises(ProtocolError) as caught:
            if 'requestId' in data and isinstance(data['requestId'], list):
                envelope.request_of(message)
            else:
                envelope.broadcast_of(message)
        assert len(str(caught.value)) < 200


@pytest.mark.parametrize('value, text', [
    ('a' * 40, repr('a' * 40)), ('a' * 41, repr('a' * 40) + '...'),
    (b'b' * 40, repr(b'b' * 40)), (b'b' * 41, repr(b'b' * 40) + '...'), ('', "''"),
    (2 ** 64 - 1, repr(2 ** 64 - 1)), (-2 ** 64 + 1, repr(-2 ** 64 + 1)),
    (2 ** 64, 'a int'), (-2 ** 64, 'a int'), (10 ** 4000, 'a int'),
    (None, 'None'), (True, 'True'), (False, 'False'), (1.5, '1.5'), (0, '0'),
    (['x' * 1000], 'a list'), ({'k': 'v' * 1000}, 'a dict'), ((1,), 'a tuple'),
], ids=lambda v: repr(v)[:20])
def test_quote_gives_a_scalar_cut_to_40_and_only_the_type_of_the_rest(value, text):
    assert protocol.quote(value) == text


def test_quote_cuts_at_the_limit_it_is_given():
    assert protocol.quote('abcdef', limit=3) == "'abc'..."
    assert protocol.quote('abc', limit=3) == "'abc'"
    assert protocol.QUOTE_LIMIT == 40
