#!/bin/sh
# The main job end to end, safely: build, `install all` in a private binfmt_misc instance,
# run real foreign binaries, and doctor a broken one. The host's binfmt_misc is untouched.
set -eu
cd "$(dirname "$0")/.."
sh tests/deps.sh
cargo build --release --locked
BIN=$PWD/target/release/binfmtd
FIX=$PWD/target/fixtures
sh tests/fixtures/cross-bins.sh "$FIX"
echo "== host"
"$BIN" host
echo "== install all (private instance), then run foreign binaries"
STATE=$(mktemp -d)
BINFMTD_STATE_DIR=$STATE BINFMTD_BINFMT_D_DIR=$STATE/binfmt.d "$BIN" sandbox --empty -- sh -ec "
  \"$BIN\" install all
  \"$BIN\" status
  \"$FIX/cross-bins/hello-aarch64-static\"
  \"$FIX/cross-bins/hello-riscv64-static\"
  echo '== doctor: a dynamic aarch64 binary in a root without its loader'
  mkdir -p $STATE/broken-root/usr/bin
  cp \"$FIX/cross-bins/hello-aarch64-dynamic\" $STATE/broken-root/usr/bin/hello
  \"$BIN\" doctor --root $STATE/broken-root /usr/bin/hello || echo \"(doctor exit code \$?: problems found, as expected)\"
"
rm -rf "$STATE"
