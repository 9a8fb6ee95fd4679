#!/usr/bin/env bash
# What an open mixer costs when nothing changes: alsamixer on ctl.rdmix (in tmux) for
# SECONDS with no program, then with one aplay playing. Prints the context switches of
# alsamixer and of the two pumps it watches over each window (a wake-up is one), and their
# resident memory. Figures go in BENCHMARKS.md.
#   bash scripts/bench/mixer-idle.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
cargo build --release --quiet -p rdmix
dir=$(mktemp -d /tmp/rdmix-mixidle.XXXXXX)
sock="rdmix-mixidle-$$"
trap 'tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$dir"' EXIT
key=$((50000 + RANDOM % 10000))
lib="$PWD/target/release/libasound_module_pcm_rdmix.so"
cat > "$dir/.asoundrc" <<EOR
pcm_type.rdmix { lib "$lib" }
ctl_type.rdmix { lib "$lib" }
pcm.!default { type rdmix; ipc_key $key; slave.pcm "null" }
ctl.!default { type rdmix; ipc_key $key; slave.pcm "null" }
EOR
export HOME="$dir" RDMIX_PUMP_LOG="$dir/pump.log"
sox -n -r 48000 -c 2 -b 16 "$dir/t.wav" synth $((secs + 5)) sine 440 vol 0.1
tmux -L "$sock" new-session -d -x 120 -y 30 "env HOME=$dir RDMIX_PUMP_LOG=$dir/pump.log TERM=xterm alsamixer"
for _ in $(seq 100); do
    [ "$(pgrep -fc "rdmix-pump --key $key")" = 2 ] && break
    sleep 0.1
done
pids="$(pgrep -x alsamixer | tail -1) $(pgrep -f "rdmix-pump --key $key" | tr '\n' ' ')"
switches() { for p in $pids; do awk '/ctxt_switches/ {s += $2} END {printf "%d ", s}' "/proc/$p/status"; done; }
window() {
    local before after
    before=($(switches)); sleep "$secs"; after=($(switches))
    printf '%-28s alsamixer %4d   playback pump %5d   capture pump %4d  (context switches in %s s)\n' "$1" \
        $((after[0] - before[0])) $((after[1] - before[1])) $((after[2] - before[2])) "$secs"
}
sleep 1
window "no program:"
aplay -q "$dir/t.wav" &
sleep 1
window "one aplay playing:"
kill %1 2>/dev/null || true
for p in $pids; do printf '%s (pid %s): %s\n' "$(cat /proc/$p/comm)" "$p" "$(grep VmRSS /proc/$p/status | tr -s ' \t' ' ')"; done
