#!/usr/bin/env bash
# Installs what building and testing rdmix needs on Debian 12, as root. Idempotent and quiet
# when everything is already there. Sourced by demo.sh and test.sh.
set -euo pipefail

RDMIX_DEBS=(libasound2-dev libclang-dev clang pkg-config alsa-utils sox libsox-fmt-alsa valgrind util-linux passwd
    lintian dpkg-dev liblzma-dev tmux)

rdmix_setup() {
    local missing=()
    for p in "${RDMIX_DEBS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        if [ "$(id -u)" -ne 0 ]; then
            echo "rdmix: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
            exit 1
        fi
        echo "rdmix: installing ${missing[*]}" >&2
        apt-get update -qq || echo "rdmix: apt-get update reported errors; trying the install anyway" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v cargo >/dev/null; then
        echo "rdmix: no Rust toolchain: install stable Rust (rustup.rs), then run this again" >&2
        exit 1
    fi
    # The package test builds the .deb with cargo-deb, the ecosystem's standard tool.
    if ! command -v cargo-deb >/dev/null; then
        echo "rdmix: installing cargo-deb" >&2
        cargo install --quiet --locked cargo-deb
    fi
}
