"""The command line's wire modes (``--mode sharded|streams``, issue 16), run as a
subprocess against real Redis, real Python servers in those modes and real
clients: ``emit`` through the streams and sharded Emitter, ``monitor`` reading
the streams (XREAD from ``$``) beside its Pub/Sub subscriptions, ``status``
with each stream's length and ids.
"""
import json

import pytest

from rig import PyClient, PyServer
from sio_redis_sync import Emitter
from sio_redis_sync.streams import StreamsDialect, stream_key
from test_cli import _CONTROLS, HOSTILE, Monitor, cli

# with stream_count=3 this namespace hashes negatively: its stream is S--1,
# which Node's servers never read (see sio_redis_sync.streams.stream_key)
NEGATIVE_NSP = '/dashboard'


@pytest.fixture
def stream(key, redis_client):
    """A stream name of this test's own; every stream under it deleted after."""
    name = key + '-stream'
    yield name
    found = list(redis_client.scan_iter(match=name + '*', count=1000))
    if found:
        redis_client.delete(*found)


def _streams_args(redis_url, key, stream, *more):
    return ('--mode', 'streams', '--stream-name', stream, '--url', redis_url,
            '--key', key, *more)


# ----------------------------------------------------------------- usage

@pytest.mark.parametrize('args, message', [
    (['emit', 'ev', '--stream-name', 's'], '--stream-name needs --mode streams'),
    (['emit', 'ev', '--mode', 'sharded', '--max-len', '5', '--stream-count', '2'],
     '--stream-count, --max-len need --mode streams'),
    (['monitor', '--stream-count', '2'], '--stream-count needs --mode streams'),
    (['status', '--sharded-pubsub'], '--sharded-pubsub needs --mode streams'),
    (['emit', 'ev', '--subscription-mode', 'static'], '--subscription-mode needs --mode sharded'),
    (['emit', 'ev', '--mode', 'streams', '--stream-count', '0'], 'must be at least 1'),
    (['monitor', '--mode', 'streams', '--stream-name', ''], 'stream_name must be'),
    (['status', '--mode', 'pubsub'], 'invalid choice'),
])
def test_mode_options_checked(args, message, redis_url):
    result = cli(*args, '--url', redis_url)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('sio-redis-sync: error: '), lines
    assert message in lines[0]


def test_help_names_the_modes():
    for command in ('emit', 'monitor', 'status'):
        result = cli(command, '--help')
        assert result.returncode == 0, result.stderr
        assert '--mode {classic,sharded,streams}' in result.stdout
        assert '--stream-name' in result.stdout and '--stream-count' in result.stdout
    assert 'XREAD' in cli('monitor', '--help').stdout


# ------------------------------------------------------------------ emit

def test_emit_in_streams_mode_reaches_a_streams_server(redis_url, key, stream,
                                                       redis_client):
    with PyServer(redis_url, key, mode='streams', stream_name=stream,
                  stream_count=2) as server:
        server.start_listening()
        with PyClient(server.url, rooms=['r1']) as member, \
                PyClient(server.url, rooms=['r1', 'muted']) as muted, \
                PyClient(server.url, namespace='/admin') as admin:
            result = cli('emit', 'news', '{"a": [1, 2]}', '"two"', '--to', 'r1',
                         '--except', 'muted', '--stream-count', 2, '--max-len', 50,
                         *_streams_args(redis_url, key, stream))
            assert result.returncode == 0, result.stderr
            assert member.wait_for('news') == [{'a': [1, 2]}, 'two']
            root = stream_key(stream, 2, '/')
            (entry_id, fields), = redis_client.xrange(root)
            assert fields[b'uid'] == b'emitter' and fields[b'nsp'] == b'/'
            assert result.stdout.strip() == (
                "emitted 'news' to r1: entry %s of stream %s, 1 server listening"
                % (entry_id.decode(), root))
            result = cli('emit', 'ops', '3', '--namespace', 'admin', '--stream-count', 2,
                         *_streams_args(redis_url, key, stream))
            assert result.returncode == 0, result.stderr
            assert admin.wait_for('ops') == [3]
            assert stream_key(stream, 2, '/admin') in result.stdout
            muted.assert_no_event('news')
            assert member.received('ops') == []


def test_emit_and_status_in_sharded_mode(redis_url, key):
    # a static server has no room channels: an emit to one room reaches it
    # only when the emitter knows (--subscription-mode static)
    with PyServer(redis_url, key, mode='sharded', subscription_mode='static') as server:
        server.start_listening()
        with PyClient(server.url, rooms=['r1']) as member:
            result = cli('emit', 'news', '1', '--to', 'r1', '--mode', 'sharded',
                         '--subscription-mode', 'static', '--url', redis_url, '--key', key)
            assert result.returncode == 0, result.stderr
            assert "emitted 'news' to r1: 1 server subscribed" in result.stdout
            assert member.wait_for('news') == [1]
            result = cli('status', '--json', '--mode', 'sharded', '--url', redis_url,
                         '--key', key)
            assert result.returncode == 0, result.stderr
            report = json.loads(result.stdout)
            assert report['mode'] == 'sharded' and report['servers'] == 1
            assert set(report['namespaces']) == {'/', '/admin'}
            root = report['namespaces']['/']
            assert root['sockets'] == 1 and root['sockets_per_room']['r1'] == 1
            assert {'r1', member.sid} == set(root['rooms'])
            assert 'streams' not in report


# --------------------------------------------------------------- monitor

def _by(records, **fields):
    return [r for r in records if all(r.get(k) == v for k, v in fields.items())]


def test_monitor_shows_stream_entries_and_streams_requests(redis_url, key, stream,
                                                           redis_client):
    before = redis_client.xadd(stream, {'uid': 'u', 'nsp': '/', 'type': '3',
                                        'data': '{"packet":{"type":2,"data":["old"]},'
                                        '"opts":{"rooms":[],"except":[]}}'})
    monitor = Monitor('--json', '--width', 100000, '--duration', 120,
                      *_streams_args(redis_url, key, stream))
    assert repr(stream) in monitor.stderr[0]
    emitter = Emitter(redis_url, key=key, mode='streams', stream_name=stream)
    try:
        with PyServer(redis_url, key, mode='streams', stream_name=stream) as server:
            server.start_listening()
            with PyClient(server.url, rooms=['r1']) as client:
                sent = emitter.to('r1').except_('muted').emit('from-emitter', {'n': 1},
                                                              b'\x01')
                assert client.wait_for('from-emitter') == [{'n': 1}, b'\x01']
                server.sio.emit('from-server', 2, to='r1')
                server.manager.sockets_join('r2', room='r1')
                (found,) = emitter.fetch_sockets(room='r1')
                assert found.id == client.sid
                malformed = [
                    redis_client.xadd(stream, {'uid': 'u', 'nsp': '/', 'type': '77'}),
                    redis_client.xadd(stream, {'foo': 'bar'}),
                    redis_client.xadd(stream, {'uid': 'u', 'nsp': '/', 'type': '3',
                                               'data': 'not base64!'})]
                last = emitter.emit('last', 1)
                monitor.wait_for(lambda r: r['event'] == 'last', 'the last emit')
    finally:
        emitter.close()
        assert monitor.stop() == 0
    records = monitor.records()
    assert not _by(records, id=before.decode()) and not _by(records, event='old')
    (mine,) = _by(records, event='from-emitter')
    assert mine['family'] == 'stream' and mine['type'] == 'BROADCAST'
    assert mine['channel'] == stream and mine['id'] == sent and mine['nsp'] == '/'
    assert mine['uid'] == 'emitter' and mine['rooms'] == ['r1']
    assert mine['except'] == ['muted']
    assert mine['payload'] == [{'n': 1}, {'$bin': 'AQ=='}]
    (theirs,) = _by(records, event='from-server')
    assert theirs['uid'] == server.manager.uid and theirs['family'] == 'stream'
    assert theirs['rooms'] == ['r1'] and theirs['payload'] == [2]
    (join,) = _by(records, type='SOCKETS_JOIN')
    assert join['family'] == 'stream' and join['rooms'] == ['r1']
    assert join['join'] == ['r2'] and join['uid'] == server.manager.uid
    (fetch,) = _by(records, type='FETCH_SOCKETS')
    assert fetch['family'] == 'request' and fetch['channel'] == key + '#/#'
    assert fetch['uid'] == emitter.uid and fetch['rooms'] == ['r1']
    (answer,) = _by(records, type='FETCH_SOCKETS_RESPONSE')
    assert answer['family'] == 'response' and answer['uid'] == server.manager.uid
    assert answer['channel'] == '%s#/#%s#' % (key, emitter.uid)
    assert answer['request_id'] == fetch['request_id']
    assert answer['payload']['sockets'][0]['id'] == client.sid
    bad = _by(records, type='MALFORMED')
    assert [r['id'] for r in bad] == [i.decode() for i in malformed]
    assert all(r['family'] == 'stream' and r['error'] for r in bad)
    assert 'type 77' in bad[0]['error'] and 'nsp' in bad[1]['error']
    assert bad[1]['payload'] == {"b'foo'": "b'bar'"}
    assert _by(records, event='last')[0]['id'] == last
    ids = [r['id'] for r in records if r['family'] == 'stream']
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split('-'))))


def test_monitor_reads_every_stream_servers_use(redis_url, key, stream):
    """stream_count 3: the streams Node reads, and a negatively hashed
    namespace's (found through its server's channels); ``--type stream``
    leaves the Pub/Sub messages out."""
    dashboard = stream_key(stream, 3, NEGATIVE_NSP)
    assert dashboard == stream + '--1'
    emitter = Emitter(redis_url, key=key, mode='streams', stream_name=stream,
                      stream_count=3)
    with PyServer(redis_url, key, mode='streams', stream_name=stream, stream_count=3,
                  namespaces=('/', NEGATIVE_NSP)) as server:
        server.start_listening()
        monitor = Monitor('--json', '--type', 'stream', '--count', 3, '--stream-count', 3,
                          *_streams_args(redis_url, key, stream))
        try:
            for name in ['%s-%d' % (stream, n) for n in range(3)] + [dashboard]:
                assert repr(name) in monitor.stderr[0], monitor.stderr
            emitter.of(NEGATIVE_NSP).emit('dash', 1)
            emitter.fetch_sockets(namespace=NEGATIVE_NSP)  # Pub/Sub: filtered out
            emitter.emit('root', 2)
            emitter.of('/admin').emit('nobody', 3)  # no server: its stream is read
            assert monitor.process.wait(30) == 0, monitor.stderr
        finally:
            emitter.close()
            monitor.stop()
    # three streams: the monitor reads each in order, but not the streams in
    # the order of the emits (one XREAD of several streams lists them by stream)
    records = {record['event']: record for record in monitor.records()}
    assert sorted(records) == ['dash', 'nobody', 'root']
    dash, root, nobody = records['dash'], records['root'], records['nobody']
    assert dash['channel'] == dashboard
    assert dash['nsp'] == NEGATIVE_NSP
    assert root['channel'] == stream_key(stream, 3, '/')
    assert nobody['channel'] == stream_key(stream, 3, '/admin')
    assert {r['family'] for r in monitor.records()} == {'stream'}


@pytest.mark.parametrize('json_form', [False, True])
def test_monitor_escapes_controls_in_stream_entries(redis_url, key, stream, redis_client,
                                                   json_form):
    monitor = Monitor(*(['--json'] if json_form else []), '--count', 3, '--width', 100000,
                      *_streams_args(redis_url, key, stream))
    dialect = StreamsDialect(key, stream_name=stream)
    entry = dialect.encode_broadcast('/', 'u' + HOSTILE, ['ev' + HOSTILE, {'k' + HOSTILE: [
        HOSTILE, b'\x1b']}], ['r' + HOSTILE], ['x' + HOSTILE])
    redis_client.execute_command(*entry.command())
    redis_client.xadd(stream, {'uid': HOSTILE, 'nsp': '/', 'type': '99',
                               'data': HOSTILE})  # malformed: shown as fields
    redis_client.xadd(stream, {'uid': 'u', 'nsp': '/' + HOSTILE, 'type': '3',
                               'data': '{"x": "%s' % HOSTILE})
    assert monitor.process.wait(30) == 0, monitor.stderr
    monitor.stop()
    assert len(monitor.lines) == 3, monitor.lines
    for line in monitor.lines + monitor.stderr:
        assert not _CONTROLS.search(line), repr(line)
    if json_form:  # escaped losslessly: the same strings once decoded
        broadcast, bad_type, bad_data = monitor.records()
        assert broadcast['event'] == 'ev' + HOSTILE
        assert broadcast['uid'] == 'u' + HOSTILE
        assert broadcast['payload'] == [{'k' + HOSTILE: [HOSTILE, {'$bin': 'Gw=='}]}]
        assert broadcast['rooms'] == ['r' + HOSTILE]
        assert broadcast['except'] == ['x' + HOSTILE]
        assert bad_type['type'] == bad_data['type'] == 'MALFORMED'
        assert bad_data['nsp'] == '/' + HOSTILE
    else:
        assert 'event=ev\\u001b]0;pwned\\u0007' in monitor.lines[0]
        assert 'MALFORMED' in monitor.lines[1] and 'MALFORMED' in monitor.lines[2]


# ---------------------------------------------------------------- status

@pytest.mark.parametrize('sharded_pubsub', [False, True])
def test_status_shows_each_stream(redis_url, key, stream, redis_client, sharded_pubsub):
    options = {'use_sharded_pubsub': True} if sharded_pubsub else {}
    with PyServer(redis_url, key, mode='streams', stream_name=stream, stream_count=2,
                  **options) as server:
        server.start_listening()
        with PyClient(server.url, rooms=['r1']) as one, \
                PyClient(server.url, rooms=['r1', 'r2']):
            for n in range(3):
                server.sio.emit('tick', n)
            args = _streams_args(redis_url, key, stream, '--stream-count', 2,
                                 *(['--sharded-pubsub'] if sharded_pubsub else []))
            result = cli('status', '--json', *args)
            assert result.returncode == 0, result.stderr
            human = cli('status', *args)
            assert human.returncode == 0, human.stderr
    report = json.loads(result.stdout)
    assert report['mode'] == 'streams' and report['servers'] == 1
    assert set(report['namespaces']) == {'/', '/admin'}
    root = report['namespaces']['/']
    assert root['servers'] == 1 and root['sockets'] == 2
    assert {'r1', 'r2', one.sid} <= set(root['rooms'])
    assert root['sockets_per_room']['r1'] == 2 and root['sockets_per_room']['r2'] == 1
    used, empty = stream_key(stream, 2, '/'), stream_key(stream, 2, '/admin')
    assert used != empty and set(report['streams']) == {used, empty}
    entries = redis_client.xrange(used)
    assert len(entries) == 3
    assert report['streams'][used] == {
        'length': 3, 'first_id': entries[0][0].decode(), 'last_id': entries[-1][0].decode(),
        'entries_added': 3}
    assert report['streams'][empty] == {'length': 0, 'first_id': None, 'last_id': None,
                                        'entries_added': None}
    assert "key '%s' (streams mode): 1 server" % key in human.stdout
    assert 'namespace /: 1 server, 2 sockets' in human.stdout
    assert 'stream %s: 3 entries, first %s, last %s, 3 added in all' % (
        used, entries[0][0].decode(), entries[-1][0].decode()) in human.stdout
    assert 'stream %s: empty' % empty in human.stdout


@pytest.mark.parametrize('protocol', [2, 3])
def test_monitor_reads_streams_in_both_protocols(redis_url, key, stream, redis_client,
                                                 protocol):
    """redis-py parses XREAD differently under RESP3 (one more list)."""
    url = redis_url + ('&' if '?' in redis_url else '?') + 'protocol=%d' % protocol
    monitor = Monitor('--json', '--count', 4, *_streams_args(url, key, stream))
    emitter = Emitter(redis_url, key=key, mode='streams', stream_name=stream)
    try:
        emitter.emit('one', 1)
        with emitter.pipeline() as batch:  # read together, most likely
            for n in (2, 3, 4):
                batch.emit('many', n)
        assert monitor.process.wait(30) == 0, monitor.stderr
    finally:
        emitter.close()
        monitor.stop()
    assert [r['payload'] for r in monitor.records()] == [[1], [2], [3], [4]]
    assert [r['id'] for r in monitor.records()] == [
        i.decode() for i, _ in redis_client.xrange(stream)]
