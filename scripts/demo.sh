#!/usr/bin/env bash
# The main job: several real ALSA programs play at once through rdmix. The mix goes to the
# first sound card if this machine has one, else to a WAV file; the last line says where.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ci/setup.sh
rdmix_setup
cargo build --release --workspace -q
lib="$PWD/target/release/libasound_module_pcm_rdmix.so"

work=$(mktemp -d /tmp/rdmix-demo.XXXXXX)
if aplay -l 2>/dev/null | grep -q '^card '; then
    card=$(aplay -l | sed -n 's/^card \([0-9]*\):.*device \([0-9]*\):.*/\1,\2/p' | head -n1)
    slave="plughw:$card"
    where="sound card hw:$card (through rdmix, slave plughw:$card)"
    slave_def=""
else
    out="$work/mix.wav"
    slave="wavout"
    where="$out"
    slave_def="pcm.wavout { type file; slave.pcm \"null\"; file \"$out\"; format \"wav\" }"
fi
key=$((0x5e000000 + $$ % 65536))
cat > "$work/.asoundrc" <<RC
pcm_type.rdmix { lib "$lib" }
pcm.!default { type rdmix; ipc_key $key; slave.pcm "$slave" }
$slave_def
RC

# Three different sounds, three different programs, all at once on "default".
sox -q -n -r 48000 -c 2 -b 16 "$work/chord.wav" synth 3 sine 261.6 sine 329.6 vol 0.25 fade 0.1 3 0.3
sox -q -n -r 48000 -c 2 -b 16 "$work/sweep.wav" synth 3 sine 200-2000 vol 0.2 fade 0.1 3 0.3
sox -q -n -r 48000 -c 2 -b 16 "$work/beeps.wav" synth 0.15 sine 880 vol 0.3 pad 0 0.35 repeat 5
export HOME="$work"
echo "rdmix: playing aplay, aplay -M and sox at once through pcm.default { type rdmix }"
aplay -q "$work/chord.wav" &
aplay -q -M "$work/sweep.wav" &
sox -q "$work/beeps.wav" -t alsa default &
wait
# The pump lingers briefly after the last client, then closes the device (and the WAV).
for _ in $(seq 100); do pgrep -f "rdmix-pump --key $key " >/dev/null || break; sleep 0.05; done
if [ -n "$slave_def" ]; then
    secs=$(sox --i -D "$out" 2>/dev/null || echo "?")
    echo "rdmix: mixed ${secs}s of audio from 3 programs"
fi
echo "rdmix: the mix went to $where"
