"""LocalClients: the clients of this server: room bookkeeping under one lock,
selection by Node's rules, delivery, and ack callbacks that expire.

A base of :class:`~sio_redis_sync.RedisManager` over python-socketio's
``Manager``; it publishes nothing (the manager's hooks ``_subscribe``,
``_room_created`` and ``_room_deleted`` follow the rooms for the listener).
"""
import functools
import json
import threading
import time

import socketio
from socketio import packet as sio_packet

from . import internals
from .cluster_api import handshake
from .requests import Deadlines
from .internals import forward_members

# what python-socketio's Packet.encode does for a text event, without making
# a new encoder each time
_encode_json = json.JSONEncoder(separators=(',', ':')).encode


def event_packets(packet_class, namespace, data):
    """The Engine.IO packets of an EVENT, encoded once for every recipient.

    Text events of the default JSON packet class are written directly (the
    same string as ``Packet.encode``, without its per-packet binary scan);
    anything else, binary data included, goes through ``packet_class``.
    """
    if packet_class is sio_packet.Packet and packet_class.json.dumps is json.dumps:
        try:
            text = _encode_json(data)
        except TypeError:  # bytes somewhere: a binary event
            pass
        else:
            prefix = '2' if namespace == '/' else '2%s,' % namespace
            return [internals.message_packet(prefix + text)]
    encoded = packet_class(sio_packet.EVENT, namespace=namespace, data=data).encode()
    if not isinstance(encoded, list):
        encoded = [encoded]
    return [internals.message_packet(p) for p in encoded]



class LocalClients(socketio.Manager):
    """python-socketio's room bookkeeping made thread-safe (one ``RLock``,
    ``self._lock``), plus what the cluster needs of this server's clients:
    their Node-shaped handshakes, the selection of a broadcast's targets,
    delivery encoded once for all of them, and ack ids forgotten after a
    deadline (python-socketio keeps unanswered ones until the client leaves).

    :param header_filter: which handshake headers are shared (see
                          :func:`~sio_redis_sync.cluster_api.handshake`).
    :param ack_ttl: the default lifetime of an ack callback, in seconds.
    :param log: the logger.
    """

    def __init__(self, header_filter, ack_ttl, log):
        super().__init__()
        self._lock = threading.RLock()
        self._header_filter = header_filter
        self.ack_ttl = ack_ttl
        self._log = log
        self._handshakes = {}       # (namespace, sid) -> Node-shaped handshake
        self._auth = {}             # (eio_sid, namespace) -> auth, while connecting
        # of the callbacks: keys (sid, ack id)
        self._ack_deadlines = Deadlines(self._ack_alive)

    def set_server(self, server):
        super().set_server(server)
        # python-socketio keeps no client's auth payload; Node's handshake has
        # it, so note it while the connection is being accepted
        internals.wrap_handle_connect(server, self._noting_auth)
        self._hook_recovery(server)

    def _noting_auth(self, original):
        @functools.wraps(original)
        def handle_connect(eio_sid, namespace, data):
            key = (eio_sid, namespace or '/')
            self._auth[key] = data
            try:
                self._before_connect(eio_sid, namespace or '/', data)
                return original(eio_sid, namespace, data)
            finally:
                self._auth.pop(key, None)
                self._after_connect(eio_sid, namespace or '/')
        return handle_connect

    def _hook_recovery(self, server):
        """Connection state recovery's seams (StateRecovery's)."""

    def _before_connect(self, eio_sid, namespace, auth):
        """A client's CONNECT to ``namespace`` is about to be handled."""

    def _after_connect(self, eio_sid, namespace):
        """A client's CONNECT was handled (accepted or refused)."""

    # hooks of the listening side (RedisManager's)
    def _subscribe(self, namespace):
        """Listen to ``namespace`` (nothing here)."""

    def _room_created(self, namespace, room):
        """``room`` got its first local member (under the lock)."""

    def _room_deleted(self, namespace, room):
        """``room`` has no local member left (under the lock)."""

    def pre_connect(self, eio_sid, namespace):
        with self._lock:
            sid = super().pre_connect(eio_sid, namespace)
        self._subscribe(namespace)
        return sid

    def connect(self, sid, namespace):
        with self._lock:
            sid = super().connect(sid, namespace)
        server = self.server
        if sid is not None and server is not None:
            eio_sid = self.eio_sid_from_sid(sid, namespace)
            environ = getattr(server, 'environ', None)
            self._handshakes[(namespace, sid)] = handshake(
                environ.get(eio_sid) if isinstance(environ, dict) else None,
                self._auth.get((eio_sid, namespace)),
                headers=self._header_filter)
        return sid

    def pre_disconnect(self, sid, namespace):
        with self._lock:
            return super().pre_disconnect(sid, namespace)

    def basic_disconnect(self, sid, namespace, **kwargs):
        self._handshakes.pop((namespace, sid), None)
        with self._lock:
            acks = self.callbacks.get(sid)
            gone = len(acks) - (0 in acks) if acks else 0
            result = super().basic_disconnect(sid, namespace, **kwargs)
            if gone and sid not in self.callbacks:
                self._acks_gone(gone)
            return result

    def _handshake_of(self, sid, namespace):
        found = self._handshakes.get((namespace, sid))
        if found is None:  # connected before this manager kept handshakes
            found = handshake({}, headers=self._header_filter)
        return found

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        with self._lock:
            created = room not in self.rooms.get(namespace, ())
            result = super().basic_enter_room(sid, namespace, room,
                                              eio_sid=eio_sid)
            if created and room in self.rooms.get(namespace, ()):
                self._room_created(namespace, room)
            return result

    def basic_leave_room(self, sid, namespace, room):
        with self._lock:
            result = super().basic_leave_room(sid, namespace, room)
            if room not in self.rooms.get(namespace, ()):
                self._room_deleted(namespace, room)
            return result

    def basic_close_room(self, room, namespace):
        with self._lock:
            result = super().basic_close_room(room, namespace)
            if room not in self.rooms.get(namespace, ()):
                self._room_deleted(namespace, room)
            return result

    def get_namespaces(self):
        """The namespaces with clients on this server (a snapshot)."""
        with self._lock:
            return list(self.rooms)

    def get_participants(self, namespace, room):
        """The ``(sid, eio_sid)`` pairs of ``room`` on this server only."""
        with self._lock:
            participants = list(super().get_participants(namespace, room))
        yield from participants

    def get_rooms(self, sid, namespace):
        with self._lock:
            return super().get_rooms(sid, namespace)

    def _select(self, namespace, rooms, except_):
        """Local sockets targeted by ``rooms``/``except_`` (Node's rules):
        ``{sid: eio_sid}``, a snapshot taken under the lock."""
        with self._lock:
            ns = self.rooms.get(namespace)
            if not ns:
                return {}
            if rooms:
                targets = {}
                for room in rooms:
                    members = ns.get(room)
                    if members:
                        targets.update(forward_members(members))
            else:
                targets = dict(forward_members(ns.get(None, {})))
            for room in except_:
                for sid in ns.get(room, ()):
                    targets.pop(sid, None)
        return targets

    def _is_local(self, sid, namespace):
        return self.is_connected(sid, namespace) or \
            self.is_pre_connected(sid, namespace)

    def _all_local_sids(self, namespace, rooms):
        """True if ``rooms`` name only sockets of this server (sids are
        unique in the cluster, so nobody else needs the message)."""
        return bool(rooms) and all(
            isinstance(room, str) and self.is_connected(room, namespace)
            for room in rooms)

    def _deliver(self, namespace, data, targets, callback=None, ttl=None):
        """Send an event to the local sockets ``targets`` ({sid: eio_sid}).

        With a ``callback``, each client gets its own ack id, kept ``ttl``
        seconds (default ``ack_ttl``); returns ``{sid: ack id}``.
        """
        if not targets:
            return {}
        server = self.server
        if callback is not None:
            ack_ids = {}
            for sid, eio_sid in targets.items():
                ack_ids[sid] = self._generate_ack_id(sid, callback, ttl)
                internals.send_packet(server, eio_sid, server.packet_class(
                    sio_packet.EVENT, namespace=namespace, data=data,
                    id=ack_ids[sid]))
            return ack_ids
        packets = event_packets(server.packet_class, namespace, data)
        send = internals.eio_packet_sender(server)
        if len(packets) == 1:
            pkt = packets[0]
            for eio_sid in targets.values():
                send(eio_sid, pkt)
        else:
            for eio_sid in targets.values():
                for pkt in packets:
                    send(eio_sid, pkt)
        return {}

    def _generate_ack_id(self, sid, callback, ttl=None):
        """An ack id for ``callback``, forgotten after ``ttl`` seconds
        (python-socketio keeps unanswered ones until the client leaves)."""
        now = time.monotonic()
        with self._lock:
            self._expire_acks(now)
            ack_id = super()._generate_ack_id(sid, callback)
            self._ack_deadlines.add(now + (self.ack_ttl if ttl is None else ttl),
                                    (sid, ack_id))
        return ack_id

    def _ack_alive(self, key):
        sid, ack_id = key
        return ack_id in self.callbacks.get(sid, ())

    def _acks_gone(self, count):
        """``count`` callbacks left before their deadline (answered,
        forgotten, or their client left): see :class:`Deadlines`."""
        self._ack_deadlines.forgotten(count)

    def _expire_acks(self, now):
        for sid, ack_id in self._ack_deadlines.pop_expired(now):
            self.callbacks[sid].pop(ack_id, None)

    def _forget_ack(self, sid, ack_id):
        # python-socketio's id counter (key 0) stays: a late ack must never
        # meet a new callback under a reused id
        if self.callbacks.get(sid, {}).pop(ack_id, None) is not None:
            self._acks_gone(1)

    def _forget_acks(self, ack_ids):
        """Drop the callbacks of ``{sid: ack id}`` (their request is over)."""
        with self._lock:
            for sid, ack_id in ack_ids.items():
                self._forget_ack(sid, ack_id)

    def trigger_callback(self, sid, id, data):
        with self._lock:
            self._expire_acks(time.monotonic())
            callback = self.callbacks.get(sid, {}).pop(id, None)
            if callback is not None:
                self._acks_gone(1)
        if callback is None:
            self._log.warning('Unknown callback received, ignoring.')
            return
        callback(*data)

    def _pending_acks(self):
        """Callbacks waiting for a client's ack (expired ones dropped first)."""
        with self._lock:
            self._expire_acks(time.monotonic())
            return sum(len(acks) - (0 in acks) for acks in self.callbacks.values())
