#!/usr/bin/env bash
# The long config fuzz run: 10,000 generated configs through real alsa-lib (the normal test
# command runs 400). Usage: scripts/ci/fuzz.sh [cases]
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/ci/setup.sh
rdmix_setup
cargo build --workspace
RDMIX_FUZZ_CASES="${1:-10000}" cargo test --test fuzz_config -- --nocapture
