#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests drive (Debian's argus, ra,
# tshark), then checks formatting and lints and runs every test in release mode (one build).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v argus >/dev/null || need+=(argus-server)
command -v ra >/dev/null || need+=(argus-client)
command -v tshark >/dev/null || need+=(tshark)
[[ -x /usr/sbin/rsyslogd ]] || need+=(rsyslog)
command -v chromium >/dev/null || need+=(chromium)
command -v tcpreplay >/dev/null || need+=(tcpreplay)
command -v ip >/dev/null || need+=(iproute2)
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
# that sums every test binary's result.
mkdir -p target
set +e
cargo test --release --no-fail-fast --lib --bins --tests 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' \
    target/test-output.txt
exit "$status"
