#!/usr/bin/env bash
# Builds the release `ironseal` daemon reproducibly: the same commit gives the same binary,
# whatever the checkout or target directory. Paths that would otherwise end up in the
# binary (panic locations, line tables, C sources of -sys crates) are rewritten to fixed
# prefixes, and SOURCE_DATE_EPOCH is the commit's time (or the one given, for a tree
# without git).
# Usage: image/build-daemon.sh [TARGET_DIR]   (default $CARGO_TARGET_DIR or target/)
# Prints the path of the built binary on stdout.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TARGET="${1:-${CARGO_TARGET_DIR:-$SRC/target}}"
mkdir -p "$TARGET"
TARGET="$(cd "$TARGET" && pwd -P)"
CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"

SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$SRC" log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH
remap="--remap-path-prefix=$SRC=/build/ironseal --remap-path-prefix=$TARGET=/build/target"
remap+=" --remap-path-prefix=$CARGO_HOME=/build/cargo"
export RUSTFLAGS="$remap"
prefix_map="-ffile-prefix-map=$SRC=/build/ironseal -ffile-prefix-map=$TARGET=/build/target"
prefix_map+=" -ffile-prefix-map=$CARGO_HOME=/build/cargo"
export CFLAGS="-O2 $prefix_map" CXXFLAGS="-O2 $prefix_map"
export CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$TARGET"

cd "$SRC"
cargo build --locked --release -p ironseal >&2
echo "$TARGET/release/ironseal"
