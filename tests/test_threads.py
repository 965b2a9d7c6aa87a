"""Room bookkeeping under real threads: request threads join, leave and emit
while the listener delivers broadcasts and joins from Redis. Bounded in time.
"""
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
