"""No password, of any shape, in a log line, an exception or a repr: the
redaction of every URL scheme (passwords holding ``/ ? # @ : %``, written
raw or percent-encoded), and real failures against real redis-servers.
"""
import logging
import urllib.parse

import pytest
import redis

from rig import free_port, wait_until
from servers import ServerProcess
from sio_redis_sync import Emitter, PublishError, RedisManager
from sio_redis_sync import connection
from sio_redis_sync.connection import redact
from sio_redis_sync.publisher import Publisher

# every piece of it starts with the marker: any part of it shown shows "Zx"
PASSWORD = 'Zxa/Zxb?Zxc#Zxd@Zxe:Zxf%Zxg'
MARKER = 'Zx'
ENCODED = urllib.parse.quote(PASSWORD, safe='')
SCHEMES = ('redis', 'rediss', 'valkey', 'valkeys')
SENTINELS = ('redis+sentinel', 'valkey+sentinel')


def shapes(password):
    """URLs of every scheme carrying ``password`` somewhere."""
    for scheme in SCHEMES:
        yield '%s://user:%s@h:6379/0' % (scheme, password)
        yield '%s://:%s@h/0?db=1' % (scheme, password)
        yield '%s://h:6379/0?password=%s&db=1' % (scheme, password)
        yield '%s://h:6379/0?db=1&password=%s' % (scheme, password)
        yield '%s://u:%s@[::1]:6379/0' % (scheme, password)
    for scheme in SENTINELS:
        yield '%s://:%s@h1:26379,h2:26380,h3/0/mymaster' % (scheme, password)
        yield '%s://user:%s@h1,h2:1/2/m?sentinel_password=%s' % (
            scheme, password, password)
        yield '%s://h1,h2/0/m?sentinel_password=%s&socket_timeout=1' % (
            scheme, password)
    yield 'unix://user:%s@/run/redis.sock?db=0' % password
    yield 'unix://user:pass@/path?password=%s' % password
    yield 'unix:///run/redis.sock?db=2&password=%s' % password
    yield 'REDIS://:%s@h' % password  # upper case
    yield 'redis:/:%s@h' % password  # malformed: one slash
    yield ':%s@h:1' % password  # no scheme at all
    yield 'redis://%s@h' % password  # no user name separator
    yield 'redis://h/0?password=%s#frag' % password


ALL_SHAPES = sorted(set(shapes(PASSWORD)) | set(shapes(ENCODED)))


@pytest.mark.parametrize('url', ALL_SHAPES)
def test_redact_hides_every_part_of_the_password(url):
    shown = redact(url)
    assert MARKER not in shown, shown
    assert '***' in shown
    # also when the URL is quoted inside a longer text (an error message)
    text = redact('cannot connect to %s (Error 111)' % url)
    assert MARKER not in text, text


@pytest.mark.parametrize('url', [u for u in ALL_SHAPES if '://' in u])
def test_parsing_errors_never_quote_the_password(url):
    """A URL redis-py cannot parse (a password with an unescaped "/" is
    read as a port) is refused with a ValueError that shows none of it."""
    for make in (Emitter, RedisManager):
        try:
            made = make(url)
        except ValueError as exc:
            assert MARKER not in str(exc) + repr(exc), exc
            assert exc.__cause__ is None and exc.__context__ is None or \
                MARKER not in str(exc.__cause__)
        else:
            assert MARKER not in repr(made)
            made.close()


@pytest.mark.parametrize('url', [':%s@h:1' % PASSWORD, 'redis:/:%s@h' % PASSWORD,
                                 'memcached://:%s@h' % PASSWORD])
def test_unknown_schemes_never_quote_the_password(url):
    with pytest.raises(ValueError) as error:
        Emitter(url)
    assert MARKER not in str(error.value)


def test_redact_texts_of_redis_errors_and_reprs():
    # redis-py 6's repr of a connection pool holds the password as written
    text = ('Error while reading from socket: <ConnectionPool(<Connection('
            'host=h,port=1,db=0,username=None,password=%s,socket_timeout=5)>)>'
            % PASSWORD)
    assert MARKER not in redact(text, (PASSWORD,))
    assert 'socket_timeout=5' in redact(text, (PASSWORD,))
    assert MARKER not in redact("{'password': '%s', 'db': 0}" % PASSWORD)
    # a secret given is hidden in every encoding
    for form in (PASSWORD, ENCODED, ENCODED.lower(),
                 urllib.parse.quote_plus(PASSWORD), repr(PASSWORD)):
        assert MARKER not in redact('seen: %s.' % form, (PASSWORD,)), form
    # the URL given as a secret: its password hidden in any text
    assert MARKER not in redact('pw %s' % PASSWORD,
                                ('redis://u:%s@h' % ENCODED,))


def test_redact_keeps_what_is_not_secret():
    assert redact('rediss://u@h/0') == 'rediss://u@h/0'
    assert redact('redis://h:1/0?db=1&ssl_ca_certs=/ca.pem') == \
        'redis://h:1/0?db=1&ssl_ca_certs=/ca.pem'
    assert redact('Error 111 connecting to 127.0.0.1:1. Connection refused.') \
        == 'Error 111 connecting to 127.0.0.1:1. Connection refused.'


def test_describe_a_client_by_its_address_only():
    describe = connection.describe
    client = redis.Redis(host='h', port=7, db=3, password=PASSWORD,
                         username='u')
    assert describe(client) == 'redis://h:7/3'
    assert describe(redis.Redis(unix_socket_path='/run/r.sock', db=1,
                                password=PASSWORD)) == 'unix:///run/r.sock?db=1'
    assert describe(redis.Redis(host='h', ssl=True, password=PASSWORD)) == \
        'rediss://h:6379/0'


# ---------------------------------------------------------------- real failures

def _leaks(caplog, *texts):
    """Every place a password could show: each log record (message, and
    traceback), and the given texts."""
    formatter = logging.Formatter('%(name)s %(levelname)s %(message)s')
    shown = list(texts)
    for record in caplog.records:
        shown.append(formatter.format(record))  # with its traceback, if any
    return [text for text in shown if MARKER in text]


def _error_texts(exc):
    texts = [str(exc), repr(exc)]
    if exc.__cause__ is not None:
        texts += [str(exc.__cause__), repr(exc.__cause__)]
    return texts


@pytest.mark.parametrize('url', [
    'redis://user:%s@127.0.0.1:{port}/0',
    'valkey://:%s@127.0.0.1:{port}/0',
    'rediss://user:%s@127.0.0.1:{port}/0',
    'valkeys://user:%s@127.0.0.1:{port}/0',
    'redis://127.0.0.1:{port}/0?password=%s',
    'unix://user:%s@/nonexistent/sio-redis.sock?db=0',
    'redis+sentinel://:%s@127.0.0.1:{port},127.0.0.1:{port}/0/mymaster',
    'valkey+sentinel://127.0.0.1:{port}/0/m?sentinel_password=%s',
])
def test_a_failed_publish_shows_no_password(url, caplog):
    caplog.set_level(logging.DEBUG)
    url = url.replace('%s', ENCODED).format(port=free_port())
    emitter = Emitter(url, key='sio-test-secrets', publish_retries=1,
                      publish_timeout=1)
    with pytest.raises(PublishError) as error:
        emitter.emit('ev', 1)
    assert 'could not publish' in str(error.value)
    assert not _leaks(caplog, *_error_texts(error.value), repr(emitter))
    assert any('could not publish' in r.getMessage() for r in caplog.records)
    emitter.close()


class _Redis6Pool(redis.ConnectionPool):
    """A pool whose repr shows the password, as redis-py 6.x's does."""
    SENSITIVE_REPR_KEYS = frozenset()


@pytest.fixture
def locked_redis():
    """A private redis-server whose password is PASSWORD."""
    server = ServerProcess(['requirepass "%s"' % PASSWORD], password=PASSWORD,
                           name='secret')
    yield server
    server.close()


@pytest.mark.parametrize('pool_class', [redis.ConnectionPool, _Redis6Pool])
def test_emitter_of_a_client_with_a_password_shows_none(locked_redis, key,
                                                       pool_class, caplog):
    caplog.set_level(logging.DEBUG)
    client = redis.Redis(connection_pool=pool_class(
        host='127.0.0.1', port=locked_redis.port, password=PASSWORD,
        socket_timeout=1, socket_connect_timeout=1))
    if pool_class is _Redis6Pool and not redis.__version__.startswith('5.'):
        assert PASSWORD in repr(client)  # what the publisher must not log
    emitter = Emitter(client, key=key, publish_retries=0, publish_timeout=1)
    assert emitter.emit('ev', 1) == 0  # authenticated: it works
    locked_redis.stop()
    with pytest.raises(PublishError) as error:
        emitter.emit('ev', 2)
    assert not _leaks(caplog, *_error_texts(error.value))
    lines = [r.getMessage() for r in caplog.records
             if 'could not publish' in r.getMessage()]
    assert lines and '127.0.0.1:%d/0' % locked_redis.port in lines[0]
    emitter.close()
    client.close()


def test_a_wrong_password_shows_neither(locked_redis, key, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = PASSWORD.replace('Zxg', 'Zxh')
    url = 'redis://default:%s@127.0.0.1:%d/0' % (
        urllib.parse.quote(wrong, safe=''), locked_redis.port)
    publisher = Publisher(url, timeout=1, retries=0)
    with pytest.raises(PublishError) as error:
        publisher.publish(key + '#/#', b'x')
    assert 'AuthenticationError' in str(error.value) or \
        'WRONGPASS' in str(error.value), error.value
    assert not _leaks(caplog, *_error_texts(error.value))
    publisher.close()


def test_the_manager_listener_logs_no_password(locked_redis, key, caplog):
    caplog.set_level(logging.DEBUG)
    url = 'redis://:%s@127.0.0.1:%d/0' % (ENCODED, locked_redis.port)
    manager = RedisManager(url, key=key, publish_timeout=1)
    manager.initialize()
    locked_redis.stop()
    with pytest.raises(PublishError) as error:
        manager.emit('ev', 1)
    wait_until(lambda: any('lost' in r.getMessage() for r in caplog.records), 20)
    manager.close()
    assert not _leaks(caplog, *_error_texts(error.value))


def test_given_passwords_are_hidden_whatever_they_hold():
    for password in ('p@ss', 'a://b', 'Zxa/Zxb', PASSWORD, 'x y'):
        assert password not in redact('auth with %s failed' % password,
                                      (password,)), password
    url = 'redis://u:%s@h:1/0' % ENCODED
    # a URL given: its password hidden, the URL itself shown redacted
    assert redact('cannot reach %s (%s)' % (url, PASSWORD), (url,)) == \
        'cannot reach redis://u:***@h:1/0 (***)'


@pytest.mark.parametrize('password', ['pQ,wZ)xK', 'aQ,bZ', 'xQ)>yZ', 'qQ,rZ,sK)tW'])
def test_redact_without_the_password_given_hides_it_in_a_redis_py_6_repr(password):
    """Where no secret is given (an error raised far from the client that
    knows it), a repr pair ``password=...`` is hidden up to the next
    ``,name=``: a password with a comma or a parenthesis leaked its rest."""
    text = ('<redis.client.Redis(<ConnectionPool(<Connection(db=0,username=None,'
            'password=%s,socket_timeout=None,host=localhost,port=1)>)>)>' % password)
    hidden = redact(text)
    for piece in password.split(',')[1:] + password.split(')')[1:]:
        assert piece not in hidden.replace('socket_timeout', ''), hidden
    assert 'host=localhost,port=1' in hidden
