#!/usr/bin/env bash
# mcp-guard benchmark harness (issue 8). One entry point: builds the release
# binaries, installs what the contenders need, starts the upstreams, runs
# every workload against its contenders interleaved (A B C A B C ...) for
# the rounds asked, and writes bench/results/<date>-<host>.{md,json,svg}.
#
# Usage: bench/run.sh [--quick] [--rounds N] [--duration S]
#                     [--workloads w1,w2,...] [--contenders a,b,...] [--no-build]
#   --quick        3 s per measurement, 1 round, 2 cold starts (smoke test)
#   --rounds N     rounds (default 3); each reports the median over rounds
#   --duration S   seconds of load per measurement (default 10)
#   --workloads    only these workloads (rows of the table below)
#   --contenders   only these contenders
#   --no-build     use the binaries in target/release as they are
#
# Environment: BENCH_SERVER_CPUS, BENCH_LOAD_CPUS, BENCH_UPSTREAM_CPUS
# (taskset lists; default: with 2+ CPUs, servers on the first half, load on
# the rest, upstream with the servers), BENCH_KEEP_RUN_DIR=1 (keep
# bench/.run/<stamp>/ with logs), BENCH_RESULTS_DIR (default bench/results).
# See bench/README.md for the contender and workload interface.
set -euo pipefail

# ------------------------------------------------------------------ table --
# workload  upstream  contenders (in interleaving order)
#   upstream: json  = `mcp-test-server http-json` (stateless, JSON answers)
#             sse   = `mcp-test-server http` (sessions, SSE answers)
#             stdio = the path of mcp-test-server (contenders run `<path> stdio`)
#             none  = the contender gets no upstream ("-")
# A contender missing from bench/contenders/ or whose `install` fails is
# skipped (and reported as such). Add a line to add a run.
readonly TABLE='
w1       json   direct mcp-guard-full mcp-guard-min nginx python-stack
w2       sse    direct mcp-guard-full mcp-guard-min nginx
latency  json   direct mcp-guard-full mcp-guard-min nginx
w5       json   mcp-guard-full mcp-guard-min nginx
w3       stdio  supergateway mcp-proxy mcp-guard-stdio
w4       sse    mcp-guard-min
'
# Workloads measured once per contender per run, not per round (slow, and
# their own repetition is inside: w5 is a median of 5 cold starts).
readonly ONCE_WORKLOADS=" w5 w4 "

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONTENDER=run
# shellcheck source=lib.sh
source "$BENCH_DIR/lib.sh"

ROUNDS=3 DURATION=10 W5_RUNS=5 BUILD=1 ONLY_W="" ONLY_C="" QUICK=0
while (($#)); do
    case $1 in
    --quick) QUICK=1 ROUNDS=1 DURATION=3 W5_RUNS=2 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --workloads) ONLY_W=",$2,"; shift ;;
    --contenders) ONLY_C=",$2,"; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) bdie "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ ]] || bdie "--rounds and --duration take positive integers"

log() { printf '[bench] %s\n' "$*" >&2; }

# --------------------------------------------------------------- run dir --
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
export BENCH_RUN_DIR="$BENCH_DIR/.run/$STAMP"
mkdir -p "$BENCH_RUN_DIR/pids" "$BENCH_RUN_DIR/logs" "$BENCH_RUN_DIR/argv"
RESULTS="$BENCH_RUN_DIR/results.jsonl"
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$RESULTS"

install_cleanup_traps

# ----------------------------------------------------------------- tools --
need_apt() {
    local pkg=$1
    log "installing $pkg from the distribution"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y "$pkg" >&2 || { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y "$pkg" >&2; } ||
        bdie "apt-get install $pkg failed"
}
command -v wrk >/dev/null || need_apt wrk
command -v taskset >/dev/null || need_apt util-linux
for t in curl python3 openssl; do command -v "$t" >/dev/null || need_apt "$t"; done

if ((BUILD)); then
    log "building release binaries"
    (cd "$BENCH_REPO" && cargo build --release -p mcp-guard -p mcp-guard-testkit --bins >&2) || bdie "cargo build failed"
fi
[[ -x $GUARD_BIN && -x $TEST_SERVER_BIN ]] || bdie "release binaries missing (drop --no-build)"

# --------------------------------------------------------------- pinning --
NCPU=$(nproc)
if ((NCPU >= 2)); then
    half=$((NCPU / 2))
    SERVER_CPUS=${BENCH_SERVER_CPUS:-$(seq -s, 0 $((half - 1)))}
    LOAD_CPUS=${BENCH_LOAD_CPUS:-$(seq -s, "$half" $((NCPU - 1)))}
else
    SERVER_CPUS=${BENCH_SERVER_CPUS:-0}
    LOAD_CPUS=${BENCH_LOAD_CPUS:-0}
fi
UPSTREAM_CPUS=${BENCH_UPSTREAM_CPUS:-$SERVER_CPUS}
export BENCH_SERVER_CPUS=$SERVER_CPUS
LOAD_THREADS=$(taskset -c "$LOAD_CPUS" nproc)
log "pinning: servers under test on CPU $SERVER_CPUS, upstream on CPU $UPSTREAM_CPUS, load generator on CPU $LOAD_CPUS ($LOAD_THREADS wrk threads)"

# ------------------------------------------------------------- the table --
selected() { # LIST-WITH-COMMAS ITEM
    [[ -z $1 || $1 == *",$2,"* ]]
}
declare -A INSTALLED=() SKIPPED=()
ROWS=()
while read -r w up rest; do
    [[ -n $w ]] || continue
    selected "$ONLY_W" "$w" || continue
    [[ -x $BENCH_DIR/workloads/$w.sh ]] || { log "workload $w: bench/workloads/$w.sh missing, skipped"; SKIPPED[$w]="workload script missing"; continue; }
    cs=()
    for c in $rest; do
        selected "$ONLY_C" "$c" || continue
        if [[ -z ${INSTALLED[$c]:-} && -z ${SKIPPED[$c]:-} ]]; then
            if [[ ! -x $BENCH_DIR/contenders/$c.sh ]]; then
                SKIPPED[$c]="bench/contenders/$c.sh missing"
            elif "$BENCH_DIR/contenders/$c.sh" install >"$BENCH_RUN_DIR/logs/install-$c.log" 2>&1; then
                INSTALLED[$c]=1
            else
                SKIPPED[$c]="install failed (see logs/install-$c.log)"
                tail -n 5 "$BENCH_RUN_DIR/logs/install-$c.log" >&2 || true
            fi
            [[ -n ${SKIPPED[$c]:-} ]] && log "contender $c skipped: ${SKIPPED[$c]}"
        fi
        [[ -n ${INSTALLED[$c]:-} ]] && cs+=("$c")
    done
    ((${#cs[@]})) && ROWS+=("$w $up ${cs[*]}")
done <<<"$TABLE"
((${#ROWS[@]})) || bdie "nothing to run"

# ------------------------------------------------------------- upstreams --
declare -A UPSTREAM=()
start_upstream() { # KIND MODE
    local kind=$1 mode=$2 port pid
    port=$(free_port)
    setsid taskset -c "$UPSTREAM_CPUS" "$TEST_SERVER_BIN" "$mode" "127.0.0.1:$port" </dev/null \
        >"$BENCH_RUN_DIR/logs/upstream-$kind.log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >>"$BENCH_RUN_DIR/pids/upstream-$kind"
    local deadline=$((SECONDS + 30))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        alive "$pid" || { cat "$BENCH_RUN_DIR/logs/upstream-$kind.log" >&2; bdie "upstream $kind exited"; }
        ((SECONDS < deadline)) || bdie "upstream $kind not listening after 30 s"
        sleep 0.05
    done
    UPSTREAM[$kind]="http://127.0.0.1:$port/mcp"
    log "upstream $kind: $TEST_SERVER_BIN $mode on ${UPSTREAM[$kind]} (pid $pid)"
}
for row in "${ROWS[@]}"; do
    read -r _ up _ <<<"$row"
    [[ -n ${UPSTREAM[$up]:-} ]] && continue
    case $up in
    json) start_upstream json http-json ;;
    sse) start_upstream sse http ;;
    stdio) UPSTREAM[stdio]=$TEST_SERVER_BIN ;;
    none) UPSTREAM[none]=- ;;
    *) bdie "unknown upstream kind in the table: $up" ;;
    esac
done

# ------------------------------------------------------------ measuring --
# rss_mb PIDFILE: VmRSS of every recorded PID and its descendants, in MB.
rss_mb() {
    local file=$1 pid p total=0 kb
    [[ -f $file ]] || { echo null; return; }
    while read -r pid; do
        [[ $pid =~ ^[0-9]+$ ]] || continue
        for p in "$pid" $(descendants "$pid"); do
            kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$p/status" 2>/dev/null || true)
            [[ -n $kb ]] && total=$((total + kb))
        done
    done <"$file"
    ((total > 0)) && python3 -c "print(round($total/1024, 2))" || echo null
}

record() { # WORKLOAD CONTENDER ROUND IDLE_RSS JSON-LINE
    python3 - "$@" >>"$RESULTS" <<'PY'
import json, sys
w, c, r, rss, line = sys.argv[1:6]
try:
    m = json.loads(line)
    if not isinstance(m, dict):
        raise ValueError
except ValueError:
    m = {"error": "workload printed no JSON line: " + line[:200]}
if rss != "null" and "idle_rss_mb" not in m:
    m["idle_rss_mb"] = float(rss)
print(json.dumps({"workload": w, "contender": c, "round": int(r), "metrics": m}))
PY
}

measure() { # WORKLOAD UPSTREAM-URL CONTENDER ROUND
    local w=$1 upstream=$2 c=$3 round=$4 port out url headers line rss pidfile
    local script="$BENCH_DIR/contenders/$c.sh"
    port=$(free_port)
    pidfile="$BENCH_RUN_DIR/pids/$c"
    log "$w round $round: $c"
    if ! out=$(taskset -c "$SERVER_CPUS" timeout 180 "$script" start "$port" "$upstream" 2>>"$BENCH_RUN_DIR/logs/$c.start.log"); then
        tail -n 5 "$BENCH_RUN_DIR/logs/$c.start.log" >&2 || true
        "$script" stop >/dev/null 2>&1 || true
        stop_pids "$pidfile"
        record "$w" "$c" "$round" null '{"error":"start failed"}'
        return 0
    fi
    url=$(grep -v '^HEADER: ' <<<"$out" | grep -E '^[a-z]+://' | tail -n 1)
    headers=$(sed -n 's/^HEADER: //p' <<<"$out")
    sleep 0.5
    rss=$(rss_mb "$pidfile")
    if [[ $w == w5 ]]; then
        "$script" stop >/dev/null 2>>"$BENCH_RUN_DIR/logs/$c.start.log" || true
        stop_pids "$pidfile"
        local argv_file="$BENCH_RUN_DIR/argv/$c"
        [[ -f $argv_file ]] || argv_file=""
    fi
    line=$(taskset -c "$LOAD_CPUS" env BENCH_URL="$url" BENCH_HEADERS="$headers" BENCH_DURATION="$DURATION" \
        BENCH_THREADS="$LOAD_THREADS" BENCH_PID="$(head -n 1 "$pidfile" 2>/dev/null || true)" \
        BENCH_ARGV_FILE="${argv_file:-}" W5_RUNS="$W5_RUNS" W4_HOLD="${W4_HOLD:-$DURATION}" \
        timeout $((DURATION * 4 + 300)) "$BENCH_DIR/workloads/$w.sh" 2>>"$BENCH_RUN_DIR/logs/$w.log" | tail -n 1) || true
    [[ -n $line ]] || line='{"error":"workload failed or timed out"}'
    log "  $line"
    "$script" stop >/dev/null 2>>"$BENCH_RUN_DIR/logs/$c.start.log" || true
    stop_pids "$pidfile"
    stop_pids "$BENCH_RUN_DIR/pids/w5"
    record "$w" "$c" "$round" "$rss" "$line"
}

for row in "${ROWS[@]}"; do
    read -r w up cs <<<"$row"
    rounds=$ROUNDS
    [[ $ONCE_WORKLOADS == *" $w "* ]] && rounds=1
    for ((r = 1; r <= rounds; r++)); do
        for c in $cs; do
            measure "$w" "${UPSTREAM[$up]}" "$c" "$r"
        done
    done
done

# ---------------------------------------------------------------- report --
versions_json() {
    local c v
    printf '{'
    local first=1
    for c in "${!INSTALLED[@]}"; do
        v=$("$BENCH_DIR/contenders/$c.sh" version 2>/dev/null | head -n 1) || v=""
        ((first)) || printf ','
        first=0
        python3 -c 'import json,sys; print(json.dumps(sys.argv[1])+":"+json.dumps(sys.argv[2] or "n/a"), end="")' "$c" "$v"
    done
    printf '}'
}
skipped_json() {
    local k
    printf '{'
    local first=1
    for k in "${!SKIPPED[@]}"; do
        ((first)) || printf ','
        first=0
        python3 -c 'import json,sys; print(json.dumps(sys.argv[1])+":"+json.dumps(sys.argv[2]), end="")' "$k" "${SKIPPED[$k]}"
    done
    printf '}'
}
python3 - >"$BENCH_RUN_DIR/meta.json" <<PY
import json, platform, subprocess
def sh(*a):
    try: return subprocess.run(a, capture_output=True, text=True).stdout.strip()
    except Exception: return ""
cpu = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
print(json.dumps({
  "stamp": "$STAMP", "date": "$(date -u +%Y-%m-%d)", "host": platform.node(),
  "cpu_model": cpu, "cores": $NCPU, "kernel": platform.release(),
  "pinning": {"server_cpus": "$SERVER_CPUS", "upstream_cpus": "$UPSTREAM_CPUS", "load_cpus": "$LOAD_CPUS", "load_threads": $LOAD_THREADS},
  "loadavg": {"start": "$LOADAVG_START", "end": open("/proc/loadavg").read().split()[:3]},
  "rounds": $ROUNDS, "duration_s": $DURATION, "quick": bool($QUICK), "w5_runs": $W5_RUNS,
  "table": """$TABLE""".strip().splitlines(), "rows_run": ${#ROWS[@]},
  "upstream": "mcp-test-server http-json (stateless, JSON) / http (sessions, SSE)",
  "versions": $(versions_json), "skipped": $(skipped_json),
  "tools": {"wrk": sh("sh", "-c", "wrk -v 2>&1 | head -n 1"), "rustc": sh("rustc", "--version"),
            "python3": platform.python_version(), "git": sh("git", "-C", "$BENCH_REPO", "rev-parse", "--short", "HEAD")},
}, indent=1))
PY
OUT_DIR=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}
python3 "$BENCH_DIR/report.py" "$RESULTS" "$BENCH_RUN_DIR/meta.json" "$OUT_DIR"
RUN_OK=1
