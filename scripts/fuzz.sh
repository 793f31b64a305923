#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer) on the stable toolchain.
#
#   scripts/fuzz.sh quick          every target for FUZZ_SECONDS (20) each, FUZZ_JOBS (2)
#                                  at a time; fails on any crash, leak of time or memory
#   scripts/fuzz.sh long [secs]    every target for secs (3600) each, then a table of
#                                  executions and crashes per target (for docs/fuzzing.md)
#   scripts/fuzz.sh run TARGET [libFuzzer flags...]   one target, e.g. to replay a crash:
#                                  scripts/fuzz.sh run policy_hcl fuzz/artifacts/policy_hcl/crash-...
#   scripts/fuzz.sh build          build every target only
#   scripts/fuzz.sh list           the targets
#
# Stable Rust: cargo-fuzz's default AddressSanitizer needs `-Zsanitizer`, so the targets are
# built with `--sanitizer none` (coverage instrumentation and `--cfg fuzzing` work on
# stable; engine and api forbid unsafe code). FUZZ_SANITIZER=address builds with ASan,
# through RUSTC_BOOTSTRAP=1.
#
# Seeds are committed in fuzz/corpus/TARGET (read only here); what libFuzzer finds is kept
# in $IRONSEAL_CACHE/fuzz/corpus/TARGET, so later runs on this machine start from it.
# Crashing inputs land in fuzz/artifacts/TARGET/ (ignored by git). Each run logs to its own
# $IRONSEAL_CACHE/fuzz/logs/run-TIME-PID/ (the last 10 are kept): runs from several
# checkouts at once share the cache, and a table must come from its own run's logs.
set -euo pipefail
cd "$(dirname "$0")/.."

IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
export PATH="$HOME/.cargo/bin:$PATH"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$IRONSEAL_CACHE/fuzz/target}"
WORK="$IRONSEAL_CACHE/fuzz"
SANITIZER="${FUZZ_SANITIZER:-none}"
JOBS="${FUZZ_JOBS:-2}"
if [[ "$SANITIZER" != none ]]; then
    export RUSTC_BOOTSTRAP=1
fi

die() { echo "fuzz.sh: $*" >&2; exit 1; }

command -v cargo-fuzz >/dev/null ||
    die "cargo-fuzz is not installed: run scripts/install-deps.sh"

targets() {
    (cd fuzz && cargo fuzz list)
}

build() {
    (cd fuzz && cargo fuzz build --sanitizer "$SANITIZER" --target-dir "$FUZZ_TARGET_DIR")
}

# One target for $2 seconds; its log goes to $RUN_LOGS/TARGET.log. libFuzzer's own
# limits make a slow input (over 30 s) or a memory blow-up (over 2 GB) a failure too.
run_for() {
    local target="$1" secs="$2"
    local corpus="$WORK/corpus/$target" log="$RUN_LOGS/$target.log"
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    if (cd fuzz && cargo fuzz run --sanitizer "$SANITIZER" --target-dir "$FUZZ_TARGET_DIR" \
        "$target" "$corpus" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -close_fd_mask=1) >"$log" 2>&1; then
        echo "ok      $target"
    else
        echo "FAILED  $target (log: $log)"
        grep -E -A30 "panicked|ERROR: libFuzzer|SUMMARY|Test unit written" "$log" | head -60 >&2 || tail -40 "$log" >&2
        return 1
    fi
}

# Executions and crashes per target from this run's logs.
summary() {
    printf '%-20s %14s %8s %8s\n' target executions exec/s crashes
    local t log
    for t in $(targets); do
        log="$RUN_LOGS/$t.log"
        if [[ ! -f "$log" ]]; then
            printf '%-20s %14s %8s %8s\n' "$t" "not run" - -
            continue
        fi
        local execs rate crashes
        execs="$(awk '/stat::number_of_executed_units/ { print $2 }' "$log" | tail -1)"
        rate="$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log" | tail -1)"
        crashes="$(grep -c -E "^==[0-9]+== ERROR: libFuzzer|panicked at" "$log" || true)"
        printf '%-20s %14s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$crashes"
    done
}

run_all() {
    local secs="$1"
    build
    RUN_LOGS="$WORK/logs/run-$(date -u +%Y%m%dT%H%M%SZ)-$$"
    mkdir -p "$RUN_LOGS"
    find "$WORK/logs" -mindepth 1 -maxdepth 1 -type d -name 'run-*' -printf '%T@ %p\n' |
        sort -rn | tail -n +11 | cut -d' ' -f2- | xargs -r rm -rf
    export -f run_for
    export SANITIZER FUZZ_TARGET_DIR WORK RUN_LOGS
    local status=0
    targets | xargs -P "$JOBS" -I{} bash -c 'run_for "$1" "$2"' _ {} "$secs" || status=1
    summary
    return "$status"
}

case "${1:-}" in
quick) run_all "${FUZZ_SECONDS:-20}" ;;
long) run_all "${2:-3600}" ;;
build) build ;;
list) targets ;;
run)
    [[ $# -ge 2 ]] || die "usage: scripts/fuzz.sh run TARGET [libFuzzer flags...]"
    target="$2"
    shift 2
    cd fuzz
    exec cargo fuzz run --sanitizer "$SANITIZER" --target-dir "$FUZZ_TARGET_DIR" "$target" -- "$@"
    ;;
*) die "usage: scripts/fuzz.sh quick | long [secs] | run TARGET [flags...] | build | list" ;;
esac
