"""What a program is pointed at, found or refused in one place for both engines.

Binaries and libraries resolve the way libbpf 1.4 resolves a uprobe's binary
(``resolve_full_path`` in libbpf.c), so a SEC name means the same file in a
BCC cell and in a CO-RE cell. Each thing that can be missing (a process, a
binary, a symbol in it, a network interface, a kernel function) has its own
error that names it and says how to list the real ones.
"""
from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from dataclasses import dataclass

from ..errors import AttachError
from .base import close_matches


@dataclass(frozen=True)
class Resolved:
    path: str          # absolute
    how: str           # "path", "libbpf" or "ld.so.cache": for messages and tests


def is_library_name(name: str) -> bool:
    """libbpf's test: a name ending in ".so" or holding ".so." is a library, anything else a program."""
    return name.endswith(".so") or ".so." in name


def libbpf_search_dirs(name: str) -> list[str]:
    """The directories libbpf 1.4 tries, in its order, for a name without '/'."""
    if is_library_name(name):
        lists = [os.environ.get("LD_LIBRARY_PATH"), "/usr/lib64:/usr/lib", _arch_lib_dir()]
    else:
        lists = [os.environ.get("PATH"), "/usr/bin:/usr/sbin"]
    return [d for lst in lists if lst for d in lst.split(":") if d]


def _arch_lib_dir() -> str | None:
    # libbpf compiles in the Debian multiarch directory of its own architecture.
    triplet = sysconfig.get_config_var("MULTIARCH")
    return f"/lib/{triplet}" if triplet else None


def resolve_binary(name: str) -> Resolved:
    """The absolute path of the binary a uprobe/USDT target names.

    1. A name with '/' is a path (relative ones to the working directory), as in libbpf.
    2. Otherwise libbpf's search: libraries (``*.so``, ``*.so.*``) in LD_LIBRARY_PATH,
       /usr/lib64, /usr/lib and /lib/<multiarch>; programs on PATH, then /usr/bin, /usr/sbin.
    3. The lab is more generous than libbpf here: libbpf refuses ``libc`` and ``c``, but
       BCC (and ``gcc -lc``) accept them, so the dynamic linker's cache (``ldconfig -p``)
       answers ``libc``, ``c`` and ``libc.so`` with libc.so.6. Either engine then gets the
       absolute path, so both attach to the same file.

    Candidates that are not ELF files of this machine (``libc.so`` is a linker script
    on Debian) are passed over, where libbpf would take them and fail later.
    """
    if not name:
        raise AttachError("the probe names no binary", hint="e.g. uprobe/libc.so.6:malloc or uprobe//usr/bin/bash:readline")
    if "/" in name:
        path = os.path.abspath(name)
        if not os.path.exists(path):
            raise AttachError(f"no file {name}", hint=_where_to_look(name))
        _require_elf(path, name)
        return Resolved(path, "path")
    perm = os.R_OK if is_library_name(name) else os.R_OK | os.X_OK
    for d in libbpf_search_dirs(name):
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, perm, effective_ids=True) and _elf_machine(path) == _own_machine():
            return Resolved(os.path.abspath(path), "libbpf")
    for _soname, path in _ld_cache_matches(name):
        if _elf_machine(path) == _own_machine():
            return Resolved(path, "ld.so.cache")
    searched = ", ".join(dict.fromkeys(libbpf_search_dirs(name)))
    raise AttachError(f"no binary or library named {name!r}",
                      detail=f"searched: {searched} and the dynamic linker's cache (ldconfig -p)",
                      hint=_where_to_look(name))


def _where_to_look(name: str) -> str:
    base = os.path.basename(name.rstrip("/")) or name
    stem = base.split(".so")[0].removeprefix("lib") or base
    return (f"give an absolute path, or find it: ldconfig -p | grep {stem} (libraries), "
            f"which {base} (programs)")


def _ld_cache_matches(name: str) -> list[tuple[str, str]]:
    """(soname, path) entries of the linker cache for ``name``: the exact soname first, then
    BCC's spelling, where ``c``, ``libc`` and ``libc.so`` all mean ``libc.so*``."""
    entries = _ld_cache()
    exact = [e for e in entries if e[0] == name]
    if ".so." in name:
        return exact
    stem = name.removesuffix(".so")
    stem = stem if stem.startswith("lib") else "lib" + stem
    loose = [e for e in entries if e[0] != name and (e[0] == stem + ".so" or e[0].startswith(stem + ".so."))]
    return exact + loose


@functools.cache
def _ld_cache() -> tuple[tuple[str, str], ...]:
    ldconfig = shutil.which("ldconfig", path=os.pathsep.join([os.environ.get("PATH", ""), "/sbin", "/usr/sbin"]))
    if ldconfig is None:
        return ()
    try:
        out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    entries = []
    for line in out.splitlines():
        # "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"
        head, arrow, path = line.strip().partition(" => ")
        if arrow:
            entries.append((head.split(" (", 1)[0], path.strip()))
    return tuple(entries)


def _elf_machine(path: str) -> str | None:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as f:
            return ELFFile(f).header.e_machine
    except (OSError, ELFError):
        return None


@functools.cache
def _own_machine() -> str | None:
    return _elf_machine(os.path.realpath(sys.executable))


def _require_elf(path: str, spelled: str) -> None:
    machine = _elf_machine(path)
    if machine is None:
        raise AttachError(f"{spelled} is not an ELF binary or library",
                          hint="point the probe at a program or a shared library (file " + path + " says what it is)")
    if machine != _own_machine():
        raise AttachError(f"{spelled} is built for {machine}, not for this machine ({_own_machine()})",
                          hint="probe a binary of this machine's architecture")


# --- symbols ------------------------------------------------------------------------------

def require_symbol(path: str, symbol: str) -> None:
    """Refuse a function that the binary does not define, suggesting close names.

    libbpf and BCC both look the name up among the defined functions of .dynsym and
    .symtab; reading the same tables here lets the error name the binary and the
    nearest real names instead of the engines' "could not determine address".
    """
    names = function_symbols(path, *_stamp(path))
    if symbol in names:
        return
    close = close_matches(symbol, names)
    base = os.path.basename(path)
    hint = (f"did you mean {', '.join(close)}? " if close else "") + f"list them: nm -D --defined-only {path}"
    if not names:
        hint = f"{base} has no function symbols (stripped?); give a file offset, e.g. {base}:0x1234"
    raise AttachError(f"no function {symbol!r} in {path}", hint=hint)


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=16)
def function_symbols(path: str, _mtime: int = 0, _size: int = 0) -> frozenset[str]:
    """Defined functions (plain and GNU ifunc) of .dynsym and .symtab, without @VERSION suffixes."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    names = set()
    with open(path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            if not isinstance(section, SymbolTableSection):
                continue
            for sym in section.iter_symbols():
                if (sym.entry.st_info.type in ("STT_FUNC", "STT_LOOS", "STT_GNU_IFUNC")
                        and sym.entry.st_shndx != "SHN_UNDEF" and sym.name):
                    names.add(sym.name.split("@", 1)[0])
    return frozenset(names)


# --- processes, interfaces, kernel functions -----------------------------------------------

def require_process(pid: int | None) -> None:
    """A --pid must name a live process when the probe attaches, not only when the cell was read."""
    if pid is None or pid == -1:
        return
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        state = None
    if state is None or state in ("Z", "X"):
        gone = "has exited" if state else "does not exist"
        raise AttachError(f"process {pid} {gone}",
                          hint="list processes: ps -e; start the program first (subprocess.Popen) "
                               "and pass its .pid while it runs")


def require_interface(name: str) -> int:
    """The ifindex of a network interface, or an error that lists this machine's interfaces."""
    names = dict((n, i) for i, n in socket.if_nameindex())
    if name in names:
        return names[name]
    close = close_matches(name, names)
    raise AttachError(f"no network interface {name!r}",
                      hint=(f"did you mean {', '.join(close)}? " if close else "")
                      + f"interfaces here: {', '.join(names)} (ip link lists them)")


def require_kernel_function(name: str) -> None:
    """Refuse a kprobe target that /proc/kallsyms does not list, suggesting close names."""
    names = kernel_functions()
    if not names or name in names:
        return  # no kallsyms to read: let the kernel answer
    # difflib over every kernel function takes seconds; names sharing a stem are enough.
    close = close_matches(name, [n for n in names if n[:3] == name[:3] or name[:6] in n or name[-6:] in n])
    raise AttachError(f"no kernel function {name!r} in /proc/kallsyms",
                      hint=(f"did you mean {', '.join(close)}? " if close else "")
                      + f"list them: grep -w {name[:8]} /proc/kallsyms")


@functools.cache
def kernel_functions() -> frozenset[str]:
    names = set()
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in ("t", "T"):
                    names.add(parts[2])
    except OSError:
        return frozenset()
    return frozenset(names)
