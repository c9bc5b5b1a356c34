#!/usr/bin/env bash
# Idempotent set-up for the eBPF lab on Debian 12 or Ubuntu 22.04/24.04, as root.
# A second run with nothing to do only checks and returns quickly.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
kver=$(uname -r)
arch=$(dpkg --print-architecture)
. /etc/os-release
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33m[setup] WARNING:\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system.sh must run as root (BPF, apt and mounts need it): sudo make lab" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update() { [ "$apt_updated" = 1 ] || { apt-get update -q >/dev/null; apt_updated=1; }; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
# grep without -q reads all of apt-cache's output: an early exit would SIGPIPE it under pipefail.
has_candidate() { apt_update; apt-cache policy "$1" 2>/dev/null | grep 'Candidate: [^(]' >/dev/null; }
install() {
  local missing=()
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update
  log "installing ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# --- packages from the running distribution only ---------------------------
# libbpf and bpftool must know current SEC names (tcx/, netkit/, uprobe.multi, cgroup/*_unix) and
# BPF_UPROBE: on Debian 12 they come from bookworm-backports (same release, so libc stays; never
# trixie). Ubuntu 24.04's own libbpf 1.3 is enough.
LIBBPF_FLOOR=1.3
BPFTOOL_FLOOR=7.3
bookworm=0
[ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ] && bookworm=1
if [ "$bookworm" = 1 ] && ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" \
    > /etc/apt/sources.list.d/ebpf-lab-bookworm-backports.list
  apt_updated=0
fi
# The CO-RE engine's compiler, chosen by measurement (README, "Toolchain"): clang 19 where the
# distribution has it, else its default clang.
core_clang=clang
if [ "$bookworm" = 1 ] || has_candidate clang-19; then core_clang=clang-19; fi
install python3-bpfcc bpfcc-tools clang "$core_clang" llvm iproute2 pkg-config python3-venv python3-pip \
  gcc libc6-dev systemtap-sdt-dev
if [ "$bookworm" = 1 ]; then
  bpo=()
  for p in libbpf1 libbpf-dev bpftool; do
    case $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true) in
      *bpo12*) ;;
      *) bpo+=("$p") ;;
    esac
  done
  if [ ${#bpo[@]} -gt 0 ]; then
    apt_update
    log "installing ${bpo[*]} from bookworm-backports"
    apt-get install -y -q --no-install-recommends -t bookworm-backports "${bpo[@]}" >/dev/null
  fi
else
  install libbpf-dev
  if ! command -v bpftool >/dev/null; then
    if has_candidate bpftool; then install bpftool
    else install linux-tools-common "linux-tools-$kver"   # Ubuntu ships bpftool there
    fi
  fi
fi
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }
libbpf_v=$(dpkg-query -W -f='${Version}' libbpf1 2>/dev/null | sed 's/^[0-9]*://; s/[-+~].*//')
bpftool_v=$(bpftool version 2>/dev/null | sed -n 's/^bpftool v\([0-9.]*\).*/\1/p')
version_ge "${libbpf_v:-0}" "$LIBBPF_FLOOR" || {
  echo "libbpf ${libbpf_v:-missing} is older than the lab's floor $LIBBPF_FLOOR (libbpf1, libbpf-dev)" >&2; exit 1; }
version_ge "${bpftool_v:-0}" "$BPFTOOL_FLOOR" || {
  echo "bpftool ${bpftool_v:-missing} is older than the lab's floor $BPFTOOL_FLOOR" >&2; exit 1; }

# --- kernel headers for BCC ------------------------------------------------
build=/lib/modules/$kver/build
if [ ! -e "$build/include" ]; then
  if installed "linux-headers-$kver" || has_candidate "linux-headers-$kver"; then
    install "linux-headers-$kver"
  elif [ "$bookworm" = 1 ]; then
    # No headers package for this kernel: take the newest from bookworm-backports
    # (same release, so libc stays as it is; never trixie).
    apt_update
    log "installing the newest linux-headers-$arch from bookworm-backports"
    apt-get install -y -q --no-install-recommends -t bookworm-backports "linux-headers-$arch" >/dev/null
  else
    warn "no linux-headers package for $kver on ${PRETTY_NAME:-this system}; BCC cells will not compile"
  fi
  if [ ! -e "$build/include" ]; then
    newest=$(ls -d /usr/src/linux-headers-*-"$arch" 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$newest" ]; then
      mkdir -p "/lib/modules/$kver"
      ln -sfn "$newest" "$build"
      ln -sfn "${newest%-"$arch"}-common" "/lib/modules/$kver/source"
      touch "/lib/modules/$kver/.ebpf-lab-foreign-headers"
    fi
  fi
fi
if [ -e "/lib/modules/$kver/.ebpf-lab-foreign-headers" ]; then
  warn "BCC uses headers from $(basename "$(readlink "$build")"), not from the running kernel $kver:
         struct layouts may differ from this kernel's. Read kernel structs with CO-RE (BTF) where it matters."
fi

# --- filesystems BPF tools expect -------------------------------------------
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# --- the Python environment ----------------------------------------------------
# --system-site-packages: the distribution's python3-bpfcc is the real bcc
# (PyPI's "bcc" is an unrelated package).
venv=$here/.venv
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
stamp=$venv/.ebpf-lab-installed
want=$(cat "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "pip install -e '.[dev]' (log: $venv/pip.log)"
  "$venv/bin/pip" install --disable-pip-version-check -e "$here[dev]" >"$venv/pip.log" 2>&1 \
    || { tail -n 30 "$venv/pip.log" >&2; exit 1; }
  # A tool pip saw in the system's site-packages was not installed here, and its
  # command may be missing from the venv: install the test tools into the venv itself.
  for tool in ruff pytest; do
    "$venv/bin/python" -m "$tool" --version >/dev/null 2>&1 \
      || "$venv/bin/pip" install -q --disable-pip-version-check --ignore-installed "$tool" >>"$venv/pip.log" 2>&1
  done
  echo "$want" > "$stamp"
fi
"$venv/bin/python" -c 'import bcc, ebpf_magic' || {
  echo "bcc or ebpf_magic does not import in $venv" >&2; exit 1; }
# matplotlib builds its font cache on first use and says so on stderr: build it here, not in the
# output of a chapter's first plot cell on a fresh machine (the test VM's image is one).
"$venv/bin/python" -c 'import matplotlib.font_manager' 2>/dev/null || true

# --- the "eBPF lab" kernel and JupyterLab's settings (news pop-up off) ---------------
# The chapters name this kernel in their metadata, so nbval and `make lab` both need it.
kernel_dir=$venv/share/jupyter/kernels/ebpf-lab
if [ ! -f "$kernel_dir/kernel.json" ] || [ "$here/ebpf_magic/kernelspec.py" -nt "$kernel_dir/kernel.json" ]; then
  "$venv/bin/python" -m ebpf_magic.kernelspec install
fi
command install -D -m 644 "$here/jupyter/overrides.json" "$venv/share/jupyter/lab/settings/overrides.d/ebpf-lab.json"
log "ready: kernel $kver, $("$venv/bin/python" -c 'import ebpf_magic.libbpf as l; print("libbpf", l.version())')"
