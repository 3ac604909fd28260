#!/usr/bin/env bash
# Builds botd for an ARM gateway:
#   cross/build.sh TARGET      # -> $CARGO_TARGET_DIR/TARGET/release/botd (default target/)
# TARGET: aarch64-unknown-linux-musl (static; the one to copy to a Raspberry Pi whatever its
# glibc), aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf (need glibc 2.34+ on the
# board: Debian 12 / Raspberry Pi OS Bookworm or later).
# The release profile is size-optimised here (opt-level s, fat LTO, one codegen unit, stripped),
# passed as overrides so the binary lands where users look for it. Unwinding stays on: a model
# file that panics tract at load must be refused by catch_unwind, not abort the sensor. cross/test.sh builds the plain release profile, so running
# one after the other rebuilds.
# Installs the cross gcc (Debian packages) and the Rust target when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: cross/build.sh TARGET}"
source cross/common.sh
cross_install
cargo build --locked --config cross/config.toml --target "$TARGET" --release --bin botd \
    --config 'profile.release.opt-level="s"' --config 'profile.release.lto="fat"' \
    --config 'profile.release.codegen-units=1' --config 'profile.release.debug=false' \
    --config 'profile.release.strip=true'
out="${CARGO_TARGET_DIR:-target}/$TARGET/release/botd"
echo "built $out ($(stat -c %s "$out") bytes)"
