#!/usr/bin/env bash
# Ironseal against OpenBao (`bao server -dev`) on this machine, side by side, with the
# same load generator (wrk), the same concurrency and the same duration; plus a bare
# hyper server answering a fixed body, the ceiling of what HTTP allows here.
# A benchmark, not a test: it prints figures and ratios and always exits 0 once the
# measurements ran (1 when it could not set up). See bench/README.md.
#
# Environment:
#   DURATION     each measured wrk run (wrk syntax: 10s, 1m)        default 10s
#   WARMUP       an unmeasured wrk run before each measured one     default 2s (0 = none)
#   CONNECTIONS  open connections                                    default 32
#   THREADS      wrk threads                                         default 2
#   SCENARIOS    space-separated subset of: kv-read kv-write transit-encrypt
#                transit-decrypt transit-encrypt-batch100 transit-decrypt-batch100
#                (the bare ceiling always runs)                      default all
#   SKIP_BUILD=1 use the binaries already in $CARGO_TARGET_DIR/release (smoke tests)
#   IRONSEAL_BIN another ironseal binary (implies SKIP_BUILD; bare-hyper still comes from
#                $CARGO_TARGET_DIR/release unless BARE_BIN names one)
#   IRONSEAL_CACHE  default /var/tmp/ironseal; CARGO_TARGET_DIR defaults to $IRONSEAL_CACHE/target
#   BAO_BIN      the bao binary; default: the one scripts/install-deps.sh installs
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$BENCH_DIR")"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IRONSEAL_CACHE/target}"

DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
ALL_SCENARIOS="kv-read kv-write transit-encrypt transit-decrypt transit-encrypt-batch100 transit-decrypt-batch100"
SCENARIOS="${SCENARIOS:-$ALL_SCENARIOS}"
TOKEN=root

RESULTS="$BENCH_DIR/results"
RUN="$RESULTS/run"          # this run's logs, request bodies and raw wrk output

say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

# "10s" / "1m" / "500ms" / "2" -> whole seconds, rounded up (for time limits only).
seconds_of() {
    local d="$1"
    case "$d" in
        *ms) echo $(( (${d%ms} + 999) / 1000 )) ;;
        *s) echo "${d%s}" ;;
        *m) echo $(( ${d%m} * 60 )) ;;
        *h) echo $(( ${d%h} * 3600 )) ;;
        *) echo "$d" ;;
    esac
}
[[ "$CONNECTIONS" =~ ^[0-9]+$ && "$THREADS" =~ ^[0-9]+$ ]] || die "CONNECTIONS and THREADS must be integers"
((CONNECTIONS >= THREADS && THREADS >= 1)) || die "need CONNECTIONS >= THREADS >= 1"
DURATION_S="$(seconds_of "$DURATION")"
WARMUP_S="$(seconds_of "$WARMUP")"
[[ "$DURATION_S" =~ ^[0-9]+$ && "$DURATION_S" -ge 1 ]] || die "bad DURATION: $DURATION"
[[ "$WARMUP_S" =~ ^[0-9]+$ ]] || die "bad WARMUP: $WARMUP"

# ---- tools ---------------------------------------------------------------------------
# The project's installer brings wrk, curl, jq, python3 and the bao CLI (idempotent).
bao_dir="$("$REPO/scripts/install-deps.sh" --print-bin-dir)" || die "scripts/install-deps.sh failed"
BAO_BIN="${BAO_BIN:-$bao_dir/bao}"
for tool in wrk curl jq python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs it)"
done
[[ -x "$BAO_BIN" ]] || die "no bao binary at $BAO_BIN"

[[ -n "${IRONSEAL_BIN:-}" ]] && SKIP_BUILD=1
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    say "building ironseal and bare-hyper (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$REPO" && cargo build --release -p ironseal -p bare-hyper) ||
        die "cargo build --release -p ironseal -p bare-hyper failed"
fi
IRONSEAL_BIN="${IRONSEAL_BIN:-$CARGO_TARGET_DIR/release/ironseal}"
BARE_BIN="${BARE_BIN:-$CARGO_TARGET_DIR/release/bare-hyper}"
[[ -x "$IRONSEAL_BIN" ]] || die "no $IRONSEAL_BIN (build it, or unset SKIP_BUILD)"
[[ -x "$BARE_BIN" ]] || die "no $BARE_BIN (build it, or unset SKIP_BUILD)"

# ---- processes -----------------------------------------------------------------------
rm -rf "$RUN"
mkdir -p "$RUN"
# Ironseal's data goes on the cache's disk (not tmpfs) so its fsyncs are real ones.
DATA_DIR="$(mktemp -d "$IRONSEAL_CACHE/bench-ironseal-data.XXXXXX")"

IRONSEAL_PID="" BAO_PID="" BARE_PID=""
cleanup() {
    stop_pid "$IRONSEAL_PID"
    stop_pid "$BAO_PID"
    stop_pid "$BARE_PID"
    rm -rf "$DATA_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

IRONSEAL_PORT="$(pick_port)"
BAO_PORT="$(pick_port)"
BARE_PORT="$(pick_port)"
IRONSEAL_URL="http://127.0.0.1:$IRONSEAL_PORT"
BAO_URL="http://127.0.0.1:$BAO_PORT"
BARE_URL="http://127.0.0.1:$BARE_PORT"

say "starting ironseal on $IRONSEAL_URL (data in $DATA_DIR, $(stat -f -c %T "$DATA_DIR"))"
"$IRONSEAL_BIN" server -dev -dev-listen-address="127.0.0.1:$IRONSEAL_PORT" \
    -dev-root-token-id="$TOKEN" -dev-data-dir="$DATA_DIR" >"$RUN/ironseal.log" 2>&1 &
IRONSEAL_PID=$!
say "starting openbao on $BAO_URL ($("$BAO_BIN" version 2>/dev/null | head -n 1))"
"$BAO_BIN" server -dev -dev-no-store-token -dev-listen-address="127.0.0.1:$BAO_PORT" \
    -dev-root-token-id="$TOKEN" >"$RUN/openbao.log" 2>&1 &
BAO_PID=$!
wait_ready ironseal "$IRONSEAL_PID" "$IRONSEAL_URL/v1/sys/health" 60
wait_ready openbao "$BAO_PID" "$BAO_URL/v1/sys/health" 60

# ---- requests ------------------------------------------------------------------------
# api URL METHOD PATH [BODY_FILE] -> prints the HTTP status; the body lands in $RUN/resp.
api() {
    local url="$1" method="$2" path="$3" body="${4:-}"
    local args=(-sS --max-time 30 -o "$RUN/resp" -w '%{http_code}' -X "$method"
        -H "X-Vault-Token: $TOKEN")
    [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "@$body")
    curl "${args[@]}" "$url/v1/$path" 2>>"$RUN/curl.err" || echo 000
}
is_2xx() { [[ "$1" == 2?? ]]; }

server_url() { case "$1" in ironseal) echo "$IRONSEAL_URL" ;; openbao) echo "$BAO_URL" ;; bare) echo "$BARE_URL" ;; esac; }
server_pid() { case "$1" in ironseal) echo "$IRONSEAL_PID" ;; openbao) echo "$BAO_PID" ;; bare) echo "$BARE_PID" ;; esac; }
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }

RECORDS="$RUN/records.jsonl"
: >"$RECORDS"
# record SERVER SCENARIO STATUS REASON [WRK_JSON]
record() {
    local server="$1" scenario="$2" status="$3" reason="$4" wrk_json="${5:-null}"
    local pid rss hwm
    pid="$(server_pid "$server")"
    rss="$(proc_kb "$pid" VmRSS)"
    hwm="$(proc_kb "$pid" VmHWM)"
    jq -nc --arg server "$server" --arg scenario "$scenario" --arg status "$status" \
        --arg reason "$reason" --argjson wrk "$wrk_json" \
        --argjson rss_kb "${rss:-null}" --argjson hwm_kb "${hwm:-null}" \
        '{server: $server, scenario: $scenario, status: $status, reason: $reason,
          wrk: $wrk, rss_kb: $rss_kb, hwm_kb: $hwm_kb}' >>"$RECORDS"
}

# run_wrk SERVER SCENARIO METHOD PATH BODY_FILE MODE: one warm-up run, one measured
# run; records the result (non-2xx responses and socket errors included).
run_wrk() {
    local server="$1" scenario="$2" method="$3" path="$4" body="$5" mode="$6"
    local url out line wrk_json
    url="$(server_url "$server")"
    out="$RUN/wrk-$scenario-$server.txt"
    if ((WARMUP_S > 0)); then
        local warm_path="$path"
        [[ "$mode" == unique ]] && warm_path="$path-warmup"
        BENCH_METHOD="$method" BENCH_TOKEN="$TOKEN" BENCH_BODY_FILE="$body" BENCH_MODE="$mode" \
            timeout -k 5 $((WARMUP_S + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" \
            --timeout 5s -s "$BENCH_DIR/wrk.lua" "$url/v1/$warm_path" >"$out.warmup" 2>&1 || true
    fi
    say "  $scenario: $server ($DURATION, $CONNECTIONS connections, $THREADS threads)"
    BENCH_METHOD="$method" BENCH_TOKEN="$TOKEN" BENCH_BODY_FILE="$body" BENCH_MODE="$mode" \
        timeout -k 5 $((DURATION_S + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" \
        --timeout 5s --latency -s "$BENCH_DIR/wrk.lua" "$url/v1/$path" >"$out" 2>&1 || true
    line="$(grep -m1 '^BENCH ' "$out" || true)"
    if [[ -z "$line" ]]; then
        say "  wrk gave no result for $scenario on $server; its output:"
        sed 's/^/    /' "$out" >&2
        record "$server" "$scenario" failed "wrk gave no result (see $out)"
        return 0
    fi
    wrk_json="$(jq -Rnc --arg l "${line#BENCH }" \
        '$l | split(" ") | map(split("=") | {(.[0]): (.[1] | tonumber)}) | add')"
    record "$server" "$scenario" ok "" "$wrk_json"
    local bad
    bad="$(jq -r '.non2xx + .connect_errors + .read_errors + .write_errors + .timeouts' <<<"$wrk_json")"
    if ((bad > 0)); then
        say "  WARNING: $scenario on $server: $(jq -r '"\(.non2xx) non-2xx responses, \(.connect_errors) connect, \(.read_errors) read, \(.write_errors) write errors, \(.timeouts) timeouts"' <<<"$wrk_json")"
    fi
}

# precheck SERVER SCENARIO METHOD PATH BODY_FILE JQ_TEST [JQ_ARGS...]: one request by
# curl that must answer 2xx with a body passing JQ_TEST; otherwise the scenario is
# recorded as skipped for SERVER with the reason, and precheck fails.
precheck() {
    local server="$1" scenario="$2" method="$3" path="$4" body="$5" test="$6"
    shift 6
    local code
    code="$(api "$(server_url "$server")" "$method" "$path" "$body")"
    if ! is_2xx "$code"; then
        local why
        why="$(jq -rc '.errors // empty' "$RUN/resp" 2>/dev/null | head -c 200 || true)"
        record "$server" "$scenario" skipped "$method $path answered $code ${why}"
        say "  $scenario: skipped on $server: $method $path answered $code $why"
        return 1
    fi
    if ! jq -e "$@" "$test" "$RUN/resp" >/dev/null 2>&1; then
        record "$server" "$scenario" skipped "$method $path answered $code but the body failed: $test"
        say "  $scenario: skipped on $server: unexpected body for $method $path (kept in $RUN/bad-$scenario-$server.json)"
        cp "$RUN/resp" "$RUN/bad-$scenario-$server.json"
        return 1
    fi
    cp "$RUN/resp" "$RUN/precheck-$scenario-$server.json"
}

wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# ---- set-up: one kv secret on each daemon ---------------------------------------------
KV_VALUE="$(head -c 75 /dev/urandom | base64 -w0)"   # 100 characters
jq -nc --arg v "$KV_VALUE" '{data: {v: $v}}' >"$RUN/kv-write.json"
KV_READ_OK=" "
KV_READ_BYTES=0
for server in ironseal openbao; do
    record "$server" idle ok ""
    if precheck "$server" kv-read POST secret/data/bench-key "$RUN/kv-write.json" '.data.version >= 1' &&
        precheck "$server" kv-read GET secret/data/bench-key "" '.data.data.v == $v' --arg v "$KV_VALUE"; then
        KV_READ_OK+="$server "
        size="$(stat -c %s "$RUN/precheck-kv-read-$server.json")"
        ((size > KV_READ_BYTES)) && KV_READ_BYTES="$size"
    fi
done
((KV_READ_BYTES > 0)) || KV_READ_BYTES=300

# ---- the bare ceiling ------------------------------------------------------------------
say "starting bare-hyper on $BARE_URL with a $KV_READ_BYTES-byte body (the kv read response)"
"$BARE_BIN" "$BARE_PORT" "$KV_READ_BYTES" >"$RUN/bare.log" 2>&1 &
BARE_PID=$!
wait_ready bare "$BARE_PID" "$BARE_URL/" 30

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
say "load average before measuring: $LOAD_BEFORE (on $(nproc) cores; other work on the machine skews every figure)"
say "scenarios (warm-up $WARMUP each, then measured $DURATION):"
run_wrk bare bare GET secret/data/bench-key "" fixed

# ---- kv v2 -----------------------------------------------------------------------------
if wants kv-read; then
    for server in ironseal openbao; do
        if [[ "$KV_READ_OK" == *" $server "* ]]; then
            run_wrk "$server" kv-read GET secret/data/bench-key "" fixed
        fi
    done
fi
if wants kv-write; then
    for server in ironseal openbao; do
        precheck "$server" kv-write POST secret/data/bench-precheck "$RUN/kv-write.json" '.data.version >= 1' &&
            run_wrk "$server" kv-write POST secret/data/bench "$RUN/kv-write.json" unique
    done
fi

# ---- transit ---------------------------------------------------------------------------
TRANSIT_SCENARIOS=""
for s in transit-encrypt transit-decrypt transit-encrypt-batch100 transit-decrypt-batch100; do
    wants "$s" && TRANSIT_SCENARIOS+="$s "
done
if [[ -n "$TRANSIT_SCENARIOS" ]]; then
    PLAINTEXT="$(head -c 256 /dev/urandom | base64 -w0)"
    jq -nc --arg pt "$PLAINTEXT" '{plaintext: $pt}' >"$RUN/transit-encrypt.json"
    jq -nc --arg pt "$PLAINTEXT" '{batch_input: [range(100) | {plaintext: $pt}]}' \
        >"$RUN/transit-encrypt-batch100.json"
    echo '{"type":"transit"}' >"$RUN/mount-transit.json"
    echo '{"type":"aes256-gcm96"}' >"$RUN/transit-key.json"
    for server in ironseal openbao; do
        skip_all() {
            for s in $TRANSIT_SCENARIOS; do record "$server" "$s" skipped "$1"; done
            say "  transit: skipped on $server: $1"
        }
        url="$(server_url "$server")"
        # Ironseal's dev mode mounts transit/ already (OpenBao's does not).
        code="$(api "$url" GET sys/mounts/transit)"
        is_2xx "$code" || code="$(api "$url" POST sys/mounts/transit "$RUN/mount-transit.json")"
        if ! is_2xx "$code"; then
            skip_all "enabling transit answered $code $(head -c 200 "$RUN/resp")"
            continue
        fi
        code="$(api "$url" POST transit/keys/bench "$RUN/transit-key.json")"
        if ! is_2xx "$code"; then
            skip_all "creating transit/keys/bench answered $code $(head -c 200 "$RUN/resp")"
            continue
        fi
        if precheck "$server" transit-encrypt POST transit/encrypt/bench "$RUN/transit-encrypt.json" \
            '.data.ciphertext | startswith("vault:v")'; then
            jq -c '{ciphertext: .data.ciphertext}' "$RUN/precheck-transit-encrypt-$server.json" \
                >"$RUN/transit-decrypt-$server.json"
            wants transit-encrypt &&
                run_wrk "$server" transit-encrypt POST transit/encrypt/bench "$RUN/transit-encrypt.json" fixed
            wants transit-decrypt &&
                precheck "$server" transit-decrypt POST transit/decrypt/bench "$RUN/transit-decrypt-$server.json" \
                    '.data.plaintext == $pt' --arg pt "$PLAINTEXT" &&
                run_wrk "$server" transit-decrypt POST transit/decrypt/bench "$RUN/transit-decrypt-$server.json" fixed
        else
            wants transit-decrypt && record "$server" transit-decrypt skipped "single encrypt failed"
        fi
        if precheck "$server" transit-encrypt-batch100 POST transit/encrypt/bench "$RUN/transit-encrypt-batch100.json" \
            '.data.batch_results | length == 100 and all(.ciphertext // "" | startswith("vault:v"))'; then
            jq -c '{batch_input: [.data.batch_results[] | {ciphertext}]}' \
                "$RUN/precheck-transit-encrypt-batch100-$server.json" >"$RUN/transit-decrypt-batch100-$server.json"
            wants transit-encrypt-batch100 &&
                run_wrk "$server" transit-encrypt-batch100 POST transit/encrypt/bench "$RUN/transit-encrypt-batch100.json" fixed
            wants transit-decrypt-batch100 &&
                precheck "$server" transit-decrypt-batch100 POST transit/decrypt/bench "$RUN/transit-decrypt-batch100-$server.json" \
                    '.data.batch_results | length == 100 and all(.plaintext == $pt)' --arg pt "$PLAINTEXT" &&
                run_wrk "$server" transit-decrypt-batch100 POST transit/decrypt/bench "$RUN/transit-decrypt-batch100-$server.json" fixed
        else
            wants transit-decrypt-batch100 && record "$server" transit-decrypt-batch100 skipped "batch encrypt failed"
        fi
        true
    done
fi

# ---- report ----------------------------------------------------------------------------
for server in ironseal openbao; do record "$server" end ok ""; done
jq -n \
    --arg duration "$DURATION" --arg warmup "$WARMUP" \
    --argjson connections "$CONNECTIONS" --argjson threads "$THREADS" \
    --arg load_before "$LOAD_BEFORE" --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --argjson cores "$(nproc)" --argjson kv_read_bytes "$KV_READ_BYTES" \
    --arg ironseal_version "$("$IRONSEAL_BIN" version 2>/dev/null | head -n 1)" \
    --arg openbao_version "$("$BAO_BIN" version 2>/dev/null | head -n 1)" \
    --arg commit "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)" \
    --arg data_fs "$(stat -f -c %T "$DATA_DIR")" \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    '{date: $date, commit: $commit, ironseal_version: $ironseal_version,
      openbao_version: $openbao_version, duration: $duration, warmup: $warmup,
      connections: $connections, threads: $threads, cores: $cores,
      load_average_before: $load_before, load_average_after: $load_after,
      kv_read_response_bytes: $kv_read_bytes, ironseal_data_fs: $data_fs,
      client: "wrk"}' >"$RUN/meta.json"
python3 "$BENCH_DIR/report.py" "$RUN/meta.json" "$RECORDS" "$RESULTS/latest.json"
say "raw wrk output and logs: $RUN/; JSON: $RESULTS/latest.json"
