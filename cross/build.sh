#!/usr/bin/env bash
# Builds botd for an ARM gateway:
#   cross/build.sh TARGET            # size-optimised: $CARGO_TARGET_DIR/TARGET/deploy/botd
#   PROFILE=release cross/build.sh TARGET   # the test profile: .../TARGET/release/botd
# TARGET: aarch64-unknown-linux-musl (static; the one to copy to a Raspberry Pi whatever its
# glibc), aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf (need glibc 2.34+ on the
# board: Debian 12 / Raspberry Pi OS Bookworm or later).
# Installs the cross gcc (Debian packages) and the Rust target when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: cross/build.sh TARGET}"
PROFILE="${PROFILE:-deploy}"
source cross/common.sh
cross_install
cargo build --locked --config cross/config.toml --target "$TARGET" --profile "$PROFILE" --bin botd
out="${CARGO_TARGET_DIR:-target}/$TARGET/$PROFILE/botd"
echo "built $out ($(stat -c %s "$out") bytes)"
