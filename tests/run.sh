#!/usr/bin/env bash
# The test command of the README: installs what a fresh Debian machine lacks
# (redis-server, Node, a virtualenv, the pinned Node peers), then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/bootstrap.sh

ensure_apt redis-server:redis-server redis-cli:redis-tools node:nodejs npm:npm
ensure_venv test
ensure_npm tests
trap 'kill ${BOOTSTRAP_REDIS_PID:-} 2>/dev/null || true' EXIT
ensure_redis
.venv/bin/python -m pytest "$@"
