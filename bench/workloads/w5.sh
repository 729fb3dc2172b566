#!/usr/bin/env bash
# W5: cold start to the first answered request, median of W5_RUNS (default 5).
# run.sh starts the contender once the ordinary way (which writes its config
# and its exact command to $BENCH_RUN_DIR/argv/<name>), stops it, then runs
# this with:
#   BENCH_URL, BENCH_HEADERS   as for every workload
#   BENCH_ARGV_FILE            the contender's recorded command
#   BENCH_SERVER_CPUS          CPUs to pin the spawned server to (optional)
# Spawned PIDs go to $BENCH_RUN_DIR/pids/w5 so that run.sh's exit trap can
# stop them. Prints {"cold_start_ms":…, "cold_start_min_ms":…, "cold_start_samples_ms":[…]}.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${BENCH_URL:?BENCH_URL is required}" "${BENCH_RUN_DIR:?BENCH_RUN_DIR is required}"
[[ -n ${BENCH_ARGV_FILE:-} && -f $BENCH_ARGV_FILE ]] || { echo '{"error":"no recorded command (BENCH_ARGV_FILE): this contender starts nothing to time"}'; exit 1; }
mkdir -p "$BENCH_RUN_DIR/pids"
exec python3 "$HERE/w5_cold_start.py" --argv-file "$BENCH_ARGV_FILE" --url "$BENCH_URL" \
    --runs "${W5_RUNS:-5}" --cpus "${BENCH_SERVER_CPUS:-}" --pid-file "$BENCH_RUN_DIR/pids/w5"
