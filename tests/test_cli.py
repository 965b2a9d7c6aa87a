"""The ``sio-redis-sync`` command line, run as a subprocess against real Redis,
real Python and Node servers and real clients.

Every command runs both as ``python -m sio_redis_sync`` and, once the package
is installed with its console script, as ``sio-redis-sync``.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

from nodepeers import NodeClient, NodeServer
from rig import PyClient, PyServer, free_port, wait_until
from servers import ServerProcess
from sio_redis_sync import classic

SCRIPT = os.path.join(os.path.dirname(sys.executable), 'sio-redis-sync')


def command(form='module'):
    if form == 'script':
        if not os.path.exists(SCRIPT):
            pytest.fail('no sio-redis-sync console script beside %s: install the '
                        'package with "pip install -e .[test]"' % sys.executable)
        return [SCRIPT]
    return [sys.executable, '-m', 'sio_redis_sync']


def cli(*args, form='module', timeout=60):
    return subprocess.run(command(form) + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


class Monitor:
    """``sio-redis-sync monitor`` in the background; its lines collected."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            command() + ['monitor'] + [str(a) for a in args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.stderr = []
        self._threads = [threading.Thread(target=self._read, args=(s, d), daemon=True)
                         for s, d in ((self.process.stdout, self.lines),
                                      (self.process.stderr, self.stderr))]
        for thread in self._threads:
            thread.start()
        wait_until(lambda: self.stderr or self.process.poll() is not None, 20,
                   message='monitor subscribed')
        assert self.stderr[0].startswith('monitoring '), self.stderr

    def _read(self, stream, into):
        for line in stream:
            into.append(line.rstrip('\n'))

    def records(self):
        return [json.loads(line) for line in list(self.lines)]

    def wait_for(self, predicate, what, timeout=20):
        return wait_until(lambda: [r for r in self.records() if predicate(r)],
                          timeout, message='%s in monitor output %s'
                          % (what, self.lines[-20:]))

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(20)
        for thread in self._threads:
            thread.join(5)
        return code


# ----------------------------------------------------------------- usage

@pytest.mark.parametrize('form', ['module', 'script'])
def test_help_of_every_command(form):
    for args in ([], ['emit'], ['monitor'], ['status'], ['bench']):
        result = cli(*args, '--help', form=form)
        assert result.returncode == 0, result.stderr
        assert 'usage: sio-redis-sync' in result.stdout


@pytest.mark.parametrize('args, message', [
    ([], 'required: COMMAND'),
    (['frobnicate'], 'invalid choice'),
    (['emit'], 'EVENT'),
    (['emit', 'ev', 'not-json'], 'argument 1 is not JSON'),
    (['emit', 'connect'], 'reserved event name'),
    (['monitor', '--count', '0'], '--count must be at least 1'),
    (['monitor', '--duration', 'soon'], 'not a number'),
    (['status', '--timeout', '-1'], 'must be positive'),
    (['bench', '--count', 'many'], 'invalid int value'),
])
def test_bad_arguments_exit_2_with_one_line(args, message, redis_url):
    with_url = args[:1] in (['emit'], ['monitor'], ['status'], ['bench'])
    result = cli(*args, *(['--url', redis_url] if with_url else []))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('sio-redis-sync: error: '), lines
    assert message in lines[0]
    assert result.stdout == ''


@pytest.mark.parametrize('args', [['status'], ['emit', 'ev'], ['monitor', '--count', '1'],
                                  ['bench', '--count', '1']])
def test_runtime_failure_exits_1_without_the_password(args):
    url = 'redis://user:s3cret-pw@127.0.0.1:%d/0' % free_port()
    result = cli(*args, '--url', url)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('sio-redis-sync: error: '), lines
    assert 's3cret' not in result.stderr + result.stdout


# ------------------------------------------------------------------ emit

@pytest.mark.parametrize('form', ['module', 'script'])
def test_emit_reaches_clients(redis_url, key, form):
    command(form)
    with PyServer(redis_url, key) as server:
        server.start_listening()
        with PyClient(server.url, rooms=['r1']) as member, \
                PyClient(server.url, rooms=['r1', 'muted']) as muted, \
                PyClient(server.url, namespace='/admin') as admin:
            result = cli('emit', 'news', '{"a": [1, 2]}', '"two"', '--to', 'r1',
                         '--except', 'muted', '--url', redis_url, '--key', key, form=form)
            assert result.returncode == 0, result.stderr
            assert "emitted 'news' to r1: 1 server subscribed" in result.stdout
            assert member.wait_for('news') == [{'a': [1, 2]}, 'two']
            result = cli('emit', 'ops', '3', '--namespace', '/admin',
                         '--url', redis_url, '--key', key, form=form)
            assert result.returncode == 0, result.stderr
            assert admin.wait_for('ops') == [3]
            assert muted.received('news') == [] and member.received('ops') == []


# --------------------------------------------------------------- monitor

def test_monitor_decodes_every_kind_from_python_and_node(redis_url, key, redis_client):
    monitor = Monitor('--json', '--url', redis_url, '--key', key, '--duration', 120,
                      '--width', 100000)
    try:
        with PyServer(redis_url, key) as py:
            py.start_listening()
            with NodeServer(redis_url, key) as node, \
                    PyClient(py.url, rooms=['r1']) as client, \
                    NodeClient(node.url, rooms=['r1']) as node_client:
                client.client.on('vote', lambda *a: 'yes')
                assert node_client.sid  # connected
                py.sio.emit('hello', {'n': 1}, to='r1')
                node_client.ctl(op='emit', nsp='/', to=['r1'], event='from-node',
                                args=['x'])
                node_client.ctl(op='socketsJoin', nsp='/', to=['r1'], rooms=['r2'])
                node_client.ctl(op='allRooms', nsp='/')
                node_client.ctl(op='fetchSockets', nsp='/', to=['r1'])
                node_client.ctl(op='serverSideEmit', nsp='/', event='tick', args=[1])
                node_client.ctl(op='emitWithAck', nsp='/', to=[client.sid],
                                event='vote', args=[], timeout=5000)
                node_client.ctl(op='disconnectSockets', nsp='/', to=['nobody'])
                py.manager.sockets_leave('r2', room='r1')
                py.manager.on('ask', lambda n: 'py got %d' % n)
                answer = node_client.ctl(op='serverSideEmitWithAck', nsp='/',
                                         event='ask', args=[5])
                assert answer['responses'] == ['py got 5']
            # a malformed broadcast kills Node's classic adapter (it does not
            # catch decoding errors): published once the Node server is gone
            redis_client.publish(key + '#/#', b'\xc1 not msgpack')
            redis_client.publish(key + '-request#/#', b'{"type": 99}')
            py.sio.emit('last', 1)
            monitor.wait_for(lambda r: r['event'] == 'last', 'the last emit')
    finally:
        assert monitor.stop() == 0
    records = monitor.records()
    by_type = {}
    for record in records:
        by_type.setdefault((record['family'], record['type']), []).append(record)
    hello = by_type[('broadcast', 'BROADCAST')][0]
    assert hello['event'] == 'hello' and hello['payload'] == [{'n': 1}]
    assert hello['rooms'] == ['r1'] and hello['channel'] == key + '#/#r1#'
    assert hello['uid'] == py.manager.uid and hello['nsp'] == '/'
    assert any(r['event'] == 'from-node' for r in by_type[('broadcast', 'BROADCAST')])
    join = by_type[('request', 'REMOTE_JOIN')][0]
    assert join['rooms'] == ['r1'] and join['join'] == ['r2']
    for kind in ('ALL_ROOMS', 'REMOTE_FETCH', 'SERVER_SIDE_EMIT', 'REMOTE_DISCONNECT',
                 'REMOTE_LEAVE'):
        assert ('request', kind) in by_type, kind
    leave = by_type[('request', 'REMOTE_LEAVE')][0]
    assert leave['uid'] == py.manager.uid and leave['leave'] == ['r2']
    ask = [r for r in by_type[('request', 'SERVER_SIDE_EMIT')] if r['event'] == 'ask']
    assert ask[0]['payload'] == [5] and ask[0]['request_id']
    assert by_type[('response', 'SERVER_SIDE_EMIT_RESPONSE')][0]['payload'] == \
        {'data': 'py got 5'}
    assert by_type[('request', 'SERVER_SIDE_EMIT')][0]['event'] == 'tick'
    rooms = by_type[('response', 'ALL_ROOMS_RESPONSE')][0]
    assert 'r2' in rooms['payload']['rooms'] and rooms['request_id']
    fetched = by_type[('response', 'REMOTE_FETCH_RESPONSE')][0]
    assert fetched['payload']['sockets'][0]['id'] == client.sid
    vote = by_type[('request', 'BROADCAST')][0]
    assert vote['event'] == 'vote' and vote['rooms'] == [client.sid]
    assert by_type[('response', 'BROADCAST_CLIENT_COUNT')][0]['payload'] == {'clientCount': 1}
    assert by_type[('response', 'BROADCAST_ACK')][0]['payload'] == {'packet': 'yes'}
    malformed = by_type[('broadcast', 'MALFORMED')] + by_type[('request', 'MALFORMED')]
    assert len(malformed) == 2 and all(r['error'] for r in malformed)
    assert "b'\\xc1 not msgpack'" in [r['payload'] for r in malformed]


def test_monitor_filters_and_human_lines(redis_url, key):
    # the monitors stop after the server: a subscriber leaving while a server
    # publishes looks like a server missing its messages (PartialDelivery)
    human = Monitor('--url', redis_url, '--key', key, '--width', 20,
                    '--namespace', '/admin', '--duration', 120)
    typed = Monitor('--json', '--url', redis_url, '--key', key, '--duration', 120,
                    '--type', 'remote_join', '--room', 'target')
    try:
        with PyServer(redis_url, key) as server:
            server.start_listening()
            server.sio.emit('skipped', 'x')
            server.manager.sockets_join('other', room='elsewhere')
            server.manager.sockets_join('joined', room='target')
            server.sio.emit('first', 'y' * 100, namespace='/admin')
            server.sio.emit('second', 2, namespace='/admin')
            server.sio.emit('last', 3)
            wait_until(lambda: len(human.lines) == 2, 20, message='two /admin lines')
            typed.wait_for(lambda r: True, 'the join')
            all_ = Monitor('--json', '--url', redis_url, '--key', key, '--count', 1,
                           '--type', 'BROADCAST')
            server.sio.emit('counted', 4)
            assert all_.process.wait(30) == 0
            all_.stop()
    finally:
        assert human.stop() == 0 and typed.stop() == 0
    assert len(human.lines) == 2
    assert 'BROADCAST' in human.lines[0] and 'event=first' in human.lines[0]
    assert human.lines[0].endswith('...') and 'y' * 30 not in human.lines[0]
    assert human.lines[0].startswith(tuple('0123456789')) and key in human.lines[0]
    assert 'event=second' in human.lines[1]
    (join,) = typed.records()
    assert join['type'] == 'REMOTE_JOIN' and join['rooms'] == ['target']
    assert join['join'] == ['joined']
    (counted,) = all_.records()
    assert counted['event'] == 'counted'


def test_monitor_decodes_sharded_channels(redis_url, key, redis_client):
    channel = key + '#/#'
    shard = redis_client.pubsub()
    shard.ssubscribe(channel, channel + 'abc#')  # a sharded server's subscriptions
    try:
        wait_until(lambda: redis_client.execute_command(
            'PUBSUB', 'SHARDNUMSUB', channel + 'abc#')[1] == 1, 10)
        monitor = Monitor('--json', '--url', redis_url, '--key', key, '--count', 5)
        wait_until(lambda: redis_client.execute_command(
            'PUBSUB', 'SHARDNUMSUB', channel, channel + 'abc#')[1::2] == [2, 2], 10,
            message='monitor ssubscribed')
        envelope = {'type': 3, 'data': {'packet': {'type': 2, 'data': ['ev', 1]},
                                        'opts': {'rooms': ['r'], 'except': [], 'flags': {}}},
                    'uid': 'abc', 'nsp': '/'}
        redis_client.execute_command('SPUBLISH', channel, json.dumps(envelope))
        join = {'type': 4, 'data': {'opts': {'rooms': ['a'], 'except': ['b']},
                                    'rooms': ['c']}, 'uid': 'abc', 'nsp': '/'}
        redis_client.execute_command('SPUBLISH', channel, json.dumps(join))
        redis_client.execute_command('SPUBLISH', channel + 'abc#', json.dumps({
            'type': 11, 'data': {'requestId': 'q1', 'clientCount': 2},
            'uid': 'def', 'nsp': '/'}))
        redis_client.execute_command('SPUBLISH', channel, b'{"type": 3')
        bad = dict(envelope, data={'packet': {'type': 2, 'data': ['ev']},
                                   'opts': {'rooms': 5}})
        redis_client.execute_command('SPUBLISH', channel, json.dumps(bad))
        assert monitor.process.wait(30) == 0
        monitor.stop()
    finally:
        shard.close()
    broadcast, join, count, malformed, bad = monitor.records()
    assert broadcast['family'] == 'sharded' and broadcast['type'] == 'BROADCAST'
    assert broadcast['event'] == 'ev' and broadcast['rooms'] == ['r']
    assert broadcast['uid'] == 'abc' and broadcast['payload'] == [1]
    assert join['type'] == 'SOCKETS_JOIN' and join['join'] == ['c']
    assert join['rooms'] == ['a'] and join['except'] == ['b']
    assert count['type'] == 'BROADCAST_CLIENT_COUNT' and count['request_id'] == 'q1'
    assert count['payload'] == {'clientCount': 2} and count['channel'] == channel + 'abc#'
    assert malformed['type'] == 'MALFORMED' and bad['type'] == 'MALFORMED'
    assert 'rooms' in bad['error']


def test_monitor_shows_the_legacy_channel(redis_url, key, redis_client):
    channel = 'flask-socketio-' + key
    monitor = Monitor('--json', '--url', redis_url, '--key', key, '--count', 1,
                      '--legacy-channel', channel)
    redis_client.publish(channel, json.dumps({
        'method': 'emit', 'event': 'old', 'data': ['a'], 'binary': False,
        'namespace': '/', 'room': 'r', 'skip_sid': None, 'callback': None,
        'host_id': 'h'}))
    assert monitor.process.wait(30) == 0
    monitor.stop()
    (record,) = monitor.records()
    assert record['type'] == 'LEGACY_EMIT' and record['event'] == 'old'
    assert record['rooms'] == ['r'] and record['payload'] == ['a']


def test_monitor_stops_cleanly_on_sigint(redis_url, key):
    monitor = Monitor('--url', redis_url, '--key', key)
    monitor.process.send_signal(signal.SIGINT)
    assert monitor.stop() == 0


# ---------------------------------------------------------------- status

def test_status_counts_servers_rooms_and_sockets(redis_url, key):
    with PyServer(redis_url, key) as a, PyServer(redis_url, key) as b, \
            NodeServer(redis_url, key) as node:
        a.start_listening()
        b.start_listening()
        with PyClient(a.url, rooms=['r1']) as one, PyClient(b.url, rooms=['r1', 'r2']), \
                NodeClient(node.url, rooms=['r2']) as three:
            assert three.sid
            result = cli('status', '--json', '--url', redis_url, '--key', key)
            assert result.returncode == 0, result.stderr
            report = json.loads(result.stdout)
            assert report['servers'] == 3 and report['redis_version']
            root = report['namespaces']['/']
            assert root['servers'] == 3 and root['sockets'] == 3
            assert {'r1', 'r2', one.sid, three.sid} <= set(root['rooms'])
            assert root['sockets_per_room']['r1'] == 2
            assert root['sockets_per_room']['r2'] == 2
            assert report['namespaces']['/admin']['servers'] == 3
            human = cli('status', '--namespace', '/', '--url', redis_url, '--key', key)
            assert human.returncode == 0, human.stderr
            assert 'namespace /: 3 servers, 3 sockets' in human.stdout
            assert 'room r1: 2' in human.stdout


def test_status_without_servers_exits_1(redis_url, key):
    result = cli('status', '--url', redis_url, '--key', key)
    assert result.returncode == 1
    assert result.stderr.strip() == \
        "sio-redis-sync: error: no server answers on key '%s'" % key


# ----------------------------------------------------------------- bench

def test_bench_runs_its_workload(redis_url, key):
    result = cli('bench', '--count', 300, '--json', '--url', redis_url, '--key', key)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['count'] == 300
    for name in ('raw_publish_per_s', 'emitter_per_s', 'raw_receive_per_s',
                 'listener_per_s', 'emitter_ratio', 'listener_ratio'):
        assert report[name] > 0, name
    assert 'listener receive' in result.stderr


# ------------------------------------------------------------- hardening

# what a terminal acts on: C0/C1 controls, DEL, bidi overrides
_CONTROLS = re.compile('[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e'
                       '\u2066-\u2069]')
HOSTILE = '\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e\x00\x7f'


@pytest.mark.parametrize('json_form', [False, True])
def test_monitor_escapes_terminal_controls(redis_url, key, redis_client, json_form):
    nested = {'k' + HOSTILE: [HOSTILE, {'deeper': [HOSTILE, b'\x1b']}]}
    monitor = Monitor(*(['--json'] if json_form else []), '--url', redis_url,
                      '--key', key, '--count', 3, '--width', 100000)
    redis_client.publish(key + '#/#', classic.encode_broadcast(
        'u' + HOSTILE, '/', ['ev' + HOSTILE, nested], ['r' + HOSTILE]))
    redis_client.publish(key + '-request#/#', json.dumps(
        {'type': 99, 'uid': HOSTILE}).encode())  # malformed: its error line
    redis_client.publish(key + '#/#', b'\xc1' + HOSTILE.encode())
    assert monitor.process.wait(30) == 0
    monitor.stop()
    assert len(monitor.lines) == 3, monitor.lines
    for line in monitor.lines + monitor.stderr:
        assert not _CONTROLS.search(line), repr(line)
    if json_form:  # escaped losslessly: the same strings once decoded
        broadcast = monitor.records()[0]
        assert broadcast['event'] == 'ev' + HOSTILE
        assert broadcast['payload'] == [{'k' + HOSTILE: [
            HOSTILE, {'deeper': [HOSTILE, {'$bin': 'Gw=='}]}]}]
        assert broadcast['rooms'] == ['r' + HOSTILE]
    else:
        assert '\\u001b]0;pwned\\u0007' in monitor.lines[0]


def test_monitor_survives_deep_nesting(redis_url, key, redis_client):
    monitor = Monitor('--json', '--url', redis_url, '--key', key, '--count', 3)
    for depth in (900, 100000):
        deep = b'\x91' * depth + b'\xa1x'  # msgpack [[[...'x'...]]]
        redis_client.publish(key + '#/#', b'\x93\xa1u\x82\xa4type\x02\xa4data'
                             b'\x92\xa2ev' + deep + b'\x83\xa5rooms\x90\xa6except'
                             b'\x90\xa5flags\x80')
    redis_client.publish(key + '#/#', classic.encode_broadcast('u', '/', ['after']))
    assert monitor.process.wait(30) == 0, monitor.stderr
    monitor.stop()
    first, second, after = monitor.records()
    assert first['type'] in ('BROADCAST', 'MALFORMED')
    assert second['type'] in ('BROADCAST', 'MALFORMED')
    assert after['event'] == 'after'


def test_monitor_and_bench_accept_every_url_form(key, redis_client):
    server = ServerProcess(['unixsocket {dir}/redis.sock', 'unixsocketperm 700'],
                           name='cli-unix')
    try:
        for url in ('valkey://127.0.0.1:%d/0' % server.port,
                    'unix://%s/redis.sock?db=0' % server.dir):
            monitor = Monitor('--json', '--url', url, '--key', key, '--count', 1)
            with server.client() as admin:
                admin.publish(key + '#/#', classic.encode_broadcast('u', '/', ['ev']))
            assert monitor.process.wait(30) == 0, monitor.stderr
            monitor.stop()
            assert monitor.records()[0]['event'] == 'ev'
            result = cli('bench', '--count', 50, '--json', '--url', url, '--key', key)
            assert result.returncode == 0, result.stderr
    finally:
        server.close()


SECRET = 'Zxa/Zxb?Zxc#Zxd@Zxe:Zxf%Zxg'


@pytest.mark.parametrize('url', [
    'redis://user:%s@127.0.0.1:1/0' % SECRET,
    'valkeys://:%s@127.0.0.1:1/0' % SECRET,
    'unix://user:%s@/run/nothing.sock' % SECRET,
    'redis+sentinel://:%s@127.0.0.1:1,127.0.0.1:2/0/m' % SECRET,
    'memcached://:%s@h' % SECRET,
    'redis://u:%s' % SECRET,
])
@pytest.mark.parametrize('command_args', [['status'], ['emit', 'ev'],
                                          ['monitor', '--count', '1'],
                                          ['bench', '--count', '1']])
def test_malformed_urls_give_one_line_without_the_password(url, command_args):
    result = cli(*command_args, '--url', url, timeout=60)
    assert result.returncode in (1, 2), (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('sio-redis-sync: error: '), lines
    assert 'Zx' not in result.stderr + result.stdout
    assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('json_form', [False, True])
def test_status_escapes_terminal_controls(redis_url, key, redis_client, json_form):
    """Namespaces come from channel names anyone can subscribe to."""
    hostile = redis_client.pubsub()
    hostile.subscribe('%s-request#/%s#' % (key, HOSTILE))
    hostile.get_message(timeout=5)
    try:
        result = cli('status', '--timeout', '0.5', '--url', redis_url, '--key', key,
                     *(['--json'] if json_form else []))
    finally:
        hostile.close()
    assert result.returncode == 1, result.stderr  # it does not answer
    assert result.stdout and result.stderr
    for line in (result.stdout + result.stderr).splitlines():
        assert not _CONTROLS.search(line), repr(line)
    if json_form:
        assert list(json.loads(result.stdout)['namespaces']) == ['/' + HOSTILE]
