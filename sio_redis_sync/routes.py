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
        listener.subscribe(channels=list(wanted.channels), patterns=list(wanted.patterns))
        return True

    def add_room(self, listener, nsp, room, is_local_sid):
        """Subscribe the channel of ``room`` if the dialect gives it one (the
        room just got its first local member)."""
        channel = self.dialect.room_channel(nsp, room, is_local_sid)
        if channel is None or listener is None:
            return
        with self._lock:
            subscribed = self._rooms.setdefault(nsp, set())
            if room in subscribed:
                return
            subscribed.add(room)
            self._namespaces[channel.encode('utf-8')] = nsp
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
            self._namespaces.pop(channel.encode('utf-8'), None)
        if listener is not None:
            listener.unsubscribe(channels=[channel])

    def clear(self):
        """The listener is gone: nothing is subscribed any more."""
        with self._lock:
            self._namespaces.clear()
            self._rooms.clear()

    def after_fork(self):
        """In a forked child: a new lock, nothing subscribed."""
        self._lock = threading.Lock()
        self._namespaces = {}
        self._rooms = {}
