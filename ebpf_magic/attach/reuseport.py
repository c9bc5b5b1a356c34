"""sk_reuseport: a group of SO_REUSEPORT listeners the lab opens in a host, with the program choosing among them.

``%%bpf sk_reuseport --netns b --sockets 4 [--port 7100]`` opens that many TCP
listeners on one port in host b (``SO_REUSEPORT``), attaches the program to
their group (``SO_ATTACH_REUSEPORT_EBPF``: the program belongs to the group,
and goes when its last socket closes) and puts socket i at index i of the
program's ``BPF_MAP_TYPE_REUSEPORT_SOCKARRAY`` (or sockmap, the one ``--map``
names, or its only one), so ``bpf_sk_select_reuseport(ctx, &map, &i, 0)`` picks socket i.
``h.group`` holds the sockets; ``net.connect("a", "b", h.group.port,
h.group.sockets)`` shows which one took each connection.
"""
from __future__ import annotations

import ctypes as ct
import os
import socket
from dataclasses import dataclass, field

from .. import libbpf
from ..errors import AttachError, UsageError
from .base import Request
from .net import NetAttachment
from .netns_link import namespace

SO_ATTACH_REUSEPORT_EBPF = 52
# BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, and SOCKMAP / SOCKHASH (bpf_sk_select_reuseport takes those since 5.8;
# BCC 0.26 cannot declare a sockarray)
_GROUP_MAPS = {20: "reuseport sockarray", 15: "sockmap", 18: "sockhash"}
_DEFAULT_SOCKETS = 4


@dataclass
class ReuseportGroup:
    host: str
    port: int
    sockets: list = field(default_factory=list)

    def close(self) -> None:
        for s in self.sockets:
            s.close()

    def __repr__(self) -> str:
        return f"<reuseport group: {len(self.sockets)} TCP listeners on {self.host} port {self.port}>"


def check_options(o) -> None:
    if o.sockets is not None and (not isinstance(o.sockets, int) or not 1 <= o.sockets <= 64):
        raise UsageError(f"--sockets {o.sockets!r} must be from 1 to 64", hint="--sockets 4")
    if o.port is not None and (not isinstance(o.port, int) or not 1 <= o.port <= 65535):
        raise UsageError(f"--port {o.port!r} must be from 1 to 65535", hint="--port 7100, or leave it out for any")


def _group(ns_fd: int, host: str, port: int, n: int) -> ReuseportGroup:
    def open_all():
        group = ReuseportGroup(host, port)
        try:
            for _ in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                group.sockets.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(("0.0.0.0", group.port))
                s.listen(128)
                group.port = s.getsockname()[1]
        except BaseException:
            group.close()
            raise
        return group

    from ..netns import run_in

    try:
        return run_in(ns_fd, open_all)
    except OSError as exc:
        raise AttachError(f"opening {n} SO_REUSEPORT listeners on {host} port {port or '(any)'}: {exc.strerror}",
                          hint="the port is taken: pick another --port, or leave it out") from None


def _sockarray(prog_fd: int, name: str | None) -> tuple[int, str] | None:
    """(a new fd, name, ...) of the map the lab fills with the group (u32 keys): the one named, or the only one."""
    from .sockmap import _MapInfo

    so = libbpf.lib()
    info, ids = (ct.c_uint8 * 64)(), (ct.c_uint32 * 64)()
    ct.c_uint32.from_buffer(info, 52).value = len(ids)           # nr_map_ids
    ct.c_uint64.from_buffer(info, 56).value = ct.addressof(ids)  # map_ids
    size = ct.c_uint32(len(info))
    if so.bpf_obj_get_info_by_fd(prog_fd, info, ct.byref(size)) != 0:
        return None
    found = []
    for map_id in ids[:min(ct.c_uint32.from_buffer(info, 52).value, len(ids))]:
        fd = so.bpf_map_get_fd_by_id(map_id)
        m, msize = _MapInfo(), ct.c_uint32(ct.sizeof(_MapInfo))
        if fd >= 0 and so.bpf_obj_get_info_by_fd(fd, ct.byref(m), ct.byref(msize)) == 0 and \
                m.type in _GROUP_MAPS and m.key_size == 4 and (name is None or m.name.decode() == name[:15]):
            found.append((fd, m.name.decode(), m.max_entries, m.value_size))
        elif fd >= 0:
            os.close(fd)
    if len(found) > 1:
        for f in found:
            os.close(f[0])
        raise AttachError("the program uses several socket maps: say which one the lab fills with the group",
                          hint=f"--map NAME, one of: {', '.join(f[1] for f in found)}")
    return found[0] if found else None


def reuseport(req: Request) -> list[NetAttachment]:
    ns = namespace(req)
    host = req.options.netns
    try:
        group = _group(ns.fd, host, req.options.port or 0, req.options.sockets or _DEFAULT_SOCKETS)
    finally:
        os.close(ns.fd)
    try:
        _fill(req, group)
        group.sockets[0].setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, req.fd)
    except OSError as exc:
        group.close()
        raise AttachError(f"attaching {req.fn} to the reuseport group on {host} port {group.port}: {exc.strerror}",
                          hint="the program must be SEC(\"sk_reuseport\") (struct sk_reuseport_md *)") from None
    except BaseException:
        group.close()
        raise
    return [NetAttachment("sk_reuseport", f"{len(group.sockets)} listeners on {ns.label} port {group.port}",
                          group.close, target=ns.network, sock=group)]


def _fill(req: Request, group: ReuseportGroup) -> None:
    found = _sockarray(req.fd, (req.options.map or "").rpartition(":")[2] or None)
    if found is None:
        if req.options.map:
            raise AttachError(f"--map {req.options.map}: the program uses no socket map of that name with u32 keys",
                              hint="declare __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY) (CO-RE) or "
                                   "BPF_TABLE(\"sockmap\", u32, u64, group, 8) (BCC) and use it")
        return   # a program without a sockarray can still pass or drop
    fd, name, max_entries, value_size = found
    try:
        if len(group.sockets) > max_entries:
            raise AttachError(f"--sockets {len(group.sockets)} do not fit {name} ({max_entries} entries)",
                              hint=f"--sockets {max_entries}, or a bigger map")
        for i, s in enumerate(group.sockets):
            key, value = ct.c_uint32(i), s.fileno().to_bytes(value_size, "little")
            vbuf = ct.create_string_buffer(value, len(value))
            ret = libbpf.lib().bpf_map_update_elem(fd, ct.byref(key), vbuf, 0)
            if ret < 0:
                raise AttachError(f"putting listener {i} into {name}: {libbpf.strerror(libbpf.errno_of(ret))}",
                                  hint="a reuseport sockarray has u32 keys and u32 or u64 values")
    finally:
        os.close(fd)
