#!/usr/bin/env bash
# Builds botd for an ARM or MIPS gateway:
#   cross/build.sh TARGET      # -> $CARGO_TARGET_DIR/TARGET/release/botd (default target/)
# TARGET: aarch64-unknown-linux-musl (static; the one to copy to a Raspberry Pi whatever its
# glibc), armv7-unknown-linux-musleabihf (static; 32-bit ARM routers and boards),
# mipsel-unknown-linux-musl (cross/README.md says how far it gets), aarch64-unknown-linux-gnu,
# armv7-unknown-linux-gnueabihf (need glibc 2.34+ on the board: Debian 12 / Raspberry Pi OS
# Bookworm or later).
# The release profile is size-optimised here (fat LTO, one codegen unit; cross/README.md has the
# measurements), passed as overrides so the binary lands where users look for it: botd and its
# dependencies at opt-level $OPT_LEVEL (default s), the cold ones (COLD below) at $DEPS_OPT_LEVEL
# (default z: tract runs only when a model is loaded, botd scores forests with its own code); ICF=1 (default) links with the toolchain's lld and folds identical
# functions (--icf=all; Rust does not promise distinct functions distinct addresses).
# PANIC=abort (default) builds with panic = "abort", without unwind tables (-C
# force-unwind-tables=no) and with std from source (already so for armv7 and mipsel musl;
# BUILD_STD=0 takes the prebuilt std where rustup has one): 1.2 to 2.5 MB less. botd then checks
# a model with tract in a child process (a panic kills the child, not the sensor) and refuses
# graphs that tract would have to score; PANIC=unwind keeps unwinding (catch_unwind, as in the
# x86_64 build). The binary is stripped by the linker; with SYMBOLS=1 it is linked with its
# symbols, kept as botd.syms for cross/size.sh, and stripped with the target's binutils instead
# (another profile: everything is compiled again). cross/test.sh builds the plain release
# profile, so running one after the other rebuilds.
# Installs the cross gcc (Debian packages) and the Rust target (or rust-src) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: cross/build.sh TARGET}"
OPT_LEVEL="${OPT_LEVEL:-s}"
DEPS_OPT_LEVEL="${DEPS_OPT_LEVEL:-z}"
ICF="${ICF:-1}"
PANIC="${PANIC:-abort}"
[[ $PANIC == abort || $PANIC == unwind ]] || { echo "cross/build.sh: PANIC=abort or unwind" >&2; exit 2; }
strip=true
MUSL_LIBGCC=()
[[ ${SYMBOLS:-0} == 1 ]] && strip=false
# shellcheck source=/dev/null
source cross/common.sh
cross_install
# The prebuilt std was compiled to unwind: linked into an abort build it leaves unwind tables
# for about every function (aarch64: 1.1 MB of .eh_frame and .eh_frame_hdr). Built from source
# here, with this profile, as common.sh does for the targets without a prebuilt std.
BUILD_STD="${BUILD_STD:-$([[ $PANIC == abort ]] && echo 1 || echo 0)}"
if [[ $BUILD_STD == 1 && ${#STD_ARGS[@]} -eq 0 ]]; then
    export RUSTC_BOOTSTRAP=1
    STD_ARGS=("-Zbuild-std=std,panic_unwind,panic_abort")
    rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
    # musl's printf needs 128-bit float routines that the prebuilt std's compiler_builtins has
    # and the one built here lacks (aarch64: __multf3, ...); GCC's libgcc has them.
    [[ $TARGET == aarch64-unknown-linux-musl ]] && MUSL_LIBGCC=(-C link-arg=-lgcc)
fi
# At $DEPS_OPT_LEVEL: the big dependencies that run only when a model is loaded or the command
# line and config are read (tract and the numeric crates it brings, clap, toml, minijinja for the
# report); everything else, botd and whatever it runs per packet or per flow record (capture
# parsing, hashbrown and its hasher, the protocol parsers' helpers, JSON output), at $OPT_LEVEL.
# A list of the cold crates, not of the hot ones: a hot crate forgotten here costs size, not speed
# (an earlier HOT list that missed foldhash made the busy tile 16% slower under qemu-aarch64).
COLD=(tract-core tract-data tract-extra tract-hir tract-linalg tract-nnef tract-onnx-opl ndarray
    rustfft num-complex num-integer num-traits primal-check strength_reduce transpose
    matrixmultiply string-interner erased-serde dyn-clone dyn-hash downcast-rs anymap3 anyhow
    clap clap_builder clap_lex anstyle toml toml_parser toml_datetime toml_writer serde_spanned
    winnow minijinja memo-map)
profile=(--config "profile.release.opt-level=\"$OPT_LEVEL\"")
for p in "${COLD[@]}"; do
    profile+=(--config "profile.release.package.$p.opt-level=\"$DEPS_OPT_LEVEL\"")
done
profile+=(--config "profile.release.panic=\"$PANIC\"")
# UNWIND_TABLES=1 keeps them in an abort build (for measuring; backtraces in a debugger).
if [[ $PANIC == abort && ${UNWIND_TABLES:-0} != 1 ]]; then
    # The target's default keeps unwind tables for backtraces; nothing unwinds here. Joined to
    # cross/config.toml's rustflags for the target (cargo concatenates config arrays).
    profile+=(--config "target.$TARGET.rustflags=[\"-C\", \"force-unwind-tables=no\"]")
fi
link=()
if [[ $ICF == 1 ]]; then
    # The rust-lld that rustup ships, through its gcc-ld wrapper, for the target's gcc driver.
    gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
    # --no-dynamic-linker: the armhf musl specs always pass -dynamic-linker, which GNU ld ignores
    # in a static link and lld does not (the binary then asks for ld-musl and crashes).
    link=(-C link-arg=-fuse-ld=lld -C "link-arg=-B$gcc_ld" -C "link-arg=-Wl,--icf=all"
        -C "link-arg=-Wl,--no-dynamic-linker")
fi
link+=("${MUSL_LIBGCC[@]}")
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
