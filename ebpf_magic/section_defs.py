"""libbpf's ``section_defs`` table, as data (the logic lives in sections.py).

``SECTION_DEFS`` is libbpf 1.4's table (checked against src/libbpf.c at
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


def _d(sec: str, prog: ProgType, attach: AttachType | None, flags: str, family: str,
       since: str = SEED_LIBBPF, note: str = "") -> SecDef:
    return SecDef(sec, prog, attach, frozenset(flags.split()), family, since, note)


_UPROBE_SYMBOL = ("libbpf 1.3+ takes everything after ':' as the symbol (versioned or C++ names "
                  "work); 1.1 silently cut it at the first character outside [A-Za-z0-9_.]")
_TC_LEGACY = ("legacy since libbpf 1.3 ('deprecated / legacy, use tcx'): no expected attach "
              "type, attached as a cls_bpf filter; tc/ingress and tc/egress now mean tcx")
_TC_ALIAS = ("libbpf 1.3+ alias of tcx/{d}: a tcx link (expected attach type TCX_{D}), "
             "not the legacy tc hook; libbpf 1.1 rejected this name")

P, A = ProgType, AttachType
_BTF, _BTF_S = "attach_btf", "attach_btf sleepable"

SECTION_DEFS: tuple[SecDef, ...] = (
    _d("socket", P.SOCKET_FILTER, None, "", "socket"),
    _d("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE, "attachable",
       "sk_reuseport"),
    _d("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT, "attachable", "sk_reuseport"),
    _d("kprobe+", P.KPROBE, None, "", "kprobe"),
    _d("uprobe+", P.KPROBE, None, "", "uprobe", note=_UPROBE_SYMBOL),
    _d("uprobe.s+", P.KPROBE, None, "sleepable", "uprobe", note=_UPROBE_SYMBOL),
    _d("kretprobe+", P.KPROBE, None, "", "kretprobe"),
    _d("uretprobe+", P.KPROBE, None, "", "uretprobe", note=_UPROBE_SYMBOL),
    _d("uretprobe.s+", P.KPROBE, None, "sleepable", "uretprobe", note=_UPROBE_SYMBOL),
    _d("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, "", "kprobe_multi"),
    _d("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, "", "kprobe_multi"),
    _d("uprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, "", "uprobe_multi", "1.3"),
    _d("uretprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, "", "uprobe_multi", "1.3"),
    _d("uprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, "sleepable", "uprobe_multi", "1.3"),
    _d("uretprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, "sleepable", "uprobe_multi", "1.3",
       "libbpf 1.3-1.4.6 auto-attach it as an entry probe (fixed in 1.4.7): "
       "attach it with retprobe set"),
    _d("ksyscall+", P.KPROBE, None, "", "ksyscall"),
    _d("kretsyscall+", P.KPROBE, None, "", "kretsyscall"),
    _d("usdt+", P.KPROBE, None, "usdt", "usdt",
       note="libbpf 1.3+ loads it as TRACE_UPROBE_MULTI and attaches all sites with one "
            "uprobe_multi link where the kernel has them; 1.1 made one uprobe per site"),
    _d("usdt.s+", P.KPROBE, None, "usdt sleepable", "usdt", "1.3"),
    _d("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS, "", "tcx", "1.3",
       _TC_ALIAS.format(d="ingress", D="INGRESS")),
    _d("tc/egress", P.SCHED_CLS, A.TCX_EGRESS, "", "tcx", "1.3",
       _TC_ALIAS.format(d="egress", D="EGRESS")),
    _d("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS, "", "tcx", "1.3"),
    _d("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS, "", "tcx", "1.3"),
    _d("tc", P.SCHED_CLS, None, "", "tc", note=_TC_LEGACY),
    _d("classifier", P.SCHED_CLS, None, "", "tc", note=_TC_LEGACY),
    _d("action", P.SCHED_ACT, None, "", "action",
       note="legacy since libbpf 1.3 ('deprecated / legacy, use tcx')"),
    _d("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY, "", "netkit", "1.3"),
    _d("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER, "", "netkit", "1.3"),
    _d("tracepoint+", P.TRACEPOINT, None, "", "tracepoint"),
    _d("tp+", P.TRACEPOINT, None, "", "tracepoint"),
    _d("raw_tracepoint+", P.RAW_TRACEPOINT, None, "", "raw_tracepoint"),
    _d("raw_tp+", P.RAW_TRACEPOINT, None, "", "raw_tracepoint"),
    _d("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE, None, "", "raw_tracepoint_w"),
    _d("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE, None, "", "raw_tracepoint_w"),
    _d("tp_btf+", P.TRACING, A.TRACE_RAW_TP, _BTF, "tp_btf"),
    _d("fentry+", P.TRACING, A.TRACE_FENTRY, _BTF, "fentry"),
    _d("fmod_ret+", P.TRACING, A.MODIFY_RETURN, _BTF, "fmod_ret"),
    _d("fexit+", P.TRACING, A.TRACE_FEXIT, _BTF, "fexit"),
    _d("fentry.s+", P.TRACING, A.TRACE_FENTRY, _BTF_S, "fentry"),
    _d("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, _BTF_S, "fmod_ret"),
    _d("fexit.s+", P.TRACING, A.TRACE_FEXIT, _BTF_S, "fexit"),
    _d("freplace+", P.EXT, None, _BTF, "freplace"),
    _d("lsm+", P.LSM, A.LSM_MAC, _BTF, "lsm"),
    _d("lsm.s+", P.LSM, A.LSM_MAC, _BTF_S, "lsm"),
    _d("lsm_cgroup+", P.LSM, A.LSM_CGROUP, _BTF, "lsm_cgroup"),
    _d("iter+", P.TRACING, A.TRACE_ITER, _BTF, "iter"),
    _d("iter.s+", P.TRACING, A.TRACE_ITER, _BTF_S, "iter"),
    _d("syscall", P.SYSCALL, None, "sleepable", "syscall"),
    _d("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, "xdp_frags", "xdp"),
    _d("xdp/devmap", P.XDP, A.XDP_DEVMAP, "attachable", "xdp"),
    _d("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, "xdp_frags", "xdp"),
    _d("xdp/cpumap", P.XDP, A.XDP_CPUMAP, "attachable", "xdp"),
    _d("xdp.frags", P.XDP, A.XDP, "xdp_frags", "xdp"),
    _d("xdp", P.XDP, A.XDP, "attachable_opt", "xdp"),
    _d("perf_event", P.PERF_EVENT, None, "", "perf_event"),
    _d("lwt_in", P.LWT_IN, None, "", "lwt"),
    _d("lwt_out", P.LWT_OUT, None, "", "lwt"),
    _d("lwt_xmit", P.LWT_XMIT, None, "", "lwt"),
    _d("lwt_seg6local", P.LWT_SEG6LOCAL, None, "", "lwt"),
    _d("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS, "attachable_opt", "sockops"),
    _d("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER, "attachable_opt", "sk_skb"),
    _d("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT, "attachable_opt", "sk_skb"),
    _d("sk_skb/verdict", P.SK_SKB, A.SK_SKB_VERDICT, "attachable_opt", "sk_skb", "1.4",
       "new in libbpf 1.4 (attach type SK_SKB_VERDICT); 1.1-1.3 rejected this name"),
    _d("sk_skb", P.SK_SKB, None, "", "sk_skb"),
    _d("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT, "attachable_opt", "sk_msg"),
    _d("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2, "attachable_opt", "lirc_mode2"),
    _d("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR, "attachable_opt", "flow_dissector"),
    _d("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS, "attachable_opt", "cgroup"),
    _d("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS, "attachable_opt", "cgroup"),
    _d("cgroup/skb", P.CGROUP_SKB, None, "", "cgroup"),
    _d("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "attachable", "cgroup"),
    _d("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE, "attachable", "cgroup"),
    _d("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE, "attachable_opt", "cgroup"),
    _d("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND, "attachable", "cgroup"),
    _d("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND, "attachable", "cgroup"),
    _d("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND, "attachable", "cgroup"),
    _d("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND, "attachable", "cgroup"),
    _d("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT, "attachable", "cgroup"),
    _d("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT, "attachable", "cgroup"),
    _d("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT, "attachable", "cgroup", "1.3"),
    _d("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG, "attachable", "cgroup"),
    _d("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG, "attachable", "cgroup"),
    _d("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG, "attachable", "cgroup", "1.3"),
    _d("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG, "attachable", "cgroup"),
    _d("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG, "attachable", "cgroup"),
    _d("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG, "attachable", "cgroup", "1.3"),
    _d("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME, "attachable", "cgroup"),
    _d("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME, "attachable", "cgroup"),
    _d("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME, "attachable", "cgroup",
       "1.3"),
    _d("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME, "attachable", "cgroup"),
    _d("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME, "attachable", "cgroup"),
    _d("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME, "attachable", "cgroup",
       "1.3"),
    _d("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL, "attachable", "cgroup"),
    _d("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT, "attachable", "cgroup"),
    _d("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT, "attachable", "cgroup"),
    _d("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE, "attachable_opt", "cgroup"),
    _d("struct_ops+", P.STRUCT_OPS, None, "", "struct_ops"),
    _d("struct_ops.s+", P.STRUCT_OPS, None, "sleepable", "struct_ops", "1.2"),
    _d("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP, "attachable", "sk_lookup"),
    _d("netfilter", P.NETFILTER, A.NETFILTER, "", "netfilter", "1.3"),
)
del P, A

# Where the seed's 1.1 row differs from its 1.4 row other than in
# libbpf_min/note: only usdt+, which had no SEC_USDT bit in 1.1.
_SEED_FLAGS = {"usdt+": frozenset()}

SEED_SECTION_DEFS: tuple[SecDef, ...] = tuple(
    replace(d, flags=_SEED_FLAGS.get(d.sec, d.flags), note="")
    for d in SECTION_DEFS if d.in_seed
)
