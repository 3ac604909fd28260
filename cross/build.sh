#!/usr/bin/env bash
# Builds botd for an ARM or MIPS gateway:
#   cross/build.sh TARGET      # -> $CARGO_TARGET_DIR/TARGET/release/botd (default target/)
# TARGET: aarch64-unknown-linux-musl (static; the one to copy to a Raspberry Pi whatever its
# glibc), armv7-unknown-linux-musleabihf (static; 32-bit ARM routers and boards),
# mipsel-unknown-linux-musl (cross/README.md says how far it gets), aarch64-unknown-linux-gnu,
# armv7-unknown-linux-gnueabihf (need glibc 2.34+ on the board: Debian 12 / Raspberry Pi OS
# Bookworm or later).
# The release profile is size-optimised here (fat LTO, one codegen unit; cross/README.md has the
# measurements), passed as overrides so the binary lands where users look for it: botd and the
# crates on its per-packet path (HOT below) at opt-level $OPT_LEVEL (default s), every other
# dependency at $DEPS_OPT_LEVEL (default z: tract runs only when a model is loaded, botd scores
# forests with its own code); ICF=1 (default) links with the toolchain's lld and folds identical
# functions (--icf=all; Rust does not promise distinct functions distinct addresses). Unwinding stays on: a model file that panics tract at load must be refused by
# catch_unwind, not abort the sensor. The binary is stripped by the linker; with SYMBOLS=1 it is
# linked with its symbols, kept as botd.syms for cross/size.sh, and stripped with the target's
# binutils instead (another profile: everything is compiled again). cross/test.sh builds the
# plain release profile, so running one after the other rebuilds.
# Installs the cross gcc (Debian packages) and the Rust target (or rust-src) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: cross/build.sh TARGET}"
OPT_LEVEL="${OPT_LEVEL:-s}"
DEPS_OPT_LEVEL="${DEPS_OPT_LEVEL:-z}"
ICF="${ICF:-1}"
strip=true
[[ ${SYMBOLS:-0} == 1 ]] && strip=false
# shellcheck source=/dev/null
source cross/common.sh
cross_install
# Kept at $OPT_LEVEL: the dependencies botd runs per packet or per flow record (capture parsing,
# hashing for JA3/JA4 and the community id, JSON output, the flow and evidence tables), and the
# protobuf decoding of model loading (prost, bytes, tract-onnx's generated reader), a quarter of
# `botd analyze` on an hour of traffic; with a std built from source, std too.
HOT=(pcap-parser nom memchr sha1 sha2 md-5 itoa serde_json hashbrown foldhash heapless httparse libc flate2
    miniz_oxide crc32fast prost bytes tract-onnx)
((${#STD_ARGS[@]})) && HOT+=(std core alloc)
profile=(--config "profile.release.opt-level=\"$OPT_LEVEL\""
    --config "profile.release.package.\"*\".opt-level=\"$DEPS_OPT_LEVEL\"")
for p in "${HOT[@]}"; do
    profile+=(--config "profile.release.package.$p.opt-level=\"$OPT_LEVEL\"")
done
link=()
if [[ $ICF == 1 ]]; then
    # The rust-lld that rustup ships, through its gcc-ld wrapper, for the target's gcc driver.
    gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
    # --no-dynamic-linker: the armhf musl specs always pass -dynamic-linker, which GNU ld ignores
    # in a static link and lld does not (the binary then asks for ld-musl and crashes).
    link=(-C link-arg=-fuse-ld=lld -C "link-arg=-B$gcc_ld" -C "link-arg=-Wl,--icf=all"
        -C "link-arg=-Wl,--no-dynamic-linker")
fi
# cargo rustc: the link arguments are the final binary's alone (the dependencies are unchanged).
cargo rustc --locked --config cross/config.toml --target "$TARGET" "${STD_ARGS[@]}" --release --bin botd \
    "${profile[@]}" --config 'profile.release.lto="fat"' \
    --config 'profile.release.codegen-units=1' --config 'profile.release.debug=false' \
    --config "profile.release.strip=$strip" -- "${link[@]}"
out="${CARGO_TARGET_DIR:-target}/$TARGET/release/botd"
# A fresh link replaced botd with an unstripped one; an up-to-date build left the stripped one.
if [[ $strip == false && (! -f $out.syms || $out -nt $out.syms) ]] &&
    "$TARGET_STRIP" -o "$out.stripped" "$out"; then
    mv "$out" "$out.syms"
    mv "$out.stripped" "$out"
    touch "$out"
fi
echo "built $out ($(stat -c %s "$out") bytes)"
