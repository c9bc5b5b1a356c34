#!/usr/bin/env bash
# `make vm-test`: runs the full-kernel checks in a qemu VM of the stock Debian kernel and reports.
#
#   bash vm/run-tests.sh                 smoke checks, `pytest -m full_kernel tests`, chapters 09-17
#   bash vm/run-tests.sh tests/seed -k kprobe     smoke checks, then pytest with these arguments
#   bash vm/run-tests.sh --execute-notebooks notebooks/09-*.ipynb   execute chapters, outputs kept,
#                                        into .vm/runs/<time>/out/ (scripts/execute-notebooks.sh)
#
# The image comes from vm/build-image.sh, cached outside the checkout ($EBPF_LAB_VM_CACHE, default
# /var/cache/ebpf-lab/vm) and rebuilt when its inputs change. The checkout is shared read-only
# over 9p, so the guest always runs the working tree as it is; the image is opened with
# snapshot=on and the VM has no network. The runs' logs stay in the checkout:
# .vm/runs/<time>/{console.log,report.txt,compatibility.md}. The chapters' rows of the VM's
# compatibility table are merged into docs/compatibility.md (notebooks/compat_table.py).
#   VM_TIMEOUT   seconds for the whole VM run (default 6000: under TCG a BCC cell compiles for about a minute)
#   VM_ACCEL     kvm or tcg (default: kvm where a test boot with it works)
#   VM_MEM, VM_CPUS   guest size (default 2G, 2)
set -euo pipefail

lab=$(cd "$(dirname "$0")/.." && pwd)
vm=$lab/.vm
cache=${EBPF_LAB_VM_CACHE:-/var/cache/ebpf-lab/vm}
timeout_s=${VM_TIMEOUT:-6000}
mem=${VM_MEM:-2G}
cpus=${VM_CPUS:-2}

log() { printf '\033[1m[vm-test]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[vm-test]\033[0m %s\n' "$*" >&2; exit 2; }

bash "$lab/vm/host-tools.sh"
mkdir -p "$vm/runs" "$vm/tmp" "$cache/locks"
# One VM at a time on this machine (two TCG guests on a small host would both run out of time).
exec 7>"$cache/run.lock"
if ! flock -n 7; then
  log "waiting for the vm-test that is running to finish ($cache/run.lock)"
  flock 7
fi
# Build or find the image under the builders' lock, and hold a shared lock on the image before
# letting go of it: vm/build-image.sh prunes only images that nobody holds.
exec 9>"$cache/build.lock"
if ! flock -n 9; then
  log "waiting for a build of the VM image to finish ($cache/build.lock)"
  flock 9
fi
build_start=$SECONDS
VM_BUILD_LOCKED=1 bash "$lab/vm/build-image.sh" --print-image "$vm/tmp/image-path"
build_wall=$((SECONDS - build_start))
img=$(cat "$vm/tmp/image-path")
exec 8>"$cache/locks/$(basename "$img")"
flock -s 8
exec 9>&-
export TMPDIR=$vm/tmp   # qemu's snapshot=on overlay goes here, not to /var/tmp

run=$vm/runs/$(date +%Y%m%d-%H%M%S)
# out/: the one place the guest writes to (executed notebooks: --execute-notebooks).
mkdir -p "$run/out"
ln -sfn "$(basename "$run")" "$vm/runs/latest"
# Keep the last ten runs.
ls -1d "$vm"/runs/2* | head -n -10 | xargs -r rm -rf

# KVM passes a trivial boot on some hosts and then stops the guest with "KVM internal error":
# ask it to boot this very kernel as far as the root mount (which panics without a disk).
kvm_works() {
  [ -w /dev/kvm ] || { log "no usable /dev/kvm"; return 1; }
  local out=$vm/tmp/kvm-probe pid ok=1
  rm -f "$out".*
  qemu-system-x86_64 -accel kvm -cpu host -m 512M -smp 1 -nodefaults -display none -no-reboot \
    -kernel "$img/vmlinuz" -append "console=ttyS0 panic=-1 loglevel=4" \
    -serial file:"$out.console" 2>"$out.err" &
  pid=$!
  for _ in $(seq 1 60); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" && grep -qs "Kernel panic" "$out.console" && ok=0
      break
    fi
    grep -qs "KVM internal error\|failed to set MSR" "$out.err" && break
    sleep 0.5
  done
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ "$ok" = 0 ] || log "KVM does not work here: $(head -n 1 "$out.err" 2>/dev/null || echo "no boot in 30 s")"
  return "$ok"
}
case ${VM_ACCEL:-auto} in
  kvm) accel=(-accel kvm -cpu host) ;;
  tcg) accel=(-accel "tcg,thread=multi" -cpu max) ;;
  *) if kvm_works; then accel=(-accel kvm -cpu host); else accel=(-accel "tcg,thread=multi" -cpu max); fi ;;
esac
accel_name=${accel[1]%%,*}

# Arguments travel to the guest on the kernel command line, NUL-separated and base64-encoded.
cmdline="console=ttyS0 root=/dev/vda rw panic=-1 quiet loglevel=3 mitigations=off $(cat "$img/cmdline")"
cmdline+=" init=/sbin/ebpf-lab-init"
if [ $# -gt 0 ]; then
  cmdline+=" ebpflab.args=$(printf '%s\0' "$@" | base64 -w 0)"
fi

console=$run/console.log
: > "$console"
log "booting kernel $(cat "$img/kernel-release") with ${accel_name^^}, $cpus vCPUs, $mem; console: ${console#"$lab"/}"
start=$SECONDS
timeout -k 10 "$timeout_s" qemu-system-x86_64 "${accel[@]}" -smp "$cpus" -m "$mem" \
  -nodefaults -display none -no-reboot -nic none \
  -kernel "$img/vmlinuz" -initrd "$img/initrd.img" -append "$cmdline" \
  -drive file="$img/rootfs.img",if=virtio,format=raw,snapshot=on \
  -virtfs local,path="$lab",mount_tag=host,security_model=none,readonly=on \
  -virtfs local,path="$run/out",mount_tag=out,security_model=none \
  -device virtio-rng-pci \
  -serial file:"$console" 2>"$run/qemu.err" &
qemu=$!
trap 'kill "$qemu" 2>/dev/null' EXIT INT TERM
# Live progress: the guest's console without the per-test lines, which the report repeats.
tail -n +1 -F --pid="$qemu" "$console" 2>/dev/null | sed -u 's/\r$//' | grep --line-buffered -v '^@@EBPFLAB test ' &
follower=$!
qrc=0
wait "$qemu" || qrc=$?
wait "$follower" 2>/dev/null || true
trap - EXIT INT TERM
wall=$((SECONDS - start))

python3 "$lab/vm/report.py" --console "$console" --qemu-rc "$qrc" --qemu-err "$run/qemu.err" \
  --wall "$wall" --timeout "$timeout_s" --accel "$accel_name" --out "$run" | tee "$run/report.txt"
rc=${PIPESTATUS[0]}
# The guest's table holds only the chapters it ran; the host's rows of the others stay.
if [ -s "$run/compatibility.md" ]; then
  python3 "$lab/notebooks/compat_table.py" merge "$run/compatibility.md" "$lab/docs/compatibility.md" \
    || { log "could not merge $run/compatibility.md into docs/compatibility.md"; [ "$rc" != 0 ] || rc=1; }
fi
log "image ${build_wall} s (built or from the cache), VM ${wall} s, whole vm-test $SECONDS s" \
  | tee -a "$run/report.txt"
# make turns any failure into its own status 2: the report's goes to EBPF_LAB_RC_FILE too (.ci/run).
[ -z "${EBPF_LAB_RC_FILE:-}" ] || echo "$rc" > "$EBPF_LAB_RC_FILE"
exit "$rc"
