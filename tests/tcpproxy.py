"""A small TCP proxy for the connection state recovery tests: clients connect
to it, it forwards each connection to the server it currently routes to.

Owns its listening socket, every proxied connection pair and their threads:
:meth:`TcpProxy.drop` closes every pair (the clients see their transport
close, the servers their client go away), :meth:`TcpProxy.cut` closes only
the clients' side (the servers' side stays open and silent, as a connection
whose client vanished: the server learns it at its ping timeout),
:meth:`TcpProxy.route_to` sends new connections elsewhere,
:meth:`TcpProxy.close` stops everything and joins.
"""
import selectors
import socket
import threading

CHUNK = 65536
POLL = 0.05     # how often the accept loop looks at its stop flag (seconds)


class _Pair:
    """A client connection and its upstream, pumped both ways by two threads."""

    def __init__(self, downstream, upstream):
        self.downstream = downstream
        self.upstream = upstream
        self._closed = threading.Event()
        self._cut = threading.Event()
        self.threads = [threading.Thread(target=self._pump, args=(a, b), daemon=True,
                                         name='tcpproxy-pump')
                        for a, b in ((downstream, upstream), (upstream, downstream))]
        for thread in self.threads:
            thread.start()

    def _pump(self, source, sink):
        while not self._closed.is_set():
            try:
                data = source.recv(CHUNK)
            except OSError:
                break  # closed by drop(), or by a peer: the pair ends either way
            if not data:
                break
            if self._cut.is_set():
                continue  # the client is gone: the server talks to nobody
            try:
                sink.sendall(data)
            except OSError:
                if not self._cut.is_set():
                    break
        # once cut, only the server closing its side ends the pair
        if source is self.upstream or not self._cut.is_set():
            self.close()

    def cut(self):
        """Close the client's side only; what the server sends is discarded."""
        self._cut.set()
        try:
            self.downstream.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected any more

    def close(self):
        """Close both sides at once (what a dropped network looks like to
        each peer: the connection ends)."""
        if self._closed.is_set():
            return
        self._closed.set()
        for sock in (self.downstream, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected any more
            sock.close()

    @property
    def closed(self):
        return self._closed.is_set()

    def join(self, timeout):
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout)


class TcpProxy:
    """Listens on a free loopback port (``port``), forwards to ``target_port``.

    :param target_port: where new connections go until :meth:`route_to`
                        (None: nowhere, each one is closed at once).
    """

    def __init__(self, target_port=None):
        self._target = target_port
        self._lock = threading.Lock()
        self._pairs = []
        self._cut_pairs = []    # cut(): kept until their server closes, or close()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(('127.0.0.1', 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = 'http://127.0.0.1:%d' % self.port
        #: how many connections were accepted (and to which port), in order
        self.accepted = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name='tcpproxy-accept')
        self._thread.start()

    def _accept_loop(self):
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select(POLL):
                    continue
                try:
                    downstream, _ = self._listener.accept()
                except OSError:
                    continue
                self._connect(downstream)

    def _connect(self, downstream):
        with self._lock:
            target = self._target
        if target is None:
            downstream.close()  # routed nowhere: the client's attempt fails
            return
        try:
            upstream = socket.create_connection(('127.0.0.1', target), timeout=5)
        except OSError:
            downstream.close()  # the server is gone: the client sees a refusal
            return
        upstream.settimeout(None)
        for sock in (downstream, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.accepted.append(target)
            self._pairs = [pair for pair in self._pairs if not pair.closed]
            self._pairs.append(_Pair(downstream, upstream))

    def route_to(self, port):
        """Send the connections accepted from now on to ``port`` (None:
        close them at once, as if the server could not be reached)."""
        with self._lock:
            self._target = port

    def drop(self):
        """Close every proxied connection now; return how many were open."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        live = [pair for pair in pairs if not pair.closed]
        for pair in pairs:
            pair.close()
        for pair in pairs:
            pair.join(5)
        return len(live)

    def cut(self):
        """Close the clients' side of every proxied connection; the servers'
        side stays open (and silent) until the server closes it or
        :meth:`close`. Returns how many were open."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
            live = [pair for pair in pairs if not pair.closed]
            self._cut_pairs.extend(live)
        for pair in live:
            pair.cut()
        return len(live)

    def open_count(self):
        """How many proxied connections are open."""
        with self._lock:
            return len([pair for pair in self._pairs if not pair.closed])

    def close(self):
        """Stop accepting, drop everything, join every thread."""
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            self._pairs.extend(self._cut_pairs)
            self._cut_pairs = []
        self.drop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
