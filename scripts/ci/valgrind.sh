#!/usr/bin/env bash
# Memcheck runs (stable Rust has no sanitizers; valgrind loads into aplay and into our tests):
#  1. tests/e2e/valgrind.rs: aplay, aplay -M, aplay -N and the pump they spawn, all under memcheck
#     (the test command runs this one too);
#  2. in-process tests under memcheck: the constraint test and the config fuzzer. (The
#     timing tests cannot keep a real-time stream fed at memcheck's speed, so they are left
#     to the normal runs and to 1.)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/ci/setup.sh
rdmix_setup
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }
cargo build --workspace
cargo test --test valgrind -- --nocapture
for t in "capi constraints_tell_the_truth" "fuzz_config fuzzed"; do
    set -- $t
    bin=$(cargo test --test "$1" --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p' | tail -n1)
    echo "memcheck: $1 $2 ($bin)"
    RDMIX_FUZZ_CASES=300 valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        "$bin" "$2" --test-threads=1
done
echo "memcheck: clean"
