"""redis-server setups a test configures itself (unix sockets, TLS, Sentinel roles)
and the round-trip check they share; the processes are redisproc.RedisServer's.
"""
import os

import pytest

from redisproc import INSTALL_HINT, RedisServer, ServerFailed  # noqa: F401 (re-exported)


def redis_servers():
    """Every distinct ``redis-server`` on PATH, in PATH order."""
    found, seen = [], set()
    for directory in os.environ.get('PATH', '').split(os.pathsep):
        binary = os.path.join(directory or '.', 'redis-server')
        real = os.path.realpath(binary)
        if os.access(binary, os.X_OK) and real not in seen:
            seen.add(real)
            found.append(binary)
    if not found:
        pytest.fail('redis-server is not on PATH; ' + INSTALL_HINT)
    return found


class ServerProcess(RedisServer):
    """One ``redis-server`` a test configures itself (unix sockets, TLS,
    Sentinel roles): a :class:`redisproc.RedisServer` named ``name``."""

    def __init__(self, lines=(), binary=None, sentinel=False, password=None,
                 name='redis'):
        super().__init__(lines, binary=binary or redis_servers()[0],
                         sentinel=sentinel, password=password, name=name)


def assert_round_trip(server_url, emitter_url, key, server_options=None,
                      emitter_options=None):
    """A PyServer listening on ``server_url`` and an Emitter on
    ``emitter_url``: the Emitter's emit, counted by NUMSUB's check, reaches
    the server's client, and so does the server's own emit through Redis.

    :return: the Emitter's ``server_count()``.
    """
    from rig import PyClient, PyServer
    from sio_redis_sync import Emitter

    server = PyServer(server_url, key, redis_options=server_options)
    try:
        server.start_listening()
        client = PyClient(server.url)
        emitter = Emitter(emitter_url, key=key, redis_options=emitter_options)
        try:
            assert emitter.emit('hello', 'round trip') == 1
            assert client.wait_for('hello') == ['round trip']
            server.manager.emit('back', 'from the server')
            assert client.wait_for('back') == ['from the server']
            return emitter.server_count()
        finally:
            client.close()
            emitter.close()
    finally:
        server.stop()
