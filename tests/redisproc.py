"""The one owner of the redis-server (and redis-sentinel) processes tests start:
start on a free port from config lines, ping with a deadline, kill/stop by PID, restart.

Everything else (rig.RedisProcess, servers.ServerProcess, topology's Standalone,
RedisCluster, sentinel.SentinelSetup) is a thin user of :class:`RedisServer`.
A missing binary fails the test with an install hint; it never skips.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis

INSTALL_HINT = 'install it with "apt-get install redis-server"'


def free_port():
    """A loopback port free right now (another process may take it later)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout=5.0, interval=0.01, message='condition'):
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.1f s waiting for %s'
                                 % (timeout, message))
        time.sleep(interval)


def redis_binary():
    """The first ``redis-server`` on PATH; fails the test if there is none."""
    binary = shutil.which('redis-server')
    if binary is None:
        pytest.fail('redis-server is not on PATH; ' + INSTALL_HINT, pytrace=False)
    return binary


class ServerFailed(AssertionError):
    """A redis-server exited before it answered PING."""


class RedisServer:
    """One ``redis-server`` on 127.0.0.1 in a temporary directory of its own,
    started from a config file: the port, ``bind``, ``dir`` and (unless a
    sentinel) no persistence, then ``lines`` (each may use ``{dir}``).

    :param lines: redis.conf lines.
    :param args: command-line options after the config file (``'--tls-port', '7000'``).
    :param binary: the redis-server to run (default: the first on PATH).
    :param sentinel: run it as a sentinel (``redis-server conf --sentinel``).
    :param password: the password the readiness PING and :meth:`client` use.
    :param choose_port: picks the port (a cluster node needs its bus port free too).
    :param name: names the server in messages.
    :raises ServerFailed: if it exits before answering PING (after 3 ports
                          when the cause is a port taken in the meantime).
    """

    def __init__(self, lines=(), binary=None, sentinel=False, password=None,
                 choose_port=free_port, name='redis-server', args=()):
        self.binary = binary or redis_binary()
        self.sentinel = sentinel
        self.password = password
        self.name = name
        self.process = None
        self.dir = tempfile.mkdtemp(prefix='sio-%s-' % name)
        self._log_path = os.path.join(self.dir, 'server.log')
        self._lines = list(lines)
        self._args = [str(arg) for arg in args]
        for attempt in range(3):
            # a free port can be taken by another process before redis-server
            # binds it; then it exits at once and another port is tried
            self.port = choose_port()
            self.url = 'redis://127.0.0.1:%d/0' % self.port
            self._write_config()
            try:
                self.start()
                return
            except AssertionError as exc:  # ServerFailed, or no PONG in time
                self.stop()
                if attempt == 2 or not isinstance(exc, ServerFailed) \
                        or 'in use' not in str(exc):
                    self.close()
                    raise

    def _write_config(self):
        config = ['port %d' % self.port, 'bind 127.0.0.1', 'dir %s' % self.dir]
        if not self.sentinel:
            config += ['save ""', 'appendonly no']
        config += [line.format(dir=self.dir) for line in self._lines]
        self._config = os.path.join(self.dir, 'server.conf')
        with open(self._config, 'w') as file:
            file.write('\n'.join(config) + '\n')

    def start(self):
        """Start it (again, on the same port) and return once it answers PING."""
        command = [self.binary, self._config] + self._args + \
            (['--sentinel'] if self.sentinel else [])
        with open(self._log_path, 'ab') as log:
            self.process = subprocess.Popen(command, stdout=log,
                                            stderr=subprocess.STDOUT)
        with self.client(socket_connect_timeout=0.2) as client:
            wait_until(lambda: self._pings(client), 10, 0.05,
                       '%s on port %d' % (self.name, self.port))

    def client(self, **options):
        """A client on its port (close it, or use it in ``with``)."""
        options.setdefault('socket_timeout', 5)
        return redis.Redis(port=self.port, password=self.password, **options)

    def log(self):
        """What the server wrote so far (all its runs)."""
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
            self.process.wait(10)

    def stop(self):
        """SIGTERM it (by PID) and wait until it is gone."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self):
        """Stop it and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
