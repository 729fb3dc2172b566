# shellcheck shell=bash
# Process helpers shared by tests/conformance/run.sh and tests/probe/run.sh.
# `cleanup` (for `trap cleanup EXIT`) stops everything `start_bg` started.
# The caller defines `log`, `STARTUP_TIMEOUT`, `NODE` and the `BG_PIDS`
# array. Processes start from argv lists and are stopped by PID only.

# A process is gone once it is missing or a zombie (a zombie still answers kill -0).
alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $state && $state != Z* ]]
}

# Each background process gets its own session so that stopping it also stops
# whatever it spawned (the stdio target's server), addressed by the group id
# rather than by any name.
start_bg() {
    local logfile=$1
    shift
    setsid "$@" </dev/null >"$logfile" 2>&1 &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

wait_for_port() {
    local pid=$1 port=$2 what=$3 logfile=$4
    local deadline=$((SECONDS + STARTUP_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            log "$what exited before listening on 127.0.0.1:$port; log tail ($logfile):"
            tail -n 20 "$logfile" >&2 || true
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    log "$what did not listen on 127.0.0.1:$port within ${STARTUP_TIMEOUT}s; log tail ($logfile):"
    tail -n 20 "$logfile" >&2 || true
    return 1
}

pkg_version() {
    "$NODE" -p 'require(process.argv[1]).version' "$1/package.json" 2>/dev/null || true
}

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
