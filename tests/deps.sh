#!/bin/sh
# Installs every Debian package the tests and the demo need (a fresh machine has none of them).
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  qemu-user-static \
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
  gcc-riscv64-linux-gnu libc6-dev-riscv64-cross \
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross \
  gcc libc6-dev \
  debootstrap ca-certificates \
  dbus dbus-daemon libglib2.0-bin polkitd \
  systemd systemd-container \
  pax-utils file util-linux procps \
  lintian libpipeline1 python3-venv jq uidmap strace
