#!/usr/bin/env bash
# A bounded soak of a release `ironseal server -dev` on loopback: kv reads, kv writes (a
# new key each) and transit encryptions at once, at the benchmark's concurrency (32
# connections in all, split 16/8/8), in one-minute slices for DURATION. The daemon's RSS
# is sampled every SAMPLE seconds. Prints per minute the requests, errors, p50 and p99
# of each scenario, the RSS over time, and whether memory stayed flat after the warm-up
# (criterion in bench/soak_report.py). Exits 1 when an error answer was counted or memory
# grew, 2 when it could not set up. See bench/README.md.
#
# Environment:
#   DURATION      total load, in minutes (10m) or seconds (90s)   default 10m
#   SLICE         seconds per measured slice                     default 60
#   SAMPLE        seconds between RSS samples                    default 5
#   WARMUP_SLICES slices left out of the memory verdict           default 2 (1 if <= 4 slices)
#   IRONSEAL_BIN  the daemon to soak; default: a release build in $CARGO_TARGET_DIR/release
#                 (built here unless SKIP_BUILD=1)
#   IRONSEAL_CACHE  default /var/tmp/ironseal; CARGO_TARGET_DIR defaults to $IRONSEAL_CACHE/target
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$BENCH_DIR")"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IRONSEAL_CACHE/target}"

say() { echo "soak: $*" >&2; }
die() { echo "soak: error: $*" >&2; exit 2; }
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

DURATION="${DURATION:-10m}"
SLICE="${SLICE:-60}"
SAMPLE="${SAMPLE:-5}"
case "$DURATION" in
    *m) TOTAL=$(( ${DURATION%m} * 60 )) ;;
    *s) TOTAL="${DURATION%s}" ;;
    *) TOTAL="$DURATION" ;;
esac
[[ "$TOTAL" =~ ^[0-9]+$ && "$SLICE" =~ ^[0-9]+$ && "$SAMPLE" =~ ^[0-9]+$ ]] ||
    die "DURATION, SLICE and SAMPLE must be whole seconds or minutes"
((SLICE >= 5 && TOTAL >= SLICE && SAMPLE >= 1)) || die "need DURATION >= SLICE >= 5 s and SAMPLE >= 1 s"
SLICES=$(( (TOTAL + SLICE - 1) / SLICE ))
WARMUP_SLICES="${WARMUP_SLICES:-$(( SLICES <= 4 ? 1 : 2 ))}"
((WARMUP_SLICES < SLICES)) || die "WARMUP_SLICES ($WARMUP_SLICES) leaves no slice to judge"
TOKEN=root

"$REPO/scripts/install-deps.sh" --print-bin-dir >/dev/null || die "scripts/install-deps.sh failed"
for tool in wrk curl jq python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs it)"
done

if [[ -z "${IRONSEAL_BIN:-}" ]]; then
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        say "building ironseal (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
        (cd "$REPO" && cargo build --release -p ironseal) || die "cargo build --release -p ironseal failed"
    fi
    IRONSEAL_BIN="$CARGO_TARGET_DIR/release/ironseal"
fi
[[ -x "$IRONSEAL_BIN" ]] || die "no daemon at $IRONSEAL_BIN"

RUN="$BENCH_DIR/results/soak"
rm -rf "$RUN"
mkdir -p "$RUN"
# On the cache's disk, not tmpfs, so the write-ahead log's fsyncs are real ones.
DATA_DIR="$(mktemp -d "$IRONSEAL_CACHE/soak-ironseal-data.XXXXXX")"
PID="" SAMPLER=""
cleanup() {
    stop_pid "$SAMPLER"
    stop_pid "$PID"
    rm -rf "$DATA_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$(pick_port)"
URL="http://127.0.0.1:$PORT"

say "starting $IRONSEAL_BIN on $URL (data in $DATA_DIR)"
"$IRONSEAL_BIN" server -dev -dev-listen-address="127.0.0.1:$PORT" \
    -dev-root-token-id="$TOKEN" -dev-data-dir="$DATA_DIR" >"$RUN/ironseal.log" 2>&1 &
PID=$!
wait_ready ironseal "$PID" "$URL/v1/sys/health" 60

api() {
    curl -fsS --max-time 30 -o "$RUN/resp" -X "$1" -H "X-Vault-Token: $TOKEN" \
        -H 'Content-Type: application/json' --data-binary "$3" "$URL/v1/$2" ||
        die "$1 $2 failed: $(cat "$RUN/resp" 2>/dev/null)"
}
jq -nc --arg v "$(head -c 75 /dev/urandom | base64 -w0)" '{data: {v: $v}}' >"$RUN/kv.json"
jq -nc --arg pt "$(head -c 256 /dev/urandom | base64 -w0)" '{plaintext: $pt}' >"$RUN/encrypt.json"
api POST secret/data/soak-read "@$RUN/kv.json"
api GET secret/data/soak-read ""
api POST transit/keys/soak '{"type":"aes256-gcm96"}'
api POST transit/encrypt/soak "@$RUN/encrypt.json"

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
# RSS every SAMPLE seconds: seconds since the load began, VmRSS in kB.
START_NS="$(date +%s%N)"
(
    while kill -0 "$PID" 2>/dev/null; do
        rss="$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$PID/status" 2>/dev/null || true)"
        [[ -n "$rss" ]] && echo "$(( ($(date +%s%N) - START_NS) / 1000000 )) $rss"
        sleep "$SAMPLE"
    done
) >"$RUN/rss.txt" &
SAMPLER=$!

# One wrk per scenario, all at once, for one slice; each prints a BENCH line.
load() {
    local name="$1" conns="$2" method="$3" path="$4" body="$5" mode="$6" slice="$7"
    BENCH_METHOD="$method" BENCH_TOKEN="$TOKEN" BENCH_BODY_FILE="$body" BENCH_MODE="$mode" \
        timeout -k 5 $((SLICE + 60)) wrk -t1 -c"$conns" -d"${SLICE}s" --timeout 5s --latency \
        -s "$BENCH_DIR/wrk.lua" "$URL/v1/$path" >"$RUN/wrk-$slice-$name.txt" 2>&1 || true
}
say "load: $SLICES slice(s) of $SLICE s; kv-read 16, kv-write 8, transit-encrypt 8 connections; RSS every $SAMPLE s"
for slice in $(seq 1 "$SLICES"); do
    load kv-read 16 GET secret/data/soak-read "" fixed "$slice" &
    loaders=($!)
    # A new key per write, in every slice.
    load kv-write 8 POST "secret/data/w$slice" "$RUN/kv.json" unique "$slice" &
    loaders+=($!)
    load transit-encrypt 8 POST transit/encrypt/soak "$RUN/encrypt.json" fixed "$slice" &
    loaders+=($!)
    wait "${loaders[@]}" || true
    kill -0 "$PID" 2>/dev/null || { tail -n 20 "$RUN/ironseal.log" >&2; die "the daemon died during slice $slice"; }
    say "  slice $slice/$SLICES done, RSS $(awk '$1 == "VmRSS:" { print $2 }' "/proc/$PID/status") kB, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
stop_pid "$SAMPLER"
SAMPLER=""

jq -n --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg bin "$IRONSEAL_BIN" \
    --arg version "$("$IRONSEAL_BIN" version 2>/dev/null | head -n 1)" \
    --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
    --argjson cores "$(nproc)" --arg mem "$(awk '/^MemTotal/ { print $2 " kB" }' /proc/meminfo)" \
    --arg load_before "$LOAD_BEFORE" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --argjson slice "$SLICE" \
    --argjson slices "$SLICES" --argjson warmup_slices "$WARMUP_SLICES" \
    '{date: $date, binary: $bin, version: $version, cpu: $cpu, cores: $cores, memory: $mem,
      load_average_before: $load_before, load_average_after: $load, slice_seconds: $slice, slices: $slices,
      warmup_slices: $warmup_slices}' >"$RUN/meta.json"
python3 "$BENCH_DIR/soak_report.py" "$RUN"
