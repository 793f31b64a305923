#!/usr/bin/env bash
# Configures a freshly debootstrapped root ($1) into the appliance's base system: the
# daemon's user, no login anywhere, a volatile journal, a zstd initrd, no package caches.
# Run by build.sh before the base is cached; what changes per build is in rootfs/.
set -euo pipefail
ROOT=$1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=layout.sh
. "$HERE/layout.sh"

in_root() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }

in_root groupadd --system --gid "$IRONSEAL_GID" ironseal
# tss owns /dev/tpmrm0 (tpm-udev); the daemon reaches the TPM through that group.
in_root getent group tss >/dev/null || in_root groupadd --system tss
in_root useradd --system --uid "$IRONSEAL_UID" --gid ironseal --groups tss \
    --home-dir /var/lib/ironseal --no-create-home --shell /usr/sbin/nologin ironseal
# No password works for root, and no getty asks for one: the console only shows output.
in_root usermod --password '!*' root
for unit in getty@.service serial-getty@.service console-getty.service \
    container-getty@.service autovt@.service debug-shell.service; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
echo ironseal >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 ironseal\n' >"$ROOT/etc/hosts"

# A small initrd; modules for any disk the appliance may boot from.
printf 'COMPRESS=zstd\nMODULES=most\n' >"$ROOT/etc/initramfs-tools/conf.d/ironseal.conf"
mount -t proc proc "$ROOT/proc"
trap 'umount -l "$ROOT/proc"' EXIT
in_root update-initramfs -u -k all >/dev/null 2>&1

in_root apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/log/journal \
    "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*
