#!/usr/bin/env bash
# rdmix beside dmix on the same kernel in the VM: CPU per stream and wake-ups per second of
# all processes for N aplay clients (tests/vm/bench.py). Figures go in BENCHMARKS.md.
#   bash scripts/bench/vm.sh            # N = 1, 4, 16, 8 s each
#   RDMIX_BENCH_CLIENTS=1,4 RDMIX_BENCH_SECONDS=5 bash scripts/bench/vm.sh
#   bash scripts/bench/vm.sh soak [SECONDS [--no-fill-ahead]]   # scripts/bench/soak.py on the kernel test driver
#   bash scripts/bench/vm.sh latency          # only the change-latency table (goal 3)
#   bash scripts/bench/vm.sh capture          # only the capture pump's wake-ups
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p rdmix
exec bash tests/vm/vm.sh --timeout "${RDMIX_BENCH_TIMEOUT:-1800}" -- python3 tests/vm/bench.py "$@"
