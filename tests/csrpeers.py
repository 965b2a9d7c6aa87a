"""Peers of the connection state recovery tests (tests/test_recovery.py):
tests/apps/csr_server.py as a process of its own (stopped gracefully or
SIGKILLed), the sessions Redis holds, and the browser page with the JS client.

Every wait polls with a deadline.
"""
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading

import redis

from redisproc import wait_until
from sio_redis_sync import ProtocolError, recovery

TESTS = pathlib.Path(__file__).resolve().parent
APPS = TESTS / 'apps'


class CsrProcess:
    """``tests/apps/csr_server.py NAME`` as a subprocess: a Python server
    with connection state recovery, listening once it printed its port."""

    def __init__(self, redis_url, key, stream_name, duration, name, timeout=30.0):
        self.name = name
        env = dict(os.environ, SIO_REDIS_URL=redis_url, SIO_KEY=key, SIO_STREAM=stream_name,
                   SIO_RECOVERY=str(duration),
                   PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(APPS)]))
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, str(APPS / 'csr_server.py'), name], env=env, cwd=str(APPS),
            stdout=subprocess.PIPE, stderr=self._stderr)
        self._ready = []
        reader = threading.Thread(target=self._read_port, daemon=True)
        reader.start()
        wait_until(lambda: self._ready or self.process.poll() is not None, timeout,
                   message='csr_server.py %s to listen' % name)
        if not self._ready:
            self.kill()
            raise AssertionError('csr_server.py %s exited (%s): %s'
                                 % (name, self.process.returncode, self.stderr_tail()))
        self.port = self._ready[0]
        self.url = 'http://127.0.0.1:%d' % self.port

    def _read_port(self):
        for line in self.process.stdout:
            if line.startswith(b'READY '):
                self._ready.append(int(line.split()[1]))

    def stderr_tail(self, limit=3000):
        self._stderr.seek(0)
        return self._stderr.read().decode('utf-8', 'replace')[-limit:]

    def terminate(self, timeout=10.0):
        """SIGTERM: ``manager.close()`` (every session saved), then the end;
        returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self):
        """SIGKILL: a crash, nothing saved on the way out."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self):
        self.kill()
        self.process.stdout.close()
        self._stderr.close()


def stored_sessions(redis_url, sid):
    """The sessions Redis holds for the socket ``sid`` (decoded; whatever
    their pid: other tests' sessions, some of them malformed on purpose,
    share the key space)."""
    client = redis.Redis.from_url(redis_url)
    try:
        found = []
        for name in client.scan_iter(match=recovery.SESSION_KEY_PREFIX + '*', count=1000):
            raw = client.get(name)
            if raw is None:
                continue  # taken or expired since the scan saw it
            try:
                session = recovery.decode_session(raw)
            except ProtocolError:
                continue  # another test's malformed session
            if session['sid'] == sid:
                found.append(session)
        return found
    finally:
        client.close()


def open_csr_page(browser, url):
    """The page ``/csr.html`` of ``url`` (the proxy: a server serves it); its
    ``log`` lists the connects (sid, recovered), disconnects and events."""
    page = browser.new_page()
    page.goto(url + '/csr.html')
    return page


def page_log(page, kind):
    return [line for line in page.evaluate('window.log') if line['type'] == kind]
