#!/usr/bin/env bash
# W4: many idle SSE streams. Opens W4_STREAMS (default 10,000) concurrent GET
# SSE streams through the gateway, each in its own MCP session (POST
# initialize, POST notifications/initialized, GET Accept: text/event-stream
# with Mcp-Session-Id, all on one keep-alive connection), holds them
# W4_HOLD seconds (default 10) and counts how many are still open. The load
# tool is bench/workloads/w4_streams.py (python3, standard library only).
#
# Meant for mcp-guard in front of `mcp-test-server http ADDR` (rmcp's stateful
# Streamable HTTP with SSE). The gateway must not be limited by its own
# defaults: start it with RATE_LIMIT_PER_MINUTE high (30,000 requests come
# from one address within seconds) and with an open-files limit that fits two
# descriptors per stream (client side + upstream side).
#
# Environment:
#   BENCH_URL          gateway endpoint (required)
#   BENCH_HEADERS      newline-separated "Name: value" lines sent on every request
#   BENCH_PID          PID whose memory is measured; else the first line of
#                      $BENCH_RUN_DIR/pids/mcp-guard-min
#   W4_STREAMS         streams to open (default 10000)
#   W4_HOLD            seconds to hold them once all are attempted (default 10)
#   W4_CONCURRENCY     stream set-ups in flight at once (default 256)
#
# Prints one JSON line: {"open_streams":N,"target":10000,"rss_mb":…,
# "peak_rss_mb":…, …} with rss_mb the gateway's VmRSS after the hold and
# peak_rss_mb its VmHWM (or the highest sampled VmRSS, if higher), plus the
# set-up time, failures by kind, and the open-file limits of both sides.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
URL=${BENCH_URL:?BENCH_URL is required}
STREAMS=${W4_STREAMS:-10000}
HOLD=${W4_HOLD:-10}
CONCURRENCY=${W4_CONCURRENCY:-256}
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

PID=${BENCH_PID:-}
if [[ -z $PID && -n ${BENCH_RUN_DIR:-} && -f $BENCH_RUN_DIR/pids/mcp-guard-min ]]; then
    PID=$(head -n 1 "$BENCH_RUN_DIR/pids/mcp-guard-min")
fi
[[ -z $PID || $PID =~ ^[0-9]+$ ]] || { echo '{"error":"bad gateway PID"}'; exit 1; }
[[ -z $PID ]] && echo "[w4] warning: no gateway PID (BENCH_PID or \$BENCH_RUN_DIR/pids/mcp-guard-min): memory not measured" >&2

# The load tool holds one descriptor per stream. 65536 where allowed, else
# the hard limit (a container may cap it: the JSON reports both sides' limits).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

ARGS=("$URL" --streams "$STREAMS" --hold "$HOLD" --concurrency "$CONCURRENCY")
[[ -n $PID ]] && ARGS+=(--pid "$PID")
while IFS= read -r line; do
    [[ -n ${line//[[:space:]]/} ]] && ARGS+=(--header "$line")
done <<<"${BENCH_HEADERS:-}"

# Set-up is bounded by the tool's own 60 s per stream; this is the backstop.
exec timeout -k 5 $((HOLD + 600)) python3 "$HERE/w4_streams.py" "${ARGS[@]}"
