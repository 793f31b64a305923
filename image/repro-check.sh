#!/usr/bin/env bash
# Checks that the daemon build is reproducible: builds the committed tree a second time,
# from an exported copy in another directory into another target directory, and compares
# the binary's SHA-256 with the one build.sh built (or builds that one too).
# Usage: image/repro-check.sh [FIRST_TARGET_DIR]   (default: build.sh's target directory)
# About one cold release build (10-20 minutes on 2 cores).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SRC="$(cd "$HERE/.." && pwd -P)"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
FIRST="${1:-${IMAGE_CARGO_TARGET_DIR:-$IRONSEAL_CACHE/image/target}}"
[[ -z "$(git -C "$SRC" status --porcelain --untracked-files=no)" ]] ||
    { echo "repro-check.sh: commit first (the copy is of HEAD)" >&2; exit 1; }

first="$("$HERE/build-daemon.sh" "$FIRST")"
W="$IRONSEAL_CACHE/image/repro"
rm -rf "$W"
mkdir -p "$W/src"
trap 'rm -rf "$W"' EXIT
git -C "$SRC" archive HEAD | tar -x -C "$W/src"
second="$(SOURCE_DATE_EPOCH="$(git -C "$SRC" log -1 --format=%ct)" \
    "$W/src/image/build-daemon.sh" "$W/target")"
a="$(sha256sum "$first" | cut -d' ' -f1)"
b="$(sha256sum "$second" | cut -d' ' -f1)"
echo "first:  $a  ($first)"
echo "second: $b  (a copy in $W/src, target $W/target)"
[[ "$a" == "$b" ]] || { echo "repro-check.sh: the two builds differ" >&2; exit 1; }
echo "reproducible"
