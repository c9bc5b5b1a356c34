"""Numbers from the kernel's BPF uapi (``include/uapi/linux/bpf.h``).

The three enums the lab needs to talk about programs and maps: program
types, attach types and map types, read from ``data/uapi.tsv``. Members drop
the ``BPF_PROG_TYPE_`` / ``BPF_`` / ``BPF_MAP_TYPE_`` prefixes, so
``ProgType.KPROBE`` is ``BPF_PROG_TYPE_KPROBE`` and ``MapType.RINGBUF`` is
``BPF_MAP_TYPE_RINGBUF``.

The values are the kernel's ABI and never change once released; new kernels
only append. The table is complete up to Linux 6.18 (checked against the
running kernel's BTF); /usr/include/linux/bpf.h on Debian 12 with the 6.12
headers stops one attach type earlier (before TRACE_UPROBE_SESSION).

``AttachType`` 0 is a real attach type (CGROUP_INET_INGRESS), not "none":
code that means "no expected attach type" must use None, never 0 or falsiness.
``MapType(n).name.lower()`` is the name bpftool prints ("percpu_hash").
"""
from __future__ import annotations

from enum import IntEnum

from .datafiles import tsv_rows


def _members(enum: str) -> list[tuple[str, int]]:
    return [(row["name"], int(row["value"])) for row in tsv_rows("uapi.tsv") if row["enum"] == enum]


ProgType = IntEnum("ProgType", _members("ProgType"), module=__name__)
ProgType.__doc__ = "enum bpf_prog_type."
AttachType = IntEnum("AttachType", _members("AttachType"), module=__name__)
AttachType.__doc__ = "enum bpf_attach_type (0 is CGROUP_INET_INGRESS, never 'none')."


MapType = IntEnum("MapType", _members("MapType"), module=__name__)
MapType.__doc__ = "enum bpf_map_type."


def _map_type_label(cls, value: int) -> str:
    """The lower-case name of a map type number, or the number itself for one newer than this table."""
    try:
        return cls(value).name.lower()
    except ValueError:
        return str(value)


MapType.label = classmethod(_map_type_label)
