#!/usr/bin/env bash
# rdmix on real kernel drivers: builds the release plugin (the debug build does not keep real
# time under TCG), boots the VM (tests/vm/vm.sh) and runs tests/vm/guest.py inside it. Exits
# non-zero with one line when the VM cannot start, never skipping in silence.
#
#   bash tests/vm/run.sh [NAME...]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p rdmix
# An HDA controller and codec whose output qemu writes to a WAV beside the results, for the
# snd-hda-intel test.
results=${RDMIX_VM_RESULTS:-$PWD/target/vm/results}
mkdir -p "$results"
rm -f "$results/hda.wav"
export RDMIX_VM_QEMU_ARGS="-audiodev wav,id=a0,path=$results/hda.wav,out.frequency=48000,out.channels=2,out.format=s16 \
    -device intel-hda,id=hda0 -device hda-output,audiodev=a0,bus=hda0.0 ${RDMIX_VM_QEMU_ARGS:-}"
exec bash tests/vm/vm.sh --timeout "${RDMIX_VM_TIMEOUT:-600}" -- python3 tests/vm/guest.py "$@"
