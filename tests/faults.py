"""Fault injection for the reliability tests: a paused redis-server, a TCP
proxy that can turn its open connections into silent half-open links, and a
ticker that keeps emitting through a fault and accounts for every emit.
"""
import contextlib
import os
import signal
import socket
import threading

from rig import free_port, wait_until
from sio_redis_sync import PublishError


@contextlib.contextmanager
def paused(redis_process):
    """SIGSTOP the redis-server (connections stay open, nothing answers);
    SIGCONT on the way out, whatever happens."""
    os.kill(redis_process.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis_process.process.pid, signal.SIGCONT)


class SilencingProxy:
    """Forwards 127.0.0.1:port to a Redis; :meth:`silence` makes every
    connection open now swallow traffic both ways without closing (what a
    NAT or load balancer that forgot the flow does). New connections work."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.url = 'redis://127.0.0.1:%d/0' % self.port
        self._listener = socket.create_server(('127.0.0.1', self.port))
        self._lock = threading.Lock()
        self._links = []  # {'silent': bool, 'socks': (client, upstream)}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(('127.0.0.1', self.target_port))
            link = {'silent': False, 'socks': (client, upstream)}
            with self._lock:
                self._links.append(link)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, link),
                                 daemon=True).start()

    @staticmethod
    def _pump(src, dst, link):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not link['silent']:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            if not link['silent']:
                for sock in link['socks']:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def silence(self):
        """Every connection open now goes silent (and stays open)."""
        with self._lock:
            for link in self._links:
                link['silent'] = True
            return len(self._links)

    def close(self):
        self._listener.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            for sock in link['socks']:
                with contextlib.suppress(OSError):
                    sock.close()


class Ticker:
    """Calls ``send(n)`` (n = 0, 1, ...) in a thread until stopped, noting
    for each n None (sent) or the PublishError it raised."""

    def __init__(self, send, interval=0.01):
        self._send = send
        self._interval = interval
        self.outcomes = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        while not self._stop.is_set():
            try:
                self._send(n)
                self.outcomes[n] = None
            except PublishError as exc:
                self.outcomes[n] = exc
            n += 1
            self._stop.wait(self._interval)

    def sent(self):
        return {n for n, error in list(self.outcomes.items()) if error is None}

    def failed(self):
        return [error for error in list(self.outcomes.values()) if error is not None]

    def stop(self):
        self._stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def ticks(client, event='tick'):
    """The ``n`` of every ``event`` that ``client`` received."""
    return {args[0] for args in client.received(event)}


def assert_arrived(client, sent, outcomes, event='tick'):
    """Every ``n`` in ``sent`` reaches ``client`` within 10 s; else fail
    naming the missing ones and the outcomes around them."""
    try:
        wait_until(lambda: sent <= ticks(client, event), 10)
    except AssertionError:
        missing = sorted(sent - ticks(client, event))
        around = range(missing[0] - 3, missing[-1] + 4)
        raise AssertionError(
            '%s %s sent without error never reached %s; outcomes around '
            'them: %r' % (event, missing, client.sid,
                          {n: outcomes.get(n) for n in around})) from None
