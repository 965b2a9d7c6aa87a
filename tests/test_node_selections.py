"""Node's own messages that select sockets, byte for byte: rooms, except lists, flags.

Owns the checks against tests/data/selection_vectors.json, captured from the pinned
Node peers by tests/node/capture_selections.js (classic and sharded adapter, emitter).
"""
import json
from pathlib import Path

import pytest

from sio_redis_sync import classic, envelope
from sio_redis_sync.envelope import MessageType, decode_envelope, encode_envelope
from sio_redis_sync.protocol import RequestType
from sio_redis_sync.classic import decode_broadcast, decode_request

VECTORS = json.loads((Path(__file__).parent / 'data' / 'selection_vectors.json')
                     .read_text('utf-8'))['captured']


def _one(step, channel_part=''):
    """The bytes of step ``step`` published on a channel containing ``channel_part``."""
    found = [v for v in VECTORS if v['step'] == step and channel_part in v['channel']]
    assert len(found) == 1, (step, channel_part, found)
    vector = found[0]
    raw = bytes.fromhex(vector['hex'])
    assert (raw[:1] == b'{') == (vector['encoding'] == 'json')
    return raw


def _request_and_answer(step):
    """The bytes of step ``step`` on the main channel and on the requester's own."""
    found = [v for v in VECTORS if v['step'] == step]
    main = [bytes.fromhex(v['hex']) for v in found if v['channel'].endswith('#/#')]
    own = [bytes.fromhex(v['hex']) for v in found if not v['channel'].endswith('#/#')]
    assert len(main) == len(own) == 1, found
    return main[0], own[0]


def test_the_capture_has_every_step():
    steps = {v['step'] for v in VECTORS}
    assert steps == {'C%d' % n for n in range(1, 12)} | {'S%d' % n for n in range(1, 8)}


# ---------------------------------------------------------------- classic

@pytest.mark.parametrize('step, kind, rooms, except_, rooms_arg, encode', [
    ('C1', RequestType.REMOTE_JOIN, ('r1',), ('x1', 'x2'), ('j1', 'j2'),
     classic.encode_remote_join),
    ('C2', RequestType.REMOTE_LEAVE, ('r1', 'r2'), ('x1',), ('l1',),
     classic.encode_remote_leave),
    ('C8', RequestType.REMOTE_JOIN, ('r1',), ('x1', 'x2'), ('j1',),
     classic.encode_remote_join),
    ('C9', RequestType.REMOTE_LEAVE, ('r1',), ('x1',), ('l1', 'l2'),
     classic.encode_remote_leave),
])
def test_classic_join_and_leave(step, kind, rooms, except_, rooms_arg, encode):
    raw = _one(step, '-request#')
    request = decode_request(raw)
    assert (request.type, request.rooms, request.except_, request.rooms_arg) \
        == (kind, rooms, except_, rooms_arg)
    # the adapter names itself, the emitter does not
    assert (request.uid is None) == (step in ('C8', 'C9'))
    assert encode(request.uid, rooms, except_, rooms_arg) == raw


@pytest.mark.parametrize('step, rooms, close', [
    ('C3', ('r1',), True), ('C4', (), False), ('C10', ('r1', 'r2'), True)])
def test_classic_disconnect(step, rooms, close):
    raw = _one(step, '-request#')
    request = decode_request(raw)
    assert (request.type, request.rooms, request.except_, request.close, request.sid) \
        == (RequestType.REMOTE_DISCONNECT, rooms, ('x1',), close, None)
    assert classic.encode_remote_disconnect(request.uid, rooms, ['x1'], close) == raw


def test_classic_fetch_sockets_and_its_answer():
    raw = _one('C5', '-request#')
    request = decode_request(raw)
    assert (request.type, request.rooms, request.except_) == (
        RequestType.REMOTE_FETCH, ('r1',), ('x1', 'x2'))
    assert classic.encode_fetch_sockets(request.uid, request.request_id, ['r1'],
                                         ['x1', 'x2']) == raw
    answer = _one('C5', '-response#')
    assert classic.decode_response(answer) == {'requestId': request.request_id,
                                                'sockets': []}
    assert classic.encode_response({'requestId': request.request_id,
                                     'sockets': []}) == answer


def test_classic_broadcast_with_except_and_flags():
    raw = _one('C6')
    message = decode_broadcast(raw)
    assert (message.nsp, message.data, message.rooms, message.except_, message.flags) \
        == ('/', ['c6', 1], ('r1', 'r2'), ('x1',), {'volatile': True, 'compress': False})
    assert classic.encode_broadcast(message.uid, '/', ['c6', 1], ['r1', 'r2'], ['x1'],
                                     {'volatile': True, 'compress': False}) == raw


def test_classic_emitter_broadcast_with_except():
    raw = _one('C11')
    message = decode_broadcast(raw)
    assert (message.uid, message.nsp, message.rooms, message.except_, message.flags) \
        == ('emitter', '/admin', ('r1',), ('x1',), {})
    assert classic.encode_broadcast('emitter', '/admin', ['c11', 'a'], ['r1'], ['x1'],
                                     emitter_order=True) == raw


def test_classic_broadcast_with_acks_and_its_client_count():
    raw = _one('C7', '-request#')
    request = decode_request(raw)
    assert (request.type, request.rooms, request.except_, request.flags) == (
        RequestType.BROADCAST, ('r1',), ('x1',), {'timeout': 1000})
    assert request.packet == {'type': 2, 'data': ['c7'], 'nsp': '/'}
    assert classic.encode_broadcast_request(
        request.uid, request.request_id, '/', ['c7'], ['r1'], ['x1'],
        {'timeout': 1000}) == raw
    count = _one('C7', '-response#')
    assert classic.decode_response(count) == {
        'type': 8, 'requestId': request.request_id, 'clientCount': 0}
    assert classic.encode_client_count(request.request_id, 0) == count


# ---------------------------------------------------------------- sharded

@pytest.mark.parametrize('step, kind, classic, rooms, except_, rooms_arg', [
    ('S1', MessageType.SOCKETS_JOIN, RequestType.REMOTE_JOIN, ('r1',), ('x1', 'x2'),
     ('j1', 'j2')),
    ('S2', MessageType.SOCKETS_LEAVE, RequestType.REMOTE_LEAVE, ('r1', 'r2'), ('x1',),
     ('l1',)),
])
def test_sharded_join_and_leave(step, kind, classic, rooms, except_, rooms_arg):
    raw = _one(step)
    message = decode_envelope(raw)
    request = envelope.request_of(message)
    assert (message.type, request.type, request.rooms, request.except_,
            request.rooms_arg) == (kind, classic, rooms, except_, rooms_arg)
    data = envelope.join_data(rooms, except_, rooms_arg)
    assert encode_envelope(kind, data, message.uid, message.nsp) == raw


@pytest.mark.parametrize('step, rooms, close', [('S3', ('r1',), True), ('S4', (), False)])
def test_sharded_disconnect(step, rooms, close):
    raw = _one(step)
    message = decode_envelope(raw)
    request = envelope.request_of(message)
    assert (request.type, request.rooms, request.except_, request.close) \
        == (RequestType.REMOTE_DISCONNECT, rooms, ('x1',), close)
    data = envelope.disconnect_data(rooms, ['x1'], close)
    assert encode_envelope(MessageType.DISCONNECT_SOCKETS, data, message.uid,
                           message.nsp) == raw


def test_sharded_fetch_sockets_and_its_answer():
    request_raw, answer_raw = _request_and_answer('S5')
    message = decode_envelope(request_raw)
    request = envelope.request_of(message)
    assert (request.type, request.rooms, request.except_, request.flags) == (
        RequestType.REMOTE_FETCH, ('r1',), ('x1', 'x2'), {})
    assert encode_envelope(MessageType.FETCH_SOCKETS,
                           envelope.fetch_data(request.request_id, ['r1'], ['x1', 'x2']),
                           message.uid, message.nsp) == request_raw
    answer = decode_envelope(answer_raw)
    assert envelope.response_of(answer) == {'requestId': request.request_id,
                                            'sockets': []}
    data = envelope.response_data(MessageType.FETCH_SOCKETS_RESPONSE,
                                  request.request_id, [])
    assert encode_envelope(MessageType.FETCH_SOCKETS_RESPONSE, data, answer.uid,
                           answer.nsp) == answer_raw


def test_sharded_broadcast_with_except_and_flags():
    raw = _one('S6')
    message = decode_envelope(raw)
    broadcast = envelope.broadcast_of(message)
    flags = {'volatile': True, 'compress': False}
    assert (broadcast.nsp, broadcast.data, broadcast.rooms, broadcast.except_,
            broadcast.flags) == ('/', ['s6', 1], ('r1', 'r2'), ('x1',), flags)
    data = envelope.broadcast_data(['s6', 1], ['r1', 'r2'], ['x1'], flags)
    assert encode_envelope(MessageType.BROADCAST, data, message.uid, '/') == raw


def test_sharded_broadcast_with_acks_and_its_client_count():
    raw, count_raw = _request_and_answer('S7')
    message = decode_envelope(raw)
    request = envelope.request_of(message)
    assert (request.type, request.rooms, request.except_, request.flags) == (
        RequestType.BROADCAST, ('r1',), ('x1',), {'timeout': 1000})
    assert request.packet == {'type': 2, 'data': ['s7']}
    data = envelope.broadcast_data(['s7'], ['r1'], ['x1'], {'timeout': 1000},
                                   request_id=request.request_id)
    assert encode_envelope(MessageType.BROADCAST, data, message.uid, '/') == raw
    count = decode_envelope(count_raw)
    assert envelope.response_of(count) == {
        'requestId': request.request_id, 'type': 8, 'clientCount': 0}
    data = envelope.response_data(MessageType.BROADCAST_CLIENT_COUNT,
                                  request.request_id, 0)
    assert encode_envelope(MessageType.BROADCAST_CLIENT_COUNT, data, count.uid,
                           count.nsp) == count_raw
