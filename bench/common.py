"""Shared plumbing of the benchmarks: a Redis of their own, child processes
(Python and Node roles) driven by JSON lines, CPU and RSS readings, results.
"""
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import redis

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
NODE_DIR = os.path.join(BENCH_DIR, 'node')
# The Node peers are the ones pinned for the tests (tests/package-lock.json).
NODE_MODULES = os.path.join(REPO_DIR, 'tests', 'node_modules')
INSTALL_HINT = 'run "bash bench/run.sh", which installs what is missing'


class BenchError(RuntimeError):
    """A workload could not run (a peer died, a wait timed out)."""


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.01):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError('timed out after %.1f s waiting for %s' % (timeout, what))
        time.sleep(interval)


class RedisServer:
    """``redis-server`` on a free loopback port, owned by the bench run.

    Pub/Sub output buffers are unlimited so that a slow subscriber is
    measured as slow instead of being disconnected.
    """

    def __init__(self, attempts=3):
        binary = shutil.which('redis-server')
        if binary is None:
            raise BenchError('redis-server is not on PATH; ' + INSTALL_HINT)
        # a free port can be taken by someone else before redis-server binds
        # it: then it exits at once, and another port is tried
        for attempt in range(attempts):
            try:
                self._start(binary)
                return
            except BenchError:
                self.close()
                if attempt == attempts - 1:
                    raise

    def _start(self, binary):
        self.port = free_port()
        self.url = 'redis://127.0.0.1:%d/0' % self.port
        self._log = tempfile.NamedTemporaryFile(prefix='bench-redis-', suffix='.log')
        self.process = subprocess.Popen(
            [binary, '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
             '--appendonly', 'no', '--client-output-buffer-limit', 'pubsub', '0', '0', '0'],
            stdout=self._log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            wait_until(lambda: self._pings(client), 10, 'redis-server', 0.05)
        finally:
            client.close()

    def _pings(self, client):
        if self.process.poll() is not None:
            self._log.flush()
            with open(self._log.name, 'rb') as f:
                said = f.read().decode('utf-8', 'replace').strip().splitlines()[-3:]
            raise BenchError('redis-server on port %d exited: %s'
                             % (self.port, ' | '.join(said)))
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def redis_cluster():
    """A 3-master Redis Cluster on loopback ports (tests/topology.py's, which
    finds a redis-server >= 7 on PATH); ``close()`` stops it."""
    tests = os.path.join(REPO_DIR, 'tests')
    if tests not in sys.path:
        sys.path.append(tests)  # after everything: its modules shadow nothing
    from topology import RedisCluster
    return RedisCluster()


class Peer:
    """A child process speaking JSON lines: commands on stdin, results and
    events on stdout (non-JSON lines are kept as text)."""

    def __init__(self, argv, name, env=None, cwd=None):
        self.name = name
        self.lines = []
        self._cond = threading.Condition()
        self._eof = False
        self._stderr = tempfile.NamedTemporaryFile(prefix='bench-%s-' % name, suffix='.log')
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=env, cwd=cwd)
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.process.stdout:
            line = raw.decode('utf-8', 'replace').rstrip('\n')
            try:
                item = json.loads(line)
            except ValueError:
                item = line
            with self._cond:
                self.lines.append(item)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def stderr_tail(self, limit=3000):
        self._stderr.flush()
        with open(self._stderr.name, 'rb') as f:
            return f.read().decode('utf-8', 'replace')[-limit:]

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self.lines)
                if value:
                    return value
                if self._eof:
                    raise BenchError('%s exited (code %s) waiting for %s:\n%s' % (
                        self.name, self.process.poll(), what, self.stderr_tail()))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError('%s: timed out after %.0f s waiting for %s:\n%s' % (
                        self.name, timeout, what, self.stderr_tail()))
                self._cond.wait(remaining)

    def wait_line(self, prefix, timeout=30):
        """The first text line starting with ``prefix``."""
        def found(lines):
            for line in lines:
                if isinstance(line, str) and line.startswith(prefix):
                    return line
            return None
        return self.wait(found, timeout, repr(prefix))

    def send(self, obj):
        self.process.stdin.write((json.dumps(obj) + '\n').encode())
        self.process.stdin.flush()

    def call(self, timeout=120, **op):
        """Send ``op`` and return the next JSON reply carrying ``reply``."""
        with self._cond:
            seen = len(self.lines)
        self.send(op)

        def reply(lines):
            for line in lines[seen:]:
                if isinstance(line, dict) and line.get('reply') == op['op']:
                    return line
            return None
        return self.wait(reply, timeout, 'reply to %s' % op['op'])

    def cpu_seconds(self):
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    def rss(self):
        return psutil.Process(self.pid).memory_info().rss

    def stop(self, grace=5.0):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(grace)
        self._stderr.close()


def node_env():
    node = shutil.which('node')
    if node is None:
        raise BenchError('node is not on PATH; ' + INSTALL_HINT)
    if not os.path.isdir(os.path.join(NODE_MODULES, '@socket.io', 'redis-adapter')):
        raise BenchError('tests/node_modules is missing; ' + INSTALL_HINT)
    return node, dict(os.environ, NODE_PATH=NODE_MODULES)


def node_peer(script, args, name):
    node, env = node_env()
    return Peer([node, os.path.join(NODE_DIR, script)] + [str(a) for a in args],
                name, env=env, cwd=NODE_DIR)


def python_peer(module, args, name):
    env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return Peer([sys.executable, '-m', module] + [str(a) for a in args], name, env=env,
                cwd=REPO_DIR)


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[index]


class Results:
    """Appends one JSON line per measurement to ``path`` (and echoes it),
    after the ``kept`` rows of an earlier run (written, not echoed)."""

    def __init__(self, path, quiet=False, kept=()):
        self.path = path
        self.quiet = quiet
        self.rows = []
        self._file = open(path, 'w') if path else None
        for row in kept if self._file else ():
            self._file.write(json.dumps(row) + '\n')

    def add(self, workload, impl, **values):
        row = {'workload': workload, 'impl': impl, **values}
        self.rows.append(row)
        if self._file:
            self._file.write(json.dumps(row) + '\n')
            self._file.flush()
        if not self.quiet:
            print(json.dumps(row), flush=True)
        return row

    def close(self):
        if self._file:
            self._file.close()


def machine():
    """What the numbers were measured on."""
    model = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for package in ('python-socketio', 'python-engineio', 'redis', 'msgpack', 'hiredis',
                    'simple-websocket', 'eventlet', 'sio-redis-sync'):
        try:
            from importlib.metadata import version
            versions[package] = version(package)
        except Exception:  # not installed: say so in the report
            versions[package] = None
    return {
        'cpu': model, 'nproc': os.cpu_count(), 'python': platform.python_version(),
        'platform': platform.platform(), 'mem_gb': round(psutil.virtual_memory().total / 2**30, 1),
        'redis_server': _version([shutil.which('redis-server') or 'redis-server', '--version']),
        'node': _version([shutil.which('node') or 'node', '--version']),
        'packages': versions, 'load_avg_at_start': os.getloadavg(),
    }


def _version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
