#!/usr/bin/env bash
# The test command of the README: installs what a fresh Debian machine lacks
# (redis-server, Node, Chromium, a virtualenv, the pinned npm packages), then
# runs pytest on the virtualenv's Python. Under CI (CI set) it also runs tox
# for the oldest and newest supported Pythons, plus lint and type.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/bootstrap.sh

ensure_apt redis-server:redis-server redis-cli:redis-tools node:nodejs npm:npm \
  chromium:chromium chromedriver:chromium-driver
ensure_venv test
ensure_npm tests
ensure_npm examples/flask_app
trap 'kill ${BOOTSTRAP_REDIS_PID:-} 2>/dev/null || true' EXIT
ensure_redis
status=0
# three pytest-xdist workers (PYTEST_WORKERS): the suite mostly waits on Redis,
# servers and timeouts; a later -n in the arguments wins
# (then the timing-sensitive fault tests marked serial, alone)
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-3}" -m "not serial" "$@" || status=$?
.venv/bin/python -m pytest -m serial "$@" || { rc=$?; [ "$rc" -eq 5 ] || status=$rc; }  # 5: none selected

version=$(.venv/bin/python -c 'import sys; print("py%d%d" % sys.version_info[:2])')
if [ -n "${CI:-}" ]; then
  # CI covers the oldest, the newest and 3.11 (and connection state recovery on
  # the oldest python-socketio it supports); a missing interpreter fails it.
  envs=py39,py313,recovery-oldest,lint,type
  [ "$version" = py311 ] || envs=py311,$envs
  echo "CI: the suite ran on $version above; now tox -e $envs"
  .venv/bin/python -m pip install -q --disable-pip-version-check 'tox>=4'
  .venv/bin/tox -e "$envs" || status=$?
else
  echo "the suite ran on $version only; 'tox' runs it on Python 3.9 to 3.13 plus lint and type" \
    "(CI runs py39, py313, recovery-oldest, lint and type besides)"
fi
exit $status
