"""The lab's program families, as one table.

A SEC name resolves (``sections.resolve``) to one family; this table says
everything else the lab knows about that family: which attacher attaches it,
what it must be pointed at, which BTF object the kernel wants at load time,
how to ask this kernel whether it runs it, which chapter teaches it, and
whether the CI kernel runs it (then live tests must never skip it).

Adding a family is one row here plus one attach module. Attachers are named
"module:function" under ``ebpf_magic.attach`` and imported on first use, so
reading the table imports neither BCC nor libbpf.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class BtfTarget:
    """The vmlinux BTF object a TRACING/LSM program names at load time."""

    field: str       # the Target field holding the name ("event", "function")
    spelled: str     # how the BTF object is named, e.g. "btf_trace_{}"


@dataclass(frozen=True)
class Probe:
    """How ``features`` asks the kernel about a family (interpreted there)."""

    kind: str                  # tracefs, prog_type, trampoline, kprobe_pmu, uprobe_pmu, perf_sw, ...
    args: tuple = ()


@dataclass(frozen=True)
class Family:
    name: str
    attacher: str | None       # "module:function" under ebpf_magic.attach; None: the lab cannot attach it
    target: str | None         # what the SEC (or magic line) must name; None: nothing
    example: str               # a SEC that shows how to name the target
    probe: Probe | None = None
    btf: BtfTarget | None = None
    chapter: str | None = None
    ci: bool = False           # the CI kernel runs it: a live test of it may never skip under REQUIRE_LIVE
    bare_ok: bool = False      # SEC("kprobe") alone loads but stays unattached (tail-call targets)
    out_of_scope: str = ""     # why the course leaves a family this kernel runs unattached (chapter 01 shows it)

    def attach_function(self):
        if self.attacher is None:
            return None
        module, _, func = self.attacher.partition(":")
        return getattr(importlib.import_module(f"ebpf_magic.attach.{module}"), func)


_TRAMPOLINE_FNS = ("security_file_open", "do_sys_openat2", "vfs_read")


def _f(name, attacher, target, example, probe=None, **kw) -> Family:
    return Family(name, attacher, target, example, probe, **kw)


FAMILIES: tuple[Family, ...] = (
    _f("tracepoint", "tracing:tracepoint", "tracepoint", "tracepoint/syscalls/sys_enter_openat",
       Probe("tracefs"), chapter="02-tracepoint", ci=True, bare_ok=True),
    _f("raw_tracepoint", "tracing:raw_tracepoint", "event", "raw_tp/sched_switch",
       Probe("prog_type", ("RAW_TRACEPOINT",)), chapter="03-raw-tracepoint", ci=True, bare_ok=True),
    _f("raw_tracepoint_w", "tracing:raw_tracepoint", "event", "raw_tp.w/nbd_send_request",
       Probe("prog_type", ("RAW_TRACEPOINT_WRITABLE",)), chapter="03-raw-tracepoint", bare_ok=True),
    _f("tp_btf", "tracing:btf_link", "event", "tp_btf/sched_switch",
       Probe("trampoline", ("TRACING", "TRACE_RAW_TP", ("sched_switch",))),
       btf=BtfTarget("event", "btf_trace_{}"), chapter="04-tp-btf", ci=True),
    _f("perf_event", "perf:perf_event", "perf_event", "perf_event --event cpu-clock",
       Probe("perf_sw"), chapter="05-perf-event", ci=True),
    _f("uprobe", "uprobes:uprobe", "symbol", "uprobe/libc.so.6:malloc", Probe("uprobe_pmu"),
       chapter="06-uprobe-usdt", ci=True, bare_ok=True),
    _f("uretprobe", "uprobes:uprobe", "symbol", "uretprobe/libc.so.6:malloc", Probe("uprobe_pmu"),
       chapter="06-uprobe-usdt", ci=True, bare_ok=True),
    _f("usdt", "uprobes:usdt", "probe", "usdt//usr/bin/python3:python:function__entry", Probe("uprobe_pmu"),
       chapter="06-uprobe-usdt", ci=True, bare_ok=True),
    _f("uprobe_multi", None, "symbol", "uprobe.multi/libc.so.6:malloc*",
       Probe("prog_type", ("KPROBE",)), chapter="06-uprobe-usdt"),
    _f("iter", "tracing:iterator", "event", "iter/task",
       Probe("trampoline", ("TRACING", "TRACE_ITER", ("task",))),
       btf=BtfTarget("event", "bpf_iter_{}"), chapter="08-iter", ci=True),
    _f("kprobe", "kprobes:kprobe", "function", "kprobe/do_unlinkat", Probe("kprobe_pmu"),
       chapter="09-kprobe-kretprobe", bare_ok=True),
    _f("kretprobe", "kprobes:kprobe", "function", "kretprobe/do_unlinkat", Probe("kprobe_pmu"),
       chapter="09-kprobe-kretprobe", bare_ok=True),
    _f("ksyscall", "kprobes:ksyscall", "syscall", "ksyscall/openat", Probe("kprobe_pmu"),
       chapter="09-kprobe-kretprobe", bare_ok=True),
    _f("kretsyscall", "kprobes:ksyscall", "syscall", "kretsyscall/openat", Probe("kprobe_pmu"),
       chapter="09-kprobe-kretprobe", bare_ok=True),
    _f("kprobe_multi", None, "pattern", "kprobe.multi/do_unlinkat*", Probe("kprobe_multi"),
       chapter="09-kprobe-kretprobe", bare_ok=True),
    _f("fentry", "tracing:btf_link", "function", "fentry/do_unlinkat",
       Probe("trampoline", ("TRACING", "TRACE_FENTRY", _TRAMPOLINE_FNS)),
       btf=BtfTarget("function", "{}"), chapter="10-fentry-fexit"),
    _f("fexit", "tracing:btf_link", "function", "fexit/do_unlinkat",
       Probe("trampoline", ("TRACING", "TRACE_FEXIT", _TRAMPOLINE_FNS)),
       btf=BtfTarget("function", "{}"), chapter="10-fentry-fexit"),
    _f("fmod_ret", "tracing:btf_link", "function", "fmod_ret/security_file_open",
       Probe("trampoline", ("TRACING", "MODIFY_RETURN", ("security_file_open",))),
       btf=BtfTarget("function", "{}"), chapter="11-fmod-ret"),
    _f("lsm", "tracing:btf_link", "function", "lsm/file_open",
       Probe("lsm", ("LSM", "LSM_MAC", ("file_open",))),
       btf=BtfTarget("function", "bpf_lsm_{}"), chapter="12-lsm"),
    _f("lsm_cgroup", None, "function", "lsm_cgroup/socket_bind",
       Probe("trampoline", ("LSM", "LSM_CGROUP", ("socket_bind",))), btf=BtfTarget("function", "bpf_lsm_{}")),
    _f("freplace", None, "function", "freplace/handler", Probe("prog_type", ("EXT",))),
    _f("socket", "socket_filter:socket_filter", "interface", "socket --dev b", Probe("prog_type", ("SOCKET_FILTER",)),
       chapter="13-socket-filter", ci=True),
    _f("sk_reuseport", "reuseport:reuseport", "netns", "sk_reuseport --netns b --sockets 4", Probe("prog_type", ("SK_REUSEPORT",)), ci=True),
    _f("xdp", "xdp:xdp", "interface", "xdp --dev b", Probe("prog_type", ("XDP",)), chapter="14-xdp", ci=True),
    _f("tc", "tc:tc", "interface", "tc --dev b --direction ingress", Probe("prog_type", ("SCHED_CLS",)),
       chapter="15-tc", ci=True),
    _f("tcx", "tc:tc", "interface", "tcx/ingress --dev b", Probe("prog_type", ("SCHED_CLS",)),
       chapter="15-tc", ci=True),
    _f("netkit", None, "interface", "netkit/primary", Probe("prog_type", ("SCHED_CLS",))),
    _f("action", None, "interface", "action", Probe("prog_type", ("SCHED_ACT",)),
       out_of_scope="a tc action (act_bpf) behind a classifier: since cls_bpf's direct-action mode (Linux 4.4) "
                    "the classifier returns the verdict itself, as chapter 15's programs do"),
    _f("lwt", None, "route", "lwt_xmit", Probe("prog_type", ("LWT_XMIT",)), ci=True,
       out_of_scope="hangs on a route (ip route ... encap bpf), not on an interface or a namespace; the lab "
                    "network routes nothing for it to act on yet"),
    _f("cgroup", "cgroup:cgroup", "cgroup", "cgroup_skb/egress", Probe("prog_type", ("CGROUP_SKB",)), ci=True),
    _f("sockops", "cgroup:cgroup", "cgroup", "sockops", Probe("prog_type", ("SOCK_OPS",)), ci=True),
    _f("sk_skb", "sockmap:sockmap", "map", "sk_skb/stream_verdict", Probe("prog_type", ("SK_SKB",)), ci=True),
    _f("sk_msg", "sockmap:sockmap", "map", "sk_msg", Probe("prog_type", ("SK_MSG",)), ci=True),
    _f("sk_lookup", "netns_link:netns_link", "netns", "sk_lookup --netns b", Probe("prog_type", ("SK_LOOKUP",)), ci=True),
    _f("flow_dissector", "netns_link:netns_link", "netns", "flow_dissector --netns b", Probe("prog_type", ("FLOW_DISSECTOR",)), ci=True),
    _f("netfilter", None, "netns", "netfilter", Probe("prog_type", ("NETFILTER",))),
    _f("lirc_mode2", None, "device", "lirc_mode2", Probe("prog_type", ("LIRC_MODE2",))),
    _f("struct_ops", None, "map", "struct_ops/ssthresh", Probe("prog_type", ("STRUCT_OPS",)), ci=True,
       out_of_scope="the methods of a kernel interface (a TCP congestion control, sched_ext) registered as a "
                    "struct_ops map, not attached to an event: a course of its own"),
    _f("syscall", None, None, "syscall", Probe("prog_type", ("SYSCALL",)), ci=True,
       out_of_scope="run from user space with BPF_PROG_TEST_RUN (light skeletons load programs with it); "
                    "there is no hook to attach it to"),
)

REGISTRY: dict[str, Family] = {f.name: f for f in FAMILIES}
NAMES: tuple[str, ...] = tuple(REGISTRY)
# Families whose live tests the CI kernel (Linux 6.18, see README) must run: a failed probe of one
# of them under EBPF_MAGIC_REQUIRE_LIVE=1 is a broken set-up, not a kernel limit.
CI_FAMILIES: frozenset[str] = frozenset(f.name for f in FAMILIES if f.ci)


def family(name: str) -> Family:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no lab family {name!r}; families: {', '.join(NAMES)}") from None


def attachable() -> list[str]:
    """Families the lab attaches, for messages."""
    return [f.name for f in FAMILIES if f.attacher]


def sec_prefixes(name: str) -> list[str]:
    """The SEC table entries that resolve to this family, in libbpf's order."""
    from .sections import SECTION_DEFS

    return [d.sec for d in SECTION_DEFS if d.family == name]
