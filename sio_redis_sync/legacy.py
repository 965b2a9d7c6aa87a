"""The migration bridge from python-socketio's (and Flask-SocketIO's) own queue.

Owns the JSON format of python-socketio's ``PubSubManager`` channel (decoded
and encoded by pure functions, no I/O) and :class:`LegacyBridge`, which applies
those messages to a :class:`~sio_redis_sync.RedisManager`'s local clients and
mirrors the manager's own changes onto that channel for old servers.
"""
import base64
import binascii
import functools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Optional, Tuple

from . import protocol, classic
from .exceptions import ProtocolError, PublishError
from .protocol import RequestType

logger = logging.getLogger(__name__)
# While mirror writes fail, one error line per this many seconds.
LOG_EVERY = 10.0

#: the field that marks what a sio_redis_sync server mirrored: its peers got
#: the same change through the cluster protocol and drop this copy
MIRROR_MARK = 'sio_redis_sync'
PICKLE_MESSAGE = (
    'a pickled message: sent by python-socketio < 5.14 (Flask-SocketIO on '
    'such a python-socketio), whose queue format was pickle; it is never '
    'unpickled here (anyone able to publish could run code). Upgrade the '
    'sender to python-socketio >= 5.14, which sends JSON')


@dataclass(frozen=True)
class LegacyMessage:
    """One message of python-socketio's queue.

    ``args`` are the event's arguments (binary attachments rebuilt as
    bytes); ``rooms``/``skip`` are the ``room``/``skip_sid`` of an emit as
    tuples; ``callback`` is ``(room, namespace, ack id)`` when the sender
    waits for acks; ``mirrored`` is set on what a sio_redis_sync server sent.
    """
    method: str
    host_id: Optional[str]
    namespace: str = '/'
    event: Optional[str] = None
    args: Tuple = ()
    rooms: Tuple = ()
    skip: Tuple = ()
    callback: Optional[Tuple] = None
    sid: Optional[str] = None
    room: Optional[str] = None
    id: Optional[int] = None
    mirrored: bool = False


def _rebuild(value, attachments):
    """python-socketio's ``Packet.reconstruct_binary``, strict about indexes."""
    if isinstance(value, list):
        return [_rebuild(item, attachments) for item in value]
    if isinstance(value, dict):
        if value.get('_placeholder') is True and 'num' in value:
            num = value['num']
            if not isinstance(num, int) or isinstance(num, bool) \
                    or not 0 <= num < len(attachments):
                raise ProtocolError('binary placeholder %s has no attachment'
                                    % protocol.quote(num))
            return attachments[num]
        return {k: _rebuild(v, attachments) for k, v in value.items()}
    return value


def _strip(value, attachments):
    """python-socketio's ``Packet.deconstruct_binary``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        attachments.append(bytes(value))
        return {'_placeholder': True, 'num': len(attachments) - 1}
    if isinstance(value, (list, tuple)):
        return [_strip(item, attachments) for item in value]
    if isinstance(value, dict):
        return {k: _strip(v, attachments) for k, v in value.items()}
    return value


def _args_of(message):
    data = message.get('data')
    if protocol.as_bool(message, 'binary'):
        if not isinstance(data, list) or not data:
            raise ProtocolError('binary emit data must be [structure, '
                                'base64 attachments...]')
        try:
            attachments = [base64.b64decode(a, validate=True) for a in data[1:]]
        except (TypeError, ValueError, binascii.Error) as exc:
            raise ProtocolError('bad base64 attachment: %s'
                                % protocol.quote(str(exc), 80)) from exc
        try:
            data = _rebuild(data[0], attachments)
        except RecursionError as exc:
            raise ProtocolError('binary emit data nested too deeply') from exc
    if not isinstance(data, list):
        return (data,)
    if data == [None]:  # emit(event) with no data: python-socketio sends [None]
        return ()
    return tuple(data)


def _rooms(value, what):
    if value is None:
        return ()
    values = value if isinstance(value, list) else [value]
    for room in values:
        if not isinstance(room, (str, int)) or isinstance(room, bool):
            raise ProtocolError('%s must be a room (a string or an integer) or '
                                'a list of rooms' % what)
    return tuple(values)


def _str(message, name, required=True):
    value = message.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ProtocolError('%s must be a string, got %s'
                            % (name, protocol.quote(value)))
    return value


def _ack_id(value, what):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError('%s must be an ack id (an integer >= 0), got %s'
                            % (what, protocol.quote(value)))
    return value


def _parse_emit(message):
    callback = message.get('callback')
    if callback is not None:
        if not isinstance(callback, list) or len(callback) != 3:
            raise ProtocolError('callback must be [room, namespace, id]')
        room, namespace, ack_id = callback
        if not isinstance(namespace, str):
            raise ProtocolError('callback namespace must be a string, got %s'
                                % protocol.quote(namespace))
        callback = (protocol.as_room(room, 'callback room'), namespace,
                    _ack_id(ack_id, 'callback id'))
    return {'event': _str(message, 'event'), 'args': _args_of(message),
            'rooms': _rooms(message.get('room'), 'room'),
            'skip': _rooms(message.get('skip_sid'), 'skip_sid'),
            'callback': callback}


def _parse_callback(message):
    args = message.get('args')
    if not isinstance(args, list):
        raise ProtocolError('callback args must be a list')
    return {'sid': _str(message, 'sid'), 'id': _ack_id(message.get('id'), 'id'),
            'args': tuple(args)}


def _parse_room_change(message):
    # never None: that is python-socketio's room of every connected socket
    return {'sid': _str(message, 'sid'),
            'room': protocol.as_room(message.get('room'), 'room')}


_PARSERS = {
    'emit': _parse_emit,
    'callback': _parse_callback,
    'disconnect': lambda message: {'sid': _str(message, 'sid')},
    'enter_room': _parse_room_change,
    'leave_room': _parse_room_change,
    'close_room': lambda message: {
        'room': protocol.as_room(message.get('room'), 'room')},
}


def decode_legacy(payload: bytes) -> LegacyMessage:
    """Decode one message of python-socketio's queue (JSON only).

    :raises ProtocolError: for a pickled message (python-socketio < 5.14),
                           anything that is not a JSON object with a known
                           ``method``, or fields of the wrong type (a room
                           is a str or an int: a ``close_room`` without one
                           would close python-socketio's room of every
                           connected socket).
    """
    if payload[:1] == b'\x80':
        raise ProtocolError(PICKLE_MESSAGE)
    message = protocol.loads_json(payload)
    if not isinstance(message, dict):
        raise ProtocolError('a python-socketio queue message is a JSON object')
    method = message.get('method')
    if not isinstance(method, str) or method not in _PARSERS:
        raise ProtocolError('unknown method %s' % protocol.quote(method))
    namespace = message.get('namespace')
    if namespace is None or namespace == '':
        namespace = '/'
    elif not isinstance(namespace, str):
        raise ProtocolError('namespace must be a string')
    return LegacyMessage(method=method, host_id=_str(message, 'host_id', False),
                         namespace=namespace,
                         mirrored=bool(message.get(MIRROR_MARK)),
                         **_PARSERS[method](message))


def _dumps(message):
    return protocol.dumps_json(message)


def encode_emit(host_id, event, args, namespace='/', rooms=(), skip=(),
                callback=None, mark=True) -> bytes:
    """An ``emit`` message as python-socketio >= 5.14 writes it (binary
    arguments as placeholders plus base64 attachments)."""
    attachments: list = []
    data = _strip(list(args) if args else [None], attachments)
    binary = bool(attachments)
    if binary:
        data = [data] + [base64.b64encode(a).decode('ascii') for a in attachments]
    message = {'method': 'emit', 'event': event, 'data': data, 'binary': binary,
               'namespace': namespace, 'room': _one_or_list(rooms),
               'skip_sid': _one_or_list(skip),
               'callback': list(callback) if callback else None,
               'host_id': host_id}
    if mark:
        message[MIRROR_MARK] = True
    return _dumps(message)


def _one_or_list(rooms):
    if not rooms:
        return None
    return rooms[0] if len(rooms) == 1 else list(rooms)


def encode_room_change(method, host_id, sid, room, namespace='/') -> bytes:
    """``enter_room`` / ``leave_room`` of one sid (marked as mirrored)."""
    return _dumps({'method': method, 'sid': sid, 'room': room,
                   'namespace': namespace, 'host_id': host_id, MIRROR_MARK: True})


def encode_close_room(host_id, room, namespace='/') -> bytes:
    return _dumps({'method': 'close_room', 'room': room, 'namespace': namespace,
                   'host_id': host_id, MIRROR_MARK: True})


def encode_disconnect(host_id, sid, namespace='/') -> bytes:
    return _dumps({'method': 'disconnect', 'sid': sid, 'namespace': namespace,
                   'host_id': host_id, MIRROR_MARK: True})


def encode_callback(host_id, sid, namespace, callback_id, args) -> bytes:
    """The ack of a client, sent back to the python-socketio server
    ``host_id`` that emitted with a callback."""
    return _dumps({'method': 'callback', 'host_id': host_id, 'sid': sid,
                   'namespace': namespace, 'id': callback_id,
                   'args': list(args)})


def mirror_messages(key, host_id, channel, payload):
    """What python-socketio servers need to see of one message a
    sio_redis_sync server published on ``channel``: a list of legacy
    payloads (empty for what has no legacy form, like cluster queries).

    Emits (with or without acks; the legacy copy asks for none), and joins,
    leaves and disconnects of sids or of a room's members translate; a
    selection with ``except`` rooms, or of every socket, does not.
    """
    if channel.startswith(key + '#'):
        message = classic.decode_broadcast(payload)
        return [encode_emit(host_id, message.data[0], message.data[1:],
                            message.nsp, message.rooms, message.except_)]
    if not channel.startswith(key + '-request#'):
        return []
    nsp = channel[len(key) + len('-request#'):-1]
    request = classic.decode_request(payload)
    kind = request.type
    if kind == RequestType.BROADCAST:
        data = request.packet['data']
        return [encode_emit(host_id, data[0], data[1:], nsp, request.rooms,
                            request.except_)]
    if kind not in _SELECTION_TYPES or request.except_ or not request.rooms \
            or request.sid is not None:
        return []
    return _SELECTION_TYPES[kind](host_id, nsp, request)


def _mirror_join(host_id, nsp, request):
    return [encode_room_change('enter_room', host_id, sid, room, nsp)
            for sid in request.rooms for room in request.rooms_arg]


def _mirror_leave(host_id, nsp, request):
    if request.rooms == request.rooms_arg:  # every member leaves: close_room
        return [encode_close_room(host_id, room, nsp) for room in request.rooms]
    return [encode_room_change('leave_room', host_id, sid, room, nsp)
            for sid in request.rooms for room in request.rooms_arg]


def _mirror_disconnect(host_id, nsp, request):
    return [encode_disconnect(host_id, sid, nsp) for sid in request.rooms]


_SELECTION_TYPES = {
    RequestType.REMOTE_JOIN: _mirror_join,
    RequestType.REMOTE_LEAVE: _mirror_leave,
    RequestType.REMOTE_DISCONNECT: _mirror_disconnect,
}


class LegacyBridge:
    """Connects a :class:`~sio_redis_sync.RedisManager` to python-socketio's
    queue ``channel`` during a migration.

    Messages read there are applied to this server's own clients only (each
    server, old or new, handles its own; nothing read there is published
    again). With ``mirror``, what this server publishes for the cluster is
    also written there in the legacy format, so that clients of old
    python-socketio servers get it too; those copies carry
    :data:`MIRROR_MARK`, and sio_redis_sync servers drop them (they got the
    original).

    :param manager: the manager it serves (its public ``host_id``, ``key``,
                    ``basic_close_room``).
    :param channel: the legacy channel (``'flask-socketio'`` or
                    ``'socketio'``).
    :param mirror: also publish this server's emits and room changes there.
    :param handle: ``handle(namespace, message)``: the manager's way to act
                   on a decoded Request (joins, leaves, disconnects).
    :param deliver_event: ``deliver_event(namespace, data, rooms, skip,
                          callback)``: delivery to the manager's clients.
    :param publish: ``publish(channel, payload)``: the manager's publisher.
    """

    def __init__(self, manager, channel, mirror=True, log=None, *, handle,
                 deliver_event, publish):
        if not isinstance(channel, str) or not channel:
            raise ValueError('legacy_channel must be a non-empty string')
        self.manager = manager
        self.channel = channel
        self.channel_bytes = channel.encode('utf-8')
        self.mirror_enabled = mirror
        self._log = log or logger
        self._handle = handle
        self._deliver_event = deliver_event
        self._publish = publish
        #: mirror writes that failed after the real publish succeeded
        self.mirror_failures = 0
        self._mirror_lock = threading.Lock()
        self._mirror_logged_at = None
        self._handlers = {
            'emit': self._on_emit,
            'callback': self._on_callback,
            'disconnect': self._on_disconnect,
            'enter_room': self._on_enter_room,
            'leave_room': self._on_leave_room,
            'close_room': self._on_close_room,
        }

    def after_fork(self):
        """In a forked child: a new lock."""
        self._mirror_lock = threading.Lock()

    # ------------------------------------------------ from the legacy channel

    def on_message(self, namespace, channel, data):
        """The manager's route for the legacy channel (``namespace`` is
        unused: each message names its own).

        :raises ProtocolError: for a message that does not decode (the
                               manager logs, counts and drops it).
        """
        message = decode_legacy(data)
        if message.method != 'callback' and (
                message.mirrored or message.host_id == self.manager.host_id):
            return  # ours, or a sio_redis_sync peer's: applied natively
        self._handlers[message.method](message)

    def _on_emit(self, message):
        callback = None
        if message.callback is not None:
            # as python-socketio: each client's ack goes back to the sender
            callback = functools.partial(self._return_callback, message.host_id,
                                         *message.callback)
        self._deliver_event(message.namespace, [message.event, *message.args],
                            message.rooms, message.skip, callback)

    def _return_callback(self, host_id, sid, namespace, callback_id, *args):
        try:
            self._publish(self.channel, encode_callback(
                host_id, sid, namespace, callback_id, args))
        except PublishError:
            pass  # logged and counted by the publisher; the sender times out

    def _on_callback(self, message):
        if message.host_id == self.manager.host_id:
            # never happens: this server does not ask for acks on this channel
            self._log.warning('ignoring a python-socketio callback message for '
                              'this server (it sent no emit with a callback '
                              'on %r)', self.channel)

    # one socket's disconnect, join, leave: the legacy forms of the classic
    # requests, handled as the manager handles those (no request id: no answer)
    def _on_disconnect(self, message):
        self._handle(message.namespace, protocol.Request(
            RequestType.REMOTE_DISCONNECT, sid=message.sid))

    def _on_enter_room(self, message):
        self._handle(message.namespace, protocol.Request(
            RequestType.REMOTE_JOIN, sid=message.sid, room=message.room))

    def _on_leave_room(self, message):
        self._handle(message.namespace, protocol.Request(
            RequestType.REMOTE_LEAVE, sid=message.sid, room=message.room))

    def _on_close_room(self, message):
        self.manager.basic_close_room(message.room, message.namespace)

    # --------------------------------------------------- to the legacy channel

    def mirror(self, channel, payload):
        """Write the legacy form of what the manager just published on
        ``channel`` (when mirroring is on).

        A write Redis refuses is counted (:attr:`mirror_failures`) and logged
        (once per :data:`LOG_EVERY` seconds), not raised: the real publish
        succeeded, and a caller that retried would duplicate it.
        """
        if not self.mirror_enabled:
            return
        manager = self.manager
        try:
            messages = mirror_messages(manager.key, manager.host_id, channel,
                                       payload)
        except ProtocolError:  # not a message of ours to translate
            return
        try:
            for message in messages:
                self._publish(self.channel, message)
        except PublishError as exc:
            # the real publish succeeded: raising would make the caller
            # publish it again
            self._mirror_failed(exc)

    def _mirror_failed(self, exc):
        now = time.monotonic()
        with self._mirror_lock:
            self.mirror_failures += 1
            logged = self._mirror_logged_at
            if logged is not None and now - logged < LOG_EVERY:
                return
            self._mirror_logged_at = now
            failures = self.mirror_failures
        self._log.error('legacy mirror write failed (%s); the message itself '
                        'was published (%d mirror failures so far)', exc,
                        failures)
