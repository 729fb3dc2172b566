#!/usr/bin/env bash
# Latency at low load: W1's request over one connection, one request at a
# time, for the run's duration: p50/p99 without queueing. See wrk_mcp.sh.
export WORKLOAD=latency BENCH_CONNECTIONS=1 BENCH_THREADS=1
exec "$(dirname "${BASH_SOURCE[0]}")/wrk_mcp.sh"
