"""libbpf's ``section_defs`` table, as data (the logic lives in sections.py).

``SECTION_DEFS`` is libbpf 1.4's table, ``data/section_defs.tsv`` (checked against src/libbpf.c at
v1.4.6), in libbpf's order: the first matching entry wins, which is what
makes ``sk_reuseport/migrate`` beat ``sk_reuseport`` and ``tc/ingress``
mean tcx rather than legacy ``tc``. Each row says since which release
libbpf has it (``libbpf_min``; rows already in the seed's libbpf 1.1 say
"1.1") and, in ``note``, how its meaning changed since 1.1 where it did.

``SEED_SECTION_DEFS`` is the seed's table (libbpf 1.1, 81 rows): every name
it accepts still resolves, to the same row, through the 1.4 table.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .datafiles import tsv_rows
from .families import NAMES
from .uapi import AttachType, ProgType

# The libbpf release the lab follows: SECTION_DEFS is its table.
BASELINE_LIBBPF = "1.4"
# The seed's libbpf. A row's libbpf_min never goes below it: older releases
# are outside what the lab supports, so "1.1" means "1.1 or earlier".
SEED_LIBBPF = "1.1"

# libbpf's SEC_* cookie bits, by name. "attachable_opt" is ATTACHABLE plus
# "drop the expected attach type if the kernel is too old to accept it".
# "usdt" (SEC_USDT, libbpf 1.3+): load with expected attach type
# TRACE_UPROBE_MULTI when the kernel has uprobe_multi links.
FLAGS = frozenset({"attachable", "attachable_opt", "attach_btf", "sleepable", "xdp_frags", "usdt"})

# The lab's attach families (one per way of attaching, so variants that only differ in flags,
# fentry.s or xdp.frags, share one) are the rows of the family registry.
FAMILIES = NAMES


def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class SecDef:
    """One row of libbpf's ``section_defs``.

    ``sec`` is spelled as in libbpf: a trailing ``+`` accepts ``base`` alone
    or ``base/anything``; a trailing ``/`` requires something after it;
    anything else must match exactly. ``attach_type`` is None where libbpf
    writes 0 meaning "no expected attach type" (0 is also the value of
    CGROUP_INET_INGRESS, which only ``cgroup_skb/ingress`` really means).
    """

    sec: str
    prog_type: ProgType
    attach_type: AttachType | None
    flags: frozenset[str]
    family: str
    libbpf_min: str = SEED_LIBBPF
    note: str = ""

    def __post_init__(self) -> None:
        # A typo in the table would otherwise surface as a wrong attach much later.
        if not self.flags <= FLAGS:
            raise ValueError(f"{self.sec}: unknown flags {sorted(self.flags - FLAGS)}")
        if self.family not in FAMILIES:
            raise ValueError(f"{self.sec}: unknown family {self.family!r}")

    @property
    def kind(self) -> str:
        """"plus", "prefix" or "exact": how ``sec_def_matches`` treats this entry."""
        if self.sec.endswith("+"):
            return "plus"
        if self.sec.endswith("/"):
            return "prefix"
        return "exact"

    @property
    def base(self) -> str:
        return self.sec.rstrip("+/")

    @property
    def in_seed(self) -> bool:
        """The seed's libbpf 1.1 table has this row (possibly with other flags: usdt+)."""
        return not self.needs_newer_than(SEED_LIBBPF)

    @property
    def attachable(self) -> bool:
        """libbpf_attach_type_by_name() answers for this row (SEC_ATTACHABLE set)."""
        return bool(self.flags & {"attachable", "attachable_opt"})

    @property
    def attach_btf(self) -> bool:
        """The part after the prefix names a BTF type (kernel function, tracepoint, iterator)."""
        return "attach_btf" in self.flags

    @property
    def sleepable(self) -> bool:
        return "sleepable" in self.flags

    @property
    def frags(self) -> bool:
        """XDP program that accepts multi-buffer (fragmented) packets."""
        return "xdp_frags" in self.flags

    @property
    def retprobe(self) -> bool:
        """Fires on return (kretprobe*, uretprobe*, kretsyscall): kretprobe.multi shares kprobe_multi."""
        return self.base.split(".")[0] in ("kretprobe", "uretprobe", "kretsyscall")

    def needs_newer_than(self, version: str) -> bool:
        """True if a libbpf of ``version`` (e.g. "1.1") predates this entry."""
        return _vtuple(self.libbpf_min) > _vtuple(version)


def _row(row: dict[str, str]) -> SecDef:
    attach = row["attach_type"]
    return SecDef(row["sec"], ProgType[row["prog_type"]], AttachType[attach] if attach else None,
                  frozenset(filter(None, row["flags"].split(","))), row["family"],
                  row["libbpf_min"], row["note"])


SECTION_DEFS: tuple[SecDef, ...] = tuple(_row(row) for row in tsv_rows("section_defs.tsv"))

# Where the seed's 1.1 row differs from its 1.4 row other than in
# libbpf_min/note: only usdt+, which had no SEC_USDT bit in 1.1.
_SEED_FLAGS = {"usdt+": frozenset()}

SEED_SECTION_DEFS: tuple[SecDef, ...] = tuple(
    replace(d, flags=_SEED_FLAGS.get(d.sec, d.flags), note="")
    for d in SECTION_DEFS if d.in_seed
)
