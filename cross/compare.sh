#!/usr/bin/env bash
# Checks that botd built for an ARM target writes byte for byte what the host build writes:
#   cross/compare.sh TARGET [CAPTURE...]
# Runs `botd flows` (windowed CSV, and JSON) and `botd analyze` (JSON and the host table) with
# the host's $CARGO_TARGET_DIR/release/botd and the target's $CARGO_TARGET_DIR/TARGET/release/botd
# (under qemu-user), and compares the outputs with cmp; HOST_BOTD overrides the host binary.
# Build both first (tests/run.sh does: the target's with cross/build.sh). Default captures: the
# bundled demo and three real ones from ../shared/data.
# Then the target build's model loading: the shipped models/ load, every hostile model of
# tests/fuzz_regressions/model_onnx/ is refused with its reason by a process that lives, and
# `botd __check-model` (the child that checks a model for a build that aborts on panic) dies by
# SIGABRT on a graph that panics tract. PANIC: how the target binary was built, abort
# (cross/build.sh's default) or unwind (PANIC=unwind cross/build.sh, or cross/test.sh's build).
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
# botd without unwinding runs itself (exec) to check a model.
register_binfmt || { echo "cross/compare.sh: cannot register qemu with binfmt_misc (root needed)" >&2; exit 1; }
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

PANIC="${PANIC:-abort}"
bad() { # WHAT: a failed model check, with the target's output
    echo "FAILED: $1" >&2
    head -n 20 "$out/run.txt" >&2
    failed=1
}
# STATUS of the target botd with ARGS, its stdout and stderr in $out/run.txt.
run_status() { set +e; run_target "$@" > "$out/run.txt" 2>&1; status=$?; set -e; }
run_status models --dir models
if ((status == 0)); then echo "loads: models/ ($(grep -c '^  forest:' "$out/run.txt") forests)"; else bad "models/ (exit $status)"; fi
regressions=tests/fuzz_regressions/model_onnx
for model in "$regressions"/*.onnx; do
    name=$(basename "$model")
    mkdir -p "$out/$name.d"
    cp "$model" "$out/$name.d/"
    run_status analyze --models "$out/$name.d" tests/data/demo.pcap
    # What refuses each one (in both builds, but for the tree ensemble that tract scores).
    case "$name/$PANIC" in
        small-forest-flip-4850.onnx/*) reason="is produced by no node" ;;
        tract-tree-leaf-out-of-range.onnx/abort) reason="this build of botd aborts on a panic" ;;
        tract-tree-leaf-out-of-range.onnx/unwind) reason= ;; # loads; tract's panics caught per score
        *) reason=": " ;; # a new regression: refused, naming the file
    esac
    # 101: an uncaught panic; 128 + N: killed by signal N (an abort is 134).
    if ((status >= 128 || status == 101)); then
        bad "$name: botd died (exit $status)"
    elif [[ -z $reason ]]; then
        if ((status == 0)); then echo "scored: $name (tract's panics caught)"; else bad "$name: exit $status"; fi
    elif ((status == 1)) && grep -qF "botd: error: $out/$name.d/$name: " "$out/run.txt" &&
        grep -qF "$reason" "$out/run.txt"; then
        echo "refused: $name ($(grep -o 'botd: error: .*' "$out/run.txt" | cut -c 1-150 | sed "s|$out/||"))"
    else
        bad "$name: not refused as expected (exit $status, expected \"$reason\")"
    fi
done
# The child itself: a clean error (exit 1, the message on stderr) for a file that is no model,
# SIGABRT (128 + 6) for a graph that panics tract (past the parent's own check of graph outputs).
run_status __check-model -- tests/data/demo.pcap
if ((status == 1)) && grep -q '^not an ONNX model' "$out/run.txt"; then echo "child refuses: demo.pcap"; else bad "__check-model demo.pcap: exit $status"; fi
run_status __check-model -- "$regressions/small-forest-flip-4850.onnx"
if ((status == 134)); then echo "child aborts: small-forest-flip-4850.onnx"; else bad "__check-model small-forest-flip-4850.onnx: exit $status"; fi
if ((failed)); then
    echo "cross/compare.sh: $TARGET ($PANIC) model checks failed" >&2
    exit 1
fi
echo "cross/compare.sh: $TARGET ($PANIC) loads models/ and refuses hostile models without dying"
