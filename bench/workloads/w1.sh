#!/usr/bin/env bash
# W1: tools/call `echo`, JSON responses (run.sh points the contender at the
# upstream in its JSON mode), 64 keep-alive connections. See wrk_mcp.sh.
export WORKLOAD=w1 BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
exec "$(dirname "${BASH_SOURCE[0]}")/wrk_mcp.sh"
