"""The two dialects a RedisManager speaks: classic (createAdapter) and sharded
(createShardedAdapter), behind one seam.

Owns, per dialect, what the manager's operations become on the wire (channel,
bytes, whether the delivery check applies), its subscriptions and routes, its
publisher and listener, and (sharded) the room channels that follow the rooms.
"""
import threading
import urllib.parse

from . import connection, envelope, protocol
from .envelope import MessageType
from .exceptions import SioRedisError
from .listener import Listener
from .publisher import Publisher
from .sharded import (ClusterListener, ClusterPublisher, ShardedPublisher, node_client,
                      check_server)

#: the values of RedisManager's ``mode``
CLASSIC = 'classic'
SHARDED = 'sharded'
def _ack_fields(values):
    """``(packet, packets)`` of one client's ack values (a list): Node's
    ``packet`` (the first) and, for Python servers, every value in
    ``packets`` (Node ignores it) unless there is exactly one, the common
    case, whose bytes stay Node's."""
    packet = values[0] if values else None
    return packet, (None if len(values) == 1 else list(values))


def _encode_classic_ack(request_id, values):
    packet, packets = _ack_fields(values)
    return protocol.encode_broadcast_ack(request_id, packet, packets)


class ClassicWire:
    """Node's ``createAdapter`` protocol: PUBLISH/PSUBSCRIBE, requests on
    ``K-request#N#``, answers on ``K-response#N#``."""

    def __init__(self, manager):
        self.m = manager

    def new_publisher(self, url, options, **kwargs):
        return Publisher(url, options, **kwargs)

    def check_server(self):
        """Nothing to check: classic works on every Redis."""

    def new_listener(self):
        m = self.m
        return Listener(m._new_pubsub, m._on_message, m._log,
                        where=connection.redact(m.url),
                        secrets=connection.secrets(m.url, m.redis_options),
                        health_check_interval=m.health_check_interval,
                        health_check_timeout=m.health_check_timeout)

    def channels(self, namespace):
        return protocol.Channels(self.m.key, namespace)

    def subscribe(self, namespace):
        """One pattern for the broadcasts of ``namespace``, and the request
        channel exactly once (Node counts servers with NUMSUB)."""
        m = self.m
        channels = m._channels_of(namespace)
        requests = channels.request.encode()
        if requests in m._routes:
            return
        responses = [channels.response, channels.response_for(m.uid)]
        with m._lock:
            m._routes[channels.broadcast_pattern.encode()] = (
                m._on_broadcast, namespace)
            for channel in responses:
                m._routes[channel.encode()] = (m._on_response, namespace)
            m._routes[requests] = (m._on_request, namespace)
        m._listener.subscribe(channels=[channels.request] + responses,
                              patterns=[channels.broadcast_pattern])

    def room_created(self, namespace, room):
        """Nothing: one pattern covers every room."""

    def room_deleted(self, namespace, room):
        """Nothing: one pattern covers every room."""

    def forget_rooms(self):
        """Nothing: no room has a subscription of its own."""

    def after_fork(self):
        """In a forked child: nothing of the wire's own to renew."""

    def server_count(self, namespace):
        return self.m._publisher.numsub(self.m._channels_of(namespace).request)

    # ------------------------------------------------ what gets published
    # each returns (channel, payload, channels for the delivery check or None)

    def _request(self, namespace, payload):
        channels = self.m._channels_of(namespace)
        return channels.request, payload, channels

    def emit(self, namespace, data, rooms, skip):
        channels = self.m._channels_of(namespace)
        return (channels.for_rooms(rooms),
                protocol.encode_broadcast(self.m.uid, namespace, data, rooms, skip),
                channels)

    def emit_request(self, namespace, request_id, data, rooms, skip, flags):
        return self._request(namespace, protocol.encode_broadcast_request(
            self.m.uid, request_id, namespace, data, rooms, skip, flags))

    def join(self, namespace, selection, skip, rooms):
        return self._request(namespace, protocol.encode_remote_join(
            self.m.uid, selection, skip, rooms))

    def leave(self, namespace, selection, skip, rooms):
        return self._request(namespace, protocol.encode_remote_leave(
            self.m.uid, selection, skip, rooms))

    def disconnect(self, namespace, selection, skip, close):
        return self._request(namespace, protocol.encode_remote_disconnect(
            self.m.uid, selection, skip, close))

    def server_side_emit(self, namespace, data, request_id=None):
        return self._request(namespace, protocol.encode_server_side_emit(
            self.m.uid, data, request_id))

    def fetch_sockets(self, namespace, request_id, rooms, skip):
        return self._request(namespace, protocol.encode_fetch_sockets(
            self.m.uid, request_id, rooms, skip))

    def all_rooms(self, namespace, request_id):
        return self._request(namespace, protocol.encode_all_rooms(
            self.m.uid, request_id))

    def answer(self, namespace, request, kind, value):
        """The answer ``kind`` (``sockets``, ``rooms``, ``sids``,
        ``server_side_emit``, ``client_count``, ``ack``) to ``request``;
        ``ack``'s value is the list of every value the client acked."""
        channel = self.m._channels_of(namespace).response
        return channel, _CLASSIC_ANSWERS[kind](request.request_id, value), None


_CLASSIC_ANSWERS = {
    'sockets': lambda request_id, value: protocol.encode_response(
        {'requestId': request_id, 'sockets': value}),
    'sids': lambda request_id, value: protocol.encode_response(
        {'requestId': request_id, 'sockets': value}),
    'rooms': lambda request_id, value: protocol.encode_response(
        {'requestId': request_id, 'rooms': value}),
    # Node publishes these on the common channel whatever its options
    'server_side_emit': lambda request_id, value: protocol.encode_response({
        'type': protocol.RequestType.SERVER_SIDE_EMIT.value,
        'requestId': request_id, 'data': value}),
    'client_count': protocol.encode_client_count,
    'ack': _encode_classic_ack,
}
_SHARDED_ANSWERS = {
    'sockets': MessageType.FETCH_SOCKETS_RESPONSE,
    'server_side_emit': MessageType.SERVER_SIDE_EMIT_RESPONSE,
    'client_count': MessageType.BROADCAST_CLIENT_COUNT,
    'ack': MessageType.BROADCAST_ACK,
}


class ShardedWire(ClassicWire):
    """Node's ``createShardedAdapter`` protocol (Redis >= 7): SPUBLISH and
    SSUBSCRIBE of ``K#N#``, ``K#N#<uid>#`` and, in the dynamic modes,
    ``K#N#<room>#`` for the rooms this server hosts.

    :param subscription_mode: ``static``, ``dynamic`` or ``dynamic-private``
                              (Node's ``subscriptionMode``).
    :param cluster: True for a Redis Cluster.
    """

    def __init__(self, manager, subscription_mode=envelope.DYNAMIC, cluster=False):
        super().__init__(manager)
        self.mode = envelope.check_mode(subscription_mode)
        self.cluster = cluster
        self._room_lock = threading.Lock()
        self._rooms = {}   # namespace -> rooms whose channel is subscribed

    def new_publisher(self, url, options, **kwargs):
        if self.cluster:
            return ClusterPublisher(url, options, **kwargs)
        return ShardedPublisher(url, options, **kwargs)

    def check_server(self):
        """Refuse Redis < 7, or a cluster that was not declared (and the
        reverse), naming what is wrong."""
        m = self.m
        if self.cluster:
            address = urllib.parse.urlsplit(m.url)
            client = node_client(m.url, m.redis_options, address.hostname,
                                 address.port or 6379, m._publisher.timeout)
            try:
                check_server(client, True)
            finally:
                client.close()
            # read the slot map now, while the node of the URL answers: the
            # cluster client then knows every node, and a publish made
            # after that node died finds the others
            m._publisher.client  # noqa: B018
        else:
            check_server(m._publisher.client, False)

    def new_listener(self):
        m = self.m
        if self.cluster:
            return ClusterListener(
                m.url, m.redis_options, m._on_message, m._spawn, m._log,
                health_check_interval=m.health_check_interval,
                health_check_timeout=m.health_check_timeout)
        return Listener(m._new_pubsub, m._on_message, m._log,
                        where=connection.redact(m.url),
                        secrets=connection.secrets(m.url, m.redis_options),
                        health_check_interval=m.health_check_interval,
                        health_check_timeout=m.health_check_timeout, sharded=True)

    def channels(self, namespace):
        return envelope.ShardedChannels(self.m.key, namespace)

    def subscribe(self, namespace):
        m = self.m
        channels = m._channels_of(namespace)
        if channels.main_bytes in m._routes:
            return
        wanted = [channels.main, channels.response_for(m.uid)]
        with m._lock:
            for channel in wanted:
                m._routes[channel.encode('utf-8')] = (m._on_envelope, namespace)
            rooms = list(m.rooms.get(namespace, ()))
        m._listener.subscribe(channels=wanted)
        for room in rooms:
            self.room_created(namespace, room)

    def _is_local_sid(self, namespace, room):
        return room in self.m.rooms.get(namespace, {}).get(None, {})

    def room_created(self, namespace, room):
        """SSUBSCRIBE the room's channel when the mode wants it (called under
        the manager's lock, after the room got its first local member)."""
        m = self.m
        listener = m._listener
        if listener is None or self.mode == envelope.STATIC or not \
                envelope.subscribes_room(self.mode, room,
                                         self._is_local_sid(namespace, room)):
            return
        channel = m._channels_of(namespace).room(room)
        with self._room_lock:
            subscribed = self._rooms.setdefault(namespace, set())
            if room in subscribed:
                return
            subscribed.add(room)
        m._routes[channel.encode('utf-8')] = (m._on_envelope, namespace)
        listener.subscribe(channels=[channel])

    def room_deleted(self, namespace, room):
        """SUNSUBSCRIBE the room's channel if it was subscribed (called under
        the manager's lock, once the room has no local member left)."""
        m = self.m
        with self._room_lock:
            subscribed = self._rooms.get(namespace, set())
            if room not in subscribed:
                return
            subscribed.discard(room)
        channel = m._channels_of(namespace).room(room)
        m._routes.pop(channel.encode('utf-8'), None)
        listener = m._listener
        if listener is not None:
            listener.unsubscribe(channels=[channel])

    def forget_rooms(self):
        """The listener is gone: no room channel is subscribed any more."""
        with self._room_lock:
            self._rooms.clear()

    def server_count(self, namespace):
        return self.m._publisher.numsub(self.m._channels_of(namespace).main)

    def _envelope(self, namespace, kind, data):
        channels = self.m._channels_of(namespace)
        return (channels.main,
                envelope.encode_envelope(kind, data, self.m.uid, namespace),
                channels)

    def emit(self, namespace, data, rooms, skip):
        channels = self.m._channels_of(namespace)
        channel = channels.for_broadcast(self.mode, rooms)
        payload = envelope.encode_envelope(
            MessageType.BROADCAST, envelope.broadcast_data(data, rooms, skip),
            self.m.uid, namespace)
        return channel, payload, channels

    def emit_request(self, namespace, request_id, data, rooms, skip, flags):
        return self._envelope(namespace, MessageType.BROADCAST, envelope.broadcast_data(
            data, rooms, skip, flags, request_id))

    def join(self, namespace, selection, skip, rooms):
        return self._envelope(namespace, MessageType.SOCKETS_JOIN,
                              envelope.join_data(selection, skip, rooms))

    def leave(self, namespace, selection, skip, rooms):
        return self._envelope(namespace, MessageType.SOCKETS_LEAVE,
                              envelope.join_data(selection, skip, rooms))

    def disconnect(self, namespace, selection, skip, close):
        return self._envelope(namespace, MessageType.DISCONNECT_SOCKETS,
                              envelope.disconnect_data(selection, skip, close))

    def server_side_emit(self, namespace, data, request_id=None):
        return self._envelope(namespace, MessageType.SERVER_SIDE_EMIT,
                              envelope.server_side_emit_data(data, request_id))

    def fetch_sockets(self, namespace, request_id, rooms, skip):
        return self._envelope(namespace, MessageType.FETCH_SOCKETS,
                              envelope.fetch_data(request_id, rooms, skip))

    def all_rooms(self, namespace, request_id):
        """Refused: see :meth:`ClusterAPI.all_rooms`."""
        raise SioRedisError("all_rooms() does not exist in sharded mode: Node's "
                            'sharded adapter has no such request')

    def answer(self, namespace, request, kind, value):
        packets = None
        if kind == 'ack':  # value: every value of one client's ack
            value, packets = _ack_fields(value)
        kind = _SHARDED_ANSWERS[kind]
        channels = self.m._channels_of(namespace)
        data = envelope.response_data(kind, request.request_id, value,
                                      packets=packets)
        return (channels.response_for(request.uid),
                envelope.encode_envelope(kind, data, self.m.uid, namespace),
                None)

    def after_fork(self):
        """In a forked child: a new room lock, no room subscribed."""
        self._room_lock = threading.Lock()
        self._rooms = {}
