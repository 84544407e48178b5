#!/bin/sh
# The test command: install what the tests need, then format check, lint, and every test.
# Tests that register handlers do so only in private binfmt_misc instances (binfmtd sandbox).
set -eu
cd "$(dirname "$0")/.."
sh tests/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets -- --test-threads=2
sh tests/package.sh
