"""Traffic between lab hosts, returned as DataFrames.

Every socket is made in a thread inside the sending or receiving host's
namespace and keeps that namespace for its life, so sender and receiver run
from this process without any binary: there is no ping here, so ICMP echo
goes through a raw socket with packets built and parsed by scapy. Waits end
when the expected packets are in; ``timeout`` bounds only the failing case.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time

from .errors import UsageError


def _count(value, what: str, limit: int = 10_000_000) -> int:
    if not isinstance(value, int) or not 0 < value <= limit:
        raise UsageError(f"{what}={value!r} must be a whole number from 1 to {limit}", hint=f"e.g. {what}=10")
    return value


def _frame(rows, columns, **attrs):
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    df.attrs.update(attrs)
    return df


def ping(net, src: str, dst: str, count: int = 5, *, ipv6: bool = False, size: int = 56,
         interval: float = 0.0, timeout: float = 1.0):
    """ICMP echo from ``src`` to ``dst``: one row per request (seq, bytes, replied, rtt_ms)."""
    from scapy.layers.inet import ICMP
    from scapy.layers.inet6 import ICMPv6EchoRequest

    count = _count(count, "count")
    addr = net.address(dst, ipv6=ipv6, toward=src)
    ident = os.getpid() & 0xFFFF
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    family, proto = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if ipv6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    sock = net.run_in(src, socket.socket, family, socket.SOCK_RAW, proto)
    sent: dict[int, float] = {}
    rtt: dict[int, float] = {}
    with sock:
        for seq in range(count):
            msg = (ICMPv6EchoRequest(id=ident, seq=seq) if ipv6 else ICMP(id=ident, seq=seq)) / payload
            # The kernel fills the ICMPv6 checksum of a raw socket; ICMPv4's is computed by scapy.
            sent[seq] = time.perf_counter()
            sock.sendto(bytes(msg), (addr, 0))
            if interval:
                _receive_until(sock, time.perf_counter() + interval, count, lambda d: _echo_reply(d, ipv6, ident),
                               sent, rtt)
        _receive_until(sock, time.perf_counter() + timeout, count, lambda d: _echo_reply(d, ipv6, ident),
                       sent, rtt)
    rows = [(seq, size, seq in rtt, rtt.get(seq, float("nan")) * 1e3) for seq in range(count)]
    return _frame(rows, ["seq", "bytes", "replied", "rtt_ms"], src=src, dst=dst, address=addr,
                  sent=count, received=len(rtt))


def _echo_reply(data: bytes, ipv6: bool, ident: int) -> int | None:
    """The seq of an echo reply to us, or None."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.inet6 import ICMPv6EchoReply

    if ipv6:  # a raw ICMPv6 socket reads from the ICMPv6 header on
        pkt = ICMPv6EchoReply(data) if data[:1] == b"\x81" else None
        return pkt.seq if pkt is not None and pkt.id == ident else None
    pkt = IP(data)
    if ICMP in pkt and pkt[ICMP].type == 0 and pkt[ICMP].id == ident:
        return pkt[ICMP].seq
    return None


def _receive_until(sock, deadline: float, count: int, parse, sent: dict, got: dict) -> None:
    while len(got) < count:
        left = deadline - time.perf_counter()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return
        data = sock.recv(65535)
        now = time.perf_counter()
        seq = parse(data)
        if seq is not None and seq in sent and seq not in got:
            got[seq] = now - sent[seq]


def udp(net, src: str, dst: str, count: int = 10, *, size: int = 64, port: int = 9000, ipv6: bool = False,
        interval: float = 0.0, timeout: float = 1.0):
    """UDP datagrams from ``src`` to ``dst``: one row per datagram (seq, bytes, received, latency_ms)."""
    import struct

    count = _count(count, "count")
    if not 8 <= size <= 65000:
        raise UsageError(f"size={size} must be from 8 to 65000 bytes", hint="size=64")
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    addr = net.address(dst, ipv6=ipv6, toward=src)
    rx = net.run_in(dst, socket.socket, family, socket.SOCK_DGRAM)
    tx = net.run_in(src, socket.socket, family, socket.SOCK_DGRAM)
    sent: dict[int, float] = {}
    got: dict[int, float] = {}
    sizes: dict[int, int] = {}
    with rx, tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        rx.bind((addr, port))
        pad = bytes(size - 8)

        def parse(data):
            if len(data) < 8:
                return None
            seq = struct.unpack("!Q", data[:8])[0]
            sizes[seq] = len(data)
            return seq

        for seq in range(count):
            sent[seq] = time.perf_counter()
            tx.sendto(struct.pack("!Q", seq) + pad, (addr, port))
            if interval:
                _receive_until(rx, time.perf_counter() + interval, count, parse, sent, got)
            elif seq % 256 == 255:  # keep the receive queue short on long runs
                _receive_until(rx, time.perf_counter(), count, parse, sent, got)
        _receive_until(rx, time.perf_counter() + timeout, count, parse, sent, got)
    rows = [(seq, sizes.get(seq, size), seq in got, got.get(seq, float("nan")) * 1e3) for seq in range(count)]
    return _frame(rows, ["seq", "bytes", "received", "latency_ms"], src=src, dst=dst, address=addr, port=port,
                  sent=count, received=len(got))


def tcp(net, src: str, dst: str, *, nbytes: int = 1 << 20, duration: float | None = None, port: int = 9001,
        ipv6: bool = False, every: float = 0.1, timeout: float = 10.0):
    """A TCP transfer from ``src`` to ``dst`` (``nbytes``, or for ``duration`` s).

    One row per ``every`` seconds of the receiver: t (s), bytes, Mbit/s; attrs hold the totals.
    """
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    addr = net.address(dst, ipv6=ipv6, toward=src)
    lsock = net.run_in(dst, socket.socket, family, socket.SOCK_STREAM)
    csock = net.run_in(src, socket.socket, family, socket.SOCK_STREAM)
    rows: list[tuple[float, int, float]] = []
    result = {"sent": 0, "error": None}
    with lsock, csock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((addr, port))
        lsock.listen(1)
        csock.settimeout(timeout)
        csock.connect((addr, port))
        conn, _ = lsock.accept()

        def send():
            chunk, end = bytes(65536), time.monotonic() + (duration or 0)
            try:
                while (time.monotonic() < end) if duration else result["sent"] < nbytes:
                    n = len(chunk) if duration else min(len(chunk), nbytes - result["sent"])
                    result["sent"] += csock.send(chunk[:n])
            except OSError as exc:
                result["error"] = exc
            finally:
                csock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        start = time.perf_counter()
        sender.start()
        with conn:
            conn.settimeout(timeout)
            tick, acc, total = start + every, 0, 0
            while True:
                data = conn.recv(1 << 20)
                now = time.perf_counter()
                while now >= tick:
                    rows.append((round(tick - start, 6), acc, acc * 8 / every / 1e6))
                    tick, acc = tick + every, 0
                if not data:
                    break
                acc += len(data)
                total += len(data)
            elapsed = time.perf_counter() - start
            if acc:
                rows.append((round(elapsed, 6), acc, acc * 8 / max(elapsed - (tick - every - start), 1e-9) / 1e6))
        sender.join()
    return _frame(rows, ["t", "bytes", "mbit_s"], src=src, dst=dst, sent=result["sent"], received=total,
                  seconds=elapsed, mbit_s=total * 8 / elapsed / 1e6)


class Flood:
    """UDP sent as fast as one thread can, in the background; ``wait()`` gives sent per ``every`` s."""

    def __init__(self, net, src: str, dst: str, duration: float, size: int, port: int, every: float):
        addr = net.address(dst, toward=src)
        self._sock = net.run_in(src, socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
        self._rows: list[tuple[float, int]] = []
        self._attrs = {"src": src, "dst": dst, "address": addr, "port": port, "size": size}

        def send():
            payload, start = bytes(size), time.perf_counter()
            tick, n, total = start + every, 0, 0
            with self._sock:
                while (now := time.perf_counter()) < start + duration:
                    while now >= tick:   # a starved thread may miss ticks: each still gets its row
                        self._rows.append((round(tick - start, 6), n))
                        tick, n = tick + every, 0
                    try:
                        self._sock.sendto(payload, (addr, port))
                        n += 1
                        total += 1
                    except OSError:   # a full queue: count only what left
                        pass
            end = time.perf_counter()
            while tick <= end:
                self._rows.append((round(tick - start, 6), n))
                tick, n = tick + every, 0
            if n:
                self._rows.append((round(end - start, 6), n))
            self._attrs["sent"] = total

        self._thread = threading.Thread(target=send, name="ebpf-magic-flood", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self):
        self._thread.join()
        return _frame(self._rows, ["t", "sent"], **self._attrs)


def flood(net, src: str, dst: str, duration: float = 2.0, *, size: int = 64, port: int = 9000,
          every: float = 0.1) -> Flood:
    """Start a UDP flood from ``src`` to ``dst`` for ``duration`` s; read maps meanwhile, then ``wait()``."""
    if not 0 < duration <= 600:
        raise UsageError(f"duration={duration} must be from 0 to 600 s", hint="duration=2")
    if not 8 <= size <= 65000:
        raise UsageError(f"size={size} must be from 8 to 65000 bytes", hint="size=64")
    return Flood(net, src, dst, duration, size, port, every)


def run(net, host: str, cmd, timeout: float = 30.0) -> str:
    """Run a command inside ``host``'s namespace; returns its output (stdout then stderr).

    On timeout its whole process group is killed: a process left running would keep the
    host's namespace alive after the lab closed it.
    """
    def start():
        # The child inherits this thread's namespace.
        return subprocess.Popen(cmd, shell=isinstance(cmd, str), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    try:
        proc = net.run_in(host, start)
    except FileNotFoundError as exc:
        raise UsageError(f"net.run: no program {exc.filename!r}", hint="give the full path, or a shell string") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise UsageError(f"net.run({host!r}, {cmd!r}) ran over {timeout} s", hint="raise timeout=") from None
    return out + err
