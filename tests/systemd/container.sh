# Shell functions that boot a real systemd under systemd-nspawn in a private user namespace
# (--private-users=pick), with its own binfmt_misc instance, and clean up after it.
# Source it, then: ct_boot ROOT NAME; ct_run CMD...; ct_stop. ct_stop runs on EXIT too.
# The root is copied first (nspawn shifts its ownership); the copy is removed on stop.

ct_name="" ct_pid="" ct_pid1="" ct_dir="" ct_root=""

ct_cg_dirs() { echo "/sys/fs/cgroup/unified/$ct_name /sys/fs/cgroup/systemd/$ct_name"; }

# ct_boot CACHED_ROOT NAME: copies the root, boots it, waits until systemd is running.
ct_boot() {
  ct_name=$2
  mkdir -p target/tmp
  ct_dir=$(mktemp -d "$(pwd)/target/tmp/ct.XXXXXX")
  ct_root=$ct_dir/root
  cp -a --reflink=auto "$1" "$ct_root"
  trap ct_stop EXIT INT TERM
  # nspawn runs without a host systemd: it needs a cgroup of its own (hybrid hierarchy here).
  for d in $(ct_cg_dirs); do mkdir -p "$d"; done
  # Only the nspawn process moves into them ($$ of a subshell would be this shell).
  sh -c 'for d in $1 $2; do echo $$ > "$d/cgroup.procs"; done; shift 2
         exec systemd-nspawn -q -D "$1" -M "$2" -b \
           --private-users=pick --private-users-ownership=auto \
           --register=no --keep-unit --console=read-only' \
    sh $(ct_cg_dirs) "$ct_root" "$ct_name" > "$ct_dir/console.log" 2>&1 &
  ct_pid=$!
  i=0
  while [ -z "$ct_pid1" ]; do
    for c in $(cat "/proc/$ct_pid/task/$ct_pid/children" 2>/dev/null); do
      [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] && ct_pid1=$c
    done
    i=$((i + 1))
    [ $i -lt 200 ] || { echo "container $ct_name did not boot:" >&2; tail -n 30 "$ct_dir/console.log" >&2; return 1; }
    kill -0 "$ct_pid" 2>/dev/null || { echo "nspawn exited:" >&2; tail -n 30 "$ct_dir/console.log" >&2; return 1; }
    sleep 0.1
  done
  # The bus socket appears a moment after PID 1 starts; until then systemctl cannot connect.
  i=0
  while :; do
    state=$(timeout 60 nsenter -t "$ct_pid1" -a systemctl is-system-running --wait 2>&1 || true)
    case $state in *"Failed to connect"*) ;; *) break ;; esac
    i=$((i + 1)); [ $i -lt 100 ] || break
    sleep 0.1
  done
  case $state in
    running) ;;
    *) echo "container $ct_name is $state:" >&2; ct_run systemctl --failed --no-pager >&2 || true ;;
  esac
}

# ct_run CMD...: runs CMD inside the container (all of its namespaces, its root).
ct_run() { nsenter -t "$ct_pid1" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# ct_stop: stops nspawn (SIGTERM: a clean shutdown), removes the copy and the cgroups.
ct_stop() {
  trap - EXIT INT TERM
  if [ -n "$ct_pid" ] && kill -0 "$ct_pid" 2>/dev/null; then
    kill -TERM "$ct_pid"
    i=0
    while kill -0 "$ct_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$ct_pid" 2>/dev/null && kill -KILL "$ct_pid"
    wait "$ct_pid" 2>/dev/null || true
  fi
  ct_pid=""
  # Deepest first: systemd (and nspawn) leave sub-cgroups.
  for d in $(ct_cg_dirs); do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  [ -n "$ct_dir" ] && rm -rf "$ct_dir"
  ct_dir=""
}
