"""The private parts of other libraries this package relies on, in one place.

python-socketio: checked against 5.8.0 (the declared floor), 5.9.0 and 5.18.1
(installed); redis-py: 5.0.1 (the floor) and 8.1.0 (installed). Each function
says what it reads and since when it exists.
"""
import inspect

import bidict
from engineio import packet as eio_packet


def forward_members(members):
    """The plain ``{sid: eio_sid}`` dict inside a room's bidict
    (``bidict._fwdm``, read by python-socketio's own ``get_participants``
    in 5.8.0 to 5.18.1), to copy from at C speed; a plain dict as is."""
    return getattr(members, '_fwdm', members)


def send_packet(server, eio_sid, packet):
    """``Server._send_packet``: a Socket.IO packet to one client (5.8.0 to
    5.18.1)."""
    server._send_packet(eio_sid, packet)


def eio_packet_sender(server):
    """``send(eio_sid, eio_packet)``: an encoded Engine.IO packet to one
    client. ``Server._send_eio_packet`` since 5.9.0; before it, the packet's
    data through the public ``eio.send``."""
    send = getattr(server, '_send_eio_packet', None)
    if send is not None:
        return send
    return lambda eio_sid, pkt: server.eio.send(eio_sid, pkt.data)


def message_packet(text):
    """The Engine.IO MESSAGE packet carrying ``text``."""
    return eio_packet.Packet(eio_packet.MESSAGE, text)


def wrap_handle_connect(server, wrap):
    """Replace ``Server._handle_connect(eio_sid, namespace, data)`` (5.8.0 to
    5.18.1: where a client's CONNECT and its ``auth`` payload arrive) by
    ``wrap(original)``, once per server.

    :return: False if the server has no such method (then nothing changed).
    """
    original = getattr(server, '_handle_connect', None)
    if original is None or getattr(original, 'sio_redis_sync', False):
        return False
    wrapped = wrap(original)
    wrapped.sio_redis_sync = True
    server._handle_connect = wrapped
    return True


def register_connect_callback(connection, callback):
    """``callback(connection)`` after each connect of a redis-py
    ``Connection``: ``register_connect_callback``, public since redis-py 5.1;
    ``_register_connect_callback`` in 5.0 (the declared floor is 5.0.1)."""
    register = getattr(connection, 'register_connect_callback', None) or \
        connection._register_connect_callback
    register(callback)


def wrap_method(server, name, wrap, eio_event=None):
    """Replace the server's method ``name`` by ``wrap(original)``, once per
    server: ``_send_packet(eio_sid, packet)`` and
    ``_handle_eio_disconnect(eio_sid, reason)`` (5.12.0 to 5.18.1: the
    disconnect reason arrived in 5.12), for connection state recovery.

    :param eio_event: the Engine.IO event the method handles: the server
                      registered the bound method at its construction, so
                      the wrapper is registered again (``eio.on``, public).
    :return: False if the server has no such method (then nothing changed).
    """
    original = getattr(server, name, None)
    if original is None or getattr(original, 'sio_redis_sync', False):
        return original is not None
    wrapped = wrap(original)
    wrapped.sio_redis_sync = True
    setattr(server, name, wrapped)
    if eio_event is not None:
        server.eio.on(eio_event, wrapped)
    return True


def pre_connect_with_sid(manager, eio_sid, namespace, sid):
    """python-socketio's ``BaseManager.pre_connect`` with a given ``sid``
    (a recovered socket keeps its id): its body in 5.12.0 to 5.18.1, where
    ``pending_connect`` is a dict of lists.

    :return: ``sid``, or None if it is connected already.
    """
    try:
        manager.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
    except bidict.DuplicationError:  # connected already
        return None
    manager.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
    manager.pending_connect.setdefault(namespace, []).append(sid)
    return sid


def gets_disconnect_reason(server):
    """True if ``Server._handle_eio_disconnect`` takes the reason (5.12.0 on)."""
    method = getattr(server, '_handle_eio_disconnect', None)
    try:
        return method is not None and len(inspect.signature(method).parameters) >= 2
    except (TypeError, ValueError):
        return False


def has_pre_connect():
    """True if python-socketio's managers register a client in two steps,
    ``pre_connect(eio_sid, namespace)`` then ``connect(sid, namespace)``
    (5.18.0 on; before, ``connect(eio_sid, namespace)`` did both)."""
    from socketio import base_manager
    return hasattr(base_manager.BaseManager, 'pre_connect')
