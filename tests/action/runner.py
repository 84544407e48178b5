"""Runs the composite action in action.yml the way a GitHub runner does, for tests/action.sh.

Each step's `env` gets `${{ inputs.X }}` and `${{ steps.ID.outputs.Y }}` substituted, its `run`
script is executed with `bash --noprofile --norc -eo pipefail` (the runner's bash), and
`$GITHUB_OUTPUT` collects its outputs; the action's outputs are then resolved. Prints one JSON
object: {"ok": bool, "failed_step": id|null, "outputs": {...}, "log": "..."}.
Usage: runner.py ACTION_YML INPUT=VALUE...
"""
import json, os, re, subprocess, sys, tempfile
import yaml

action = yaml.safe_load(open(sys.argv[1]))
inputs = {k: str(v.get("default", "")) for k, v in action.get("inputs", {}).items()}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    if k not in inputs:
        sys.exit(f"action.yml has no input {k}")
    inputs[k] = v
steps = {}

def expr(text):
    def one(m):
        e = m.group(1).strip()
        if e.startswith("inputs."):
            return inputs[e[len("inputs."):]]
        g = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", e)
        if g:
            return steps.get(g.group(1), {}).get(g.group(2), "")
        if e == "github.action_path":
            return os.path.dirname(os.path.abspath(sys.argv[1]))
        sys.exit(f"unsupported expression {e}")
    return re.sub(r"\$\{\{(.*?)\}\}", one, str(text))

def outputs_of(path):
    out, lines, i = {}, open(path).read().splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and "=" not in line.split("<<")[0]:
            k, delim = line.split("<<", 1)
            i += 1
            val = []
            while lines[i] != delim:
                val.append(lines[i]); i += 1
            out[k] = "\n".join(val)
        elif "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
        i += 1
    return out

log, ok, failed = [], True, None
for step in action["runs"]["steps"]:
    assert step.get("shell") == "bash", "every step runs in bash"
    assert "${{" not in step["run"], f"step {step['id']}: expressions belong in env, not in the script"
    with tempfile.TemporaryDirectory() as d:
        script, gh_out = os.path.join(d, "step.sh"), os.path.join(d, "output")
        open(script, "w").write(step["run"])
        open(gh_out, "w").close()
        env = dict(os.environ, GITHUB_OUTPUT=gh_out, RUNNER_TEMP=d,
                   GITHUB_ACTION_PATH=os.path.dirname(os.path.abspath(sys.argv[1])))
        env.update({k: expr(v) for k, v in step.get("env", {}).items()})
        p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", script],
                           env=env, capture_output=True, text=True)
        log.append(f"--- step {step['id']} (exit {p.returncode})\n{p.stdout}{p.stderr}")
        steps[step["id"]] = outputs_of(gh_out)
    if p.returncode != 0:
        ok, failed = False, step["id"]
        break
outputs = {k: expr(v["value"]) for k, v in action.get("outputs", {}).items()}
print(json.dumps({"ok": ok, "failed_step": failed, "outputs": outputs, "log": "".join(log)}))
