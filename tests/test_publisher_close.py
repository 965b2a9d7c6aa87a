"""A Publisher (and an Emitter) closed while threads publish: every publish
returns or raises PublishError, never a raw error; and after_fork() in a
forked child, against real Redis.
"""
import functools
import os
import signal
import threading

import pytest

from sio_redis_sync import Emitter, PublishError
from sio_redis_sync.publisher import Publisher
from sio_redis_sync.protocol import Outgoing

THREADS = 4
ROUNDS = 200


def _hammer(publish, close):
    """THREADS threads publishing until each gets an error, close() in the
    middle; the errors they got, by type name."""
    errors = {}
    lock = threading.Lock()
    started = threading.Barrier(THREADS + 1)
    sent = threading.Event()

    def run():
        started.wait()
        for _ in range(10000):
            try:
                publish()
                sent.set()
            except Exception as exc:  # every type counted: what the test is about
                with lock:
                    errors.setdefault(type(exc).__name__, []).append(exc)
                return

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    started.wait()
    sent.wait(10)
    close()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    return errors


def _check(totals):
    assert set(totals) == {'PublishError'}, {
        name: (len(found), repr(found[0])) for name, found in totals.items()}
    assert len(totals['PublishError']) == THREADS * ROUNDS
    for error in totals['PublishError']:
        assert 'publisher was closed' in str(error), error


def test_close_during_publishes_raises_only_publish_error(redis_url, key):
    totals = {}
    for _ in range(ROUNDS):
        publisher = Publisher(redis_url, max_connections=THREADS)
        errors = _hammer(functools.partial(publisher.publish, key + '#/#', b'x'),
                         publisher.close)
        for name, found in errors.items():
            totals.setdefault(name, []).extend(found)
        # idle and returned connections are all closed
        pool = publisher.client.connection_pool
        assert all(c._sock is None for c in pool._connections)
    _check(totals)


def test_emitter_close_during_emits_raises_only_publish_error(redis_url, key):
    """An Emitter stays usable after close() (as redis-py's clients do): an
    emit under way when it runs may raise, only PublishError; later emits
    connect again."""
    totals = {}
    for _ in range(ROUNDS // 4):
        emitter = Emitter(redis_url, key=key, max_connections=THREADS)
        calls = iter(range(THREADS * 300))

        def emit(emitter=emitter, calls=calls):
            if next(calls, None) is None:
                raise StopIteration('enough')  # ends the thread's loop
            emitter.emit('ev', 1)
        errors = _hammer(emit, emitter.close)
        errors.pop('StopIteration', None)
        for name, found in errors.items():
            totals.setdefault(name, []).extend(found)
        assert emitter.emit('after', 1) == 0
        emitter.close()
    assert set(totals) <= {'PublishError'}, {
        name: (len(found), repr(found[0])) for name, found in totals.items()}
    for error in totals.get('PublishError', []):
        assert 'publisher was closed' in str(error), error


def test_after_close_every_publish_raises_publish_error(redis_url, key):
    publisher = Publisher(redis_url)
    assert publisher.publish(key + '#/#', b'x') == 0
    publisher.close()
    for call in (lambda: publisher.publish(key + '#/#', b'x'),
                 lambda: publisher.publish_many([Outgoing(key + '#/#', b'x')]),
                 lambda: publisher.numsub(key + '#/#')):
        with pytest.raises(PublishError, match='publisher was closed'):
            call()
    publisher.reopen()
    assert publisher.publish(key + '#/#', b'x') == 0
    publisher.close()


def _in_child(work):
    """Run ``work()`` in a forked child (killed after 10 s); its exit code."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            signal.alarm(10)  # a lock held by a parent thread: stuck forever
            code = 0 if work() else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_after_fork_renews_locks_and_leaves_the_parents_connection(
        redis_url, key, redis_client):
    publisher = Publisher(redis_url)
    channel = key + '#/#'
    sub = redis_client.pubsub()
    sub.subscribe(channel)
    sub.get_message(timeout=5)
    assert publisher.publish(channel, b'parent') == 1  # a pooled connection
    opened = publisher.connections_opened
    (parent_conn,) = publisher.client.connection_pool._connections
    holder_ready, release = threading.Event(), threading.Event()

    def hold():  # a parent thread holds the lock while the child forks
        with publisher._lock:
            holder_ready.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    holder_ready.wait(5)
    try:
        def child():
            publisher.after_fork()
            pool = publisher.client.connection_pool
            return publisher.publish(channel, b'child') == 1 and \
                parent_conn not in pool._connections and \
                publisher.connections_opened == 1
        assert _in_child(child) == 0
    finally:
        release.set()
        holder.join(5)
    # the parent's connection was not shut down by the child
    assert publisher.publish(channel, b'parent again') == 1
    assert publisher.connections_opened == opened
    received = []
    while len(received) < 3:
        message = sub.get_message(timeout=5)
        assert message is not None, received
        if message['type'] == 'message':
            received.append(message['data'])
    assert received == [b'parent', b'child', b'parent again']
    sub.close()
    publisher.close()


def test_listener_after_fork_in_the_child_leaves_the_parent_listening(
        redis_url, key, redis_client):
    import redis

    from rig import wait_until
    from sio_redis_sync.listener import Listener
    got = []
    client = redis.Redis.from_url(redis_url)
    listener = Listener(client.pubsub, lambda c, p, data: got.append(data))
    listener.subscribe(channels=[key])
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    wait_until(listener.ready.is_set, 10)
    held, release = threading.Event(), threading.Event()

    def hold():
        with listener._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        def child():
            listener.after_fork()
            listener.subscribe(channels=[key + 'x'])  # the lock is free
            listener.run()  # returns at once: the child's copy is stopped
            return listener.stopped.is_set() and not listener.ready.is_set()
        assert _in_child(child) == 0
    finally:
        release.set()
        holder.join(5)
    redis_client.publish(key, b'after the fork')
    wait_until(lambda: got == [b'after the fork'], 10)
    assert listener.connections == 1  # the child did not close its socket
    listener.stop()
    thread.join(5)
    client.close()
