#!/usr/bin/env bash
# Contender `mcp-guard-min`: the release mcp-guard with its defaults in front
# of an HTTP upstream (Host/Origin, protocol version, 4 MiB body limit, JSON
# inspection, security headers, rate limit) with only the rate limit raised:
#
#   RATE_LIMIT_PER_MINUTE=100000000 mcp-guard --listen 127.0.0.1:P --upstream URL
set -euo pipefail
CONTENDER=mcp-guard-min
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
do_install() { need_guard_bin; }
do_version() { "$GUARD_BIN" --version; }
do_start() {
    local port=$1 upstream=$2
    [[ -x $GUARD_BIN ]] || bdie "not built: $GUARD_BIN (run $0 install)"
    local argv=(env RATE_LIMIT_PER_MINUTE=100000000 "$GUARD_BIN" --listen "127.0.0.1:$port" --upstream "$upstream")
    record_argv "${argv[@]}"
    start_bg "${argv[@]}"
    wait_ready "$BG_PID" "$port" /health || { stop_all; exit 1; }
    printf 'http://127.0.0.1:%s/mcp\n' "$port"
}
contender_main "$@"
