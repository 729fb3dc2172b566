#!/usr/bin/env bash
# Contender `python-stack`: the seed guide's FastAPI security middleware stack
# (bench/peers/python_stack: origin validation, protocol-version validation,
# request size limit, security headers, slowapi) reverse-proxying /mcp to an
# HTTP MCP upstream with a shared httpx.AsyncClient, under uvicorn.
#
#   python-stack.sh install
#   python-stack.sh start <listen-port> <upstream-mcp-url>
#   python-stack.sh stop
#
# Workers: uvicorn's deployment docs point to Gunicorn's guidance for the
# number of worker processes, and Gunicorn's design docs ("How Many Workers?")
# recommend "(2 x $num_cores) + 1" to start with: 5 on this 2-core machine.
# uvicorn runs them itself (`--workers`, its own process manager) rather than
# under gunicorn, which would add a dependency for the same process model.
# PY_STACK_WORKERS overrides the count.
#
# Settings: RATE_LIMIT_PER_MINUTE=100000000 (slowapi's limit is evaluated on
# every request but never refuses), CORS_ORIGINS the guide's development list,
# ENVIRONMENT=development, request size limit the guide's 10 MB default,
# uvicorn access log off (mcp-guard logs no line per request either).
set -euo pipefail
# shellcheck disable=SC2034 # read by ../lib.sh
CONTENDER=python-stack
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

readonly APP_DIR="$BENCH_REPO/bench/peers/python_stack"
readonly VENV="$BENCH_TOOLS/python"
readonly REQS="$APP_DIR/requirements.txt"
readonly STAMP="$VENV/.requirements.sha256"

do_install() {
    local want
    want=$(sha256sum "$REQS" | cut -d' ' -f1)
    if [[ -x $VENV/bin/uvicorn && -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
        return 0
    fi
    command -v python3 >/dev/null || bdie "python3 is required"
    blog "installing $REQS into $VENV"
    mkdir -p "$BENCH_TOOLS"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" || bdie "python3 -m venv failed"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" >&2 || bdie "pip install failed"
    printf '%s\n' "$want" >"$STAMP"
}

do_start() {
    local port=$1 upstream=$2 workers
    [[ -x $VENV/bin/uvicorn ]] || bdie "not installed: run $0 install"
    workers=${PY_STACK_WORKERS:-$((2 * $(nproc --all) + 1))}
    start_bg env \
        "UPSTREAM_URL=$upstream" \
        "RATE_LIMIT_PER_MINUTE=${PY_STACK_RATE_LIMIT_PER_MINUTE:-100000000}" \
        'CORS_ORIGINS=["http://localhost:3000", "http://localhost:8000"]' \
        ENVIRONMENT=development \
        LOG_LEVEL=WARNING \
        "$VENV/bin/uvicorn" main:app --app-dir "$APP_DIR" \
        --host 127.0.0.1 --port "$port" --workers "$workers" \
        --no-access-log --log-level warning
    wait_ready "$BG_PID" "$port" /health || { stop_all; exit 1; }
    # Every worker imports the app on its own; give the last ones a moment so
    # the load does not start on a half-warm pool.
    local i
    for i in $(seq 1 $((workers * 4))); do
        curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" || true
        [[ $i -ge $workers ]] && [[ $(descendants "$BG_PID" | wc -l) -gt $workers ]] && break
        sleep 0.1
    done
    blog "uvicorn with $workers workers on 127.0.0.1:$port -> $upstream"
    printf 'http://127.0.0.1:%s/mcp\n' "$port"
}

do_version() {
    local workers=${PY_STACK_WORKERS:-$((2 * $(nproc --all) + 1))}
    "$VENV/bin/python" -c 'import importlib.metadata as m, sys
print(" ".join(p + " " + m.version(p) for p in ("fastapi", "starlette", "uvicorn", "httpx", "slowapi")) + "; " + sys.argv[1] + " uvicorn workers")' "$workers"
}

contender_main "$@"
