"""StateRecovery: Socket.IO connection state recovery for the manager
(streams mode): pids, sessions kept in Redis, recovered sockets, missed packets.

A base of :class:`~sio_redis_sync.RedisManager`, before LocalClients: it hooks
the connect (pre_connect, the CONNECT packet's ``pid``) and the disconnect of
each socket; the codec and the Redis calls are :mod:`sio_redis_sync.recovery`'s.
"""
import threading
import time

from socketio import packet as sio_packet

from . import internals, recovery
from .exceptions import ProtocolError, PublishError, SioRedisError
from .protocol import Broadcast

#: how often the sessions of connected sockets are written again, as a share
#: of max_disconnection_duration (their expiry): a crashed server's clients
#: find their session for at least the remaining 3/4 of it
REFRESH_SHARE = 0.25
#: how often room changes and new sockets are written (seconds)
FLUSH_INTERVAL = 0.5


class StateRecovery:
    """What it uses of its host: the server (``server``), the dialect
    (``_dialect``), the publisher's client (``_publisher``), the worker
    (``_submit``), the lock and rooms of LocalClients, the logger."""

    def _init_recovery(self, option, streams):
        if option and not streams:
            raise ValueError("connection_state_recovery needs mode='streams'")
        self._recovery = recovery.options_of(option)
        self._recovery_after_fork()

    def _recovery_after_fork(self):
        """Nothing of recovery's state (also in a forked child: the parent's
        sockets, locks and refresher are not its own)."""
        self._pids = {}         # (namespace, sid) -> pid
        # (namespace, sid) -> its rooms (a dict as an ordered set): a socket's
        # rooms without scanning every room of the namespace
        self._socket_rooms = {}
        self._recovering = {}   # (eio_sid, namespace) -> session, while connecting
        self._recovered = set()  # (namespace, sid) recovered at its last connect
        self._leaving = {}      # eio_sid -> disconnect reason, while disconnecting
        self._dirty = set()     # (namespace, sid) whose session must be written
        self._dirty_lock = threading.Lock()
        # (namespace, sid) -> the session this server wrote last: it writes
        # again only over that (see SessionStore.save); one write at a time
        self._written = {}
        self._write_lock = threading.Lock()
        # a recovered socket's live events wait while its missed ones are
        # sent: (namespace, sid) -> [data], from its rooms' join to the end
        # of the catch-up; then those at or before the last entry it was sent
        # are dropped (a stream reader behind): (namespace, sid) -> offset
        self._catching_up = {}
        self._floors = {}
        self._catch_lock = threading.Lock()
        self._sessions = None
        self._refresher = None

    def recovered(self, sid, namespace='/'):
        """True if the socket ``sid`` got its previous session back when it
        connected (connection state recovery: same sid, rooms and session
        data, and the packets it missed); readable from the connect
        handler on. python-socketio has no ``socket.recovered``: this is it."""
        return (namespace or '/', sid) in self._recovered

    # ------------------------------------------------------------ seams

    def _hook_recovery(self, server):
        """Wrap the two server methods recovery needs; refuse loudly if this
        python-socketio lacks them."""
        if self._recovery is None:
            return
        ok = internals.has_pre_connect() and internals.gets_disconnect_reason(server) and \
            internals.wrap_method(server, '_send_packet', self._adding_pid) and \
            internals.wrap_method(server, '_handle_eio_disconnect', self._noting_reason,
                                  eio_event='disconnect')
        if not ok:
            raise SioRedisError('connection_state_recovery needs python-socketio >= 5.18 '
                                '(Manager.pre_connect, Server._send_packet and '
                                '_handle_eio_disconnect with its reason)')

    def _adding_pid(self, original):
        def send_packet(eio_sid, pkt):
            data = pkt.data
            if pkt.packet_type == sio_packet.CONNECT and isinstance(data, dict) and \
                    'sid' in data:
                pid = self._pids.get((pkt.namespace or '/', data['sid']))
                if pid is not None:
                    pkt.data = dict(data, pid=pid)
            return original(eio_sid, pkt)
        return send_packet

    def _noting_reason(self, original):
        def handle_eio_disconnect(eio_sid, reason=None):
            self._leaving[eio_sid] = reason
            try:
                return original(eio_sid, reason)
            finally:
                self._leaving.pop(eio_sid, None)
        return handle_eio_disconnect

    # ------------------------------------------------------------ connect

    def _before_connect(self, eio_sid, namespace, auth):
        """A client's CONNECT with ``{pid, offset}`` in its auth: take its
        session (once) and what it missed, for :meth:`pre_connect`."""
        if self._recovery is None or not isinstance(auth, dict):
            return
        pid, offset = auth.get('pid'), auth.get('offset')
        if pid is None or not recovery.valid_offset(offset) or self._sessions is None:
            return
        try:
            session = self._sessions.take(pid)
            if session is None:
                return
            entries = self._sessions.entries_after(self._dialect.stream_key(namespace), offset)
        except (PublishError, ProtocolError) as exc:
            self._log.warning('connection state recovery failed (%s): a new session', exc)
            return
        if entries is None:
            self._log.info('offset no longer in the stream: a new session')
            return
        session['missed'] = self._missed(namespace, session['rooms'], entries)
        session['last'] = entries[-1][0].decode('ascii') if entries else offset
        self._recovering[(eio_sid, namespace)] = session

    def _missed(self, namespace, rooms, entries):
        """The event data (offset appended) of the broadcasts in ``entries``
        that a socket in ``rooms`` was a target of."""
        missed = []
        for entry_id, fields in entries:
            try:
                if self._dialect.entry_namespace(fields) != namespace:
                    continue
                message = self._dialect.decode_entry(namespace, fields)
            except ProtocolError:
                continue
            if isinstance(message, Broadcast) and \
                    recovery.includes(rooms, message.rooms, message.except_):
                missed.append(message.data + [entry_id.decode('ascii')])
        return missed

    def pre_connect(self, eio_sid, namespace):
        session = self._recovering.get((eio_sid, namespace))
        sid = None
        if session is not None:
            with self._lock:
                sid = internals.pre_connect_with_sid(self, eio_sid, namespace, session['sid'])
                if sid is not None:
                    with self._catch_lock:  # before any broadcast can select it
                        self._catching_up[(namespace, sid)] = []
                        self._floors.pop((namespace, sid), None)
                    for room in session['rooms']:
                        if room != sid:
                            self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
            if sid is None:  # that sid is here already: a new session instead
                self._recovering.pop((eio_sid, namespace), None)
        if sid is None:
            sid = super().pre_connect(eio_sid, namespace)
            if sid is not None and self._recovery is not None:
                self._pids[(namespace, sid)] = recovery.new_pid()
                self._mark(namespace, sid)
            return sid
        self._subscribe(namespace)
        self._pids[(namespace, sid)] = session['pid']
        self._recovered.add((namespace, sid))
        self._mark(namespace, sid)
        if session['data'] is not None:
            self.server.save_session(sid, session['data'], namespace=namespace)
        return sid

    def _after_connect(self, eio_sid, namespace):
        """Send a recovered socket the packets it missed, after its CONNECT:
        those read before it joined its rooms, those added since (which its
        rooms may not have got), then the live ones held back meanwhile; each
        once, in the stream's order."""
        session = self._recovering.pop((eio_sid, namespace), None)
        if session is None:
            return
        key = (namespace, session['sid'])
        if not self.is_connected(session['sid'], namespace):
            with self._catch_lock:
                self._catching_up.pop(key, None)
            return
        missed, last = session['missed'], session['last']
        try:
            entries = self._sessions.entries_after(self._dialect.stream_key(namespace), last)
        except (PublishError, ProtocolError) as exc:
            entries = None
            self._log.warning('connection state recovery: cannot read the stream (%s)', exc)
        if entries:
            missed = missed + self._missed(namespace, session['rooms'], entries)
            last = entries[-1][0].decode('ascii')
        self._catch_up(namespace, session['sid'], eio_sid, missed,
                       recovery.offset_order(last))

    def _catch_up(self, namespace, sid, eio_sid, missed, floor):
        """Send ``missed``, then what was held back after ``floor`` (the last
        entry read), until nothing is; from then on the socket gets its
        events as they come, but those at or before ``floor``."""
        key, pending = (namespace, sid), missed
        while True:
            for data in pending:
                super()._deliver(namespace, data, {sid: eio_sid})
            with self._catch_lock:
                held = self._catching_up.get(key)
                if not held:
                    self._catching_up.pop(key, None)
                    self._floors[key] = floor
                    return
                self._catching_up[key] = []
            pending = []
            for data in held:
                order = recovery.offset_order(data[-1]) if data else None
                if order is None or order > floor:
                    pending.append(data)
                    floor = floor if order is None else order

    def _deliver(self, namespace, data, targets, callback=None, ttl=None):
        """LocalClients' ``_deliver``, but to sockets catching up: held
        back, or dropped if sent already (see :meth:`_catch_up`)."""
        if callback is None and targets and (self._catching_up or self._floors):
            targets = self._not_held_back(namespace, data, targets)
        return super()._deliver(namespace, data, targets, callback, ttl)

    def _not_held_back(self, namespace, data, targets):
        order = recovery.offset_order(data[-1]) if data else None
        with self._catch_lock:
            keys = [(namespace, sid) for sid in targets] \
                if len(targets) <= len(self._catching_up) + len(self._floors) else \
                [key for key in list(self._catching_up) + list(self._floors)
                 if key[0] == namespace and key[1] in targets]
            kept = None
            for key in keys:
                held = self._catching_up.get(key)
                floor = self._floors.get(key)
                if held is not None:
                    held.append(data)
                elif floor is None or order is None:
                    continue
                elif order > floor:  # the stream's order from here on: no floor needed
                    del self._floors[key]
                    continue
                if kept is None:
                    kept = dict(targets)
                kept.pop(key[1], None)
        return targets if kept is None else kept

    # ------------------------------------------------------------ offsets

    def _with_offset(self, message, entry_id):
        """A broadcast read from the stream, its entry id appended as the
        clients' offset (non-volatile events only, as Node)."""
        if self._recovery is None or not isinstance(message, Broadcast) or \
                message.flags.get('volatile'):
            return message
        return Broadcast(message.uid, message.nsp, message.data + [entry_id], message.rooms,
                         message.except_, message.flags)

    # ------------------------------------------------------------ sessions

    def _session_of(self, namespace, sid):
        """``(pid, encoded session)`` of a local socket, or None."""
        pid = self._pids.get((namespace, sid))
        if pid is None:
            return None
        with self._lock:
            rooms = list(self._socket_rooms.get((namespace, sid), ()))
        try:
            data = self.server.get_session(sid, namespace=namespace)
        except (KeyError, TypeError):  # the Engine.IO session is gone
            data = None
        try:
            return pid, recovery.encode_session(sid, pid, rooms, data)
        except TypeError:  # data msgpack cannot carry: rooms only
            return pid, recovery.encode_session(sid, pid, rooms, None)

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if room is not None and self._recovery is not None:
            with self._lock:
                self._socket_rooms.setdefault((namespace, sid), {})[room] = None
            self._mark(namespace, sid)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        if self._recovery is not None:
            with self._lock:
                self._socket_rooms.get((namespace, sid), {}).pop(room, None)
            self._mark(namespace, sid)

    def _mark(self, namespace, sid):
        with self._dirty_lock:
            self._dirty.add((namespace, sid))

    def basic_disconnect(self, sid, namespace, **kwargs):
        key = (namespace, sid)
        pid = self._pids.get(key)
        if pid is not None:
            reason = self._leaving.get(self.eio_sid_from_sid(sid, namespace))
            saved = self._session_of(namespace, sid)
            self._pids.pop(key, None)  # before the last write: no refresh after it
            if reason in recovery.RECOVERABLE:
                self._submit(self._write_sessions, [(key, saved)], True)
            else:
                self._submit(self._forget_session, key, pid)
        self._recovered.discard(key)
        with self._catch_lock:
            self._catching_up.pop(key, None)
            self._floors.pop(key, None)
        result = super().basic_disconnect(sid, namespace, **kwargs)
        with self._lock:
            self._socket_rooms.pop(key, None)
        with self._dirty_lock:
            self._dirty.discard(key)
        return result

    def _write_current(self, keys):
        """Write the sessions of the local sockets ``keys`` (refresher, close())."""
        self._write_sessions([(key, self._session_of(*key)) for key in keys])

    def _write_sessions(self, sessions, last=False):
        """Write ``(key, (pid, encoded))`` of ``sessions``, each over what this
        server wrote last, if anything: a socket whose session Redis holds
        no more as this server wrote it is another server's now (it recovered
        there while its connection here looked alive), or was taken: this
        server writes it no more. ``last``: the sockets left (recoverably)."""
        ttl = self._recovery['max_disconnection_duration']
        with self._write_lock:
            batch = [(key, found) for key, found in sessions if found is not None and
                     (last or self._pids.get(key) == found[0])]
            try:
                lost = set(self._sessions.save(
                    [(pid, encoded, self._written.get(key)) for key, (pid, encoded) in batch],
                    ttl))
            except PublishError as exc:
                self._log.warning('cannot keep %d session(s) for recovery: %s', len(batch), exc)
                if last:  # gone: nothing of theirs is kept here
                    for key, _ in batch:
                        self._written.pop(key, None)
                return
            for key, (pid, encoded) in batch:
                if last or pid in lost:
                    self._written.pop(key, None)
                else:
                    self._written[key] = encoded
                if pid in lost and not last:
                    self._pids.pop(key, None)  # at its disconnect: neither written nor deleted
        if lost:
            self._log.info('%d socket(s) recovered elsewhere while connected here (or Redis '
                           'lost their session): their session is no longer written here',
                           len(lost))

    def _forget_session(self, key, pid):
        with self._write_lock:
            try:
                self._sessions.forget([(pid, self._written.pop(key, None))])
            except PublishError as exc:
                self._log.warning('cannot delete a session: %s', exc)

    def _save_all_sessions(self):
        """Write the session of every local socket now (graceful shutdown)."""
        if self._recovery is None or self._sessions is None:
            return
        self._write_current(list(self._pids))

    # ------------------------------------------------------------ refresher

    def _start_recovery(self):
        """At initialize(): the store, and the task that keeps the sessions
        of connected sockets in Redis (so that a crash loses none)."""
        if self._recovery is None:
            return
        self._sessions = recovery.SessionStore(self._publisher.client)
        stop = threading.Event()
        self._refresher = stop
        self._spawn(self._refresh_sessions, stop)

    def _stop_recovery(self):
        stop, self._refresher = self._refresher, None
        if stop is not None:
            stop.set()

    def _refresh_sessions(self, stop):
        """Write new and changed sessions every FLUSH_INTERVAL, all of them
        every REFRESH_SHARE of their expiry; until ``stop``."""
        every = self._recovery['max_disconnection_duration'] * REFRESH_SHARE
        last_full = time.monotonic()
        sleep = self.server.sleep if self.server is not None else time.sleep
        while not stop.is_set():
            sleep(FLUSH_INTERVAL)
            if stop.is_set():
                break
            now = time.monotonic()
            with self._dirty_lock:
                dirty, self._dirty = self._dirty, set()
            if now - last_full >= every:
                last_full = now
                keys = list(self._pids)
            else:
                keys = list(dirty)
            if keys:
                self._write_current(keys)
