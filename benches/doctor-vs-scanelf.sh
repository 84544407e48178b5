#!/bin/sh
# Times `binfmtd doctor --root ROOT --all --json` (full loader, library and handler analysis)
# against `scanelf -R -i -n ROOT` (pax-utils: interpreter and DT_NEEDED only) on the same tree.
# Usage: benches/doctor-vs-scanelf.sh ROOT [RUNS]   (default 7 runs; prints medians and ratio)
# BINFMTD=path/to/binfmtd overrides the binary (default: target/release/binfmtd, built if absent).
set -eu

root=${1:?usage: doctor-vs-scanelf.sh ROOT [RUNS]}
runs=${2:-7}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BINFMTD:-$here/target/release/binfmtd}

command -v scanelf >/dev/null 2>&1 || { echo "scanelf not found: apt-get install -y pax-utils" >&2; exit 2; }
[ -d "$root" ] || { echo "no such root directory: $root" >&2; exit 2; }
if [ ! -x "$bin" ]; then
    (cd "$here" && cargo build --release --quiet)
fi

# Nanosecond wall-clock time of one command, output discarded (exit status 0/1 both fine).
elapsed_ns() {
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    echo $((end - start))
}

median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# Warm the page cache once for both, so neither pays the first cold read.
"$bin" doctor --root "$root" --all --json >/dev/null 2>&1 || true
scanelf -R -i -n "$root" >/dev/null 2>&1 || true

d_file=$(mktemp); s_file=$(mktemp)
trap 'rm -f "$d_file" "$s_file"' EXIT
i=0
while [ "$i" -lt "$runs" ]; do
    # Alternate the order to spread any drift over both tools.
    elapsed_ns "$bin" doctor --root "$root" --all --json >>"$d_file"
    elapsed_ns scanelf -R -i -n "$root" >>"$s_file"
    i=$((i + 1))
done
d=$(median <"$d_file"); s=$(median <"$s_file")
elf=$("$bin" doctor --root "$root" --all --json 2>/dev/null | sed -n 's/^    "elf": \([0-9]*\),/\1/p' | head -n1)
echo "root:            $root (${elf:-?} ELF files)"
echo "runs:            $runs (median wall time)"
echo "binfmtd doctor:  $((d / 1000000)) ms"
echo "scanelf -R -i -n: $((s / 1000000)) ms"
awk -v d="$d" -v s="$s" 'BEGIN { printf "ratio doctor/scanelf: %.2f (goal: <= 1.00)\n", d / s }'
