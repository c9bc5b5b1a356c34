#!/usr/bin/env bash
# The host's tools for the test VM, from its distribution like the lab's (scripts/setup-system.sh):
# qemu-system-x86 to boot it, debootstrap to build its image. Does nothing when both are there.
set -euo pipefail

command -v qemu-system-x86_64 >/dev/null && command -v debootstrap >/dev/null && exit 0
printf '\033[1m[vm-test]\033[0m %s\n' "installing qemu-system-x86 and debootstrap"
install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 qemu-system-x86 debootstrap >/dev/null
}
# A fresh machine may have no package lists yet.
install || { apt-get update -q >/dev/null && install; } || {
  printf '\033[1;31m[vm-test]\033[0m %s\n' "apt-get install qemu-system-x86 debootstrap failed" >&2
  exit 2
}
