"""Routes: which namespace each subscription of a listener serves, and the room
channels (sharded dynamic modes) that follow the rooms this server hosts.

Owns that table and its lock; what to subscribe comes from the dialect, the
subscribing itself is the listener's. Holds no reference to a manager.
"""
import threading


class Routes:
    """The subscriptions of one listening server, by namespace.

    :param dialect: the wire mode's dialect (its ``subscriptions`` and
                    ``room_channel``).
    """

    def __init__(self, dialect):
        self.dialect = dialect
        self._lock = threading.Lock()
        self._namespaces = {}  # channel or pattern (bytes) -> namespace
        self._rooms = {}       # namespace -> rooms whose channel is subscribed
        # the namespaces' own subscriptions (bytes): a room whose channel is
        # one of them (a room named like this server's uid has the channel of
        # its answers, in sharded mode) never subscribes or unsubscribes it
        self._fixed = set()
        self._served = set()   # the namespaces subscribed

    def serves(self, nsp):
        """True if ``nsp`` is subscribed (streams mode reads the entries of
        these namespaces only)."""
        return nsp in self._served

    def namespace_of(self, channel, pattern):
        """The namespace whose subscription delivered the message, or None."""
        return self._namespaces.get(pattern or channel)

    def add_namespace(self, listener, nsp, uid):
        """Subscribe ``listener`` to ``nsp`` (once).

        :return: True if it was subscribed just now.
        """
        wanted = self.dialect.subscriptions(nsp, uid)
        names = wanted.channels + wanted.patterns
        with self._lock:
            if names[0].encode('utf-8') in self._namespaces:
                return False
            for name in names:
                self._namespaces[name.encode('utf-8')] = nsp
                self._fixed.add(name.encode('utf-8'))
            self._served.add(nsp)
        listener.subscribe(channels=list(wanted.channels), patterns=list(wanted.patterns))
        return True

    def add_room(self, listener, nsp, room, is_local_sid):
        """Subscribe the channel of ``room`` if the dialect gives it one (the
        room just got its first local member)."""
        channel = self.dialect.room_channel(nsp, room, is_local_sid)
        if channel is None or listener is None:
            return
        key = channel.encode('utf-8')
        with self._lock:
            subscribed = self._rooms.setdefault(nsp, set())
            if room in subscribed or key in self._fixed:
                return
            subscribed.add(room)
            self._namespaces[key] = nsp
        listener.subscribe(channels=[channel])

    def remove_room(self, listener, nsp, room):
        """Unsubscribe the channel of ``room`` if it was subscribed (the room
        has no local member left)."""
        with self._lock:
            subscribed = self._rooms.get(nsp, set())
            if room not in subscribed:
                return
            subscribed.discard(room)
            channel = self.dialect.channels(nsp).room(room)
            key = channel.encode('utf-8')
            if key in self._fixed:
                return  # the namespace's own subscription: it stays
            self._namespaces.pop(key, None)
        if listener is not None:
            listener.unsubscribe(channels=[channel])

    def clear(self):
        """The listener is gone: nothing is subscribed any more."""
        with self._lock:
            self._namespaces.clear()
            self._rooms.clear()
            self._fixed.clear()
            self._served.clear()

    def after_fork(self):
        """In a forked child: a new lock, nothing subscribed."""
        self._lock = threading.Lock()
        self._namespaces = {}
        self._rooms = {}
        self._fixed = set()
        self._served = set()
