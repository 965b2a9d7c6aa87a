# Sourced by tests/run.sh and examples/flask_app/run.sh: what a fresh Debian
# machine lacks (apt packages, the .venv virtualenv, a Redis), installed once.

# ensure_apt CMD:PACKAGE...: apt-get install the packages whose command is missing
ensure_apt() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then sudo=(sudo); else
      echo "please install: sudo apt-get install ${missing[*]}" >&2; return 1; fi
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
}

# ensure_venv EXTRAS: .venv with this package installed (editable) and EXTRAS
ensure_venv() {
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$1]"
}

# ensure_npm DIR: the packages pinned by DIR/package-lock.json
ensure_npm() {
  if [ ! -d "$1/node_modules" ] || [ "$1/package-lock.json" -nt "$1/node_modules" ]; then
    npm ci --prefix "$1" --no-audit --no-fund --loglevel=error
  fi
}

# ensure_redis: REDIS_URL if set, else 127.0.0.1:6379 if it answers, else a
# redis-server of our own on a free port, stopped when the script exits.
ensure_redis() {
  if [ -n "${REDIS_URL:-}" ] || redis-cli -p 6379 ping >/dev/null 2>&1; then
    export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
    return 0
  fi
  local port
  port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  BOOTSTRAP_REDIS_PID=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$port/0"
  echo "started redis-server on port $port (pid $BOOTSTRAP_REDIS_PID) for this run"
}
