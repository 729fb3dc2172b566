#!/usr/bin/env bash
# Contender `mcp-guard-stdio`: the release mcp-guard in front of a stdio MCP
# server (one child per MCP session, spawned from an argv list).
#
#   mcp-guard-stdio.sh install      (builds target/release/mcp-guard if missing)
#   mcp-guard-stdio.sh start <listen-port> <stdio-server-path>   (runs `<path> stdio`)
#   mcp-guard-stdio.sh stop
#
# Command: RATE_LIMIT_PER_MINUTE=100000000 \
#          mcp-guard --listen 127.0.0.1:P -- <path> stdio
# Everything else is the default configuration (Host/Origin checks, protocol
# version rules, 4 MiB body limit, JSON checks, security headers, 64 stdio
# sessions). GUARD_BIN overrides the binary.
set -euo pipefail
# shellcheck disable=SC2034 # read by ../lib.sh
CONTENDER=mcp-guard-stdio
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

GUARD_BIN=${GUARD_BIN:-$BENCH_REPO/target/release/mcp-guard}

do_install() {
    [[ -x $GUARD_BIN ]] && return 0
    blog "building the release mcp-guard"
    (cd "$BENCH_REPO" && cargo build --release -p mcp-guard --bin mcp-guard >&2) || bdie "cargo build failed"
}

do_start() {
    local port=$1 server=$2
    [[ -x $GUARD_BIN ]] || bdie "gateway binary not found: $GUARD_BIN (run $0 install)"
    [[ -x $server ]] || bdie "stdio server not executable: $server"
    start_bg env RATE_LIMIT_PER_MINUTE=100000000 \
        "$GUARD_BIN" --listen "127.0.0.1:$port" -- "$server" stdio
    wait_ready "$BG_PID" "$port" || { stop_all; exit 1; }
    blog "mcp-guard on 127.0.0.1:$port -> $server stdio"
    printf 'http://127.0.0.1:%s/mcp\n' "$port"
}

do_version() { "$GUARD_BIN" --version; }

contender_main "$@"
