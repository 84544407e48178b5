#!/bin/sh
# Compare verified and registration-only installs with their peers, in throw-away binfmt_misc
# instances (Linux >= 6.7, unprivileged user namespaces). Nothing touches the host's binfmt_misc.
# Needs: Debian's qemu-user-static and hyperfine, a release build of binfmtd, and optionally a
# tonistiigi/binfmt binary you built yourself from its public source (PEER=/path/to/binfmt).
# This script never fetches or builds the peer.
set -eu
cd "$(dirname "$0")/.."
B=${B:-$PWD/target/release/binfmtd}
PEER=${PEER:-}
RUNS=${RUNS:-30}
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)" >&2; exit 2; }
[ -x "$B" ] || { echo "build first: cargo build --release" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/qemu" "$WORK/warm"
# tonistiigi/binfmt looks for $QEMU_BINARY_PATH/qemu-ARCH; Debian ships qemu-ARCH-static.
for f in /usr/bin/qemu-*-static; do ln -s "$f" "$WORK/qemu/$(basename "$f" -static)"; done
NS="unshare --user --map-root-user --mount sh -c"
MNT="mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"
COUNT="ls /proc/sys/fs/binfmt_misc | grep -cv -e '^register\$' -e '^status\$'"

echo "entries registered:"
echo "  binfmtd install all:             $($B sandbox --empty -- sh -c "$B install all >/dev/null; $COUNT")"
echo "  systemd-binfmt qemu-*.conf:      $($NS "$MNT && /lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-*.conf; $COUNT")"
if [ -n "$PEER" ]; then
  echo "  tonistiigi/binfmt --install all: $($NS "$MNT && QEMU_BINARY_PATH=$WORK/qemu $PEER --install all >/dev/null 2>&1; $COUNT")"
fi

set -- \
  -n "binfmtd install all (cold)" "rm -rf $WORK/cold && BINFMTD_STATE_DIR=$WORK/cold $B sandbox --empty -- $B install all" \
  -n "binfmtd install all (warm)" "BINFMTD_STATE_DIR=$WORK/warm $B sandbox --empty -- $B install all"
if [ -n "$PEER" ]; then
  set -- "$@" -n "tonistiigi/binfmt --install all" "$NS '$MNT && QEMU_BINARY_PATH=$WORK/qemu exec $PEER --install all'"
fi
hyperfine --warmup 2 --runs "$RUNS" "$@"

hyperfine --warmup 2 --runs "$RUNS" \
  -n "binfmtd install all --no-verify (warm)" "BINFMTD_STATE_DIR=$WORK/warm $B sandbox --empty -- $B install all --no-verify" \
  -n "systemd-binfmt qemu-*.conf" "$NS '$MNT && exec /lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-*.conf'"
