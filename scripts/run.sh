#!/usr/bin/env bash
# Run web, worker and beat in the foreground; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

$PY manage.py runserver "$HOST:$PORT" &
pids+=($!)
.venv/bin/celery -A config worker --loglevel=INFO --concurrency="${WORKER_CONCURRENCY:-4}" &
pids+=($!)
.venv/bin/celery -A config beat --loglevel=INFO &
pids+=($!)

echo "Inflow: web http://$HOST:$PORT/ (admin at /admin/, API docs at /api/docs/), worker and beat running."
wait -n
