#!/bin/sh
# Cold starts, both sides cold, in one run: an empty state directory and a fresh private
# binfmt_misc instance for every run of either side (never the host's instance).
#   1. `binfmtd install all --no-verify`  vs  systemd-binfmt applying Debian's qemu confs
#   2. `binfmtd install all` (every handler verified by its chrooted probe)
#                                         vs  tonistiigi/binfmt `--install all` (PEER=path)
# Needs hyperfine, qemu-user-static, systemd, a release build. The peer is never fetched or
# built here: build it yourself from its public source and pass PEER=/path/to/binfmt.
set -eu
cd "$(dirname "$0")/.."
B=${B:-$PWD/target/release/binfmtd}
PEER=${PEER:-}
RUNS=${RUNS:-30}
SD=$(command -v systemd-binfmt || echo /lib/systemd/systemd-binfmt)
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)" >&2; exit 2; }
[ -x "$B" ] || { echo "build first: cargo build --release" >&2; exit 2; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir "$W/qemu"
# tonistiigi/binfmt looks for $QEMU_BINARY_PATH/qemu-ARCH; Debian ships qemu-ARCH-static.
for f in /usr/bin/qemu-*-static; do ln -s "$f" "$W/qemu/$(basename "$f" -static)"; done
# fresh CMD: run CMD in a new user + mount namespace with its own, empty binfmt_misc.
cat > "$W/fresh" <<'SH'
#!/bin/sh
exec unshare --user --map-root-user --mount sh -c 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && exec "$@"' sh "$@"
SH
chmod +x "$W/fresh"
COLD="rm -rf $W/state && BINFMTD_STATE_DIR=$W/state BINFMTD_BINFMT_D_DIR=$W/state/binfmt.d"

hyperfine -N --warmup 3 --runs "$RUNS" \
  -n "binfmtd install all --no-verify (cold)" "sh -c '$COLD $W/fresh $B install all --no-verify'" \
  -n "systemd-binfmt qemu-*.conf" "sh -c '$W/fresh $SD /usr/lib/binfmt.d/qemu-*.conf'"
set -- -n "binfmtd install all, every handler verified (cold)" "sh -c '$COLD $W/fresh $B install all'"
if [ -n "$PEER" ]; then
  set -- "$@" -n "tonistiigi/binfmt --install all" "sh -c 'QEMU_BINARY_PATH=$W/qemu $W/fresh $PEER --install all'"
fi
hyperfine -N --warmup 3 --runs "$RUNS" "$@"
