#!/usr/bin/env bash
# Boots Debian 12's own kernel under qemu and runs one command inside it, on the host's root
# (read-only over 9p) with the kernel's sound drivers and rdmix's copy-only test driver at
# hand. The command's output and exit status come back as this script's own.
#
#   bash tests/vm/vm.sh [--timeout S] -- COMMAND...
#
# The first run installs qemu-system-x86, busybox-static, cpio, kmod and the kernel's headers,
# and unpacks the kernel (apt-get download + dpkg -x: no kernel is installed on the host) into
# $RDMIX_VM_CACHE (default /var/cache/rdmix-vm). It uses KVM where a KVM boot works, and TCG
# otherwise; the probe's answer is kept in the cache.
#
# RDMIX_VM_QEMU_ARGS adds devices (say, an HDA controller and codec); RDMIX_VM_APPEND adds
# kernel options.
#
# Inside the guest: the host's root is /, with /tmp and /run on tmpfs; the results directory
# ($RDMIX_VM_RESULTS, default target/vm/results) is writable; RDMIX_VM_MODULES names the
# unpacked modules tree for `modprobe -d`, RDMIX_VM_KVER the kernel, and RDMIX_VM_KMOD the
# test driver's .ko.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
timeout_s=900
while (($#)); do
    case "$1" in
    --timeout) timeout_s=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
    esac
done
(($#)) || { echo "vm: usage: vm.sh [--timeout S] -- COMMAND..." >&2; exit 2; }

cache=${RDMIX_VM_CACHE:-/var/cache/rdmix-vm}
results=${RDMIX_VM_RESULTS:-$repo/target/vm/results}
die() { echo "vm: $*" >&2; exit 1; }

need_debs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages ${missing[*]}: run as root, or install them"
    echo "vm: installing ${missing[*]}" >&2
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
        die "cannot install ${missing[*]} with apt-get"
}

# The kernel: the one linux-image-amd64 names today, or the one already unpacked.
kernel() {
    mkdir -p "$cache"
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    if [ -z "$pkg" ]; then
        pkg=$(cd "$cache" && ls -d linux-image-*/ 2>/dev/null | head -1 | tr -d /)
        [ -n "$pkg" ] || die "no kernel package: apt-cache names no linux-image-amd64 dependency, and $cache holds none"
    fi
    kver=${pkg#linux-image-}
    kroot=$cache/$pkg
    if [ ! -e "$kroot/boot/vmlinuz-$kver" ]; then
        echo "vm: fetching $pkg" >&2
        local dl
        dl=$(mktemp -d "$cache/dl.XXXXXX")
        (cd "$dl" && apt-get download -qq "$pkg" >/dev/null 2>&1) || die "apt-get download $pkg failed"
        rm -rf "$kroot.tmp"
        dpkg -x "$dl"/*.deb "$kroot.tmp" || die "dpkg -x of $pkg failed"
        depmod -b "$kroot.tmp" "$kver" || die "depmod over $pkg failed"
        mv "$kroot.tmp" "$kroot"
        rm -rf "$dl"
    fi
    need_debs "linux-headers-$kver"
}

# rdmix's copy-only test driver, built against that kernel's headers when its source changes.
test_driver() {
    local src=$here/kmod out=$cache/kmod-$kver
    kmod=$out/snd-rdmixtest.ko
    if [ ! -e "$kmod" ] || [ "$src/snd-rdmixtest.c" -nt "$kmod" ]; then
        rm -rf "$out"
        mkdir -p "$out"
        cp "$src/snd-rdmixtest.c" "$src/Kbuild" "$out/"
        make -s -C "/usr/src/linux-headers-$kver" M="$out" modules >"$out/build.log" 2>&1 ||
            { cat "$out/build.log" >&2; die "the test driver does not build against $kver"; }
    fi
}

# An initramfs of busybox and the modules that reach the host's root: virtio and 9p. The
# sound modules load later, from the unpacked tree over 9p, with each test's own options.
initramfs() {
    initrd=$cache/initrd-$kver.cpio.gz
    [ -e "$initrd" ] && [ "$initrd" -nt "$here/vm.sh" ] && return 0
    local root
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,dev,proc,sys,host,mods}
    cp /bin/busybox "$root/bin/busybox"
    for a in sh mount umount mkdir insmod cat echo chroot poweroff sleep mknod; do
        ln -s busybox "$root/bin/$a"
    done
    local m ko
    for m in virtio_pci 9pnet_virtio 9p; do
        modprobe -d "$kroot" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
    done | awk '!seen[$0]++' >"$root/order"
    : >"$root/load"
    while read -r ko; do
        cp "$ko" "$root/mods/"
        echo "insmod /mods/$(basename "$ko")" >>"$root/load"
    done <"$root/order"
    cat >"$root/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
. /load 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 host /host || { echo "vm-init: no host root"; poweroff -f; }
R=$(cat /proc/cmdline | sed -n 's/.*rdmix.results=\([^ ]*\).*/\1/p')
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results "/host$R" || { echo "vm-init: no results dir"; poweroff -f; }
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mount -t devpts devpts /host/dev/pts 2>/dev/null
mount -t tmpfs tmp /host/tmp
mount -t tmpfs run /host/run
mount -t tmpfs shm /host/dev/shm 2>/dev/null
mount -t debugfs debugfs /host/sys/kernel/debug
chroot /host /bin/sh -c "cd \"\$(cat $R/cwd)\" && . $R/env && sh $R/cmd > $R/out 2>&1; echo \$? > $R/rc"
sync
poweroff -f
EOF
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    rm -rf "$root"
}

# qemu with the host's root and the results directory; $1 the accelerator, $2 the time limit.
boot() {
    local accel=$1 limit=$2
    timeout --kill-after=5 "$limit" qemu-system-x86_64 -accel "$accel" -m 1536 -smp 2 \
        -nographic -no-reboot -monitor none -serial "file:$results/console.log" \
        -kernel "$kroot/boot/vmlinuz-$kver" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 quiet rdmix.results=$results ${RDMIX_VM_APPEND:-}" \
        -virtfs "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap" \
        -virtfs "local,path=$results,mount_tag=results,security_model=none" \
        ${RDMIX_VM_QEMU_ARGS:-} </dev/null >"$results/qemu.log" 2>&1
}

# KVM where it boots; on some hosts (a VM itself) a KVM boot hangs in early setup.
accelerator() {
    local probe=$cache/accel-$(uname -r)-$kver
    if [ -e "$probe" ]; then
        accel=$(cat "$probe")
        return
    fi
    accel=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        printf 'true\n' >"$results/cmd"
        : >"$results/env"
        echo / >"$results/cwd"
        rm -f "$results/rc"
        if boot kvm 30 && [ -e "$results/rc" ]; then accel=kvm; fi
    fi
    echo "$accel" >"$probe"
    echo "vm: accelerator $accel" >&2
}

case "$results/" in
/tmp/* | /run/*) die "RDMIX_VM_RESULTS $results: the guest mounts its own tmpfs on /tmp and /run; choose a directory elsewhere" ;;
esac
need_debs qemu-system-x86 busybox-static cpio kmod
kernel
test_driver
initramfs
mkdir -p "$results"
rm -f "$results"/{rc,out,console.log,qemu.log}
accelerator
pwd >"$results/cwd"
{
    printf 'export PATH=%q HOME=/root LANG=C.UTF-8\n' "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    printf 'export RDMIX_VM_MODULES=%q RDMIX_VM_KVER=%q RDMIX_VM_KMOD=%q RDMIX_VM_RESULTS=%q RDMIX_VM_ACCEL=%q\n' \
        "$kroot" "$kver" "$kmod" "$results" "$accel"
    env | grep -E '^RDMIX_(TEST|GUEST)_' | sed 's/^/export /' || true
} >"$results/env"
printf '%s\n' "$*" >"$results/cmd"
rm -f "$results/rc"
started=$(date +%s)
if ! boot "$accel" "$timeout_s"; then
    [ -e "$results/rc" ] || {
        tail -20 "$results/console.log" >&2 2>/dev/null || true
        cat "$results/out" 2>/dev/null >&2 || true
        die "the guest did not finish within $timeout_s s ($accel); its console is $results/console.log"
    }
fi
[ -e "$results/rc" ] || {
    tail -20 "$results/console.log" >&2 2>/dev/null || true
    die "the guest ended without running the command ($accel, kernel $kver); see $results/console.log"
}
cat "$results/out"
echo "vm: kernel $kver, $accel, $(($(date +%s) - started)) s" >&2
exit "$(cat "$results/rc")"
