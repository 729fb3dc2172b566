#!/usr/bin/env bash
# mcp-guard soak test (issue 9): a bounded mixed load -- whole MCP sessions
# plus a share of hostile requests -- against the gateway for a fixed time,
# sampling its RSS, open files and latency; fails when RSS grows more than
# 5% after warm-up, open files grow, a stdio child is left behind, a valid
# request fails, or a hostile one is not refused as expected.
#
# Usage: bench/soak/run.sh [--duration 10m] [--upstream http|stdio|both]
#            [--rate N] [--stdio-rate N] [--hostile-share 0.2] [--warmup 60s]
#            [--sample 5s] [--think 20ms] [--profile release|debug] [--bin-dir DIR]
#            [--no-build] [--out DIR]
#   --duration       load time per upstream (default 10m; s, m, h units)
#   --upstream       http: mcp-guard in front of `mcp-test-server http`;
#                    stdio: mcp-guard running `mcp-test-server stdio` per
#                    session; both (default): the two at the same time
#   --rate           target req/s against the HTTP upstream (default 500)
#   --stdio-rate     target req/s against the stdio upstream (default 100:
#                    every session spawns a process)
#   --hostile-share  share of requests that must be refused (default 0.2)
#   --warmup         excluded from the RSS and open-file baselines (default 60s)
#   --sample         sampling period (default 5s)
#   --think          pause before each request in a session (default 20ms)
#   --profile        build and use target/<profile> (default release)
#   --bin-dir DIR    use the binaries in DIR as they are (no build)
#   --no-build       use target/<profile> as it is
#   --out DIR        where the report goes (default bench/results)
#
# Writes DIR/soak-<date>-<host>[-<duration>].{csv,md} (the duration suffix
# unless it is the default 10m) and prints the report; exit status 0 when
# every check passed. Logs, configs and audit logs: bench/.run/soak-<stamp>/
# (removed after a passing run unless BENCH_KEEP_RUN_DIR=1).
set -euo pipefail

SOAK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONTENDER=soak
# shellcheck source=../lib.sh
source "$SOAK_DIR/../lib.sh"

DURATION=10m UPSTREAM=both RATE=500 STDIO_RATE=100 SHARE=0.2 WARMUP=60s SAMPLE=5s THINK=20ms
PROFILE=release BUILD=1 BIN_DIR="" OUT=""
while (($#)); do
    case $1 in
    --duration) DURATION=$2; shift ;;
    --upstream) UPSTREAM=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --stdio-rate) STDIO_RATE=$2; shift ;;
    --hostile-share) SHARE=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --sample) SAMPLE=$2; shift ;;
    --think) THINK=$2; shift ;;
    --profile) PROFILE=$2; shift ;;
    --bin-dir) BIN_DIR=$2 BUILD=0; shift ;;
    --no-build) BUILD=0 ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) bdie "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
case $UPSTREAM in http) KINDS=(http) ;; stdio) KINDS=(stdio) ;; both) KINDS=(http stdio) ;; *) bdie "--upstream: http, stdio or both" ;; esac
case $PROFILE in release) PROFILE_FLAG=(--release) ;; debug) PROFILE_FLAG=() ;; *) bdie "--profile: release or debug" ;; esac
BIN_DIR=${BIN_DIR:-$BENCH_REPO/target/$PROFILE}
OUT=${OUT:-$BENCH_REPO/bench/results}

log() { printf '[soak] %s\n' "$*" >&2; }

if ((BUILD)); then
    log "building the $PROFILE binaries"
    (cd "$BENCH_REPO" && cargo build "${PROFILE_FLAG[@]}" -p mcp-guard -p mcp-guard-testkit \
        --bin mcp-guard --bin mcp-test-server --bin mcp-soak >&2) || bdie "cargo build failed"
fi
GUARD=$BIN_DIR/mcp-guard TEST_SERVER=$BIN_DIR/mcp-test-server SOAK=$BIN_DIR/mcp-soak
for b in "$GUARD" "$TEST_SERVER" "$SOAK"; do [[ -x $b ]] || bdie "missing $b (drop --no-build / --bin-dir)"; done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
export BENCH_RUN_DIR="$BENCH_REPO/bench/.run/soak-$STAMP"
mkdir -p "$BENCH_RUN_DIR/pids" "$BENCH_RUN_DIR/logs"
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
RUN_OK=0
install_cleanup_traps

# start_gateway KIND UPSTREAM-TOML-LINE: the gateway with the soak's config;
# its PID in GW_PID, its endpoint in GW_URL. Defaults stay on (Host/Origin,
# protocol versions, 4 MiB body limit, JSON limits, security headers); the
# rate limit is evaluated on every request but set where the soak, one
# client IP, never reaches it; a policy denies one tool (exercised by the
# driver's denied-tool and tools/list checks); the audit log goes to a file.
start_gateway() {
    local kind=$1 upstream_line=$2 port dir="$BENCH_RUN_DIR/$1"
    CONTENDER=gateway-$kind
    port=$(free_port)
    mkdir -p "$dir"
    cat >"$dir/mcp-guard.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
allowed_origins = ["http://localhost:3000"]

[upstream]
$upstream_line

[rate_limit]
per_minute = 100000000

[policy]
default = "allow"
[[policy.rules]]
principals = ["*"]
effect = "deny"
tools = ["delete_everything"]

[audit]
output = "file"
path = "$dir/audit.jsonl"
max_file_size = "32MiB"
max_files = 2
TOML
    "$GUARD" check-config "$dir/mcp-guard.toml" >/dev/null 2>>"$(log_file)" || { tail -n 20 "$(log_file)" >&2; bdie "check-config failed"; }
    start_bg "$GUARD" --config "$dir/mcp-guard.toml"
    wait_ready "$BG_PID" "$port" /health || bdie "gateway ($kind) did not start"
    GW_PID=$BG_PID GW_URL="http://127.0.0.1:$port/mcp"
    log "gateway $kind: pid $GW_PID on $GW_URL"
}

declare -A DRIVER=() GATEWAY=()
for kind in "${KINDS[@]}"; do
    if [[ $kind == http ]]; then
        CONTENDER=upstream-http
        uport=$(free_port)
        start_bg "$TEST_SERVER" http "127.0.0.1:$uport"
        wait_ready "$BG_PID" "$uport" || bdie "mcp-test-server http did not start"
        start_gateway http "url = \"http://127.0.0.1:$uport/mcp\""
        rate=$RATE stdio_flag=()
    else
        start_gateway stdio "command = [\"$TEST_SERVER\", \"stdio\"]"
        rate=$STDIO_RATE stdio_flag=(--stdio)
    fi
    GATEWAY[$kind]=$GW_PID
    # shellcheck disable=SC2034 # read by log_file and pid_file (../lib.sh)
    CONTENDER=driver-$kind
    # Not start_bg: this script waits for the driver's exit status.
    "$SOAK" --url "$GW_URL" --pid "$GW_PID" --label "$kind" "${stdio_flag[@]}" --duration "$DURATION" \
        --warmup "$WARMUP" --sample "$SAMPLE" --think "$THINK" --rate "$rate" --hostile-share "$SHARE" \
        --origin http://localhost:3000 --denied-tool delete_everything \
        --csv "$BENCH_RUN_DIR/$kind.csv" --md "$BENCH_RUN_DIR/$kind.md" </dev/null 2>>"$(log_file)" &
    DRIVER[$kind]=$!
    printf '%s\n' "$!" >>"$(pid_file)"
done
log "load running for $DURATION on: ${KINDS[*]} (progress every 30 s; logs in $BENCH_RUN_DIR/logs)"

STARTED=$SECONDS
running() {
    local k
    for k in "${KINDS[@]}"; do alive "${DRIVER[$k]}" && return 0; done
    return 1
}
while running; do
    sleep 1
    if (((SECONDS - STARTED) % 30 == 0)); then
        for kind in "${KINDS[@]}"; do
            grep '^\[soak ' "$BENCH_RUN_DIR/logs/driver-$kind.log" 2>/dev/null | tail -n 1 >&2 || true
        done
    fi
done
FAILED=()
for kind in "${KINDS[@]}"; do
    status=0
    wait "${DRIVER[$kind]}" || status=$?
    alive "${GATEWAY[$kind]}" || { log "gateway $kind exited during the run"; status=1; }
    ((status == 0)) || FAILED+=("$kind")
    if [[ ! -f $BENCH_RUN_DIR/$kind.md ]]; then
        log "driver $kind wrote no report (exit $status); log tail:"
        tail -n 5 "$BENCH_RUN_DIR/logs/driver-$kind.log" >&2 || true
    fi
done
ELAPSED=$((SECONDS - STARTED))

# ---------------------------------------------------------------- report --
mkdir -p "$OUT"
name="soak-$(date -u +%Y-%m-%d)-$(hostname -s)"
[[ $DURATION == 10m ]] || name+="-$DURATION"
CSV="$OUT/$name.csv" MD="$OUT/$name.md"
{
    printf '%s\n' "upstream,time_s,phase,rss_kb,fds,children,cpu_pct,p50_us,p99_us,valid_ok,valid_failed,hostile_ok,hostile_unexpected,req_per_s"
    for kind in "${KINDS[@]}"; do
        [[ -f $BENCH_RUN_DIR/$kind.csv ]] && tail -n +2 "$BENCH_RUN_DIR/$kind.csv"
    done
} >"$CSV"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
{
    printf '# Soak: %s\n\n' "$(if ((${#FAILED[@]})); then echo "FAIL (${FAILED[*]})"; else echo PASS; fi)"
    printf -- '- date: %s, host %s, %s × %s, kernel %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(hostname -s)" "$(nproc)" "${cpu:-unknown CPU}" "$(uname -r)"
    printf -- '- gateway: %s (%s build, git %s)\n' "$("$GUARD" --version)" "$PROFILE" "$(git -C "$BENCH_REPO" describe --always --dirty 2>/dev/null || echo '?')"
    # shellcheck disable=SC2016 # the backquotes are Markdown
    printf -- '- run: `bench/soak/run.sh --duration %s --upstream %s --rate %s --stdio-rate %s --hostile-share %s --warmup %s --sample %s --think %s`, %s s wall\n' \
        "$DURATION" "$UPSTREAM" "$RATE" "$STDIO_RATE" "$SHARE" "$WARMUP" "$SAMPLE" "$THINK" "$ELAPSED"
    printf -- '- load average: %s at start, %s at end (gateway, upstream and driver share the machine, unpinned: other work skews latency, not the pass/fail checks)\n' \
        "$LOADAVG_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf -- '- samples: %s (columns: %s)\n\n' "$(basename "$CSV")" "$(head -n 1 "$CSV")"
    for kind in "${KINDS[@]}"; do
        [[ -f $BENCH_RUN_DIR/$kind.md ]] && cat "$BENCH_RUN_DIR/$kind.md"
    done
} >"$MD"
cat "$MD"
log "report: $MD and $CSV"
((${#FAILED[@]} == 0)) || exit 1
RUN_OK=1
