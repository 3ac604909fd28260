# shellcheck shell=bash disable=SC2034  # sourced: its variables are used by the scripts that source it
# Shared by cross/build.sh and cross/test.sh: what each target needs, installed when missing.
# Sourced, not run. Sets TARGET_PACKAGES, TARGET_STRIP, QEMU and QEMU_PREFIX for $TARGET, and STD_ARGS: the
# cargo arguments that build std from source for targets rustup has no std for (empty otherwise).

case "$TARGET" in
    aarch64-unknown-linux-gnu)
        TARGET_PACKAGES="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
        TARGET_STRIP=aarch64-linux-gnu-strip
        QEMU=qemu-aarch64-static; QEMU_PREFIX=/usr/aarch64-linux-gnu ;;
    aarch64-unknown-linux-musl)
        # Static: Rust ships musl; Debian's glibc cross gcc only links it. Its C headers are for
        # the C files build scripts compile (criterion's alloca, a dev-dependency).
        TARGET_PACKAGES="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
        TARGET_STRIP=aarch64-linux-gnu-strip
        QEMU=qemu-aarch64-static; QEMU_PREFIX= ;;
    armv7-unknown-linux-gnueabihf)
        TARGET_PACKAGES="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user-static"
        TARGET_STRIP=arm-linux-gnueabihf-strip
        QEMU=qemu-arm-static; QEMU_PREFIX=/usr/arm-linux-gnueabihf ;;
    armv7-unknown-linux-musleabihf)
        # Static, for 32-bit ARM routers (OpenWrt's arm_cortex-a7/a9/a15 targets) and boards. No
        # prebuilt std: built from rust-src, linked by Debian's armhf cross gcc with the specs
        # of Debian's armhf musl (multiarch musl-dev:armhf: crt files, libc.a, headers).
        TARGET_PACKAGES="gcc-arm-linux-gnueabihf musl-dev:armhf qemu-user-static"
        FOREIGN_ARCH=armhf; TARGET_GCC=arm-linux-gnueabihf-gcc; TARGET_STRIP=arm-linux-gnueabihf-strip
        QEMU=qemu-arm-static; QEMU_PREFIX= ;;
    mipsel-unknown-linux-musl)
        # Static, for MIPS 24Kc/74Kc routers (OpenWrt's ramips and ath79 mipsel targets), built
        # the same way as armv7 musl against Debian's mipsel musl.
        TARGET_PACKAGES="gcc-mipsel-linux-gnu musl-dev:mipsel qemu-user-static"
        FOREIGN_ARCH=mipsel; TARGET_GCC=mipsel-linux-gnu-gcc; TARGET_STRIP=mipsel-linux-gnu-strip
        QEMU=qemu-mipsel-static; QEMU_PREFIX= ;;
    *)
        echo "cross: unknown target '$TARGET'; supported: aarch64-unknown-linux-musl (static, for boards)," \
            "armv7-unknown-linux-musleabihf (static, for routers), mipsel-unknown-linux-musl," \
            "aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf" >&2
        exit 2 ;;
esac

STD_ARGS=()
if [[ -n ${FOREIGN_ARCH:-} ]]; then
    # Stable cargo's unstable build-std, as fuzz/run.sh does for cargo-fuzz.
    export RUSTC_BOOTSTRAP=1
    # panic_abort: cross/build.sh's default panic strategy; panic_unwind: tests and PANIC=unwind.
    STD_ARGS=("-Zbuild-std=std,panic_unwind,panic_abort")
fi
# Where the static unwinder for a std built from source lives (cross/config.toml passes -L to it).
UNWIND_DIR=/usr/local/lib/botd-cross/$TARGET

cross_install() {
    local missing=()
    local sudo=; [[ $(id -u) -ne 0 ]] && sudo=sudo
    if [[ -n ${FOREIGN_ARCH:-} ]] && ! dpkg --print-foreign-architectures | grep -qx "$FOREIGN_ARCH"; then
        # Multiarch, for the target's musl-dev.
        $sudo dpkg --add-architecture "$FOREIGN_ARCH"
        $sudo apt-get update -q >/dev/null
    fi
    for p in $TARGET_PACKAGES; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "cross: installing ${missing[*]}" >&2
        $sudo apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [[ -z ${FOREIGN_ARCH:-} ]]; then
        rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
        return
    fi
    rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
    # std's unwind crate links a static libunwind on musl targets; Rust's prebuilt musl targets
    # bring LLVM's, which build-std does not compile. GCC's unwinder (libgcc_eh.a, ARM EHABI and
    # MIPS DWARF) provides the same _Unwind_* functions, so catch_unwind works; it only calls
    # libc functions musl has (dl_iterate_phdr). Copied under the name std asks for.
    if [[ ! -s $UNWIND_DIR/libunwind.a ]]; then
        $sudo mkdir -p "$UNWIND_DIR"
        $sudo cp "$("$TARGET_GCC" -print-file-name=libgcc_eh.a)" "$UNWIND_DIR/libunwind.a"
    fi
}

# Registers qemu for $TARGET with the kernel's binfmt_misc (root needed), so that a target binary
# started by exec runs: the integration tests start botd, and botd built without unwinding starts
# itself to check a model (cross/compare.sh).
register_binfmt() {
    local name magic mask
    case "$QEMU" in
        qemu-aarch64-static)
            name=botd-qemu-aarch64
            magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
            mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' ;;
        qemu-arm-static)
            name=botd-qemu-arm
            magic='\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00'
            mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' ;;
    esac
    local dir=/proc/sys/fs/binfmt_misc
    [[ -e $dir/register ]] || mount -t binfmt_misc binfmt_misc "$dir"
    if [[ -e $dir/$name ]]; then return; fi
    # F: qemu is opened now, so the entry works inside network namespaces too.
    printf ':%s:M::%s:%s:%s:F\n' "$name" "$magic" "$mask" "$(command -v "$QEMU")" > "$dir/register"
}
