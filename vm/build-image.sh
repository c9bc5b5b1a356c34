#!/usr/bin/env bash
# Builds the disk image that `make vm-test` boots, or finds it in the cache. The cache lives outside
# the checkout, so that fresh clones (CI) and other worktrees reuse it:
#   $EBPF_LAB_VM_CACHE (default /var/cache/ebpf-lab/vm)
#     rootfs/<key>/  a Debian bookworm rootfs (debootstrap), provisioned by vm/provision.sh in a
#                    chroot; <key> hashes what provisioning depends on (provision.sh, the lab's
#                    scripts/setup-system.sh, its Python dependencies, the suite, this script's
#                    build functions)
#     images/<key>/  rootfs.img (ext4), vmlinuz and initrd.img of the rootfs's stock Debian kernel,
#                    cmdline (its lsm=), kernel-release; <key> adds the boot stub and make_image
#     debs/, pip/    downloaded .debs and wheels, so that a rebuild downloads little
#   The newest rootfs and the two newest images are kept; older ones are removed unless a VM
#   is booting them. Build logs go to the checkout's .vm/build/.
#
#   bash vm/build-image.sh [--print-image FILE]   FILE receives the image's directory
#   VM_REBUILD=1   rebuild the rootfs and the image even if their keys match
# Needs root, debootstrap and e2fsprogs, and the network for Debian's archive and PyPI.
set -euo pipefail

lab=$(cd "$(dirname "$0")/.." && pwd)
cache=${EBPF_LAB_VM_CACHE:-/var/cache/ebpf-lab/vm}
logs=$lab/.vm/build
suite=bookworm
mirror=${VM_MIRROR:-http://deb.debian.org/debian}
security_mirror=${VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
guest_lab=/opt/ebpf-lab   # vm/guest-run.sh expects the lab and its .venv here
print_image=
[ "${1:-}" = --print-image ] && print_image=$2

log() { printf '\033[1m[vm-image]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[vm-image]\033[0m %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot): sudo make vm-test"
[ "$(dpkg --print-architecture)" = amd64 ] || die "the test image is amd64 and is built on an amd64 host"
for tool in debootstrap mkfs.ext4 unshare flock; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install debootstrap e2fsprogs util-linux"
done
mkdir -p "$cache/debs/partial" "$cache/pip" "$cache/rootfs" "$cache/images" "$cache/locks" "$logs"
# One builder at a time. vm/run-tests.sh already holds this lock (and keeps it until it holds the
# image it boots, so that nobody prunes that image in between): it says so with VM_BUILD_LOCKED=1.
if [ "${VM_BUILD_LOCKED:-}" != 1 ]; then
  exec 9>"$cache/build.lock"
  if ! flock -n 9; then
    log "waiting for another build of the VM image ($cache/build.lock)"
    flock 9
  fi
fi

# What the rootfs is made of: provisioning, the lab's set-up and its Python dependencies (not the
# rest of pyproject.toml, nor the lab's code, which travels to the guest at every run).
deps_of_pyproject() {
  # Without tomllib (Python < 3.11) any change to pyproject.toml counts.
  python3 -c 'import sys, tomllib; p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(sorted(p.get("dependencies", [])), sorted((p.get("optional-dependencies") or {}).items()))' \
    "$lab/pyproject.toml" 2>/dev/null || cat "$lab/pyproject.toml"
}
rootfs_key() {
  {
    cat "$lab/vm/provision.sh" "$lab/scripts/setup-system.sh"
    deps_of_pyproject
    declare -f build_rootfs provision_in_chroot
    echo "$suite"
  } | sha256sum | cut -d' ' -f1
}
image_key() {   # of the rootfs with this key
  { echo "$1"; declare -f make_image; boot_stub; } | sha256sum | cut -d' ' -f1
}

build_rootfs() {   # destination
  local root=$1.new
  rm -rf "$root"
  log "debootstrap $suite into $root"
  # kmod, iproute2, procps: what the guest's init uses (modprobe 9p, lo up, free);
  # ca-certificates and python3: what provisioning starts from; zstd: initramfs-tools compresses with it;
  # netbase: /etc/services and /etc/protocols, which scapy names ports and protocols by (chapters 13-15).
  debootstrap --variant=minbase --cache-dir="$cache/debs" \
    --include=ca-certificates,kmod,iproute2,netbase,procps,python3,zstd \
    "$suite" "$root" "$mirror" > "$logs/debootstrap.log" 2>&1 \
    || { tail -n 20 "$logs/debootstrap.log" >&2; die "debootstrap failed (log: $logs/debootstrap.log)"; }
  cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
SOURCES
  # qemu boots the kernel with this initramfs on a virtio disk: list exactly what it needs, so the
  # initramfs is small (fast to unpack under TCG) and does not depend on the build host's hardware.
  mkdir -p "$root/etc/initramfs-tools/conf.d"
  echo MODULES=list > "$root/etc/initramfs-tools/conf.d/ebpf-lab-vm.conf"
  printf '%s\n' virtio_pci virtio_blk ext4 >> "$root/etc/initramfs-tools/modules"
  echo ebpf-lab-vm > "$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tebpf-lab-vm\n::1\tlocalhost ip6-localhost\n' > "$root/etc/hosts"

  log "copying the checkout to $guest_lab and running vm/provision.sh in the chroot"
  mkdir -p "$root$guest_lab"
  copy_checkout "$root$guest_lab"
  provision_in_chroot "$root" > "$logs/provision.log" 2>&1 \
    || { tail -n 40 "$logs/provision.log" >&2; die "vm/provision.sh failed in the chroot (log: $logs/provision.log)"; }
  rm -rf "$root/root/.cache" "$root/run/host-ca.crt" \
    "$root/var/lib/apt/lists/"*_Packages "$root/var/lib/apt/lists/"*_Translation-*
  mv "$root" "$1"
}

copy_checkout() {
  tar -C "$lab" --exclude=./.git --exclude=./.vm --exclude=./.venv --exclude=./.vagrant \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache -cf - . | tar -C "$1" -xf -
}

# In a mount namespace of its own, so that nothing mounted for the chroot outlives it. The host's
# CA bundle is lent for the build (a host behind a TLS-inspecting proxy needs it for PyPI) but not
# kept in the image; the package caches are the host's, so rebuilds reuse the downloads.
provision_in_chroot() {
  local root=$1
  local -a keep=()
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && keep+=("$v=${!v}")
  done
  local ca=/etc/ssl/certs/ca-certificates.crt
  ROOT=$root CACHE=$cache CA=$ca unshare --mount --propagation private bash -euo pipefail -c '
    mount -t proc proc "$ROOT/proc"
    mount -t sysfs sysfs "$ROOT/sys"
    mount --rbind /dev "$ROOT/dev"
    mount --bind "$CACHE/debs" "$ROOT/var/cache/apt/archives"
    mkdir -p "$ROOT/root/.cache/pip"
    mount --bind "$CACHE/pip" "$ROOT/root/.cache/pip"
    touch "$ROOT/run/host-ca.crt"
    mount --bind -o ro "$CA" "$ROOT/run/host-ca.crt"
    exec "$@"' _ \
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
      SSL_CERT_FILE=/run/host-ca.crt PIP_CERT=/run/host-ca.crt REQUESTS_CA_BUNDLE=/run/host-ca.crt \
      EBPF_LAB_CHROOT=1 EBPF_LAB_DIR="$guest_lab" "${keep[@]}" \
      bash "$guest_lab/vm/provision.sh"
}

# PID 1 of the test VM. It only reaches the checkout, whose vm/guest-run.sh does the rest, so a
# change to the test run needs no new image.
boot_stub() {
  cat <<'EOF'
#!/bin/sh
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
echo "@@EBPFLAB init uptime=$(cut -d' ' -f1 /proc/uptime)"
mkdir -p /mnt/host
modprobe 9pnet_virtio && modprobe 9p \
  && mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,ro host /mnt/host \
  && [ -f /mnt/host/vm/guest-run.sh ] && exec /bin/bash /mnt/host/vm/guest-run.sh
echo "@@EBPFLAB end rc=99 the checkout is not shared over 9p (mount_tag host)"
echo o > /proc/sysrq-trigger
sleep 60
EOF
}

make_image() {   # rootfs, destination
  local root=$1 out=$2.new kver size_mb
  rm -rf "$out"
  mkdir -p "$out"
  kver=$(ls "$root"/boot/vmlinuz-* 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V | tail -n 1 || true)
  [ -n "$kver" ] && [ -f "$root/boot/initrd.img-$kver" ] || die "no kernel with an initrd in the rootfs"
  cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz"
  cp "$root/boot/initrd.img-$kver" "$out/initrd.img"
  echo "$kver" > "$out/kernel-release"
  cp "$root/etc/ebpf-lab/kernel-cmdline" "$out/cmdline"
  boot_stub > "$root/sbin/ebpf-lab-init"
  chmod 755 "$root/sbin/ebpf-lab-init"
  # Room for the tests' writes (the checkout copy, BCC's and pytest's files); the image itself
  # is never written to: qemu opens it with snapshot=on.
  size_mb=$(( $(du -sm "$root" | cut -f1) * 5 / 4 + 1024 ))
  log "mkfs.ext4 -d: ${size_mb} MiB image of kernel $kver"
  mkfs.ext4 -q -F -L ebpf-lab -E root_owner=0:0 -d "$root" "$out/rootfs.img" "${size_mb}M" >/dev/null
  mv "$out" "$2"
}

# Keeps the newest entries of a cache folder and the ones named, removing the others unless a VM
# holds their lock (vm/run-tests.sh holds a shared one on the image it boots).
prune() {   # folder, how many to keep, keys to keep...
  local dir=$1 keep=$2 entry key
  shift 2
  ls -1dt "$dir"/*/ 2>/dev/null | tail -n +$((keep + 1)) | while read -r entry; do
    entry=${entry%/}
    key=$(basename "$entry")
    case " $* " in *" $key "*) continue ;; esac
    (
      flock -n -x 8 || { log "keeping $entry: a VM is using it"; exit 0; }
      log "removing the old $entry"
      rm -rf "$entry" "$cache/locks/$key"
    ) 8>"$cache/locks/$key"
  done
}

start=$SECONDS
rm -rf "$cache"/rootfs/*.new "$cache"/images/*.new   # left by a build that was interrupted
key=$(rootfs_key)
rootfs=$cache/rootfs/$key
if [ -d "$rootfs" ] && [ "${VM_REBUILD:-}" != 1 ]; then
  log "rootfs up to date ($rootfs)"
else
  rm -rf "$rootfs"
  build_rootfs "$rootfs"
  log "rootfs built in $((SECONDS - start)) s"
fi
touch "$rootfs"   # the newest, for prune
ikey=$(image_key "$key")
image=$cache/images/$ikey
if [ -f "$image/rootfs.img" ] && [ "${VM_REBUILD:-}" != 1 ]; then
  log "image up to date ($image, kernel $(cat "$image/kernel-release"))"
else
  t=$SECONDS
  rm -rf "$image"
  make_image "$rootfs" "$image"
  log "image made in $((SECONDS - t)) s"
fi
touch "$image"
prune "$cache/rootfs" 1 "$key"
prune "$cache/images" 2 "$ikey"
[ -z "$print_image" ] || echo "$image" > "$print_image"
