#!/usr/bin/env bash
# Managed-key signing with the SoftHSM2 seal: RSA-2048 and P-256 signatures per second
# with 1 and 8 threads (connections), three ways:
#   - through libironseal_pkcs11.so (C_Sign in front of the appliance),
#   - through `POST /api/v1/keys/{id}/sign` (wrk),
#   - C_Sign straight on SoftHSM2's own library (the ceiling),
# all by hsm-bridge/examples/pkcs11_sign_bench.rs except the HTTP path. A benchmark, not a
# test: ratios are to the direct figure with the same thread count.
#
# Environment: DURATION (seconds, default 10), THREAD_COUNTS (default "1 8"), PROFILE
# (release or debug, default release), SKIP_BUILD=1, IRONSEAL_CACHE (default
# /var/tmp/ironseal; target dir $CARGO_TARGET_DIR or $IRONSEAL_CACHE/target).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$BENCH_DIR")"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IRONSEAL_CACHE/target}"
DURATION="${DURATION:-10}"
THREAD_COUNTS="${THREAD_COUNTS:-1 8}"
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
        && cargo build -q "${flag[@]}" -p ironseal-pkcs11 \
        && cargo build -q "${flag[@]}" -p hsm-bridge --features pkcs11 --example pkcs11_sign_bench)
fi
BIN="$CARGO_TARGET_DIR/$PROFILE/ironseal"
SIGN_BENCH="$CARGO_TARGET_DIR/$PROFILE/examples/pkcs11_sign_bench"
LIBRARY="$CARGO_TARGET_DIR/$PROFILE/libironseal_pkcs11.so"

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
pkcs11 {
  socket      = "$WORK/p11.sock"
  token_label = "appliance"
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

declare -A API LIB DIRECT_RATE
for alg in RSA_2048 EC_P256; do
    id="$(curl -sf -H "X-Vault-Token: $ROOT" -XPOST "$ADDR/api/v1/keys" \
        -d "{\"name\":\"bench-$alg\",\"algorithm\":\"$alg\"}" | jq -r .id)"
    printf '{"message":"%s"}' "$(head -c 100 /dev/zero | base64 -w0)" > "$WORK/body-$alg.json"
    curl -sf -H "X-Vault-Token: $ROOT" -XPOST "$ADDR/api/v1/keys/$id/sign" \
        --data-binary "@$WORK/body-$alg.json" | jq -e .signature >/dev/null || die "sign with $alg failed"
    for n in $THREAD_COUNTS; do
        say "wrk: $alg sign, ${DURATION}s, $n connections"
        out="$(BENCH_METHOD=POST BENCH_TOKEN="$ROOT" BENCH_BODY_FILE="$WORK/body-$alg.json" \
            wrk -t"$((n < 2 ? n : 2))" -c"$n" -d"${DURATION}s" -s "$BENCH_DIR/wrk.lua" "$ADDR/api/v1/keys/$id/sign")"
        API[$alg/$n]="$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
        grep -q "Non-2xx" <<<"$out" && say "warning: non-2xx answers: $(grep Non-2xx <<<"$out")"
    done
done
say "C_Sign through libironseal_pkcs11.so, ${DURATION}s, threads: $THREAD_COUNTS"
while read -r name n rate; do LIB[$name/$n]=$rate; done < <(IRONSEAL_PKCS11_SOCKET="$WORK/p11.sock" \
    "$SIGN_BENCH" "$LIBRARY" appliance "$ROOT" "$DURATION" $THREAD_COUNTS)
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=

say "C_Sign on SoftHSM2 directly, ${DURATION}s, threads: $THREAD_COUNTS"
while read -r name n rate; do DIRECT_RATE[$name/$n]=$rate; done < <("$SIGN_BENCH" "$MODULE" bench "$PIN" "$DURATION" $THREAD_COUNTS)

ratio() { awk -v a="$1" -v d="$2" 'BEGIN { if (d > 0) printf "%.2f", a / d; else print "-" }'; }
printf '\n%-10s %7s %13s %13s %6s %13s %6s\n' algorithm threads "direct ops/s" "pkcs11 ops/s" ratio "api ops/s" ratio
for pair in "RSA_2048 rsa2048" "EC_P256 p256"; do
    set -- $pair
    for n in $THREAD_COUNTS; do
        d="${DIRECT_RATE[$2/$n]:-0}"; l="${LIB[$2/$n]:-0}"; a="${API[$1/$n]:-0}"
        printf '%-10s %7s %13s %13s %6s %13s %6s\n' "$1" "$n" "$d" "$l" "$(ratio "$l" "$d")" "$a" "$(ratio "$a" "$d")"
    done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores, profile $PROFILE)"
