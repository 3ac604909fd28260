#!/usr/bin/env bash
# Builds and runs every fuzz target for SECONDS each (default 20), one after the other.
#   bash fuzz/run.sh 20          # CI: a short smoke run of each target
#   bash fuzz/run.sh 600         # development: ten minutes each
#   JOBS=2 bash fuzz/run.sh 600  # two targets at a time
# Needs only the stable toolchain: cargo-fuzz's nightly flags are enabled with RUSTC_BOOTSTRAP=1.
# The build goes to CARGO_TARGET_DIR (default /work/fuzz-target if /work exists, else fuzz/target)
# so it never disturbs the main build. A crash leaves its input in fuzz/artifacts/<target>/ and
# makes the script fail; add such inputs to tests/fuzz_regressions/ with a test in
# tests/hardening.rs.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-20}"
TARGETS=(${TARGETS:-pcap_reader frame_to_table config_toml model_onnx app_payload intel_feed})
JOBS="${JOBS:-1}"
export RUSTC_BOOTSTRAP=1
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
    if [[ -d /work ]]; then export CARGO_TARGET_DIR=/work/fuzz-target; else export CARGO_TARGET_DIR="$PWD/target"; fi
fi
# AddressSanitizer by default (it checks the forest evaluator's unchecked indexing);
# SANITIZER=none when the toolchain cannot build it.
SANITIZER="${SANITIZER:-address}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Seeds from ../shared/data (adds to the corpus, never removes).
if [[ -d ../../shared/data ]]; then
    python3 seed.py
fi

# -a: debug assertions and overflow checks, so arithmetic overflow on hostile input is found too.
build() { cargo fuzz build -O -a -s "$SANITIZER" "$@"; }
if ! build; then
    echo "fuzz build with -s $SANITIZER failed; retrying without a sanitizer" >&2
    SANITIZER=none
    build
fi

# Per-target libFuzzer options: small inputs, and a memory limit that turns a runaway
# allocation (a hostile length or count) into a reported crash.
opts() {
    case "$1" in
        model_onnx) echo "-max_len=16384 -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=20" ;;
        pcap_reader) echo "-max_len=16384 -rss_limit_mb=2048 -timeout=10" ;;
        *) echo "-max_len=8192 -rss_limit_mb=2048 -timeout=10" ;;
    esac
}

run_one() {
    local t=$1
    mkdir -p "corpus/$t"
    local rc=0
    # shellcheck disable=SC2046
    cargo fuzz run -O -a -s "$SANITIZER" "$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 $(opts "$t") \
        > "$CARGO_TARGET_DIR/fuzz-$t.log" 2>&1 || rc=$?
    tail -n 12 "$CARGO_TARGET_DIR/fuzz-$t.log"
    if [[ $rc -ne 0 ]]; then
        echo "fuzz target $t FAILED (rc $rc); log: $CARGO_TARGET_DIR/fuzz-$t.log; inputs: fuzz/artifacts/$t/" >&2
    fi
    return $rc
}

failed=()
if [[ "$JOBS" -le 1 ]]; then
    for t in "${TARGETS[@]}"; do
        echo "== $t: ${SECONDS_EACH}s" >&2
        run_one "$t" || failed+=("$t")
    done
else
    pids=()
    for t in "${TARGETS[@]}"; do
        while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do sleep 1; done
        echo "== $t: ${SECONDS_EACH}s" >&2
        run_one "$t" &
        pids+=("$!:$t")
    done
    for p in "${pids[@]}"; do wait "${p%%:*}" || failed+=("${p#*:}"); done
fi
if ((${#failed[@]})); then
    echo "fuzzing found crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzzing: all targets ran ${SECONDS_EACH}s without a crash" >&2
