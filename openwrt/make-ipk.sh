#!/usr/bin/env bash
# Assembles OpenWrt packages from a botd binary built here (cross/build.sh), without the SDK:
#   openwrt/make-ipk.sh BINARY ARCH OUTDIR
#   e.g. openwrt/make-ipk.sh target/armv7-unknown-linux-musleabihf/release/botd \
#            arm_cortex-a7_neon-vfpv4 target/ipk
# ARCH is the router's OpenWrt package architecture (`opkg print-architecture` on it; README.md in
# this folder lists the ones per Rust target). Writes OUTDIR/botd_VERSION-rRELEASE_ARCH.ipk and
# OUTDIR/botd-models_VERSION-rRELEASE_all.ipk in the layout of OpenWrt's ipkg-build: a gzip'd tar
# of ./debian-binary, ./control.tar.gz and ./data.tar.gz. The same files as the SDK package
# (openwrt/Makefile) installs; built reproducibly (fixed owner, mtime and order).
set -euo pipefail
BINARY="${1:?usage: openwrt/make-ipk.sh BINARY ARCH OUTDIR}"
ARCH="${2:?usage: openwrt/make-ipk.sh BINARY ARCH OUTDIR}"
OUTDIR="${3:?usage: openwrt/make-ipk.sh BINARY ARCH OUTDIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
release=$(sed -n 's/^PKG_RELEASE:=//p' "$root/openwrt/Makefile")
# The commit's time, so the same commit gives the same bytes.
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tgz() { # DIR ARCHIVE: the folder's contents as ./..., owned by root
    (cd "$1" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
        tar --null --no-recursion -T - --numeric-owner --owner=0 --group=0 \
            --mtime="@$epoch" --format=gnu -cf - | gzip -9n > "$2")
}

# PACKAGE ARCH DEPENDS DESCRIPTION: control.tar.gz + data.tar.gz of $work/PACKAGE/data -> .ipk
ipk() {
    local pkg=$1 arch=$2 depends=$3 description=$4 dir="$work/$1"
    mkdir -p "$dir/control"
    local size
    size=$(find "$dir/data" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    {
        echo "Package: $pkg"
        echo "Version: $version-r$release"
        [[ -n $depends ]] && echo "Depends: $depends"
        echo "Source: botd"
        echo "Section: net"
        echo "Architecture: $arch"
        echo "Installed-Size: $size"
        [[ $pkg == botd ]] && echo "Require-User: botd:botd"
        echo "Description: $description"
    } > "$dir/control/control"
    if [[ -d $dir/data/etc/config ]]; then
        (cd "$dir/data" && find ./etc/config -type f | sed 's/^\.//') > "$dir/control/conffiles"
    fi
    if [[ $pkg == botd ]]; then
        # OpenWrt's own postinst/prerm: default_postinst creates the user of Require-User and
        # enables the init script; nothing runs when installing into an image (IPKG_INSTROOT).
        cat > "$dir/control/postinst" <<'EOF'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_postinst "$0" "$@"
EOF
        cat > "$dir/control/prerm" <<'EOF'
#!/bin/sh
[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"
default_prerm "$0" "$@"
EOF
        chmod 0755 "$dir/control/postinst" "$dir/control/prerm"
    fi
    tgz "$dir/control" "$dir/control.tar.gz"
    tgz "$dir/data" "$dir/data.tar.gz"
    echo "2.0" > "$dir/debian-binary"
    local out="$OUTDIR/${pkg}_$version-r${release}_$arch.ipk"
    (cd "$dir" && tar --numeric-owner --owner=0 --group=0 --mtime="@$epoch" --format=gnu \
        -cf - ./debian-binary ./control.tar.gz ./data.tar.gz | gzip -9n > "$out")
    echo "$out ($(stat -c %s "$out") bytes)"
}

d="$work/botd/data"
install -D -m 0755 "$BINARY" "$d/usr/sbin/botd"
install -D -m 0755 "$root/openwrt/files/botd.init" "$d/etc/init.d/botd"
install -D -m 0600 "$root/openwrt/files/botd.config" "$d/etc/config/botd"
install -D -m 0644 "$root/openwrt/files/botd.capabilities.json" "$d/etc/capabilities/botd.json"
install -D -m 0644 "$root/config/small.toml" "$d/usr/share/botd/small.toml"
ipk botd "$ARCH" botd-models \
    "Botnet-detection sensor: flows, windows, random forests and protocol detectors; alerts to syslog"

d="$work/botd-models/data"
for m in "$root"/models/*.onnx; do
    install -D -m 0644 "$m" "$d/usr/share/botd/models/$(basename "$m")"
done
ipk botd-models all "" "botd's random-forest models (ONNX)"
