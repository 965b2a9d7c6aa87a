#!/usr/bin/env bash
# The demo command of the README: two Flask-SocketIO servers (ports 5000 and
# 5001) in one cluster through Redis. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/bootstrap.sh

ensure_apt redis-server:redis-server redis-cli:redis-tools npm:npm
ensure_venv flask
ensure_npm examples/flask_app
pids=()
stop() { kill "${pids[@]}" ${BOOTSTRAP_REDIS_PID:-} 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM
ensure_redis
for port in ${DEMO_PORTS:-5000 5001}; do
  .venv/bin/python examples/flask_app/app.py --port "$port" --redis "$REDIS_URL" &
  pids+=($!)
done
echo "demo running: on ports ${DEMO_PORTS:-5000 5001} of http://127.0.0.1, one tab each (Ctrl-C stops it)"
wait
