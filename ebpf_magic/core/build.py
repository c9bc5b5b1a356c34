"""A CO-RE cell to attached programs: compile, open, set read-only globals, load, attach."""
from __future__ import annotations

from ..errors import UsageError
from ..maps import RECORD_MAPS
from ..privileges import check_privileges
from . import toolchain
from .global_values import set_globals
from .obj import CoreObject
from .program import CoreProgram


def build(cell) -> CoreProgram:
    """Compile, load and attach a CO-RE cell (a ``cell.Cell``); returns an attached, unregistered handle."""
    check_privileges()
    compiled = toolchain.compile_cell(cell.text, list(cell.cflags))
    obj = CoreObject(compiled.obj, cell.name or "cell", cell.text, compiled.target_btf)
    links = []
    try:
        from .btf import Btf

        btf = Btf(obj.btf)
        set_globals(obj, btf, cell.sets)
        if cell.event_type and btf.find(cell.event_type) is None and _dwarf_lacks(compiled.obj, cell.event_type):
            raise UsageError(f"--event-type {cell.event_type}: no such type in the cell",
                             hint="name a struct (or typedef) the cell defines and uses, e.g. --event-type event")
        if cell.options.map:
            from ..attach.sockmap import share_core_maps

            share_core_maps(obj, cell.options)
        obj.load()
        links = obj.attach(cell.options)
        first = next((p.name for p in obj.programs if p.autoload), "cell")
        # without --event-type, h.events() reads each map's record type from the object when first asked
        events = {mi.name: cell.event_type for mi in obj.maps() if mi.type in RECORD_MAPS} if cell.event_type else {}
        program = CoreProgram(cell.name or first, obj, links, events)
        program.warnings = compiled.warnings
        if any(a.kind == "iter" for a in links):
            program.read()
        return program
    except BaseException:
        for a in reversed(links):
            a.detach()
        obj.close()
        raise


def _dwarf_lacks(elf_bytes: bytes, type_name: str) -> bool:
    from .event_dwarf import DwarfTypes

    return DwarfTypes(elf_bytes).dtype(type_name) is None
