"""A CO-RE cell to attached programs: compile, open, set read-only globals, load, attach."""
from __future__ import annotations

import numpy as np

from ..errors import BPFLabError
from ..privileges import check_privileges
from . import toolchain
from .obj import CoreObject
from .program import CoreProgram, infer_event_types


def _set_globals(obj: CoreObject, program_btf, values: dict[str, str]) -> None:
    """Write globals into the object's .rodata/.data images: the kernel sees them from the first run."""
    if not values:
        return
    wanted = dict(values)
    for m in obj.maps():
        section = "." + m.name.rsplit(".", 1)[-1]
        if section not in (".rodata", ".data", ".bss"):
            continue
        image = obj.initial_value(m)
        for var, offset, type_id in program_btf.datasec(section):
            if var not in wanted or image is None:
                continue
            dt = program_btf.dtype(type_id)
            raw = wanted.pop(var)
            value = raw.encode() if dt.kind == "S" else int(raw, 0)
            np.frombuffer(image, dtype=dt, count=1, offset=offset)[0] = value
    if wanted:
        raise BPFLabError(f"no global variable {', '.join(wanted)} in the cell",
                          hint="declare it at file scope, e.g. const volatile pid_t target_pid = 0;")


def build(cell) -> CoreProgram:
    """Compile, load and attach a CO-RE cell (a ``cell.Cell``); returns an attached, unregistered handle."""
    check_privileges()
    compiled = toolchain.compile_cell(cell.text, list(cell.cflags))
    obj = CoreObject(compiled.obj, cell.name or "cell", cell.text)
    links = []
    try:
        from .btf import Btf

        _set_globals(obj, Btf(obj.btf), cell.sets)
        if cell.options.map:
            from ..attach.sockmap import share_core_maps

            share_core_maps(obj, cell.options)
        obj.load()
        links = obj.attach(cell.options)
        first = next((p.name for p in obj.programs if p.autoload), "cell")
        events = infer_event_types(cell.text)
        if cell.event_type:
            events = {m: cell.event_type for m in [*events, *(
                mi.name for mi in obj.maps() if mi.type in (4, 27))]}
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
