#!/usr/bin/env bash
# Runs the appliance in dev mode, like `vault server -dev`: plain HTTP on loopback,
# embedded storage in a temp dir, Shamir seal initialised and unsealed with one share,
# kv v2 at secret/. Prints the address, unseal key and root token.
# Extra arguments go to `ironseal server -dev`, e.g.
#   scripts/dev.sh -dev-listen-address=127.0.0.1:8300 -dev-root-token-id=root
set -euo pipefail
cd "$(dirname "$0")/.."

export IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$IRONSEAL_CACHE/target}"

bao_dir="$(scripts/install-deps.sh --print-bin-dir)"
export PATH="$bao_dir:$HOME/.cargo/bin:$PATH"

cargo build --release -p ironseal
echo "ironseal: the bao CLI is at $bao_dir/bao (add $bao_dir to PATH)" >&2
exec "$CARGO_TARGET_DIR/release/ironseal" server -dev "$@"
