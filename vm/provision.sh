#!/usr/bin/env bash
# Makes a Debian or Ubuntu system the lab's full-kernel machine: a kernel with BTF, kprobes and
# BPF LSM, `bpf` in its lsm= list, the lab set up by its own scripts/setup-system.sh, and (on a
# booted VM) JupyterLab as a service. Vagrant runs it in the guest; vm/build-image.sh runs it in
# the chroot of the qemu test image. Run as root; a second run with nothing to do only checks.
#
#   EBPF_LAB_DIR     the checkout (default: the folder above this script, else /vagrant)
#   EBPF_LAB_REBOOT  auto (default): reboot when the kernel or lsm= changed, then run this again;
#                    defer: leave /run/ebpf-lab/reboot-needed and stop (the Vagrantfile reboots
#                    and runs it again)
#   EBPF_LAB_CHROOT  1: this is a chroot (detected anyway when /proc is mounted)
#   EBPF_LAB_JUPYTER_PORT  the guest port of the JupyterLab service (8888)
set -euo pipefail

log() { printf '\033[1m[provision]\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33m[provision] WARNING:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[provision]\033[0m %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: sudo bash $0"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${EBPF_LAB_DIR:-}" ]; then lab=$EBPF_LAB_DIR
elif [ -f "$here/scripts/setup-system.sh" ]; then lab=$here
else lab=/vagrant   # Vagrant uploads this script alone to /tmp
fi
[ -f "$lab/scripts/setup-system.sh" ] || die "no lab checkout at $lab (set EBPF_LAB_DIR)"

state=/etc/ebpf-lab
mkdir -p "$state"
. /etc/os-release
arch=$(dpkg --print-architecture)
export DEBIAN_FRONTEND=noninteractive

in_chroot() {
  [ "${EBPF_LAB_CHROOT:-}" = 1 ] && return 0
  [ -e /proc/1/root ] || return 0   # no /proc: not a booted system
  [ "$(stat -c %d:%i /)" != "$(stat -Lc %d:%i /proc/1/root)" ]
}
in_container() {
  [ -e /.dockerenv ] || [ -e /run/.containerenv ] \
    || { command -v systemd-detect-virt >/dev/null && systemd-detect-virt -q --container; }
}
if in_chroot; then where=chroot
elif in_container; then where=container
else where=machine
fi

apt_updated=0
apt_update() { [ "$apt_updated" = 1 ] || { apt-get update -q >/dev/null; apt_updated=1; }; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep "ok installed" >/dev/null; }

# In a chroot, package scripts must not start services on the build host.
if [ "$where" = chroot ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

# --- the kernel ----------------------------------------------------------------------
# Debian 12's own 6.1 kernel predates several of the seed's examples; bookworm-backports has a
# current stock kernel (BTF, kprobes, fprobe, BPF LSM) from the same release, so libc stays as is.
newest_kernel() { ls /boot/vmlinuz-* 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V | tail -n 1; }

install_kernel() {
  if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
    if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "deb http://deb.debian.org/debian bookworm-backports main" \
        > /etc/apt/sources.list.d/ebpf-lab-bookworm-backports.list
      apt_updated=0
    fi
    # bpftool too: the backports one knows this kernel's program and attach types.
    local pkgs=("linux-image-$arch" "linux-headers-$arch" bpftool) want=()
    for p in "${pkgs[@]}"; do
      case $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true) in
        *bpo*) ;;
        *) want+=("$p") ;;
      esac
    done
    if [ ${#want[@]} -gt 0 ]; then
      apt_update
      log "installing ${want[*]} from bookworm-backports"
      # Both together: the headers BCC compiles against must be the running kernel's. pkg/release,
      # not -t: -t would take every new dependency from backports too (libelf1, which the
      # bookworm libelf-dev that BCC needs then cannot match).
      apt-get install -y -q --no-install-recommends "${pkgs[@]/%//bookworm-backports}" >/dev/null
    fi
  else
    # Ubuntu 22.04/24.04 and newer Debian ship a stock kernel that has everything; Ubuntu's
    # bpftool is in linux-tools.
    local kver want=()
    kver=$(newest_kernel)
    installed "linux-headers-$kver" || want+=("linux-headers-$kver")
    if ! command -v bpftool >/dev/null; then
      if [ "${ID:-}" = ubuntu ]; then want+=(linux-tools-common "linux-tools-$kver"); else want+=(bpftool); fi
    fi
    if [ ${#want[@]} -gt 0 ]; then
      apt_update
      apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null \
        || warn "could not install ${want[*]}: BCC cells or bpftool may not work"
    fi
  fi
  local kver config missing=()
  kver=$(newest_kernel)
  [ -n "$kver" ] || die "no kernel in /boot after the install"
  config=/boot/config-$kver
  # Not CONFIG_FUNCTION_ERROR_INJECTION: Debian leaves it off, so fmod_ret works on security_*
  # functions only, which is what the lab uses.
  for opt in CONFIG_DEBUG_INFO_BTF CONFIG_KPROBES CONFIG_BPF_LSM; do
    grep -q "^$opt=y" "$config" 2>/dev/null || missing+=("$opt")
  done
  [ ${#missing[@]} -eq 0 ] || warn "kernel $kver lacks ${missing[*]}: some chapters will be skipped"
}

# The lsm= list the newest kernel boots with: its built-in default order, plus bpf.
# Without bpf in that list, BPF LSM programs load and attach but never run.
wanted_lsm() {
  local default
  default=$(sed -n 's/^CONFIG_LSM="\(.*\)"$/\1/p' "/boot/config-$(newest_kernel)" 2>/dev/null || true)
  [ -n "$default" ] || default=landlock,lockdown,yama,integrity,apparmor
  case ",$default," in
    *,bpf,*) echo "$default" ;;
    *) echo "$default,bpf" ;;
  esac
}

# Sets lsm= in GRUB_CMDLINE_LINUX of /etc/default/grub; 0 when the file changed.
set_grub_lsm() {
  local lsm=$1 grub=/etc/default/grub line value tokens=() t
  line=$(grep -E '^GRUB_CMDLINE_LINUX=' "$grub" | tail -n 1 || true)
  value=${line#GRUB_CMDLINE_LINUX=}
  value=${value#[\"\']}; value=${value%[\"\']}
  for t in $value; do
    case $t in lsm=*) ;; *) tokens+=("$t") ;; esac
  done
  tokens+=("lsm=$lsm")
  local new="GRUB_CMDLINE_LINUX=\"${tokens[*]}\""
  [ "$line" = "$new" ] && return 1
  if [ -n "$line" ]; then
    NEW=$new awk '/^GRUB_CMDLINE_LINUX=/ { last = NR } { lines[NR] = $0 }
      END { for (i = 1; i <= NR; i++) print (i == last ? ENVIRON["NEW"] : lines[i]) }' \
      "$grub" > "$grub.ebpf-lab" && mv "$grub.ebpf-lab" "$grub"
  else
    echo "$new" >> "$grub"
  fi
  return 0
}

configure_lsm() {
  local lsm
  lsm=$(wanted_lsm)
  # The qemu test run boots the kernel directly, without GRUB: it reads the same list here.
  echo "lsm=$lsm" > "$state/kernel-cmdline"
  if [ -f /etc/default/grub ]; then
    if set_grub_lsm "$lsm"; then
      log "lsm=$lsm added to GRUB_CMDLINE_LINUX"
      if [ "$where" = machine ] && command -v update-grub >/dev/null; then
        update-grub >/dev/null 2>&1 || die "update-grub failed"
      fi
    fi
  elif [ "$where" = machine ]; then
    warn "no /etc/default/grub: add lsm=$lsm to this machine's kernel command line yourself"
  fi
}

# Why this booted system must restart to have the newest kernel with BPF LSM on; empty if it need not.
reboot_reason() {
  local running newest reasons=()
  running=$(uname -r)
  newest=$(newest_kernel)
  [ "$running" = "$newest" ] || reasons+=("kernel $newest is installed, $running is running")
  mountpoint -q /sys/kernel/security || mount -t securityfs securityfs /sys/kernel/security 2>/dev/null || true
  grep -qw bpf /sys/kernel/security/lsm 2>/dev/null \
    || reasons+=("bpf is not among the active LSMs ($(cat /sys/kernel/security/lsm 2>/dev/null || echo unknown))")
  local IFS=';'
  echo "${reasons[*]}"
}

# Reboots (or asks Vagrant to) at most once for the same reason, so a boot loader that ignores
# /etc/default/grub cannot make this loop.
maybe_reboot() {
  local reason asked=/var/lib/ebpf-lab/reboot-requested
  reason=$(reboot_reason)
  if [ -z "$reason" ]; then
    rm -f "$asked"
    return 0
  fi
  if [ "$(cat "$asked" 2>/dev/null)" = "$reason" ]; then
    warn "still after a reboot: $reason. Check the boot loader's default entry and lsm= (/proc/cmdline)."
    return 0
  fi
  mkdir -p "$(dirname "$asked")" /run/ebpf-lab
  echo "$reason" > "$asked"
  if [ "${EBPF_LAB_REBOOT:-auto}" = defer ]; then
    log "a reboot is needed ($reason); the lab set-up runs after it"
    touch /run/ebpf-lab/reboot-needed
  else
    log "rebooting ($reason); run $0 again afterwards to finish"
    systemctl reboot 2>/dev/null || reboot
  fi
  exit 0
}

if [ "$where" = container ]; then
  log "in a container: the kernel is the host's, so only the lab is set up"
else
  install_kernel
  configure_lsm
  if [ "$where" = machine ]; then maybe_reboot; fi
fi

# --- the lab ---------------------------------------------------------------------------
log "setting up the lab in $lab"
bash "$lab/scripts/setup-system.sh"

if [ "$where" = chroot ]; then
  # uname -r in a chroot names the build host's kernel: drop the header links set up for it.
  host_modules=/lib/modules/$(uname -r)
  if [ -e "$host_modules/.ebpf-lab-foreign-headers" ] && [ ! -e "$host_modules/modules.dep" ]; then
    rm -rf "$host_modules"
  fi
  log "done (chroot: no JupyterLab service, no reboot)"
  exit 0
fi
[ "$where" = machine ] || exit 0

# --- JupyterLab as a service -----------------------------------------------------------
# Root, like `make lab`: loading BPF programs needs it. It listens on all guest interfaces
# because Vagrant's port forward arrives on the guest's NIC; the host side binds 127.0.0.1 only.
port=${EBPF_LAB_JUPYTER_PORT:-8888}
env_file=$state/jupyter.env
if [ ! -s "$env_file" ]; then
  (umask 077; echo "JUPYTER_TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')" > "$env_file")
fi
unit=/etc/systemd/system/ebpf-lab-jupyter.service
cat > "$unit.new" <<EOF
[Unit]
Description=eBPF lab: JupyterLab on the chapters in $lab/notebooks
After=network-online.target

[Service]
EnvironmentFile=$env_file
WorkingDirectory=$lab/notebooks
ExecStart=$lab/.venv/bin/jupyter lab --ip=0.0.0.0 --port=$port --no-browser --allow-root --ServerApp.root_dir=$lab/notebooks
Restart=on-failure

[Install]
WantedBy=multi-user.target
EOF
if cmp -s "$unit.new" "$unit"; then
  rm "$unit.new"
  systemctl is-active -q ebpf-lab-jupyter || systemctl start ebpf-lab-jupyter
else
  mv "$unit.new" "$unit"
  systemctl daemon-reload
  systemctl enable -q ebpf-lab-jupyter
  systemctl restart ebpf-lab-jupyter
fi
token=$(sed -n 's/^JUPYTER_TOKEN=//p' "$env_file")
log "JupyterLab: http://127.0.0.1:$port/lab?token=$token (kernel $(uname -r), LSMs $(cat /sys/kernel/security/lsm))"
