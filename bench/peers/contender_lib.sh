# shellcheck shell=bash
# Shared by bench/contenders/{python-stack,supergateway,mcp-proxy,mcp-guard-stdio}.sh.
#
# The contender interface (agreed with bench/run.sh):
#   <name>.sh install                      idempotent, installs into .tools/bench/
#   <name>.sh start <listen-port> <upstream>
#       starts in the background, records every PID it starts in
#       $BENCH_RUN_DIR/pids/<name>, waits until ready, prints `HEADER: Name: value`
#       lines (if any) and then the endpoint URL on stdout
#   <name>.sh stop                         kills its PIDs by PID, never by name
#   <name>.sh version                      one line for the report
#
# Processes are started from argv lists (never `sh -c`), each in its own
# session (setsid) so that stopping it by its process group also stops what it
# spawned. Some contenders put their children in process groups of their own
# (supergateway spawns its stdio child detached), so `stop` also collects every
# descendant PID before signalling and kills stragglers by PID.

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034 # used by the contender scripts
BENCH_TOOLS="$BENCH_REPO/.tools/bench"
BENCH_STARTUP_TIMEOUT=${BENCH_STARTUP_TIMEOUT:-60}

blog() { printf '[%s] %s\n' "$CONTENDER" "$*" >&2; }
bdie() { blog "error: $*"; exit 1; }

need_run_dir() {
    [[ -n ${BENCH_RUN_DIR:-} ]] || bdie "BENCH_RUN_DIR is not set"
    mkdir -p "$BENCH_RUN_DIR/pids" "$BENCH_RUN_DIR/logs"
}

pid_file() { printf '%s/pids/%s' "$BENCH_RUN_DIR" "$CONTENDER"; }
log_file() { printf '%s/logs/%s.log' "$BENCH_RUN_DIR" "$CONTENDER"; }

alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $state && $state != Z* ]]
}

# start_bg ARGV...: run ARGV in the background in its own session, output to
# the contender's log, its PID appended to the PID file and left in BG_PID.
start_bg() {
    setsid "$@" </dev/null >>"$(log_file)" 2>&1 &
    BG_PID=$!
    disown "$BG_PID" 2>/dev/null || true
    printf '%s\n' "$BG_PID" >>"$(pid_file)"
}

# descendants PID: every descendant PID of PID (children first-level first).
descendants() {
    local kid
    for kid in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        printf '%s\n' "$kid"
        descendants "$kid"
    done
}

# wait_ready PID PORT [PATH]: until PORT accepts connections (and, with PATH,
# an HTTP GET of PATH answers anything below 500), or PID dies.
wait_ready() {
    local pid=$1 port=$2 path=${3:-} code
    local deadline=$((SECONDS + BENCH_STARTUP_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            blog "exited before becoming ready; log tail ($(log_file)):"
            tail -n 30 "$(log_file)" >&2 || true
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            [[ -z $path ]] && return 0
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port$path" || true)
            [[ $code =~ ^[1-4][0-9][0-9]$ ]] && return 0
        fi
        sleep 0.2
    done
    blog "not ready on 127.0.0.1:$port within ${BENCH_STARTUP_TIMEOUT}s; log tail ($(log_file)):"
    tail -n 30 "$(log_file)" >&2 || true
    return 1
}

# stop_all: TERM every recorded PID (its process group when it leads one) and
# every descendant, wait up to 5 s, then KILL whatever is left, by PID.
stop_all() {
    need_run_dir
    local file pid p all=() left
    file=$(pid_file)
    [[ -f $file ]] || return 0
    while read -r pid; do
        [[ $pid =~ ^[0-9]+$ ]] || continue
        alive "$pid" || continue
        all+=("$pid")
        mapfile -t -O "${#all[@]}" all < <(descendants "$pid")
    done <"$file"
    for p in "${all[@]}"; do
        if [[ $(ps -o pgid= -p "$p" 2>/dev/null | tr -d ' ') == "$p" ]]; then
            kill -TERM -- "-$p" 2>/dev/null || true
        fi
        kill -TERM -- "$p" 2>/dev/null || true
    done
    for _ in {1..50}; do
        left=0
        for p in "${all[@]}"; do
            alive "$p" && left=1
        done
        ((left)) || break
        sleep 0.1
    done
    for p in "${all[@]}"; do
        alive "$p" && kill -KILL -- "$p" 2>/dev/null
    done
    rm -f -- "$file"
    return 0
}

# contender_main "$@": dispatches to do_install / do_start PORT UPSTREAM / stop_all.
contender_main() {
    case ${1:-} in
    install) do_install ;;
    start)
        [[ $# -eq 3 && $2 =~ ^[0-9]+$ ]] || bdie "usage: $0 start <listen-port> <upstream>"
        need_run_dir
        export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
        do_start "$2" "$3"
        ;;
    stop) stop_all ;;
    version) do_version ;;
    *) bdie "usage: $0 install | start <listen-port> <upstream> | stop | version" ;;
    esac
}
