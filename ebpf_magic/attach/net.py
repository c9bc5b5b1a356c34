"""What the network attachers share: ``--dev`` resolved to an interface, and their attachments.

``--dev b`` or ``--dev b:eth0`` names an interface of the lab network (made on
first use). An interface of the machine itself is refused unless the learner
adds ``--real-dev``: an XDP drop on the wrong device cuts the machine off.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

from ..errors import AttachError, UsageError
from .base import Attachment, Request


@dataclass
class Device:
    label: str              # "b:eth0", or "real:eth0"
    ifindex: int
    netns_fd: int | None    # None: this process's own namespace (--real-dev)
    network: object = None  # the lab network it belongs to

    def run(self, fn, *args):
        """Netlink, ifindexes and packet sockets are per namespace: work where the device lives."""
        from ..netns import run_in

        return fn(*args) if self.netns_fd is None else run_in(self.netns_fd, fn, *args)


@dataclass
class NetAttachment(Attachment):
    sock: object = None         # socket filters: the packet socket the program filters


def check_options(o) -> None:
    """Magic-line checks that need no kernel."""
    if o.xdp_mode is not None and o.xdp_mode not in ("skb", "drv"):
        raise UsageError(f"--xdp-mode {o.xdp_mode!r} is not a mode",
                         hint="--xdp-mode skb (generic, any device) or --xdp-mode drv (native)")
    if o.direction is not None and o.direction not in ("ingress", "egress"):
        raise UsageError(f"--direction {o.direction!r} is not a direction", hint="--direction ingress or egress")
    if o.dev is not None and (not o.dev or any(c.isspace() for c in o.dev) or o.dev.count(":") > 1):
        raise UsageError(f"--dev {o.dev!r} is not a host or host:interface", hint="--dev b or --dev b:eth0")
    if o.real_dev and not o.dev:
        raise UsageError("--real-dev says --dev names an interface of this machine, but there is no --dev",
                         hint="--dev lo --real-dev, or drop --real-dev to use the lab network")


def device(req: Request, what: str) -> Device:
    """The interface ``--dev`` names; refuses real interfaces unless ``--real-dev``."""
    from ..netlab import lab_network

    dev = req.options.dev
    if not dev:
        raise AttachError(f"{req.section.family} program {req.fn} needs an interface to attach to",
                          hint=f"--dev b (a host of the lab network, see %bpf_net) or --dev b:eth0, "
                               f"e.g. %%bpf {what} --dev b")
    if req.options.real_dev:
        try:
            return Device(f"real:{dev}", socket.if_nametoindex(dev), None)
        except OSError:
            raise AttachError(f"--real-dev: this machine has no interface {dev!r}",
                              hint="list them: ip -br link") from None
    host = dev.partition(":")[0]
    net = lab_network(create=True)
    if host not in net.hosts:
        raise not_a_lab_host("dev", dev, host, net, outside=_real_interface(dev), what="an interface")
    iface = net.interface(dev)
    return Device(iface.spec, iface.ifindex, net.host(host).fd, net)


def not_a_lab_host(flag: str, value: str, host: str, net, outside: bool, what: str) -> AttachError:
    """--dev/--netns VALUE names no lab host: either something of the machine itself or nothing."""
    return AttachError(
        f"--{flag} {value}: " + (f"that is {what} of this machine, outside the lab network" if outside
                                 else f"no lab host {host!r}"),
        hint=f"lab hosts: {', '.join(net.hosts)} (e.g. --{flag} {next(iter(net.hosts))})"
             + (f"; to attach to it anyway, add --real-{flag}" if outside else ""))


def _real_interface(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def link_error(what: str, err: int, hint: str) -> AttachError:
    from .. import libbpf

    return AttachError(f"{what}: {libbpf.strerror(err)}", hint=hint)
