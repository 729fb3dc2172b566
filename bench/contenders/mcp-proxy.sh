#!/usr/bin/env bash
# Contender `mcp-proxy`: PyPI `mcp-proxy` (sparfenyuk/mcp-proxy) in its server
# mode, exposing a stdio MCP server over Streamable HTTP (and legacy SSE).
#
#   mcp-proxy.sh install
#   mcp-proxy.sh start <listen-port> <stdio-server-path>   (runs `<path> stdio`)
#   mcp-proxy.sh stop
#
# Command: mcp-proxy --host 127.0.0.1 --port P --log-level WARNING -- <path> stdio
# (argv list, no shell: mcp-proxy spawns the command with the MCP SDK's
# stdio_client). Defaults kept: stateful Streamable HTTP at /mcp, one stdio
# child shared by all HTTP sessions, started with mcp-proxy.
set -euo pipefail
# shellcheck disable=SC2034 # read by ../lib.sh
CONTENDER=mcp-proxy
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

readonly MCP_PROXY_VERSION=0.13.0
readonly VENV="$BENCH_TOOLS/mcp-proxy"

installed_version() {
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp-proxy"))' 2>/dev/null || true
}

do_install() {
    [[ $(installed_version) == "$MCP_PROXY_VERSION" ]] && return 0
    command -v python3 >/dev/null || bdie "python3 is required"
    blog "installing mcp-proxy==$MCP_PROXY_VERSION into $VENV"
    mkdir -p "$BENCH_TOOLS"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV" || bdie "python3 -m venv failed"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "mcp-proxy==$MCP_PROXY_VERSION" >&2 ||
        bdie "pip install mcp-proxy==$MCP_PROXY_VERSION failed"
    [[ $(installed_version) == "$MCP_PROXY_VERSION" ]] || bdie "mcp-proxy $MCP_PROXY_VERSION is not importable from $VENV"
}

do_start() {
    local port=$1 server=$2
    [[ $(installed_version) == "$MCP_PROXY_VERSION" ]] || bdie "not installed: run $0 install"
    [[ -x $server ]] || bdie "stdio server not executable: $server"
    start_bg "$VENV/bin/mcp-proxy" --host 127.0.0.1 --port "$port" --log-level WARNING -- "$server" stdio
    wait_ready "$BG_PID" "$port" || { stop_all; exit 1; }
    blog "mcp-proxy $MCP_PROXY_VERSION on 127.0.0.1:$port -> $server stdio"
    printf 'http://127.0.0.1:%s/mcp\n' "$port"
}

do_version() {
    echo "mcp-proxy $(installed_version) (mcp $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))'))"
}

contender_main "$@"
