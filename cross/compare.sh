#!/usr/bin/env bash
# Checks that botd built for an ARM target writes byte for byte what the host build writes:
#   cross/compare.sh TARGET [CAPTURE...]
# Runs `botd flows` (windowed CSV, and JSON) and `botd analyze` (JSON and the host table) with
# the host's $CARGO_TARGET_DIR/release/botd and the target's $CARGO_TARGET_DIR/TARGET/release/botd
# (under qemu-user), and compares the outputs with cmp; HOST_BOTD overrides the host binary.
# Build both first (tests/run.sh and cross/test.sh do). Default captures: the bundled demo and
# three real ones from ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: cross/compare.sh TARGET [CAPTURE...]}"
shift
# shellcheck source=/dev/null
source cross/common.sh
dir="${CARGO_TARGET_DIR:-target}"
host_botd="${HOST_BOTD:-$dir/release/botd}"
target_botd="$dir/$TARGET/release/botd"
for b in "$host_botd" "$target_botd"; do
    [[ -x $b ]] || { echo "cross/compare.sh: $b missing; build it first" >&2; exit 2; }
done
captures=("$@")
if ((${#captures[@]} == 0)); then
    data=../shared/data
    captures=(tests/data/demo.pcap
        "$data/debian-registry/pathspider/real.pcap"
        "$data/malcolm-pcap/plugins/zeek-agenttesla-detector/db9f075c-7879-4957-923a-f79fac957a2d.pcap"
        "$data/chrissanders-packets/ek_to_cryptowall4.pcapng")
fi
run_target() { QEMU_LD_PREFIX="$QEMU_PREFIX" "$QEMU" "$target_botd" "$@"; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=0
compare() { # NAME: compares $out/host-NAME with $out/target-NAME
    if cmp -s "$out/host-$1" "$out/target-$1"; then
        echo "same: $1 ($(stat -c %s "$out/host-$1") bytes)"
    else
        echo "DIFFERENT: $1" >&2
        diff "$out/host-$1" "$out/target-$1" | head -n 20 >&2 || true
        failed=1
    fi
}
for c in "${captures[@]}"; do
    name=$(basename "$c")
    for side in host target; do
        if [[ $side == host ]]; then botd=("$host_botd"); else botd=(run_target); fi
        start=$(date +%s%N)
        "${botd[@]}" flows --window 300 --overlap 150 "$c" > "$out/$side-$name.flows.csv" 2>/dev/null
        "${botd[@]}" flows --format json "$c" > "$out/$side-$name.flows.json" 2>/dev/null
        "${botd[@]}" analyze --json "$out/$side-$name.analyze.json" "$c" > "$out/$side-$name.analyze.txt" 2>/dev/null
        echo "$side $name: $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
    done
    for kind in flows.csv flows.json analyze.json analyze.txt; do compare "$name.$kind"; done
done
if ((failed)); then
    echo "cross/compare.sh: $TARGET output differs from the host's" >&2
    exit 1
fi
echo "cross/compare.sh: $TARGET and host outputs identical on ${#captures[@]} captures"
