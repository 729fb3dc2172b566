#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time or number of
# executions, one after the other, printing per target the executions, the
# rate, the peak memory and the result. Exits non-zero on any crash.
#
#   fuzz/run.sh [--time SECS | --runs N] [--sanitizer none|address] [TARGET...]
#
# Default: every target, 10 s each (the CI run). The committed corpus in
# fuzz/corpus/<target> is the seed and is never written to: new inputs go
# to fuzz/target/corpus/<target>, crashes to fuzz/artifacts/<target>.
# cargo-fuzz is installed into .tools/cargo-fuzz when missing; stable Rust
# is used with RUSTC_BOOTSTRAP=1 for the sanitizer-coverage flags.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz="$repo/fuzz"
cargo_fuzz_version=0.13.2
tools="$repo/.tools/cargo-fuzz"
all_targets=(jsonrpc_inspect headers sse config token_header)

seconds=10
runs=
sanitizer=none
targets=()
while (($#)); do
    case "$1" in
        --time) seconds=$2; runs=; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --sanitizer) sanitizer=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
    [[ -f "$fuzz/fuzz_targets/$t.rs" ]] || { echo "fuzz/run.sh: no target $t" >&2; exit 2; }
done

# Inputs longer than these add time, not coverage: a message, a header
# block, a stream of a few events, the longest example config, a token.
max_len() {
    case "$1" in
        jsonrpc_inspect) echo 8192 ;;
        headers) echo 1024 ;;
        sse) echo 4096 ;;
        config) echo 8192 ;;
        token_header) echo 4096 ;;
    esac
}
dict() {
    case "$1" in
        jsonrpc_inspect) echo jsonrpc ;;
        headers) echo headers ;;
        sse) echo sse ;;
        config) echo config ;;
        token_header) echo token ;;
    esac
}

if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
    echo "fuzz/run.sh: installing cargo-fuzz $cargo_fuzz_version into $tools" >&2
    cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version" --root "$tools"
fi
export RUSTC_BOOTSTRAP=1

# cargo-fuzz's defaults: optimized, with debug assertions and overflow checks.
mkdir -p "$fuzz/target/logs"
build_log="$fuzz/target/logs/build.log"
started=$(date +%s)
if ! "$tools/bin/cargo-fuzz" build --fuzz-dir "$fuzz" --sanitizer "$sanitizer" >"$build_log" 2>&1; then
    tail -40 "$build_log" >&2
    echo "fuzz: build failed (full log: $build_log)" >&2
    exit 1
fi
echo "fuzz: built in $(($(date +%s) - started)) s (sanitizer: $sanitizer)"
bin_dir="$fuzz/target/x86_64-unknown-linux-gnu/release"

failed=0
for t in "${targets[@]}"; do
    scratch="$fuzz/target/corpus/$t"
    artifacts="$fuzz/artifacts/$t"
    log="$fuzz/target/logs/$t.log"
    mkdir -p "$scratch" "$artifacts" "$(dirname "$log")"
    bound=(-max_total_time="$seconds")
    [[ -n "$runs" ]] && bound=(-runs="$runs")
    begin=$(date +%s)
    status=0
    # The scratch corpus comes first: libFuzzer writes new inputs only there.
    "$bin_dir/$t" "$scratch" "$fuzz/corpus/$t" \
        "${bound[@]}" -max_len="$(max_len "$t")" -dict="$fuzz/dict/$(dict "$t").dict" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - begin))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    if ((status == 0)); then
        result=ok
    else
        result="CRASH (exit $status)"
        failed=1
    fi
    printf 'fuzz %-16s executions=%s time=%ss exec/s=%s peak_rss=%sMB result=%s\n' \
        "$t" "${execs:-?}" "$elapsed" "${rate:-?}" "${rss:-?}" "$result"
    if ((status != 0)); then
        { grep -m1 -A4 'panicked at' "$log" || grep -m1 -A4 'ERROR:' "$log"; grep 'Test unit written' "$log"; } >&2 || true
        echo "fuzz: full log in $log; reproduce with: $bin_dir/$t <artifact>" >&2
    fi
done
exit "$failed"
