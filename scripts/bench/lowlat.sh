#!/usr/bin/env bash
# The low-latency promise: 8 `aplay --period-size=64 --buffer-size=256` clients through
# rdmix on `slave.period_size 64` over `null`. Prints the underruns aplay reported (summed
# over the clients) and the pump's exit line (CPU, wake-ups). Figures go in BENCHMARKS.md.
#   bash scripts/bench/lowlat.sh [SECONDS] [--load] [--no-fill-ahead]
#   --load: two `yes >/dev/null` beside the clients, one per core here.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=60 load=0 extra=""
for a in "$@"; do
    case "$a" in
        --load) load=1 ;;
        --no-fill-ahead) extra="fill_ahead false" ;;
        *) secs="$a" ;;
    esac
done
cargo build --release --quiet -p rdmix
dir=$(mktemp -d /tmp/rdmix-lowlat.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/.asoundrc" <<EOR
pcm_type.rdmix { lib "$PWD/target/release/libasound_module_pcm_rdmix.so" }
pcm.rd { type rdmix; ipc_key $((40000 + RANDOM % 10000)); slave { pcm "null"; period_size 64; rate 48000; channels 2; format S16_LE; $extra } }
EOR
sox -n -r 48000 -c 2 -b 16 "$dir/t.wav" synth $((secs + 5)) sine 440 vol 0.1
export HOME="$dir" RDMIX_PUMP_LOG="$dir/pump.log"
hogs=()
if [ "$load" = 1 ]; then
    for _ in 1 2; do timeout $((secs + 2)) yes >/dev/null & hogs+=($!); done
fi
for i in 1 2 3 4 5 6 7 8; do
    timeout "$secs" aplay -q -D rd --period-size=64 --buffer-size=256 "$dir/t.wav" 2>"$dir/err$i" &
done
wait
echo "underruns: $(cat "$dir"/err* | grep -c underrun || true) in ${secs} s${extra:+ ($extra)}${hogs:+, loaded}"
# The pump lingers idle a moment before it exits and reports.
for _ in $(seq 60); do grep -q exiting "$dir/pump.log" 2>/dev/null && break; sleep 1; done
grep exiting "$dir/pump.log" || echo "the pump had not exited yet"
