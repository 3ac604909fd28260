#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests drive (Debian's argus, ra,
# tshark, promtool, ...), then checks formatting and lints and runs every test in release mode
# (one build).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v argus >/dev/null || need+=(argus-server)
command -v ra >/dev/null || need+=(argus-client)
command -v tshark >/dev/null || need+=(tshark)
[[ -x /usr/sbin/rsyslogd ]] || need+=(rsyslog)
# tests/fleet.rs: syslog over TLS between rsyslogs (the gtls stream driver).
compgen -G '/usr/lib/*/rsyslog/lmnsd_gtls.so' >/dev/null || need+=(rsyslog-gnutls)
command -v chromium >/dev/null || need+=(chromium)
command -v tcpreplay >/dev/null || need+=(tcpreplay)
command -v ip >/dev/null || need+=(iproute2)
# tests/netns_protocols.rs: real servers and clients in network namespaces.
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v busybox >/dev/null || need+=(busybox)
# tests/openwrt.rs: the OpenWrt scripts are linted.
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v ngircd >/dev/null || need+=(ngircd)
command -v swaks >/dev/null || need+=(swaks)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
command -v iodined >/dev/null || need+=(iodine)
# tests/metrics.rs: promtool checks the Prometheus textfile.
command -v promtool >/dev/null || need+=(prometheus)
# tests/netns_quarantine.rs: botd's quarantine through Debian's nft.
command -v nft >/dev/null || need+=(nftables)
if ((${#need[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [[ ! -d ../shared/data ]]; then
    echo "tests need the shared captures at ../shared/data (relative to the project root)" >&2
    exit 1
fi

# The trainer's pinned venv: tests compare botd's forest evaluator with onnxruntime.
sh models/train/setup.sh >/dev/null

rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
# Library, binary and integration tests (no doc tests: the crate has none), then one closing line
# that sums every test binary's result. --include-ignored: the tests that need root, network
# namespaces, the tools installed above, the venv or ../shared/data are marked
# #[ignore = "system: ..."] (or "data: ...", "venv: ...") so that a plain `cargo test --release`
# runs the self-contained rest; here they all run, and fail (naming what is missing) when their
# need is not met.
mkdir -p target
set +e
cargo test --release --no-fail-fast --lib --bins --tests -- --include-ignored 2>&1 |
    tee target/test-output.txt
status=${PIPESTATUS[0]}
set -e
# Sums the `test result:` lines of the given outputs: "tests (LABEL): N passed, M failed", or
# "tests: ..." with an empty LABEL.
summary() {
    local label=$1
    shift
    cat "$@" | awk -v label="${label:+ ($label)}" '/^test result:/ { p += $4; f += $6 }
        END { printf "tests%s: %d passed, %d failed\n", label, p, f }'
}

# ARM: the static aarch64 build's test suite under qemu-user (cross/test.sh), then the router
# binary (cross/build.sh: no unwinding, so not the test suite's build) on the same captures as
# the host build, output compared byte for byte, and on hostile models (cross/compare.sh).
# CROSS=0 leaves this out of a local run; CI always runs it.
cross_status=0
if [[ ${CROSS:-1} != 0 ]]; then
    set +e
    bash cross/test.sh aarch64-unknown-linux-musl 2>&1 | tee target/test-output-aarch64.txt
    cross_status=${PIPESTATUS[0]}
    set -e
    { bash cross/build.sh aarch64-unknown-linux-musl &&
        bash cross/compare.sh aarch64-unknown-linux-musl; } || cross_status=1
    # armv7 (static, for 32-bit ARM routers): std is built from source and qemu-arm is slower,
    # so CI runs a subset under qemu (the library's unit tests, the engine and analyze
    # integration tests, the OpenWrt package with the ARM binary in it) and compare.sh;
    # cross/README.md has the timings. ARMV7=0 leaves it out.
    if [[ ${ARMV7:-1} != 0 ]]; then
        set +e
        bash cross/test.sh armv7-unknown-linux-musleabihf --lib --test engine --test analyze \
            --test openwrt 2>&1 | tee target/test-output-armv7.txt
        [[ ${PIPESTATUS[0]} -eq 0 ]] || cross_status=1
        set -e
        { bash cross/build.sh armv7-unknown-linux-musleabihf &&
            bash cross/compare.sh armv7-unknown-linux-musleabihf; } || cross_status=1
    fi
fi

# A short run of every fuzz target (fuzz/run.sh; FUZZ_SECONDS each). FUZZ=0 leaves it out.
fuzz_status=0
if [[ ${FUZZ:-1} != 0 ]]; then
    SANITIZER="${SANITIZER:-none}" bash fuzz/run.sh "${FUZZ_SECONDS:-30}" || fuzz_status=1
fi

summary x86_64 target/test-output.txt
outputs=(target/test-output.txt)
if [[ ${CROSS:-1} != 0 ]]; then
    summary "aarch64 under qemu" target/test-output-aarch64.txt
    outputs+=(target/test-output-aarch64.txt)
    if [[ ${ARMV7:-1} != 0 ]]; then
        summary "armv7 under qemu, subset" target/test-output-armv7.txt
        outputs+=(target/test-output-armv7.txt)
    fi
fi
summary "" "${outputs[@]}"
[[ $status -eq 0 && $cross_status -eq 0 && $fuzz_status -eq 0 ]]
