"""Socket filters: ``SO_ATTACH_BPF`` on a packet socket the lab opens on the interface.

The socket is made inside the host's namespace with protocol 0, which
receives nothing, then filtered, then bound to the interface for every
protocol: no packet reaches it unfiltered. What the filter keeps (its return
value: bytes to keep, 0 drops) queues on the socket until ``h.packets()``.
"""
from __future__ import annotations

import socket
import struct

from ..errors import AttachError
from .base import Request
from .net import NetAttachment, device

SO_ATTACH_BPF = 50
ETH_P_ALL = 0x0003
_RCVBUF = 8 << 20
SO_RCVBUFFORCE = 33


def socket_filter(req: Request) -> list[NetAttachment]:
    dev = device(req, "socket")

    def open_filtered():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
            s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, struct.pack("i", req.fd))
            s.bind((_ifname(dev.ifindex), ETH_P_ALL))
        except OSError:
            s.close()
            raise
        return s

    try:
        sock = dev.run(open_filtered)
    except OSError as exc:
        raise AttachError(f"attaching socket filter {req.fn} to a packet socket on {dev.label}: {exc.strerror}",
                          hint="socket filters take struct __sk_buff *skb and return the bytes to keep") from None
    sock.setblocking(False)
    return [NetAttachment("socket", f"{dev.label} (packet socket)", sock.close, fd=sock.fileno(),
                          target=dev.network, sock=sock)]


def _ifname(ifindex: int) -> str:
    return socket.if_indextoname(ifindex)   # in the calling thread's namespace
