#!/usr/bin/env bash
# Memory on each architecture: the pump's resident set with one client playing, the shared
# memory each client adds, and the size of the stripped plugin and pump.
#
# Stripped builds (the package profile) of the plugin, pump and test device for x86_64, i686, aarch64 and armv7;
# Debian's aplay of each architecture (unpacked by scripts/ci/cross.sh, which must have run)
# plays 3 s into the copy-only test device, and the pump is read from /proc while it plays.
# ARM runs under qemu-user: its resident set includes qemu's own (translator and guest
# mappings alike), so it is an upper bound, not a board's figure. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."

declare -A DEB=([x86_64-unknown-linux-gnu]=amd64 [i686-unknown-linux-gnu]=i386
    [aarch64-unknown-linux-gnu]=arm64 [armv7-unknown-linux-gnueabihf]=armhf)
declare -A QEMU=([aarch64-unknown-linux-gnu]=qemu-aarch64 [armv7-unknown-linux-gnueabihf]=qemu-arm)
TARGETS=(x86_64-unknown-linux-gnu i686-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

wait_for() { # DEADLINE_S CMD...: polls until CMD succeeds
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -lt $end ] || { echo "bench_memory: timed out waiting for: $*" >&2; exit 1; }
        sleep 0.05
    done
}

bigger_than() { # FILE BYTES
    [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -gt "$2" ]
}

echo "| target | pump RSS, one client | shared memory per client (mapped / resident) | pump binary | plugin |"
echo "|---|---|---|---|---|"
for t in "${TARGETS[@]}"; do
    cargo build -q --profile deb --workspace --target "$t"
    b=$PWD/target/$t/deb
    d=/dev/shm/rdmix-mem-$t
    rm -rf "$d" && mkdir -p "$d"
    pump_opt=""
    aplay=aplay
    run=()
    if [ "$t" != x86_64-unknown-linux-gnu ]; then
        aplay=$PWD/target/foreign/${DEB[$t]}/usr/bin/aplay
        [ -x "$aplay" ] || { echo "bench_memory: $aplay missing: run scripts/ci/cross.sh first" >&2; exit 1; }
    fi
    if [ -n "${QEMU[$t]:-}" ]; then
        printf '#!/bin/sh\nexec %s %s "$@"\n' "${QEMU[$t]}" "$b/rdmix-pump" >"$d/pump.sh"
        chmod +x "$d/pump.sh"
        pump_opt="pump \"$d/pump.sh\""
        run=("${QEMU[$t]}")
    fi
    cat >"$d/asound.conf" <<EOF
pcm_type.rdmix { lib "$b/libasound_module_pcm_rdmix.so" }
pcm_type.rdmixfake { lib "$b/libasound_module_pcm_rdmixfake.so" }
pcm.card { type rdmixfake; file "$d/rec.wav" }
pcm.!default { type rdmix; ipc_key $((0x6d000000 + RANDOM)); slave.pcm "card"; $pump_opt }
EOF
    sox -q -n -r 48000 -c 2 -b 16 "$d/tone.wav" synth 3 sine 440 vol 0.5
    ALSA_CONFIG_PATH=$d/asound.conf RDMIX_PUMP_LOG=$d/pump.log "${run[@]}" "$aplay" -q "$d/tone.wav" &
    player=$!
    wait_for 30 grep -qs "took lane" "$d/pump.log"
    # A second of audio through it: the lane's ring has been written and read all round.
    wait_for 30 bigger_than "$d/rec.wav" 192000
    pid=$(sed -n 's/^rdmix-pump\[\([0-9]*\)\].*/\1/p' "$d/pump.log" | head -n 1)
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    lane=$(awk '/memfd:rdmix-lane/ {inlane=1; next} /^[0-9a-f]+-[0-9a-f]+ / {inlane=0}
        inlane && /^Size:/ {size+=$2} inlane && /^Rss:/ {rss+=$2} END {print size " / " rss}' "/proc/$pid/smaps")
    wait "$player"
    pump_kb=$(($(stat -c %s "$b/rdmix-pump") / 1024))
    plug_kb=$(($(stat -c %s "$b/libasound_module_pcm_rdmix.so") / 1024))
    note=""
    [ -z "${QEMU[$t]:-}" ] || note=" (under qemu)"
    echo "| $t | ${rss} KiB$note | ${lane} KiB | ${pump_kb} KiB | ${plug_kb} KiB |"
    rm -rf "$d"
done
