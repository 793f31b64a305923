#!/usr/bin/env bash
# Where the kv-write rate goes: durable kv writes alone and beside the soak's reads and
# encryptions, each case for DURATION on a fresh `ironseal server -dev`, with the group
# commits (sys/metrics) and the commit thread's scheduling (/proc/.../schedstat: CPU time
# and time spent waiting for a CPU) over the run. A diagnosis, not a test. See
# bench/README.md ("The soak's kv-write rate").
#
# Usage: IRONSEAL_BIN=/path/to/ironseal bash bench/write-mix.sh [CASE...]
# Cases (default all):
#   runsh   32 writers (wrk -t2), a new key each: run.sh's kv-write
#   soakw   8 writers (wrk -t1), a new key each: the soak's writers, alone
#   fixed8  8 writers, all to one existing key
#   mix     the soak's load: 16 readers, 8 writers, 8 encrypting
#   mix32   the same with 32 writers
# Environment: DURATION (seconds, default 30), IRONSEAL_CACHE (default /var/tmp/ironseal).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
DURATION="${DURATION:-30}"
CASES=("$@")
((${#CASES[@]})) || CASES=(runsh soakw fixed8 mix mix32)
say() { echo "write-mix: $*" >&2; }
die() { echo "write-mix: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
[[ -x "${IRONSEAL_BIN:-}" ]] || die "set IRONSEAL_BIN to a release ironseal binary"
[[ "$DURATION" =~ ^[0-9]+$ ]] || die "DURATION is whole seconds"
for tool in wrk curl jq python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs it)"
done

RUN="$BENCH_DIR/results/write-mix"
rm -rf "$RUN"
mkdir -p "$RUN"
PID="" DATA=""
stop() {
    stop_pid "$PID"
    [[ -n "$DATA" ]] && rm -rf "$DATA"
    PID="" DATA=""
}
trap stop EXIT

jq -nc --arg v "$(head -c 75 /dev/urandom | base64 -w0)" '{data: {v: $v}}' >"$RUN/kv.json"
jq -nc --arg pt "$(head -c 256 /dev/urandom | base64 -w0)" '{plaintext: $pt}' >"$RUN/encrypt.json"

counter() {
    curl -fsS -H "X-Vault-Token: root" "$URL/v1/sys/metrics?format=prometheus" |
        awk -v m="$1" '$1 == m { print $2 }'
}
# The commit thread's CPU ns, run-queue wait ns and voluntary context switches.
commit_thread() {
    local task
    task="$(grep -lx storage-commit /proc/"$PID"/task/*/comm | head -n 1)"
    [[ -n "$task" ]] || die "no storage-commit thread in the daemon"
    task="$(dirname "$task")"
    echo "$(cut -d' ' -f1-2 "$task/schedstat") $(awk '/^voluntary_ctxt_switches/ { print $2 }' "$task/status")"
}
# load NAME THREADS CONNECTIONS METHOD PATH BODY MODE
load() {
    BENCH_METHOD="$4" BENCH_TOKEN=root BENCH_BODY_FILE="$6" BENCH_MODE="$7" \
        timeout -k 5 $((DURATION + 60)) wrk -t"$2" -c"$3" -d"${DURATION}s" --timeout 5s --latency \
        -s "$BENCH_DIR/wrk.lua" "$URL/v1/$5" >"$RUN/$case-$1.txt" 2>&1 || true
}

for case in "${CASES[@]}"; do
    DATA="$(mktemp -d "$IRONSEAL_CACHE/write-mix-data.XXXXXX")"
    port="$(pick_port)"
    URL="http://127.0.0.1:$port"
    "$IRONSEAL_BIN" server -dev -dev-listen-address="127.0.0.1:$port" -dev-root-token-id=root \
        -dev-data-dir="$DATA" >"$RUN/$case.log" 2>&1 &
    PID=$!
    wait_ready "$case" "$PID" "$URL/v1/sys/health" 60
    curl -fsS -o /dev/null -H "X-Vault-Token: root" --data-binary "@$RUN/kv.json" "$URL/v1/secret/data/soak-read"
    curl -fsS -o /dev/null -H "X-Vault-Token: root" --data-binary "@$RUN/kv.json" "$URL/v1/secret/data/same"
    curl -fsS -o /dev/null -H "X-Vault-Token: root" -d '{"type":"aes256-gcm96"}' "$URL/v1/transit/keys/soak"

    load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
    commits0="$(counter ironseal_storage_commits_total)"
    batches0="$(counter ironseal_storage_batches_total)"
    read -r cpu0 wait0 sleeps0 <<<"$(commit_thread)"
    say "$case ($DURATION s, load $load_before)"
    case "$case" in
        runsh) load write 2 32 POST secret/data/bench "$RUN/kv.json" unique ;;
        soakw) load write 1 8 POST secret/data/w1 "$RUN/kv.json" unique ;;
        fixed8) load write 1 8 POST secret/data/same "$RUN/kv.json" fixed ;;
        mix | mix32)
            writers=8
            [[ "$case" == mix32 ]] && writers=32
            load read 1 16 GET secret/data/soak-read "" fixed &
            loaders=($!)
            load write 1 "$writers" POST secret/data/w1 "$RUN/kv.json" unique &
            loaders+=($!)
            load encrypt 1 8 POST transit/encrypt/soak "$RUN/encrypt.json" fixed &
            loaders+=($!)
            wait "${loaders[@]}" || true
            ;;
        *) die "unknown case $case" ;;
    esac
    commits1="$(counter ironseal_storage_commits_total)"
    batches1="$(counter ironseal_storage_batches_total)"
    read -r cpu1 wait1 sleeps1 <<<"$(commit_thread)"
    for f in "$RUN/$case"-*.txt; do
        grep -m1 '^BENCH ' "$f" | sed "s/^BENCH /$(basename "$f" .txt) /"
    done | python3 -c '
import sys
case, load, secs = sys.argv[1], sys.argv[2], int(sys.argv[3])
c, b, cpu, wait, sl = (int(a) - int(z) for a, z in zip(sys.argv[4::2], sys.argv[5::2]))
for line in sys.stdin:
    name, *kv = line.split()
    w = dict(x.split("=") for x in kv)
    w = {k: float(v) for k, v in w.items()}
    bad = sum(w[k] for k in ("non2xx", "connect_errors", "read_errors", "write_errors", "timeouts"))
    rps = w["requests"] / (w["duration_us"] / 1e6)
    p50, p99 = w["p50_us"] / 1000, w["p99_us"] / 1000
    print(f"{name}: {rps:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {bad:.0f} errors")
n = max(c, 1)
print(f"{case}: load {load}; {c} group commits ({c / secs:.0f}/s), {b / n:.2f} writes each;"
      f" commit thread per commit: CPU {cpu / n / 1e3:.0f} us, waiting for a CPU {wait / n / 1e3:.0f} us,"
      f" {sl / n:.1f} sleeps")
' "$case" "$load_before" "$DURATION" "$commits1" "$commits0" "$batches1" "$batches0" \
        "$cpu1" "$cpu0" "$wait1" "$wait0" "$sleeps1" "$sleeps0" | tee -a "$RUN/summary.txt"
    stop
done
