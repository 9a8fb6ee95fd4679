#!/usr/bin/env bash
# The whole test suite: lint, unit and in-process tests, the end-to-end tests that run
# aplay, aplay -M and sox through the built plugin into the copy-only test device, and the
# 32-bit and ARM builds and tests (scripts/ci/cross.sh; it skips with one line where their
# toolchains cannot be installed), and the tests on real kernel drivers in a VM.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/ci/setup.sh
rdmix_setup
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace
cargo test --workspace
bash scripts/ci/cross.sh
# Real kernel drivers in a VM: Debian 12's kernel under qemu, rdmix's copy-only test driver,
# snd-dummy and snd-aloop (tests/vm/run.sh; it fails with one line where the VM cannot start).
bash tests/vm/run.sh
# Miri over the ring and the mixer (raw shared-memory access), where a nightly toolchain
# with Miri is installed; the full sanitizer and memcheck runs are scripts/ci/sanitizers.sh
# and scripts/ci/valgrind.sh.
if cargo +nightly miri --version >/dev/null 2>&1; then
    cargo +nightly miri test --lib -- ring mix
else
    echo "miri: skipped: no nightly toolchain with Miri here"
fi
