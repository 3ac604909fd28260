#!/usr/bin/env bash
# Builds botd for an ARM or MIPS gateway:
#   cross/build.sh TARGET      # -> $CARGO_TARGET_DIR/TARGET/release/botd (default target/)
# TARGET: aarch64-unknown-linux-musl (static; the one to copy to a Raspberry Pi whatever its
# glibc), armv7-unknown-linux-musleabihf (static; 32-bit ARM routers and boards),
# mipsel-unknown-linux-musl (cross/README.md says how far it gets), aarch64-unknown-linux-gnu,
# armv7-unknown-linux-gnueabihf (need glibc 2.34+ on the board: Debian 12 / Raspberry Pi OS
# Bookworm or later).
# The release profile is size-optimised here (opt-level $OPT_LEVEL, default s: cross/README.md
# has the measurements; fat LTO, one codegen unit), passed as overrides so the binary lands where
# users look for it. Unwinding stays on: a model file that panics tract at load must be refused by
# catch_unwind, not abort the sensor. The binary is stripped by the linker; with SYMBOLS=1 it is
# linked with its symbols, kept as botd.syms for cross/size.sh, and stripped with the target's
# binutils instead (another profile: everything is compiled again). cross/test.sh builds the
# plain release profile, so running one after the other rebuilds.
# Installs the cross gcc (Debian packages) and the Rust target (or rust-src) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: cross/build.sh TARGET}"
OPT_LEVEL="${OPT_LEVEL:-s}"
strip=true
[[ ${SYMBOLS:-0} == 1 ]] && strip=false
# shellcheck source=/dev/null
source cross/common.sh
cross_install
cargo build --locked --config cross/config.toml --target "$TARGET" "${STD_ARGS[@]}" --release --bin botd \
    --config "profile.release.opt-level=\"$OPT_LEVEL\"" --config 'profile.release.lto="fat"' \
    --config 'profile.release.codegen-units=1' --config 'profile.release.debug=false' \
    --config "profile.release.strip=$strip"
out="${CARGO_TARGET_DIR:-target}/$TARGET/release/botd"
# A fresh link replaced botd with an unstripped one; an up-to-date build left the stripped one.
if [[ $strip == false && (! -f $out.syms || $out -nt $out.syms) ]] &&
    "$TARGET_STRIP" -o "$out.stripped" "$out"; then
    mv "$out" "$out.syms"
    mv "$out.stripped" "$out"
    touch "$out"
fi
echo "built $out ($(stat -c %s "$out") bytes)"
