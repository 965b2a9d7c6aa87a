"""Fixtures shared by every test: a real Redis, a key prefix of its own, and the
redis-servers tests own or share (own_redis, module_redis, redis7, redis_cluster).

Nothing here mocks Redis; a missing server fails the test with an install hint.
"""
import os
import uuid

import pytest
import redis

from rig import RedisProcess

DEFAULT_URL = 'redis://127.0.0.1:6379/0'
INSTALL_HINT = (
    'these tests need a real Redis: set REDIS_URL, or start one with '
    '"redis-server --daemonize yes" (Debian: "apt-get install redis-server")')


@pytest.fixture(scope='session')
def redis_url():
    """The shared Redis (REDIS_URL, default 127.0.0.1:6379); never flushed."""
    url = os.environ.get('REDIS_URL', DEFAULT_URL)
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail('cannot reach Redis at %s (%s); %s' % (url, exc, INSTALL_HINT))
    finally:
        client.close()
    return url


@pytest.fixture
def key():
    """A channel prefix no other test uses, so tests share one Redis."""
    return 'sio-test-%s' % uuid.uuid4().hex[:12]


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, on a free port, stopped by PID: for
    a test that stops, pauses, kills the clients of or reconfigures Redis."""
    server = RedisProcess()
    yield server
    server.close()


@pytest.fixture(scope='module')
def module_redis():
    """A redis-server shared by the tests of one module that need a server of
    their own but neither stop, pause nor reconfigure it (each uses ``key``)."""
    server = RedisProcess()
    yield server
    server.close()


@pytest.fixture(scope='session')
def redis7():
    """A standalone redis-server >= 7 (topology.Standalone) shared by the
    session, for tests that neither stop nor reconfigure it (unique keys)."""
    from topology import Standalone
    server = Standalone()
    yield server
    server.close()


@pytest.fixture(scope='session')
def redis_cluster():
    """A Redis Cluster of 3 masters (topology.RedisCluster) shared by the
    session, for tests that stop no node and reshard nothing (unique keys)."""
    from topology import RedisCluster
    servers = RedisCluster()
    yield servers
    servers.close()
