#!/bin/sh
# binfmtd.service under a real systemd: boots a bookworm root (systemd, dbus, polkitd,
# qemu-user-static) with systemd-nspawn in a private user namespace, so the container has its
# own binfmt_misc instance, installs the .deb, and checks:
#   the daemon starts and serves org.binfmtd1; `binfmtd install linux/arm64` goes through it;
#   its native probes ran (not guessed); it repairs its entry after `systemctl restart
#   systemd-binfmt`; it stops cleanly; D-Bus activation starts it again; an unprivileged user
#   is denied by polkit, and allowed once a rule grants org.binfmtd1.manage.
# Usage: systemd_unit.sh DEB   (from the crate root; needs root on the host for nspawn).
set -eu
deb=$(realpath "${1:?usage: systemd_unit.sh DEB}")
top=$(pwd)/target/fixtures
sh tests/fixtures/bookworm-root.sh "$top" bookworm-systemd systemd,systemd-sysv,dbus,libpam-systemd,polkitd,qemu-user-static
host_before=$(ls /proc/sys/fs/binfmt_misc 2>/dev/null | wc -l)
. tests/systemd/container.sh
ct_boot "$top/bookworm-systemd" "binfmtd-unit-$$"
fail() { echo "systemd_unit: $*" >&2; ct_run journalctl -u binfmtd --no-pager -n 40 >&2 || true; exit 1; }
step() { echo "systemd_unit: $*"; }

ct_run sh -c 'cat > /root/binfmtd.deb' < "$deb"
# qemu-user-static's binfmt.d files would make systemd-binfmt register entries of the same
# names as binfmtd's; keep one (mips) as another tool's entry that binfmtd must leave alone.
ct_run sh -c 'for f in /usr/lib/binfmt.d/qemu-*.conf; do [ "$f" = /usr/lib/binfmt.d/qemu-mips.conf ] || rm "$f"; done'
ct_run dpkg -i /root/binfmtd.deb >/dev/null
ct_run systemctl start binfmtd || fail "systemctl start binfmtd failed"
ct_run busctl --system status org.binfmtd1 >/dev/null || fail "org.binfmtd1 is not on the bus"
step "daemon started and serves org.binfmtd1"

ct_run binfmtd --require-daemon install linux/arm64 || fail "install linux/arm64 through the daemon failed"
ct_run grep -q '^flags: F$' /proc/sys/fs/binfmt_misc/qemu-aarch64 || fail "qemu-aarch64 not registered"
# The daemon's native probes ran (its per-boot cache holds their results, not null). Its own
# seccomp filter (SystemCallArchitectures=native) kills the i386 probe with SIGSYS: that is no
# answer, so i386 is not recorded as "does not run" and the family table decides it.
ct_run grep -q '"native":\[' /var/lib/binfmtd/cache.json || fail "the daemon's native probes did not run: $(ct_run cat /var/lib/binfmtd/cache.json)"
ct_run grep -q '\["i386",false\]' /var/lib/binfmtd/cache.json && fail "the daemon recorded i386 as not native although only its own seccomp filter refused the probe: $(ct_run cat /var/lib/binfmtd/cache.json)"
if ct_run journalctl -u binfmtd --no-pager | grep -q 'guessed from QEMU'; then fail "native ISAs were guessed"; fi
step "install through the daemon registered qemu-aarch64; native probes ran"

ours() { ct_run sh -c 'grep -qx "interpreter /usr/bin/qemu-aarch64-static" /proc/sys/fs/binfmt_misc/qemu-aarch64 && grep -qx "flags: F" /proc/sys/fs/binfmt_misc/qemu-aarch64' 2>/dev/null; }
ours || fail "qemu-aarch64 is not binfmtd's entry before the flush"
ct_run systemctl restart systemd-binfmt
ct_run test -e /proc/sys/fs/binfmt_misc/qemu-mips || fail "systemd-binfmt did not register qemu-mips"
i=0
until ours; do
  i=$((i + 1)); [ $i -lt 50 ] || fail "entry not repaired 5 s after systemctl restart systemd-binfmt"; sleep 0.1
done
ct_run systemctl is-active --quiet binfmtd || fail "daemon died on systemd-binfmt's flush"
ct_run test -e /proc/sys/fs/binfmt_misc/qemu-mips || fail "binfmtd removed systemd-binfmt's qemu-mips"
step "survived systemctl restart systemd-binfmt; entry repaired after $((i * 100)) ms"

ct_run systemctl stop binfmtd
[ "$(ct_run systemctl show -p Result --value binfmtd)" = success ] || fail "did not stop cleanly"
[ "$(ct_run systemctl is-active binfmtd || true)" = inactive ] || fail "not inactive after stop"
step "stopped cleanly"

ct_run busctl --system get-property org.binfmtd1 /org/binfmtd1 org.binfmtd1.Manager Version >/dev/null \
  || fail "D-Bus activation: the property call failed"
ct_run systemctl is-active --quiet binfmtd || fail "D-Bus activation did not start binfmtd.service"
step "D-Bus activation started the unit"

ct_run useradd -m alice
out=$(ct_run runuser -u alice -- binfmtd --require-daemon install linux/riscv64 2>&1) && fail "alice was allowed without a rule: $out"
code=$(ct_run runuser -u alice -- sh -c 'binfmtd --require-daemon install linux/riscv64 >/dev/null 2>&1; echo $?' || true)
[ "$code" = 4 ] || fail "alice: expected exit 4 (denied), got $code: $out"
ct_run test ! -e /proc/sys/fs/binfmt_misc/qemu-riscv64 || fail "denied call registered qemu-riscv64"
step "unprivileged user denied (exit 4)"
# Bus policy: only root may own org.binfmtd1 (RequestName from alice's own connection).
out=$(ct_run runuser -u alice -- busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus RequestName su org.binfmtd1 4 2>&1) \
  && fail "alice could own org.binfmtd1: $out"
case $out in *"not allowed to own"*|*AccessDenied*|*"Access denied"*) ;; *) fail "RequestName by alice: unexpected $out" ;; esac
step "bus policy: alice may call but not own org.binfmtd1"
ct_run sh -c 'cat > /etc/polkit-1/rules.d/50-binfmtd-alice.rules' <<'RULE'
polkit.addRule(function(action, subject) {
    if (action.id == "org.binfmtd1.manage" && subject.user == "alice") {
        return polkit.Result.YES;
    }
});
RULE
i=0
until ct_run runuser -u alice -- binfmtd --require-daemon install linux/riscv64 >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 30 ] || fail "alice still denied with a rule granting org.binfmtd1.manage"; sleep 0.2
done
ct_run test -e /proc/sys/fs/binfmt_misc/qemu-riscv64 || fail "allowed call did not register qemu-riscv64"
step "user granted org.binfmtd1.manage by a polkit rule is allowed"

ct_stop
host_after=$(ls /proc/sys/fs/binfmt_misc 2>/dev/null | wc -l)
[ "$host_before" = "$host_after" ] || { echo "systemd_unit: the host's binfmt_misc changed" >&2; exit 1; }
grep -q binfmt_misc /proc/mounts && { echo "systemd_unit: binfmt_misc mounted on the host" >&2; exit 1; }
echo "systemd_unit: all checks passed"
