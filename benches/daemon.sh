#!/bin/sh
# Benchmarks the daemon in a private binfmt_misc instance on a private system-type bus:
# idle RSS, idle wakeups per minute (context switches of all its threads, from /proc),
# and p50/p99 latency of a property read and of Install of an installed platform under
# CLIENTS concurrent clients. Needs root (like the tests); registers nothing on the host.
#
# Usage: benches/daemon.sh [IDLE_SECONDS=60] [CLIENTS=50] [REQUESTS=20]
set -eu
IDLE=${1:-60}
CLIENTS=${2:-50}
REQUESTS=${3:-20}
PLATFORM=linux/arm64
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cargo build --quiet --release --bin binfmtd --example daemon_load
bin=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/examples

work=$(mktemp -d)
chmod 755 "$work"
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM

cat > "$work/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$work/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><deny own="*"/><deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/><allow receive_type="method_return"/>
    <allow receive_type="error"/><allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
  </policy>
  <include>$repo/packaging/dbus-1/system.d/org.binfmtd1.conf</include>
</busconfig>
CONF
dbus-daemon --config-file="$work/bus.conf" --nofork --nopidfile --nosyslog 2>/dev/null &
pids="$pids $!"
address="unix:path=$work/bus.sock"
while [ ! -S "$work/bus.sock" ]; do sleep 0.05; done

mkdir -p "$work/etc" "$work/state" "$work/binfmt.d"
unshare --user --map-root-user --mount sh -c \
    "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && touch $work/ns-ready && exec sleep 100000" &
holder=$!
pids="$pids $holder"
while [ ! -e "$work/ns-ready" ]; do sleep 0.05; done
BINFMTD_CONFIG_DIR="$work/etc" BINFMTD_STATE_DIR="$work/state" BINFMTD_BINFMT_D_DIR="$work/binfmt.d" \
    RUST_LOG=warn nsenter -t "$holder" -U -m --preserve-credentials \
    "$bin/../binfmtd" daemon --bus-address "$address" 2>"$work/daemon.log" &
daemon=$!
pids="$daemon $pids"
until busctl --address="$address" status org.binfmtd1 >/dev/null 2>&1; do sleep 0.05; done
busctl --address="$address" call org.binfmtd1 /org/binfmtd1 org.binfmtd1.Manager \
    Install 'asa{sv}b' 1 "$PLATFORM" 0 false >/dev/null

switches() {
    total=0
    for s in /proc/"$daemon"/task/*/status; do
        n=$(awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {s += $2} END {print s}' "$s")
        total=$((total + n))
    done
    echo "$total"
}
sleep 3  # blocking threads of the start-up work exit after 1 s idle
before=$(switches)
sleep "$IDLE"
after=$(switches)
rss_kib=$(awk '/^VmRSS/ {print $2}' /proc/"$daemon"/status)
threads=$(ls /proc/"$daemon"/task | wc -l)
echo "idle_rss_kib=$rss_kib ($(awk "BEGIN {printf \"%.2f\", $rss_kib/1024}") MiB) threads=$threads"
echo "idle_wakeups_per_minute=$(awk "BEGIN {printf \"%.2f\", ($after-$before)*60/$IDLE}") (context switches of all threads over ${IDLE}s)"
"$bin/daemon_load" "$address" "$CLIENTS" "$REQUESTS" "$PLATFORM"
rss_kib=$(awk '/^VmRSS/ {print $2}' /proc/"$daemon"/status)
echo "rss_after_load_kib=$rss_kib"
