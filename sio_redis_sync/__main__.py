"""``python -m sio_redis_sync``: the ``sio-redis-sync`` command line.

Owns nothing but the entry point; see :mod:`sio_redis_sync.cli`.
"""
from .cli import run

if __name__ == '__main__':
    run()
