#!/usr/bin/env bash
# Contender `direct`: no gateway, the load goes straight to the upstream (the
# ceiling). Starts nothing; prints the upstream URL.
set -euo pipefail
CONTENDER=direct
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
do_install() { :; }
do_start() { printf '%s\n' "$2"; }
do_version() { printf 'mcp-test-server (rmcp %s)\n' "$(sed -n '/^name = "rmcp"$/{n;s/version = "\(.*\)"/\1/p}' "$BENCH_REPO/Cargo.lock")"; }
contender_main "$@"
