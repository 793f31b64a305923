#!/usr/bin/env bash
# Builds the appliance disk image: a minimal Debian bookworm (debootstrap, from this
# machine's apt sources) with the release `ironseal` daemon, booted by systemd-boot (UEFI)
# from a GPT disk with an ESP, two system slots (A and B) and a data partition.
#
# Usage: image/build.sh [-o OUT_DIR] [-V VERSION]
#   OUT_DIR  default $IRONSEAL_CACHE/image/out (IRONSEAL_CACHE defaults to /var/tmp/ironseal)
#   VERSION  the image version (default: `git describe`); a later version is an update.
# IMAGE_CARGO_TARGET_DIR sets the daemon's target directory (default
# $IRONSEAL_CACHE/image/target).
# Writes to OUT_DIR:
#   ironseal-VERSION.img          the disk to flash or boot (sparse; slot A holds VERSION)
#   ironseal-VERSION.update.tar   the update bundle `ironseal-update` installs into the
#                                 inactive slot of a running appliance
#   ironseal-VERSION.manifest     every package and version, and the daemon's SHA-256
#   ironseal-VERSION.security     `systemd-analyze security` of the unit (score at the end)
# Needs root (debootstrap, chroot). The base system is cached in $IRONSEAL_CACHE/image,
# keyed by the package list, the mirror and base.sh, so a second version reuses it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
SRC="$(cd "$HERE/.." && pwd -P)"
IRONSEAL_CACHE="${IRONSEAL_CACHE:-/var/tmp/ironseal}"
OUT="$IRONSEAL_CACHE/image/out"
VERSION=""
while getopts "o:V:" opt; do
    case "$opt" in
    o) OUT="$OPTARG" ;;
    V) VERSION="$OPTARG" ;;
    *) sed -n '2,19p' "$0" >&2; exit 2 ;;
    esac
done
VERSION="${VERSION:-$(git -C "$SRC" describe --always --dirty)}"
[[ "$VERSION" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "build.sh: bad version $VERSION" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "build.sh: needs root (debootstrap, chroot)" >&2; exit 1; }

# shellcheck source=layout.sh
. "$HERE/layout.sh"
started=$SECONDS
log() { echo "build.sh [$((SECONDS - started))s]: $*" >&2; }

"$HERE/deps.sh"
mkdir -p "$OUT" "$IRONSEAL_CACHE/image"
WORK="$(mktemp -d "$IRONSEAL_CACHE/image/work.XXXXXX")"
cleanup() {
    for m in proc sys dev; do umountpoint_quiet "$WORK/root/$m"; done
    rm -rf "$WORK"
}
umountpoint_quiet() { if mountpoint -q "$1" 2>/dev/null; then umount -l "$1"; fi; }
trap cleanup EXIT

# ---- the base system (cached) -----------------------------------------------------------
PACKAGES=(
    systemd systemd-sysv systemd-boot udev dbus kmod
    linux-image-amd64 initramfs-tools zstd
    tpm2-tools libtss2-tcti-device0 libtss2-esys-3.0.2-0 libtss2-tctildr0
    curl jq e2fsprogs
)
MIRROR="$(apt_mirror)"
base_key="$( { printf '%s\n' "${PACKAGES[@]}" "$MIRROR"; cat "$HERE/base.sh"; } |
    sha256sum | cut -c1-16)"
BASE="$IRONSEAL_CACHE/image/base-$base_key.tar"
if [[ ! -f "$BASE" ]]; then
    log "debootstrap bookworm from $MIRROR (cached as $BASE)"
    rm -f "$IRONSEAL_CACHE"/image/base-*.tar
    debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        bookworm "$WORK/root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -30 "$WORK/debootstrap.log" >&2; exit 1; }
    "$HERE/base.sh" "$WORK/root"
    tar -C "$WORK/root" --numeric-owner --xattrs -cf "$BASE.tmp" .
    mv "$BASE.tmp" "$BASE"
    rm -rf "$WORK/root"
fi
mkdir "$WORK/root"
tar -C "$WORK/root" --numeric-owner --xattrs -xf "$BASE"
ROOT="$WORK/root"

# ---- the daemon -----------------------------------------------------------------------
# IRONSEAL_DAEMON: a daemon built elsewhere (to try the image while a release build runs;
# the manifest records its hash).
if [[ -n "${IRONSEAL_DAEMON:-}" ]]; then
    DAEMON="$IRONSEAL_DAEMON"
else
    log "building the release daemon"
    DAEMON="$("$HERE/build-daemon.sh" "${IMAGE_CARGO_TARGET_DIR:-$IRONSEAL_CACHE/image/target}")"
fi
DAEMON_SHA256="$(sha256sum "$DAEMON" | cut -d' ' -f1)"
log "daemon sha256 $DAEMON_SHA256"

# ---- the appliance on top ---------------------------------------------------------------
log "installing the daemon and its units"
install -m 0755 "$DAEMON" "$ROOT/usr/bin/ironseal"
install -m 0644 "$HERE/ironseal.service" "$ROOT/etc/systemd/system/ironseal.service"
cp -r "$HERE/rootfs/." "$ROOT/"
mkdir -p "$ROOT/efi" "$ROOT/var/lib/ironseal"
chmod 0755 "$ROOT"/usr/lib/ironseal/* "$ROOT/usr/sbin/ironseal-update"
chown -R root:root "$ROOT/etc/ironseal"
chmod 0750 "$ROOT/etc/ironseal" && chgrp "$IRONSEAL_GID" "$ROOT/etc/ironseal"
chmod 0640 "$ROOT/etc/ironseal/ironseal.hcl" && chgrp "$IRONSEAL_GID" "$ROOT/etc/ironseal/ironseal.hcl"
echo "$VERSION" >"$ROOT/usr/lib/ironseal/version"
printf 'IMAGE_ID=ironseal\nIMAGE_VERSION=%s\n' "$VERSION" >>"$ROOT/usr/lib/os-release"
systemctl --quiet --root="$ROOT" enable ironseal.service ironseal-measure.service \
    ironseal-firstboot.service ironseal-boot-ok.service ironseal-update-medium.service >/dev/null
# What the slot measures into PCR 15 at boot (image/rootfs/usr/lib/ironseal/measure).
MEASURED="$(chroot "$ROOT" /usr/lib/ironseal/measure --print)"
PCR15="$(chroot "$ROOT" /usr/sbin/ironseal-update pcr15 "$MEASURED")"

# ---- manifest and unit score ------------------------------------------------------------
log "manifest and unit security score"
{
    echo "# ironseal image $VERSION, built $(date -u +%FT%TZ) from $(git -C "$SRC" rev-parse HEAD)"
    echo "ironseal-daemon sha256:$DAEMON_SHA256"
    echo "pcr15-measurement sha256:$MEASURED"
    echo "pcr15-after-boot $PCR15"
    chroot "$ROOT" dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' | sort
} >"$OUT/ironseal-$VERSION.manifest"
systemd-analyze security --offline=yes --root="$ROOT" ironseal.service \
    >"$OUT/ironseal-$VERSION.security" 2>&1 || true
log "$(grep -i 'overall exposure' "$OUT/ironseal-$VERSION.security" || echo 'no security score')"

# ---- boot files, then strip what an appliance must not carry ----------------------------
mkdir -p "$WORK/boot"
cp "$ROOT"/boot/vmlinuz-* "$WORK/boot/vmlinuz"
cp "$ROOT"/boot/initrd.img-* "$WORK/boot/initrd.img"
cp "$ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$WORK/boot/"
rm -rf "$ROOT"/boot/* "$ROOT"/var/cache/apt/* "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/log/* "$ROOT"/tmp/* "$ROOT"/dev/*
: >"$ROOT/etc/machine-id"

log "file systems and disk"
mkfs.ext4 -q -F -L "ironseal-root" -d "$ROOT" "$WORK/root.ext4" "${SLOT_MIB}M"
echo "$MEASURED" >"$WORK/boot/measured"
echo "$VERSION" >"$WORK/boot/version"
echo "$ENTRY_OPTIONS" >"$WORK/boot/options"
zstd -q -T0 -6 "$WORK/root.ext4" -o "$WORK/boot/root.ext4.zst"
tar -C "$WORK/boot" -cf "$OUT/ironseal-$VERSION.update.tar" \
    version measured options vmlinuz initrd.img root.ext4.zst
make_disk "$OUT/ironseal-$VERSION.img" "$WORK" "$VERSION"
log "before updating to this version, authorise its PCR 15: ironseal operator authorize-pcrs -pcrs=15=$PCR15"
log "done: $OUT/ironseal-$VERSION.img ($(du -h --apparent-size "$OUT/ironseal-$VERSION.img" | cut -f1) apparent, $(du -h "$OUT/ironseal-$VERSION.img" | cut -f1) used), update bundle $(du -h "$OUT/ironseal-$VERSION.update.tar" | cut -f1)"
