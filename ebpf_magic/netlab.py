"""The lab network: hosts in namespaces of their own, joined by veth pairs.

``%bpf_net`` makes one per session (hosts a and b by default). Every host is
an unnamed network namespace held by an fd (see ``netns``), so nothing of it
outlives the Python process. Packet counts are reproducible: addresses come
from the documentation prefixes (192.0.2.0/24, 2001:db8::/32), neighbours are
static (no ARP or neighbour discovery), DAD and router solicitations are off,
no link-local address is made, and segmentation and receive offloads are off
so that XDP and tc see each packet on the wire as one packet.

Netlink work goes through pyroute2, with its socket opened inside the host's
namespace; traffic helpers live in ``nettraffic``.
"""
from __future__ import annotations

import ipaddress
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import netns
from .errors import UsageError

SESSION_KIND = "net"
_IFA_F_NODAD = 0x02
_NUD_PERMANENT = 0x80
# One veth link per /28 of 192.0.2.0/24 and one /64 of 2001:db8::/32.
_MAX_LINKS = 16
# Offloads that merge or split packets: with them off every wire packet is one skb.
_OFFLOADS_OFF = ("tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-generic-segmentation",
                 "rx-gro", "generic-receive-offload", "tcp-segmentation-offload",
                 "generic-segmentation-offload")


@dataclass
class Interface:
    host: str
    name: str
    ifindex: int = 0
    mac: str = ""
    ipv4: str = ""
    ipv6: str = ""
    peer: tuple[str, str] | None = None      # (host, interface) at the other end of the veth

    @property
    def spec(self) -> str:
        return f"{self.host}:{self.name}"


@dataclass
class Host:
    name: str
    fd: int
    interfaces: list[Interface] = field(default_factory=list)

    @property
    def netns(self) -> str:
        return f"net:[{netns.inode(self.fd)}]"


def _v6(link: int, host: int) -> str:
    return str(ipaddress.IPv6Address(f"2001:db8:0:{link:x}::{host:x}"))


def _ipr():
    from pyroute2 import IPRoute

    return IPRoute()


class Network:
    """Hosts joined by veth links; ``net.ping("a", "b")``, ``net.udp``, ``net.tcp``, ``net.run``."""

    def __init__(self, hosts=("a", "b"), links=None):
        hosts = tuple(hosts)
        if len(hosts) < 2 or len(set(hosts)) != len(hosts):
            raise UsageError(f"a lab network needs two or more distinct hosts, not {hosts!r}",
                             hint='%bpf_net --hosts a b c')
        for h in hosts:
            if not (h.isidentifier() and h.isascii()) or len(h) > 8:
                raise UsageError(f"host name {h!r} must be a short identifier", hint="e.g. a, b, router")
        links = list(links) if links is not None else [(hosts[i], hosts[i + 1]) for i in range(len(hosts) - 1)]
        if len(links) > _MAX_LINKS:
            raise UsageError(f"at most {_MAX_LINKS} links", hint="fewer hosts")
        self.hosts: dict[str, Host] = {}
        self.closed = False
        try:
            for h in hosts:
                self.hosts[h] = Host(h, netns.new_netns())
                netns.run_in(self.hosts[h].fd, _host_defaults)
            for i, (x, y) in enumerate(links):
                self._link(i, self.host(x), self.host(y))
            self._settle()
        except BaseException:
            self.close()
            raise

    # --- building ----------------------------------------------------------------
    def _link(self, i: int, x: Host, y: Host) -> None:
        ix = Interface(x.name, f"eth{len(x.interfaces)}", ipv4=f"192.0.2.{16 * i + 1}",
                       ipv6=_v6(i, 1), peer=(y.name, f"eth{len(y.interfaces)}"))
        iy = Interface(y.name, ix.peer[1], ipv4=f"192.0.2.{16 * i + 2}", ipv6=_v6(i, 2),
                       peer=(x.name, ix.name))
        x.interfaces.append(ix)
        y.interfaces.append(iy)

        def create():
            with _ipr() as ipr:
                ipr.link("add", ifname=ix.name, kind="veth", peer={"ifname": iy.name, "net_ns_fd": y.fd})
        netns.run_in(x.fd, create)
        for host, iface in ((x, ix), (y, iy)):
            netns.run_in(host.fd, _configure, iface)
        for host, iface, other in ((x, ix, iy), (y, iy, ix)):
            netns.run_in(host.fd, _neighbours, iface, other)

    def _settle(self, quiet_for: float = 0.1, timeout: float = 5.0) -> None:
        """Wait until no lab interface sends anything (the kernel's own start-up reports are done)."""
        def counters():
            return [netns.run_in(h.fd, _tx_packets) for h in self.hosts.values()]

        last, since, deadline = counters(), time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = counters()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_for:
                return

    # --- looking things up ---------------------------------------------------------
    def host(self, name: str) -> Host:
        self._open()
        try:
            return self.hosts[name]
        except KeyError:
            raise UsageError(f"the lab network has no host {name!r}",
                             hint=f"hosts: {', '.join(self.hosts)}") from None

    def interface(self, spec: str) -> Interface:
        """``"b"`` (the host's first interface) or ``"b:eth0"``."""
        host, _, name = spec.partition(":")
        h = self.host(host)
        if not name:
            return h.interfaces[0]
        for iface in h.interfaces:
            if iface.name == name:
                return iface
        raise UsageError(f"host {host} has no interface {name!r}",
                         hint=f"its interfaces: {', '.join(i.name for i in h.interfaces)}")

    def address(self, host: str, ipv6: bool = False, toward: str | None = None) -> str:
        """The address of ``host`` (on its link to ``toward`` if given)."""
        h = self.host(host)
        ifaces = [i for i in h.interfaces if toward is None or (i.peer and i.peer[0] == toward)]
        if not ifaces:
            raise UsageError(f"hosts {host} and {toward} share no link",
                             hint="traffic helpers run between hosts joined by a veth")
        return ifaces[0].ipv6 if ipv6 else ifaces[0].ipv4

    def run_in(self, host: str, fn, *args, **kwargs):
        """``fn(*args)`` in a thread inside the host's namespace (sockets made there stay there)."""
        return netns.run_in(self.host(host).fd, fn, *args, **kwargs)

    def ipr(self, host: str):
        """A pyroute2 IPRoute bound to the host's namespace (close it, or use ``with``)."""
        return self.run_in(host, _ipr)

    # --- traffic -------------------------------------------------------------------
    def ping(self, src: str, dst: str, count: int = 5, **kw):
        from .nettraffic import ping

        return ping(self, src, dst, count=count, **kw)

    def udp(self, src: str, dst: str, count: int = 10, **kw):
        from .nettraffic import udp

        return udp(self, src, dst, count=count, **kw)

    def tcp(self, src: str, dst: str, **kw):
        from .nettraffic import tcp

        return tcp(self, src, dst, **kw)

    def flood(self, src: str, dst: str, duration: float = 2.0, **kw):
        """UDP as fast as possible in the background: ``f = net.flood("a", "b"); ...; f.wait()``."""
        from .nettraffic import flood

        return flood(self, src, dst, duration, **kw)

    def run(self, host: str, cmd, timeout: float = 30.0) -> str:
        from .nettraffic import run

        return run(self, host, cmd, timeout=timeout)

    # --- display and life ------------------------------------------------------------
    def frame(self):
        import pandas as pd

        rows = [{"host": h.name, "namespace": h.netns, "interface": i.name, "ifindex": i.ifindex,
                 "MAC": i.mac, "IPv4": f"{i.ipv4}/28", "IPv6": f"{i.ipv6}/64",
                 "peer": f"{i.peer[0]}:{i.peer[1]}" if i.peer else ""}
                for h in self.hosts.values() for i in h.interfaces]
        return pd.DataFrame(rows, columns=["host", "namespace", "interface", "ifindex", "MAC", "IPv4",
                                           "IPv6", "peer"])

    def __repr__(self) -> str:
        if self.closed:
            return "<lab network: closed>"
        return "lab network (%bpf_net --close removes it)\n" + self.frame().to_string(index=False)

    def _repr_html_(self) -> str:
        if self.closed:
            return "<b>lab network</b>: closed"
        return ("<b>lab network</b> <small>(%bpf_net --close removes it)</small>"
                + self.frame().to_html(index=False, escape=True))

    def _open(self) -> None:
        if self.closed:
            raise UsageError("the lab network is closed", hint="net = %bpf_net makes a new one")

    def close(self) -> None:
        """Close the namespaces' fds: the kernel deletes the veths and all attached to them."""
        self.closed = True
        for h in self.hosts.values():
            if h.fd >= 0:
                os.close(h.fd)
                h.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def lab_network(create: bool = True, **kw) -> Network | None:
    """The session's lab network, made on first use (None if ``create`` is False and there is none)."""
    from .session import SESSION

    net = SESSION.peek(SESSION_KIND)
    if net is not None and net.closed:
        SESSION.close(SESSION_KIND)
        net = None
    if net is None and create:
        from .attach.tc import sweep_stale

        # clsact filters that dead lab processes left on the machine's own interfaces. In a thread:
        # pyroute2 0.9 runs an asyncio loop, which fails in a thread whose loop runs already (Jupyter's).
        with ThreadPoolExecutor(1) as pool:
            pool.submit(sweep_stale).result()
        net = SESSION.resource(SESSION_KIND, lambda: Network(**kw))
    return net


# --- inside a host's namespace (each runs in a thread that entered it) --------------

def _host_defaults() -> None:
    for path, value in (("net/ipv6/conf/all/accept_dad", 0), ("net/ipv6/conf/default/accept_dad", 0),
                        ("net/ipv6/conf/default/router_solicitations", 0),
                        ("net/ipv6/conf/default/accept_ra", 0),
                        ("net/ipv6/conf/default/addr_gen_mode", 1),      # no link-local address
                        ("net/ipv6/conf/default/mldv2_unsolicited_report_interval", 1),
                        ("net/ipv6/conf/default/mldv1_unsolicited_report_interval", 1)):
        netns.write_sysctl(path, value)
    with _ipr() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def _configure(iface: Interface) -> None:
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=iface.name)[0]
        iface.ifindex = idx
        _offloads_off(iface.name)
        ipr.addr("add", index=idx, address=iface.ipv4, prefixlen=28)
        ipr.addr("add", index=idx, address=iface.ipv6, prefixlen=64, flags=_IFA_F_NODAD)
        ipr.link("set", index=idx, state="up")
        iface.mac = ipr.get_links(idx)[0].get_attr("IFLA_ADDRESS")


def _neighbours(iface: Interface, other: Interface) -> None:
    with _ipr() as ipr:
        for dst in (other.ipv4, other.ipv6):
            ipr.neigh("replace", dst=dst, lladdr=other.mac, ifindex=iface.ifindex, state=_NUD_PERMANENT)


def _offloads_off(ifname: str) -> None:
    from pyroute2.ethtool import Ethtool

    eth = Ethtool()
    try:
        features = eth.get_features(ifname)
        for name in _OFFLOADS_OFF:
            if name in features.features:
                features.features[name].enable = False
        eth.set_features(ifname, features)
    finally:
        eth.close()


def _tx_packets() -> list[int]:
    with open("/proc/net/dev") as f:
        return [int(line.split(":", 1)[1].split()[9]) for line in f if ":" in line]
