"""sio_redis_sync: python-socketio servers and emitters as one Socket.IO cluster.

Re-exports the public API; the wire protocol is that of Node's
``@socket.io/redis-adapter`` 8.x and ``@socket.io/redis-emitter`` 5.x.
"""
from .cluster_api import RemoteSocket
from .emitter import Batch, BroadcastOperator, Emitter
from .exceptions import (PartialDelivery, ProtocolError, PublishError,
                         RequestTimeout, SioRedisError)
from .manager import RedisManager

__version__ = '0.1.0'
__all__ = ['RedisManager', 'Emitter', 'Batch', 'BroadcastOperator',
           'RemoteSocket', 'SioRedisError', 'ProtocolError', 'PublishError',
           'PartialDelivery', 'RequestTimeout',
           '__version__']
