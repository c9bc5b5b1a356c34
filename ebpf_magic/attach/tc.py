"""tc classifiers: a tcx link where the kernel has it (6.6+), else a netlink clsact filter.

A tcx link goes when its fd closes, so a dead process leaves nothing. A clsact
filter (``--clsact``, or a kernel without tcx) lives on the device: the lab
removes it on detach and at exit, names it ``ebpf_magic:PID:FUNCTION``, and
``sweep_stale`` removes those of dead processes from the machine's own
interfaces (lab interfaces vanish with their namespace anyway).
"""
from __future__ import annotations

import ctypes as ct
import errno
import itertools
import os

from .. import libbpf
from ..errors import UsageError
from ..uapi import AttachType
from .base import Request
from .net import Device, NetAttachment, device, link_error

_TCX = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}
_PARENT = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
_NAME_PREFIX = "ebpf_magic:"
_prio = itertools.count(1)


def direction_of(req: Request) -> str:
    """From the SEC (tc/ingress, tcx/egress) or --direction for plain tc/classifier."""
    at = req.section.attach_type
    from_sec = next((d for d, t in _TCX.items() if at == t), None)
    if from_sec is None:
        tail = req.section.name.rsplit("/", 1)[-1]
        from_sec = tail if tail in _TCX else None
    given = req.options.direction
    if from_sec and given and given != from_sec:
        raise UsageError(f"SEC {req.section.name} attaches on {from_sec}, but --direction says {given}",
                         hint="drop --direction, or use SEC(\"tc\") with --direction")
    if not (from_sec or given):
        raise UsageError(f"SEC {req.section.name} does not say ingress or egress",
                         hint="add --direction ingress (or egress), or use SEC(\"tcx/ingress\")")
    return from_sec or given


def tc(req: Request) -> list[NetAttachment]:
    direction = direction_of(req)
    dev = device(req, f"{req.section.name} --direction {direction}")
    if not req.options.clsact:
        def create():
            opts = libbpf.LinkCreateOpts(sz=ct.sizeof(libbpf.LinkCreateOpts))
            fd = libbpf.lib().bpf_link_create(req.fd, dev.ifindex, int(_TCX[direction]), ct.byref(opts))
            return fd, libbpf.errno_of(fd) if fd < 0 else 0

        fd, err = dev.run(create)
        if fd >= 0:
            return [NetAttachment("tcx", f"{dev.label} {direction}", lambda: os.close(fd), fd=fd,
                                  target=dev.network)]
        if err not in (errno.EINVAL, errno.EOPNOTSUPP):  # those two: a kernel without tcx
            raise link_error(f"attaching tc program {req.fn} to {dev.label} {direction}", err,
                             hint="tc programs take struct __sk_buff *skb and return TC_ACT_*")
    return [clsact(req, dev, direction)]


def clsact(req: Request, dev: Device, direction: str) -> NetAttachment:
    """A direct-action bpf filter on the device's clsact qdisc, made through netlink."""
    from pyroute2.netlink.exceptions import NetlinkError

    _in_worker_thread(sweep_stale)
    prio = next(_prio)
    name = f"{_NAME_PREFIX}{os.getpid()}:{req.fn}"[:255]

    def add():
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            try:
                ipr.tc("add", "clsact", dev.ifindex)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
            ipr.tc("add-filter", "bpf", dev.ifindex, ":1", fd=req.fd, name=name, parent=_PARENT[direction],
                   prio=prio, classid=1, direct_action=True)

    try:
        dev.run(add)
    except NetlinkError as exc:
        raise link_error(f"adding a clsact bpf filter for {req.fn} on {dev.label} {direction}", exc.code,
                         hint="tc programs take struct __sk_buff *skb and return TC_ACT_*") from None

    def remove():
        try:
            dev.run(_remove_filter, dev.ifindex, _PARENT[direction], prio)
        except (OSError, ValueError):  # the namespace (and the device with it) is gone already
            pass

    return NetAttachment("clsact", f"{dev.label} {direction} (netlink filter, prio {prio})", remove,
                         target=dev.network)


def _in_worker_thread(fn):
    """pyroute2 0.9 runs an asyncio loop of its own, which fails in a thread whose loop runs (Jupyter's)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def _remove_filter(ifindex: int, parent: str, prio: int) -> None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        try:
            ipr.tc("del-filter", "bpf", ifindex, ":1", parent=parent, prio=prio)
        except NetlinkError as exc:
            if exc.code not in (errno.ENOENT, errno.ENODEV, errno.EINVAL):
                raise
        # A netlink dump lists each filter priority once without a handle: only handles are filters.
        if not any(f["handle"] for p in _PARENT.values() for f in ipr.get_filters(ifindex, parent=p)):
            try:
                ipr.tc("del", "clsact", ifindex)
            except NetlinkError:
                pass


def sweep_stale() -> int:
    """Remove lab clsact filters left on this namespace's interfaces by dead processes; returns how many."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    removed = 0
    with IPRoute() as ipr:
        for link in ipr.get_links():
            idx = link["index"]
            for parent in _PARENT.values():
                try:
                    filters = ipr.get_filters(idx, parent=parent)
                except NetlinkError:
                    continue
                for f in filters:
                    pid = _owner(f)
                    if pid is None or os.path.exists(f"/proc/{pid}"):
                        continue
                    try:
                        ipr.tc("del-filter", "bpf", idx, ":1", parent=parent, prio=f["info"] >> 16)
                        removed += 1
                    except NetlinkError:
                        pass
    return removed


def _owner(f) -> int | None:
    opts = f.get_attr("TCA_OPTIONS")
    name = opts.get_attr("TCA_BPF_NAME") if opts is not None and hasattr(opts, "get_attr") else None
    if not name or not name.startswith(_NAME_PREFIX):
        return None
    pid = name[len(_NAME_PREFIX):].partition(":")[0]
    return int(pid) if pid.isdigit() else None
