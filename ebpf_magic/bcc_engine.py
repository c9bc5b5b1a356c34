"""Compile a cell with BCC and load its program with the SEC's program type.

BCC compiles and creates the maps. Loading goes through libbcc (which passes
BTF line info, so verifier logs point at cell lines) or, for program types
that need a BTF attach target, the sleepable flag or the XDP frags flag
(libbcc's loader passes no program flags), BCC's bytecode goes through
libbpf's bpf_prog_load with the target's BTF id and the flags.
"""
from __future__ import annotations

import atexit
import ctypes as ct
import difflib
import re
from dataclasses import dataclass

from . import attach as attachers
from . import diagnostics, libbpf, source, tracepipe
from .errors import AttachError, BPFLabError
from .fdcapture import stderr_fd
from .privileges import check_privileges
from .sections import Section
from .source import CELL_FILE, CellSource

_DEBUG_PREPROCESSOR = 0x4  # BCC prints its rewritten source: maps verifier lines back to the cell
_BPF_F_SLEEPABLE = 1 << 4
_BPF_F_XDP_HAS_FRAGS = 1 << 5


def bcc_module():
    import bcc

    # libbcc exports these, but BCC's Python binding declares no types for them.
    bcc.lib.bpf_num_tables.restype, bcc.lib.bpf_num_tables.argtypes = ct.c_size_t, [ct.c_void_p]
    bcc.lib.bpf_table_name.restype = ct.c_char_p
    bcc.lib.bpf_table_name.argtypes = [ct.c_void_p, ct.c_size_t]
    _declare_bcc_attach_uprobe(bcc.libbcc.lib)
    return bcc


def _declare_bcc_attach_uprobe(lib) -> None:
    """Give libbcc's bpf_attach_uprobe the seventh argument that BCC's Python binding leaves out.

    BCC 0.26 declares it with six arguments, so ref_ctr_offset (the USDT semaphore offset)
    is whatever a register holds. The kernel registers the uprobe with that offset, bumps a
    "semaphore" at it in the traced process, and refuses with EINVAL ("ref_ctr_offset
    mismatch" in dmesg) every other uprobe on the same function while it is attached: a
    CO-RE cell after a BCC cell on libc's malloc failed so. iovisor/bcc issue 5236.
    """
    if getattr(lib.bpf_attach_uprobe, "lab_declared", False) or len(lib.bpf_attach_uprobe.argtypes or ()) != 6:
        return
    full = lib["bpf_attach_uprobe"]  # a fresh function pointer: BCC's keeps its own declaration
    full.restype = ct.c_int
    full.argtypes = [ct.c_int, ct.c_int, ct.c_char_p, ct.c_char_p, ct.c_ulonglong, ct.c_int, ct.c_uint32]

    def bpf_attach_uprobe(progfd, attach_type, ev_name, binary_path, offset, pid, ref_ctr_offset=0):
        return full(progfd, attach_type, ev_name, binary_path, offset, pid, ref_ctr_offset)

    bpf_attach_uprobe.lab_declared = True
    lib.bpf_attach_uprobe = bpf_attach_uprobe


@dataclass
class Module:
    """A compiled cell: the BCC object (maps, function bytecode) and what clang saw."""

    bpf: object
    source: CellSource
    rewritten: list[str]
    warnings: tuple[str, ...] = ()

    def functions(self) -> list[str]:
        lib = bcc_module().lib
        return [lib.bpf_function_name(self.bpf.module, i).decode()
                for i in range(lib.bpf_num_functions(self.bpf.module))]

    def table_names(self) -> list[str]:
        lib = bcc_module().lib
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


# LLVM inside libbcc exits the whole process on "BPF stack limit exceeded", so a local array
# that cannot fit is refused before BCC sees it, with the message clang would have printed.
_LOCAL_ARRAY = re.compile(r"^[ \t]+(?:(?:unsigned|signed|const|volatile)\s+)*(\w+)\s+(\w+)\s*\[\s*(\d+)\s*\]", re.M)
_SCALAR_SIZES = {"char": 1, "u8": 1, "__u8": 1, "s8": 1, "short": 2, "u16": 2, "__u16": 2, "int": 4, "u32": 4,
                 "__u32": 4, "s32": 4, "long": 8, "u64": 8, "__u64": 8, "s64": 8}
_STACK_LIMIT = 512


def _check_stack(cell: str) -> None:
    for m in _LOCAL_ARRAY.finditer(cell):
        size = _SCALAR_SIZES.get(m[1], 0) * int(m[3])
        if size > _STACK_LIMIT:
            line = cell.count("\n", 0, m.start(2)) + 1
            printed = (f"{CELL_FILE}:{line}:1: error: Looks like the BPF stack limit is exceeded "
                       f"({m[2]} alone needs {size} bytes of {_STACK_LIMIT})")
            raise diagnostics.compile_error(cell, printed, "stack limit") from None


def compile_cell(src: CellSource, cflags: list[str] | None = None, usdt_contexts=()) -> Module:
    _check_stack(src.cell)
    bcc = bcc_module()

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
        raise diagnostics.compile_error(src.cell, cap.text, err) from None
    return Module(bpf=b, source=src, rewritten=_rewritten_cell(cap.text),
                  warnings=tuple(diagnostics.warnings_of(src.cell, cap.text)))


def _rewritten_cell(printed: str) -> list[str]:
    marker = f'#line 1 "{CELL_FILE}"'
    if marker not in printed:
        return []
    body = printed.split(marker, 1)[1].splitlines()[1:]
    return [ln for ln in body if not ln.startswith("#include <bcc/footer.h>")]


def load(module: Module, fn: str, section: Section, *, btf_id: int | None = None) -> int:
    """Load ``fn`` as the SEC's program type; returns the program fd."""
    loaded = module.bpf.funcs.get(fn.encode())
    if loaded is not None:  # USDT: BCC loaded it to attach while compiling
        return loaded.fd
    if section.attach_btf or section.sleepable or section.frags:
        return _load_with_libbpf(module, fn, section, btf_id)
    return _load_with_bcc(module, fn, section)


def _load_with_bcc(module: Module, fn: str, section: Section) -> int:
    bcc = bcc_module()
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
    bcc = bcc_module()
    b, so = module.bpf, libbpf.lib()
    name = fn.encode()
    insns = b.dump_func(name)
    opts = libbpf.ProgLoadOpts(sz=ct.sizeof(libbpf.ProgLoadOpts))
    if section.attach_type is not None:
        opts.expected_attach_type = int(section.attach_type)
    opts.prog_flags = (_BPF_F_SLEEPABLE if section.sleepable else 0) | (_BPF_F_XDP_HAS_FRAGS if section.frags else 0)
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
    return diagnostics.load_error(fn, section, err, log, module.source.cell, module.cell_line_of)


def build(cell) -> object:
    """Compile, load and attach a BCC cell (a ``cell.Cell``); returns an attached, unregistered Program."""
    from .handle import Program

    check_privileges()
    section = cell.section
    if section.target.problem:
        raise AttachError(f"{section.name}: {section.target.problem}", hint="fix the SEC name")
    usdt = []
    if section.family == "usdt":
        from .attach.uprobes import usdt_context
        from .cell import probe_function

        usdt = [usdt_context(section, probe_function(cell), cell.options.pid)]
    btf_id = attachers.btf_id(section)
    module = compile_cell(source.build(cell.text), cflags=list(cell.cflags), usdt_contexts=usdt)
    program = None
    try:
        fn = _choose_function(module.functions(), cell.fn)
        if cell.options.map:
            from .attach.sockmap import share_bcc_maps

            share_bcc_maps(module, cell.options)
        fd = load(module, fn, section, btf_id=btf_id)
        if "bpf_trace_printk" in cell.text:
            tracepipe.drain()
        program = Program(cell.name or fn, module, fn, section, [])
        program.warnings = module.warnings
        program.attachments = attachers.attach(attachers.Request(fd, fn, section, cell.options, module=module))
        if section.family == "iter":
            program.read()
        return program
    except BaseException:
        if program is not None:
            program.detach()
        module.release()
        raise


def _choose_function(compiled: list[str], wanted: str | None) -> str:
    if wanted:
        if wanted not in compiled:
            raise BPFLabError(f"no program function {wanted!r} in the cell",
                              hint=f"program functions: {', '.join(compiled) or 'none (static ones do not count)'}")
        return wanted
    if len(compiled) == 1:
        return compiled[0]
    if not compiled:
        raise BPFLabError("the cell defines no program function",
                          hint="write one non-static function taking the program's context")
    raise BPFLabError(f"the cell defines several program functions: {', '.join(compiled)}",
                      hint="name the one to load with --fn NAME, or make helpers static")
