"""Workload 9: what connection state recovery's sessions cost (issue 17): one
full write of every local socket's session, per socket, and a session's size
in Redis.

A streams-mode RedisManager with recovery on and N sockets (made by the
manager's own pre_connect/connect, each in two rooms besides its own, with a
small session) writes all their sessions once, as its refresher does every
quarter of max_disconnection_duration. Measured: the server's CPU per socket
(process time of encoding and sending), the wall time of the write, and
MEMORY USAGE of one session key. No speed is asserted anywhere.
"""
import time
import uuid

import redis
import socketio

from sio_redis_sync import RedisManager


def _manager(redis_url, count):
    key = 'bench-%s' % uuid.uuid4().hex[:8]
    manager = RedisManager(redis_url, key=key, mode='streams', stream_name=key + '-s',
                           connection_state_recovery=True)
    server = socketio.Server(client_manager=manager, async_mode='threading')
    sessions = {}
    for n in range(count):
        eio_sid = 'e%d' % n
        sid = manager.pre_connect(eio_sid, '/')
        manager.connect(sid, '/')
        manager.enter_room(sid, '/', 'room%d' % (n % 50), eio_sid=eio_sid)
        manager.enter_room(sid, '/', 'user:%d' % n, eio_sid=eio_sid)
        sessions[eio_sid] = {'/': {'user': 'user%d' % n, 'since': n}}
    # the sessions python-socketio would keep in each Engine.IO socket
    server.get_session = lambda sid, namespace='/': sessions[
        manager.eio_sid_from_sid(sid, namespace)][namespace]
    manager.initialize()
    time.sleep(1.5)  # the refresher's first write of the new sockets is done
    return manager, server


def run(results, redis_url, impls, short):
    """One row per size: CPU per socket, wall time, bytes per session."""
    if 'ours' not in impls:
        return
    admin = redis.Redis.from_url(redis_url)
    for count in ((200,) if short else (1000, 10000)):
        manager, _ = _manager(redis_url, count)
        try:
            rounds = []
            for _ in range(1 if short else 3):
                started, cpu = time.perf_counter(), time.process_time()
                manager._save_all_sessions()
                rounds.append((time.process_time() - cpu, time.perf_counter() - started))
            cpu, wall = sorted(rounds)[len(rounds) // 2]
            keys = admin.keys('sio:session:*')
            pid = next(iter(manager._pids.values()))
            size = admin.memory_usage('sio:session:' + pid)
            every = manager._recovery['max_disconnection_duration'] / 4
            results.add('recovery', 'ours', sockets=count,
                        cpu_us_per_socket=round(cpu / count * 1e6, 2),
                        write_ms=round(wall * 1000, 1), session_bytes=size,
                        sets_per_s_default=round(count / every, 1),
                        stored=sum(1 for k in keys if k.decode()[12:] in
                                   set(manager._pids.values())))
        finally:
            manager.close()
            pids = list(manager._pids.values())
            if pids:
                admin.delete(*['sio:session:' + pid for pid in pids])
