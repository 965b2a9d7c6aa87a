"""The README's Security section, run as written: its ACL user (created with
the README's own redis-cli command) is enough for a whole cluster to work.
"""
import pathlib
import re
import shlex
import subprocess

import pytest
import redis

from rig import PyClient, PyServer
from sio_redis_sync import Emitter
from topology import Standalone

README = pathlib.Path(__file__).resolve().parent.parent / 'README.md'
PASSWORD = 'a-long-random-password'


def acl_command(key):
    """The ``redis-cli ACL SETUSER`` command of the README's Security section,
    for ``key`` in place of the default ``socket.io``."""
    section = README.read_text().split('## Security', 1)[1].split('\n## ', 1)[0]
    blocks = re.findall(r'```sh\n(.*?)```', section, re.S)
    commands = [b for b in blocks if 'ACL SETUSER' in b]
    assert len(commands) == 1, 'update this test with the README'
    return shlex.split(commands[0].replace('\\\n', ' ').replace('socket.io', key))


@pytest.fixture
def acl_redis(key):
    """A private Redis >= 7 (the README's command names sharded Pub/Sub's
    commands) whose only user is the README's."""
    server = Standalone()
    try:
        argv = acl_command(key)
        assert argv[0] == 'redis-cli'
        done = subprocess.run(['redis-cli', '-p', str(server.port)] + argv[1:],
                              check=True, capture_output=True, timeout=10)
        # redis-cli exits 0 on an error reply too
        assert done.stdout.strip() == b'OK', done.stdout + done.stderr
        admin = redis.Redis(port=server.port)
        # the default user may do nothing: only the README's user is left
        admin.execute_command('ACL', 'SETUSER', 'default', 'off')
        admin.close()
        yield 'redis://sio:%s@127.0.0.1:%d/0' % (PASSWORD, server.port)
    finally:
        server.close()


def test_the_readme_acl_user_runs_a_cluster(acl_redis, key):
    with PyServer(acl_redis, key) as one, PyServer(acl_redis, key) as two:
        one.start_listening()
        two.start_listening()
        with PyClient(one.url, rooms=['r']) as a, PyClient(two.url, rooms=['r']) as b:
            emitter = Emitter(acl_redis, key=key)
            try:
                assert emitter.server_count() == 2
                assert sorted(s.id for s in emitter.fetch_sockets('r')) == \
                    sorted([a.sid, b.sid])
                emitter.to('r').emit('hello', 1)
                one.manager.emit('again', 2, room='r')
                for client in (a, b):
                    assert client.wait_for('hello') == [1]
                    assert client.wait_for('again') == [2]
            finally:
                emitter.close()


def test_the_readme_acl_user_reaches_no_other_key(acl_redis, key):
    client = redis.Redis.from_url(acl_redis)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.publish('other-app#/#', b'x')
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command('PSUBSCRIBE', '*')
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set(key, b'x')
    finally:
        client.close()
