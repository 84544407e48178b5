#!/bin/sh
# Builds the Debian package from the release build and checks it installs the whole tree.
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
echo "package: $deb has every file"
