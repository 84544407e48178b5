#!/bin/sh
# Cold and warm `install all`, against both peers, in one run. Every run of either side gets
# a fresh private binfmt_misc instance (a new user + mount namespace: never the host's
# instance), through the same wrapper.
#   cold: binfmtd's state directory is emptied before each run (not timed: --prepare), so
#         no fact or probe cache exists; warm: it is kept from the run before.
#   1. `binfmtd install all --no-verify`  vs  systemd-binfmt applying Debian's qemu confs
#   2. `binfmtd install all` (every handler verified by its chrooted probe)
#                                         vs  tonistiigi/binfmt `--install all` (PEER=path)
# Needs hyperfine, qemu-user-static, systemd, a release build. The peer is never fetched or
# built here: build it from its public source and pass PEER=/path/to/binfmt (see
# docs/benchmarks.md). RUNS=30 by default; results also in $OUT (default: a temp file).
set -eu
cd "$(dirname "$0")/.."
B=${B:-$PWD/target/release/binfmtd}
PEER=${PEER:-}
RUNS=${RUNS:-30}
SD=$(command -v systemd-binfmt || echo /lib/systemd/systemd-binfmt)
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)" >&2; exit 2; }
[ -x "$B" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -x "$SD" ] || { echo "systemd-binfmt not found (apt-get install systemd)" >&2; exit 2; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
OUT=${OUT:-$W/results.md}
mkdir "$W/qemu"
# tonistiigi/binfmt looks for $QEMU_BINARY_PATH/qemu-ARCH; Debian ships qemu-ARCH-static.
for f in /usr/bin/qemu-*-static; do ln -s "$f" "$W/qemu/$(basename "$f" -static)"; done
# fresh CMD: run CMD in a new user + mount namespace with its own, empty binfmt_misc.
cat > "$W/fresh" <<'SH'
#!/bin/sh
exec unshare --user --map-root-user --mount sh -c 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && exec "$@"' sh "$@"
SH
cat > "$W/binfmtd" <<SH
#!/bin/sh
BINFMTD_STATE_DIR=$W/state BINFMTD_BINFMT_D_DIR=$W/state/binfmt.d exec $W/fresh $B install all "\$@"
SH
cat > "$W/systemd-binfmt" <<SH
#!/bin/sh
exec $W/fresh $SD /usr/lib/binfmt.d/qemu-*.conf
SH
cat > "$W/peer" <<SH
#!/bin/sh
QEMU_BINARY_PATH=$W/qemu exec $W/fresh $PEER --install all
SH
chmod +x "$W/fresh" "$W/binfmtd" "$W/systemd-binfmt" "$W/peer"

pair() { # TITLE PREPARE BINFMTD_ARGS PEER_SCRIPT
  echo "## $1" | tee -a "$OUT"
  hyperfine -N --style basic --warmup 3 --runs "$RUNS" --prepare "$2" \
    --export-markdown "$W/part.md" \
    -n "binfmtd install all $3" "$W/binfmtd $3" -n "$(basename "$4")" "$4"
  cat "$W/part.md" >> "$OUT"
}
pair "cold, no verification" "rm -rf $W/state" "--no-verify" "$W/systemd-binfmt"
pair "warm, no verification" "true" "--no-verify" "$W/systemd-binfmt"
if [ -n "$PEER" ]; then
  pair "cold, every handler verified" "rm -rf $W/state" "" "$W/peer"
  pair "warm, every handler verified" "true" "" "$W/peer"
else
  echo "PEER not set: the comparisons with tonistiigi/binfmt are left out" >&2
fi
echo "results: $OUT"
cat "$OUT"
