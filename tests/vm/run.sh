#!/usr/bin/env bash
# rdmix on real kernel drivers: builds the release plugin (the debug build does not keep real
# time under TCG), boots the VM (tests/vm/vm.sh) and runs tests/vm/guest.py inside it. Exits
# non-zero with one line when the VM cannot start, never skipping in silence.
#
#   bash tests/vm/run.sh [NAME...]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p rdmix
exec bash tests/vm/vm.sh --timeout "${RDMIX_VM_TIMEOUT:-600}" -- python3 tests/vm/guest.py "$@"
