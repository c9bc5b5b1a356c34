"""XDP: an XDP BPF link on the interface, so closing its fd (or the process dying) detaches it.

``xdp/devmap`` and ``xdp/cpumap`` programs run from a map entry, not from a
device: they are loaded and left for the cell's code to put in its map.
"""
from __future__ import annotations

import ctypes as ct
import os

from .. import libbpf
from ..uapi import AttachType
from .base import Request
from .net import NetAttachment, device, link_error

XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
_FLAGS = {None: 0, "skb": XDP_FLAGS_SKB_MODE, "drv": XDP_FLAGS_DRV_MODE}
# IFLA_XDP_ATTACHED, as numbers and as pyroute2 names them
_ATTACHED = {1: "drv", 2: "skb", 3: "hw", 4: "multi", "xdp": "drv", "xdpgeneric": "skb", "xdpoffload": "hw",
             "xdpmulti": "multi"}


def xdp(req: Request) -> list[NetAttachment]:
    if req.section.target.mode in ("devmap", "cpumap"):
        return []
    dev = device(req, "xdp")
    mode = req.options.xdp_mode

    def create():
        opts = libbpf.LinkCreateOpts(sz=ct.sizeof(libbpf.LinkCreateOpts), flags=_FLAGS[mode])
        fd = libbpf.lib().bpf_link_create(req.fd, dev.ifindex, int(AttachType.XDP), ct.byref(opts))
        return fd, (libbpf.errno_of(fd) if fd < 0 else 0), (_attached_mode(dev.ifindex) if fd >= 0 else None)

    fd, err, shown = dev.run(create)
    if fd < 0:
        raise link_error(f"attaching XDP program {req.fn} to {dev.label}" + (f" in {mode} mode" if mode else ""),
                         err, hint="EBUSY: another XDP program holds the device (detach it first); "
                                   "EOPNOTSUPP in drv mode: the driver has no native XDP, use --xdp-mode skb")
    return [NetAttachment("xdp", f"{dev.label} ({shown or mode or 'kernel default'} mode)",
                          lambda: os.close(fd), fd=fd, target=dev.network)]


def _attached_mode(ifindex: int) -> str | None:
    """How the kernel attached it, from the device's netlink IFLA_XDP (asked inside its namespace)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        xdp = ipr.get_links(ifindex)[0].get_attr("IFLA_XDP")
    return _ATTACHED.get(xdp.get_attr("IFLA_XDP_ATTACHED")) if xdp else None
