#!/usr/bin/env bash
# Builds rdmix's Debian packages into target/debian and prints their paths:
# - rdmix (Multi-Arch: same) for each Rust target given, or for this machine;
# - rdmix-status, the status tool, for this machine.
# Each rdmix package holds the plugin and pump for its own architecture, so the amd64 and
# i386 ones install side by side: `scripts/pkg/package.sh x86_64-unknown-linux-gnu
# i686-unknown-linux-gnu`. Cross targets need the setup scripts/ci/cross.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."
targets=("$@")
((${#targets[@]})) || targets=("")
for t in "${targets[@]}"; do
    cargo deb --multiarch=same ${t:+--target "$t"} | tail -n 1
done
cargo deb --variant status | tail -n 1
