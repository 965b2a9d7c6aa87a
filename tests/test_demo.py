"""The demo of examples/flask_app: its chat crosses servers, and the README's
demo command serves both pages and stops everything on Ctrl-C.
"""
import os
import pathlib
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest
from werkzeug.serving import make_server

from rig import PyClient, free_port, wait_until

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEMO = ROOT / 'examples' / 'flask_app'


@pytest.fixture
def demo_app():
    sys.path.insert(0, str(DEMO))
    try:
        import app
        yield app
    finally:
        sys.path.remove(str(DEMO))
        sys.modules.pop('app', None)


def serve(app):
    http = make_server('127.0.0.1', 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    return http


def test_chat_crosses_servers(demo_app, redis_url):
    servers = [demo_app.create_app(redis_url, name) for name in ('one', 'two')]
    https = [serve(app) for app, _ in servers]
    try:
        alice = PyClient('http://127.0.0.1:%d' % https[0].server_port)
        bob = PyClient('http://127.0.0.1:%d' % https[1].server_port)
        for client in (alice, bob):
            client.client.emit('join', 'demo-room-%s' % id(servers))
        room = 'demo-room-%s' % id(servers)
        wait_until(lambda: len(alice.received('chat')) >= 2,
                   message='alice sees both joins')
        alice.client.emit('chat', {'room': room, 'text': 'hi bob'})
        wait_until(lambda: {'room': room, 'from': 'server one', 'text': 'hi bob'}
                   in [args[0] for args in bob.received('chat')],
                   message='bob gets alice\'s message through Redis')
        alice.close()
        bob.close()
    finally:
        for http, (_, socketio) in zip(https, servers):
            http.shutdown()
            socketio.server.manager.close()


def test_demo_command_serves_and_stops_on_ctrl_c(redis_url):
    ports = [free_port(), free_port()]
    env = dict(os.environ, REDIS_URL=redis_url,
               DEMO_PORTS=' '.join(map(str, ports)))
    demo = subprocess.Popen(['bash', str(DEMO / 'run.sh')], env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    output = []
    try:
        for line in demo.stdout:
            output.append(line)
            if 'demo running' in line:
                break
        for port in ports:
            page = wait_until(lambda port=port: _get('http://127.0.0.1:%d/' % port), 20,
                              0.1, 'the page on port %d' % port)
            assert 'Chat on server' in page
            assert _get('http://127.0.0.1:%d/socket.io.min.js' % port)
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        assert demo.wait(10) != 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    left = processes_matching('app.py --port %d' % ports[0])
    assert not left, 'demo servers left running: %s\n%s' % (left, ''.join(output))


def processes_matching(text):
    """Command lines of the running processes that contain ``text``."""
    found = []
    for cmdline in pathlib.Path('/proc').glob('[0-9]*/cmdline'):
        try:
            command = cmdline.read_bytes().replace(b'\0', b' ').decode()
        except OSError:
            continue  # the process ended meanwhile
        if text in command:
            found.append(command)
    return found


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None
