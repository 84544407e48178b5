#!/bin/sh
# Times a single-pass `binfmtd ps --sample 0 --json` against `ps -e -o pid,stat,comm,wchan` with
# about 2,000 processes: N native sleepers plus 3 emulated aarch64 programs, all started inside
# a private binfmt_misc instance (`binfmtd sandbox`), never the host's.
# Usage: benches/ps.sh [N] [RUNS]   (defaults 2000 and 9; prints medians and the ratio)
# BINFMTD=path/to/binfmtd overrides the binary (default: target/release/binfmtd, built if absent).
set -eu

n=${1:-2000}
runs=${2:-9}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BINFMTD:-$here/target/release/binfmtd}
[ -x "$bin" ] || (cd "$here" && cargo build --release --quiet)
sh "$here/tests/fixtures/cross-bins.sh" "$here/target/fixtures" >/dev/null
hang=$here/target/fixtures/cross-bins/hang-aarch64
tmp=$(mktemp -d)

# The sandbox: emulated programs, then N sleepers, then a marker file; it waits until killed.
BINFMTD_STATE_DIR=$tmp/state BINFMTD_CONFIG_DIR=$tmp/config BINFMTD_BINFMT_D_DIR=$tmp/d \
setsid "$bin" sandbox --platform linux/arm64 -- sh -c "
    $hang pipe & $hang futex & $hang pipe &
    i=0; while [ \$i -lt $n ]; do sleep 3600 & i=\$((i + 1)); done
    touch $tmp/ready; wait" </dev/null >/dev/null 2>&1 &
leader=$!
cleanup() { kill -KILL -- "-$leader" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
while [ ! -e "$tmp/ready" ]; do sleep 0.2; done
echo "processes: $(ls -d /proc/[0-9]* | wc -l); emulated: $("$bin" ps --sample 0 --json | grep -c '"pid"')"

elapsed_ns() {
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    echo $((end - start))
}
median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
: >"$tmp/a"; : >"$tmp/b"
i=0
while [ $i -lt "$runs" ]; do
    elapsed_ns "$bin" ps --sample 0 --json >>"$tmp/a"
    elapsed_ns ps -e -o pid,stat,comm,wchan >>"$tmp/b"
    i=$((i + 1))
done
a=$(median <"$tmp/a"); b=$(median <"$tmp/b")
echo "binfmtd ps --sample 0: median $((a / 1000)) us"
echo "ps -e -o pid,stat,comm,wchan: median $((b / 1000)) us"
awk -v a="$a" -v b="$b" 'BEGIN { printf "ratio binfmtd/ps: %.2f\n", a / b }'
