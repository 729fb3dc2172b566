#!/usr/bin/env bash
# MCP conformance gate for mcp-guard.
#
# Runs the official MCP conformance suite (server mode) against the reference
# server @modelcontextprotocol/server-everything three ways:
#
#   direct  conformance -> server-everything (streamableHttp)
#   http    conformance -> mcp-guard --upstream http://.../mcp -> server-everything
#   stdio   conformance -> mcp-guard -- node server-everything stdio
#
# server-everything is not the suite's own fixture server, so many scenarios
# fail even directly. The direct run is therefore the baseline: the gateway
# must do at least as well as direct on every scenario, and must additionally
# pass dns-rebinding-protection (which server-everything itself fails).
#
# Usage: tests/conformance/run.sh [direct|http|stdio|all]...   (default: all)
#   The direct run is always performed: it is the baseline for the gateway
#   targets and its server is the http target's upstream.
#
# Environment:
#   GUARD_BIN                 gateway binary (default: <repo>/target/debug/mcp-guard)
#   CONFORMANCE_REPORT            markdown report (default: <repo>/target/conformance/report.md)
#   CONFORMANCE_OUT_DIR           raw results + logs (default: <repo>/target/conformance)
#   CONFORMANCE_SCENARIOS         space-separated subset of scenarios (default: all server scenarios)
#   CONFORMANCE_SCENARIO_TIMEOUT  seconds per scenario invocation (default: 30)
#   CONFORMANCE_TARGET_BUDGET     seconds for all scenarios of one target (default: 300)
#   CONFORMANCE_STARTUP_TIMEOUT   seconds to wait for a server to listen (default: 20)
#
# Exit status: 0 gate passed, 1 gate failed (regression / dns-rebinding /
# gateway target could not run), 2 the suite could not run at all.
set -euo pipefail

# Exact pins: scenarios and server-everything's feature set change between
# releases, and a moving baseline would make the gate meaningless.
readonly NODE_VERSION=22.23.3          # suite needs node >= 22; system node may be older
readonly CONFORMANCE_VERSION=0.1.16
readonly SERVER_EVERYTHING_VERSION=2026.8.31

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO
readonly TOOLS="$REPO/.tools/conformance"
readonly NODE="$TOOLS/node_modules/node/bin/node"
readonly CONFORMANCE_CLI="$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js"
readonly SERVER_EVERYTHING="$TOOLS/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
readonly LOOPBACK_PRELOAD="$TOOLS/loopback-only.mjs"

GUARD_BIN=${GUARD_BIN:-$REPO/target/debug/mcp-guard}
OUT_DIR=${CONFORMANCE_OUT_DIR:-$REPO/target/conformance}
REPORT=${CONFORMANCE_REPORT:-$OUT_DIR/report.md}
SCENARIO_TIMEOUT=${CONFORMANCE_SCENARIO_TIMEOUT:-30}
TARGET_BUDGET=${CONFORMANCE_TARGET_BUDGET:-300}
STARTUP_TIMEOUT=${CONFORMANCE_STARTUP_TIMEOUT:-20}
readonly DNS_SCENARIO=dns-rebinding-protection
readonly TARGETS=(direct http stdio)

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }
# shellcheck source=SCRIPTDIR/../lib/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/proc.sh"

usage() {
    sed -n '/^# Usage:/,/^set -euo/{ /^set -euo/d; s/^# \{0,1\}//; p; }' "${BASH_SOURCE[0]}"
}

# ---------------------------------------------------------------- processes --

BG_PIDS=()

stop_bg() {
    local pid=$1 dest
    # Only signal the group if setsid really made this pid its leader.
    if [[ $(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') == "$pid" ]]; then
        dest="-$pid"
    else
        dest=$pid
    fi
    kill -TERM -- "$dest" 2>/dev/null || true
    for _ in {1..50}; do
        alive "$pid" || break
        sleep 0.1
    done
    # Stragglers (or a leader ignoring TERM) get no second chance. The group id
    # cannot have been recycled: the leader is not reaped until the wait below.
    kill -KILL -- "$dest" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Once reaped, the pid may be reused by an unrelated process: forget it.
    local -a rest=()
    local p
    for p in "${BG_PIDS[@]}"; do
        [[ $p == "$pid" ]] || rest+=("$p")
    done
    BG_PIDS=("${rest[@]}")
}

cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        stop_bg "$pid"
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Racy by nature (the port is released before the server binds it), but a
# lost race shows up as a server that exits before listening, which is reported.
free_port() {
    "$NODE" -e 'const s = require("net").createServer();
s.listen(0, "127.0.0.1", () => { process.stdout.write(String(s.address().port)); s.close(); });'
}

# -------------------------------------------------------------------- tools --

tools_ready() {
    [[ -x $NODE ]] &&
        [[ $("$NODE" --version 2>/dev/null) == "v$NODE_VERSION" ]] &&
        [[ $(pkg_version "$TOOLS/node_modules/@modelcontextprotocol/conformance") == "$CONFORMANCE_VERSION" ]] &&
        [[ $(pkg_version "$TOOLS/node_modules/@modelcontextprotocol/server-everything") == "$SERVER_EVERYTHING_VERSION" ]]
}

install_tools() {
    if ! tools_ready; then
        command -v npm >/dev/null || die "npm is required to install the conformance tools"
        log "installing node@$NODE_VERSION, conformance@$CONFORMANCE_VERSION, server-everything@$SERVER_EVERYTHING_VERSION into $TOOLS"
        mkdir -p "$TOOLS"
        # A manifest (rather than `npm install pkg...`) keeps the three packages
        # together: a later install into the folder would otherwise prune the others.
        cat >"$TOOLS/package.json" <<EOF
{
  "name": "mcp-guard-conformance-tools",
  "private": true,
  "description": "Generated by tests/conformance/run.sh; do not edit.",
  "dependencies": {
    "node": "$NODE_VERSION",
    "@modelcontextprotocol/conformance": "$CONFORMANCE_VERSION",
    "@modelcontextprotocol/server-everything": "$SERVER_EVERYTHING_VERSION"
  }
}
EOF
        # The `node` package fetches its platform binary in a preinstall script,
        # so scripts must stay enabled. stdout is reserved for the report.
        (cd "$TOOLS" && npm install --no-audit --no-fund --loglevel=error >&2) ||
            die "npm install failed"
        tools_ready || die "install finished but $NODE is not node v$NODE_VERSION (did npm skip the node package's preinstall script?)"
    fi

    # server-everything calls app.listen(PORT) without a host, i.e. on every
    # interface. This preload pins port-only listen() calls to loopback.
    cat >"$LOOPBACK_PRELOAD" <<'EOF'
// Generated by tests/conformance/run.sh: bind port-only listen() calls to loopback.
import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const portOnly = typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port));
  if (portOnly && typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  return listen.apply(this, args);
};
EOF
}

# --------------------------------------------------------------- scenarios --

# Reduces one scenario's checks.json to: outcome, #success, #failure, #warning, reasons.
# outcome: pass = successes only; warn = no failure but warnings or nothing
# verified; fail = at least one FAILURE check.
# shellcheck disable=SC2016 # ${...} below are JavaScript template literals
readonly SUMMARISE_JS='
const checks = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const count = (s) => checks.filter((c) => c.status === s).length;
const [ok, failed, warned] = [count("SUCCESS"), count("FAILURE"), count("WARNING")];
const outcome = failed ? "fail" : warned || !ok ? "warn" : "pass";
const reasons = checks
  .filter((c) => c.status === "FAILURE" || c.status === "WARNING")
  .map((c) => `${c.status.toLowerCase()} ${c.id}: ${c.errorMessage ?? c.description}`
    .replace(/\s+/g, " ").slice(0, 240))
  .join("; ");
process.stdout.write([outcome, ok, failed, warned, reasons].join("\t"));
'

declare -A RESULT=()   # [target|scenario] -> pass|warn|fail|timeout|error|skipped
declare -A DETAIL=()   # [target|scenario] -> human-readable reason
declare -A DURATION=() # [target] -> seconds
declare -A RAN=()      # [target] -> 1 if the target was selected
declare -A BROKEN=()   # [target] -> why the target could not run
SCENARIOS=()

list_scenarios() {
    if [[ -n ${CONFORMANCE_SCENARIOS:-} ]]; then
        local -a wanted
        read -r -a wanted <<<"$CONFORMANCE_SCENARIOS"
        printf '%s\n' "${wanted[@]}"
    else
        # Lines look like "  - server-initialize [2025-06-18,2025-11-25]".
        # This includes scenarios the CLI's default "active" suite leaves out
        # as pending; running them costs little and shows gateway differences.
        timeout 60 "$NODE" "$CONFORMANCE_CLI" list --server | awk '$1 == "-" { print $2 }'
    fi
}

record_result() {
    local target=$1 scenario=$2 rc=$3 dir=$4 limit=$5
    local key="$target|$scenario" summary outcome ok failed warned reasons
    local -a files
    shopt -s nullglob
    files=("$dir/$scenario"/*/checks.json)
    shopt -u nullglob
    if ((${#files[@]} == 0)); then
        if ((rc == 124 || rc == 137)); then
            RESULT[$key]=timeout
            DETAIL[$key]="no results within ${limit}s (log: $dir/$scenario.log)"
        else
            RESULT[$key]=error
            DETAIL[$key]="CLI exited $rc without results (log: $dir/$scenario.log)"
        fi
        return
    fi
    summary=$("$NODE" -e "$SUMMARISE_JS" "${files[0]}") || {
        RESULT[$key]=error
        DETAIL[$key]="unreadable ${files[0]}"
        return
    }
    IFS=$'\t' read -r outcome ok failed warned reasons <<<"$summary"
    RESULT[$key]=$outcome
    DETAIL[$key]="$ok ok, $failed failed, $warned warnings${reasons:+ — $reasons}"
}

run_target() {
    local target=$1 url=$2
    local dir="$OUT_DIR/$target" started=$SECONDS deadline left limit rc scenario
    rm -rf -- "$dir"
    mkdir -p "$dir"
    deadline=$((SECONDS + TARGET_BUDGET))
    log "$target: ${#SCENARIOS[@]} scenarios against $url"
    for scenario in "${SCENARIOS[@]}"; do
        left=$((deadline - SECONDS))
        if ((left <= 0)); then
            RESULT[$target|$scenario]=skipped
            DETAIL[$target|$scenario]="target budget of ${TARGET_BUDGET}s exhausted"
            continue
        fi
        limit=$((left < SCENARIO_TIMEOUT ? left : SCENARIO_TIMEOUT))
        rc=0
        # --foreground keeps the CLI in our process group so Ctrl-C reaches it.
        timeout --foreground -k 5 "$limit" \
            "$NODE" "$CONFORMANCE_CLI" server --url "$url" --scenario "$scenario" -o "$dir/$scenario" \
            >"$dir/$scenario.log" 2>&1 || rc=$?
        record_result "$target" "$scenario" "$rc" "$dir" "$limit"
        log "$target: $scenario -> ${RESULT[$target|$scenario]}"
    done
    DURATION[$target]=$((SECONDS - started))
}

mark_broken() {
    local target=$1 why=$2 scenario
    BROKEN[$target]=$why
    for scenario in "${SCENARIOS[@]}"; do
        RESULT[$target|$scenario]=error
        DETAIL[$target|$scenario]=$why
    done
}

# Starts the gateway with the given upstream arguments, runs the suite through
# it, and stops it again so the next target starts from a clean process.
run_gateway_target() {
    local target=$1
    shift
    local port logfile="$OUT_DIR/mcp-guard-$target.log"
    if [[ ! -x $GUARD_BIN ]]; then
        mark_broken "$target" "gateway binary not found: $GUARD_BIN"
        log "$target: ${BROKEN[$target]}"
        return
    fi
    port=$(free_port)
    # Two settings differ from the defaults, for reasons of the suite's own:
    # - it sends hundreds of requests a minute from one address (it tests
    #   protocol behaviour, not limits), so the 60/min rate limit is raised;
    # - server-sse-multiple-streams negotiates 2025-11-25 and then sends
    #   `MCP-Protocol-Version: 2025-03-26` on that session. The spec says a
    #   client SHOULD repeat the negotiated version; mcp-guard refuses the
    #   mismatch by default, and here serves it under the negotiated rules.
    RATE_LIMIT_PER_MINUTE=1000000 MCP_GUARD_PROTOCOL__ENFORCE_NEGOTIATED_VERSION=false \
        start_bg "$logfile" "$GUARD_BIN" --listen "127.0.0.1:$port" "$@"
    local pid=$BG_PID
    if ! wait_for_port "$pid" "$port" "mcp-guard ($target)" "$logfile"; then
        mark_broken "$target" "gateway did not start (log: $logfile)"
        stop_bg "$pid"
        return
    fi
    run_target "$target" "http://127.0.0.1:$port/mcp"
    if ! alive "$pid"; then
        log "$target: gateway exited during the run (log: $logfile)"
    fi
    stop_bg "$pid"
}

# ------------------------------------------------------------------- report --

rank() {
    case $1 in
    pass) echo 2 ;;
    warn) echo 1 ;;
    *) echo 0 ;;
    esac
}

PROBLEMS=()
SUITE_RAN=1

judge() {
    local target scenario direct got any_direct=0
    for scenario in "${SCENARIOS[@]}"; do
        case ${RESULT[direct|$scenario]} in
        pass | warn | fail) any_direct=1 ;;
        esac
    done
    if ((!any_direct)); then
        SUITE_RAN=0
        PROBLEMS+=("direct: the suite produced no results at all")
    fi

    for target in http stdio; do
        [[ -n ${RAN[$target]:-} ]] || continue
        if [[ -n ${BROKEN[$target]:-} ]]; then
            PROBLEMS+=("$target: could not run: ${BROKEN[$target]}")
            continue
        fi
        for scenario in "${SCENARIOS[@]}"; do
            direct=${RESULT[direct|$scenario]}
            got=${RESULT[$target|$scenario]}
            if [[ $scenario == "$DNS_SCENARIO" && $got != pass ]]; then
                PROBLEMS+=("$target: $scenario must pass through the gateway (got $got)")
            elif (($(rank "$got") < $(rank "$direct"))); then
                PROBLEMS+=("$target: $scenario regressed ($direct directly, $got through the gateway)")
            fi
        done
    done
}

cell() {
    local target=$1 scenario=$2
    if [[ -z ${RAN[$target]:-} ]]; then
        echo "—"
    else
        echo "${RESULT[$target|$scenario]}"
    fi
}

write_report() {
    local target scenario problem
    mkdir -p "$(dirname "$REPORT")"
    {
        echo "# MCP conformance: server-everything direct vs. through mcp-guard"
        echo
        echo "- suite: @modelcontextprotocol/conformance@$CONFORMANCE_VERSION (node v$NODE_VERSION)"
        echo "- upstream: @modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION"
        [[ -z ${RAN[http]:-}${RAN[stdio]:-} ]] || echo "- gateway: $GUARD_BIN"
        for target in "${TARGETS[@]}"; do
            [[ -n ${RAN[$target]:-} ]] || continue
            if [[ -n ${DURATION[$target]:-} ]]; then
                echo "- $target: ran in ${DURATION[$target]}s, raw results in $OUT_DIR/$target"
            else
                echo "- $target: not run (${BROKEN[$target]:-unknown})"
            fi
        done
        echo "- pass = only successful checks; warn = no failed check but warnings (SHOULDs); fail = a failed check"
        echo "- direct failures are mostly server-everything lacking the suite's fixture tools/prompts/resources;"
        echo "  the gate is: gateway >= direct on every scenario, and $DNS_SCENARIO passes through the gateway"
        echo
        echo "| scenario | direct | http | stdio |"
        echo "|---|---|---|---|"
        for scenario in "${SCENARIOS[@]}"; do
            echo "| $scenario | $(cell direct "$scenario") | $(cell http "$scenario") | $(cell stdio "$scenario") |"
        done
        echo
        if ((${#PROBLEMS[@]})); then
            echo "## Verdict: FAIL"
            echo
            for problem in "${PROBLEMS[@]}"; do
                echo "- $problem"
            done
        else
            echo "## Verdict: PASS"
        fi
        echo
        echo "## Details (non-passing results)"
        echo
        for target in "${TARGETS[@]}"; do
            [[ -n ${RAN[$target]:-} ]] || continue
            for scenario in "${SCENARIOS[@]}"; do
                [[ ${RESULT[$target|$scenario]} == pass ]] && continue
                echo "- $target / $scenario: ${DETAIL[$target|$scenario]//|/\\|}"
            done
        done
    } >"$REPORT"
}

# --------------------------------------------------------------------- main --

main() {
    local arg target
    (($#)) || set -- all
    for arg in "$@"; do
        case $arg in
        direct | http | stdio) RAN[$arg]=1 ;;
        all) for target in "${TARGETS[@]}"; do RAN[$target]=1; done ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
        esac
    done
    RAN[direct]=1

    [[ $SCENARIO_TIMEOUT =~ ^[1-9][0-9]*$ && $TARGET_BUDGET =~ ^[1-9][0-9]*$ && $STARTUP_TIMEOUT =~ ^[1-9][0-9]*$ ]] ||
        die "timeouts must be positive integers (seconds)"

    install_tools
    # node@22 first so anything resolving `node` (CLI shebangs, the gateway's
    # children) gets the pinned runtime rather than the system one.
    export PATH="$TOOLS/node_modules/.bin:$PATH"
    # Everything here talks to 127.0.0.1 only; never route it via a proxy.
    export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
    mkdir -p "$OUT_DIR"

    mapfile -t SCENARIOS < <(list_scenarios)
    ((${#SCENARIOS[@]})) || die "could not list the conformance server scenarios"

    local upstream_port upstream_log="$OUT_DIR/server-everything.log"
    upstream_port=$(free_port)
    # server-everything takes its port from $PORT only (default 3001); path is /mcp.
    start_bg "$upstream_log" env "PORT=$upstream_port" \
        "$NODE" --import "$LOOPBACK_PRELOAD" "$SERVER_EVERYTHING" streamableHttp
    wait_for_port "$BG_PID" "$upstream_port" "server-everything" "$upstream_log" ||
        die "server-everything (streamableHttp) did not start"

    local upstream_url="http://127.0.0.1:$upstream_port/mcp"
    run_target direct "$upstream_url"
    [[ -z ${RAN[http]:-} ]] || run_gateway_target http --upstream "$upstream_url"
    [[ -z ${RAN[stdio]:-} ]] || run_gateway_target stdio -- "$NODE" "$SERVER_EVERYTHING" stdio

    judge
    write_report
    cat "$REPORT"
    log "report written to $REPORT"
    ((SUITE_RAN)) || exit 2
    ((${#PROBLEMS[@]} == 0))
}

main "$@"
