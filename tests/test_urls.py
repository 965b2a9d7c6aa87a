"""The URL forms: Sentinel URLs parsed as python-socketio parses them, unix://
sockets and valkey:// against real redis-servers, bad schemes, redaction.
"""
import logging

import pytest
from socketio.redis_manager import parse_redis_sentinel_url

from rig import PyClient, PyServer
from servers import ServerProcess, assert_round_trip
from sio_redis_sync import Emitter, PublishError, RedisManager
from sio_redis_sync.connection import (keepalive_options, parse_sentinel_url,
                                       publisher_pool, redact, scheme,
                                       subscriber_client)


@pytest.mark.parametrize('url', [
    'redis+sentinel://h1:26379/0/mymaster',
    'redis+sentinel://:pw@h1:1,h2:2,h3:3/2/svc',
    'redis+sentinel://user:pw@10.0.0.1:26380,10.0.0.2:26381/0/my-master',
    'valkey+sentinel://u:p@h:5/1/m',
])
def test_sentinel_urls_parse_as_in_python_socketio(url):
    sentinels, service, options = parse_sentinel_url(url)
    assert (sentinels, service, options) == parse_redis_sentinel_url(url)


def test_sentinel_url_extras():
    sentinels, service, options = parse_sentinel_url(
        'redis+sentinel://u:p%40ss@a,[::1]:26380,b:7/3/svc?socket_timeout=0.5'
        '&ssl_ca_certs=/etc/ca.pem')
    assert sentinels == [('a', 26379), ('::1', 26380), ('b', 7)]
    assert service == 'svc'
    assert options == {'db': 3, 'username': 'u', 'password': 'p@ss',
                       'socket_timeout': 0.5, 'ssl_ca_certs': '/etc/ca.pem'}


@pytest.mark.parametrize('url, message', [
    ('redis+sentinel://:pw@h:1/0', r'/db/service_name'),
    ('redis+sentinel://h:1/mymaster', r'/db/service_name'),
    ('redis+sentinel://h:1/0/a/b', r'/db/service_name'),
    ('redis+sentinel://h:port/0/m', r"bad sentinel address 'h:port'"),
    ('redis+sentinel://:pw@h:1,/0/m', r"bad sentinel address ''"),
])
def test_bad_sentinel_urls_are_refused_clearly(url, message):
    with pytest.raises(ValueError, match=message) as error:
        RedisManager(url)
    assert 'pw' not in str(error.value)


@pytest.mark.parametrize('url', ['http://h/0', 'redis-sentinel://h/0/m',
                                 'memcached://:pw@h'])
def test_unknown_schemes_are_refused_at_construction(url):
    with pytest.raises(ValueError, match='unsupported Redis URL scheme.*'
                       'redis\\+sentinel://') as error:
        Emitter(url)
    assert ':pw' not in str(error.value)


def test_schemes():
    assert [scheme(u) for u in ('REDIS://h', 'valkey://h', 'valkeys://h',
                                'unix:///s', 'valkey+sentinel://h/0/m')] == \
        ['redis', 'redis', 'rediss', 'unix', 'redis+sentinel']


@pytest.mark.parametrize('url, expected', [
    ('redis+sentinel://:pw@h1:1,h2:2,h3:3/0/m',
     'redis+sentinel://:***@h1:1,h2:2,h3:3/0/m'),
    ('valkey+sentinel://u:p@w@h1:1,h2:2/0/m',
     'valkey+sentinel://u:***@h1:1,h2:2/0/m'),
    ('redis+sentinel://h1,h2/0/m?sentinel_password=s&db=1',
     'redis+sentinel://h1,h2/0/m?sentinel_password=***&db=1'),
    ('rediss://:pw@h/0?ssl_keyfile=/k.pem&ssl_ca_certs=/ca.pem',
     'rediss://:***@h/0?ssl_keyfile=/k.pem&ssl_ca_certs=/ca.pem'),
    ('unix://:pw@/run/redis.sock?db=2', 'unix://:***@/run/redis.sock?db=2'),
    ('valkeys://u:pw@h:6380', 'valkeys://u:***@h:6380'),
])
def test_redact_every_scheme(url, expected):
    assert redact(url) == expected


def test_keepalive_on_tcp_only_and_url_timeouts_bounded():
    tcp = publisher_pool('redis://h:1/0?socket_timeout=60', {}, timeout=3)
    assert tcp.connection_kwargs['socket_keepalive'] is True
    assert tcp.connection_kwargs['socket_keepalive_options'] == keepalive_options()
    assert tcp.connection_kwargs['socket_timeout'] == 3
    options = {'socket_keepalive': True, 'socket_keepalive_options': {1: 1}}
    for pool in (publisher_pool('unix:///run/x.sock?socket_keepalive=1', options),
                 subscriber_client('unix:///run/x.sock', options, 2).connection_pool):
        assert 'socket_keepalive' not in pool.connection_kwargs
        assert 'socket_keepalive_options' not in pool.connection_kwargs
    sentinel = publisher_pool('redis+sentinel://h:1/0/m', {}, timeout=3)
    assert sentinel.connection_kwargs['socket_keepalive'] is True
    assert sentinel.sentinel_manager.sentinel_kwargs['socket_timeout'] == 3


@pytest.fixture
def unix_redis():
    server = ServerProcess(['unixsocket {dir}/redis.sock', 'unixsocketperm 700',
                            'requirepass u-secret'], password='u-secret',
                           name='unix')
    server.url = 'unix://:u-secret@%s/redis.sock?db=0' % server.dir
    yield server
    server.close()


def test_unix_socket_publish_listen_and_count(unix_redis, key, caplog):
    caplog.set_level(logging.INFO, logger='sio_redis_sync')
    servers = [PyServer(unix_redis.url, key) for _ in range(2)]
    try:
        for server in servers:
            server.start_listening()
        clients = [PyClient(server.url) for server in servers]
        emitter = Emitter(unix_redis.url, key=key)
        assert emitter.emit('hello', 'via unix') == 2  # NUMSUB's check ran
        for client in clients:
            assert client.wait_for('hello') == ['via unix']
        assert emitter.server_count() == 2
        servers[0].manager.emit('back', 1)
        for client in clients:
            assert client.wait_for('back') == [1]
        with unix_redis.client() as admin:
            assert all(c['addr'].startswith('/') or c['laddr'].startswith('/')
                       for c in admin.client_list(_type='pubsub'))
        for client in clients:
            client.close()
        emitter.close()
    finally:
        for server in servers:
            server.stop()
    unix_redis.stop()
    emitter = Emitter(unix_redis.url, key=key, publish_retries=0)
    with pytest.raises(PublishError, match='could not publish'):
        emitter.emit('gone')
    assert 'u-secret' not in caplog.text and 'unix://:***@/' in caplog.text


def test_valkey_scheme_on_a_redis_server(redis_url, key):
    valkey_url = redis_url.replace('redis://', 'valkey://', 1)
    assert_round_trip(valkey_url, valkey_url, key)
