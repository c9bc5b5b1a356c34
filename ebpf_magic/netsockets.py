"""Sockets in lab hosts for socket-steering programs (sk_lookup, sk_reuseport), and raw frames.

``net.listen("b", 7777)`` opens a listening socket inside host b; the
learner's program decides which connections reach it.
``net.connect("a", "b", ports, listeners)`` then connects from a to each port
of b and reports, per port, which of the listeners accepted it and the port the
accepted socket reports as its own (the one the client dialled, whatever port
the listener is bound to). ``net.send_frames`` sends crafted Ethernet frames
from a packet socket on a host's interface (the kernel's flow dissector runs on
each one as it leaves).
"""
from __future__ import annotations

import select
import socket
import time

from .errors import UsageError


def listen(net, host: str, port: int = 0, *, udp: bool = False, ipv6: bool = False, reuseport: bool = False,
           backlog: int = 128) -> socket.socket:
    """A TCP socket listening (or a UDP socket bound) on every address of ``host``, on ``port`` (0: any)."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"port={port!r} must be a whole number from 0 to 65535", hint="net.listen('b', 7777)")
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    sock = net.run_in(host, socket.socket, family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::" if ipv6 else "0.0.0.0", port))
        if not udp:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host} port {port}: {exc.strerror}",
                         hint="another lab socket holds the port: close it, or pick another") from None
    return sock


def connect(net, src: str, dst: str, ports, listeners=(), *, udp: bool = False, ipv6: bool = False,
            timeout: float = 2.0):
    """Connect (or, with ``udp``, send one datagram) from ``src`` to each port of ``dst``.

    One row per port: result ("accepted", "refused", "timeout", or for UDP "received",
    "no listener got it"), listener (index into ``listeners``, or None), listener_port, local_port
    (TCP: the port the accepted socket reports), error. Every connection is closed again.
    """
    import pandas as pd

    ports = [ports] if isinstance(ports, int) else list(ports)
    listeners = list(listeners)
    for p in ports:
        if not isinstance(p, int) or not 1 <= p <= 65535:
            raise UsageError(f"port {p!r} must be a whole number from 1 to 65535", hint="ports=range(7000, 7010)")
    addr = net.address(dst, ipv6=ipv6, toward=src)
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    rows = []
    for port in ports:
        if udp:
            rows.append(_send_one(net, src, family, addr, port, listeners, timeout))
        else:
            rows.append(_connect_one(net, src, family, addr, port, listeners, timeout))
    df = pd.DataFrame(rows, columns=["port", "result", "listener", "listener_port", "local_port", "error"])
    df.attrs.update(src=src, dst=dst, address=addr, protocol="udp" if udp else "tcp")
    return df


def _connect_one(net, src, family, addr, port, listeners, timeout) -> dict:
    row = {"port": port, "result": "accepted", "listener": None, "listener_port": None, "local_port": None,
           "error": ""}
    with net.run_in(src, socket.socket, family, socket.SOCK_STREAM) as c:
        c.settimeout(timeout)
        try:
            c.connect((addr, port))
        except ConnectionRefusedError:
            return {**row, "result": "refused", "error": "ECONNREFUSED"}
        except TimeoutError:
            return {**row, "result": "timeout", "error": "no SYN-ACK (dropped?)"}
        except OSError as exc:
            return {**row, "result": "error", "error": exc.strerror or str(exc)}
        ready = select.select(listeners, [], [], timeout)[0] if listeners else []
        if not ready:
            return {**row, "result": "accepted elsewhere", "error": "no listener of the list accepted it"}
        which = listeners.index(ready[0])
        conn, _ = ready[0].accept()
        with conn:
            return {**row, "listener": which, "listener_port": ready[0].getsockname()[1],
                    "local_port": conn.getsockname()[1]}


def _send_one(net, src, family, addr, port, listeners, timeout) -> dict:
    row = {"port": port, "result": "received", "listener": None, "listener_port": None, "local_port": None,
           "error": ""}
    token = f"lab-{port}-{time.monotonic_ns()}".encode()
    with net.run_in(src, socket.socket, family, socket.SOCK_DGRAM) as c:
        c.sendto(token, (addr, port))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready = select.select(listeners, [], [], left)[0] if listeners else []
            if not ready:
                break
            for sock in ready:
                if sock.recv(65535) == token:
                    return {**row, "listener": listeners.index(sock), "listener_port": sock.getsockname()[1]}
    return {**row, "result": "no listener got it"}


def send_frames(net, host: str, frames, iface: str | None = None) -> int:
    """Send Ethernet frames (bytes or scapy packets) out of ``host``'s interface; returns how many."""
    spec = f"{host}:{iface}" if iface else host
    ifname = net.interface(spec).name
    data = [bytes(f) for f in ([frames] if isinstance(frames, (bytes, bytearray)) or hasattr(frames, "build")
                               else frames)]
    if any(len(d) < 14 for d in data):
        raise UsageError("a frame needs an Ethernet header (14 bytes)", hint="Ether()/IP()/UDP()")

    def send():
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
            s.bind((ifname, 0))
            for d in data:
                s.send(d)

    net.run_in(host, send)
    return len(data)
