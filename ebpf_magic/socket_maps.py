"""Putting a socket the lab opened into a program's sockmap or sockhash, from Python.

An sk_lookup program steers a connection to a socket it finds in a map
(``bpf_map_lookup_elem`` then ``bpf_sk_assign``); the map's value, written from
user space, is the socket's fd: the kernel stores the socket itself, so the
map keeps pointing at it however the fd is numbered later. The kernel takes a
TCP socket that listens or is connected, and a bound UDP socket.
"""
from __future__ import annotations

import ctypes as ct
import socket

from . import libbpf
from .errors import MapError, UsageError

_SOCK_MAPS = {15: "sockmap", 18: "sockhash"}   # BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH


def _fileno(sock) -> int:
    if isinstance(sock, int) and sock >= 0:
        return sock
    fileno = getattr(sock, "fileno", None)
    fd = fileno() if callable(fileno) else -1
    if not isinstance(fd, int) or fd < 0:
        raise UsageError(f"put_socket takes a socket (or its fd), not {type(sock).__name__}"
                         + (" (it is closed)" if isinstance(sock, socket.socket) else ""),
                         hint='srv = net.listen("b", 7777); h.put_socket("socks", 0, srv)')
    return fd


def _key_bytes(key, size: int, where: str) -> bytes:
    if isinstance(key, (bytes, bytearray)):
        data = bytes(key)
    elif isinstance(key, int) and not isinstance(key, bool):
        try:
            data = key.to_bytes(size, "little")
        except OverflowError:
            raise UsageError(f"key {key} does not fit the {size}-byte key of {where}",
                             hint="a sockmap's key is the index 0 .. max_entries-1") from None
    elif isinstance(key, ct.Structure):
        data = bytes(key)
    else:
        raise UsageError(f"a key of {where} is an int, bytes or a ctypes Structure, not {type(key).__name__}",
                         hint='h.put_socket("socks", 0, srv)')
    if len(data) != size:
        raise UsageError(f"the key is {len(data)} bytes; {where} has {size}-byte keys",
                         hint="pack it as the map's key struct (struct.pack or a ctypes Structure)")
    return data


def put_socket(handle, map_name: str, key, sock) -> None:
    """``handle[map_name][key] = sock`` for a sockmap or sockhash: the program can now find ``sock``."""
    from .attach.sockmap import _info, map_fd

    handle._alive()
    fd = map_fd(handle, map_name)
    info = _info(fd)
    where = f"{handle.name}[{map_name!r}]"
    kind = _SOCK_MAPS.get(info.type)
    if kind is None:
        raise MapError(f"{where} is not a sockmap or sockhash (map type {info.type})",
                       hint="declare it __uint(type, BPF_MAP_TYPE_SOCKMAP) (CO-RE) or "
                            "BPF_TABLE(\"sockmap\", u32, u64, socks, 4) (BCC)")
    k = _key_bytes(key, info.key_size, where)
    value = _fileno(sock).to_bytes(info.value_size, "little")
    kbuf, vbuf = ct.create_string_buffer(k, len(k)), ct.create_string_buffer(value, len(value))
    ret = libbpf.lib().bpf_map_update_elem(fd, kbuf, vbuf, 0)
    if ret < 0:
        err = libbpf.errno_of(ret)
        raise MapError(f"putting the socket into {kind} {where}: {libbpf.strerror(err)}",
                       hint="a TCP socket must listen or be connected, a UDP socket be bound; an index of a "
                            f"sockmap is below max_entries ({info.max_entries}); the value is 4 or 8 bytes")


def remove_socket(handle, map_name: str, key) -> None:
    """Take the socket under ``key`` out of the map again."""
    from .attach.sockmap import _info, map_fd

    handle._alive()
    fd = map_fd(handle, map_name)
    info = _info(fd)
    k = _key_bytes(key, info.key_size, f"{handle.name}[{map_name!r}]")
    kbuf = ct.create_string_buffer(k, len(k))
    if libbpf.lib().bpf_map_delete_elem(fd, kbuf) < 0:
        raise MapError(f"{handle.name}[{map_name!r}] holds no socket under key {key!r}",
                       hint="put one first: h.put_socket(map, key, sock)")
