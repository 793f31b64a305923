#!/usr/bin/env bash
# kv read and durable kv write throughput of Ironseal on PostgreSQL (one node, and three
# nodes on one database driven by one load generator), beside Ironseal on its embedded
# redb and OpenBao on its own `storage "postgresql"`, with the database's round trips per
# request (pg_stat_statements) and commits per request (pg_stat_database).
# A benchmark, not a test: it prints figures and always exits 0 once the measurements
# ran (1 when it could not set up). See bench/README.md.
#
# Environment:
#   DURATION     each measured wrk run (wrk syntax)                   default 10s
#   WARMUP       an unmeasured wrk run before each measured one       default 2s
#   CONNECTIONS  open connections in all (split across the nodes)     default 32
#   THREADS      wrk threads per wrk process                          default 2
#   NODES        Ironseal nodes on the shared database                default 3
#   SKIP_BUILD=1 use the ironseal binary already in $CARGO_TARGET_DIR/release
#   IRONSEAL_BIN another ironseal binary (implies SKIP_BUILD; a debug one only to try the script)
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
NODES="${NODES:-3}"

RESULTS="$BENCH_DIR/results"
RUN="$RESULTS/postgresql"
say() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"
[[ "$CONNECTIONS" =~ ^[0-9]+$ && "$THREADS" =~ ^[0-9]+$ && "$NODES" =~ ^[0-9]+$ ]] ||
    die "CONNECTIONS, THREADS and NODES must be integers"
((NODES >= 1 && CONNECTIONS >= NODES * THREADS)) || die "need CONNECTIONS >= NODES * THREADS"

# ---- tools ---------------------------------------------------------------------------
bao_dir="$("$REPO/scripts/install-deps.sh" --print-bin-dir)" || die "scripts/install-deps.sh failed"
BAO_BIN="${BAO_BIN:-$bao_dir/bao}"
for tool in wrk curl jq timeout; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs it)"
done
[[ -x "$BAO_BIN" ]] || die "no bao binary at $BAO_BIN"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[[ -x "$PG_BIN/initdb" ]] || die "no PostgreSQL server binaries (apt postgresql; scripts/install-deps.sh)"

[[ -n "${IRONSEAL_BIN:-}" ]] && SKIP_BUILD=1
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    say "building ironseal (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$REPO" && cargo build --release -p ironseal) || die "cargo build --release -p ironseal failed"
fi
IRONSEAL_BIN="${IRONSEAL_BIN:-$CARGO_TARGET_DIR/release/ironseal}"
[[ -x "$IRONSEAL_BIN" ]] || die "no $IRONSEAL_BIN (build it, or unset SKIP_BUILD)"

# ---- processes -----------------------------------------------------------------------
rm -rf "$RUN"
mkdir -p "$RUN"
WORK="$(mktemp -d "$IRONSEAL_CACHE/bench-pg.XXXXXX")"
PIDS=()
# PostgreSQL refuses to run as root: as root it runs as Debian's `postgres` user.
as_pg() { if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PostgreSQL on loopback, fsync on (the writes measured are durable ones), with
# pg_stat_statements to count the statements each request costs.
PG_PORT="$(pick_port)"
mkdir -p "$WORK/pg"
if [[ "$(id -u)" == 0 ]]; then chown -R postgres:postgres "$WORK"; chmod 755 "$WORK"; fi
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U bench --auth=trust -E UTF8 --locale=C.UTF-8 >"$RUN/initdb.log" 2>&1 ||
    die "initdb failed (see $RUN/initdb.log)"
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK -c max_connections=200 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on" \
    start >"$RUN/pg_ctl.log" 2>&1 || die "pg_ctl start failed (see $RUN/pg_ctl.log)"
psql_() { as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U bench -X -q -t -A "$@"; }
psql_ -d postgres -c "CREATE DATABASE ironseal" -c "CREATE DATABASE openbao" \
    -c "CREATE EXTENSION pg_stat_statements" >/dev/null
psql_ -d openbao >/dev/null <<'SQL'
CREATE TABLE IF NOT EXISTS openbao_kv_store (
  parent_path TEXT COLLATE "C" NOT NULL,
  path        TEXT COLLATE "C",
  key         TEXT COLLATE "C",
  value       BYTEA,
  CONSTRAINT pkey PRIMARY KEY (path, key)
);
CREATE INDEX IF NOT EXISTS parent_path_idx ON openbao_kv_store (parent_path);
SQL
pg_url() { echo "postgres://bench@127.0.0.1:$PG_PORT/$1?sslmode=disable"; }

# Ironseal nodes on the shared table, Ironseal on redb (-dev, data on the cache's disk),
# OpenBao on PostgreSQL.
declare -A URL
for n in $(seq 1 "$NODES"); do
    port="$(pick_port)"
    URL[pg$n]="http://127.0.0.1:$port"
    cat >"$WORK/node$n.hcl" <<HCL
storage "postgresql" {
  connection_url = "$(pg_url ironseal)"
  table = "bench"
}

listener "tcp" {
  address = "127.0.0.1:$port"
  tls_disable = true
}

seal "shamir" {}

log_level = "warn"
HCL
    chmod 600 "$WORK/node$n.hcl"
    "$IRONSEAL_BIN" server -config="$WORK/node$n.hcl" >"$RUN/ironseal-pg$n.log" 2>&1 &
    PIDS+=($!)
    wait_ready "ironseal-pg$n" "$!" "${URL[pg$n]}/v1/sys/health" 60 any
done
port="$(pick_port)"
URL[redb]="http://127.0.0.1:$port"
mkdir -p "$WORK/redb"
"$IRONSEAL_BIN" server -dev -dev-listen-address="127.0.0.1:$port" -dev-root-token-id=root \
    -dev-data-dir="$WORK/redb" >"$RUN/ironseal-redb.log" 2>&1 &
PIDS+=($!)
wait_ready ironseal-redb "$!" "${URL[redb]}/v1/sys/health" 60 any
port="$(pick_port)"
URL[bao]="http://127.0.0.1:$port"
cat >"$WORK/bao.hcl" <<HCL
storage "postgresql" {
  connection_url = "$(pg_url openbao)"
}

listener "tcp" {
  address = "127.0.0.1:$port"
  tls_disable = true
}

api_addr = "http://127.0.0.1:$port"
disable_mlock = true
log_level = "warn"
HCL
"$BAO_BIN" server -config="$WORK/bao.hcl" >"$RUN/openbao-pg.log" 2>&1 &
PIDS+=($!)
wait_ready openbao-pg "$!" "${URL[bao]}/v1/sys/health" 60 any

# call URL TOKEN METHOD PATH [JSON] -> the body; fails on a non-2xx answer.
call() {
    local url="$1" token="$2" method="$3" path="$4" body="${5:-}"
    local args=(-sS --fail-with-body --max-time 300 -X "$method")
    [[ -n "$token" ]] && args+=(-H "X-Vault-Token: $token")
    [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    curl "${args[@]}" "$url/v1/$path"
}
# init_unseal URL -> the root token; the unseal key lands in $WORK/key.
init_unseal() {
    local init
    init="$(call "$1" "" PUT sys/init '{"secret_shares":1,"secret_threshold":1}')" || die "init at $1 failed: $init"
    jq -r '.keys_base64[0]' <<<"$init" >"$WORK/key"
    call "$1" "" PUT sys/unseal "$(jq -nc --arg k "$(cat "$WORK/key")" '{key: $k}')" >/dev/null ||
        die "unseal at $1 failed"
    jq -r '.root_token' <<<"$init"
}
say "initialising and unsealing"
declare -A TOKEN
TOKEN[pg]="$(init_unseal "${URL[pg1]}")" || die "could not initialise ironseal on PostgreSQL"
for n in $(seq 2 "$NODES"); do
    call "${URL[pg$n]}" "" PUT sys/unseal "$(jq -nc --arg k "$(cat "$WORK/key")" '{key: $k}')" >/dev/null ||
        die "unseal of node $n failed"
done
TOKEN[bao]="$(init_unseal "${URL[bao]}")" || die "could not initialise OpenBao"
TOKEN[redb]=root
KV2='{"type":"kv","options":{"version":"2"}}'
call "${URL[pg1]}" "${TOKEN[pg]}" POST sys/mounts/secret "$KV2" >/dev/null || die "mounting kv on ironseal failed"
call "${URL[bao]}" "${TOKEN[bao]}" POST sys/mounts/secret "$KV2" >/dev/null || die "mounting kv on openbao failed"
# OpenBao's mount goes live a moment after it is acknowledged.
for _ in $(seq 1 50); do
    call "${URL[bao]}" "${TOKEN[bao]}" POST secret/data/bench-key '{"data":{"v":"x"}}' >/dev/null 2>&1 && break
    sleep 0.2
done

KV_VALUE="$(head -c 75 /dev/urandom | base64 -w0)"   # 100 characters, as bench/run.sh
jq -nc --arg v "$KV_VALUE" '{data: {v: $v}}' >"$WORK/kv-write.json"
for t in pg redb bao; do
    first="$t"; [[ "$t" == pg ]] && first=pg1
    call "${URL[$first]}" "${TOKEN[$t]}" POST secret/data/bench-key "$(cat "$WORK/kv-write.json")" >/dev/null ||
        die "kv write on $t failed"
done
# Every Ironseal node reads the key before it is measured (the others take the mount up
# within the coherence bound, 2 s).
for n in $(seq 1 "$NODES"); do
    got=""
    for _ in $(seq 1 50); do
        got="$(call "${URL[pg$n]}" "${TOKEN[pg]}" GET secret/data/bench-key 2>/dev/null | jq -r '.data.data.v')" || true
        [[ "$got" == "$KV_VALUE" ]] && break
        sleep 0.2
    done
    [[ "$got" == "$KV_VALUE" ]] || die "node $n reads ${got:-nothing} at secret/data/bench-key"
done

# ---- measuring -----------------------------------------------------------------------
# The database's counters: statements (every one a round trip), statements that write
# (INSERT, UPDATE, DELETE, WITH ... INSERT, and a call of Ironseal's `<table>_apply`
# function, a whole group commit), and transactions (each autocommit read counts as one).
pg_counts() {
    psql_ -d postgres -F ' ' -c "SELECT
        (SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '$1'),
        (SELECT xact_commit FROM pg_stat_database WHERE datname = '$1'),
        (SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = '$1' AND s.query ~* '^[[:space:]]*(insert|update|delete|with[^;]*insert|select[^;]*_apply\"?\\()')"
}
pg_reset() { psql_ -d postgres -c "SELECT pg_stat_statements_reset()" >/dev/null; }

RECORDS="$RUN/records.jsonl"
: >"$RECORDS"
# measure NAME DB SCENARIO METHOD PATH BODY MODE TOKEN URL...: one wrk per URL, at once,
# the connections split between them; records summed requests and the database's counts.
measure() {
    local name="$1" db="$2" scenario="$3" method="$4" path="$5" body="$6" mode="$7" token="$8"
    shift 8
    local urls=("$@") per=$((CONNECTIONS / $#)) i before after warm=() measured=() loads=()
    # Writes name a new key each (wrk.lua's "unique" mode); each wrk gets its own prefix.
    for i in "${!urls[@]}"; do
        if [[ "$mode" == unique ]]; then
            warm+=("$path-warmup$i") measured+=("$path-n$i")
        else
            warm+=("$path") measured+=("$path")
        fi
    done
    for i in "${!urls[@]}"; do
        BENCH_METHOD="$method" BENCH_TOKEN="$token" BENCH_BODY_FILE="$body" BENCH_MODE="$mode" \
            timeout -k 5 120 wrk -t"$THREADS" -c"$per" -d"$WARMUP" --timeout 5s \
            -s "$BENCH_DIR/wrk.lua" "${urls[$i]}/v1/${warm[$i]}" >/dev/null 2>&1 &
        loads+=($!)
    done
    # Only the load generators: a bare `wait` would wait for the daemons too.
    wait "${loads[@]}" || true
    loads=()
    say "  $scenario: $name ($DURATION, $CONNECTIONS connections over ${#urls[@]} node(s))"
    [[ -n "$db" ]] && { sleep 1; pg_reset; before="$(pg_counts "$db")"; }
    for i in "${!urls[@]}"; do
        BENCH_METHOD="$method" BENCH_TOKEN="$token" BENCH_BODY_FILE="$body" BENCH_MODE="$mode" \
            timeout -k 5 300 wrk -t"$THREADS" -c"$per" -d"$DURATION" --timeout 5s --latency \
            -s "$BENCH_DIR/wrk.lua" "${urls[$i]}/v1/${measured[$i]}" >"$RUN/wrk-$scenario-$name-$i.txt" 2>&1 &
        loads+=($!)
    done
    wait "${loads[@]}" || true
    local statements=null commits=null writes=null
    if [[ -n "$db" ]]; then
        statements="$(pg_counts "$db" | cut -d' ' -f1)"
        writes="$(pg_counts "$db" | cut -d' ' -f3)"
        sleep 1.5   # pg_stat_database is flushed by each server process within a second
        after="$(pg_counts "$db")"
        commits=$(( $(cut -d' ' -f2 <<<"$after") - $(cut -d' ' -f2 <<<"$before") ))
    fi
    cat "$RUN"/wrk-"$scenario"-"$name"-*.txt | grep '^BENCH ' | sed 's/^BENCH //' |
        jq -Rs --arg name "$name" --arg scenario "$scenario" --argjson nodes "${#urls[@]}" \
            --argjson statements "$statements" --argjson commits "$commits" --argjson writes "$writes" '
        [split("\n")[] | select(length > 0) | split(" ") | map(split("=") | {(.[0]): (.[1] | tonumber)}) | add] as $runs
        | ($runs | map(.requests) | add) as $requests
        | {name: $name, scenario: $scenario, nodes: $nodes, runs: ($runs | length),
           requests: $requests,
           rps: ($runs | map(.requests / (.duration_us / 1e6)) | add),
           p99_ms: ($runs | map(.p99_us) | max / 1000),
           bad: ($runs | map(.non2xx + .connect_errors + .read_errors + .write_errors + .timeouts) | add),
           statements_per_request: (if $statements == null or $requests == 0 then null else $statements / $requests end),
           write_statements_per_request: (if $writes == null or $requests == 0 then null else $writes / $requests end),
           transactions_per_request: (if $commits == null or $requests == 0 then null else $commits / $requests end)}' \
        >>"$RECORDS"
}

node_urls=()
for n in $(seq 1 "$NODES"); do node_urls+=("${URL[pg$n]}"); done
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
say "load average before measuring: $LOAD_BEFORE (on $(nproc) cores)"
for scenario in kv-read kv-write; do
    if [[ "$scenario" == kv-read ]]; then
        args=(GET secret/data/bench-key "" fixed)
    else
        args=(POST secret/data/bench "$WORK/kv-write.json" unique)
    fi
    measure redb "" "$scenario" "${args[0]}" "${args[1]}" "${args[2]}" "${args[3]}" "${TOKEN[redb]}" "${URL[redb]}"
    measure ironseal-pg-1 ironseal "$scenario" "${args[0]}" "${args[1]}" "${args[2]}" "${args[3]}" "${TOKEN[pg]}" "${URL[pg1]}"
    measure "ironseal-pg-$NODES" ironseal "$scenario" "${args[0]}" "${args[1]}" "${args[2]}" "${args[3]}" "${TOKEN[pg]}" "${node_urls[@]}"
    measure openbao-pg openbao "$scenario" "${args[0]}" "${args[1]}" "${args[2]}" "${args[3]}" "${TOKEN[bao]}" "${URL[bao]}"
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- report --------------------------------------------------------------------------
jq -s --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg load_before "$LOAD_BEFORE" \
    --arg load_after "$LOAD_AFTER" --argjson cores "$(nproc)" --arg duration "$DURATION" \
    --argjson connections "$CONNECTIONS" \
    --arg commit "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)" \
    --arg postgres "$("$PG_BIN/postgres" --version)" \
    --arg openbao "$("$BAO_BIN" version 2>/dev/null | head -n 1)" \
    '{date: $date, commit: $commit, cores: $cores, load_before: $load_before,
      load_after: $load_after, duration: $duration, connections: $connections,
      postgres: $postgres, openbao: $openbao, results: .}' "$RECORDS" >"$RESULTS/postgresql.json"
jq -r '
  def f(x): if x == null then "-" else (x * 100 | round / 100 | tostring) end;
  .results as $r
  | ($r | map(select(.name == "openbao-pg")) | map({(.scenario): .rps}) | add) as $bao
  | "date \(.date), commit \(.commit), \(.cores) cores, load \(.load_before) -> \(.load_after), \(.postgres), \(.openbao)",
    "| backend | nodes | scenario | req/s | vs OpenBao on PostgreSQL | p99 ms | statements/request | writing statements/request | transactions/request | errors |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ($r[] | "| \(.name) | \(.nodes) | \(.scenario) | \(.rps | round) | \(if $bao[.scenario] then f(.rps / $bao[.scenario]) + "x" else "-" end) | \(f(.p99_ms)) | \(f(.statements_per_request)) | \(f(.write_statements_per_request)) | \(f(.transactions_per_request)) | \(.bad) |")
' "$RESULTS/postgresql.json"
say "raw wrk output and logs: $RUN/; JSON: $RESULTS/postgresql.json"
