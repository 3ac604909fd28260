# Shared by cross/build.sh and cross/test.sh: what each target needs, installed when missing.
# Sourced, not run. Sets TARGET_PACKAGES, QEMU and QEMU_PREFIX for $TARGET.

case "$TARGET" in
    aarch64-unknown-linux-gnu)
        TARGET_PACKAGES="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
        QEMU=qemu-aarch64-static; QEMU_PREFIX=/usr/aarch64-linux-gnu ;;
    aarch64-unknown-linux-musl)
        # Static: Rust ships musl; Debian's glibc cross gcc only links it. Its C headers are for
        # the C files build scripts compile (criterion's alloca, a dev-dependency).
        TARGET_PACKAGES="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static"
        QEMU=qemu-aarch64-static; QEMU_PREFIX= ;;
    armv7-unknown-linux-gnueabihf)
        TARGET_PACKAGES="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user-static"
        QEMU=qemu-arm-static; QEMU_PREFIX=/usr/arm-linux-gnueabihf ;;
    *)
        echo "cross: unknown target '$TARGET'; supported: aarch64-unknown-linux-musl (static, for boards)," \
            "aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf" >&2
        exit 2 ;;
esac

cross_install() {
    local missing=()
    for p in $TARGET_PACKAGES; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "cross: installing ${missing[*]}" >&2
        local sudo=; [[ $(id -u) -ne 0 ]] && sudo=sudo
        $sudo apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
    rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
}
