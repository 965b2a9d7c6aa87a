"""The two dialects against the captured Node vectors: every captured message
decodes through its dialect into the right kind and wire type, and what the
emitters sent re-encodes byte for byte (decode, then encode, gives the bytes).
"""
import json
import pathlib

import pytest

from sio_redis_sync import ProtocolError
from sio_redis_sync.classic import ClassicDialect
from sio_redis_sync.modes import new_dialect
from sio_redis_sync.protocol import Broadcast, Ignored, Request, Response
from sio_redis_sync.sharded import ShardedDialect

DATA = pathlib.Path(__file__).resolve().parent / 'data'
KEY = 'socket.io'
CLASSIC = {v['name']: v for v in json.loads(
    (DATA / 'node_vectors.json').read_text())['deterministic']}
SHARDED = json.loads((DATA / 'sharded_vectors.json').read_text())['sharded']

# classic vector -> (the channel it was read on, kind, wire type)
CLASSIC_READS = {
    'emitter.broadcast.all': ('socket.io#/#', Broadcast, 'BROADCAST'),
    'emitter.broadcast.room': ('socket.io#/#room1#', Broadcast, 'BROADCAST'),
    'adapter.broadcast.room': ('socket.io#/#room1#', Broadcast, 'BROADCAST'),
    'adapter.broadcast.binary': ('socket.io#/#', Broadcast, 'BROADCAST'),
    'adapter.broadcast.withack.request': ('socket.io-request#/#', Request, 'BROADCAST'),
    'adapter.broadcast_ack.response': ('socket.io-response#/#', Response, 'BROADCAST_ACK'),
    'classic.request.allRooms': ('socket.io-request#/#', Request, 'ALL_ROOMS'),
    'classic.request.fetchSockets': ('socket.io-request#/#', Request, 'REMOTE_FETCH'),
    'classic.request.socketsJoin': ('socket.io-request#/#', Request, 'REMOTE_JOIN'),
    'emitter.request.socketsJoin': ('socket.io-request#/#', Request, 'REMOTE_JOIN'),
    'emitter.request.socketsLeave': ('socket.io-request#/#', Request, 'REMOTE_LEAVE'),
    'emitter.request.disconnectSockets': ('socket.io-request#/#', Request,
                                          'REMOTE_DISCONNECT'),
    'emitter.request.serverSideEmit': ('socket.io-request#/#', Request, 'SERVER_SIDE_EMIT'),
    'classic.response.serverSideEmit': ('socket.io-response#/#', Response,
                                        'SERVER_SIDE_EMIT_RESPONSE'),
    'classic.response.allRooms': ('socket.io-response#/#', Response, 'ALL_ROOMS_RESPONSE'),
    'classic.response.clientCount': ('socket.io-response#/#', Response,
                                     'BROADCAST_CLIENT_COUNT'),
}
# what @socket.io/redis-emitter 5.1.0 sent, and where: decoded, then encoded
# again by the emitter's dialect, it must give the very same bytes
EMITTER_SENT = {
    'emitter.broadcast.all': ('/', 'socket.io#/#'),
    'emitter.broadcast.room': ('/', 'socket.io#/#room1#'),
    'emitter.broadcast.flags': ('/admin', 'socket.io#/admin#'),
    'emitter.request.socketsJoin': ('/', 'socket.io-request#/#'),
    'emitter.request.socketsLeave': ('/', 'socket.io-request#/#'),
    'emitter.request.disconnectSockets': ('/', 'socket.io-request#/#'),
    'emitter.request.serverSideEmit': ('/', 'socket.io-request#/#'),
}


def _nsp_of(channel):
    return channel[len(KEY):].split('#')[1]


def _reencode(dialect, nsp, message):
    if isinstance(message, Broadcast):
        return dialect.encode_broadcast(nsp, None, message.data, message.rooms,
                                        message.except_, message.flags)
    return dialect.encode_request(nsp, None, message)


@pytest.mark.parametrize('name', sorted(CLASSIC_READS))
def test_classic_vectors_decode_through_the_dialect(name):
    channel, kind, wire_name = CLASSIC_READS[name]
    dialect = ClassicDialect(KEY)
    message = dialect.decode('/', channel.encode(), bytes.fromhex(CLASSIC[name]['hex']))
    assert type(message) is kind
    assert dialect.wire_name(message) == wire_name


@pytest.mark.parametrize('name', sorted(EMITTER_SENT))
def test_what_the_node_emitter_sent_encodes_again_byte_for_byte(name):
    nsp, channel = EMITTER_SENT[name]
    payload = bytes.fromhex(CLASSIC[name]['hex'])
    message = ClassicDialect(KEY).decode(nsp, channel.encode(), payload)
    outgoing = _reencode(new_dialect('classic', KEY, 'dynamic', emitter=True), nsp, message)
    assert (outgoing.channel, outgoing.payload) == (channel, payload)


def _sharded_cases():
    for number, vector in enumerate(SHARDED):
        yield pytest.param(vector, id='%s-%d' % (vector['step'], number))


@pytest.mark.parametrize('vector', list(_sharded_cases()))
def test_sharded_vectors_decode_through_the_dialect(vector):
    dialect = ShardedDialect(KEY)
    payload = bytes.fromhex(vector['hex'])
    raw = json.loads(vector['text'])
    if 'nsp' not in raw:  # Node's servers drop such messages too
        with pytest.raises(ProtocolError):
            dialect.decode(_nsp_of(vector['channel']), vector['channel'].encode(), payload)
        return
    message = dialect.decode(_nsp_of(vector['channel']), vector['channel'].encode(), payload)
    assert type(message) in (Broadcast, Request, Response)
    assert message.uid == raw['uid']
    names = {3: 'BROADCAST', 4: 'SOCKETS_JOIN', 5: 'SOCKETS_LEAVE', 6: 'DISCONNECT_SOCKETS',
             7: 'FETCH_SOCKETS', 8: 'FETCH_SOCKETS_RESPONSE', 9: 'SERVER_SIDE_EMIT',
             10: 'SERVER_SIDE_EMIT_RESPONSE', 11: 'BROADCAST_CLIENT_COUNT',
             12: 'BROADCAST_ACK'}
    assert dialect.wire_name(message) == names[raw['type']]


def test_a_message_of_another_namespace_is_ignored_not_dropped():
    vector = next(v for v in SHARDED if v['step'] == 'X3')
    message = ShardedDialect(KEY).decode('/other', b'socket.io#/other#',
                                         bytes.fromhex(vector['hex']))
    assert isinstance(message, Ignored) and message.nsp == '/'


def test_sharded_emitter_broadcasts_encode_as_captured():
    """X3 and X6: what an emitter SPUBLISHes for a broadcast (accepted by
    Node 8.3.0), to everyone and to one room (dynamic mode: its channel)."""
    dialect = new_dialect('sharded', KEY, 'dynamic', emitter=True)
    for step in ('X3', 'X6'):
        vector = next(v for v in SHARDED if v['step'] == step)
        message = ShardedDialect(KEY).decode('/', vector['channel'].encode(),
                                             bytes.fromhex(vector['hex']))
        outgoing = _reencode(dialect, '/', message)
        assert outgoing.channel == vector['channel']
        assert outgoing.payload == bytes.fromhex(vector['hex'])
