#!/usr/bin/env bash
# Where the bytes of a cross/build.sh binary go:
#   cross/size.sh TARGET [ROWS]
# Reads $CARGO_TARGET_DIR/TARGET/release/botd.syms (the unstripped twin cross/build.sh keeps) and
# prints the stripped binary's size, its xz -9 and gzip -9 sizes, and the code and data of its
# symbols summed per crate (from nm --size-sort: the equivalent of `cargo bloat --crates`, which
# would build once more). A symbol counts for the first crate named in its demangled path
# (`<tract_core::X as core::fmt::Debug>::fmt` -> tract_core); C and assembly symbols (musl,
# tract-linalg's kernels, libgcc) count as [C/asm].
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: cross/size.sh TARGET [ROWS]}"
ROWS="${2:-25}"
dir="${CARGO_TARGET_DIR:-target}/$TARGET/release"
bin="$dir/botd"
syms="$dir/botd.syms"
for f in "$bin" "$syms"; do
    [[ -f $f ]] || { echo "cross/size.sh: $f missing; run cross/build.sh $TARGET first" >&2; exit 2; }
done
size=$(stat -c %s "$bin")
echo "$TARGET: $size bytes stripped ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)," \
    "xz -9 $(xz -9 -c "$bin" | wc -c), gzip -9 $(gzip -9 -c "$bin" | wc -c)"
# mawk (Debian's awk) has no strtonum: sizes are read in hex by hand.
nm --size-sort -S --demangle=rust "$syms" | awk '
    function hex(h,    i, n) {
        n = 0
        for (i = 1; i <= length(h); i++) n = n * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
        return n
    }
    $3 ~ /^[tTrRdDvVwW]$/ {
        name = $0
        sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name)
        sub(/^</, "", name)
        sub(/^&(mut )?/, "", name)
        sub(/^dyn /, "", name)
        crate = "[C/asm]"
        if (match(name, /^[A-Za-z_][A-Za-z0-9_]*::/)) crate = substr(name, 1, RLENGTH - 2)
        by[crate] += hex($2)
        total += hex($2)
    }
    END {
        for (c in by) printf "%12d %5.1f%% %s\n", by[c], 100 * by[c] / total, c
        printf "%12d        (all symbols with a size) %s\n", total, "~"
    }' | sort -rn | awk -v rows="$ROWS" '/~$/ { sub(/ ~$/, ""); last = $0; next } NR <= rows + 1 { print } END { print last }'
