#!/bin/sh
# Installs the .deb into a fresh `debootstrap --variant=minbase bookworm` root, runs it, purges
# it, and checks that nothing of it is left and that another tool's entry survived. Everything
# happens inside a private user + mount + PID namespace with its own binfmt_misc instance: the
# cached root is the read-only lower layer of an overlay, and the host's instance is untouched.
# Usage: deb-install.sh DEB   (run from the crate root; builds target/fixtures/bookworm-minbase)
set -eu
deb=$(realpath "${1:?usage: deb-install.sh DEB}")
top=$(pwd)/target/fixtures
sh tests/fixtures/bookworm-root.sh "$top" bookworm-minbase
lower=$top/bookworm-minbase
mkdir -p target/tmp
work=$(mktemp -d "$(pwd)/target/tmp/deb-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
host_before=$(ls /proc/sys/fs/binfmt_misc 2>/dev/null | wc -l)

unshare --user --map-root-user --mount --pid --fork --kill-child sh -eu -c '
lower=$1 work=$2 deb=$3
mkdir "$work/upper" "$work/work" "$work/root"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work,userxattr" "$work/root"
R=$work/root
mount -t proc proc "$R/proc"
mount -t binfmt_misc binfmt_misc "$R/proc/sys/fs/binfmt_misc"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/tmp"
# The interpreter the entries point at, from the build machine (static, so it runs anywhere).
touch "$R/usr/bin/qemu-aarch64-static"
mount --bind /usr/bin/qemu-aarch64-static "$R/usr/bin/qemu-aarch64-static"
cp "$deb" "$R/tmp/binfmtd.deb"
run_in() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

[ "$(ls "$R/proc/sys/fs/binfmt_misc" | wc -l)" = 2 ] || { echo "instance not empty" >&2; exit 1; }
run_in dpkg -i /tmp/binfmtd.deb
run_in binfmtd --version
# postinst enabled the unit through deb-systemd-helper (the link purge must remove again).
run_in test -L /etc/systemd/system/multi-user.target.wants/binfmtd.service
run_in dpkg-query -L binfmtd > "$work/files"
run_in binfmtd install linux/arm64 --persist
# Another tool'"'"'s entry: purge must leave it alone.
printf "%s" ":other-tool:E::xyz::/bin/true:" > "$R/proc/sys/fs/binfmt_misc/register"
run_in test -e /etc/binfmt.d/binfmtd-qemu-aarch64.conf
run_in test -e /var/lib/binfmtd/state.json
run_in dpkg --purge binfmtd

left=""
while read -r f; do
  [ -d "$R$f" ] && continue          # directories shared with other packages
  { [ -e "$R$f" ] || [ -L "$R$f" ]; } && left="$left $f"
done < "$work/files"
for f in /var/lib/binfmtd /etc/binfmtd /etc/binfmt.d/binfmtd-qemu-aarch64.conf \
    /proc/sys/fs/binfmt_misc/qemu-aarch64 /etc/systemd/system/multi-user.target.wants/binfmtd.service \
    /var/lib/systemd/deb-systemd-helper-enabled/binfmtd.service.dsh-also; do
  { [ -e "$R$f" ] || [ -L "$R$f" ]; } && left="$left $f"
done
[ -z "$left" ] || { echo "left after purge:$left" >&2; exit 1; }
[ -e "$R/proc/sys/fs/binfmt_misc/other-tool" ] || { echo "purge removed another tool'"'"'s entry" >&2; exit 1; }
run_in dpkg-query -W binfmtd >/dev/null 2>&1 && { echo "binfmtd still known to dpkg" >&2; exit 1; }
echo "deb-install: installed, ran, purged; nothing left, other entries kept"
' sh "$lower" "$work" "$deb"

host_after=$(ls /proc/sys/fs/binfmt_misc 2>/dev/null | wc -l)
[ "$host_before" = "$host_after" ] || { echo "deb-install: the host's binfmt_misc changed" >&2; exit 1; }
