#!/usr/bin/env bash
# `mcp-guard probe` against two third-party MCP servers, each on its own and
# behind mcp-guard with default settings:
#
#   server-everything  @modelcontextprotocol/server-everything (streamableHttp),
#                      the Node runtime and package versions tests/conformance/run.sh
#                      pins, from .tools/conformance (installed here if missing)
#   fastmcp            tests/probe/fastmcp_server.py: the official Python SDK
#                      (PyPI `mcp`, pinned below) as its quickstart runs it, in a
#                      venv under .tools/probe/venv
#
# Each target is probed with --format json and --format sarif, directly and
# through `mcp-guard --upstream URL --listen 127.0.0.1:PORT` (a fresh gateway
# per probe run, so one run's rate-limit state never colours the next).
# Reports go to target/probe/: NAME.json, NAME.sarif, NAME.log (the probe's
# stderr) and summary.md, with NAME = <target>-<direct|guarded>.
#
# Usage: tests/probe/run.sh
#
# Exit status: 0 passed; 1 a probe exited 2 (its target could not be probed)
# or left no report, or a run behind mcp-guard has a critical, high or medium
# finding; 2 the setup failed. Findings on the servers on their own are
# reported, never judged.
#
# Environment:
#   GUARD_BIN              gateway binary (default: <repo>/target/debug/mcp-guard)
#   PROBE_OUT_DIR          reports (default: <repo>/target/probe)
#   PROBE_STARTUP_TIMEOUT  seconds to wait for a server to listen (default: 30)
#   PROBE_RUN_TIMEOUT      seconds per probe run (default: 600)
set -euo pipefail

# The Python SDK's newest release when this was written; in 2.x FastMCP is
# called MCPServer (fastmcp_server.py serves 1.x too).
readonly MCP_PY_VERSION=2.3.0

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO
readonly HERE="$REPO/tests/probe"
readonly NODE_TOOLS="$REPO/.tools/conformance"
readonly NODE="$NODE_TOOLS/node_modules/node/bin/node"
readonly SERVER_EVERYTHING="$NODE_TOOLS/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
readonly TOOLS="$REPO/.tools/probe"
readonly VENV="$TOOLS/venv"
readonly LOOPBACK_PRELOAD="$TOOLS/loopback-only.mjs"

GUARD_BIN=${GUARD_BIN:-$REPO/target/debug/mcp-guard}
OUT_DIR=${PROBE_OUT_DIR:-$REPO/target/probe}
STARTUP_TIMEOUT=${PROBE_STARTUP_TIMEOUT:-30}
RUN_TIMEOUT=${PROBE_RUN_TIMEOUT:-600}

log() { printf '[probe] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

# The conformance gate's pins, read from its script so both probe one server.
conformance_pin() { sed -n "s/^readonly $1=\([^ ]*\).*/\1/p" "$REPO/tests/conformance/run.sh"; }
NODE_VERSION=$(conformance_pin NODE_VERSION)
CONFORMANCE_VERSION=$(conformance_pin CONFORMANCE_VERSION)
SERVER_EVERYTHING_VERSION=$(conformance_pin SERVER_EVERYTHING_VERSION)
[[ -n $NODE_VERSION && -n $CONFORMANCE_VERSION && -n $SERVER_EVERYTHING_VERSION ]] ||
    die "could not read the pinned versions from tests/conformance/run.sh"

# ---------------------------------------------------------------- processes --

BG_PIDS=()

alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $state && $state != Z* ]]
}

# Each server gets its own session (setsid), so stopping it by its group id
# also stops anything it spawned; nothing is ever stopped by name.
start_bg() {
    local logfile=$1
    shift
    setsid "$@" </dev/null >"$logfile" 2>&1 &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

stop_bg() {
    local pid=$1 dest p
    if [[ $(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') == "$pid" ]]; then
        dest="-$pid"
    else
        dest=$pid
    fi
    kill -TERM -- "$dest" 2>/dev/null || true
    for _ in {1..50}; do
        alive "$pid" || break
        sleep 0.1
    done
    kill -KILL -- "$dest" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local -a rest=()
    for p in "${BG_PIDS[@]}"; do
        [[ $p == "$pid" ]] || rest+=("$p")
    done
    BG_PIDS=("${rest[@]}")
}

cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        stop_bg "$pid"
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() {
    local pid=$1 port=$2 what=$3 logfile=$4
    local deadline=$((SECONDS + STARTUP_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            log "$what exited before listening on 127.0.0.1:$port; log tail ($logfile):"
            tail -n 20 "$logfile" >&2 || true
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    log "$what did not listen on 127.0.0.1:$port within ${STARTUP_TIMEOUT}s; log tail ($logfile):"
    tail -n 20 "$logfile" >&2 || true
    return 1
}

# -------------------------------------------------------------------- tools --

pkg_version() {
    "$NODE" -p 'require(process.argv[1]).version' "$1/package.json" 2>/dev/null || true
}

node_tools_ready() {
    [[ -x $NODE ]] &&
        [[ $("$NODE" --version 2>/dev/null) == "v$NODE_VERSION" ]] &&
        [[ $(pkg_version "$NODE_TOOLS/node_modules/@modelcontextprotocol/server-everything") == "$SERVER_EVERYTHING_VERSION" ]]
}

install_node_tools() {
    node_tools_ready && return
    command -v npm >/dev/null || die "npm is required to install server-everything"
    log "installing node@$NODE_VERSION and server-everything@$SERVER_EVERYTHING_VERSION into $NODE_TOOLS"
    mkdir -p "$NODE_TOOLS"
    # The same manifest tests/conformance/run.sh writes, so either script's
    # install satisfies the other.
    cat >"$NODE_TOOLS/package.json" <<EOF
{
  "name": "mcp-guard-conformance-tools",
  "private": true,
  "description": "Generated by tests/conformance/run.sh; do not edit.",
  "dependencies": {
    "node": "$NODE_VERSION",
    "@modelcontextprotocol/conformance": "$CONFORMANCE_VERSION",
    "@modelcontextprotocol/server-everything": "$SERVER_EVERYTHING_VERSION"
  }
}
EOF
    (cd "$NODE_TOOLS" && npm install --no-audit --no-fund --loglevel=error >&2) || die "npm install failed"
    node_tools_ready || die "install finished but $NODE is not node v$NODE_VERSION"
}

mcp_py_version() {
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null || true
}

install_venv() {
    [[ $(mcp_py_version) == "$MCP_PY_VERSION" ]] && return
    command -v python3 >/dev/null || die "python3 is required for the FastMCP server"
    log "installing mcp==$MCP_PY_VERSION into $VENV"
    mkdir -p "$TOOLS"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "mcp==$MCP_PY_VERSION" >&2 ||
        die "pip install mcp==$MCP_PY_VERSION failed"
    [[ $(mcp_py_version) == "$MCP_PY_VERSION" ]] || die "mcp $MCP_PY_VERSION is not importable from $VENV"
}

write_preload() {
    # server-everything calls app.listen(PORT) without a host, i.e. on every
    # interface: pin port-only listen() calls to loopback.
    mkdir -p "$TOOLS"
    cat >"$LOOPBACK_PRELOAD" <<'EOF'
// Generated by tests/probe/run.sh: bind port-only listen() calls to loopback.
import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const portOnly = typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port));
  if (portOnly && typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  return listen.apply(this, args);
};
EOF
}

# -------------------------------------------------------------------- runs --

RUNS=() # REPORT=EXIT, for the summary to judge

# probe NAME URL FORMAT: one probe run, its report in NAME.json or NAME.sarif.
probe() {
    local name=$1 url=$2 format=$3 ext rc=0
    ext=$([[ $format == sarif ]] && echo sarif || echo json)
    timeout --foreground -k 5 "$RUN_TIMEOUT" \
        "$GUARD_BIN" probe "$url" --format "$format" >"$OUT_DIR/$name.$ext" 2>>"$OUT_DIR/$name.log" || rc=$?
    log "$name ($format): exit $rc"
    RUNS+=("$name.$ext=$rc")
}

# guarded NAME UPSTREAM FORMAT: a fresh default gateway in front of UPSTREAM, probed.
guarded() {
    local name=$1 upstream=$2 format=$3 port pid
    port=$(free_port)
    start_bg "$OUT_DIR/$name-gateway-$format.log" "$GUARD_BIN" --upstream "$upstream" --listen "127.0.0.1:$port"
    pid=$BG_PID
    if wait_for_port "$pid" "$port" "mcp-guard ($name)" "$OUT_DIR/$name-gateway-$format.log"; then
        probe "$name" "http://127.0.0.1:$port/mcp" "$format"
    else
        RUNS+=("$name.$([[ $format == sarif ]] && echo sarif || echo json)=2")
    fi
    stop_bg "$pid"
}

probe_target() {
    local target=$1 url=$2 format
    for format in json sarif; do
        probe "$target-direct" "$url" "$format"
    done
    for format in json sarif; do
        guarded "$target-guarded" "$url" "$format"
    done
}

main() {
    [[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p}' "$0"; exit 0; }
    [[ -x $GUARD_BIN ]] || die "gateway binary not found: $GUARD_BIN (cargo build -p mcp-guard)"
    "$GUARD_BIN" probe --help >/dev/null 2>&1 || die "$GUARD_BIN has no probe subcommand"
    install_node_tools
    install_venv
    write_preload
    export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
    rm -rf -- "$OUT_DIR"
    mkdir -p "$OUT_DIR"

    local port
    port=$(free_port)
    # server-everything takes its port from $PORT only; its endpoint is /mcp.
    start_bg "$OUT_DIR/server-everything.log" env "PORT=$port" \
        "$NODE" --import "$LOOPBACK_PRELOAD" "$SERVER_EVERYTHING" streamableHttp
    wait_for_port "$BG_PID" "$port" server-everything "$OUT_DIR/server-everything.log" ||
        die "server-everything did not start"
    local everything_url="http://127.0.0.1:$port/mcp"

    port=$(free_port)
    start_bg "$OUT_DIR/fastmcp.log" "$VENV/bin/python" "$HERE/fastmcp_server.py" "$port"
    wait_for_port "$BG_PID" "$port" "FastMCP server" "$OUT_DIR/fastmcp.log" || die "the FastMCP server did not start"
    local fastmcp_url="http://127.0.0.1:$port/mcp"

    probe_target server-everything "$everything_url"
    probe_target fastmcp "$fastmcp_url"

    {
        echo "# mcp-guard probe: third-party MCP servers, on their own and behind mcp-guard"
        echo
        echo "- probe and gateway: $("$GUARD_BIN" --version 2>/dev/null || echo "$GUARD_BIN"), default settings"
        echo "- server-everything: @modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION (node v$NODE_VERSION), streamableHttp"
        echo "- fastmcp: Python SDK mcp==$(mcp_py_version) (FastMCP, named MCPServer in 2.x), streamable-http, default settings"
        echo "- judged: no probe may exit 2; behind mcp-guard, nothing of severity medium or above"
        echo "- reports: $OUT_DIR/<run>.json and .sarif; the probe's stderr in <run>.log"
    } >"$OUT_DIR/header.md"
    local rc=0
    python3 "$HERE/summary.py" "$OUT_DIR" "$OUT_DIR/header.md" "${RUNS[@]}" >"$OUT_DIR/summary.md" || rc=$?
    rm -f -- "$OUT_DIR/header.md"
    cat "$OUT_DIR/summary.md"
    log "summary written to $OUT_DIR/summary.md"
    return "$rc"
}

main "$@"
