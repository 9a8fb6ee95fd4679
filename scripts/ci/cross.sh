#!/usr/bin/env bash
# rdmix on the boards it is for, tested here: i686 natively, aarch64 and armv7 under
# qemu-user. For each target it builds the plugin, pump and test device, and runs the unit
# tests and the in-process pump tests (ring, mixer, many-lane stress). Then:
# - it checks that armv7's 64-bit atomics are native (ldrexd/strexd), with no libatomic or
#   __sync call that could hide a lock;
# - Debian's own aplay for i386, arm64 and armhf plays through rdmix (tests/pkg/multiarch.rs):
#   a 32-bit and a 64-bit aplay share one pump whichever starts it, and an ARM aplay with
#   an ARM pump is bit-exact under qemu;
# - as root, the amd64 and i386 packages install side by side and share a pump.
#
# As root on Debian it installs what it needs (rustup targets, Debian's cross compilers,
# multiarch alsa-lib, qemu-user). Where that cannot be done it skips, with one line naming
# what is missing. Called by scripts/ci/test.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGETS=(i686-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
ARCHES=(i386 arm64 armhf)
DEBS=(gcc-i686-linux-gnu gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user
    libasound2-dev:i386 libasound2-dev:arm64 libasound2-dev:armhf binutils-arm-linux-gnueabihf)

skip() {
    echo "cross: skipped: $*" >&2
    exit 0
}

missing_debs() {
    local p out=()
    for p in "${DEBS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || out+=("$p")
    done
    echo "${out[*]}"
}

command -v dpkg >/dev/null || skip "not a Debian system (no dpkg)"
missing=$(missing_debs)
if [ -n "$missing" ]; then
    [ "$(id -u)" -eq 0 ] || skip "missing Debian packages: $missing (run as root to install them)"
    for a in "${ARCHES[@]}"; do
        dpkg --print-foreign-architectures | grep -qx "$a" || dpkg --add-architecture "$a"
    done
    echo "cross: installing $missing" >&2
    # A mirror caught mid-sync can fail one index; what is needed may still install.
    apt-get update -qq || echo "cross: apt-get update reported errors; trying the install anyway" >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
        skip "could not install: $missing (apt-get install failed)"
    missing=$(missing_debs)
    [ -z "$missing" ] || skip "still missing after apt-get install: $missing"
fi
have_targets=$(rustup target list --installed 2>/dev/null || true)
for t in "${TARGETS[@]}"; do
    grep -qx "$t" <<<"$have_targets" || rustup target add "$t" >/dev/null 2>&1 ||
        skip "cannot add the Rust target $t (rustup target add $t)"
done

# Debian's own aplay for each foreign architecture, unpacked (not installed: alsa-utils is
# not co-installable across architectures).
for a in "${ARCHES[@]}"; do
    root=target/foreign/$a
    if [ ! -x "$root/usr/bin/aplay" ]; then
        mkdir -p target/foreign/debs
        (cd target/foreign/debs && apt-get download -qq "alsa-utils:$a" >/dev/null 2>&1) ||
            skip "cannot download alsa-utils:$a (apt-get download)"
        dpkg -x target/foreign/debs/alsa-utils_*_"$a".deb "$root"
    fi
done

for t in "${TARGETS[@]}"; do
    echo "cross: $t: build, unit tests, in-process pump tests" >&2
    cargo build --workspace --target "$t"
    # Lints that depend on widths (casts, conversions) differ on the 32-bit targets.
    case "$t" in i686-* | armv7-*) cargo clippy -q --workspace --all-targets --target "$t" -- -D warnings ;; esac
    # ARM test binaries run under qemu-user (cargo's runner, .cargo/config.toml).
    cargo test --target "$t" --lib --test pump_fake_slave
done

# armv7: AtomicU64 must be ldrexd/strexd in the code itself. A call to libatomic or to a
# __sync helper could take a lock, which another process would never see.
for f in rdmix-pump libasound_module_pcm_rdmix.so; do
    bin=target/armv7-unknown-linux-gnueabihf/debug/$f
    n=$(arm-linux-gnueabihf-objdump -d "$bin" | grep -c -w ldrexd || true)
    calls=$(arm-linux-gnueabihf-nm "$bin" 2>/dev/null | grep -E '__(sync|atomic)_' || true)
    if [ "$n" -eq 0 ] || [ -n "$calls" ]; then
        echo "cross: armv7 $f: 64-bit atomics are not native (ldrexd: $n; calls: $calls)" >&2
        exit 1
    fi
    echo "MEASURE cross: armv7 $f: $n ldrexd, no __sync/__atomic helper" >&2
done

# The multiarch tests spawn programs that must not inherit a cross target's settings.
cargo test --test multiarch -- --ignored
if [ "$(id -u)" -eq 0 ]; then
    cargo test --test package -- --ignored
else
    echo "cross: the i386 package test skipped: installing packages needs root" >&2
fi
echo "cross: all targets pass" >&2
