#!/bin/bash
# rdmix beside PulseAudio in one run (BENCHMARKS.md, "Beside PulseAudio"). As root, on Debian 12:
#   bash scripts/bench/peers.sh [--seconds 20] [--clients 1,4,16] [--runs 2]
# Installs PulseAudio, alsa-utils and the ALSA pulse plugin if missing, and removes what it
# installed when it is done (RDMIX_BENCH_KEEP=1 keeps them): PulseAudio's ALSA hooks would
# otherwise change this machine's default PCM. The servers and clients run as the
# unprivileged user `rdmixbench`, created if missing. PipeWire is not run: pipewire-alsa
# conflicts with pulseaudio in Debian 12 (BENCHMARKS.md keeps the issue's PipeWire figures).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
    echo "bench_peers: run as root: it installs PulseAudio and runs it as a user of its own" >&2
    exit 1
fi
want=(pulseaudio libasound2-plugins alsa-utils python3)
new=()
for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || new+=("$p"); done
cleanup() {
    if [ ${#new[@]} -gt 0 ] && [ -z "${RDMIX_BENCH_KEEP:-}" ]; then
        echo "bench_peers: removing what it installed: ${new[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${new[@]}" >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -qq >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
if [ ${#new[@]} -gt 0 ]; then
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${new[@]}" >/dev/null
fi
# Nothing else may hold the null sink's CPU: no PulseAudio started by the install.
pkill -x pulseaudio 2>/dev/null || true
cargo build --release --workspace -q
id rdmixbench >/dev/null 2>&1 || useradd -m rdmixbench
uid=$(id -u rdmixbench)
install -d -o rdmixbench -m 700 "/run/user/$uid"
stage=$(mktemp -d /tmp/rdmix-bench-XXXX)
cp target/release/libasound_module_pcm_rdmix.so target/release/rdmix-pump scripts/bench/peers.py "$stage/"
chmod -R a+rX "$stage"
echo "bench_peers: $(nproc) cores, $(uname -r), $(date -u +%F)"
runuser -u rdmixbench -- env -i PATH=/usr/bin:/bin "XDG_RUNTIME_DIR=/run/user/$uid" \
    python3 "$stage/peers.py" --build "$stage" "$@"
rm -rf "$stage"
