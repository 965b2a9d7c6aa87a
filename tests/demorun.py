"""The README's demo command run as a person runs it, for the demo and browser
tests: started in its own session, stopped with Ctrl-C, and checked for leftovers.
"""
import os
import pathlib
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid

from rig import free_port, wait_until

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / 'examples' / 'flask_app'
RUN_SH = DEMO_DIR / 'run.sh'


class DemoRun:
    """``bash examples/flask_app/run.sh MODE`` on two free ports, with a
    channel prefix and Celery queue of its own so that runs sharing one Redis
    (other tests, other people) stay apart; this interpreter runs the demo.

    Every process it starts inherits ``DEMO_QUEUE``, which is how
    :meth:`leftovers` finds them, whatever their command line.
    """

    def __init__(self, mode='threading', redis_url=None, **env):
        self.mode = mode
        self.ports = [free_port(), free_port()]
        self.urls = ['http://127.0.0.1:%d' % port for port in self.ports]
        self.queue = 'demo-test-%s' % uuid.uuid4().hex[:12]
        self.env = dict(os.environ, DEMO_PORTS=' '.join(map(str, self.ports)),
                        DEMO_KEY=self.queue, DEMO_QUEUE=self.queue,
                        DEMO_PYTHON=sys.executable, **env)
        if redis_url is None:
            self.env.pop('REDIS_URL', None)
        else:
            self.env['REDIS_URL'] = redis_url
        self.output = []
        self.process = None

    def start(self, timeout=90):
        """Start the demo; return once it says it is running."""
        self.process = subprocess.Popen(
            ['bash', str(RUN_SH), self.mode], env=self.env, cwd=str(ROOT),
            start_new_session=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        running = threading.Event()
        threading.Thread(target=self._read, args=(running,), daemon=True).start()
        if not running.wait(timeout):
            self.kill()
            raise AssertionError('the demo did not start within %d s:\n%s'
                                 % (timeout, self.text()))
        return self

    def _read(self, running):
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith('demo running'):
                running.set()
        running.set()  # it ended: start() reports what it said

    def text(self):
        return ''.join(self.output)

    def ctrl_c(self, timeout=30):
        """What Ctrl-C does in a terminal: SIGINT to the whole process group.
        Returns the demo's exit code."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout)

    def kill(self):
        """SIGKILL whatever is left of the demo's process group (cleanup)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def leftovers(self):
        """The command lines of the processes still running that this demo
        started (each has its ``DEMO_QUEUE`` in its environment)."""
        marker = ('DEMO_QUEUE=%s' % self.queue).encode()
        found = []
        for proc in pathlib.Path('/proc').glob('[0-9]*'):
            try:
                if marker in (proc / 'environ').read_bytes().split(b'\0'):
                    found.append((proc / 'cmdline').read_bytes()
                                 .replace(b'\0', b' ').decode())
            except OSError:
                continue  # it ended meanwhile
        return found

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


def get(url):
    """The body of ``url``, or None if it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def wait_for_page(url, timeout=20):
    return wait_until(lambda: get(url), timeout, 0.1, 'the page at %s' % url)
