#!/usr/bin/env bash
# Engine of w1, w2 and latency: one MCP session (POST initialize; its
# Mcp-Session-Id if the endpoint issues one; POST notifications/initialized),
# a warm-up, then wrk POSTing tools/call `echo` for BENCH_DURATION seconds
# over BENCH_CONNECTIONS keep-alive connections.
#
# Environment:
#   BENCH_URL          endpoint (required)
#   BENCH_HEADERS      newline-separated "Name: value" lines the contender needs
#   BENCH_DURATION     seconds of load (default 10)
#   BENCH_WARMUP       seconds of load before it, not measured (default 1)
#   BENCH_CONNECTIONS  concurrent connections (default 64)
#   BENCH_THREADS      wrk threads (default: the CPUs this runs on)
#   WORKLOAD           tag for messages (default wrk)
# Prints one JSON line (see bench/workloads/mcp_post.lua): requests_per_sec,
# p50_us, p90_us, p99_us, max_us, mean_us, requests, errors (= non_2xx +
# no_result + socket_errors) and those parts.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TAG=${WORKLOAD:-wrk}
URL=${BENCH_URL:?BENCH_URL is required}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-1}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-$(nproc)}
((THREADS <= CONNECTIONS)) || THREADS=$CONNECTIONS
PROTOCOL=2025-11-25
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

fail() {
    printf '[%s] error: %s\n' "$TAG" "$*" >&2
    printf '{"error":"%s"}\n' "${*//\"/\'}"
    exit 1
}
command -v wrk >/dev/null || fail "wrk not found (apt-get install -y wrk)"

TMP=$(mktemp -d)
trap 'rm -rf -- "$TMP"' EXIT

HDRS=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
while IFS= read -r line; do
    [[ -n ${line//[[:space:]]/} ]] && HDRS+=(-H "$line")
done <<<"${BENCH_HEADERS:-}"

post() {
    local prefix=$1 body=$2
    shift 2
    curl -sS --max-time 30 -o "$TMP/$prefix.body" -D "$TMP/$prefix.headers" -w '%{http_code}' \
        "${HDRS[@]}" "$@" --data-binary "$body" "$URL"
}

INIT='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"'$PROTOCOL'","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
code=$(post init "$INIT") || fail "initialize: curl failed"
[[ $code == 200 ]] || fail "initialize answered $code: $(head -c 300 "$TMP/init.body")"
grep -q '"result"' "$TMP/init.body" || fail "initialize: no result: $(head -c 300 "$TMP/init.body")"
SESSION=$(sed -n 's/^[Mm][Cc][Pp]-[Ss][Ee][Ss][Ss][Ii][Oo][Nn]-[Ii][Dd]:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$TMP/init.headers" | tail -n 1)
HDRS+=(-H "MCP-Protocol-Version: $PROTOCOL")
[[ -n $SESSION ]] && HDRS+=(-H "Mcp-Session-Id: $SESSION")
code=$(post initialized '{"jsonrpc":"2.0","method":"notifications/initialized"}') || fail "notifications/initialized: curl failed"
[[ $code == 202 || $code == 200 ]] || fail "notifications/initialized answered $code"
code=$(post probe '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}') || fail "tools/call: curl failed"
[[ $code == 200 ]] && grep -q '"result"' "$TMP/probe.body" || fail "tools/call answered $code: $(head -c 300 "$TMP/probe.body")"
printf '[%s] session %s, response %s\n' "$TAG" "${SESSION:-none}" \
    "$(sed -n 's/^[Cc]ontent-[Tt]ype:[[:space:]]*\([^;[:space:]]*\).*/\1/p' "$TMP/probe.headers")" >&2

WRK_HDRS=()
for ((i = 0; i < ${#HDRS[@]}; i += 2)); do WRK_HDRS+=(-H "${HDRS[i + 1]}"); done
if [[ $WARMUP != 0 ]]; then
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${WARMUP}s" -s "$HERE/mcp_post.lua" "${WRK_HDRS[@]}" "$URL" >/dev/null 2>&1 || true
fi
wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency -s "$HERE/mcp_post.lua" "${WRK_HDRS[@]}" "$URL" >"$TMP/wrk.out" 2>&1 ||
    fail "wrk failed: $(tail -n 3 "$TMP/wrk.out")"
line=$(grep -E '^\{"requests_per_sec"' "$TMP/wrk.out" | tail -n 1)
[[ -n $line ]] || fail "no result line from wrk: $(tail -n 5 "$TMP/wrk.out")"
printf '%s\n' "$line"
