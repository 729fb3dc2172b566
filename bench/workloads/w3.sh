#!/usr/bin/env bash
# W3: stdio bridge throughput. One MCP session (POST initialize, take
# Mcp-Session-Id if the bridge issues one, POST notifications/initialized),
# then wrk with BENCH_CONNECTIONS keep-alive connections POSTing
# tools/call `echo` in that session for BENCH_DURATION seconds.
#
# Environment:
#   BENCH_URL          endpoint (required)
#   BENCH_HEADERS      newline-separated "Name: value" lines the contender needs
#   BENCH_DURATION     seconds of load (default 10)
#   BENCH_CONNECTIONS  concurrent connections (default 64)
#   BENCH_THREADS      wrk threads (default: number of cores)
#
# Prints one JSON line: requests_per_sec, p50_us, p90_us, p99_us, max_us,
# requests, errors (= non_2xx + no_result + socket_errors), and those parts.
# A 200 answered as SSE counts as success as long as its body carries a
# JSON-RPC "result" (a 200 carrying an error is counted in no_result).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
URL=${BENCH_URL:?BENCH_URL is required}
DURATION=${BENCH_DURATION:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-$(nproc)}
((THREADS <= CONNECTIONS)) || THREADS=$CONNECTIONS
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

fail() {
    printf '[w3] error: %s\n' "$*" >&2
    printf '{"error":"%s"}\n' "${*//\"/\'}"
    exit 1
}
command -v wrk >/dev/null || fail "wrk not found (apt-get install -y wrk)"

TMP=$(mktemp -d)
trap 'rm -rf -- "$TMP"' EXIT

CURL_HEADERS=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
while IFS= read -r line; do
    [[ -n ${line//[[:space:]]/} ]] && CURL_HEADERS+=(-H "$line")
done <<<"${BENCH_HEADERS:-}"

# post FILE-PREFIX BODY [extra curl args...]: status code on stdout.
post() {
    local prefix=$1 body=$2
    shift 2
    curl -sS --max-time 30 -o "$TMP/$prefix.body" -D "$TMP/$prefix.headers" -w '%{http_code}' \
        "${CURL_HEADERS[@]}" "$@" --data-binary "$body" "$URL"
}

INIT='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench-w3","version":"1"}}}'
code=$(post init "$INIT") || fail "initialize: curl failed"
[[ $code == 200 ]] || fail "initialize answered $code: $(head -c 300 "$TMP/init.body")"
SESSION=$(sed -n 's/^[Mm][Cc][Pp]-[Ss][Ee][Ss][Ss][Ii][Oo][Nn]-[Ii][Dd]:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$TMP/init.headers" | tail -n 1)
# The negotiated version, from a JSON body or the SSE `data:` line carrying it.
VERSION=$(python3 - "$TMP/init.body" <<'EOF'
import json, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
candidates = [text] + [l[5:].strip() for l in text.splitlines() if l.startswith("data:")]
for c in candidates:
    try:
        msg = json.loads(c)
    except ValueError:
        continue
    if isinstance(msg, dict) and "result" in msg:
        print(msg["result"].get("protocolVersion", ""))
        break
EOF
)
[[ -n $VERSION ]] || fail "initialize: no result in the answer: $(head -c 300 "$TMP/init.body")"

SESSION_HEADERS=("MCP-Protocol-Version: $VERSION")
[[ -n $SESSION ]] && SESSION_HEADERS+=("Mcp-Session-Id: $SESSION")
for h in "${SESSION_HEADERS[@]}"; do CURL_HEADERS+=(-H "$h"); done

code=$(post notified '{"jsonrpc":"2.0","method":"notifications/initialized"}') || fail "notifications/initialized: curl failed"
[[ $code =~ ^20[02]$ ]] || fail "notifications/initialized answered $code"

# One call by hand first: a bridge that cannot serve it should fail loudly,
# not as a run full of errors.
code=$(post probe '{"jsonrpc":"2.0","id":"w3-probe","method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}') ||
    fail "tools/call: curl failed"
{ [[ $code == 200 ]] && grep -q '"result"' "$TMP/probe.body"; } ||
    fail "tools/call answered $code: $(head -c 300 "$TMP/probe.body")"

W3_HEADERS=$(printf '%s\n' "${SESSION_HEADERS[@]}" "${BENCH_HEADERS:-}")
export W3_HEADERS
wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s --latency \
    -s "$HERE/w3_echo.lua" "$URL" >"$TMP/wrk.out" 2>&1 || fail "wrk failed: $(tail -n 5 "$TMP/wrk.out")"
result=$(sed -n 's/^W3RESULT //p' "$TMP/wrk.out")
[[ -n $result ]] || fail "wrk printed no result: $(tail -n 5 "$TMP/wrk.out")"

# Polite end of the session (ignored by bridges without DELETE).
curl -s -o /dev/null --max-time 5 -X DELETE "${CURL_HEADERS[@]}" "$URL" || true

printf '%s\n' "${result%\}},\"connections\":$CONNECTIONS,\"threads\":$THREADS,\"session\":$([[ -n $SESSION ]] && echo true || echo false),\"protocol_version\":\"$VERSION\"}"
