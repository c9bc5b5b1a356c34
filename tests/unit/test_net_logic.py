"""Pure logic of the network families: option checks, directions, return names, packet decoding, pcap."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from ebpf_magic import packets, testrun
from ebpf_magic.attach import Options, Request
from ebpf_magic.attach.tc import direction_of
from ebpf_magic.errors import UsageError
from ebpf_magic.netlab import Network
from ebpf_magic.sections import resolve
from ebpf_magic.uapi import ProgType


@pytest.mark.parametrize("opts, match", [
    (dict(xdp_mode="native"), "--xdp-mode 'native' is not a mode"),
    (dict(direction="up"), "is not a direction"),
    (dict(dev="a:b:c"), "is not a host or host:interface"),
    (dict(dev="a b"), "is not a host or host:interface"),
    (dict(real_dev=True), "there is no --dev"),
])
def test_options_refused_before_compiling(opts, match):
    with pytest.raises(UsageError, match=match):
        Options(**opts).check()


def test_good_options_pass():
    Options(dev="b:eth0", xdp_mode="drv", direction="egress", clsact=True).check()
    Options(dev="lo", real_dev=True).check()


def _req(sec: str, **opts) -> Request:
    return Request(-1, "f", resolve(sec), Options(**opts))


def test_direction_from_sec_or_option():
    assert direction_of(_req("tc", direction="egress")) == "egress"
    assert direction_of(_req("classifier", direction="ingress")) == "ingress"
    with pytest.raises(UsageError, match="does not say ingress or egress"):
        direction_of(_req("tc"))


@pytest.mark.parametrize("prog_type, retval, name", [
    (ProgType.XDP, 1, "XDP_DROP"), (ProgType.XDP, 2, "XDP_PASS"), (ProgType.XDP, 3, "XDP_TX"),
    (ProgType.SCHED_CLS, 2, "TC_ACT_SHOT"), (ProgType.SCHED_CLS, 0, "TC_ACT_OK"),
    (ProgType.SCHED_CLS, 0xFFFFFFFF, "TC_ACT_UNSPEC"), (ProgType.SOCKET_FILTER, 0, "drop"),
    (ProgType.SOCKET_FILTER, 64, "keep 64 bytes"), (ProgType.XDP, 9, "9"),
])
def test_return_values_by_name(prog_type, retval, name):
    assert testrun.retval_name(prog_type, retval) == name


def test_test_packets_must_be_ethernet_frames():
    assert testrun._bytes(Ether() / IP() / ICMP())[12:14] == b"\x08\x00"
    with pytest.raises(UsageError, match="bytes or a scapy packet"):
        testrun._bytes("not a packet")
    with pytest.raises(UsageError, match="Ethernet header"):
        testrun._bytes(b"\x00" * 10)


def test_decoded_frame_and_pcap(tmp_path):
    pkts = [(1.5, bytes(Ether(src="02:00:00:00:00:01") / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=5, dport=9000)), "out"),
            (2.0, bytes(Ether() / IP(src="192.0.2.2", dst="192.0.2.1") / ICMP()), "in")]
    df = packets.frame(pkts)
    assert list(df.columns) == packets.COLUMNS
    assert df["protocol"].tolist() == ["udp", "icmp"] and df["dport"].tolist()[0] == 9000
    assert df["src"].tolist() == ["192.0.2.1", "192.0.2.2"] and df["length"].tolist() == [42, 42]
    path = packets.write_pcap(tmp_path / "x.pcap", pkts)
    back = rdpcap(path)
    assert [bytes(p) for p in back] == [p[1] for p in pkts] and float(back[0].time) == 1.5
    df.pcap.write(tmp_path / "y.pcap")
    assert [bytes(p) for p in rdpcap(str(tmp_path / "y.pcap"))] == [p[1] for p in pkts]


def test_captures_cut_short_by_the_filter_still_decode_and_write(tmp_path):
    whole = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(dport=9000))
    pkts = [(1.0, whole[:1], "in"), (2.0, whole[:14], "in"), (3.0, whole, "in")]
    df = packets.frame(pkts)
    assert df["length"].tolist() == [1, 14, 42] and df["ethertype"].tolist()[1:] == ["0x0800", "0x0800"]
    assert "shorter than an Ethernet header" in df["summary"][0] and df["protocol"].tolist()[2] == "udp"
    path = packets.write_pcap(tmp_path / "short.pcap", pkts)
    assert [bytes(p) for p in rdpcap(path)] == [p[1] for p in pkts]


@pytest.mark.parametrize("hosts", [("a",), ("a", "a"), ("a", "b-c"), ("a", "averylonghost")])
def test_bad_host_names_refused_before_any_namespace(hosts):
    with pytest.raises(UsageError):
        Network(hosts=hosts)
