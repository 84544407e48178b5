#!/usr/bin/env bash
# Benchmark: `binfmtd install all` against systemd-binfmt applying Debian's qemu binfmt.d files,
# both in fresh private binfmt_misc instances (never the host's), interleaved, as a ratio.
# Also reports probe-verification time and how it scales with the number of handlers.
#
# Usage: benches/install.sh [RUNS]        (needs: cargo build --release, qemu-user-static, systemd)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-15}
BIN=${BINFMTD_BIN:-$PWD/target/release/binfmtd}
SD=$(command -v systemd-binfmt || echo /lib/systemd/systemd-binfmt)
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -x "$SD" ] || { echo "systemd-binfmt not found (apt-get install systemd)" >&2; exit 2; }
CONFS=(/usr/lib/binfmt.d/qemu-*.conf)
[ -e "${CONFS[0]}" ] || { echo "no Debian qemu confs (apt-get install qemu-user-static)" >&2; exit 2; }
STATE=$(mktemp -d)
trap 'rm -rf "$STATE"' EXIT
export BINFMTD_STATE_DIR=$STATE BINFMTD_BINFMT_D_DIR=$STATE/binfmt.d

# Time one command in a fresh private instance; prints milliseconds.
private() { # private CMD...: run CMD inside a new user+mount namespace with its own binfmt_misc
  unshare --user --map-root-user --mount sh -c 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && exec "$@"' sh "$@"
}
ms() {
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null 2>&1 || echo "warning: '$*' exited $?" >&2; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.0f", m}'; }

# Warm the per-boot cache (native probes, interpreter facts), as a repeated install has it.
private "$BIN" install all --no-verify >/dev/null

a=(); b=(); c=()
for _ in $(seq "$RUNS"); do
  a+=("$(ms private "$BIN" install all --no-verify)")
  b+=("$(ms private "$SD" "${CONFS[@]}")")
  c+=("$(ms private "$BIN" install all)")
done
ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median); mc=$(printf '%s\n' "${c[@]}" | median)
n_ours=$(private "$BIN" install all --json --no-verify | grep -c '"action": "register"' || true)
echo "runs: $RUNS (interleaved), medians in microseconds, each in a fresh private binfmt_misc instance"
echo "binfmtd install all --no-verify ($n_ours handlers): $ma us"
echo "systemd-binfmt Debian qemu confs (${#CONFS[@]} files):  $mb us"
awk -v a="$ma" -v b="$mb" 'BEGIN {printf "ratio binfmtd/systemd-binfmt (registration only): %.2f\n", a/b}'
echo "binfmtd install all (every handler verified by a probe): $mc us"

echo "probe verification time by handler count (binfmtd's own probe_seconds, median of $RUNS):"
mapfile -t ALL < <(ls interpreters | sed -n 's/^\(qemu-[a-z0-9_]*\)\.toml$/\1/p' | grep -vE 'qemu-(x86_64|i386|i486)$')
for n in 1 4 8 16 ${#ALL[@]}; do
  list=$(IFS=,; echo "${ALL[*]:0:$n}")
  t=$(for _ in $(seq "$RUNS"); do private "$BIN" install "$list" --json | sed -n 's/.*"probe_seconds": \([0-9.e-]*\).*/\1/p'; done | awk '{printf "%d\n", $1*1000000}' | median)
  echo "  $n handlers: $t us"
done
