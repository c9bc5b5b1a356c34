"""Compile a cell with BCC and load its program with the SEC's program type.

BCC compiles and creates the maps. Loading goes through libbcc (which passes
BTF line info, so verifier logs point at cell lines) or, for program types
that need a BTF attach target or the sleepable flag, BCC's bytecode goes
through libbpf's bpf_prog_load with the target's BTF id.
"""
from __future__ import annotations

import atexit
import ctypes as ct
import difflib
import errno
import re
from dataclasses import dataclass

from . import libbpf
from .errors import CompileError, NotRootError, VerifierError
from .fdcapture import stderr_fd
from .sections import Section
from .source import CELL_FILE, CellSource

_DEBUG_PREPROCESSOR = 0x4  # BCC prints its rewritten source: maps verifier lines back to the cell
_BPF_F_SLEEPABLE = 1 << 4
_DIAG = re.compile(rf"^{CELL_FILE}:(\d+):(\d+): (error|warning): (.*)$")
_ANY_ERROR = re.compile(r"^(\S+?):(\d+):(\d+): error: (.*)$")


def _bcc():
    import bcc

    # libbcc exports these, but BCC's Python binding declares no types for them.
    bcc.lib.bpf_num_tables.restype, bcc.lib.bpf_num_tables.argtypes = ct.c_size_t, [ct.c_void_p]
    bcc.lib.bpf_table_name.restype = ct.c_char_p
    bcc.lib.bpf_table_name.argtypes = [ct.c_void_p, ct.c_size_t]
    return bcc


@dataclass
class Module:
    """A compiled cell: the BCC object (maps, function bytecode) and what clang saw."""

    bpf: object
    source: CellSource
    rewritten: list[str]

    def functions(self) -> list[str]:
        lib = _bcc().lib
        return [lib.bpf_function_name(self.bpf.module, i).decode()
                for i in range(lib.bpf_num_functions(self.bpf.module))]

    def table_names(self) -> list[str]:
        lib = _bcc().lib
        return [lib.bpf_table_name(self.bpf.module, i).decode()
                for i in range(lib.bpf_num_tables(self.bpf.module))]

    def cell_line_of(self, rewritten_line: int) -> int | None:
        """BCC inserts lines while rewriting; find the cell line that a BTF line number names."""
        cell = self.source.cell.splitlines()
        if not self.rewritten:
            return rewritten_line
        i = rewritten_line - 1
        sm = difflib.SequenceMatcher(a=self.rewritten, b=cell, autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if i1 <= i < i2:
                if tag == "equal":
                    return j1 + (i - i1) + 1
                if tag == "replace":  # a line BCC rewrote (map.lookup() -> bpf_map_lookup_elem())
                    return j1 + min(i - i1, j2 - j1 - 1) + 1
                return None  # a line BCC inserted
        return None

    def release(self) -> None:
        b = self.bpf
        if b is None:
            return
        self.bpf = None
        try:
            b.cleanup()
        finally:
            atexit.unregister(b.cleanup)


def compile_cell(src: CellSource, cflags: list[str] | None = None, usdt_contexts=()) -> Module:
    bcc = _bcc()

    class _Module(bcc.BPF):
        # BCC attaches functions named kprobe__*, tracepoint__*, ... on its own;
        # the lab attaches by SEC instead, exactly once.
        def _trace_autoload(self):
            pass

    flags = ["-Wno-duplicate-decl-specifier", "-Wno-ignored-attributes", *(cflags or [])]
    # libbcc also prints which kernel directory it uses to fd 1.
    with stderr_fd((1, 2)) as cap:
        try:
            b = _Module(text=src.text.encode(), cflags=flags, usdt_contexts=list(usdt_contexts),
                        debug=_DEBUG_PREPROCESSOR)
        except Exception as exc:
            err = exc
        else:
            err = None
    if err is not None:
        raise _compile_error(src, cap.text, err) from None
    return Module(bpf=b, source=src, rewritten=_rewritten_cell(cap.text))


def _rewritten_cell(printed: str) -> list[str]:
    marker = f'#line 1 "{CELL_FILE}"'
    if marker not in printed:
        return []
    body = printed.split(marker, 1)[1].splitlines()[1:]
    return [ln for ln in body if not ln.startswith("#include <bcc/footer.h>")]


def _compile_error(src: CellSource, printed: str, exc: Exception) -> CompileError:
    lines = printed.splitlines()
    errors = [(int(m[1]), int(m[2]), m[4]) for m in map(_DIAG.match, lines) if m and m[3] == "error"]
    if errors:
        line, col, msg = errors[0]
        detail = [f"cell line {ln}:{c}: {m}" for ln, c, m in errors[:6]]
        if len(errors) > 6:
            detail.append(f"... and {len(errors) - 6} more errors")
        return CompileError(
            msg, where=f"cell line {line}: {src.cell_line(line)}", detail="\n".join(detail),
            hint="fix the C in the cell; BCC's dialect: map.lookup()/increment(), bpf_probe_read_*()")
    others = [m for m in map(_ANY_ERROR.match, lines) if m]
    if others:
        m = others[0]
        return CompileError(m[4], where=f"{m[1]}:{m[2]} (a header, not the cell)",
                            hint="a header the cell includes does not compile with this kernel's headers; "
                                 "check %bpf_features for the headers in use")
    tail = "\n".join(ln for ln in lines[-8:] if ln.strip()) or str(exc)
    return CompileError("BCC could not compile the cell", detail=tail,
                        hint="check that kernel headers are installed (%bpf_features)")


def load(module: Module, fn: str, section: Section, *, btf_id: int | None = None) -> int:
    """Load ``fn`` as the SEC's program type; returns the program fd."""
    loaded = module.bpf.funcs.get(fn.encode())
    if loaded is not None:  # USDT: BCC loaded it to attach while compiling
        return loaded.fd
    if section.attach_btf or section.sleepable:
        return _load_with_libbpf(module, fn, section, btf_id)
    return _load_with_bcc(module, fn, section)


def _load_with_bcc(module: Module, fn: str, section: Section) -> int:
    bcc = _bcc()
    b, lib = module.bpf, bcc.lib
    name = fn.encode()
    attach = int(section.attach_type) if section.attach_type is not None else -1
    with stderr_fd() as cap:
        fd = lib.bcc_func_load(b.module, int(section.prog_type), name,
                               lib.bpf_function_start(b.module, name), lib.bpf_function_size(b.module, name),
                               lib.bpf_module_license(b.module), lib.bpf_module_kern_version(b.module),
                               0, None, 0, None, attach)
        err = ct.get_errno() if fd < 0 else 0
    if fd < 0:
        raise _load_error(module, fn, section, abs(err) or -fd, cap.text)
    b.funcs[name] = bcc.BPF.Function(b, name, fd)
    return fd


def _load_with_libbpf(module: Module, fn: str, section: Section, btf_id: int | None) -> int:
    bcc = _bcc()
    b, so = module.bpf, libbpf.lib()
    name = fn.encode()
    insns = b.dump_func(name)
    opts = libbpf.ProgLoadOpts(sz=ct.sizeof(libbpf.ProgLoadOpts))
    if section.attach_type is not None:
        opts.expected_attach_type = int(section.attach_type)
    if section.sleepable:
        opts.prog_flags = _BPF_F_SLEEPABLE
    if btf_id is not None:
        opts.attach_btf_id = btf_id
    license_ = bcc.lib.bpf_module_license(b.module)
    fd = so.bpf_prog_load(int(section.prog_type), name[:15], license_, insns, len(insns) // 8, ct.byref(opts))
    if fd < 0:
        err = libbpf.errno_of(fd)
        log = ct.create_string_buffer(1 << 22)
        opts.log_level, opts.log_size, opts.log_buf = 1, len(log), ct.cast(log, ct.c_char_p)
        so.bpf_prog_load(int(section.prog_type), name[:15], license_, insns, len(insns) // 8, ct.byref(opts))
        raise _load_error(module, fn, section, err, log.value.decode(errors="replace"))
    b.funcs[name] = bcc.BPF.Function(b, name, fd)
    return fd


def _load_error(module: Module, fn: str, section: Section, err: int, log: str):
    from .features import refusal_reason

    if err == errno.EPERM:
        reason = refusal_reason(section)
        if reason is not None:
            return reason
        return NotRootError(f"loading {fn} needs CAP_BPF and CAP_PERFMON (errno EPERM)",
                            hint="run JupyterLab as root: sudo make lab")
    lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith(("In file included", " "))]
    verifier = [ln for ln in lines if not _ANY_ERROR.match(ln) and "warning" not in ln]
    tail_end = next((i for i in range(len(verifier) - 1, -1, -1)
                     if not verifier[i].startswith(("processed ", "HINT", "bpf: Failed", "verification time",
                                                    "stack depth", "-- END"))), len(verifier) - 1)
    excerpt = verifier[max(0, tail_end - 5): tail_end + 1]
    where = None
    for ln in reversed(verifier[: tail_end + 1]):
        m = re.search(rf"@ {CELL_FILE}:(\d+)", ln)
        if m and int(m[1]) > 0:
            cell_line = module.cell_line_of(int(m[1]))
            if cell_line:
                where = f"cell line {cell_line}: {module.source.cell_line(cell_line)}"
            break
    hints = [ln[len("HINT: "):] for ln in verifier if ln.startswith("HINT: ")]
    what = verifier[tail_end] if verifier else f"{libbpf.strerror(err)} loading {fn}"
    return VerifierError(
        what, where=where, detail="\n".join(excerpt[:-1]),
        hint=hints[0] if hints else "bound every access the verifier complains about; "
                                    f"{section.family} programs get a {section.prog_type.name} context")
