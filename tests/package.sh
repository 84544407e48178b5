#!/bin/sh
# Builds the Debian package from the release build, checks it holds the whole tree, runs lintian,
# and installs, runs and purges it in a fresh bookworm root (tests/deb-install.sh).
set -eu
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install --locked --quiet cargo-deb
cargo build --release --locked --quiet
./target/release/binfmtd generate-docs --dir target/generated
deb=$(cargo deb --no-build 2>/dev/null | tail -n 1)
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/bin/binfmtd ./usr/lib/systemd/system/binfmtd.service \
    ./usr/share/dbus-1/system.d/org.binfmtd1.conf ./usr/share/dbus-1/system-services/org.binfmtd1.service \
    ./usr/share/polkit-1/actions/org.binfmtd1.policy ./usr/share/man/man1/binfmtd-install.1.gz \
    ./usr/share/bash-completion/completions/binfmtd; do
  echo "$contents" | grep -qx "$path" || { echo "package lacks $path" >&2; exit 1; }
done
dpkg-deb -I "$deb" | grep -q 'Recommends: qemu-user-static' || { echo "package lacks Recommends" >&2; exit 1; }
# lintian: no error and no warning (each accepted one is overridden, with its reason, in
# packaging/debian/lintian-overrides).
tags=$(lintian --pedantic "$deb" 2>&1 | grep -E '^[EW]:' || true)
[ -z "$tags" ] || { echo "lintian on $deb:"; echo "$tags"; exit 1; } >&2
echo "package: $deb has every file; lintian is clean"
sh tests/deb-install.sh "$deb"
# The unit under a real systemd (nspawn in a private user namespace): daemon, drift repair,
# clean stop, D-Bus activation, polkit.
sh tests/systemd_unit.sh "$deb"
