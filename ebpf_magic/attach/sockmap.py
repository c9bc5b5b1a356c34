"""sk_msg and sk_skb: programs attached to a sockmap or sockhash, named by ``--map HANDLE:MAP``.

The map may belong to another handle of the session (``--map est:sock_hash``:
the sockhash a sockops program fills) or to the cell itself (``--map socks``).
Attaching goes through a BPF link on the map (``BPF_LINK_CREATE`` with the
map's fd, Linux 6.10+): the link holds the map, so it outlives the handle that
made it, and closing the link detaches. Sockets added to the map afterwards
run the program; sockets already in it keep what they had.
"""
from __future__ import annotations

import ctypes as ct
import errno
import os

from .. import libbpf
from ..errors import AttachError
from ..uapi import AttachType
from .base import Attachment, Request, fd_link

_MAP_TYPES = {15: "sockmap", 18: "sockhash"}   # BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH
_SK_SKB_HOOKS = {"stream_parser": AttachType.SK_SKB_STREAM_PARSER,
                 "stream_verdict": AttachType.SK_SKB_STREAM_VERDICT, "verdict": AttachType.SK_SKB_VERDICT}


class _MapInfo(ct.Structure):
    """The head of struct bpf_map_info."""

    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32), ("key_size", ct.c_uint32),
                ("value_size", ct.c_uint32), ("max_entries", ct.c_uint32), ("map_flags", ct.c_uint32),
                ("name", ct.c_char * 16)]


def map_type(fd: int) -> int:
    info = _MapInfo()
    size = ct.c_uint32(ct.sizeof(info))
    if libbpf.lib().bpf_obj_get_info_by_fd(fd, ct.byref(info), ct.byref(size)) != 0:
        return -1
    return info.type


def map_fd(handle, name: str) -> int:
    """The fd of map ``name`` of a lab handle, whichever engine built it (the handle keeps it open)."""
    view = handle[name]   # refuses an unknown name, listing the handle's maps
    info = getattr(view, "info", None)
    return info.fd if info is not None else bcc_table_fd(handle.module, name)


def bcc_table_fd(module, name: str) -> int:
    """A BCC module's map fd, from libbcc itself: BCC's Python has no table class for every map type."""
    from ..bcc_engine import bcc_module

    return bcc_module().lib.bpf_table_fd(module.bpf.module, name.encode())


def _own_map_fd(req: Request, name: str) -> int:
    """The fd of a map of the cell itself: BCC's table, or for CO-RE one the program uses (a new fd)."""
    if req.module is not None:
        if name not in req.module.table_names():
            raise AttachError(f"--map {name}: the cell has no map of that name",
                              hint=f"its maps: {', '.join(req.module.table_names()) or 'none'}; "
                                   f"another handle's map is --map HANDLE:MAP")
        return bcc_table_fd(req.module, name)
    fd = _referenced_map(req.fd, name)
    if fd is None:
        raise AttachError(f"--map {name}: the program {req.fn} uses no map of that name",
                          hint="name another handle's map as HANDLE:MAP, e.g. --map est:sock_hash")
    return fd


def _referenced_map(prog_fd: int, name: str) -> int | None:
    """A new fd of the map ``name`` that a loaded program uses, found through bpf_prog_info.map_ids."""
    so = libbpf.lib()
    info = (ct.c_uint8 * 64)()          # struct bpf_prog_info up to map_ids
    ids = (ct.c_uint32 * 64)()
    ct.c_uint32.from_buffer(info, 52).value = len(ids)           # nr_map_ids
    ct.c_uint64.from_buffer(info, 56).value = ct.addressof(ids)  # map_ids
    size = ct.c_uint32(len(info))
    if so.bpf_obj_get_info_by_fd(prog_fd, info, ct.byref(size)) != 0:
        return None
    for map_id in ids[:min(ct.c_uint32.from_buffer(info, 52).value, len(ids))]:
        fd = so.bpf_map_get_fd_by_id(map_id)
        if fd < 0:
            continue
        m = _MapInfo()
        msize = ct.c_uint32(ct.sizeof(m))
        if so.bpf_obj_get_info_by_fd(fd, ct.byref(m), ct.byref(msize)) == 0 and m.name.decode() == name[:15]:
            return fd   # the kernel keeps 15 characters of a map's name
        os.close(fd)
    return None


def _resolve(req: Request) -> tuple[int, str, bool]:
    """(map fd, how to show it, whether the fd is ours to close)."""
    from ..session import SESSION

    spec = req.options.map
    if not spec:
        raise AttachError(f"{req.section.name} attaches to a sockmap or sockhash, and the magic line names none",
                          hint="add --map HANDLE:MAP, e.g. --map est:sock_hash, or --map MAP for the cell's own")
    handle_name, sep, name = spec.rpartition(":")
    if not sep:
        return _own_map_fd(req, name), name, req.module is None
    handle = SESSION.get(handle_name)
    if handle is None:
        raise AttachError(f"--map {spec}: no handle {handle_name!r} is loaded",
                          hint=f"loaded: {', '.join(SESSION.names()) or 'nothing'}; run the cell that "
                               f"makes the map first")
    return map_fd(handle, name), spec, False


def _attach_type(section) -> AttachType:
    if section.attach_type is not None:
        return section.attach_type
    hook = section.extras or section.name.partition("/")[2]
    if hook in _SK_SKB_HOOKS:
        return _SK_SKB_HOOKS[hook]
    raise AttachError(f"{section.name} does not say which sk_skb hook",
                      hint="sk_skb/stream_parser, sk_skb/stream_verdict or sk_skb/verdict")


def sockmap(req: Request) -> list[Attachment]:
    """A BPF link of an sk_msg or sk_skb program on the map ``--map`` names."""
    attach_type = _attach_type(req.section)
    fd, where, owned = _resolve(req)
    try:
        kind = _MAP_TYPES.get(map_type(fd))
        if kind is None:
            raise AttachError(f"--map {where} is not a sockmap or sockhash",
                              hint="declare it BPF_SOCKHASH(name, key, n) / BPF_SOCKMAP(name, n) (BCC) or "
                                   "__uint(type, BPF_MAP_TYPE_SOCKHASH) (CO-RE)")
        opts = libbpf.LinkCreateOpts(sz=ct.sizeof(libbpf.LinkCreateOpts))
        link = libbpf.lib().bpf_link_create(req.fd, fd, int(attach_type), ct.byref(opts))
    finally:
        if owned:
            os.close(fd)
    if link < 0:
        err = libbpf.errno_of(link)
        hint = ("one program per hook and map: detach the other one first" if err == errno.EBUSY
                else "sockmap links need Linux 6.10 or newer" if err == errno.EINVAL else "see %bpf_features")
        raise AttachError(f"attaching {req.fn} ({req.section.name}) to {kind} {where}: {libbpf.strerror(err)}",
                          hint=hint)
    return [fd_link(req.section.name, f"{kind} {where}", link)]


def _info(fd: int) -> _MapInfo:
    info = _MapInfo()
    size = ct.c_uint32(ct.sizeof(info))
    libbpf.lib().bpf_obj_get_info_by_fd(fd, ct.byref(info), ct.byref(size))
    return info


def _shared(options) -> tuple[str, int] | None:
    """(MAP, the other handle's fd of it) when --map names another handle's map, else None."""
    from ..session import SESSION

    handle_name, sep, name = (options.map or "").rpartition(":")
    handle = SESSION.get(handle_name) if sep else None
    return (name, map_fd(handle, name)) if handle is not None else None


def _check_same_shape(name: str, mine: int, theirs: int) -> None:
    a, b = _info(mine), _info(theirs)
    if (a.type, a.key_size, a.value_size) != (b.type, b.key_size, b.value_size):
        raise AttachError(f"--map: the cell's map {name} and the handle's differ "
                          f"(type {a.type}/{b.type}, key {a.key_size}/{b.key_size} bytes, "
                          f"value {a.value_size}/{b.value_size} bytes)",
                          hint="declare it in the cell exactly as in the cell that made it")


def share_bcc_maps(module, options) -> None:
    """Before loading: the BCC cell's map MAP becomes HANDLE's map MAP (--map HANDLE:MAP).

    BCC has already written the fd of its own map into the program's bytecode;
    putting the other map on that fd number makes the kernel resolve the program
    to the other map at load time (BCC's own copy is closed: nothing used it yet).
    """
    shared = _shared(options)
    if shared is None or shared[0] not in module.table_names():
        return
    name, theirs = shared
    mine = bcc_table_fd(module, name)
    _check_same_shape(name, mine, theirs)
    os.dup2(theirs, mine, inheritable=False)


def share_core_maps(obj, options) -> None:
    """Before loading: libbpf reuses HANDLE's map for the CO-RE cell's map MAP (bpf_map__reuse_fd)."""
    shared = _shared(options)
    if shared is None:
        return
    name, theirs = shared
    so = libbpf.lib()
    ptr = so.bpf_object__find_map_by_name(obj.ptr, name.encode())
    if ptr and so.bpf_map__reuse_fd(ptr, theirs) != 0:
        raise AttachError(f"--map: libbpf could not reuse the handle's map {name} for the cell's",
                          hint="declare it in the cell exactly as in the cell that made it")
