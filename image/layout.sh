# The disk layout and the helpers build.sh and boot-test.sh share (sourced, not run).
#
#   p1 esp            FAT32   systemd-boot, loader entries, each slot's kernel + initrd
#   p2 ironseal-a     ext4    system slot A (read-only root)
#   p3 ironseal-b     ext4    system slot B (written by updates)
#   p4 ironseal-data  ext4    /var/lib/ironseal: storage, generated TLS, sealed root key
# Partitions are found by GPT name (PARTLABEL), so slots need no UUID bookkeeping.

ESP_MIB=256
SLOT_MIB=1280
DATA_MIB=512
# Fixed ids: the data partition outlives slots, so every image must agree on its owner.
IRONSEAL_UID=800
IRONSEAL_GID=800
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
LINUX_TYPE=0FC63DAF-8483-4772-8E79-3D69D8477DE4

# The first deb line of the machine's apt sources (deb822 or one-line format).
apt_mirror() {
    local m
    m="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
    [[ -n "$m" ]] || m="$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
    echo "${m:-http://deb.debian.org/debian}"
}

# The kernel command line of a slot's entry, @SLOT@ standing for a or b. The last
# console= is /dev/console: the serial port, where the first boot shows its keys. A panic
# reboots (the boot counter then falls back to the other slot) instead of hanging;
# no_timer_check skips the early IO-APIC timer probe, which a slow or overloaded
# hypervisor fails ("IO-APIC + timer doesn't work!", a panic at 0.05 s).
ENTRY_OPTIONS="root=PARTLABEL=ironseal-@SLOT@ ro rootwait ironseal.slot=@SLOT@ quiet systemd.show_status=error panic=10 no_timer_check console=tty0 console=ttyS0,115200"

# A loader entry for `slot` (a or b) of image `version`, with 3 boot tries: systemd-boot
# counts them down, systemd-bless-boot drops the counter once the appliance is up, and an
# entry out of tries sorts last, so the other slot boots.
loader_entry() {
    local slot=$1 version=$2
    cat <<ENTRY
title      Ironseal $version (slot ${slot^^})
version    $version
sort-key   ironseal
linux      /$slot/vmlinuz
initrd     /$slot/initrd.img
options    ${ENTRY_OPTIONS//@SLOT@/$slot}
ENTRY
}

# make_disk IMG WORK VERSION: lays out the GPT disk; WORK holds root.ext4 and boot/.
make_disk() {
    local img=$1 work=$2 version=$3
    local total=$((1 + ESP_MIB + 2 * SLOT_MIB + DATA_MIB + 1))
    rm -f "$img"
    truncate -s "${total}M" "$img"
    sfdisk -q "$img" <<SFDISK
label: gpt
size=${ESP_MIB}MiB, type=$ESP_TYPE, name="esp"
size=${SLOT_MIB}MiB, type=$LINUX_TYPE, name="ironseal-a"
size=${SLOT_MIB}MiB, type=$LINUX_TYPE, name="ironseal-b"
size=${DATA_MIB}MiB, type=$LINUX_TYPE, name="ironseal-data"
SFDISK
    local starts
    mapfile -t starts < <(sfdisk -J "$img" | jq -r '.partitiontable.partitions[].start')

    local esp="$work/esp.img"
    rm -f "$esp"
    mkfs.vfat -F 32 -n ESP -C "$esp" $((ESP_MIB * 1024)) >/dev/null
    mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/systemd ::/loader ::/loader/entries ::/a ::/b
    mcopy -i "$esp" "$work/boot/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "$esp" "$work/boot/systemd-bootx64.efi" ::/EFI/systemd/systemd-bootx64.efi
    mcopy -i "$esp" "$work/boot/vmlinuz" "$work/boot/initrd.img" ::/a/
    printf 'timeout 0\neditor no\nauto-entries no\nauto-firmware no\nrandom-seed-mode off\n' \
        >"$work/loader.conf"
    mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
    loader_entry a "$version" >"$work/entry.conf"
    mcopy -i "$esp" "$work/entry.conf" "::/loader/entries/ironseal-a+3.conf"

    local data="$work/data.ext4"
    rm -f "$data"
    mkfs.ext4 -q -F -L ironseal-data -E "root_owner=$IRONSEAL_UID:$IRONSEAL_GID" \
        "$data" "${DATA_MIB}M"

    dd if="$esp" of="$img" bs=512 seek="${starts[0]}" conv=notrunc,sparse status=none
    dd if="$work/root.ext4" of="$img" bs=512 seek="${starts[1]}" conv=notrunc,sparse status=none
    dd if="$data" of="$img" bs=512 seek="${starts[3]}" conv=notrunc,sparse status=none
    rm -f "$esp" "$data"
}
