"""Fault injection for the reliability tests: a paused redis-server, and a TCP
proxy that can turn its open connections into silent half-open links.
"""
import contextlib
import os
import signal
import socket
import threading

from rig import free_port


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
