#!/bin/sh
# The composite action (action.yml): valid against the GitHub Actions schema
# (check-jsonschema --builtin-schema vendor.github-actions, from PyPI), and its steps run as a
# runner would (tests/action/runner.py: bash with the inputs as environment) in a private
# binfmt_misc instance: the output lists the verified platforms, and a requested platform that
# cannot be registered fails the step. The download path (no binfmtd given) is not run here.
# Usage: action.sh BINFMTD   (from the crate root)
set -eu
bin=$(realpath "${1:?usage: action.sh BINFMTD}")
top=$(pwd)/target/fixtures
sh tests/fixtures/py-tools.sh "$top"
py=$top/py-tools/bin
"$py/check-jsonschema" --builtin-schema vendor.github-actions action.yml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The workflow in the user guide (its only yaml block) is a valid workflow.
awk '/^```yaml$/ {on=1; next} /^```$/ {on=0} on' docs/guide.md > "$work/workflow.yml"
[ -s "$work/workflow.yml" ] || { echo "action: no workflow in docs/guide.md" >&2; exit 1; }
"$py/check-jsonschema" --builtin-schema vendor.github-workflows "$work/workflow.yml"
unshare --user --map-root-user --mount sh -eu -c '
py=$1 bin=$2 work=$3
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
export BINFMTD_STATE_DIR=$work/state BINFMTD_BINFMT_D_DIR=$work/binfmt.d BINFMTD_CONFIG_DIR=$work/etc
"$py/python" tests/action/runner.py action.yml platforms=linux/arm64,riscv64 binfmtd="$bin" > "$work/ok.json"
# A runner whose qemu lacks s390x: a drop-in points qemu-s390x at a missing interpreter.
mkdir -p "$work/etc/interpreters.d"
sed "s|^interpreters.*|interpreters = [\"/nonexistent/qemu-s390x-static\"]|" interpreters/qemu-s390x.toml > "$work/etc/interpreters.d/qemu-s390x.toml"
"$py/python" tests/action/runner.py action.yml platforms=linux/ppc64le,linux/s390x binfmtd="$bin" > "$work/fail.json"
"$py/python" tests/action/runner.py action.yml platforms=linux/arm64 persist=maybe binfmtd="$bin" > "$work/bad.json"
' sh "$py" "$bin" "$work"
"$py/python" - "$work" <<'PY'
import json, sys
w = sys.argv[1]
ok, fail, bad = (json.load(open(f"{w}/{n}.json")) for n in ("ok", "fail", "bad"))
def check(cond, what, doc):
    if not cond:
        sys.exit(f"action: {what}\n{doc['log']}")
plats = ok["outputs"]["platforms"].split(",")
check(ok["ok"], "the step failed for linux/arm64,riscv64", ok)
check("linux/arm64" in plats and "linux/riscv64" in plats and "linux/amd64" in plats, f"output platforms={plats}", ok)
check(not fail["ok"] and fail["failed_step"] == "install", "a missing s390x interpreter did not fail the step", fail)
check("::error::linux/s390x (qemu-s390x)" in fail["log"], "no ::error:: line naming s390x", fail)
check("linux/ppc64le" in fail["outputs"]["platforms"].split(","), "the output lacks ppc64le, which did register", fail)
check(not bad["ok"] and "input persist must be true or false" in bad["log"], "a bad persist input was accepted", bad)
print("action: output", ok["outputs"]["platforms"])
print("action: a failed platform fails the step; a bad input is refused")
PY
