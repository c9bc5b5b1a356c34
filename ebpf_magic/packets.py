"""Packets a socket filter kept, as DataFrames decoded by scapy, and pcap files.

``h.packets(duration)`` drains the filter's packet socket for ``duration``
seconds (and whatever queued since the last call); every packet read is also
kept on the handle (the last ``KEEP``) for ``h.to_pcap(path)``. A frame from
``h.packets()`` writes itself too: ``frame.pcap.write(path)``.
"""
from __future__ import annotations

import logging
import select
import time
from collections import deque

from .errors import UsageError

KEEP = 100_000
COLUMNS = ["time", "length", "direction", "src_mac", "dst_mac", "ethertype", "src", "dst", "protocol",
           "sport", "dport", "summary", "data"]
_ETH_HLEN = 14
_PKTTYPE = {0: "in", 1: "broadcast", 2: "multicast", 3: "other-host", 4: "out"}
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)


def capture(sock, duration: float, max_packets: int = 100_000) -> list[tuple[float, bytes, str]]:
    """(time, bytes, direction) of what the socket holds and receives for ``duration`` s."""
    out = []
    deadline = time.monotonic() + duration
    while len(out) < max_packets:
        left = deadline - time.monotonic()
        try:
            data, addr = sock.recvfrom(65535)
        except BlockingIOError:
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                break
            continue
        except OSError:   # closed: the handle detached
            break
        out.append((time.time(), data, _PKTTYPE.get(addr[2], str(addr[2]))))
    return out


def frame(packets):
    """One row per packet: time, length, direction, MACs, addresses, ports, protocol, scapy's summary, data."""
    import pandas as pd

    rows = [_decode(t, data, direction) for t, data, direction in packets]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["time"] = pd.to_datetime(df["time"], unit="s")
    return df


def _decode(t: float, data: bytes, direction: str) -> dict:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    row = {"time": t, "length": len(data), "direction": direction, "src_mac": None, "dst_mac": None,
           "ethertype": None, "src": None, "dst": None, "protocol": None, "sport": None, "dport": None,
           "summary": f"{len(data)} bytes (shorter than an Ethernet header)", "data": data}
    if len(data) < _ETH_HLEN:   # a filter that kept only a few bytes
        return row
    pkt = Ether(data)
    row |= {"src_mac": pkt.src, "dst_mac": pkt.dst, "ethertype": f"0x{pkt.type:04x}", "summary": pkt.summary()}
    ip = pkt[IP] if IP in pkt else pkt[IPv6] if IPv6 in pkt else None
    if ip is not None:
        row["src"], row["dst"] = ip.src, ip.dst
        row["protocol"] = pkt.sprintf("%IP.proto%" if IP in pkt else "%IPv6.nh%")
    for layer in (TCP, UDP):
        if layer in pkt:
            row["sport"], row["dport"] = pkt[layer].sport, pkt[layer].dport
    if ip is None and pkt.type == 0x0806:
        row["protocol"] = "arp"
    return row


def write_pcap(path, packets) -> str:
    """Write (time, bytes) packets as an Ethernet pcap (Wireshark, tcpdump -r)."""
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import PcapWriter

    with PcapWriter(str(path), linktype=1, sync=True) as w:
        for t, data, *_ in packets:
            p = Ether(data) if len(data) >= _ETH_HLEN else Raw(data)
            p.time = t
            w.write(p)
    return str(path)


class Capture:
    """What one socket-filter attachment read so far."""

    def __init__(self):
        self.kept: deque = deque(maxlen=KEEP)

    def read(self, sock, duration: float, max_packets: int):
        got = capture(sock, duration, max_packets)
        self.kept.extend(got)
        return frame(got)


def _register_accessor() -> None:
    import pandas as pd

    @pd.api.extensions.register_dataframe_accessor("pcap")
    class PcapAccessor:
        """``h.packets(1).pcap.write("x.pcap")``: the frame's packets as a pcap file."""

        def __init__(self, df):
            if "data" not in df or "time" not in df:
                raise AttributeError("only frames from h.packets() have packets to write")
            self._df = df

        def write(self, path) -> str:
            times = self._df["time"].astype("int64") / 1e9
            return write_pcap(path, zip(times, self._df["data"], strict=True))


def require_socket(handle):
    att = next((a for a in handle.attachments if getattr(a, "sock", None) is not None and a.attached), None)
    if att is None:
        raise UsageError(f"{handle.name} has no packet socket: only attached socket filters capture",
                         hint="%%bpf socket --dev b -n keep_icmp; then keep_icmp.packets(1)")
    return att


def packets(handle, duration: float = 1.0, max_packets: int = 100_000):
    att = require_socket(handle)
    cap = handle.__dict__.setdefault("_capture", Capture())
    return cap.read(att.sock, duration, max_packets)


def to_pcap(handle, path) -> str:
    cap = handle.__dict__.get("_capture")
    if cap is None:
        require_socket(handle)
        cap = Capture()
    return write_pcap(path, cap.kept)


_register_accessor()
