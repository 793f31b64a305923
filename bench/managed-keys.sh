#!/usr/bin/env bash
# Managed-key signing with the SoftHSM2 seal: RSA-2048 and P-256 sign operations per
# second through `POST /api/v1/keys/{id}/sign` (wrk), against C_Sign straight on SoftHSM2
# (hsm-bridge/examples/softhsm_sign_bench.rs, the ceiling). A benchmark, not a test.
#
# Environment: DURATION (seconds, default 10), CONNECTIONS (default 8), THREADS (wrk and
# direct signing threads, default 2), PROFILE (release or debug, default release),
# SKIP_BUILD=1, IRONSEAL_CACHE (default /var/tmp/ironseal; target dir
# $CARGO_TARGET_DIR or $IRONSEAL_CACHE/target).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$BENCH_DIR")"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IRONSEAL_CACHE/target}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-8}"
THREADS="${THREADS:-2}"
PROFILE="${PROFILE:-release}"
MODULE=/usr/lib/softhsm/libsofthsm2.so
PIN=246810
say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
for t in wrk curl jq softhsm2-util; do command -v "$t" >/dev/null || die "$t is missing"; done
[[ -e "$MODULE" ]] || die "$MODULE is missing"

flag=(); [[ "$PROFILE" == release ]] && flag=(--release)
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    say "building ($PROFILE)"
    (cd "$REPO" && cargo build -q "${flag[@]}" -p ironseal \
        && cargo build -q "${flag[@]}" -p hsm-bridge --features pkcs11 --example softhsm_sign_bench)
fi
BIN="$CARGO_TARGET_DIR/$PROFILE/ironseal"
DIRECT="$CARGO_TARGET_DIR/$PROFILE/examples/softhsm_sign_bench"

WORK="$(mktemp -d "$IRONSEAL_CACHE/bench-keys.XXXXXX")"
cleanup() { [[ -n "${PID:-}" ]] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/tokens" "$WORK/data"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK/tokens" > "$WORK/softhsm2.conf"
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
softhsm2-util --init-token --free --label bench --so-pin 1234 --pin "$PIN" >/dev/null
printf '%s\n' "$PIN" > "$WORK/pin"; chmod 600 "$WORK/pin"
PORT=$((20000 + RANDOM % 20000))
cat > "$WORK/config.hcl" <<HCL
storage "redb" {
  path = "$WORK/data/ironseal.redb"
}
listener "tcp" {
  address = "127.0.0.1:$PORT"
  tls_disable = true
}
seal "pkcs11" {
  lib = "$MODULE"
  token_label = "bench"
  key_label = "ironseal-root"
  generate_key = "true"
  pin_file = "$WORK/pin"
}
HCL
chmod 600 "$WORK/config.hcl"
"$BIN" server -config "$WORK/config.hcl" > "$WORK/daemon.log" 2>&1 &
PID=$!
ADDR="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$ADDR/v1/sys/seal-status" >/dev/null && break; sleep 0.1; done
ROOT="$(curl -s -XPOST "$ADDR/v1/sys/init" -d '{"recovery_shares":1,"recovery_threshold":1}' | jq -r .root_token)"
[[ -n "$ROOT" && "$ROOT" != null ]] || die "init failed: $(tail -5 "$WORK/daemon.log" || true)"
for _ in $(seq 100); do [[ "$(curl -s "$ADDR/v1/sys/seal-status" | jq .sealed)" == false ]] && break; sleep 0.1; done

declare -A API DIRECT_RATE
for alg in RSA_2048 EC_P256; do
    id="$(curl -sf -H "X-Vault-Token: $ROOT" -XPOST "$ADDR/api/v1/keys" \
        -d "{\"name\":\"bench-$alg\",\"algorithm\":\"$alg\"}" | jq -r .id)"
    printf '{"message":"%s"}' "$(head -c 100 /dev/zero | base64 -w0)" > "$WORK/body-$alg.json"
    curl -sf -H "X-Vault-Token: $ROOT" -XPOST "$ADDR/api/v1/keys/$id/sign" \
        --data-binary "@$WORK/body-$alg.json" | jq -e .signature >/dev/null || die "sign with $alg failed"
    say "wrk: $alg sign, ${DURATION}s, -t$THREADS -c$CONNECTIONS"
    out="$(BENCH_METHOD=POST BENCH_TOKEN="$ROOT" BENCH_BODY_FILE="$WORK/body-$alg.json" \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$BENCH_DIR/wrk.lua" "$ADDR/api/v1/keys/$id/sign")"
    API[$alg]="$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
    grep -q "Non-2xx" <<<"$out" && say "warning: non-2xx answers: $(grep Non-2xx <<<"$out")"
done
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=

say "direct C_Sign on SoftHSM2, ${DURATION}s, $THREADS threads"
while read -r name rate; do DIRECT_RATE[$name]=$rate; done < <("$DIRECT" "$MODULE" bench "$PIN" "$DURATION" "$THREADS")

printf '\n%-10s %14s %14s %8s\n' "algorithm" "api ops/s" "direct ops/s" "ratio"
for pair in "RSA_2048 rsa2048" "EC_P256 p256"; do
    set -- $pair
    a="${API[$1]:-0}"; d="${DIRECT_RATE[$2]:-0}"
    printf '%-10s %14s %14s %8s\n' "$1" "$a" "$d" "$(awk -v a="$a" -v d="$d" 'BEGIN { if (d > 0) printf "%.2f", a / d; else print "-" }')"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores, profile $PROFILE)"
