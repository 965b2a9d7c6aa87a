"""The demo in a real browser: headless Debian Chromium, driven by Playwright
(never a browser of Playwright's own), on pages of two different servers.

Screenshots go to tests/artifacts/ (not committed).
"""
import pathlib
import shutil
import tempfile

import pytest

from demorun import DemoRun

ARTIFACTS = pathlib.Path(__file__).resolve().parent / 'artifacts'
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu',
                  '--disable-background-networking', '--disable-quic',
                  '--no-first-run', '--disable-component-update', '--disable-sync']
INSTALL_HINT = ('this test needs Debian\'s Chromium and the playwright package: '
                '"apt-get install chromium chromium-driver" and '
                '"pip install -e .[test]" (bash tests/run.sh does both)')


@pytest.fixture
def browser():
    """A Chromium context with an empty profile of its own."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail('%s (%s)' % (INSTALL_HINT, exc))
    if not shutil.which(CHROMIUM):
        pytest.fail('%s is missing; %s' % (CHROMIUM, INSTALL_HINT))
    with tempfile.TemporaryDirectory(prefix='chromium-') as profile, \
            sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def demo(redis_url):
    with DemoRun('threading', redis_url) as demo:
        yield demo


def open_page(browser, url, user):
    page = browser.new_page()
    page.goto('%s/?user=%s' % (url, user))
    page.wait_for_function(
        'document.getElementById("sid").textContent.length == 20',
        timeout=10000)  # connected: the page shows its socket id
    return page


def log_lines(page):
    return page.locator('#log .line').all_inner_texts()


def test_two_pages_on_two_servers_chat_and_see_their_own_job(browser, demo):
    alice = open_page(browser, demo.urls[0], 'alice')
    bob = open_page(browser, demo.urls[1], 'bob')
    assert alice.inner_text('#server') == str(demo.ports[0])
    assert bob.inner_text('#server') == str(demo.ports[1])

    # Both pages joined "lobby" on connect: a message crosses servers.
    alice.fill('#text', 'hello bob, from the first server')
    alice.click('#send')
    bob.wait_for_function(
        'document.getElementById("log").textContent.includes("hello bob, from the first server")',
        timeout=10000)
    bob.fill('#text', 'hi alice')
    bob.press('#text', 'Enter')
    alice.wait_for_function(
        'document.getElementById("log").textContent.includes("hi alice")', timeout=10000)
    assert '[server %d] #lobby: hi alice' % demo.ports[1] in log_lines(alice)

    # A room only bob is in: alice no longer gets its messages once she left.
    alice.fill('#room', 'side')
    alice.click('#join')
    alice.wait_for_function(
        'document.getElementById("log").textContent.includes("#side: someone joined")',
        timeout=10000)
    bob.fill('#room', 'side')
    bob.click('#join')
    alice.wait_for_function(
        'document.getElementById("log").textContent.split("#side: someone joined").length == 3',
        timeout=10000)  # her join, then bob's
    alice.click('#leave')
    bob.wait_for_function(
        'document.getElementById("log").textContent.includes("#side: someone left")',
        timeout=10000)
    bob.fill('#text', 'only for side')
    bob.click('#send')
    bob.wait_for_function(
        'document.getElementById("log").textContent.includes("#side: only for side")',
        timeout=10000)

    # The job started on alice's page reports there, and only there.
    alice.click('#start')
    alice.wait_for_function('document.getElementById("bar").value == 100', timeout=30000)
    assert alice.inner_text('#job').endswith('done')
    assert 'worker celery@' in alice.inner_text('#job')
    assert bob.eval_on_selector('#bar', 'bar => bar.value') == 0
    assert bob.inner_text('#job').startswith('no job yet')
    assert not any('only for side' in line for line in log_lines(alice))

    # The cluster panel: both servers, both users, where each one is.
    alice.click('#refresh')
    # read in one go: the panel is re-rendered every few seconds
    panel = alice.wait_for_function(
        """() => {
          const rows = [...document.querySelectorAll('#sockets tr')]
            .map((row) => [...row.cells].map((cell) => cell.innerText));
          const text = document.getElementById('cluster').textContent;
          return rows.length == 2 && rows.every((cells) => cells[1]) &&
            {rows: rows, text: text};
        }""", timeout=10000).json_value()
    assert panel['text'].startswith('2 servers, 2 sockets'), panel
    rows = {tuple(cells[1:3]) for cells in panel['rows']}
    assert rows == {('alice', str(demo.ports[0])), ('bob', str(demo.ports[1]))}

    ARTIFACTS.mkdir(exist_ok=True)
    for name, page in (('alice', alice), ('bob', bob)):
        path = ARTIFACTS / ('browser-%s.png' % name)
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10000


def test_a_dropped_connection_recovers_with_what_it_missed(browser, demo):
    # connection state recovery in the demo: alice drops her connection while
    # bob writes; it comes back with the same socket, rooms and the messages
    alice = open_page(browser, demo.urls[0], 'alice')
    bob = open_page(browser, demo.urls[1], 'bob')
    sid = alice.inner_text('#sid')
    # hold alice's reconnection back (the client waits 1 s or more anyway)
    alice.evaluate('socket.io.reconnectionDelay(1500); socket.io.reconnectionDelayMax(1500)')
    alice.click('#drop')
    alice.wait_for_function('!socket.connected', timeout=5000)
    for n in range(3):
        bob.fill('#text', 'while away %d' % n)
        bob.click('#send')
    bob.wait_for_function(
        'document.getElementById("log").textContent.includes("while away 2")', timeout=10000)
    alice.wait_for_function(
        'document.getElementById("log").textContent.includes("message(s) sent while")',
        timeout=15000)
    lines = log_lines(alice)
    assert any('recovered: true, 3 message(s)' in line for line in lines), lines
    assert any('connection recovered on server %d' % demo.ports[0] in line
               for line in lines), lines
    assert alice.inner_text('#sid') == sid
    away = [line for line in lines if 'while away' in line]
    assert away == ['[server %d] #lobby: while away %d' % (demo.ports[1], n)
                    for n in range(3)], lines
    # still in lobby after the recovery: a live message reaches her
    bob.fill('#text', 'after')
    bob.click('#send')
    alice.wait_for_function(
        'document.getElementById("log").textContent.includes("#lobby: after")', timeout=10000)
    ARTIFACTS.mkdir(exist_ok=True)
    alice.screenshot(path=str(ARTIFACTS / 'browser-recovered.png'), full_page=True)
