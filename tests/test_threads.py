"""Owns room bookkeeping under real threads: request threads join, leave, emit,
disconnect and read rooms while the listener applies broadcasts and remote joins.

No RuntimeError, no lost membership, no deadlock; each test is bounded in time.
(The stress test came from test_thread_stress.py, merged here.)
"""
import random
import sys
import threading

import pytest

from rig import PyClient, PyServer, wait_until
from sio_redis_sync import Emitter


@pytest.fixture
def eager_thread_switches():
    """Switch threads every microsecond so that races show up in seconds."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def test_concurrent_joins_leaves_and_deliveries(redis_url, key, eager_thread_switches):
    with PyServer(redis_url, key) as server:
        clients = [PyClient(server.url) for _ in range(10)]
        sio, errors = server.sio, []
        stop = threading.Event()

        def churn(n):
            try:
                for i in range(150):
                    client = clients[(n + i) % len(clients)]
                    room = 'room%d' % (i % 7)
                    sio.enter_room(client.sid, room)
                    sio.emit('churn', i, to=room)
                    sio.leave_room(client.sid, room)
                    sio.rooms(client.sid)
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

        def remote():
            emitter = Emitter(redis_url, key=key)
            try:
                while not stop.is_set():
                    emitter.to(['room1', 'room2']).emit('remote')
                    emitter.to('room3').sockets_join('joined')
                    emitter.to('joined').sockets_leave('joined')
            finally:
                emitter.close()

        workers = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
        feeder = threading.Thread(target=remote)
        feeder.start()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        stop.set()
        feeder.join(10)
        assert not errors, errors
        assert not any(worker.is_alive() for worker in workers)
        # the listener survived and the rooms are consistent
        wait_until(lambda: all(sio.rooms(c.sid) == [c.sid] for c in clients),
                   message='every client back in its own room only')
        Emitter(redis_url, key=key).emit('alive')
        for client in clients:
            client.wait_for('alive')
            client.close()


@pytest.mark.timeout(180)
def test_threads_and_listener_churn_rooms_together(redis_url, key,
                                                   eager_thread_switches):
    with PyServer(redis_url, key) as server:
        sio, manager, errors = server.sio, server.manager, []
        stable = [PyClient(server.url, rooms=['stable']) for _ in range(8)]
        wait_until(lambda: manager.ready)
        stop = threading.Event()
        gone = []

        def guarded(work):
            def run(*args):
                try:
                    work(*args)
                except Exception as exc:  # collected and asserted below
                    errors.append(exc)
            return run

        def churn(n):
            rng = random.Random(n)
            for i in range(300):
                client = rng.choice(stable)
                room = 'room%d' % rng.randrange(5)
                sio.enter_room(client.sid, room)
                sio.emit('churn', i, to=[room, 'stable'], skip_sid=client.sid)
                sio.leave_room(client.sid, room)
                sio.rooms(client.sid)

        def come_and_go(n):
            for i in range(6):
                client = PyClient(server.url, rooms=['stable', 'temp%d' % n])
                # like python-socketio's, a server-side disconnect is ignored
                # until the connect handler is done
                wait_until(lambda c=client: manager.is_connected(c.sid, '/'),
                           message='the server done connecting')
                sio.emit('hello', i, to='temp%d' % n)
                if i % 2:
                    sio.disconnect(client.sid)
                else:
                    sio.close_room('temp%d' % n)
                    client.client.disconnect()
                gone.append(client.sid)

        def read():
            while not stop.is_set():
                for namespace in manager.get_namespaces():
                    list(manager.get_participants(namespace, 'stable'))
                    list(manager.get_participants(namespace, None))
                manager.stats()

        def remote():
            emitter = Emitter(redis_url, key=key)
            try:
                while not stop.is_set():
                    emitter.to('stable').emit('remote')
                    emitter.to('stable').sockets_join('joined')
                    emitter.to('joined').sockets_leave('joined')
                    emitter.to('nobody').disconnect_sockets()
            finally:
                emitter.close()

        workers = [threading.Thread(target=guarded(churn), args=(n,))
                   for n in range(6)]
        workers += [threading.Thread(target=guarded(come_and_go), args=(n,))
                    for n in range(3)]
        background = [threading.Thread(target=guarded(read)),
                      threading.Thread(target=guarded(remote))]
        for thread in workers + background:
            thread.start()
        for thread in workers:
            thread.join(120)
        stop.set()
        for thread in background:
            thread.join(10)
        assert not any(t.is_alive() for t in workers + background), 'deadlock'
        assert not errors, errors[:3]
        assert manager.stats()['reconnects'] == 0
        # nothing lost, nothing left over
        wait_until(lambda: all(sorted(sio.rooms(c.sid)) == sorted([c.sid, 'stable'])
                               for c in stable),
                   message='every stable client in its own room and stable only')
        wait_until(lambda: not set(gone) & set(manager.rooms['/'].get(None, {})),
                   message='every departed client forgotten')
        assert set(s for s, _ in manager.get_participants('/', 'stable')) == \
            {c.sid for c in stable}
        Emitter(redis_url, key=key).to('stable').emit('alive')
        for client in stable:
            client.wait_for('alive', timeout=60)
            client.close()
