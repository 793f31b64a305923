#!/usr/bin/env bash
# Cloud exports to AWS KMS (LocalStack) from `ironseal server -dev` (Shamir seal, the wrap
# in software), driven through /api/v1 by bench/cloud_export.py:
#   - exports per second for RSA-2048 and P-256 keys (each export: CreateKey,
#     GetParametersForImport, the wrap, ImportKeyMaterial, the checks, the alias);
#   - the time from a rotation's acknowledgement to the provider holding the new version
#     (every auto-sync export of the key shows it as providerKeyVersion), p50/p99.
# A benchmark, not a test: LocalStack (Python) is most of an export's cost.
#
# Environment: EXPORTS (per algorithm, default 50), CONCURRENCY (default 4), ROTATIONS
# (default 100), EXPORTS_PER_KEY (default 4), PROFILE (release or debug, default
# release), SKIP_BUILD=1, IRONSEAL_CACHE (default /var/tmp/ironseal; target dir
# $CARGO_TARGET_DIR or $IRONSEAL_CACHE/target; LocalStack from
# $IRONSEAL_CACHE/localstack-venv, made by scripts/install-deps.sh).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$BENCH_DIR")"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IRONSEAL_CACHE/target}"
EXPORTS="${EXPORTS:-50}"
CONCURRENCY="${CONCURRENCY:-4}"
ROTATIONS="${ROTATIONS:-100}"
EXPORTS_PER_KEY="${EXPORTS_PER_KEY:-4}"
PROFILE="${PROFILE:-release}"
LS_PYTHON="$IRONSEAL_CACHE/localstack-venv/bin/python"
say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
for t in curl python3; do command -v "$t" >/dev/null || die "$t is missing"; done
[[ -x "$LS_PYTHON" ]] || die "$LS_PYTHON is missing: run scripts/install-deps.sh"

flag=(); [[ "$PROFILE" == release ]] && flag=(--release)
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    say "building ($PROFILE)"
    (cd "$REPO" && cargo build -q "${flag[@]}" -p ironseal)
fi
BIN="$CARGO_TARGET_DIR/$PROFILE/ironseal"
[[ -x "$BIN" ]] || die "$BIN is missing"

WORK="$(mktemp -d "$IRONSEAL_CACHE/bench-cloud.XXXXXX")"
cleanup() {
    [[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null
    [[ -n "${LS_PID:-}" ]] && kill -- "-$LS_PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

LS_PORT="$(free_port)"
say "LocalStack on 127.0.0.1:$LS_PORT"
(cd "$WORK" && SERVICES=kms GATEWAY_LISTEN="127.0.0.1:$LS_PORT" GATEWAY_SERVER=hypercorn \
    DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 FILESYSTEM_ROOT="$WORK/ls" \
    exec setsid "$LS_PYTHON" -m localstack.runtime.main >"$WORK/localstack.log" 2>&1) &
LS_PID=$!
for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$LS_PORT/_localstack/health" | grep -q '"kms": "\(available\|running\)"' && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$LS_PORT/_localstack/health" >/dev/null || die "LocalStack did not start: $(tail -5 "$WORK/localstack.log")"

PORT="$(free_port)"
TOKEN="bench-root"
"$BIN" server -dev -dev-listen-address="127.0.0.1:$PORT" -dev-root-token-id="$TOKEN" \
    -dev-data-dir="$WORK/data" >"$WORK/daemon.log" 2>&1 &
PID=$!
ADDR="http://127.0.0.1:$PORT"
for _ in $(seq 200); do curl -sf "$ADDR/v1/sys/health" >/dev/null && break; sleep 0.1; done
curl -sf "$ADDR/v1/sys/health" >/dev/null || die "the daemon did not start: $(tail -5 "$WORK/daemon.log")"

export ADDR TOKEN AWS_ENDPOINT="http://127.0.0.1:$LS_PORT"
for alg in RSA_2048 EC_P256; do
    say "exports: $EXPORTS $alg keys, $CONCURRENCY at a time"
    python3 "$BENCH_DIR/cloud_export.py" exports "$alg" "$EXPORTS" "$CONCURRENCY"
done
say "rotations: $ROTATIONS of one P-256 key with $EXPORTS_PER_KEY auto-sync exports"
python3 "$BENCH_DIR/cloud_export.py" rotations "$ROTATIONS" "$EXPORTS_PER_KEY"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores, profile $PROFILE)"
