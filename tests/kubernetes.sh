#!/bin/sh
# The Kubernetes manifests: every YAML under packaging/kubernetes/ passes
# `kubernetes-validate --strict`; the DaemonSet's readiness list equals its ConfigMap's
# platforms; and the container's own command and probe commands, taken from the YAML, work as
# the kubelet would run them: the daemon in a private binfmt_misc instance, then the readiness
# and liveness commands exit 0 (and readiness exits 1 after the daemon is gone).
# Usage: kubernetes.sh BINFMTD   (from the crate root)
set -eu
bin=$(realpath "${1:?usage: kubernetes.sh BINFMTD}")
top=$(pwd)/target/fixtures
sh tests/fixtures/py-tools.sh "$top"
py=$top/py-tools/bin
for f in packaging/kubernetes/*.yaml; do
  "$py/kubernetes-validate" --strict --quiet "$f" || { echo "kubernetes: $f is not valid" >&2; exit 1; }
done
echo "kubernetes: every manifest passes kubernetes-validate --strict"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Pull the pieces out of the DaemonSet (PyYAML comes with kubernetes-validate).
"$py/python" - packaging/kubernetes/daemonset.yaml "$work" <<'PY'
import sys, yaml, tomllib, shlex
docs = list(yaml.safe_load_all(open(sys.argv[1])))
out = sys.argv[2]
cm = next(d for d in docs if d["kind"] == "ConfigMap")
ds = next(d for d in docs if d["kind"] == "DaemonSet")
c = ds["spec"]["template"]["spec"]["containers"][0]
toml = cm["data"]["binfmtd.toml"]
open(f"{out}/binfmtd.toml", "w").write(toml)
wanted = tomllib.loads(toml)["platforms"]
ready = c["readinessProbe"]["exec"]["command"]
req = next(a for a in ready if a.startswith("--require=")).split("=", 1)[1].split(",")
if sorted(req) != sorted(wanted):
    sys.exit(f"readinessProbe requires {req}, the ConfigMap keeps {wanted}")
# The metrics file goes into the test's directory instead of the node's.
args = [a.replace("/var/lib/node-exporter/textfile", out) for a in c["args"]]
open(f"{out}/args", "w").write(shlex.join(args))
open(f"{out}/ready", "w").write(shlex.join(ready[1:]))
open(f"{out}/live", "w").write(shlex.join(c["livenessProbe"]["exec"]["command"][1:]))
PY
echo "kubernetes: readinessProbe requires exactly the ConfigMap's platforms"

unshare --user --map-root-user --mount sh -eu -c '
bin=$1 work=$2
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
export BINFMTD_CONFIG_DIR=$work BINFMTD_STATE_DIR=$work/state BINFMTD_BINFMT_D_DIR=$work/binfmt.d
eval "set -- $(cat "$work/args")"
"$bin" "$@" >/dev/null 2>"$work/daemon.log" &
pid=$!
trap "kill $pid 2>/dev/null || true" EXIT
eval "set -- $(cat "$work/ready")"
i=0
until "$bin" "$@" >"$work/ready.out" 2>&1; do
  i=$((i + 1)); [ $i -lt 300 ] || { cat "$work/ready.out" "$work/daemon.log" >&2; echo "kubernetes: never ready" >&2; exit 1; }
  sleep 0.1
done
echo "kubernetes: readinessProbe passed after $((i * 100)) ms"
eval "set -- $(cat "$work/live")"
"$bin" "$@" >/dev/null || { echo "kubernetes: livenessProbe failed with the daemon running" >&2; exit 1; }
[ -s "$work/binfmtd.prom" ] || { echo "kubernetes: no metrics file" >&2; exit 1; }
kill $pid; wait $pid || true
eval "set -- $(cat "$work/live")"
if "$bin" "$@" >/dev/null 2>&1; then echo "kubernetes: livenessProbe passed with the daemon gone" >&2; exit 1; fi
echo "kubernetes: livenessProbe passes while the daemon runs and fails once it is gone"
' sh "$bin" "$work"
