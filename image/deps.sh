#!/usr/bin/env bash
# Installs what building and boot-testing the appliance image needs on a Debian host:
# debootstrap (the root file system), the partitioning and file-system tools that lay out
# the disk without mounting anything, QEMU + OVMF (UEFI) and swtpm (the vTPM) for the boot
# test. Idempotent: when everything is there it only checks, in well under a second.
set -euo pipefail

APT_PACKAGES=(
    debootstrap fdisk e2fsprogs dosfstools mtools zstd
    qemu-system-x86 ovmf swtpm swtpm-tools tpm2-tools curl jq openssl
)

missing=()
installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null |
    awk '$4 == "installed" { print $1 }')" || true
for pkg in "${APT_PACKAGES[@]}"; do
    grep -qx -- "$pkg" <<<"$installed" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

echo "image/deps.sh: installing apt packages: ${missing[*]}" >&2
SUDO=()
if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "image/deps.sh: need root to install" >&2; exit 1; }
    SUDO=(sudo)
fi
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
