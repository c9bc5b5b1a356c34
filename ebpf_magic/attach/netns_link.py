"""sk_lookup and flow_dissector: a BPF link on a lab host's network namespace.

``--netns b`` names host b of the lab network (made on first use). The link
(``BPF_LINK_CREATE`` with the namespace's fd as target and attach type
``BPF_SK_LOOKUP`` or ``BPF_FLOW_DISSECTOR``) holds the program, not the
namespace: closing the link, the death of the process, or the namespace going
away detaches it.

The machine's own namespace is refused unless the learner adds
``--real-netns`` (then ``--netns`` is ``self`` or a namespace file such as
/proc/PID/ns/net or /run/netns/NAME): a flow dissector there overrides the
dissection of every namespace on the machine, and an sk_lookup program there
can steer the machine's own connections.
"""
from __future__ import annotations

import ctypes as ct
import errno
import os
from dataclasses import dataclass

from .. import libbpf
from ..errors import AttachError, UsageError
from ..uapi import AttachType, ProgType
from .base import Request
from .net import NetAttachment, not_a_lab_host

_ATTACH = {ProgType.SK_LOOKUP: AttachType.SK_LOOKUP, ProgType.FLOW_DISSECTOR: AttachType.FLOW_DISSECTOR}
_KIND = {ProgType.SK_LOOKUP: "sk_lookup", ProgType.FLOW_DISSECTOR: "flow_dissector"}
_OWN = ("self", "host", "init", "root")   # ways a learner may mean the machine's own namespace


@dataclass
class Namespace:
    fd: int                 # a new fd: the caller closes it (the link does not need it)
    label: str              # "host b (net:[4026532...])", or "real net:[...]"
    network: object = None  # the lab network it belongs to; None for --real-netns


def check_options(o) -> None:
    """Magic-line checks that need no kernel."""
    if o.netns is not None and (not str(o.netns).strip() or any(c.isspace() for c in str(o.netns))):
        raise UsageError(f"--netns {o.netns!r} is not a lab host", hint="--netns b (a host of %bpf_net)")
    if o.real_netns and not o.netns:
        raise UsageError("--real-netns says --netns names a namespace of this machine, but there is no --netns",
                         hint="--netns self --real-netns, or drop --real-netns to use a lab host")


def namespace(req: Request) -> Namespace:
    """The namespace ``--netns`` names; the machine's own only with ``--real-netns``."""
    from ..netlab import lab_network

    spec, kind = req.options.netns, req.section.family
    if not spec:
        raise AttachError(f"{kind} program {req.fn} attaches to a network namespace, and the magic line names none",
                          hint=f"--netns b (a host of the lab network, see %bpf_net), e.g. %%bpf {kind} --netns b")
    if req.options.real_netns:
        return _real(spec)
    net = lab_network(create=True)
    if spec not in net.hosts:
        raise not_a_lab_host("netns", spec, spec, net, outside=spec in _OWN or spec.startswith("/"),
                             what="a namespace")
    host = net.host(spec)
    return Namespace(os.dup(host.fd), f"host {spec} ({host.netns})", net)


def _real(spec: str) -> Namespace:
    path = "/proc/self/ns/net" if spec in _OWN else spec
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise AttachError(f"--real-netns: cannot open namespace {path}: {exc.strerror}",
                          hint="--netns self, /proc/PID/ns/net or /run/netns/NAME (ip netns list)") from None
    if not os.readlink(f"/proc/self/fd/{fd}").startswith("net:["):
        os.close(fd)
        raise AttachError(f"--real-netns: {path} is not a network namespace",
                          hint="--netns self, /proc/PID/ns/net or /run/netns/NAME")
    return Namespace(fd, f"real {os.readlink(f'/proc/self/fd/{fd}')}")


def netns_link(req: Request) -> list[NetAttachment]:
    """A BPF link of the program on the namespace, with the program type's attach type."""
    prog_type = req.section.prog_type
    attach_type = req.section.attach_type or _ATTACH[prog_type]
    ns = namespace(req)
    try:
        opts = libbpf.LinkCreateOpts(sz=ct.sizeof(libbpf.LinkCreateOpts))
        link = libbpf.lib().bpf_link_create(req.fd, ns.fd, int(attach_type), ct.byref(opts))
    finally:
        os.close(ns.fd)
    if link < 0:
        err = libbpf.errno_of(link)
        raise AttachError(f"attaching {req.fn} ({req.section.name}) to {ns.label}: {libbpf.strerror(err)}",
                          hint=_hint(err, prog_type))
    return [NetAttachment(_KIND[prog_type], ns.label, lambda: os.close(link), fd=link, target=ns.network)]


def _hint(err: int, prog_type) -> str:
    if err == errno.E2BIG and prog_type == ProgType.FLOW_DISSECTOR:
        return "one flow dissector per namespace: detach the other one first (bpftool net list shows it)"
    if err == errno.EEXIST and prog_type == ProgType.FLOW_DISSECTOR:
        return ("a flow dissector on the machine's own namespace overrides every namespace, so the kernel "
                "refuses one here while it is attached (bpftool net list shows it)")
    if err == errno.E2BIG:
        return "at most 64 sk_lookup programs per namespace: detach some"
    if err == errno.EINVAL:
        return "the program must be loaded from SEC(\"sk_lookup\") or SEC(\"flow_dissector\")"
    return "see %bpf_features for this family"
