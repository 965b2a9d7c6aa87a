"""The pure part of connection state recovery (sio_redis_sync.recovery): the
option, Node's session layout, offsets and the missed-packet rule; hostile
stored sessions raise ProtocolError only. No Redis here (test_recovery.py has
the real clients).
"""
import base64

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from sio_redis_sync import ProtocolError, RedisManager
from sio_redis_sync.recovery import (MAX_DISCONNECTION_DURATION, decode_session,
                                     encode_session, includes, next_offset, options_of,
                                     valid_offset)


def test_the_option_takes_node_s_default_and_refuses_nonsense():
    assert options_of(None) is None and options_of(False) is None
    assert options_of(True) == {'max_disconnection_duration': MAX_DISCONNECTION_DURATION}
    assert options_of({'max_disconnection_duration': 5}) == {'max_disconnection_duration': 5.0}
    for bad in ('yes', 1, [], {'max_disconnection_duration': 0},
                {'max_disconnection_duration': -1}, {'max_disconnection_duration': True},
                {'max_disconnection_duration': 'long'}, {'maxDisconnectionDuration': 5},
                {'max_disconnection_duration': float('nan')}):
        with pytest.raises(ValueError):
            options_of(bad)


def test_recovery_needs_streams_mode():
    with pytest.raises(ValueError, match="needs mode='streams'"):
        RedisManager('redis://localhost:1/0', connection_state_recovery=True)
    with pytest.raises(ValueError, match="needs mode='streams'"):
        RedisManager('redis://localhost:1/0', mode='sharded', connection_state_recovery=True)
    manager = RedisManager('redis://localhost:1/0', mode='streams',
                           connection_state_recovery={'max_disconnection_duration': 3})
    assert manager.recovered('nobody') is False


def test_a_session_is_node_s_base64_msgpack_map():
    encoded = encode_session('sid1', 'pid1', ['sid1', 'room', 7], {'user': 'ann', 'b': b'\x00'})
    raw = msgpack.unpackb(base64.b64decode(encoded), raw=False)
    assert raw == {'sid': 'sid1', 'pid': 'pid1', 'rooms': ['sid1', 'room', 7],
                   'data': {'user': 'ann', 'b': b'\x00'}}
    assert list(raw) == ['sid', 'pid', 'rooms', 'data']  # Node's key order
    assert decode_session(encoded) == raw
    # what Node stores: data may be absent or any value
    node = base64.b64encode(msgpack.packb({'sid': 's', 'pid': 'p', 'rooms': ['s']}))
    assert decode_session(node) == {'sid': 's', 'pid': 'p', 'rooms': ['s'], 'data': None}


@pytest.mark.parametrize('raw', [
    'text', b'!!notbase64', base64.b64encode(b'\xc1'), base64.b64encode(msgpack.packb([1])),
    base64.b64encode(msgpack.packb({'sid': 1, 'pid': 'p', 'rooms': []})),
    base64.b64encode(msgpack.packb({'sid': 's', 'pid': None, 'rooms': []})),
    base64.b64encode(msgpack.packb({'sid': 's', 'pid': 'p', 'rooms': 'r'})),
    base64.b64encode(msgpack.packb({'sid': 's', 'pid': 'p', 'rooms': [[1]]})),
], ids=repr)
def test_a_stored_value_that_is_not_a_session_is_a_protocol_error(raw):
    with pytest.raises(ProtocolError):
        decode_session(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_session_or_a_protocol_error(raw):
    for value in (raw, base64.b64encode(raw)):
        try:
            decode_session(value)
        except ProtocolError:
            pass


def test_offsets_are_stream_ids():
    assert valid_offset('1795879543082-0') and valid_offset('0-0')
    for bad in (None, 5, '', '1795879543082', '1-2-3', '-1-0', '1-x', ' 1-0', '1-0\n',
                '9' * 21 + '-0'):
        assert not valid_offset(bad), bad
    assert next_offset('1795879543082-0') == '1795879543082-1'
    assert next_offset('5-41') == '5-42'


@pytest.mark.parametrize('rooms, to, skip, missed', [
    (['s', 'a'], [], [], True),            # to everyone
    (['s', 'a'], ['a'], [], True),         # to one of its rooms
    (['s', 'a'], ['s'], [], True),         # to its sid
    (['s', 'a'], ['b'], [], False),        # to a room it is not in
    (['s', 'a'], [], ['a'], False),        # everyone but one of its rooms
    (['s', 'a'], ['a'], ['s'], False),     # its room but not itself
    (['s', 1], [1], [], True),             # numeric rooms, as Node has them
])
def test_which_broadcasts_a_socket_missed_is_node_s_rule(rooms, to, skip, missed):
    assert includes(rooms, to, skip) is missed


def test_a_session_s_rooms_follow_joins_leaves_and_closed_rooms():
    # the per-socket room index the sessions are written from (a scan of every
    # room per socket made a full write of 10,000 sessions take a minute)
    import socketio
    manager = RedisManager('redis://localhost:1/0', mode='streams',
                           connection_state_recovery=True)
    socketio.Server(client_manager=manager, async_mode='threading')
    sids = []
    for n in range(3):
        sid = manager.pre_connect('e%d' % n, '/')
        manager.connect(sid, '/')
        sids.append(sid)
    a, b, c = sids
    manager.basic_enter_room(a, '/', 'x')
    manager.basic_enter_room(a, '/', 7)
    manager.basic_enter_room(b, '/', 'x')
    manager.basic_leave_room(a, '/', 7)
    manager.basic_close_room('x', '/')
    manager.basic_enter_room(c, '/', 'y')
    for sid in sids:
        pid, encoded = manager._session_of('/', sid)
        session = decode_session(encoded)
        assert session['rooms'] == manager.get_rooms(sid, '/') and session['pid'] == pid
    manager.basic_disconnect(c, '/')
    assert manager._session_of('/', c) is None


def test_python_socketio_without_pre_connect_is_refused_loudly(monkeypatch):
    # python-socketio < 5.18 registers a client in one step (connect): a
    # recovered socket could not keep its id, so recovery is refused at once
    import socketio
    from socketio import base_manager
    from sio_redis_sync import SioRedisError
    monkeypatch.delattr(base_manager.BaseManager, 'pre_connect', raising=False)
    manager = RedisManager('redis://localhost:1/0', mode='streams',
                           connection_state_recovery=True)
    with pytest.raises(SioRedisError, match='python-socketio >= 5.18'):
        socketio.Server(client_manager=manager, async_mode='threading')
