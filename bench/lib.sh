# What the benchmark scripts share: stopping a process, picking loopback ports, waiting
# for a server to answer. Sourced; the caller defines `die` and sets `RUN` (where each
# server's log is `$RUN/<name>.log`).

# stop_pid PID: TERM, up to 5 s to exit, then KILL; nothing for an empty or gone PID.
stop_pid() {
    local pid="$1"
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

USED_PORTS=" "
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A port P with P and P+1 free on loopback (bao's dev cluster listener takes P+1), not
# handed out before by this script.
pick_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        [[ "$USED_PORTS" == *" $p "* || "$USED_PORTS" == *" $((p + 1)) "* ]] && continue
        if port_free "$p" && port_free $((p + 1)); then
            USED_PORTS+="$p $((p + 1)) "
            echo "$p"
            return 0
        fi
    done
    die "no free loopback port found"
}

# wait_ready NAME PID URL SECONDS [any]: poll URL until it answers 2xx (with `any`, any
# HTTP answer: an uninitialised node answers 501), the process dies, or the deadline
# passes.
wait_ready() {
    local name="$1" pid="$2" url="$3" deadline=$((SECONDS + $4)) fail=-f
    [[ "${5:-}" == any ]] && fail=
    until curl $fail -sS --max-time 2 -o /dev/null "$url" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$RUN/$name.log" >&2; die "$name exited during start-up (log: $RUN/$name.log)"; }
        ((SECONDS < deadline)) || die "$name not ready after $4 s at $url (log: $RUN/$name.log)"
        sleep 0.2
    done
}
