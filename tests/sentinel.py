"""A Redis Sentinel setup of a test's own: one master, one replica and three
sentinels on free loopback ports, with fast failover; stopped by PID.
"""
import contextlib

import redis

from rig import wait_until
from servers import ServerProcess

SERVICE = 'mymaster'
# fast enough for a test: a master silent for 1 s is down, and a failover
# that stalls is tried again after 5 s
FAILOVER = ('sentinel down-after-milliseconds %s 1000' % SERVICE,
            'sentinel failover-timeout %s 5000' % SERVICE,
            'sentinel parallel-syncs %s 1' % SERVICE)


class SentinelSetup:
    """Master, replica and ``sentinels`` sentinels (quorum 2), all ready
    (every sentinel knows the replica and the other sentinels) on return.

    :param password: the master's and the replica's ``requirepass``.
    :param sentinel_password: the sentinels' own ``requirepass``.
    """

    def __init__(self, sentinels=3, password=None, sentinel_password=None):
        self.servers = []
        self.sentinel_password = sentinel_password
        try:
            self._start(sentinels, password, sentinel_password)
        except BaseException:
            self.close()
            raise

    def _start(self, count, password, sentinel_password):
        auth = ['requirepass %s' % password, 'masterauth %s' % password] \
            if password else []
        self.master = self._add(ServerProcess(auth, password=password,
                                              name='master'))
        self.replica = self._add(ServerProcess(
            auth + ['replicaof 127.0.0.1 %d' % self.master.port],
            password=password, name='replica'))
        with self.replica.client() as client:
            wait_until(lambda: client.info('replication')['master_link_status']
                       == 'up', 20, 0.05, 'the replica in sync')
        lines = ['sentinel monitor %s 127.0.0.1 %d 2' % (SERVICE, self.master.port)]
        lines += FAILOVER
        if password:
            lines.append('sentinel auth-pass %s %s' % (SERVICE, password))
        if sentinel_password:
            lines.append('requirepass %s' % sentinel_password)
        self.sentinels = [
            self._add(ServerProcess(lines, sentinel=True, name='sentinel',
                                    password=sentinel_password))
            for _ in range(count)]
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                wait_until(lambda: self._knows_all(client, count), 30, 0.1,
                           'sentinel %d to know the setup' % sentinel.port)

    def _add(self, server):
        self.servers.append(server)
        return server

    @staticmethod
    def _knows_all(client, count):
        # the raw reply: redis-py 6.x's SENTINEL MASTER parser raises a
        # TypeError (return_responses) on a plain client
        raw = client.execute_command('SENTINEL', 'MASTER', SERVICE)
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2])
        state = {_text(name): _text(value) for name, value in pairs}
        return state['num-slaves'] == '1' and \
            state['num-other-sentinels'] == str(count - 1)

    def url(self, scheme='redis+sentinel', userinfo='', db=0):
        """The Sentinel URL of this setup, every sentinel in it."""
        hosts = ','.join('127.0.0.1:%d' % s.port for s in self.sentinels)
        return '%s://%s%s/%d/%s' % (scheme, userinfo + '@' if userinfo else '',
                                    hosts, db, SERVICE)

    def master_port(self):
        """The master's port as the first sentinel that answers says."""
        for sentinel in self.sentinels:
            if not sentinel.alive():
                continue
            with sentinel.client() as client, \
                    contextlib.suppress(redis.ConnectionError):
                return int(client.execute_command(
                    'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SERVICE)[1])
        raise AssertionError('no sentinel answers')

    def wait_promoted(self, timeout=60):
        """Wait until the sentinels name the replica as master, and it is."""
        wait_until(lambda: self.master_port() == self.replica.port, timeout,
                   0.1, 'the sentinels to promote the replica')
        with self.replica.client() as client:
            wait_until(lambda: client.info('replication')['role'] == 'master',
                       timeout, 0.1, 'the replica to become master')

    def close(self):
        for server in reversed(self.servers):
            server.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)
