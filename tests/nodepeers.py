"""Python handles on the Node peers in tests/node/ (server, client, emitter).

Each is a context manager around a subprocess; every wait polls with a deadline.
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(TESTS_DIR, 'node')
NODE_MODULES = os.path.join(TESTS_DIR, 'node_modules')
PINNED = {
    'socket.io': '4.8.4',
    'socket.io-client': '4.8.4',
    '@socket.io/redis-adapter': '8.3.0',
    '@socket.io/redis-emitter': '5.1.0',
    '@socket.io/redis-streams-adapter': '0.3.1',
    'redis': '4.7.1',
}
NODE_HINT = ('install Node with "apt-get install nodejs npm", then the '
             'pinned packages with "npm ci --prefix tests"')
PACKAGES_HINT = 'install the pinned Node packages with "npm ci --prefix tests"'


def require_node():
    """Path of ``node``; fails the test (never skips) when Node or a pin is missing."""
    node = shutil.which('node')
    if node is None:
        pytest.fail('node is not on PATH; ' + NODE_HINT, pytrace=False)
    for name, version in PINNED.items():
        found = _installed_version(name)
        if found != version:
            pytest.fail('tests/node_modules has %s %s, need %s; %s'
                        % (name, found or '(missing)', version, PACKAGES_HINT),
                        pytrace=False)
    return node


def _installed_version(name):
    path = os.path.join(NODE_MODULES, name, 'package.json')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f).get('version')


def _op_fields(fields):
    """Keyword arguments -> op fields; ``except_`` stands for ``except``."""
    if 'except_' in fields:
        fields = dict(fields)
        fields['except'] = fields.pop('except_')
    return fields


def encode_bin(value):
    """Python value -> JSON-able value, bytes becoming ``{"$bin": base64}``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {'$bin': base64.b64encode(bytes(value)).decode('ascii')}
    if isinstance(value, (list, tuple)):
        return [encode_bin(v) for v in value]
    if isinstance(value, dict):
        return {k: encode_bin(v) for k, v in value.items()}
    return value


def decode_bin(value):
    """Inverse of :func:`encode_bin`: ``{"$bin": base64}`` -> bytes, recursively."""
    if isinstance(value, dict):
        if set(value) == {'$bin'} and isinstance(value['$bin'], str):
            return base64.b64decode(value['$bin'])
        return {k: decode_bin(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_bin(v) for v in value]
    return value


class _NodeProcess:
    """One Node script as a subprocess: stdout lines collected by a thread,
    stderr in a temp file whose tail goes into every failure message."""

    script = None
    name = 'node peer'
    exits_on_eof = True      # the script ends by itself once its stdin closes

    def __init__(self, *args):
        node = require_node()
        self.lines = []          # every stdout line, parsed JSON or raw text
        self._cond = threading.Condition()
        self._eof = False
        self._stderr = tempfile.NamedTemporaryFile(
            prefix='%s-' % self.name, suffix='.log')
        self.process = subprocess.Popen(
            [node, os.path.join(NODE_DIR, self.script)] + [str(a) for a in args],
            cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr)
        self._reader = threading.Thread(
            target=self._read_stdout, name='%s-stdout' % self.name, daemon=True)
        self._reader.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _read_stdout(self):
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

    def _close_stdin(self):
        if self.process.stdin.closed:
            return
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # the peer has already gone; stop() still reaps it

    def stderr_tail(self, limit=4000):
        self._stderr.flush()
        with open(self._stderr.name, 'rb') as f:
            return f.read().decode('utf-8', 'replace')[-limit:]

    def fail(self, message):
        raise AssertionError('%s (pid %s): %s\n--- stdout ---\n%s\n--- stderr tail ---\n%s'
                             % (self.name, self.process.pid, message,
                                '\n'.join(map(str, self.lines[-30:])),
                                self.stderr_tail()))

    def wait(self, predicate, timeout, what):
        """Wait until ``predicate()`` (called under the lock) is truthy; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if self._eof:
                    self.fail('exited (code %s) while waiting for %s'
                              % (self.process.poll(), what))
                if remaining <= 0:
                    self.fail('timed out after %.1f s waiting for %s' % (timeout, what))
                self._cond.wait(remaining)

    def send(self, obj):
        """Write one JSON line (bytes encoded as $bin) to the peer's stdin."""
        data = (json.dumps(encode_bin(obj)) + '\n').encode('utf-8')
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except BrokenPipeError:
            self.fail('stdin closed while sending %r' % (obj,))

    def stop(self, grace=5.0):
        """End the peer (stdin EOF or SIGTERM), SIGKILL it after ``grace``
        seconds; always reaps. Returns the exit code."""
        self._close_stdin()
        if not self.exits_on_eof and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(grace)
        self.process.stdout.close()
        self._stderr.close()
        return self.process.returncode


class NodeServer(_NodeProcess):
    """``server.js``: Socket.IO + @socket.io/redis-adapter on a free port, or
    (``mode='streams'``) + @socket.io/redis-streams-adapter."""

    script = 'server.js'
    name = 'node-server'
    exits_on_eof = False     # stop() sends SIGTERM (stdin EOF is only a safety net)

    def __init__(self, redis_url, key, ready_timeout=20.0, requests_timeout=5.0,
                 mode='classic', subscription_mode='dynamic', cluster=False,
                 namespaces=('/', '/admin'), recovery=None, **stream_options):
        # mode='sharded': createShardedAdapter with ``subscription_mode``, on
        # a standalone Redis 7 or (``cluster``) a Redis Cluster node-redis
        # reaches through ``createCluster``.
        # mode='streams': createAdapter of the streams adapter, channelPrefix
        # ``key``, with ``stream_options`` in the Python spelling (stream_name,
        # stream_count, max_len, read_count, use_sharded_pubsub)
        # recovery: connectionStateRecovery on, maxDisconnectionDuration
        # ``recovery`` seconds (skipMiddlewares), else off
        more = [] if recovery is None else ['--recovery', int(recovery * 1000)]
        super().__init__('--redis', redis_url, '--key', key, '--port', 0,
                         '--requests-timeout', int(requests_timeout * 1000),
                         '--mode', mode, '--subscription-mode', subscription_mode,
                         '--cluster', 'yes' if cluster else 'no',
                         '--namespaces', ','.join(namespaces),
                         *_stream_flags(mode, stream_options), *more)
        try:
            line = self.wait(self._ready_line, ready_timeout, 'READY <port>')
        except AssertionError:
            self.stop()
            raise
        self.port = int(line.split()[1])
        self.url = 'http://127.0.0.1:%d' % self.port

    def _ready_line(self):
        for line in self.lines:
            if isinstance(line, str) and line.startswith('READY '):
                return line
        return None


_STREAM_FLAGS = {'stream_name': '--stream-name', 'stream_count': '--stream-count',
                 'max_len': '--max-len', 'read_count': '--read-count'}


def _stream_flags(mode, options):
    """server.js flags of the streams adapter's options (Python spelling)."""
    if options and mode != 'streams':
        raise TypeError('%s need mode=\'streams\'' % ', '.join(sorted(options)))
    flags = []
    for name, value in options.items():
        if name == 'use_sharded_pubsub':
            flags += ['--sharded-pubsub', 'yes' if value else 'no']
        elif name in _STREAM_FLAGS:
            flags += [_STREAM_FLAGS[name], value]
        else:
            raise TypeError('unknown stream option %r' % name)
    return flags


class NodeClient(_NodeProcess):
    """``client.js``: a socket.io-client on one namespace, joined to ``rooms``."""

    script = 'client.js'
    name = 'node-client'

    def __init__(self, url, nsp='/', rooms=(), reconnect=False, auth=None):
        # reconnect: socket.io-client reconnects 200 ms after a lost
        # connection (and asks for connection state recovery); auth: the
        # CONNECT packet's payload
        more = ['--reconnect', 'yes'] if reconnect else []
        if auth is not None:
            more += ['--auth', json.dumps(auth)]
        super().__init__('--url', url, '--nsp', nsp, '--rooms', ','.join(rooms), *more)
        self._ctl_id = 0
        self._ctl_lock = threading.Lock()

    def _of_type(self, kind):
        return [m for m in self.lines if isinstance(m, dict) and m.get('type') == kind]

    @property
    def sid(self):
        """The session id of the (first) connection; waits up to 10 s for it."""
        def connected():
            if self._of_type('connect_error'):
                self.fail('connect_error: %s' % self._of_type('connect_error')[0])
            found = self._of_type('connect')
            return found[0]['sid'] if found else None
        return self.wait(connected, 10.0, 'connect')

    @property
    def connects(self):
        """Every connection so far, as ``{'sid', 'recovered'}``."""
        with self._cond:
            return [{'sid': m['sid'], 'recovered': m.get('recovered')}
                    for m in self._of_type('connect')]

    def wait_connects(self, count, timeout=10.0):
        """Wait for the ``count``-th connection; return it (``{'sid', 'recovered'}``)."""
        self.wait(lambda: len(self._of_type('connect')) >= count, timeout,
                  '%d connection(s)' % count)
        return self.connects[count - 1]

    @property
    def events(self):
        """Every event received so far, as ``(event, args)`` with bytes decoded."""
        with self._cond:
            return [(m['event'], decode_bin(m['args'])) for m in self._of_type('event')]

    def _matching(self, event):
        return [m for m in self._of_type('event') if m['event'] == event]

    def wait_for(self, event, timeout=5.0, count=1):
        """Wait until ``event`` arrived ``count`` times; return the first one's args."""
        def enough():
            found = self._matching(event)
            return found if len(found) >= count else None
        try:
            found = self.wait(enough, timeout, '%d x %r' % (count, event))
        except AssertionError as exc:
            raise AssertionError('%s\nreceived events: %r' % (exc, self.events)) from None
        return decode_bin(found[0]['args'])

    def assert_no_event(self, event, within=0.5):
        """Fail if ``event`` has arrived, or arrives within ``within`` seconds."""
        deadline = time.monotonic() + within
        with self._cond:
            while not self._matching(event):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)
        raise AssertionError('unexpected %r: received events %r' % (event, self.events))

    def wait_disconnects(self, count, timeout=5.0):
        """Wait for the ``count``-th disconnect line; return its reason."""
        found = self.wait(lambda: self._of_type('disconnect')[count - 1:], timeout,
                          '%d disconnect(s)' % count)
        return found[0]['reason']

    def wait_disconnect(self, timeout=5.0):
        """Wait for the disconnect line; return its reason."""
        found = self.wait(lambda: self._of_type('disconnect'), timeout, 'disconnect')
        return found[0]['reason']

    def emit(self, event, *args):
        """Emit ``event`` to the server (bytes arguments arrive as Buffers)."""
        self.send({'op': 'emit', 'event': event, 'args': list(args)})

    def disconnect(self):
        """``socket.disconnect()``: leave for good (the client keeps its pid)."""
        self.send({'op': 'disconnect'})

    def connect(self):
        """``socket.connect()`` again after :meth:`disconnect`."""
        self.send({'op': 'connect'})

    def ctl(self, timeout=10.0, **op):
        """Send a ``ctl`` operation to the server; return its ack data."""
        with self._ctl_lock:
            self._ctl_id += 1
            ctl_id = self._ctl_id
        op = _op_fields(op)
        self.send({'op': 'ctl', 'id': ctl_id, 'data': op})

        def acked():
            found = [m for m in self._of_type('ack') if m.get('id') == ctl_id]
            return found or None
        data = decode_bin(self.wait(acked, timeout, 'ack of ctl %r' % (op,))[0]['data'])
        if not (isinstance(data, dict) and data.get('ok')):
            self.fail('ctl %r failed: %r' % (op, data))
        return data


class NodeEmitter(_NodeProcess):
    """``emitter.js``: @socket.io/redis-emitter publishing on ``key``."""

    script = 'emitter.js'
    name = 'node-emitter'

    def __init__(self, redis_url, key):
        super().__init__('--redis', redis_url, '--key', key)
        self._op_lock = threading.Lock()

    def op(self, timeout=10.0, **fields):
        """Send one operation; return once the emitter says its PUBLISH reached Redis."""
        fields = _op_fields(fields)
        with self._op_lock:
            done = len(self._replies())
            self.send(fields)
            reply = self.wait(lambda: self._replies()[done:], timeout,
                              'reply to %r' % (fields,))[0]
        if not reply.get('ok'):
            self.fail('op %r failed: %r' % (fields, reply))
        return reply

    def _replies(self):
        return [m for m in self.lines if isinstance(m, dict) and 'ok' in m]
