#!/bin/sh
# The test command: install what the tests need, then format check, lint, every test, and the
# Debian package. Tests that register handlers do so only in private binfmt_misc instances.
set -eu
cd "$(dirname "$0")/.."
sh tests/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log" "$log.rc"' EXIT
status=0
# (dash has no pipefail: keep cargo's own exit status beside the log)
{ cargo test --locked --all-targets -- --test-threads=2 2>&1; echo "$?" > "$log.rc"; } | tee "$log"
[ "$(cat "$log.rc")" = 0 ] || status=1
# Every fuzz target briefly, and every committed crash reproducer (tests/fuzz.sh).
sh tests/fuzz.sh || status=1
sh tests/package.sh || status=1
# Manifests and the CI action, run as the kubelet and a runner would (private instances).
sh tests/kubernetes.sh target/release/binfmtd || status=1
sh tests/action.sh target/release/binfmtd || status=1
# One closing line over every test binary cargo ran.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit $status
