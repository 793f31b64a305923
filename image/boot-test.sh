#!/usr/bin/env bash
# Boots the appliance image in QEMU (KVM, OVMF) with swtpm as its TPM and checks, end to
# end, what the image promises:
#   1. first boot: initialises on the TPM, shows the recovery keys and root token once on
#      the console, serves the API on a forwarded loopback port (`bao status`, kv write
#      and read) and the web console (/ui);
#   2. power off and on: auto-unsealed by the TPM, the data is there, no keys shown again;
#      the operator authorises the PCR 15 value of version 2 (sys/seal-policy);
#   3. the same disk with a fresh TPM: stays sealed, and says why on the console and in
#      seal-status;
#   4. an update medium with version 2 attached: installed into slot B, rebooted into,
#      auto-unsealed, data kept;
#   5. a rollback medium: back on slot A (version 1), auto-unsealed, data kept, the medium
#      left in does nothing;
#   6. an update medium with a version that does not boot: installed into slot B, tried 3
#      times, then slot A boots again, auto-unsealed, data kept, and the medium left in is
#      not installed again;
#   7. then a rollback medium: it does not roll back to the version that did not boot
#      (slot B has no boot tries left), and slot A stays, unsealed.
# The VM has 1 GiB of RAM (IRONSEAL_VM_MIB), what a small appliance has: the daemon's
# locked memory must fit. Each boot's console shows the daemon's resident and locked memory.
# Usage: image/boot-test.sh [-o OUT_DIR]  (the images are built with build.sh if absent)
# Needs root (the image build); uses KVM where it can (IRONSEAL_QEMU_ACCEL=kvm|tcg forces
# one). Prints the figures recorded in image/RESULTS.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
OUT="$IRONSEAL_CACHE/image/out"
while getopts "o:" opt; do
    case "$opt" in
    o) OUT="$OPTARG" ;;
    *) sed -n '2,24p' "$0" >&2; exit 2 ;;
    esac
done
V1=1.0.0
V2=2.0.0
VM_MIB="${IRONSEAL_VM_MIB:-1024}"
BAO="${BAO_BIN:-$(command -v bao || echo "$IRONSEAL_CACHE/bin/bao")}"
[[ -x "$BAO" ]] || { echo "boot-test.sh: no bao CLI (scripts/install-deps.sh installs it)" >&2; exit 1; }
# KVM where it can run an unmodified guest. A PVM host (kvm_pvm, a nested hypervisor for
# PVM-aware guests) exposes /dev/kvm, but OVMF dies there in its first instructions and a
# stock kernel never prints: such hosts emulate (TCG), several times slower.
if [[ -z "${IRONSEAL_QEMU_ACCEL:-}" ]]; then
    if [[ -w /dev/kvm && ! -d /sys/module/kvm_pvm ]]; then
        IRONSEAL_QEMU_ACCEL=kvm
    else
        IRONSEAL_QEMU_ACCEL=tcg
    fi
fi
# Waits are scaled by SLOW: emulation on a loaded machine is many times slower.
case "$IRONSEAL_QEMU_ACCEL" in
kvm) CPU=host SLOW=1 ;;
tcg) CPU=max SLOW=4 ;;
*) echo "boot-test.sh: IRONSEAL_QEMU_ACCEL is kvm or tcg" >&2; exit 2 ;;
esac
"$HERE/deps.sh"

started=$SECONDS
log() { echo "boot-test [$((SECONDS - started))s]: $*" >&2; }
fail() { echo "boot-test: FAILED: $*" >&2; exit 1; }

for v in "$V1" "$V2"; do
    if [[ ! -f "$OUT/ironseal-$v.img" ]]; then
        log "building image $v"
        "$HERE/build.sh" -o "$OUT" -V "$v"
    fi
done

W="$(mktemp -d "$IRONSEAL_CACHE/image/boot-test.XXXXXX")"
QEMU_PID="" SWTPM_PID=""
cleanup() {
    local pid
    for pid in $QEMU_PID $SWTPM_PID; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ "${KEEP:-0}" == 1 ]]; then echo "boot-test: kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
cp --sparse=always "$OUT/ironseal-$V1.img" "$W/disk.img"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/vars.fd"
mkdir "$W/tpm-1" "$W/tpm-2"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export VAULT_ADDR="https://127.0.0.1:$PORT" VAULT_SKIP_VERIFY=true
unset VAULT_TOKEN BAO_TOKEN

# A medium for the update-medium service: an ext4 file system labelled IRONSEAL-UPD.
make_medium() {
    local name=$1 dir="$W/medium-$1"
    mkdir -p "$dir"
    shift
    "$@" "$dir"
    mkfs.ext4 -q -F -L IRONSEAL-UPD -d "$dir" "$W/$name.img" "$(($(du -sm "$dir" | cut -f1) + 64))M"
    rm -rf "$dir"
}
put_bundle() { cp "$OUT/ironseal-$V2.update.tar" "$1/ironseal-update.tar"; }
# Version 3, which does not boot: version 2's bundle (its kernel, and its PCR 15
# measurement, authorised in step 2) with a slot that holds no file system, so its boots
# stop in the initramfs, which reboots (panic=10).
V3=3.0.0
put_bad_bundle() {
    local b="$W/bad-bundle" members
    mkdir "$b"
    members="$(tar -tf "$OUT/ironseal-$V2.update.tar")"
    tar -xf "$OUT/ironseal-$V2.update.tar" -C "$b"
    echo "$V3" >"$b/version"
    head -c $((4 * 1024 * 1024)) /dev/zero | zstd -q >"$b/root.ext4.zst"
    # shellcheck disable=SC2086 # the member names, as install_bundle reads them
    tar -cf "$1/ironseal-update.tar" -C "$b" $members
    rm -rf "$b"
}
put_rollback() { touch "$1/rollback"; }

BOOT=0
# boot TPM_STATE [MEDIUM_IMG]: starts swtpm and QEMU; the console goes to $W/console-N.log.
boot() {
    local tpm=$1 medium=${2:-}
    BOOT=$((BOOT + 1))
    CONSOLE="$W/console-$BOOT.log"
    rm -f "$W/swtpm.sock"
    swtpm socket --tpm2 --tpmstate "dir=$tpm" --ctrl "type=unixio,path=$W/swtpm.sock" \
        --terminate --log "file=$W/swtpm.log" &
    SWTPM_PID=$!
    local deadline=$((SECONDS + 10))
    until [[ -S "$W/swtpm.sock" ]]; do
        ((SECONDS < deadline)) || fail "swtpm did not start (see $W/swtpm.log)"
        sleep 0.1
    done
    local extra=()
    [[ -z "$medium" ]] || extra=(-drive "if=virtio,format=raw,readonly=on,file=$medium")
    BOOT_STARTED=$SECONDS
    qemu-system-x86_64 -machine "q35,accel=$IRONSEAL_QEMU_ACCEL" -cpu "$CPU" -smp 2 -m "$VM_MIB" -nodefaults \
        -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
        -drive "if=pflash,format=raw,unit=1,file=$W/vars.fd" \
        -drive "if=virtio,format=raw,file=$W/disk.img" "${extra[@]}" \
        -chardev "socket,id=chrtpm,path=$W/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm \
        -device tpm-tis,tpmdev=tpm0 \
        -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$PORT-:8200" -device virtio-net-pci,netdev=n0 \
        -serial "file:$CONSOLE" -display none -vga none \
        -monitor "unix:$W/monitor.sock,server,nowait" &
    QEMU_PID=$!
    log "boot $BOOT ($IRONSEAL_QEMU_ACCEL, qemu $QEMU_PID, console $CONSOLE)"
}

monitor() {
    python3 - "$W/monitor.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
s.recv(4096)
PY
}

# Clean power-off through the ACPI power button; a hard stop after two minutes (scaled).
# The button is pressed again every 15 s (scaled), and the log counts the presses. A press
# during the shutdown does nothing. Three times so far the guest took minutes to power
# off (twice past the deadline), two of them right after the update-medium service had
# run; pressing again did not hurry it (off after 6 minutes and 7 presses). Why is not
# known.
power_off() {
    local deadline=$((SECONDS + 120 * SLOW)) press=$SECONDS presses=0
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "no clean power-off in time ($presses presses): stopping QEMU"
            monitor quit || kill "$QEMU_PID"
        elif ((SECONDS >= press)); then
            monitor system_powerdown || true
            presses=$((presses + 1)) press=$((SECONDS + 15 * SLOW))
            ((presses == 1)) || log "power button pressed again ($presses)"
        fi
        sleep 0.5
    done
    wait "$QEMU_PID" 2>/dev/null || true
    wait "$SWTPM_PID" 2>/dev/null || true
    QEMU_PID="" SWTPM_PID=""
}

# console_count PATTERN: how many console lines of this QEMU run match PATTERN (extended
# regex); 0 before the console exists.
console_count() {
    local n
    n="$(grep -acE -- "$1" "$CONSOLE" 2>/dev/null)" || true
    echo "${n:-0}"
}

# wait_console PATTERN SECONDS [COUNT]: until the console shows PATTERN COUNT times (default
# once; a QEMU run that reboots shows each boot's lines again).
wait_console() {
    local pattern=$1 deadline=$((SECONDS + $2 * SLOW)) count=${3:-1}
    until (($(console_count "$pattern") >= count)); do
        kill -0 "$QEMU_PID" 2>/dev/null || fail "QEMU exited before the console showed /$pattern/ $count time(s) (see $CONSOLE)"
        ((SECONDS < deadline)) || fail "the console did not show /$pattern/ $count time(s) within $(($2 * SLOW)) s (see $CONSOLE)"
        sleep 0.5
    done
}

# The API answers (any seal state); prints the seconds since QEMU started.
wait_api() {
    local deadline=$((SECONDS + 300 * SLOW))
    until curl -sk -o /dev/null "https://127.0.0.1:$PORT/v1/sys/seal-status"; do
        kill -0 "$QEMU_PID" 2>/dev/null || fail "QEMU exited before the API answered (see $CONSOLE)"
        ((SECONDS < deadline)) || fail "no API on 127.0.0.1:$PORT within $((300 * SLOW)) s (see $CONSOLE)"
        sleep 0.5
    done
    echo $((SECONDS - BOOT_STARTED))
}

seal_status() { curl -sk "https://127.0.0.1:$PORT/v1/sys/seal-status"; }

# daemon_memory [N]: the daemon's memory as the console showed it the Nth time (firstboot
# prints it once settled, on every boot of this QEMU run; default: the first).
daemon_memory() {
    local n=${1:-1}
    wait_console 'daemon memory: ' 60 "$n"
    grep -a 'daemon memory: ' "$CONSOLE" | sed -n "${n}p" | sed 's/.*daemon memory: //' | tr -d '\r'
}

wait_unsealed() {
    local deadline=$((SECONDS + 120 * SLOW))
    until [[ "$(seal_status | jq -r .sealed)" == false ]]; do
        ((SECONDS < deadline)) || fail "not unsealed within $((120 * SLOW)) s: $(seal_status) (see $CONSOLE)"
        sleep 0.5
    done
}

# The certificate the API serves is the one whose fingerprint the console showed.
check_fingerprint() {
    local shown served
    shown="$(grep -a 'TLS certificate SHA-256 fingerprint' "$CONSOLE" | tail -1 | awk '{ print $NF }' | tr -d '\r')"
    served="$(openssl s_client -connect "127.0.0.1:$PORT" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)"
    [[ -n "$shown" && "$shown" == "$served" ]] ||
        fail "the console showed fingerprint '$shown', the API serves '$served'"
}

# ---- 1. first boot ----------------------------------------------------------------------
boot "$W/tpm-1"
FIRST_API="$(wait_api)"
wait_console 'unsealed by the TPM' 180
ROOT_TOKEN="$(grep -a 'Initial Root Token:' "$CONSOLE" | awk '{ print $NF }' | tr -d '\r')"
[[ -n "$ROOT_TOKEN" ]] || fail "no root token on the console"
[[ "$(grep -ac 'Recovery Key [0-9]:' "$CONSOLE")" == 5 ]] || fail "the console did not show 5 recovery keys"
check_fingerprint
MEMORY_1="$(daemon_memory)"
export VAULT_TOKEN="$ROOT_TOKEN"
"$BAO" status >"$W/status-1.txt" || fail "bao status: $(cat "$W/status-1.txt")"
grep -Eq '^Sealed +false' "$W/status-1.txt" || fail "bao status: $(cat "$W/status-1.txt")"
grep -Eq '^Seal Type +tpm2' "$W/status-1.txt" || fail "not the tpm2 seal: $(cat "$W/status-1.txt")"
"$BAO" secrets enable -path=secret -version=2 kv >/dev/null
"$BAO" kv put secret/boot-test value=written-on-first-boot >/dev/null
[[ "$("$BAO" kv get -field=value secret/boot-test)" == written-on-first-boot ]] || fail "kv read"
UI_PAGE="$(curl -skf "https://127.0.0.1:$PORT/ui/")" || fail "no web console at /ui/"
grep -q '<title>Ironseal console</title>' <<<"$UI_PAGE" || fail "/ui/ is not the console's page"
log "first boot: API after ${FIRST_API}s, initialised, kv written, console served; daemon memory: $MEMORY_1"
power_off

# ---- 2. reboot: auto-unseal -------------------------------------------------------------
boot "$W/tpm-1"
SECOND_API="$(wait_api)"
wait_unsealed
UNSEALED_AT=$((SECONDS - BOOT_STARTED))
[[ "$("$BAO" kv get -field=value secret/boot-test)" == written-on-first-boot ]] || fail "data lost after reboot"
wait_console 'unsealed by the TPM' 60
! grep -aq 'Recovery Key' "$CONSOLE" || fail "the recovery keys were shown again"
check_fingerprint
MEMORY_2="$(daemon_memory)"
PCR15_V2="$(awk '$1 == "pcr15-after-boot" { print $2 }' "$OUT/ironseal-$V2.manifest")"
"$BAO" write sys/seal-policy/authorize-pcrs "pcrs=15=$PCR15_V2" >/dev/null
log "reboot: API after ${SECOND_API}s, auto-unsealed after ${UNSEALED_AT}s, data there; PCR 15 of $V2 authorised; daemon memory: $MEMORY_2"
power_off

# ---- 3. a fresh TPM: stays sealed -------------------------------------------------------
boot "$W/tpm-2"
wait_api >/dev/null
wait_console 'SEALED: ' 120
SEAL_ERROR="$(seal_status | jq -r '.seal_error // empty')"
[[ "$(seal_status | jq -r .sealed)" == true && -n "$SEAL_ERROR" ]] || fail "fresh TPM: $(seal_status)"
if "$BAO" kv get secret/boot-test >/dev/null 2>&1; then fail "read data with a fresh TPM"; fi
log "fresh TPM: sealed, seal_error: $SEAL_ERROR"
log "console: $(grep -a 'SEALED: ' "$CONSOLE" | tr -d '\r')"
power_off

# ---- 4. update to version 2 from a medium -----------------------------------------------
make_medium update put_bundle
boot "$W/tpm-1" "$W/update.img"
wait_console "slot B \\($V2\\) boots next" 300
UPDATE_SWITCH=$SECONDS
wait_console "version $V2" 300
wait_unsealed
[[ "$("$BAO" kv get -field=value secret/boot-test)" == written-on-first-boot ]] || fail "data lost in the update"
wait_console "$V2 is running already" 120
MEMORY_4="$(daemon_memory 2)"
log "update: $V2 on slot B, auto-unsealed $((SECONDS - UPDATE_SWITCH))s after the switch, data kept; daemon memory: $MEMORY_4"
"$BAO" kv put secret/boot-test value=written-on-v2 >/dev/null
power_off

# ---- 5. rollback to version 1 from a medium ---------------------------------------------
make_medium rollback put_rollback
boot "$W/tpm-1" "$W/rollback.img"
wait_console 'slot A \(.*\) boots next' 300
ROLLBACK_SWITCH=$SECONDS
wait_console "version $V1" 300
wait_unsealed
[[ "$("$BAO" kv get -field=value secret/boot-test)" == written-on-v2 ]] || fail "data lost in the rollback"
wait_console 'nothing to roll back to' 120
MEMORY_5="$(daemon_memory 2)"
log "rollback: $V1 on slot A, auto-unsealed $((SECONDS - ROLLBACK_SWITCH))s after the switch, data kept, the medium left in does nothing; daemon memory: $MEMORY_5"
power_off

# ---- 6. a version that does not boot: three tries, then the previous slot ---------------
make_medium bad put_bad_bundle
boot "$W/tpm-1" "$W/bad.img"
wait_console "slot B \\($V3\\) boots next" 300
FAILED_SWITCH=$SECONDS
# The console of this QEMU run: the boot that installs, three tries of slot B, slot A.
wait_console "serving on port 8200 \\(version $V1\\)" 900 2
wait_unsealed
[[ "$("$BAO" kv get -field=value secret/boot-test)" == written-on-v2 ]] || fail "data lost after the failed update"
wait_console "$V3 did not boot on slot B" 120
BOOTS="$(console_count 'BdsDxe: starting Boot')"
[[ "$BOOTS" == 5 ]] || fail "$BOOTS boots in this run, not 5 (the install, 3 tries of slot B, slot A; see $CONSOLE)"
log "failed update: $V3 tried 3 times on slot B, then $V1 on slot A, auto-unsealed $((SECONDS - FAILED_SWITCH))s after the switch, data kept, the medium left in is not installed again"
power_off

# ---- 7. a rollback medium after the failed update: refused ------------------------------
boot "$W/tpm-1" "$W/rollback.img"
wait_console "slot B \\($V3\\) did not boot \\(no boot tries left\\): nothing to roll back to" 300
wait_unsealed
wait_console "serving on port 8200 \\(version $V1\\)" 60
BOOTS="$(console_count 'BdsDxe: starting Boot')"
[[ "$BOOTS" == 1 ]] || fail "$BOOTS boots in this run, not 1: the rollback medium rebooted (see $CONSOLE)"
[[ "$("$BAO" kv get -field=value secret/boot-test)" == written-on-v2 ]] || fail "data lost"
log "rollback after the failed update: refused ($V3 on slot B has no boot tries left), $V1 on slot A stays, unsealed"
power_off

IMG_SIZE="$(du -h --apparent-size "$OUT/ironseal-$V1.img" | cut -f1)"
IMG_USED="$(du -h "$OUT/ironseal-$V1.img" | cut -f1)"
BUNDLE="$(du -h "$OUT/ironseal-$V2.update.tar" | cut -f1)"
log "PASSED in $((SECONDS - started))s ($VM_MIB MiB VM): image $IMG_SIZE ($IMG_USED used), update bundle $BUNDLE, first boot API ${FIRST_API}s, reboot API ${SECOND_API}s"
