"""clang, vmlinux.h and caches: a CO-RE cell to a BPF object file, in milliseconds when unchanged.

vmlinux.h comes from the running kernel's BTF (bpftool's C dump). A cell is compiled against a
header of only the kernel types it names (``vmlinux_subset``), which keeps clang's work small;
the whole header, precompiled once per kernel and clang version, is the fallback and reports
the errors. Objects are cached by a hash of everything that changes them, so an unchanged
re-run skips clang.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from ..diagnostics import compile_error, warnings_of
from ..errors import BPFLabError
from ..source import CELL_FILE
from . import subset_btf

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
_ARCH = {"x86_64": "x86", "aarch64": "arm64", "arm64": "arm64", "s390x": "s390", "ppc64le": "powerpc",
         "riscv64": "riscv"}
_HINT = "libbpf C: #include \"vmlinux.h\", <bpf/bpf_helpers.h>; read kernel memory with BPF_CORE_READ()"


def cache_dir() -> str:
    base = os.environ.get("EBPF_LAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ebpf-lab")
    os.makedirs(base, exist_ok=True)
    return base


def _missing(tool: str, what: str) -> BPFLabError:
    return BPFLabError(f"{tool} is not installed: {what}", hint="make lab installs it; %bpf_features lists tools")


# Measured on the lab's machine (README, "Toolchain"): clang 19 compiles a CO-RE cell against the
# precompiled vmlinux.h faster than 14 and emits current BTF; 16 and the default clang are fallbacks.
CLANGS = ("clang-19", "clang-16", "clang")


@functools.cache
def clang() -> tuple[str, str]:
    """(path, version line) of the clang that compiles CO-RE cells (EBPF_LAB_CLANG overrides)."""
    wanted = os.environ.get("EBPF_LAB_CLANG")
    path = shutil.which(wanted) if wanted else next(filter(None, map(shutil.which, CLANGS)), None)
    if not path:
        raise _missing(wanted or "clang", "CO-RE cells are compiled with clang -target bpf")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    return path, out.splitlines()[0]


@functools.cache
def btf_digest() -> str:
    """Identifies the running kernel's type layout: vmlinux.h and objects are cached under it."""
    try:
        with open(VMLINUX_BTF, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError as exc:
        raise BPFLabError(f"this kernel has no BTF ({VMLINUX_BTF}: {exc.strerror})",
                          hint="CO-RE needs CONFIG_DEBUG_INFO_BTF; use the BCC engine: %%bpf SEC") from None


def arch_flag() -> str:
    return f"-D__TARGET_ARCH_{_ARCH.get(platform.machine(), platform.machine())}"


def base_flags(include_dir: str) -> list[str]:
    # -target bpf has no multiarch include directory of its own, and <bpf/usdt.bpf.h> needs
    # <asm/errno.h> from there; after the lab's own headers, so vmlinux.h types win.
    multiarch = f"/usr/include/{platform.machine()}-linux-gnu"
    extra = ["-idirafter", multiarch] if os.path.isdir(multiarch) else []
    return ["-target", "bpf", "-O2", "-g", arch_flag(), "-I", include_dir, *extra, "-Wno-unknown-attributes"]


def atomic_write(path: str, produce) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    os.close(fd)
    try:
        produce(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def kernel_dir() -> str:
    """The cache folder of this kernel's BTF, holding vmlinux.h."""
    d = os.path.join(cache_dir(), f"btf-{btf_digest()}")
    os.makedirs(d, exist_ok=True)
    header = os.path.join(d, "vmlinux.h")
    if not os.path.exists(header):
        bpftool = shutil.which("bpftool")
        if not bpftool:
            raise _missing("bpftool", "it dumps the kernel's BTF as vmlinux.h")

        def dump(tmp):
            with open(tmp, "wb") as out:
                subprocess.run([bpftool, "btf", "dump", "file", VMLINUX_BTF, "format", "c"], stdout=out,
                               check=True)

        atomic_write(header, dump)
    return d


@functools.cache
def pch() -> str:
    """vmlinux.h precompiled for this kernel and clang: parsing 200k lines once, not per cell."""
    path, version = clang()
    d = kernel_dir()
    key = hashlib.sha256(version.encode()).hexdigest()[:12]
    out = os.path.join(d, f"vmlinux-{key}.h.pch")
    if not os.path.exists(out):
        def build(tmp):
            subprocess.run([path, *base_flags(d), "-x", "c-header", os.path.join(d, "vmlinux.h"), "-o", tmp],
                           check=True, capture_output=True)

        atomic_write(out, build)
    return out


@dataclass(frozen=True)
class Compiled:
    obj: bytes
    cached: bool
    path: str
    warnings: tuple[str, ...] = ()
    target_btf: str | None = None  # the kernel BTF for CO-RE, cut to the cell's types (``subset_btf``)


def compile_cell(cell: str, cflags: list[str] | None = None) -> Compiled:
    """The BPF object for a cell; raises CompileError with cell lines."""
    path, version = clang()
    d = kernel_dir()
    flags = base_flags(d) + list(cflags or [])
    kernel_types = "vmlinux.h" in cell
    key = hashlib.sha256("\0".join([cell, *flags, version, btf_digest(), str(kernel_types)]).encode())
    obj_dir = os.path.join(cache_dir(), "obj")
    os.makedirs(obj_dir, exist_ok=True)
    obj = os.path.join(obj_dir, f"{key.hexdigest()[:24]}.o")
    warn = obj[:-2] + ".warnings"
    target = obj[:-2] + ".btf"
    if os.path.exists(obj):
        with open(obj, "rb") as f:
            data = f.read()
        return Compiled(data, True, obj, _read_warnings(warn), target if os.path.exists(target) else None)
    with tempfile.TemporaryDirectory(prefix="ebpf-lab-") as tmp:
        src = os.path.join(tmp, CELL_FILE)
        with open(src, "w") as f:
            f.write(cell)
        out = os.path.join(tmp, "cell.o")
        proc = _compile_with_subset(path, flags, d, cell, tmp, out) if kernel_types else None
        subset = getattr(proc, "subset_dir", None)
        if proc is None:
            extra = ["-include-pch", pch()] if kernel_types else []
            proc = _clang(path, [*flags, *extra], tmp, out)
        if proc.returncode != 0:
            hint = _HINT if kernel_types else (
                "a cell with SEC(\"...\") and no SEC on the magic line is a libbpf program (CO-RE): "
                "#include \"vmlinux.h\" and <bpf/bpf_helpers.h>; for BCC C, put the SEC on the magic line")
            raise compile_error(cell, proc.stderr, f"clang exited with {proc.returncode}", hint=hint,
                                engine="core") from None
        found = warnings_of(cell, proc.stderr)
        # The warnings go first: an object without its file would replay as warning-free.
        atomic_write(warn, lambda t: _write_lines(t, found))
        # Relocated against the subset's BTF only if it has every type the relocations name: a cell's
        # own CO-RE type may be a module's, which libbpf looks for only beside the whole kernel BTF.
        subset_btf_path = os.path.join(subset, subset_btf.FILE) if subset is not None else None
        has_target = subset_btf_path is not None and subset_btf.covers(out, subset_btf_path)
        if has_target:
            atomic_write(target, lambda t: shutil.copyfile(subset_btf_path, t))
        elif os.path.exists(target):
            os.unlink(target)
        atomic_write(obj, lambda t: shutil.copyfile(out, t))
    with open(obj, "rb") as f:
        return Compiled(f.read(), False, obj, tuple(found), target if has_target else None)


def _clang(path: str, flags: list[str], tmp: str, out: str) -> subprocess.CompletedProcess:
    from . import warm_clang

    # Run in tmp with a relative name: diagnostics and BTF line info then say "cell:LINE".
    args = [path, *flags, "-x", "c", "-c", CELL_FILE, "-o", out]
    return warm_clang.run(args, tmp) or subprocess.run(args, cwd=tmp, capture_output=True, text=True)


# Each round adds the kernel types clang said were missing (reached through a pointer the cell
# follows); more rounds than this means a real error, which the whole header reports best.
_SUBSET_ROUNDS = 3


def _compile_with_subset(path, flags, d, cell, tmp, out) -> subprocess.CompletedProcess | None:
    """clang against a vmlinux.h of only the types the cell names; None: use the whole header.

    The result's ``subset_dir`` is the header's folder (its BTF is beside it, ``subset_btf``).

    The whole header's closure of task_struct and friends is what makes clang slow (debug info of
    every reachable type); a subset holds the same layouts with preserve_access_index, so the
    object and its CO-RE relocations are the same for the fields the cell reads.
    """
    from . import vmlinux_subset

    if os.environ.get("EBPF_LAB_FULL_VMLINUX") or not vmlinux_subset.supported():
        return None
    names, tried = vmlinux_subset.names_in(cell), set()
    # task_struct___old is CO-RE's spelling of "task_struct as it used to be": relocated against task_struct
    names |= {n.split("___")[0] for n in names if "___" in n}
    for _ in range(_SUBSET_ROUNDS):
        try:
            inc = vmlinux_subset.header(d, names)
        except OSError:
            return None
        if inc in tried:  # clang's complaint names nothing the kernel's BTF has: a real error
            return None
        tried.add(inc)
        # First on the include path, so "vmlinux.h" is the subset, not the whole header.
        proc = _clang(path, ["-I", inc, *flags], tmp, out)
        if proc.returncode == 0:
            # Warnings are replayed on every run, so they come from the header the learner wrote for.
            proc.subset_dir = inc
            return proc if not proc.stderr.strip() else None
        missing = set(vmlinux_subset.MISSING.findall(proc.stderr)) - names
        if not missing:
            return None
        names |= missing
    return None


def _write_lines(path: str, lines) -> None:
    with open(path, "w") as f:
        f.write("".join(f"{ln}\n" for ln in lines))


def _read_warnings(path: str) -> tuple[str, ...]:
    try:
        with open(path) as f:
            return tuple(f.read().splitlines())
    except FileNotFoundError:
        return ()
