"""The manager's shortcut for encoding events gives exactly the packets of
python-socketio's own encoder, for text, namespaces, unicode and binary."""
import pytest
from socketio import packet as sio_packet

from sio_redis_sync.local import event_packets as _event_packets

CASES = [
    ['b', 1, 1.5, 'x', {'a': [1, None, True, False]}, 'é☕ "quoted" \\ /'],
    ['no-args'],
    ['bin', b'\x00\x01', {'k': b'z', 'n': [bytearray(b'q')]}],
    ['big', 2 ** 70, -0.0, float('inf')],
]


@pytest.mark.parametrize('namespace', ['/', '/admin'])
@pytest.mark.parametrize('data', CASES)
def test_event_packets_match_python_socketio(namespace, data):
    expected = sio_packet.Packet(sio_packet.EVENT, namespace=namespace, data=data).encode()
    expected = expected if isinstance(expected, list) else [expected]
    assert [p.data for p in _event_packets(sio_packet.Packet, namespace, data)] == expected


def test_unsendable_data_raises_like_python_socketio():
    with pytest.raises(TypeError):
        _event_packets(sio_packet.Packet, '/', ['e', object()])
