#!/bin/bash
# PID 1 of the test VM, started from the read-only 9p share by the image's /sbin/ebpf-lab-init.
# Mounts what BPF needs, refreshes the image's copy of the lab from the share, runs the checks,
# prints "@@EBPFLAB" lines that vm/run-tests.sh reads on the serial console, and powers off.
#
# What runs: vm/guest_smoke_test.py, then either the pytest arguments given to vm/run-tests.sh
# or, without any, `pytest -m full_kernel tests` and chapters 09 to 17 under nbval.
set -uo pipefail   # no -e: whatever fails, PID 1 must still report and power off

lab=/opt/ebpf-lab    # where vm/provision.sh set the lab up in the image, with its .venv
share=/mnt/host
results=/tmp/results
py=$lab/.venv/bin/python
mark() { echo "@@EBPFLAB $*"; }

power_off() {
  mark "end rc=$1"
  sync
  sleep 1   # let the serial console drain before the machine goes
  echo o > /proc/sysrq-trigger
  sleep 60
}

fs() {   # type mountpoint
  mkdir -p "$2"
  mountpoint -q "$2" || mount -t "$1" "$1" "$2" || mark "warning: could not mount $1 on $2"
}
fs tmpfs /run
fs tmpfs /tmp
fs devpts /dev/pts
fs tmpfs /dev/shm
fs securityfs /sys/kernel/security
fs tracefs /sys/kernel/tracing
fs debugfs /sys/kernel/debug
fs bpf /sys/fs/bpf
fs cgroup2 /sys/fs/cgroup
ip link set lo up    # Jupyter kernels (nbval) talk to their client over 127.0.0.1
hostname ebpf-lab-vm
echo 1 > /proc/sys/kernel/sysrq

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
export TERM=dumb COLUMNS=120 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
export JUPYTER_PLATFORM_DIRS=1 EBPF_MAGIC_REQUIRE_LIVE=1
# Chapters run here write their rows of the compatibility table to a table of their own, which
# the host merges into its docs/compatibility.md (notebooks/compat_table.py).
export EBPF_LAB_COMPAT_FILE=$results/compatibility.md EBPF_LAB_COMPAT_WHERE="full-kernel VM"

mark "kernel $(uname -r) lsm=$(cat /sys/kernel/security/lsm) cpus=$(nproc) mem=$(free -m | awk '/^Mem:/ {print $2}')M"

# The share is read-only and the image's venv has the lab installed in editable mode from $lab:
# replace the code there with the checkout's, keeping the venv.
find "$lab" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
if ! tar -C "$share" --exclude=./.git --exclude=./.vm --exclude=./.venv --exclude=./.vagrant \
    --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache -cf - . | tar -C "$lab" -xf -; then
  mark "error copying the checkout from the 9p share"
  power_off 98
fi
cd "$lab" || power_off 98
mark "checkout copied uptime=$(cut -d' ' -f1 /proc/uptime)"

overall=0
run_pytest() {   # name, pytest arguments...
  local name=$1 rc
  shift
  mark "run $name start: pytest $*"
  # xunit1: its test cases carry the file, so the report can name tests as pytest does.
  "$py" -m pytest -p no:cacheprovider --color=no -v -rfEs -o junit_family=xunit1 \
    --junitxml="$results/$name.xml" "$@"
  rc=$?
  mark "run $name rc=$rc"
  [ -f "$results/$name.xml" ] && "$py" "$lab/vm/junit_lines.py" "$results/$name.xml"
  # 5: nothing matched the selection, e.g. no full_kernel test yet. Not a failure of the VM.
  case $rc in 0|5) ;; *) overall=1 ;; esac
}
mkdir -p "$results"

run_pytest smoke vm/guest_smoke_test.py

args=()
encoded=$(sed -n 's/.*ebpflab\.args=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$encoded" ]; then
  readarray -d '' -t args < <(echo "$encoded" | base64 -d)
fi
if [ "${args[0]:-}" = --execute-notebooks ]; then
  # The host's run directory, writable, for the notebooks with their outputs.
  mkdir -p /mnt/out
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 out /mnt/out || power_off 97
  for nb in "${args[@]:1}"; do
    mark "execute $nb"
    if "$lab/.venv/bin/jupyter" nbconvert --to notebook --execute --output-dir /mnt/out \
        --ExecutePreprocessor.timeout=600 "$nb"; then
      mark "executed $nb"
    else
      mark "failed to execute $nb"
      overall=1
    fi
  done
elif [ ${#args[@]} -gt 0 ]; then
  run_pytest selected "${args[@]}"
else
  run_pytest full_kernel -m full_kernel tests
  chapters=()
  # 09-12 need kprobes and trampolines; 13-17 (network and cgroup) run on both kernels, and here
  # they show that they do not depend on this host's kernel or set-up.
  for n in 09 10 11 12 13 14 15 16 17; do
    for nb in notebooks/"$n"-*.ipynb; do
      [ -e "$nb" ] && chapters+=("$nb")
    done
  done
  if [ ${#chapters[@]} -gt 0 ]; then
    # A cell stuck for 10 minutes fails alone instead of the whole VM timing out.
    run_pytest chapters --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg \
      --nbval-cell-timeout=600 "${chapters[@]}"
  else
    mark "note: no chapter notebooks/09-*.ipynb .. 17-*.ipynb yet"
  fi
fi

# The chapters' compatibility table, as notebooks/conftest.py wrote it here, for the host to merge.
if [ -s "$results/compatibility.md" ]; then
  mark "file compatibility.md begin"
  cat "$results/compatibility.md"
  mark "file end"
fi
power_off "$overall"
