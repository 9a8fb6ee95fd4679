#!/usr/bin/env bash
# AddressSanitizer over the in-process suites (the plugin, the pump and the tests all built
# with ASan; alsa-lib itself is not instrumented), and ThreadSanitizer over the lock-free
# ring and the pump in process. Needs a nightly toolchain with rust-src; says so if absent.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/ci/setup.sh
rdmix_setup
triple=x86_64-unknown-linux-gnu
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "sanitizers: skipped: no nightly toolchain (rustup toolchain install nightly -c rust-src)"
    exit 0
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
echo "== AddressSanitizer"
# The instrumented plugin is dlopen()ed by alsa-lib: the test executables export the ASan
# runtime for it. (Uninstrumented programs such as aplay cannot load it; memcheck covers those.)
RUSTFLAGS="-Zsanitizer=address -Clink-arg=-Wl,--export-dynamic" cargo +nightly test --target "$triple" --workspace \
    --lib --test pump_fake_slave --test capi --test conformance --test fuzz_config
echo "== ThreadSanitizer"
RUSTFLAGS="-Zsanitizer=thread" TSAN_OPTIONS=halt_on_error=1 \
    cargo +nightly test -Zbuild-std --target "$triple" --lib --test pump_fake_slave -- ring pump clients hostile
echo "sanitizers: clean"
