#!/usr/bin/env bash
# Memcheck runs (stable Rust has no sanitizers; valgrind loads into aplay and into our tests):
#  1. tests/valgrind.rs: aplay, aplay -M, aplay -N and the pump they spawn, all under memcheck
#     (the test command runs this one too);
#  2. the in-process C-API suite and the config fuzzer, whole test binaries under memcheck.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
rdmix_setup
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }
cargo build --workspace
cargo test --test valgrind -- --nocapture
for t in capi fuzz_config; do
    bin=$(cargo test --test "$t" --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -n1)
    echo "memcheck: $t ($bin)"
    RDMIX_FUZZ_CASES=300 valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        --suppressions=/dev/null "$bin" --test-threads=2
done
echo "memcheck: clean"
