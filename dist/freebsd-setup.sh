#!/usr/bin/env bash
# Builds what tests/freebsd.rs checks, on a Debian 12 machine, as root: zig (FreeBSD's headers
# and libc stubs) and cargo-zigbuild from PyPI in a venv of our own, target/ci-zig, and the
# FreeBSD binary and probe linked with them in target/freebsd-build, checked with
# dist/freebsd/check-elf.sh (readelf). Debian's rustc-web and its standard library sources
# build the standard library for FreeBSD (-Zbuild-std). `make check` and .ci/run run it;
# running it again rebuilds only what changed (about 3.5 minutes from scratch, seconds after).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "dist/freebsd-setup.sh must run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive

missing=()
[ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ] ||
    missing+=(rustc-web cargo-web rust-web-src)
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
fi

zig_venv=target/ci-zig
if [ ! -x "$zig_venv/bin/cargo-zigbuild" ]; then
    python3 -m venv "$zig_venv"
    "$zig_venv/bin/pip" install -q ziglang cargo-zigbuild
fi
# cargo-zigbuild runs zig as `python3 -m ziglang`, and tests/freebsd.rs finds the headers
# through the venv's python3.
export PATH="$PWD/$zig_venv/bin:$PATH"
CARGO_TARGET_DIR=target/freebsd-build RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo \
    cargo-zigbuild build -q --release -Zbuild-std=std,panic_abort --target x86_64-unknown-freebsd
release=target/freebsd-build/x86_64-unknown-freebsd/release
dist/freebsd/check-elf.sh "$release/jaildaemon" \
    "$(ls -t "$release"/build/jaildaemon-*/out/probe | head -1)"
