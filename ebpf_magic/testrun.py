"""``BPF_PROG_TEST_RUN``: run a loaded XDP, tc, socket-filter or flow_dissector program on a crafted packet.

No network is involved: the kernel runs the program ``repeat`` times on a
copy of the packet and reports the return value, the mean time per run and
the packet as the program left it. Exercises check programs this way,
deterministically.

XDP and tc programs see the packet from its Ethernet header, as on a device.
A socket filter sees it from the IP header (the kernel's test run starts
there), while on the lab's packet socket it sees the Ethernet header too:
``bpf_skb_load_bytes_relative(skb, off, buf, len, BPF_HDR_START_NET)`` reads
the same bytes in both.

A flow dissector sees the packet from its Ethernet header too (``nhoff`` starts
at 14); instead of a packet it hands back the ``struct bpf_flow_keys`` it filled,
decoded as ``result.flow_keys`` (see ``flowkeys``).
"""
from __future__ import annotations

import ctypes as ct
import logging

from . import flowkeys, libbpf
from .errors import BPFLabError, UsageError
from .uapi import ProgType

XDP_RET = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
TC_RET = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT", 3: "TC_ACT_PIPE",
          4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT", 7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"}
_RUNNABLE = (ProgType.XDP, ProgType.SCHED_CLS, ProgType.SOCKET_FILTER, ProgType.FLOW_DISSECTOR)
_ETH_HLEN = 14
_MAX_PACKET = 65535
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)  # scapy's routing warnings on crafted packets


class TestRunOpts(ct.Structure):
    """struct bpf_test_run_opts (libbpf 1.0+)."""

    __test__ = False  # not a pytest class
    _fields_ = [
        ("sz", ct.c_size_t), ("data_in", ct.c_void_p), ("data_out", ct.c_void_p),
        ("data_size_in", ct.c_uint32), ("data_size_out", ct.c_uint32),
        ("ctx_in", ct.c_void_p), ("ctx_out", ct.c_void_p),
        ("ctx_size_in", ct.c_uint32), ("ctx_size_out", ct.c_uint32),
        ("retval", ct.c_uint32), ("repeat", ct.c_int), ("duration", ct.c_uint32),
        ("flags", ct.c_uint32), ("cpu", ct.c_uint32), ("batch_size", ct.c_uint32),
    ]


def retval_name(prog_type: ProgType, retval: int) -> str:
    """XDP_DROP, TC_ACT_SHOT, or for a socket filter "keep N bytes" / "drop"."""
    if prog_type == ProgType.XDP:
        return XDP_RET.get(retval, str(retval))
    if prog_type == ProgType.SCHED_CLS:
        signed = retval - (1 << 32) if retval >= 1 << 31 else retval
        return TC_RET.get(signed, str(signed))
    if prog_type == ProgType.FLOW_DISSECTOR:
        return flowkeys.BPF_RET.get(retval, str(retval))
    return "drop" if retval == 0 else f"keep {retval} bytes"


def _bytes(packet) -> bytes:
    if isinstance(packet, (bytes, bytearray, memoryview)):
        data = bytes(packet)
    elif hasattr(packet, "build"):            # a scapy packet
        data = bytes(packet)
    else:
        raise UsageError(f"test_run takes a packet as bytes or a scapy packet, not {type(packet).__name__}",
                         hint="from scapy.all import Ether, IP, ICMP; pkt = Ether()/IP(dst='192.0.2.2')/ICMP()")
    if not _ETH_HLEN <= len(data) <= _MAX_PACKET:
        raise UsageError(f"a test packet is {len(data)} bytes; it needs an Ethernet header (14) and at most "
                         f"{_MAX_PACKET}", hint="build it from Ether(): Ether()/IP()/UDP()")
    return data


def _programs(handle) -> list[tuple[str, int, ProgType]]:
    """(function, fd, program type) of each loaded program of a handle, either engine."""
    handle._alive()
    if handle.engine == "core":
        so = libbpf.lib()
        return [(p.name, so.bpf_program__fd(p.ptr), p.section.prog_type) for p in handle.obj.programs
                if so.bpf_program__fd(p.ptr) >= 0]
    fn = handle.module.bpf.funcs[handle.function.encode()]
    return [(handle.function, fn.fd, handle.section.prog_type)]


def _pick(handle, program: str | None) -> tuple[str, int, ProgType]:
    progs = _programs(handle)
    runnable = [p for p in progs if p[2] in _RUNNABLE]
    if program is not None:
        found = [p for p in progs if p[0] == program]
        if not found:
            raise UsageError(f"{handle.name} has no program {program!r}",
                             hint=f"its programs: {', '.join(p[0] for p in progs)}")
        runnable = [p for p in found if p[2] in _RUNNABLE]
    if not runnable:
        kinds = ", ".join(f"{n} ({t.name})" for n, _, t in progs)
        raise UsageError(f"{handle.name} has no XDP, tc, socket-filter or flow_dissector program to test-run "
                         f"({kinds})", hint="test_run runs SEC xdp, tc/tcx, socket and flow_dissector programs "
                                            "on a packet")
    if len(runnable) > 1:
        raise UsageError(f"{handle.name} has several programs: {', '.join(p[0] for p in runnable)}",
                         hint="say which: h.test_run(pkt, program=NAME)")
    return runnable[0]


def run_once(fd: int, prog_type: ProgType, data: bytes, repeat: int) -> dict:
    out = ct.create_string_buffer(len(data) + 4096)   # XDP may grow the packet (bpf_xdp_adjust_head/tail)
    buf = ct.create_string_buffer(data, len(data))
    opts = TestRunOpts(sz=ct.sizeof(TestRunOpts), data_in=ct.cast(buf, ct.c_void_p),
                       data_out=ct.cast(out, ct.c_void_p), data_size_in=len(data), data_size_out=len(out),
                       repeat=repeat)
    ret = libbpf.lib().bpf_prog_test_run_opts(fd, ct.byref(opts))
    if ret < 0:
        err = libbpf.errno_of(ret)
        raise BPFLabError(f"BPF_PROG_TEST_RUN failed: {libbpf.strerror(err)}",
                          hint="EINVAL: the packet is too short for this program type, or the program "
                               "type cannot be test-run")
    data_out = out.raw[:opts.data_size_out]
    if prog_type == ProgType.FLOW_DISSECTOR:
        return {"retval": opts.retval, "action": retval_name(prog_type, opts.retval), "ns_per_run": opts.duration,
                "repeat": repeat, "data_out": data_out, "layer": "flow_keys", "flow_keys": flowkeys.decode(data_out)}
    if prog_type == ProgType.SOCKET_FILTER:
        # The kernel runs a socket filter from the network header and hands back the packet
        # behind a zeroed Ethernet header: show the packet the program saw.
        data_out = data_out[_ETH_HLEN:]
    return {"retval": opts.retval, "action": retval_name(prog_type, opts.retval), "ns_per_run": opts.duration,
            "repeat": repeat, "data_out": data_out, "layer": "ip" if prog_type == ProgType.SOCKET_FILTER else "eth"}


def test_run(handle, packet, repeat: int = 1, program: str | None = None) -> dict:
    """Run the handle's program on ``packet`` ``repeat`` times; returns a dict (see ``TestResult``)."""
    if not isinstance(repeat, int) or not 1 <= repeat <= 100_000_000:
        raise UsageError(f"repeat={repeat!r} must be a whole number from 1 to 100000000", hint="repeat=10_000")
    name, fd, prog_type = _pick(handle, program)
    res = run_once(fd, prog_type, _bytes(packet), repeat)
    return TestResult(program=name, **res)


def test_run_many(handle, packets, repeat: int = 1, program: str | None = None):
    """One row per packet: index, packet summary, retval, action, ns_per_run, output summary."""
    import pandas as pd

    rows = []
    for i, pkt in enumerate(packets):
        r = test_run(handle, pkt, repeat=repeat, program=program)
        data = _bytes(pkt)
        if r["layer"] == "flow_keys":
            rows.append({"packet": i, "input": _summary(data), "retval": r["retval"], "action": r["action"],
                         "ns_per_run": r["ns_per_run"], **r["flow_keys"]})
            continue
        rows.append({"packet": i, "input": _summary(data), "retval": r["retval"], "action": r["action"],
                     "ns_per_run": r["ns_per_run"], "output": r.packet.summary() if r["data_out"] else "(empty)",
                     "changed": r["data_out"] != (data[_ETH_HLEN:] if r["layer"] == "ip" else data)})
    columns = ["packet", "input", "retval", "action", "ns_per_run"]
    if rows and "nhoff" in rows[0]:   # a flow dissector's rows: its flow keys instead of an output packet
        return pd.DataFrame(rows, columns=columns + list(flowkeys.COLUMNS))
    return pd.DataFrame(rows, columns=columns + ["output", "changed"])


def _summary(data: bytes) -> str:
    from scapy.layers.l2 import Ether

    return Ether(data).summary() if data else "(empty)"


class TestResult(dict):
    """retval, action (by name), ns_per_run (mean), repeat, data_out; ``.packet`` decodes the output.

    A flow dissector's result has ``flow_keys`` (a dict) instead of an output packet.
    """

    __test__ = False

    @property
    def packet(self):
        """The output packet, decoded by scapy (from the IP header for socket filters)."""
        from scapy.layers.inet import IP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether

        data = self["data_out"]
        if self["layer"] == "flow_keys":
            raise UsageError("a flow dissector's test run gives flow keys, not a packet",
                             hint="read result.flow_keys")
        if self["layer"] == "ip":
            return IPv6(data) if data[:1] and data[0] >> 4 == 6 else IP(data)
        return Ether(data)

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __repr__(self) -> str:
        if self["layer"] == "flow_keys":
            k = self["flow_keys"]
            return (f"<test_run {self['program']}: {self['action']} (retval {self['retval']}), "
                    f"{self['ns_per_run']} ns per run over {self['repeat']}; flow keys: proto {k['ip_proto']} "
                    f"{k['src']}:{k['sport']} -> {k['dst']}:{k['dport']}, nhoff {k['nhoff']} thoff {k['thoff']}>")
        return (f"<test_run {self['program']}: {self['action']} (retval {self['retval']}), "
                f"{self['ns_per_run']} ns per run over {self['repeat']}; out: {self.packet.summary()}>")
