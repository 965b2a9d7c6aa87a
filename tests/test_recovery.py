"""Connection state recovery (issue 17) with real clients: Node's
socket.io-client 4.8.4 and headless Chromium with the JS client reach the
servers through a TCP proxy (tests/tcpproxy.py) that drops their connection
and sends the reconnection to another server.

Owns the recovery scenarios across servers: Python to Python, Python to Node,
Node to Python, an expired session, a Python server's graceful shutdown and
its SIGKILL (its sessions were kept current in Redis while it lived),
malformed pid and offset in the auth, 200 messages at 100/s across two
drops, what is sent while a socket recovers, and the old server of a socket
that moved while its connection there looked alive (cut: open and silent),
which must no longer write its session. Each test has its own key and
stream; the servers are tests/apps/csr_server.py (in this process, or as a
process of its own to be stopped) and tests/node/server.js with
connectionStateRecovery.
"""
import logging
import re
import threading
import time

import pytest

from apps.csr_server import Served
from csrpeers import CsrProcess, open_csr_page, page_log, stored_sessions
from nodepeers import NodeClient, NodeServer
from rig import PyClient, wait_until
from sio_redis_sync import Emitter, recovery
from tcpproxy import TcpProxy
from test_browser import browser  # noqa: F401 (the Chromium fixture)

#: max_disconnection_duration of the servers (seconds) but in the expiry test
DURATION = 60.0
OFFSET = re.compile(r'[0-9]+-[0-9]+\Z')


class Servers:
    """The servers of one test, all on its key and stream, stopped at its end."""

    def __init__(self, redis_url, key):
        self.redis_url, self.key, self.stream = redis_url, key, '%s-stream' % key
        self._started = []

    def _add(self, server, stop):
        self._started.append(stop)
        return server

    def python(self, name, duration=DURATION):
        """A Python server in this process (tests/apps/csr_server.py)."""
        server = Served(self.redis_url, self.key, self.stream, duration, name)
        return self._add(server, server.stop)

    def process(self, name, duration=DURATION):
        """A Python server as a process of its own, to be stopped or killed."""
        server = CsrProcess(self.redis_url, self.key, self.stream, duration, name)
        return self._add(server, server.close)

    def node(self, duration=DURATION):
        """A Node streams server with connectionStateRecovery."""
        server = NodeServer(self.redis_url, self.key, mode='streams', namespaces=('/',),
                            recovery=duration, stream_name=self.stream)
        return self._add(server, server.stop)

    def stop(self):
        for stop in reversed(self._started):
            stop()


@pytest.fixture
def servers(redis_url, key):
    made = Servers(redis_url, key)
    yield made
    made.stop()


@pytest.fixture
def proxy():
    with TcpProxy() as made:
        yield made


@pytest.fixture
def emitter(servers):
    """A streams Emitter on the test's stream."""
    made = Emitter(servers.redis_url, key=servers.key, mode='streams',
                   stream_name=servers.stream)
    yield made
    made.close()


@pytest.fixture
def clients():
    """Node socket.io-clients that reconnect (and recover) 200 ms after a drop."""
    made = []

    def connect(url, rooms=('r1',), **options):
        made.append(NodeClient(url, rooms=rooms, reconnect=True, **options))
        return made[-1]
    yield connect
    for client in made:
        client.stop()


# ---------------------------------------------------------------- helpers

def go_away(proxy):
    """Drop the client's connection; its reconnections fail until come_back."""
    proxy.route_to(None)
    assert proxy.drop() >= 1


def come_back(proxy, port, client, count):
    """Let the client reconnect, to ``port``: its ``count``-th connection."""
    proxy.route_to(port)
    return client.wait_connects(count)


def values_of(client, event):
    """The first argument of every ``event`` the client got, in order; each
    must end with an offset (a stream entry id), later ones greater."""
    got = [args for name, args in client.events if name == event]
    offsets = [args[-1] for args in got]
    assert all(isinstance(o, str) and OFFSET.match(o) for o in offsets), got
    keys = [tuple(map(int, o.split('-'))) for o in offsets]
    assert keys == sorted(set(keys)), 'offsets repeat or go back: %r' % offsets
    return [args[0] for args in got]


def caught_up(client, event, expected, barrier):
    """The client got exactly ``expected`` (once each, in order) as ``event``
    once the ``barrier`` event (emitted after them) arrived."""
    client.wait_for(barrier)
    assert values_of(client, event) == expected, client.events


def remember(client, note, room):
    """Ask a Python server to save ``{'note': note}`` and join ``room``."""
    client.emit('remember', note, room)
    count = len([1 for name, args in client.events if name == 'remembered'])
    client.wait_for('remembered', count=count + 1)


def whoami(client):
    """The newest ``me`` answer of a Python server to ``whoami``."""
    count = len([1 for name, _ in client.events if name == 'me'])
    client.emit('whoami')
    client.wait_for('me', count=count + 1)
    return [args for name, args in client.events if name == 'me'][-1][0]


def the_socket(emitter, sid):
    """The socket ``sid`` as the cluster answers fetch_sockets (exactly one)."""
    found = emitter.fetch_sockets(room=sid)
    assert [s.id for s in found] == [sid], found
    return found[0]


def recovered_as(first, again):
    assert again == {'sid': first['sid'], 'recovered': True}, (first, again)


# ---------------------------------------------------------------- cases

def test_python_to_python(servers, proxy, emitter, clients):
    a, b = servers.python('A'), servers.python('B')
    proxy.route_to(a.port)
    client = clients(proxy.url)
    first = client.wait_connects(1)
    assert first['recovered'] is False
    remember(client, 'kept', 'later')
    emitter.to('r1').emit('tick', 0)
    client.wait_for('tick')

    go_away(proxy)
    emitter.to('r1').emit('tick', 1)
    emitter.to('later').emit('tick', 2)
    a.sio.emit('tick', 3, to=first['sid'])      # a server's own emit
    b.sio.emit('tick', 4, room='r1')
    emitter.to('r1').except_('later').emit('tick', 'not for it (except)')
    emitter.to('elsewhere').emit('tick', 'not for it (room)')

    recovered_as(first, come_back(proxy, b.port, client, 2))
    assert b.sio.connects == [(first['sid'], True)]
    emitter.to('later').emit('barrier')           # a room it got back
    caught_up(client, 'tick', [0, 1, 2, 3, 4], 'barrier')
    me = whoami(client)
    assert me['server'] == 'B' and me['recovered'] is True
    assert me['rooms'] == sorted([first['sid'], 'r1', 'later'])
    assert me['session'] == {'note': 'kept'}
    found = the_socket(emitter, first['sid'])
    assert found.data == {'note': 'kept'}


def test_python_to_node(servers, proxy, emitter, clients):
    a, node = servers.python('A'), servers.node()
    proxy.route_to(a.port)
    client = clients(proxy.url)
    first = client.wait_connects(1)
    remember(client, 'from python', 'later')
    emitter.to('r1').emit('tick', 0)
    client.wait_for('tick')

    go_away(proxy)
    emitter.to('r1').emit('tick', 1)
    a.sio.emit('tick', 2, room='later')
    emitter.to('r1').except_('later').emit('tick', 'not for it (except)')

    recovered_as(first, come_back(proxy, node.port, client, 2))
    client.ctl(op='emit', to=['later'], event='barrier')  # Node's own emit
    caught_up(client, 'tick', [0, 1, 2], 'barrier')
    found = the_socket(emitter, first['sid'])
    assert found.data == {'note': 'from python'}
    assert set(found.rooms) == {first['sid'], 'r1', 'later'}


def test_node_to_python(servers, proxy, emitter, clients):
    node, b = servers.node(), servers.python('B')
    proxy.route_to(node.port)
    client = clients(proxy.url)
    first = client.wait_connects(1)
    sid = first['sid']
    client.ctl(op='setData', sid=sid, data={'note': 'from node', 'n': [1, 2]})
    client.ctl(op='remoteSocket', sid=sid, action='join', room='later')
    client.ctl(op='emit', to=['r1'], event='tick', args=[0])
    client.wait_for('tick')

    go_away(proxy)
    emitter.to('later').emit('tick', 1)
    b.sio.emit('tick', 2, room='r1')
    emitter.to('later').except_('r1').emit('tick', 'not for it (except)')

    recovered_as(first, come_back(proxy, b.port, client, 2))
    assert b.sio.connects == [(sid, True)]
    emitter.to('later').emit('barrier')
    caught_up(client, 'tick', [0, 1, 2], 'barrier')
    me = whoami(client)
    assert me['recovered'] is True
    assert me['rooms'] == sorted([sid, 'r1', 'later'])
    assert me['session'] == {'note': 'from node', 'n': [1, 2]}


def test_an_expired_session_gives_a_new_connection(servers, proxy, emitter, clients,
                                                   redis_url):
    a, b = servers.python('A', duration=1.0), servers.python('B', duration=1.0)
    proxy.route_to(a.port)
    client = clients(proxy.url)
    first = client.wait_connects(1)
    emitter.to('r1').emit('tick', 0)
    client.wait_for('tick')
    wait_until(lambda: stored_sessions(redis_url, first['sid']), 5.0,
               message='the session in Redis')

    go_away(proxy)
    emitter.to('r1').emit('tick', 'missed for good')
    # max_disconnection_duration (1 s) later, Redis has forgotten it
    wait_until(lambda: not stored_sessions(redis_url, first['sid']), 5.0, interval=0.05,
               message='the session to expire')

    again = come_back(proxy, b.port, client, 2)
    assert again['recovered'] is False and again['sid'] != first['sid']
    assert b.sio.connects == [(again['sid'], False)]
    emitter.to('r1').emit('barrier')    # it joined r1 again, as a new socket
    caught_up(client, 'tick', [0], 'barrier')
    assert whoami(client)['session'] == {'first': 'B'}


@pytest.mark.parametrize('ending', ['graceful', 'sigkill'])
def test_a_python_server_that_ends_hands_its_clients_over(servers, proxy, emitter, clients,
                                                           redis_url, ending):
    """Graceful: SIGTERM, manager.close() saves every session, the process
    ends. SIGKILL: nothing saved on the way out; the session Redis holds was
    kept current while the socket lived (beyond Node)."""
    a, b = servers.process('A'), servers.python('B')
    proxy.route_to(a.port)
    client = clients(proxy.url)
    first = client.wait_connects(1)
    sid = first['sid']
    remember(client, 'before the end', 'later')
    emitter.to('r1').emit('tick', 0)
    client.wait_for('tick')
    proxy.route_to(None)
    if ending == 'graceful':
        assert a.terminate() == 0
    else:
        wait_until(lambda: any('later' in s['rooms'] and s['data'] == {'note': 'before the end'}
                               for s in stored_sessions(redis_url, sid)),
                   5.0, interval=0.05, message='the session kept current in Redis')
        a.kill()
    proxy.drop()
    client.wait_disconnect()

    emitter.to('later').emit('tick', 1)
    b.sio.emit('tick', 2, room='r1')
    recovered_as(first, come_back(proxy, b.port, client, 2))
    emitter.to('later').emit('barrier')
    caught_up(client, 'tick', [0, 1, 2], 'barrier')
    me = whoami(client)
    assert me['recovered'] is True and me['server'] == 'B'
    assert me['rooms'] == sorted([sid, 'r1', 'later'])
    assert me['session'] == {'note': 'before the end'}


def test_malformed_pid_and_offset_give_a_new_connection(servers, emitter, clients, redis_url,
                                                        redis_client, caplog):
    caplog.set_level(logging.DEBUG, logger='sio_redis_sync')
    a = servers.python('A')
    victim = clients(a.url)
    sid = victim.wait_connects(1)['sid']
    emitter.to('r1').emit('tick', 0)
    offset = victim.wait_for('tick')[-1]
    pid = wait_until(lambda: stored_sessions(redis_url, sid), 5.0,
                     message='the session in Redis')[0]['pid']
    planted = recovery.new_pid()  # keys that hold no session
    redis_client.set(recovery.SESSION_KEY_PREFIX + planted, b'not base64 at all', px=10000)
    redis_client.set(recovery.SESSION_KEY_PREFIX + planted + 'x', b'AAAA', px=10000)
    auths = [{'pid': 12345, 'offset': offset}, {'pid': None, 'offset': offset},
             {'pid': ['a'], 'offset': {'b': 1}}, {'pid': 'x' * 100000, 'offset': offset},
             {'pid': pid, 'offset': 'nope'}, {'pid': pid, 'offset': '1-2-3'},
             {'pid': pid, 'offset': 12}, {'pid': pid, 'offset': None},
             {'pid': 'unknown', 'offset': offset}, {'pid': planted, 'offset': offset},
             {'pid': planted + 'x', 'offset': offset}, {'pid': pid},
             {'offset': offset}, {'pid': '', 'offset': ''}]
    for auth in auths:
        with PyClient(a.url, auth=auth) as other:
            assert other.client.connected, auth
            assert other.sid != sid
            assert a.sio.connects[-1] == (other.sid, False), auth
            assert a.manager.recovered(other.sid) is False
    # the victim's session is still there, and its socket still served
    assert [s['pid'] for s in stored_sessions(redis_url, sid)] == [pid]
    # a pid recovers someone's session: no log line shows one
    logged = '\n'.join(r.getMessage() + str(r.exc_info or '') for r in caplog.records)
    assert 'recovery failed' in logged  # the planted non-sessions were refused, logged
    assert pid not in logged and planted not in logged
    emitter.to('r1').emit('barrier')
    caught_up(victim, 'tick', [0], 'barrier')


def test_200_messages_at_100_per_second_across_two_drops(servers, proxy, emitter, clients):
    a, b = servers.python('A'), servers.python('B')
    proxy.route_to(a.port)
    client = clients(proxy.url)
    first = client.wait_connects(1)
    total = 200

    def send():
        start = time.monotonic()
        for n in range(total):
            emitter.to('r1').emit('n', n)
            time.sleep(max(0.0, start + (n + 1) / 100 - time.monotonic()))
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    client.wait_for('n', count=50)
    proxy.route_to(b.port)
    proxy.drop()
    recovered_as(first, client.wait_connects(2))
    client.wait_for('n', count=120)
    proxy.route_to(a.port)
    proxy.drop()
    recovered_as(first, client.wait_connects(3))
    sender.join(10)
    emitter.to('r1').emit('barrier')
    caught_up(client, 'n', list(range(total)), 'barrier')
    assert proxy.accepted == [a.port, b.port, a.port]


def test_a_browser_recovers_on_another_server(servers, proxy, emitter, browser):  # noqa: F811
    a, b = servers.python('A'), servers.python('B')
    proxy.route_to(a.port)
    page = open_csr_page(browser, proxy.url)
    page.wait_for_function('window.log.some((line) => line.type == "connect")', timeout=10000)
    first = page_log(page, 'connect')[0]
    for n in range(3):
        emitter.to('r1').emit('tick', n)
    page.wait_for_function('window.log.filter((line) => line.event == "tick").length == 3',
                           timeout=10000)
    go_away(proxy)
    page.wait_for_function('window.log.some((line) => line.type == "disconnect")',
                           timeout=10000)
    for n in range(3, 6):
        emitter.to('r1').emit('tick', n)
    proxy.route_to(b.port)
    page.wait_for_function('window.log.filter((line) => line.type == "connect").length == 2',
                           timeout=10000)
    again = page_log(page, 'connect')[1]
    assert again == {'type': 'connect', 'sid': first['sid'], 'recovered': True}
    emitter.to('r1').emit('barrier')
    page.wait_for_function('window.log.some((line) => line.event == "barrier")', timeout=10000)
    ticks = [line['args'] for line in page_log(page, 'event') if line['event'] == 'tick']
    assert [args[0] for args in ticks] == list(range(6))
    offsets = [tuple(map(int, args[-1].split('-'))) for args in ticks]
    assert offsets == sorted(set(offsets))
    assert b.sio.connects == [(first['sid'], True)]


def test_what_is_sent_while_a_socket_recovers_arrives_once_in_order(
        servers, proxy, emitter, clients, monkeypatch):
    """The two races of a recovery on B: an entry B's reader delivers after
    the missed packets were read but before the socket is back in its rooms,
    and an emit of B's own connect handler before the missed packets went."""
    a, b = servers.python('A'), servers.python('B')
    witness = PyClient(b.url, rooms=['r1'])  # sees what B's reader delivers
    original_connect = b.sio.handlers['/']['connect']

    def connect_again(sid, environ, auth=None):
        original_connect(sid, environ, auth)
        if b.manager.recovered(sid):
            b.sio.emit('tick', 'welcome back', room='r1')
    b.sio.on('connect', connect_again)
    entries_after = recovery.SessionStore.entries_after
    injected = []

    def entries_then_one_more(store, stream, offset):
        found = entries_after(store, stream, offset)
        if not injected:  # once B read what the socket missed: one more entry
            injected.append(emitter.to('r1').emit('tick', 'during recovery'))
            witness.wait_for('tick', count=3)   # B's reader delivered it
        return found
    monkeypatch.setattr(recovery.SessionStore, 'entries_after', entries_then_one_more)
    try:
        proxy.route_to(a.port)
        client = clients(proxy.url)
        first = client.wait_connects(1)
        emitter.to('r1').emit('tick', 0)
        client.wait_for('tick')
        go_away(proxy)
        emitter.to('r1').emit('tick', 1)
        recovered_as(first, come_back(proxy, b.port, client, 2))
        emitter.to('r1').emit('barrier')
        caught_up(client, 'tick', [0, 1, 'during recovery', 'welcome back'], 'barrier')
    finally:
        witness.close()


def first_within(predicate, within):
    """The first truthy ``predicate()`` within ``within`` seconds, or None."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    return None


def test_the_old_server_of_a_socket_that_moved_no_longer_writes_its_session(
        servers, proxy, emitter, clients, redis_url):
    """The client vanished without a word (its connection to A open and
    silent: A counts the socket as connected until its ping timeout) and
    recovered on B. A must not write the session again: neither over B's
    newer one, nor back once the socket left for good (a pid recovers once)."""
    a = servers.python('A', duration=2.0)   # A writes all its sessions every 0.5 s
    b = servers.python('B')                 # B only what changed (every 15 s all)
    proxy.route_to(a.port)
    client = clients(proxy.url)
    first = client.wait_connects(1)
    sid = first['sid']
    emitter.to('r1').emit('tick', 0)
    client.wait_for('tick')
    wait_until(lambda: stored_sessions(redis_url, sid), 5.0, message='the session in Redis')

    assert proxy.cut() == 1
    recovered_as(first, come_back(proxy, b.port, client, 2))
    assert a.manager.is_connected(sid, '/')  # A has not noticed
    remember(client, 'on B', 'b-room')
    wait_until(lambda: any('b-room' in s['rooms'] for s in stored_sessions(redis_url, sid)),
               5.0, message="B's session in Redis")
    period = 2.0 * 0.25
    stale = first_within(lambda: [(s['rooms'], s['data']) for s in stored_sessions(redis_url, sid)
                                  if 'b-room' not in s['rooms']], 3 * period)
    assert not stale, 'A wrote its old session over B\'s: %r' % stale

    client.disconnect()                      # for good: B deletes the session
    client.wait_disconnects(2)
    wait_until(lambda: not stored_sessions(redis_url, sid), 5.0, message='B to delete it')
    revived = first_within(lambda: [(s['rooms'], s['data'])
                                    for s in stored_sessions(redis_url, sid)], 3 * period)
    assert not revived, 'A wrote the session back: %r' % revived
    client.connect()                         # with its pid: nothing to recover
    again = client.wait_connects(3)
    assert again['recovered'] is False and again['sid'] != sid


def test_the_old_server_of_a_socket_that_moved_to_node_no_longer_writes_its_session(
        servers, proxy, emitter, clients, redis_url):
    """As above, the socket recovering on a Node server: Node took the
    session (GETDEL) and writes it only when the socket leaves; A, which
    still counts the socket as connected, must not write it back."""
    a, node = servers.python('A', duration=2.0), servers.node()
    proxy.route_to(a.port)
    client = clients(proxy.url)
    first = client.wait_connects(1)
    emitter.to('r1').emit('tick', 0)
    client.wait_for('tick')
    wait_until(lambda: stored_sessions(redis_url, first['sid']), 5.0,
               message='the session in Redis')

    assert proxy.cut() == 1
    recovered_as(first, come_back(proxy, node.port, client, 2))
    assert a.manager.is_connected(first['sid'], '/')  # A has not noticed
    revived = first_within(lambda: [(s['rooms'], s['data'])
                                    for s in stored_sessions(redis_url, first['sid'])],
                           3 * 2.0 * 0.25)
    assert not revived, 'A wrote the session back: %r' % revived


def test_a_server_s_own_emits_and_others_reach_its_clients_in_stream_order(
        servers, emitter, clients):
    # a server's own recoverable emits and an emitter's, at once: the client's
    # offsets only grow (Node delivers its own at once, before older entries
    # its reader has not read yet: offsets went back 101 times in 600 events,
    # and a recovery from such an offset misses or repeats events)
    a = servers.python('A')
    client = clients(a.url)
    client.wait_connects(1)
    count = 300

    def from_emitter():
        for n in range(count):
            emitter.to('r1').emit('e', n)
    thread = threading.Thread(target=from_emitter, daemon=True)
    thread.start()
    for n in range(count):
        a.sio.emit('s', n, room='r1')
    thread.join(30)
    emitter.to('r1').emit('barrier')
    client.wait_for('barrier', timeout=20)
    got = [args for name, args in client.events if name in ('e', 's')]
    keys = [tuple(map(int, args[-1].split('-'))) for args in got]
    assert keys == sorted(set(keys)), 'offsets repeat or go back'
    assert values_of(client, 'e') == list(range(count))
    assert values_of(client, 's') == list(range(count))
