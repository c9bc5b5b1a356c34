"""Which struct each ring or perf buffer of a compiled cell carries, read from the object itself.

The program's code says which map each output helper writes and how many
bytes: ``bpf_ringbuf_reserve(&rb, sizeof(*e), 0)`` loads the map's address
(an ``ld_imm64`` relocated against the map's symbol) into r1 and the size
into r2 right before the call; ``bpf_ringbuf_output`` takes the size in r3,
``bpf_perf_event_output`` the map in r2 and the size in r5. The object's
DWARF (``event_dwarf``) then names the structs of that size which local
variables or parameters hold or point at. One candidate is the answer; with
several, the cell's text breaks the tie (the variable that receives the
reserve or is passed to the output); with none, ``--event-type`` decides.
"""
from __future__ import annotations

import functools
import io
import re
import struct
from dataclasses import dataclass, field

from .event_dwarf import DwarfTypes

PERF_EVENT_OUTPUT, RINGBUF_OUTPUT, RINGBUF_RESERVE = 25, 130, 131
# helper id -> (argument register of the map, of the size)
_OUTPUTS = {RINGBUF_RESERVE: (1, 2), RINGBUF_OUTPUT: (1, 3), PERF_EVENT_OUTPUT: (2, 5)}
_SHF_EXECINSTR = 0x4
_LD_IMM64, _MOV64_K, _MOV32_K, _MOV64_X, _CALL = 0x18, 0xB7, 0xB4, 0xBF, 0x85
_WRITES_DST = {0, 1, 4, 7}  # classes LD, LDX, ALU, ALU64

_RESERVE = re.compile(r"struct\s+(\w+)\s*\*\s*\w+\s*=\s*(?:\([^)]*\)\s*)?bpf_ringbuf_reserve\(\s*&(\w+)")
_OUTPUT = re.compile(r"bpf_(?:ringbuf|perf_event)_output\(\s*(?:\w+\s*,\s*)?&(\w+)\s*,\s*(?:\w+\s*,\s*)?&?(\w+)")


@dataclass
class EventTypes:
    """What the object says about its output maps."""

    sizes: dict[str, set[int]] = field(default_factory=dict)     # map -> record sizes its outputs use
    names: dict[str, str] = field(default_factory=dict)          # map -> struct name, where decided
    candidates: dict[str, list[str]] = field(default_factory=dict)
    dwarf: DwarfTypes | None = None


def output_sizes(elf_bytes: bytes) -> dict[str, set[int]]:
    """Map name -> the constant record sizes the code passes to output helpers with that map."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    elf = ELFFile(io.BytesIO(elf_bytes))
    maps_idx = next((i for i, s in enumerate(elf.iter_sections()) if s.name == ".maps"), None)
    symtab = elf.get_section_by_name(".symtab")
    found: dict[str, set[int]] = {}
    if maps_idx is None or symtab is None:
        return found
    sections = list(elf.iter_sections())
    code = {i for i, sec in enumerate(sections) if sec["sh_flags"] & _SHF_EXECINSTR and sec["sh_size"]}
    for sec in sections:
        # only the code's relocations: the debug sections' are many and slow to read
        if isinstance(sec, RelocationSection) and sec["sh_info"] in code:
            map_at = {}
            for r in sec.iter_relocations():
                sym = symtab.get_symbol(r["r_info_sym"])
                if sym["st_shndx"] == maps_idx:
                    map_at[r["r_offset"]] = sym.name
            _scan(sections[sec["sh_info"]].data(), map_at, found)
    return found


def _scan(code: bytes, map_at: dict[int, str], found: dict[str, set[int]]) -> None:
    """Track, straight through the code, which register holds a map or a constant at each helper call.

    Branches are ignored: compilers set a call's arguments right before it.
    """
    regs: dict[int, tuple[str, object]] = {}
    pc, end = 0, len(code) - 7
    while pc < end:
        op, rr, _off, imm = struct.unpack_from("<BBhi", code, pc)
        dst, src = rr & 0xF, rr >> 4
        width = 16 if op == _LD_IMM64 else 8
        if op == _LD_IMM64:
            name = map_at.get(pc)
            regs[dst] = ("map", name) if name and src in (0, 1) else ("?", None)
        elif op in (_MOV64_K, _MOV32_K):
            regs[dst] = ("imm", imm)
        elif op == _MOV64_X:
            regs[dst] = regs.get(src, ("?", None))
        elif op == _CALL:
            args = _OUTPUTS.get(imm) if src == 0 else None
            if args:
                m, n = regs.get(args[0], ("?", None)), regs.get(args[1], ("?", None))
                if m[0] == "map" and n[0] == "imm" and n[1] > 0:
                    found.setdefault(m[1], set()).add(n[1])
            for r in range(6):
                regs.pop(r, None)
        elif op & 7 in _WRITES_DST:
            regs.pop(dst, None)
        pc += width


@functools.lru_cache(maxsize=32)
def infer_event_types(elf_bytes: bytes, cell: str = "", with_dwarf: bool = False) -> EventTypes:
    """Output map -> struct name, from the code's helper calls and the object's DWARF.

    The DWARF is read when some output call was found, or when ``with_dwarf``.
    Cached: a re-run of an unchanged cell has the same object.
    """
    out = EventTypes(sizes=output_sizes(elf_bytes))
    if not out.sizes and not with_dwarf:
        return out
    out.dwarf = DwarfTypes(elf_bytes)
    written = _written_in(cell)
    for m, sizes in out.sizes.items():
        names = sorted({n for s in sizes for n in out.dwarf.candidates(s)})
        out.candidates[m] = names
        if len(names) == 1:
            out.names[m] = names[0]
        elif written.get(m) in names:
            out.names[m] = written[m]
    return out


def _written_in(cell: str) -> dict[str, str]:
    """Map -> struct name as the cell's text spells it (only breaks ties between DWARF's candidates)."""
    found = {m: s for s, m in _RESERVE.findall(cell)}
    for m, var in _OUTPUT.findall(cell):
        decl = re.search(rf"(?:struct\s+)?(\w+)\s+\*?\s*{re.escape(var)}\s*[=;\[]", cell)
        if decl and m not in found:
            found[m] = decl.group(1)
    return found
