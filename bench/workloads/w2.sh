#!/usr/bin/env bash
# W2: as W1 with SSE responses: run.sh points the contender at the upstream
# in its stateful SSE mode (`mcp-test-server http`), so every answer is a
# text/event-stream in an Mcp-Session-Id session. See wrk_mcp.sh.
export WORKLOAD=w2 BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-64}
exec "$(dirname "${BASH_SOURCE[0]}")/wrk_mcp.sh"
