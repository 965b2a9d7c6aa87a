"""Runs the README's Python snippets as written, so the quick start cannot rot.

Only the Redis URL is swapped for the test Redis; the app is served for real.
"""
import contextlib
import importlib
import pathlib
import re
import sys
import threading

import pytest
from werkzeug.serving import make_server

from rig import PyClient, PyServer, wait_until
from test_legacy import flask_send

README = pathlib.Path(__file__).resolve().parent.parent / 'README.md'


def python_blocks():
    return re.findall(r'```python\n(.*?)```', README.read_text(), re.S)


@pytest.fixture
def snippets(redis_url):
    blocks = [b.replace('redis://localhost:6379/0', redis_url)
              for b in python_blocks()]
    assert len(blocks) == 6, 'update this test with the README'
    return blocks


def load(tmp_path, name, source):
    """Import ``source`` as module ``name``, as a user's file would be."""
    (tmp_path / (name + '.py')).write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


@pytest.fixture
def without_green_libraries(monkeypatch):
    """Hide eventlet and gevent (installed for other tests), as on a plain
    install: Flask-SocketIO would pick one of them, and the snippet is served
    by Werkzeug's threads here."""
    for name in ('eventlet', 'gevent', 'engineio.async_drivers.eventlet',
                 'engineio.async_drivers.gevent',
                 'engineio.async_drivers.gevent_uwsgi'):
        monkeypatch.setitem(sys.modules, name, None)


@contextlib.contextmanager
def served(module):
    """A client of the snippet's Flask-SocketIO ``app``, served by Werkzeug,
    once its manager has subscribed; then the server and manager stop."""
    http = make_server('127.0.0.1', 0, module.app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    manager = module.socketio.server.manager
    try:
        with PyClient('http://127.0.0.1:%d' % http.server_port) as client:
            wait_until(lambda: manager.ready, message='the app subscribed')
            yield client, manager
    finally:
        http.shutdown()
        manager.close()


def test_quick_start_flask_server_and_celery_task(snippets, tmp_path,
                                                  without_green_libraries):
    server = load(tmp_path, 'readme_app', snippets[0])
    tasks = load(tmp_path, 'readme_tasks', snippets[1])
    try:
        with served(server) as (client, manager):
            client.client.emit('join', 'job-42')
            wait_until(lambda: 'job-42' in manager.get_rooms(client.sid, '/'))
            tasks.report_progress.apply(args=('job-42', 50)).get()
            assert client.wait_for('progress') == [{'pct': 50}]
            exec(compile(snippets[2], 'README-chaining', 'exec'), vars(tasks))
    finally:
        tasks.emitter.close()


def test_plain_python_socketio_snippet(snippets):
    namespace = {}
    exec(compile(snippets[3], 'README-socketio', 'exec'), namespace)
    sio = namespace['sio']
    assert type(sio.manager).__name__ == 'RedisManager'
    sio.manager.close()


def test_cluster_api_snippet(snippets, redis_url, key, capsys):
    """The cluster API block, on two real servers with a client in room1
    that votes; the Emitter's default key is swapped for the test's."""
    source = snippets[4].replace("Emitter('%s')" % redis_url,
                                 'Emitter(%r, key=%r)' % (redis_url, key))
    with PyServer(redis_url, key) as a, PyServer(redis_url, key) as b:
        a.start_listening()
        b.start_listening()
        b.manager.on('reload', lambda version: 'b reloaded %d' % version)
        with PyClient(b.url, rooms=['room1']) as voter, \
                PyClient(a.url, rooms=['banned']) as banned:
            voter.client.on('vote', lambda question: 'yes')
            exec(compile(source, 'README-cluster', 'exec'), {'sio': a.sio})
            assert voter.wait_for('hello') == ['you']
            assert 'vip' in b.sio.rooms(voter.sid)
            assert banned.disconnected.wait(5)
    out = capsys.readouterr().out
    assert voter.sid in out and "'b reloaded 7'" in out and "['yes']" in out


def test_migration_snippet_with_a_flask_socketio_emitter(snippets, tmp_path, redis_url, key,
                                                         without_green_libraries):
    """The bridged server of the migration guide, served for real; a
    Flask-SocketIO ``SocketIO(message_queue=url)`` process reaches its client
    (the channel is made unique to the test: other runs may share Redis)."""
    channel = 'flask-socketio-' + key
    server = load(tmp_path, 'readme_migration',
                  snippets[5].replace("'flask-socketio'", repr(channel)))
    with served(server) as (client, _):
        flask_send(redis_url, channel, {'op': 'emit', 'event': 'old', 'data': 1})
        assert client.wait_for('old') == [1]
