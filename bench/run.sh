#!/usr/bin/env bash
# The benchmark command: installs what is missing (like tests/run.sh: apt
# packages, the .venv with the bench extra, the pinned Node peers), then runs
# `python -m bench` with the given arguments (try --help, or --short).
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/bootstrap.sh

ensure_apt redis-server:redis-server redis-benchmark:redis-tools node:nodejs npm:npm
ensure_venv test,bench
ensure_npm tests
exec .venv/bin/python -m bench "$@"
