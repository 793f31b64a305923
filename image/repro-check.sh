#!/usr/bin/env bash
# Checks that the daemon build is reproducible: builds the committed tree a second time and
# compares the binary's SHA-256 with the one build.sh built (or builds that one too).
#
# Usage: image/repro-check.sh [-d] [FIRST_TARGET_DIR]   (default: build.sh's target directory)
#
# Default, the full check: the second build is of an exported copy of HEAD in another
# directory, into a new target directory. It shows that neither the checkout's path, nor
# the target directory's, nor anything outside the commit reaches the binary. It costs one
# cold release build (10-20 minutes on 2 idle cores; over 90 on a loaded machine).
#
# -d, the cheaper check: the second build is of an exported copy of HEAD, seen at the first
# build's source path, into a copy of the first target directory from which every
# workspace crate's artefacts are removed; the dependencies' artefacts are reused. It shows
# that compiling the workspace crates (their build scripts: the console's embedded assets)
# and the final link (thin LTO, parallel code generation) give the same bytes, from the
# commit alone. It does not show that the dependencies compile to the same bytes, nor that
# the binary is independent of the checkout's path (both builds see the same paths; the
# path remapping of build-daemon.sh is what the full check tests). Needs a mount namespace
# (root, or unprivileged user namespaces).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SRC="$(cd "$HERE/.." && pwd -P)"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
SHARE_DEPS=0
if [[ "${1:-}" == -d ]]; then
    SHARE_DEPS=1
    shift
fi
FIRST="${1:-${IMAGE_CARGO_TARGET_DIR:-$IRONSEAL_CACHE/image/target}}"
[[ -z "$(git -C "$SRC" status --porcelain --untracked-files=no)" ]] ||
    { echo "repro-check.sh: commit first (the copy is of HEAD)" >&2; exit 1; }
EPOCH="$(git -C "$SRC" log -1 --format=%ct)"

first="$(SOURCE_DATE_EPOCH="$EPOCH" "$HERE/build-daemon.sh" "$FIRST")"
FIRST="$(cd "$FIRST" && pwd -P)"
W="$IRONSEAL_CACHE/image/repro"
rm -rf "$W"
mkdir -p "$W/src"
trap 'rm -rf "$W"' EXIT
git -C "$SRC" archive HEAD | tar -x -C "$W/src"
started="$(date +%s)"
if ((SHARE_DEPS)); then
    cp -a "$FIRST" "$W/target"
    for pkg in $(cargo metadata --manifest-path "$SRC/Cargo.toml" --no-deps --format-version 1 |
        jq -r '.packages[].name'); do
        cargo clean --manifest-path "$SRC/Cargo.toml" --target-dir "$W/target" --release \
            -p "$pkg" --quiet
    done
    ns=(unshare --mount)
    [[ $(id -u) == 0 ]] || ns=(unshare --mount --map-root-user)
    # The copies take the first build's paths, so the dependencies' fingerprints (which
    # hold the remapped paths in their flags) stay fresh.
    second="$("${ns[@]}" bash -c 'mount --make-rprivate / && mount --bind "$1" "$2" &&
        mount --bind "$3" "$4" && SOURCE_DATE_EPOCH="$5" "$2/image/build-daemon.sh" "$4"' \
        _ "$W/src" "$SRC" "$W/target" "$FIRST" "$EPOCH")"
    second="$W/target/${second#"$FIRST/"}"
    where="a copy in $W/src seen at $SRC, workspace crates rebuilt in a copy of $FIRST"
else
    second="$(SOURCE_DATE_EPOCH="$EPOCH" "$W/src/image/build-daemon.sh" "$W/target")"
    where="a copy in $W/src, target $W/target"
fi
# A fresh artefact, not the first one found up to date.
[[ "$(stat -c %Y "$second")" -ge "$started" ]] ||
    { echo "repro-check.sh: the second build did not rebuild the daemon" >&2; exit 1; }
a="$(sha256sum "$first" | cut -d' ' -f1)"
b="$(sha256sum "$second" | cut -d' ' -f1)"
echo "first:  $a  ($first)"
echo "second: $b  ($where, $(($(date +%s) - started)) s)"
[[ "$a" == "$b" ]] || { echo "repro-check.sh: the two builds differ" >&2; exit 1; }
echo "reproducible"
