"""Behaviour rules of the two dialects, the routes and the mode names: channel
names, what each request encodes with non-empty selections, decode results.

Pure: no Redis. Written against the mutants of classic.py, sharded.py,
routes.py and modes.py that the vector tests (test_dialects.py) let survive.
"""
import pytest

from sio_redis_sync import ProtocolError, SioRedisError, envelope
from sio_redis_sync.classic import ClassicDialect
from sio_redis_sync.modes import DIALECTS, new_dialect
from sio_redis_sync.protocol import (Broadcast, Ignored, Request, RequestType as T,
                                     Response, loads_auto, new_request)
from sio_redis_sync.routes import Routes
from sio_redis_sync.sharded import ShardedDialect
from sio_redis_sync.streams import StreamsDialect

NSP = '/chat'


def _requests():
    """Every request type, each with rooms, except and (broadcast) flags."""
    return {
        'join': new_request(T.REMOTE_JOIN, None, ['a', 'a'], ['b'], rooms_arg=('c',)),
        'leave': new_request(T.REMOTE_LEAVE, None, ['a'], ['b'], rooms_arg=('c',)),
        'disconnect': new_request(T.REMOTE_DISCONNECT, None, ['a'], ['b'], close=True),
        'emit': new_request(T.SERVER_SIDE_EMIT, None, data=['e', 2]),
        'emit_ack': new_request(T.SERVER_SIDE_EMIT, 'rid', data=['e', 2]),
        'fetch': new_request(T.REMOTE_FETCH, 'rid', ['a'], ['b']),
        'all_rooms': new_request(T.ALL_ROOMS, 'rid'),
        'broadcast': new_request(T.BROADCAST, 'rid', ['a'], ['b'], flags={'timeout': 5},
                                 data=['e', 3]),
    }


# ---------------------------------------------------------------- classic

def test_classic_channels_per_namespace():
    dialect = ClassicDialect('K')
    assert dialect.name == 'classic' and not dialect.sharded and dialect.has_all_rooms
    subs = dialect.subscriptions(NSP, 'U')
    assert subs.channels == ('K-request#/chat#', 'K-response#/chat#',
                             'K-response#/chat#U#')
    assert subs.patterns == ('K#/chat#*',)
    assert dialect.servers_channel(NSP) == 'K-request#/chat#'
    assert dialect.response_channels(NSP, 'U') == ['K-response#/chat#',
                                                   'K-response#/chat#U#']
    assert dialect.room_channel(NSP, 'room1', False) is None
    assert dialect.channels(NSP) is dialect.channels(NSP)  # cached
    assert ClassicDialect().key == 'socket.io'
    for kind in T:
        dialect.check_request(kind)  # every request exists


def test_classic_channel_room():
    dialect = ClassicDialect('K')
    assert dialect.channel_room(NSP, b'K#/chat#room1#') == 'room1'
    assert dialect.channel_room(NSP, b'K#/chat#') is None
    assert dialect.channel_room(NSP, b'K#/other#room1#') is None
    assert dialect.channel_room(NSP, b'K-request#/chat#') is None
    # any publisher can name a channel with bytes that are not UTF-8
    assert dialect.channel_room(NSP, b'K#/chat#r\xff#') == 'r\ufffd'


@pytest.mark.parametrize('emitter', [False, True])
def test_classic_broadcast_with_a_selection(emitter):
    dialect = ClassicDialect('K', emitter=emitter)
    out = dialect.encode_broadcast(NSP, 'U', ['ev', 1], ['r1', 'r1'], ['x'],
                                   {'volatile': True})
    assert out.channel == 'K#/chat#r1#'  # one room once: its own channel
    assert out.channels == dialect.channels(NSP)
    uid = 'emitter' if emitter else 'U'
    raw = loads_auto(out.payload)
    assert raw[0] == uid and raw[1] == {'type': 2, 'data': ['ev', 1], 'nsp': NSP}
    assert list(raw[2]) == (['rooms', 'flags', 'except'] if emitter
                            else ['rooms', 'except', 'flags'])
    assert dialect.decode(NSP, out.channel.encode(), out.payload) == Broadcast(
        uid, NSP, ['ev', 1], ('r1',), ('x',), {'volatile': True})
    two = dialect.encode_broadcast(NSP, 'U', ['ev'], ['r1', 'r2'])
    assert two.channel == 'K#/chat#'


def test_classic_requests_encode_their_selection():
    dialect = ClassicDialect('K')
    for name, request in _requests().items():
        out = dialect.encode_request(NSP, 'U', request)
        assert out.channel == 'K-request#/chat#', name
        assert out.channels == dialect.channels(NSP)
        message = dialect.decode(NSP, b'K-request#/chat#', out.payload)
        assert isinstance(message, Request) and message.type == request.type, name
        assert message.uid == 'U' and message.request_id == request.request_id, name
        assert message.rooms == tuple(request.rooms), name
        assert message.except_ == tuple(request.except_), name
        assert message.rooms_arg == tuple(request.rooms_arg), name
        assert message.close == request.close, name
        assert dialect.wire_name(message) == request.type.name
    raw = loads_auto(dialect.encode_request(NSP, 'U', _requests()['emit']).payload)
    assert raw['data'] == ['e', 2]
    raw = loads_auto(dialect.encode_request(NSP, 'U', _requests()['broadcast']).payload)
    assert raw['packet'] == {'type': 2, 'data': ['e', 3], 'nsp': NSP}
    assert raw['opts'] == {'rooms': ['a'], 'except': ['b'], 'flags': {'timeout': 5}}


def test_classic_emitter_notifications_carry_the_emitter_uids():
    dialect = ClassicDialect('K', emitter=True)
    requests = _requests()
    uids = {name: loads_auto(dialect.encode_request(NSP, 'U', requests[name]).payload
                             ).get('uid', 'none')
            for name in ('join', 'leave', 'disconnect', 'emit', 'emit_ack', 'fetch')}
    assert uids == {'join': 'none', 'leave': 'none', 'disconnect': 'none',
                    'emit': 'emitter', 'emit_ack': 'U', 'fetch': 'U'}


@pytest.mark.parametrize('kind, value, body, wire', [
    (T.REMOTE_FETCH, ['s'], {'requestId': 'rid', 'sockets': ['s']}, 'REMOTE_FETCH_RESPONSE'),
    (T.SOCKETS, ['s'], {'requestId': 'rid', 'sockets': ['s']}, 'REMOTE_FETCH_RESPONSE'),
    (T.ALL_ROOMS, ['r'], {'requestId': 'rid', 'rooms': ['r']}, 'ALL_ROOMS_RESPONSE'),
    (T.SERVER_SIDE_EMIT, ['ok'], {'type': 6, 'requestId': 'rid', 'data': ['ok']},
     'SERVER_SIDE_EMIT_RESPONSE'),
    (T.BROADCAST_CLIENT_COUNT, 3, {'type': 8, 'requestId': 'rid', 'clientCount': 3},
     'BROADCAST_CLIENT_COUNT'),
    (T.BROADCAST_ACK, ['v1'], {'type': 9, 'requestId': 'rid', 'packet': 'v1'},
     'BROADCAST_ACK'),
    (T.BROADCAST_ACK, ['v1', 'v2'], {'type': 9, 'requestId': 'rid', 'packet': 'v1',
                                     'packets': ['v1', 'v2']}, 'BROADCAST_ACK'),
    (T.REMOTE_JOIN, None, {'requestId': 'rid'}, 'EMPTY_RESPONSE'),
    (T.REMOTE_LEAVE, None, {'requestId': 'rid'}, 'EMPTY_RESPONSE'),
    (T.REMOTE_DISCONNECT, None, {'requestId': 'rid'}, 'EMPTY_RESPONSE'),
])
def test_classic_answers(kind, value, body, wire):
    dialect = ClassicDialect('K')
    request = Request(T.BROADCAST, uid='A', request_id='rid')
    out = dialect.encode_answer(NSP, 'B', request, kind, value)
    assert (out.channel, out.channels) == ('K-response#/chat#', None)
    assert loads_auto(out.payload) == body
    for channel in (b'K-response#/chat#', b'K-response#/chat#A#'):
        message = dialect.decode(NSP, channel, out.payload)
        assert message == Response('rid', body)
        assert dialect.wire_name(message) == wire
    assert dialect.decode_answer(out.payload) == Response('rid', body)


def test_classic_wire_names_of_answers_without_a_known_type():
    dialect = ClassicDialect('K')
    assert dialect.wire_name(Response('r', {'type': 1, 'rooms': []})) == 'ALL_ROOMS_RESPONSE'
    assert dialect.wire_name(Response('r', {'type': 99, 'rooms': []})) == 'ALL_ROOMS_RESPONSE'
    assert dialect.wire_name(Response('r', {'type': '6', 'data': []})) == \
        'SERVER_SIDE_EMIT_RESPONSE'
    assert dialect.wire_name(Response('r', {'sockets': [], 'data': []})) == \
        'REMOTE_FETCH_RESPONSE'
    assert dialect.wire_name(Ignored('x')) == 'IGNORED'
    assert dialect.wire_name(Broadcast('u', '/', ['e'])) == 'BROADCAST'


def test_classic_decode_of_another_namespace_and_bad_input():
    dialect = ClassicDialect('K')
    out = ClassicDialect('K').encode_broadcast('/other', 'U', ['ev'], ['r1'])
    ignored = dialect.decode(NSP, b'K#/chat#r1#', out.payload)
    assert isinstance(ignored, Ignored)
    assert (ignored.uid, ignored.kind, ignored.nsp) == ('U', 'BROADCAST', '/other')
    for channel in (b'K-request#/chat#', b'K-response#/chat#', b'K#/chat#'):
        with pytest.raises(ProtocolError):
            dialect.decode(NSP, channel, b'\xc1')
    with pytest.raises(ProtocolError):
        dialect.decode_answer(b'{"rooms":[]}')  # no requestId
    # a request read on the broadcast channel is not a broadcast
    request = dialect.encode_request(NSP, 'U', _requests()['join']).payload
    with pytest.raises(ProtocolError):
        dialect.decode(NSP, b'K#/chat#', request)


# ---------------------------------------------------------------- sharded

def test_sharded_channels_per_namespace_and_room():
    dialect = ShardedDialect('K')
    assert dialect.name == 'sharded' and dialect.sharded and not dialect.has_all_rooms
    assert dialect.subscription_mode == 'dynamic'
    assert ShardedDialect().key == 'socket.io'
    subs = dialect.subscriptions(NSP, 'U')
    assert subs.channels == ('K#/chat#', 'K#/chat#U#') and subs.patterns == ()
    assert dialect.servers_channel(NSP) == 'K#/chat#'
    assert dialect.response_channels(NSP, 'U') == ['K#/chat#U#']
    assert dialect.room_channel(NSP, 'room1', False) == 'K#/chat#room1#'
    assert dialect.room_channel(NSP, 'sid1', True) is None
    assert ShardedDialect('K', 'static').room_channel(NSP, 'room1', False) is None
    assert ShardedDialect('K', 'dynamic-private').room_channel(NSP, 's', True) == \
        'K#/chat#s#'
    assert dialect.channel_room(NSP, b'K#/chat#room1#') is None
    assert dialect.channels(NSP) is dialect.channels(NSP)
    with pytest.raises(ValueError):
        ShardedDialect('K', 'sometimes')


@pytest.mark.parametrize('emitter', [False, True])
def test_sharded_broadcast_with_a_selection(emitter):
    dialect = ShardedDialect('K', 'dynamic', emitter=emitter)
    out = dialect.encode_broadcast(NSP, 'U', ['ev', 1], ['r1', 'r1'], ['x'],
                                   {'volatile': True})
    assert out.channel == 'K#/chat#r1#'
    assert out.channels == dialect.channels(NSP)
    raw = loads_auto(out.payload)
    uid = 'emitter' if emitter else 'U'
    assert (raw['type'], raw['uid'], raw['nsp']) == (3, uid, NSP)
    assert list(raw) == (['uid', 'nsp', 'type', 'data'] if emitter
                         else ['type', 'data', 'uid', 'nsp'])
    packet = {'type': 2, 'data': ['ev', 1]}
    if emitter:
        packet['nsp'] = NSP
    assert raw['data'] == {'packet': packet, 'opts': {
        'rooms': ['r1'], 'except': ['x'], 'flags': {'volatile': True}}}
    assert dialect.decode(NSP, out.channel.encode(), out.payload) == Broadcast(
        uid, NSP, ['ev', 1], ('r1',), ('x',), {'volatile': True})
    static = ShardedDialect('K', 'static', emitter=emitter)
    assert static.encode_broadcast(NSP, 'U', ['ev'], ['r1']).channel == 'K#/chat#'


@pytest.mark.parametrize('emitter', [False, True])
def test_sharded_requests_encode_their_selection(emitter):
    dialect = ShardedDialect('K', emitter=emitter)
    envelope_types = {T.REMOTE_JOIN: 4, T.REMOTE_LEAVE: 5, T.REMOTE_DISCONNECT: 6,
                      T.REMOTE_FETCH: 7, T.SERVER_SIDE_EMIT: 9, T.BROADCAST: 3}
    for name, request in _requests().items():
        if request.type == T.ALL_ROOMS:
            with pytest.raises(SioRedisError):
                dialect.encode_request(NSP, 'U', request)
            continue
        out = dialect.encode_request(NSP, 'U', request)
        assert out.channel == 'K#/chat#' and out.channels == dialect.channels(NSP), name
        raw = loads_auto(out.payload)
        notification = emitter and request.request_id is None
        assert raw['type'] == envelope_types[request.type], name
        assert raw['uid'] == ('emitter' if notification else 'U'), name
        assert raw['nsp'] == NSP
        assert list(raw)[0] == ('uid' if notification else 'type'), name
        message = dialect.decode(NSP, b'K#/chat#', out.payload)
        assert isinstance(message, Request) and message.type == request.type, name
        assert message.request_id == request.request_id, name
        assert message.rooms == tuple(request.rooms), name
        assert message.except_ == tuple(request.except_), name
        assert message.rooms_arg == tuple(request.rooms_arg), name
        assert message.close == request.close, name
        assert message.flags == request.flags, name
        if request.type == T.SERVER_SIDE_EMIT:
            assert message.data == ['e', 2]
        if request.type == T.BROADCAST:
            assert message.packet == {'type': 2, 'data': ['e', 3]}
        assert dialect.wire_name(message) == {
            3: 'BROADCAST', 4: 'SOCKETS_JOIN', 5: 'SOCKETS_LEAVE', 6: 'DISCONNECT_SOCKETS',
            7: 'FETCH_SOCKETS', 9: 'SERVER_SIDE_EMIT'}[raw['type']]


def test_sharded_all_rooms_does_not_exist():
    dialect = ShardedDialect('K')
    with pytest.raises(SioRedisError):
        dialect.check_request(T.ALL_ROOMS)
    for kind in (T.REMOTE_JOIN, T.REMOTE_LEAVE, T.REMOTE_DISCONNECT, T.REMOTE_FETCH,
                 T.SERVER_SIDE_EMIT, T.BROADCAST):
        dialect.check_request(kind)


@pytest.mark.parametrize('kind, value, wire_type, data, body, wire', [
    (T.REMOTE_FETCH, ['s'], 8, {'requestId': 'rid', 'sockets': ['s']},
     {'requestId': 'rid', 'sockets': ['s']}, 'FETCH_SOCKETS_RESPONSE'),
    (T.SERVER_SIDE_EMIT, ['ok'], 10, {'requestId': 'rid', 'packet': ['ok']},
     {'requestId': 'rid', 'type': 6, 'data': ['ok']}, 'SERVER_SIDE_EMIT_RESPONSE'),
    (T.BROADCAST_CLIENT_COUNT, 3, 11, {'requestId': 'rid', 'clientCount': 3},
     {'requestId': 'rid', 'type': 8, 'clientCount': 3}, 'BROADCAST_CLIENT_COUNT'),
    (T.BROADCAST_ACK, ['v1'], 12, {'requestId': 'rid', 'packet': 'v1'},
     {'requestId': 'rid', 'type': 9, 'packet': 'v1'}, 'BROADCAST_ACK'),
    (T.BROADCAST_ACK, ['v1', 'v2'], 12,
     {'requestId': 'rid', 'packet': 'v1', 'packets': ['v1', 'v2']},
     {'requestId': 'rid', 'type': 9, 'packet': 'v1', 'packets': ['v1', 'v2']},
     'BROADCAST_ACK'),
])
@pytest.mark.parametrize('emitter', [False, True])
def test_sharded_answers(kind, value, wire_type, data, body, wire, emitter):
    dialect = ShardedDialect('K', emitter=emitter)
    request = Request(T.BROADCAST, uid='A', request_id='rid')
    out = dialect.encode_answer(NSP, 'B', request, kind, value)
    assert (out.channel, out.channels) == ('K#/chat#A#', None)
    assert loads_auto(out.payload) == {'type': wire_type, 'data': data, 'uid': 'B',
                                       'nsp': NSP}
    message = dialect.decode(NSP, b'K#/chat#A#', out.payload)
    assert message == Response('rid', body, 'B')
    assert dialect.wire_name(message) == wire
    assert dialect.decode_answer(out.payload) == Response('rid', body, 'B')


def test_sharded_decode_of_other_messages_and_bad_input():
    dialect = ShardedDialect('K')
    other = ShardedDialect('K').encode_broadcast('/other', 'U', ['ev'])
    ignored = dialect.decode(NSP, b'K#/chat#', other.payload)
    assert isinstance(ignored, Ignored)
    assert (ignored.uid, ignored.kind, ignored.nsp) == ('U', 'BROADCAST', '/other')
    assert dialect.wire_name(ignored) == 'BROADCAST'
    heartbeat = envelope.encode_envelope(envelope.MessageType.HEARTBEAT, None, 'H', NSP)
    ignored = dialect.decode(NSP, b'K#/chat#', heartbeat)
    assert isinstance(ignored, Ignored)
    assert (ignored.uid, ignored.kind, ignored.nsp) == ('H', 'HEARTBEAT', NSP)
    assert dialect.wire_name(ignored) == 'HEARTBEAT'
    assert dialect.wire_name(Ignored('x')) == 'IGNORED'
    assert dialect.decode_answer(heartbeat) is None
    request = dialect.encode_request(NSP, 'U', _requests()['fetch']).payload
    assert dialect.decode_answer(request) is None
    for bad in (b'\xc1', b'{"type":3,"uid":"U","nsp":"/chat"}', b'[1,2]'):
        with pytest.raises(ProtocolError):
            dialect.decode(NSP, b'K#/chat#', bad)
        with pytest.raises(ProtocolError):
            dialect.decode_answer(bad)


def test_sharded_wire_name_of_a_fetch_answer_and_a_broadcast():
    dialect = ShardedDialect('K')
    assert dialect.wire_name(Response('r', {'requestId': 'r', 'sockets': []})) == \
        'FETCH_SOCKETS_RESPONSE'
    assert dialect.wire_name(Broadcast('u', '/', ['e'])) == 'BROADCAST'


# ---------------------------------------------------------------- routes

class _Listener:
    def __init__(self):
        self.calls = []

    def subscribe(self, channels=(), patterns=()):
        self.calls.append(('subscribe', list(channels), list(patterns)))

    def unsubscribe(self, channels=()):
        self.calls.append(('unsubscribe', list(channels)))


def test_routes_map_each_subscription_to_its_namespace_once():
    routes = Routes(ClassicDialect('K'))
    listener = _Listener()
    assert routes.add_namespace(listener, NSP, 'U') is True
    assert routes.add_namespace(listener, NSP, 'U') is False
    assert listener.calls == [('subscribe', ['K-request#/chat#', 'K-response#/chat#',
                                             'K-response#/chat#U#'], ['K#/chat#*'])]
    assert routes.namespace_of(b'K#/chat#r1#', b'K#/chat#*') == NSP
    assert routes.namespace_of(b'K-response#/chat#U#', None) == NSP
    assert routes.namespace_of(b'K-request#/chat#', None) == NSP
    assert routes.namespace_of(b'K-request#/other#', None) is None
    assert routes.add_namespace(listener, '/', 'U') is True
    assert routes.namespace_of(b'K-request#/#', None) == '/'
    routes.add_room(listener, NSP, 'room1', False)  # classic: no room channels
    assert len(listener.calls) == 2
    routes.clear()
    assert routes.namespace_of(b'K-request#/chat#', None) is None
    assert routes.add_namespace(listener, NSP, 'U') is True


def test_routes_follow_the_rooms_in_sharded_dynamic_mode():
    routes = Routes(ShardedDialect('K', 'dynamic'))
    listener = _Listener()
    routes.add_namespace(listener, NSP, 'U')
    assert listener.calls == [('subscribe', ['K#/chat#', 'K#/chat#U#'], [])]
    routes.add_room(listener, NSP, 'room1', False)
    routes.add_room(listener, NSP, 'room1', False)  # once
    routes.add_room(listener, NSP, 'sid1', True)    # its own socket: no channel
    routes.add_room(None, NSP, 'room2', False)      # no listener yet: nothing
    assert listener.calls[1:] == [('subscribe', ['K#/chat#room1#'], [])]
    assert routes.namespace_of(b'K#/chat#room1#', None) == NSP
    assert routes.namespace_of(b'K#/chat#room2#', None) is None
    routes.add_room(listener, '/', 'room1', False)  # another namespace's room
    assert listener.calls[2:] == [('subscribe', ['K#/#room1#'], [])]
    routes.remove_room(listener, NSP, 'room2')      # never subscribed
    routes.remove_room(listener, '/x', 'room1')
    assert len(listener.calls) == 3
    routes.remove_room(listener, NSP, 'room1')
    assert listener.calls[3:] == [('unsubscribe', ['K#/chat#room1#'])]
    assert routes.namespace_of(b'K#/chat#room1#', None) is None
    assert routes.namespace_of(b'K#/#room1#', None) == '/'
    routes.remove_room(listener, NSP, 'room1')      # once
    assert len(listener.calls) == 4
    routes.add_room(listener, NSP, 'room1', False)  # again after leaving
    assert listener.calls[4:] == [('subscribe', ['K#/chat#room1#'], [])]
    routes.remove_room(None, NSP, 'room1')          # listener gone: table only
    assert routes.namespace_of(b'K#/chat#room1#', None) is None
    assert len(listener.calls) == 5


def test_a_room_channel_first_does_not_hide_the_namespace():
    """A room named like the server's uid has the channel of its answers;
    subscribed first, the namespace is still not subscribed."""
    routes = Routes(ShardedDialect('K', 'dynamic'))
    listener = _Listener()
    routes.add_room(listener, NSP, 'U', False)
    assert routes.add_namespace(listener, NSP, 'U') is True
    assert listener.calls[-1] == ('subscribe', ['K#/chat#', 'K#/chat#U#'], [])


def test_a_room_named_like_the_uid_never_takes_the_answers_channel_away():
    """Sharded: the room ``U`` has the channel of server ``U``'s answers.
    Its first member must not subscribe it twice, nor its last member
    unsubscribe it: the server would stop hearing its answers."""
    for room_first in (False, True):
        routes = Routes(ShardedDialect('K', 'dynamic'))
        listener = _Listener()
        if room_first:
            routes.add_room(listener, NSP, 'U', False)
        routes.add_namespace(listener, NSP, 'U')
        routes.add_room(listener, NSP, 'U', False)
        calls = len(listener.calls)
        routes.remove_room(listener, NSP, 'U')
        assert len(listener.calls) == calls, listener.calls
        assert routes.namespace_of(b'K#/chat#U#', None) == NSP


def test_routes_clear_and_after_fork_forget_the_rooms():
    for forget in ('clear', 'after_fork'):
        routes = Routes(ShardedDialect('K', 'dynamic'))
        listener = _Listener()
        routes.add_namespace(listener, NSP, 'U')
        routes.add_room(listener, NSP, 'room1', False)
        lock = routes._lock
        getattr(routes, forget)()
        if forget == 'after_fork':
            assert routes._lock is not lock and not routes._lock.locked()
        with routes._lock:
            pass
        assert routes.namespace_of(b'K#/chat#', None) is None
        assert routes.namespace_of(b'K#/chat#room1#', None) is None
        routes.add_room(listener, NSP, 'room1', False)  # subscribed anew
        assert listener.calls[-1] == ('subscribe', ['K#/chat#room1#'], [])


# ---------------------------------------------------------------- modes

def test_mode_names():
    assert DIALECTS == {'classic': ClassicDialect, 'sharded': ShardedDialect,
                        'streams': StreamsDialect}
    classic = new_dialect('classic', 'K', 'static')
    assert type(classic) is ClassicDialect and classic.key == 'K' and not classic.emitter
    sharded = new_dialect('sharded', 'K', 'dynamic-private', emitter=True)
    assert type(sharded) is ShardedDialect and sharded.key == 'K'
    assert sharded.subscription_mode == 'dynamic-private' and sharded.emitter is True
    assert new_dialect('sharded', 'K', 'static').emitter is False
    for mode in ('Classic', 'cluster', None):
        with pytest.raises(ValueError, match="'classic' or 'sharded'"):
            new_dialect(mode, 'K', 'static')


def test_stream_options_need_streams_mode():
    streams = new_dialect('streams', 'K', None, stream_name='S', stream_count=3, max_len=50)
    assert type(streams) is StreamsDialect
    assert (streams.stream_name, streams.stream_count, streams.max_len) == ('S', 3, 50)
    assert new_dialect('streams', 'K', None).stream_name == 'socket.io'  # Node's default
    for mode in ('classic', 'sharded'):
        with pytest.raises(ValueError, match="stream_count need mode='streams'"):
            new_dialect(mode, 'K', 'dynamic', stream_count=2)
        assert new_dialect(mode, 'K', 'dynamic', stream_count=None).name == mode
