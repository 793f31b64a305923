#!/usr/bin/env bash
# Runs every check and test: rustfmt, clippy (warnings are errors), the workspace build,
# then all tests (cargo-nextest when installed, cargo test otherwise), including the
# end-to-end tests in softhsm-tests/ that drive the daemon with the real bao CLI; with
# them, in parallel, `scripts/fuzz.sh quick` (every fuzz target for a bounded time).
# Extra arguments go to the test runner, e.g. `scripts/test.sh -p softhsm-tests kv`.
set -euo pipefail
cd "$(dirname "$0")/.."

export IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
# Outside the clone, so CI runs on the same machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IRONSEAL_CACHE/target}"

bao_dir="$(scripts/install-deps.sh --print-bin-dir)"
export PATH="$bao_dir:$HOME/.cargo/bin:$PATH"

step() { echo "==> $*" >&2; }

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# The FoundationDB backend (engine feature `fdb`, off by default) compiles against the
# real `foundationdb` crate; it cannot link here (no libfdb_c), so it is checked, not built.
step "cargo clippy -p ironseal-engine -p ironseal --all-targets --features ironseal/fdb -- -D warnings"
cargo clippy -p ironseal-engine -p ironseal --all-targets --features ironseal/fdb -- -D warnings

step "cargo build --workspace"
cargo build --workspace

export IRONSEAL_BIN="$CARGO_TARGET_DIR/debug/ironseal"
[[ -x "$IRONSEAL_BIN" ]] || { echo "test.sh: $IRONSEAL_BIN was not built" >&2; exit 1; }
export BAO_BIN="$bao_dir/bao"

# Extra arguments select what to run (e.g. `-p softhsm-tests kv`); none: everything,
# the fuzz targets too, in the background beside the tests (one target at a time, at a
# lower priority).
fuzz_pid=
if (($# == 0)); then
    set -- --workspace
    step "scripts/fuzz.sh quick (in the background)"
    FUZZ_JOBS=1 nice -n 10 scripts/fuzz.sh quick >"$IRONSEAL_CACHE/fuzz-quick.log" 2>&1 &
    fuzz_pid=$!
fi
tests_status=0
if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run $*"
    cargo nextest run --no-fail-fast "$@" || tests_status=$?
else
    step "cargo test $*"
    cargo test --no-fail-fast "$@" || tests_status=$?
fi

# compile_fail doctests: no crate outside the engine reaches a store but through
# `Core::apply` (engine/src/ops/mod.rs). nextest does not run doctests.
if [[ "$*" == "--workspace" ]]; then
    step "cargo test --doc -p ironseal-engine"
    cargo test --doc -p ironseal-engine || tests_status=$?
fi

if [[ -n "$fuzz_pid" ]]; then
    step "waiting for scripts/fuzz.sh quick"
    fuzz_status=0
    wait "$fuzz_pid" || fuzz_status=$?
    cat "$IRONSEAL_CACHE/fuzz-quick.log" >&2
    if ((fuzz_status != 0)); then
        echo "test.sh: scripts/fuzz.sh quick failed (log above)" >&2
        tests_status=1
    fi
fi
exit "$tests_status"
