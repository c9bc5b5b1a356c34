"""A libbpf ``bpf_object`` from a cell's compiled bytes: open, set globals, load, attach, close.

libbpf does the ELF parsing, CO-RE relocation, map creation and attaching;
this module only calls it in order and turns its failures into the lab's
errors, with the verifier's log mapped to cell lines.
"""
from __future__ import annotations

import ctypes as ct
from dataclasses import dataclass

from .. import diagnostics, libbpf
from ..attach import attach
from ..attach.base import Attachment, Options, Request
from ..errors import AttachError, BPFLabError
from ..families import family
from ..features import refusal_reason
from ..sections import Section, resolve
from . import logs


@dataclass
class ProgInfo:
    ptr: int
    name: str
    section_name: str       # as libbpf reports it (without a leading "?")
    section: Section
    autoload: bool

    def row(self) -> dict:
        return {"program": self.name, "section": self.section_name, "prog_type": self.section.prog_type.name,
                "attach_type": self.section.attach_type.name if self.section.attach_type is not None else "-",
                "autoload": self.autoload}


@dataclass
class MapInfo:
    ptr: int
    name: str
    type: int
    key_size: int
    value_size: int
    key_type_id: int
    value_type_id: int

    @property
    def fd(self) -> int:
        return libbpf.lib().bpf_map__fd(self.ptr)


def _errno_of_null() -> int:
    return ct.get_errno() or 22


class _OpenOpts(ct.Structure):
    """struct bpf_object_open_opts up to btf_custom_path (libbpf 0.5+)."""

    _fields_ = [("sz", ct.c_size_t), ("object_name", ct.c_char_p), ("relaxed_maps", ct.c_bool),
                ("pin_root_path", ct.c_char_p), ("_attach_prog_fd", ct.c_uint32), ("kconfig", ct.c_char_p),
                ("btf_custom_path", ct.c_char_p)]


class CoreObject:
    def __init__(self, data: bytes, name: str, cell: str, target_btf: str | None = None):
        """``target_btf``: a BTF file for CO-RE relocations instead of the whole kernel BTF (``subset_btf``)."""
        self.cell = cell
        self._data = ct.create_string_buffer(data, len(data))  # libbpf may read it until load
        opts = _OpenOpts(sz=ct.sizeof(_OpenOpts), object_name=name.encode(),
                         btf_custom_path=target_btf.encode() if target_btf else None)
        with logs.capture() as msgs:
            ptr = libbpf.lib().bpf_object__open_mem(self._data, len(data), ct.cast(ct.pointer(opts), ct.POINTER(libbpf.OpenOpts)))
        if not ptr:
            raise BPFLabError(f"libbpf could not open the compiled cell: {libbpf.strerror(_errno_of_null())}",
                              detail="".join(msgs[-6:]),
                              hint='every program function needs SEC("..."); maps go in SEC(".maps")')
        self.ptr = ptr
        self.programs = self._programs()

    # --- what the object holds ---------------------------------------------------
    def _each(self, next_fn):
        """libbpf's bpf_object__next_* walk: every program or map pointer, in the object's order."""
        item = None
        while item := next_fn(self.ptr, item):
            yield item

    def _programs(self) -> list[ProgInfo]:
        so = libbpf.lib()
        return [ProgInfo(p, so.bpf_program__name(p).decode(), sec, resolve(sec), bool(so.bpf_program__autoload(p)))
                for p in self._each(so.bpf_object__next_program)
                for sec in [so.bpf_program__section_name(p).decode()]]

    def maps(self) -> list[MapInfo]:
        so = libbpf.lib()
        return [MapInfo(m, so.bpf_map__name(m).decode(), so.bpf_map__type(m), so.bpf_map__key_size(m),
                        so.bpf_map__value_size(m), so.bpf_map__btf_key_type_id(m), so.bpf_map__btf_value_type_id(m))
                for m in self._each(so.bpf_object__next_map)]

    @property
    def btf(self) -> int:
        return libbpf.lib().bpf_object__btf(self.ptr)

    def initial_value(self, m: MapInfo) -> ct.Array | None:
        """The writable initial contents of a .data/.rodata/.bss map (before load)."""
        size = ct.c_size_t()
        p = libbpf.lib().bpf_map__initial_value(m.ptr, ct.byref(size))
        return (ct.c_char * size.value).from_address(p) if p else None

    # --- load and attach -----------------------------------------------------------
    def load(self) -> None:
        for p in self.programs:
            if p.autoload:
                refused = refusal_reason(p.section)
                if refused is not None:
                    raise refused
        with logs.capture() as msgs:
            ret = libbpf.lib().bpf_object__load(self.ptr)
        if ret == 0:
            return
        err = libbpf.errno_of(ret)
        text = "".join(msgs)
        failed = next((p for p in self.programs if f"prog '{p.name}'" in text), None)
        if failed is None:
            raise BPFLabError(f"libbpf could not load the object: {libbpf.strerror(err)}",
                              detail="".join(msgs[-6:]).strip(), hint="check the maps' definitions")
        raise diagnostics.load_error(failed.name, failed.section, err, logs.prog_load_log(msgs), self.cell)

    def attach(self, options: Options) -> list[Attachment]:
        """Attach every loaded program as its SEC says; on any failure detach those already attached."""
        done: list[Attachment] = []
        try:
            for p in self.programs:
                if p.autoload:
                    done += self._attach_one(p, options)
        except BaseException:
            for a in reversed(done):
                a.detach()
            raise
        return done

    def _attach_one(self, p: ProgInfo, options: Options) -> list[Attachment]:
        fam = family(p.section.family)
        if fam.bare_ok and fam.target and not p.section.target:
            return []  # SEC("kprobe") and the like: tail-call targets, attached by hand if at all
        if fam.attacher is None:
            raise AttachError(f"the lab does not attach {fam.name} programs yet ({p.name}, "
                              f"SEC \"{p.section_name}\")",
                              hint="mark it SEC(\"?...\") to load the rest, or see %bpf_features")
        so = libbpf.lib()
        done = attach(Request(so.bpf_program__fd(p.ptr), p.name, p.section, options, prog=p.ptr))
        for a in done:
            a.program = p.name
        return done

    def close(self) -> None:
        if self.ptr:
            libbpf.lib().bpf_object__close(self.ptr)
            self.ptr = None

