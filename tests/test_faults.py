"""Acceptance: a redis-server of the test's own is killed and restarted 10
times under a steady emit load, from an Emitter and from a server's event
handler. No crash, no hung thread; delivery resumes within 1 s of each
restart; every emit is delivered or raised to its caller (PublishError while
Redis is away, PartialDelivery while a server is subscribing again).

The one loss Redis cannot report is excused: a PUBLISH answered in the last
instant before Redis is killed, whose message was still in the subscriber's
output buffer (Redis counts a receiver once the message is queued for it).
"""
import logging
import threading
import time

import pytest
import socketio

from rig import PyServer, wait_until
from sio_redis_sync import Emitter, PublishError
from sio_redis_sync.listener import Listener

RESTARTS = 10
DOWN_FOR = 0.5     # seconds Redis stays away each time
PERIOD = 0.01      # between two emits of each load
RESUME_LIMIT = 1.0  # the requirement: delivery resumes within 1 s
# an emit confirmed this little before Redis was stopped may have died in
# Redis's output buffer with it
IN_FLIGHT = 0.05


class Receiver:
    """A socketio.Client in room r1 noting when each event arrived."""

    def __init__(self, url):
        self.arrived = {}  # (event, seq) -> time.monotonic()
        self._lock = threading.Lock()
        self.sio = socketio.Client()
        self.sio.on('*', self._on_any)
        self.sio.connect(url + '?rooms=r1', transports=['websocket'],
                         wait_timeout=10)

    def _on_any(self, event, seq):
        with self._lock:
            self.arrived[(event, seq)] = time.monotonic()

    def snapshot(self):
        with self._lock:
            return dict(self.arrived)


class Load(threading.Thread):
    """Emits ('<name>', seq) every PERIOD until stopped; ``send(seq)``
    returns (the emit went through) or raises PublishError. Notes
    (seq, outcome, done_at)."""

    def __init__(self, name, send):
        super().__init__(name='load-' + name, daemon=True)
        self.event, self.send = name, send
        self.results = []
        self.stopping = threading.Event()
        self.errors = []

    def run(self):
        seq = 0
        while not self.stopping.is_set():
            seq += 1
            try:
                self.send(seq)
                outcome = 'sent'
            except PublishError:
                outcome = 'raised'
            except Exception as exc:  # anything else is a failure of the test
                self.errors.append(exc)
                outcome = 'error'
            self.results.append((seq, outcome, time.monotonic()))
            self.stopping.wait(PERIOD)


@pytest.mark.timeout(300)
def test_ten_redis_restarts_under_load(own_redis, key, caplog):
    caplog.set_level(logging.WARNING, logger='sio_redis_sync')
    sender = PyServer(own_redis.url, key, publish_timeout=1.0)
    target = PyServer(own_redis.url, key, publish_timeout=1.0)
    sender.start_listening()
    target.start_listening()
    receiver = Receiver(target.url)
    emitter = Emitter(own_redis.url, key=key, publish_timeout=1.0)

    @sender.sio.on('relay')
    def relay(sid, seq):
        try:
            sender.sio.emit('handler', seq, to='r1')
            return 'ok'
        except PublishError:
            return 'raised'

    caller = socketio.Client()
    caller.connect(sender.url, transports=['websocket'], wait_timeout=10)

    def from_handler(seq):
        if caller.call('relay', seq, timeout=10) == 'raised':
            raise PublishError('relay', RuntimeError('raised in the handler'))

    loads = [Load('emitter', lambda seq: emitter.to('r1').emit('emitter', seq)),
             Load('handler', from_handler)]
    ready_at = []   # when the target's listener was subscribed again
    spawned_at = []
    down_at = []    # just before each stop or kill
    try:
        for load in loads:
            load.start()
        wait_until(lambda: all(len(load.results) > 10 for load in loads))
        for cycle in range(RESTARTS):
            down_at.append(time.monotonic())
            if cycle % 2:
                own_redis.process.kill()  # SIGKILL: no goodbye at all
                own_redis.process.wait()
            else:
                own_redis.stop()  # SIGTERM
            wait_until(lambda: not target.manager.ready, message='loss noticed')
            time.sleep(DOWN_FOR)
            spawned_at.append(time.monotonic())
            own_redis.start()  # returns once it answers PING
            ready_at.append(wait_until(
                lambda: target.manager.ready and time.monotonic(),
                timeout=5, interval=0.002, message='resubscribed'))
            wait_until(lambda: all(load.results[-1][2] > ready_at[-1] + 0.3
                                   for load in loads), timeout=10,
                       message='the loads running again')
    finally:
        for load in loads:
            load.stopping.set()
        for load in loads:
            load.join(15)
    hung = [load.name for load in loads if load.is_alive()]
    assert not hung, hung
    for load in loads:
        assert not load.errors, load.errors[:3]

    # every emit that did not raise arrived, but for one in Redis's buffers
    # as it went away; nothing arrived that was not sent
    def in_flight(done):
        return any(down - IN_FLIGHT <= done <= spawned
                   for down, spawned in zip(down_at, spawned_at))

    def undelivered():
        arrived = receiver.snapshot()
        return [(load.event, seq, round(done, 3)) for load in loads
                for seq, outcome, done in load.results
                if outcome == 'sent' and (load.event, seq) not in arrived]
    deadline = time.monotonic() + 10
    while undelivered() and time.monotonic() < deadline:
        time.sleep(0.05)
    lost = undelivered()
    excused = [entry for entry in lost if in_flight(entry[2])]
    assert len(excused) <= len(loads) * RESTARTS and lost == excused, (
        'confirmed but not delivered: %s; Redis went away at %s, restarted at %s, '
        'subscribed again at %s' % (lost[:20], down_at, spawned_at, ready_at))
    arrived = receiver.snapshot()
    summary = {}
    for load in loads:
        outcomes = {seq: outcome for seq, outcome, _ in load.results}
        got = {seq for event, seq in arrived if event == load.event}
        assert got <= set(outcomes), 'an emit arrived that was never sent'
        counts = {name: sum(1 for o in outcomes.values() if o == name)
                  for name in ('sent', 'raised')}
        summary[load.event] = dict(counts, delivered=len(got))
        assert counts['raised'] > 0 and counts['sent'] > 0, summary
        assert len(got) >= counts['sent'], summary

    # delivery resumed within RESUME_LIMIT of each spawn of Redis (which is
    # before it answers PING): the first event sent after it, arrived
    resumes = []
    for spawn in spawned_at:
        first = min(at for at in arrived.values() if at > spawn)
        resumes.append(round(first - spawn, 3))
    print('resume times (s):', resumes, 'outcomes:', summary)
    assert max(resumes) <= RESUME_LIMIT, resumes
    stats = target.manager.stats()
    assert stats['reconnects'] == RESTARTS, stats
    assert not [r for r in caplog.records if 'unexpected' in r.getMessage()]

    caller.disconnect()
    receiver.sio.disconnect()
    emitter.close()
    for server in (sender, target):
        server.stop()
    # (Engine.IO's own service and ping threads outlive a server: not ours)
    wait_until(lambda: not [t for t in threading.enumerate()
                            if isinstance(getattr(getattr(t, '_target', None),
                                                  '__self__', None), Listener)],
               timeout=2, message='no listener thread left')
