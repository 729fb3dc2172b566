# shellcheck shell=bash
# Shared by bench/run.sh, every bench/contenders/*.sh
# and bench/workloads/{w1,w2,w5,latency}.sh. See bench/README.md for the
# contender and workload interface.
#
# Processes start from argv lists (never `sh -c`), each in its own session
# (setsid), and are stopped by PID (and by their own process group when they
# lead one) -- never by name.

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TOOLS="$BENCH_REPO/.tools/bench"
BENCH_STARTUP_TIMEOUT=${BENCH_STARTUP_TIMEOUT:-60}
GUARD_BIN=${GUARD_BIN:-$BENCH_REPO/target/release/mcp-guard}
TEST_SERVER_BIN=${TEST_SERVER_BIN:-$BENCH_REPO/target/release/mcp-test-server}
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

blog() { printf '[%s] %s\n' "${CONTENDER:-bench}" "$*" >&2; }
bdie() { blog "error: $*"; exit 1; }

need_run_dir() {
    [[ -n ${BENCH_RUN_DIR:-} ]] || bdie "BENCH_RUN_DIR is not set"
    mkdir -p "$BENCH_RUN_DIR/pids" "$BENCH_RUN_DIR/logs" "$BENCH_RUN_DIR/argv"
}
pid_file() { printf '%s/pids/%s' "$BENCH_RUN_DIR" "$CONTENDER"; }
log_file() { printf '%s/logs/%s.log' "$BENCH_RUN_DIR" "$CONTENDER"; }

alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ -n $state && $state != Z* ]]
}

# start_bg ARGV...: ARGV in the background in its own session, output to the
# contender's log, its PID appended to the PID file and left in BG_PID.
start_bg() {
    setsid "$@" </dev/null >>"$(log_file)" 2>&1 &
    BG_PID=$!
    disown "$BG_PID" 2>/dev/null || true
    printf '%s\n' "$BG_PID" >>"$(pid_file)"
}

# record_argv ARGV...: the exact command (NUL-separated) for the cold-start
# workload (w5), which spawns it itself to time it without any shell around.
record_argv() {
    printf '%s\0' "$@" >"$BENCH_RUN_DIR/argv/$CONTENDER"
}

descendants() {
    local kid
    for kid in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        printf '%s\n' "$kid"
        descendants "$kid"
    done
}

# wait_ready PID PORT [PATH]: until PORT accepts connections (and, with PATH,
# a GET of PATH answers below 500), or PID dies.
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
        sleep 0.05
    done
    blog "not ready on 127.0.0.1:$port within ${BENCH_STARTUP_TIMEOUT}s; log tail ($(log_file)):"
    tail -n 30 "$(log_file)" >&2 || true
    return 1
}

# stop_pids FILE: TERM every PID in FILE (its group when it leads one) and
# its descendants, wait up to 5 s, KILL what is left, by PID; remove FILE.
stop_pids() {
    local file=$1 pid p left all=()
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
        for p in "${all[@]}"; do alive "$p" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for p in "${all[@]}"; do alive "$p" && kill -KILL -- "$p" 2>/dev/null; done
    rm -f -- "$file"
    return 0
}

stop_all() { need_run_dir; stop_pids "$(pid_file)"; }

# contender_main "$@": install | start PORT UPSTREAM | stop | version
contender_main() {
    case ${1:-} in
    install) do_install ;;
    start)
        [[ $# -eq 3 && $2 =~ ^[0-9]+$ ]] || bdie "usage: $0 start <listen-port> <upstream>"
        need_run_dir
        do_start "$2" "$3"
        ;;
    stop) stop_all ;;
    version) do_version ;;
    *) bdie "usage: $0 install | start <listen-port> <upstream> | stop | version" ;;
    esac
}

need_guard_bin() {
    [[ -x $GUARD_BIN ]] && return 0
    blog "building the release binaries"
    (cd "$BENCH_REPO" && cargo build --release -p mcp-guard -p mcp-guard-testkit --bins >&2) || bdie "cargo build failed"
}

# free_port: a loopback TCP port nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# cleanup_run_dir: stops every process recorded under $BENCH_RUN_DIR/pids
# (by PID), then removes the run directory after a successful run (RUN_OK=1)
# unless BENCH_KEEP_RUN_DIR=1. Install it with install_cleanup_traps.
cleanup_run_dir() {
    local f
    for f in "$BENCH_RUN_DIR"/pids/*; do
        [[ -e $f ]] || continue
        stop_pids "$f"
    done
    if [[ ${BENCH_KEEP_RUN_DIR:-0} != 1 && ${RUN_OK:-0} == 1 ]]; then
        rm -rf -- "$BENCH_RUN_DIR"
    else
        blog "run state and logs kept in $BENCH_RUN_DIR"
    fi
}

# install_cleanup_traps: cleanup_run_dir on every exit, Ctrl-C and SIGTERM included.
install_cleanup_traps() {
    trap cleanup_run_dir EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
