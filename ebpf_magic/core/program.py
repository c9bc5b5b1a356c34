"""The handle of a CO-RE cell: the same reading API as a BCC cell's, with types from BTF."""
from __future__ import annotations

import ctypes as ct
import time

import numpy as np

from .. import libbpf, validate
from ..errors import MapError
from ..frames import raw_frame
from ..handle import BaseHandle
from ..hist import log2_hist_from_arrays
from ..maps import read_map_fd
from ..records import SOURCES, RecordSink, check_limits, open_reader, read_buffer, record_attrs
from ..uapi import MapType
from .btf import Btf, _named, globals_frame
from .event_dwarf import ENUM_NAMES_KEY
from .event_types import EventTypes, infer_event_types

_INTERNAL = (".bss", ".data", ".rodata", ".kconfig")

class CoreMapView:
    def __init__(self, program: CoreProgram, info):
        self._program, self.info, self.name = program, info, info.name

    def to_frame(self):
        return self._program._frame(self.info)

    def __len__(self) -> int:
        return len(self.to_frame())

    def __setitem__(self, key, value) -> None:
        raise self._read_only()

    def __delitem__(self, key) -> None:
        raise self._read_only()

    def _read_only(self) -> MapError:
        return MapError(f"{self._program.name}[{self.name!r}] is read-only from Python in a CO-RE cell",
                        hint="pass values in with --set NAME=VALUE (const volatile globals), or use a BCC cell")

    def __repr__(self) -> str:
        return f"<map {self.name} of {self._program.name}: use .to_frame()>"


class CoreProgram(BaseHandle):
    """Programs, maps, globals and output of one libbpf object loaded from a cell."""

    engine = "core"

    def __init__(self, name: str, obj, attachments, event_types: dict[str, str] | None = None):
        super().__init__(name, attachments)
        self.obj = obj
        self.event_types = dict(event_types or {})
        self._btf = Btf(obj.btf)
        self._maps = {m.name: m for m in obj.maps()}
        self._inferred: EventTypes | None = None

    # --- what is loaded -----------------------------------------------------------
    def _alive(self):
        if self.obj is None or not self.obj.ptr:
            raise self._detached()
        return self.obj

    def _release(self) -> None:
        if self.obj is not None:
            self.obj.close()
            self.obj = None

    @property
    def programs(self):
        import pandas as pd

        self._alive()
        attached = {a.program for a in self.attachments if a.attached}
        rows = []
        for p in self.obj.programs:
            row = p.row()
            row["attached"] = p.autoload and p.name in attached
            rows.append(row)
        return pd.DataFrame(rows)

    @property
    def map_names(self) -> list[str]:
        self._alive()
        return [n for n in self._maps if not n.endswith(_INTERNAL)]

    @property
    def maps(self) -> dict[str, CoreMapView]:
        return {n: CoreMapView(self, self._maps[n]) for n in self.map_names}

    def __getitem__(self, name: str) -> CoreMapView:
        validate.check_name(name)
        if name not in self.map_names:
            raise self._no_map(name, self.map_names, "; globals are in h.globals")
        return CoreMapView(self, self._maps[name])

    def _dtype(self, type_id: int, size: int) -> np.dtype:
        return self._btf.dtype(type_id) if type_id else np.dtype(f"V{size}")

    def _frame(self, info):
        self._alive()
        kdt = self._dtype(info.key_type_id, info.key_size)
        vdt = self._dtype(info.value_type_id, info.value_size)
        df = raw_frame(read_map_fd(info.fd, kdt, vdt, info.name))
        return self._btf.name_enums(df, info.key_type_id, info.value_type_id)

    # --- readers --------------------------------------------------------------------
    @property
    def globals(self) -> dict[str, object]:
        """Current values of the object's global variables (.bss, .data, .rodata)."""
        self._alive()
        out: dict[str, object] = {}
        zero = ct.c_uint32(0)
        for name, info in self._maps.items():
            section = "." + name.rsplit(".", 1)[1] if "." in name else ""
            if section not in _INTERNAL or section == ".kconfig":
                continue
            buf = ct.create_string_buffer(info.value_size)
            if libbpf.lib().bpf_map_lookup_elem(info.fd, ct.byref(zero), buf) == 0:
                out.update(globals_frame(self._btf, section, buf.raw))
        return out

    def hist(self, name: str, unit: str | None = None):
        """A log2 histogram from a map (slot -> count) or from a global array of counts."""
        validate.check_name(name)
        validate.check_unit(unit)
        if name in self._maps and name in self.map_names:
            df = self[name].to_frame()
            if not {"key", "value"} <= set(df.columns):
                raise MapError(f"{name} is not keyed by slot with a count value",
                               hint="BPF_MAP_TYPE_HASH/ARRAY with __type(key, u32) slot, __type(value, u64) count")
            return log2_hist_from_arrays(df["key"], df["value"], unit=unit)
        counts = self.globals.get(name)
        if counts is None:
            raise MapError(f"{self.name} has no map or global {name!r}", hint="maps: " + ", ".join(self.map_names))
        counts = np.asarray(counts).reshape(-1)
        return log2_hist_from_arrays(np.arange(len(counts)), counts, unit=unit)

    def events(self, name: str, duration: float | None = None, max_events: int | None = None,
               page_cnt: int = 64, event_type: str | None = None):
        """Records of a ring buffer or perf buffer map, one column per field of the event struct.

        The struct is ``event_type`` (or ``--event-type``), else the one the
        code writes: the struct of the pointer that receives
        ``bpf_ringbuf_reserve`` or of the variable passed to
        ``bpf_ringbuf_output``/``bpf_perf_event_output`` (see
        ``core.event_types``), laid out from BTF, or from the object's DWARF
        when only local variables use it. Polling and ``attrs`` are those of
        the BCC engine's ``collect_events`` (see ``records``), plus
        ``attrs["event_type"]``.
        """
        import pandas as pd

        validate.check_map_name(self, name, "; globals are in h.globals")
        validate.check_duration(duration)
        validate.check_max_events(max_events)
        validate.check_page_cnt(page_cnt)
        validate.check_event_type(event_type, "core")
        info = self[name].info
        duration = self.defaults["duration"] if duration is None else duration
        max_events = self.defaults["max_events"] if max_events is None else max_events
        check_limits(max_events, page_cnt)
        if info.type not in SOURCES:
            raise MapError(f"{name} is not a ring buffer or perf event array", hint=f"h[{name!r}].to_frame()")
        started = time.monotonic()
        # Reading the object's DWARF for the record type takes a moment the first time (tens of ms
        # on a busy machine, in which a fast program fills a 256 KiB ring). A ring buffer keeps its
        # records meanwhile, so the type comes first and reading starts as soon as the ring is
        # open; a perf buffer takes records only once open, so it is opened first.
        early = self._record_type(name, event_type) if info.type == MapType.RINGBUF else None
        with open_reader(info.type, info.fd, page_cnt, name) as reader:
            type_name, type_id, dt = early or self._record_type(name, event_type)
            sink = RecordSink(self._btf.size(type_id) if dt is None else dt.itemsize, max_events)
            interrupted = read_buffer(reader, sink, duration)
        if dt is None:
            cols = self._btf.decode(sink.bytes(), type_id, sink.n, "value")
        else:
            cols = _decode_dwarf(sink.bytes(), dt, sink.n)
        df = pd.DataFrame(cols)
        df.attrs.update(record_attrs(sink, SOURCES[info.type], started, interrupted))
        df.attrs["event_type"] = type_name
        return df

    def _record_type(self, name: str, event_type: str | None):
        """(struct name, BTF type id or None, DWARF dtype or None) of the records of map ``name``."""
        type_name = event_type or self.event_types.get(name) or self._event_types().names.get(name)
        if not type_name:
            raise self._which_struct(name)
        type_id = self._btf.find(type_name)
        dt = None if type_id is not None else self._event_types(dwarf=True).dwarf.dtype(type_name)
        if type_id is None and dt is None:
            raise MapError(f"no type {type_name!r} in the cell's BTF or debug info",
                           hint="check the name: --event-type NAME takes a struct or typedef the cell defines")
        return type_name, type_id, dt

    def _event_types(self, dwarf: bool = False) -> EventTypes:
        """What the object's code and DWARF say each output map carries (read once, on first use)."""
        if self._inferred is None or (dwarf and self._inferred.dwarf is None):
            obj = self._alive()
            self._inferred = infer_event_types(obj._data.raw, obj.cell, with_dwarf=dwarf)
        return self._inferred

    def _which_struct(self, name: str) -> MapError:
        found = self._event_types()
        sizes = sorted(found.sizes.get(name, ()))
        if found.candidates.get(name):
            why = f"its records are {sizes} bytes; structs of that size: {', '.join(found.candidates[name])}"
        elif sizes:
            why = f"its records are {sizes} bytes, and no struct variable of that size is in the debug info"
        else:
            why = "no bpf_ringbuf_reserve/_output or bpf_perf_event_output call with a constant size writes it"
        return MapError(f"which struct does {name} carry? {why}",
                        hint=f"give it: --event-type NAME on the magic line, or h.events({name!r}, event_type='NAME')")

    def summary(self) -> dict:
        alive = self.obj is not None and bool(self.obj.ptr)
        progs = self.obj.programs if alive else []
        return {"name": self.name,
                "function": ", ".join(p.name for p in progs if p.autoload) or "-",
                "section": ", ".join(p.section_name for p in progs if p.autoload) or "-",
                "prog_type": ", ".join(sorted({p.section.prog_type.name for p in progs if p.autoload})) or "-",
                "attached": ", ".join(str(a) for a in self.attachments if a.attached) or "-",
                "maps": ", ".join(self.map_names) if alive else "-"}

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<bpf {s['name']} (CO-RE): {s['function']} [{s['section']}], attached: {s['attached']}; "
                f"maps: {s['maps'] or 'none'}>")


def _decode_dwarf(raw, dt, count: int) -> dict[str, object]:
    """Columns of records whose dtype came from DWARF, enum values named."""
    from ..dtypes import columns_of, dtype_metadata, flatten

    cols = flatten(np.frombuffer(raw, dtype=dt, count=count), "value")
    for path, fdt, _ in columns_of(dt, "value"):
        names = dtype_metadata(fdt).get(ENUM_NAMES_KEY)
        if names and path in cols:
            cols[path] = _named(cols[path], names)
    return cols
