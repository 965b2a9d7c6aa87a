"""redis-server processes a test configures itself (unix sockets, TLS, Sentinel
roles): each in a temporary directory of its own, stopped by PID, the directory removed.
"""
import os
import shutil
import subprocess
import tempfile

import pytest
import redis

from rig import free_port, wait_until

INSTALL_HINT = 'install it with "apt-get install redis-server"'


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


class ServerProcess:
    """One ``redis-server`` started from a config file: ``port`` (plain TCP on
    127.0.0.1, for readiness and admin) plus ``lines`` (each may use
    ``{dir}``, the server's own temporary directory).

    :param sentinel: run it as a sentinel (``redis-server conf --sentinel``).
    :raises ServerFailed: if it exits before answering PING.
    """

    def __init__(self, lines=(), binary=None, sentinel=False, password=None,
                 name='redis'):
        self.binary = binary or redis_servers()[0]
        self.dir = tempfile.mkdtemp(prefix='sio-%s-' % name)
        self.name = name
        self.password = password
        self.process = None
        self._log_path = os.path.join(self.dir, 'server.log')
        for attempt in range(3):
            # a free port can be taken before redis-server binds it
            self.port = free_port()
            config = ['port %d' % self.port, 'bind 127.0.0.1',
                      'dir %s' % self.dir]
            if not sentinel:
                config += ['save ""', 'appendonly no']
            config += [line.format(dir=self.dir) for line in lines]
            path = os.path.join(self.dir, 'server.conf')
            with open(path, 'w') as file:
                file.write('\n'.join(config) + '\n')
            command = [self.binary, path] + (['--sentinel'] if sentinel else [])
            try:
                self._start(command)
                return
            except ServerFailed as exc:
                if attempt == 2 or 'in use' not in str(exc):
                    self.close()
                    raise

    def _start(self, command):
        with open(self._log_path, 'ab') as log:
            self.process = subprocess.Popen(command, stdout=log,
                                            stderr=subprocess.STDOUT)
        with self.client(socket_connect_timeout=0.2) as client:
            wait_until(lambda: self._pings(client), 10, 0.05,
                       '%s on port %d' % (self.name, self.port))

    def client(self, **options):
        """A client on the plain port (close it, or use it in ``with``)."""
        return redis.Redis(port=self.port, password=self.password,
                           socket_timeout=5, **options)

    def log(self):
        with open(self._log_path, 'rb') as log:
            return log.read().decode(errors='replace')

    def _pings(self, client):
        if self.process.poll() is not None:
            raise ServerFailed('%s %s exited: %s'
                               % (self.name, self.binary, self.log()[-2000:]))
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL it (a crash: no shutdown, no goodbye to its clients)."""
        if self.alive():
            self.process.kill()
            self.process.wait()

    def stop(self):
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ServerFailed(AssertionError):
    """A redis-server exited before it answered."""


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
