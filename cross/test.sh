#!/usr/bin/env bash
# Runs botd's test suite for an ARM target under qemu-user:
#   cross/test.sh TARGET                   # every test (but one, below), the #[ignore]d
#                                          # system and data tests included, as in tests/run.sh
#   cross/test.sh TARGET --test live       # cargo test's target selection instead of all
# Test binaries run through the runner in cross/config.toml; the botd binary the integration
# tests spawn (directly or via `ip netns exec`) runs through a binfmt_misc entry for qemu, which
# this script registers (root needed, as for the live-capture tests anyway). Everything else the
# tests start (argus, ra, tshark, rsyslogd, python, chromium) is the host's own.
# Prerequisites of the x86 suite (tests/run.sh installs them) apply here too.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: cross/test.sh TARGET [cargo test target selection]}"
shift
# shellcheck source=/dev/null
source cross/common.sh
cross_install

if ! register_binfmt; then
    echo "cross/test.sh: cannot register qemu with binfmt_misc (needs root and a mountable" \
        "binfmt_misc); the integration tests that run the botd binary would fail" >&2
    exit 1
fi
export QEMU_LD_PREFIX="$QEMU_PREFIX"
# The one test left out: the TPACKET_V3 ring needs SOL_PACKET socket options (PACKET_VERSION,
# PACKET_RX_RING), which qemu-user does not translate (ENOPROTOOPT). It runs on x86_64; on a board
# `botd run --capture ring` is the same code. Everything else, live pnet capture in a network
# namespace included, runs here.
selection=("$@")
((${#selection[@]})) || selection=(--lib --bins --tests)
cargo test --locked --release --config cross/config.toml --target "$TARGET" "${STD_ARGS[@]}" \
    --no-fail-fast "${selection[@]}" -- --include-ignored --skip run_ring_end_to_end
