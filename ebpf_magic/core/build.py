"""A CO-RE cell to attached programs: compile, open, set read-only globals, load, attach."""
from __future__ import annotations

from ..errors import UsageError
from ..maps import RECORD_MAPS
from ..privileges import check_privileges
from . import toolchain
from .global_values import set_globals
from .obj import CoreObject
from .program import CoreProgram, infer_event_types


def build(cell) -> CoreProgram:
    """Compile, load and attach a CO-RE cell (a ``cell.Cell``); returns an attached, unregistered handle."""
    check_privileges()
    compiled = toolchain.compile_cell(cell.text, list(cell.cflags))
    obj = CoreObject(compiled.obj, cell.name or "cell", cell.text)
    links = []
    try:
        from .btf import Btf

        btf = Btf(obj.btf)
        set_globals(obj, btf, cell.sets)
        if cell.event_type and btf.find(cell.event_type) is None:
            raise UsageError(f"--event-type {cell.event_type}: no such type in the cell's BTF",
                             hint=f"clang keeps only types the code uses: declare `struct {cell.event_type} "
                                  f"*_{cell.event_type}_unused __attribute__((unused));` in the cell")
        if cell.options.map:
            from ..attach.sockmap import share_core_maps

            share_core_maps(obj, cell.options)
        obj.load()
        links = obj.attach(cell.options)
        first = next((p.name for p in obj.programs if p.autoload), "cell")
        events = infer_event_types(cell.text)
        if cell.event_type:
            events = {m: cell.event_type for m in [*events, *(
                mi.name for mi in obj.maps() if mi.type in RECORD_MAPS)]}
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
