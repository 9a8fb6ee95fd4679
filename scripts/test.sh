#!/usr/bin/env bash
# The whole test suite: lint, unit and in-process tests, and the end-to-end tests that run
# aplay, aplay -M and sox through the built plugin into the copy-only test device.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
rdmix_setup
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace
cargo test --workspace
