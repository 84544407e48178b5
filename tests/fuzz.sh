#!/bin/sh
# Runs every cargo-fuzz target briefly (CI), on the stable toolchain with RUSTC_BOOTSTRAP=1:
# first every committed crash reproducer (each must now pass), then 8 seconds of fuzzing from
# the committed seeds. Long runs and their results: docs/security.md.
set -eu
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# CI's smoke run builds unoptimised (about 1.5 min from scratch instead of 5-8): the point
# here is replaying every reproducer and a short run from the seeds; long runs use -O.
cargo fuzz build --dev
bin=target/x86_64-unknown-linux-gnu/debug
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for t in $(cargo fuzz list); do
  mkdir -p "$work/$t"
  cp corpus/"$t"/seed-* "$work/$t/"
  if ls artifacts/"$t"/* >/dev/null 2>&1; then
    "$bin/$t" -runs=1 artifacts/"$t"/* >"$work/$t.replay" 2>&1 || {
      echo "fuzz: $t: a committed reproducer fails again:"; tail -30 "$work/$t.replay"; status=1; }
  fi
  if "$bin/$t" -max_total_time=8 -rss_limit_mb=1024 -timeout=10 \
      -artifact_prefix="$work/" "$work/$t" >"$work/$t.log" 2>&1; then
    echo "fuzz: $t: $(grep -o 'Done [0-9]* runs' "$work/$t.log"), no crash"
  else
    echo "fuzz: $t crashed; reproducer and log:"; ls "$work"/crash-* "$work"/timeout-* 2>/dev/null
    tail -40 "$work/$t.log"; status=1
  fi
done
exit $status
