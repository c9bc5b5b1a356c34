"""BPF ring buffers read through their mapped pages, a batch of records per numpy operation.

The kernel's layout (kernel/bpf/ringbuf.c): page 0 holds the consumer
position (user space writes it), page 1 the producer position, then the data
area, mapped twice in a row so a record that wraps past the end is still
contiguous. Each record starts 8-byte aligned with an 8-byte header: a u32
length whose bit 31 says "still being written" (BUSY) and bit 30 "thrown
away" (DISCARD), then a u32 page offset the kernel uses. Positions only grow;
``pos & (size - 1)`` is the offset in the data area.

A reader takes everything between the two positions, stops at the first busy
record (records after it may be committed, but the consumer position cannot
pass it), hands the committed ones to the sink and then publishes the new
consumer position once, which is what lets the producer reuse the space.

Memory ordering: the positions and headers are read through numpy views of
the shared pages. On x86 (TSO) plain loads have acquire and plain stores
release semantics, which is what libbpf's smp_load_acquire/smp_store_release
amount to there. The consumer position is written only after the records
were copied out.
"""
from __future__ import annotations

import mmap
import select

import numpy as np

from .errors import MapError
from .records import BufferReader

BUSY = 1 << 31
DISCARD = 1 << 30
HEADER = 8
# Records checked for "same size as the first" before testing a whole batch:
# mixed sizes then cost a few elements per record, not a batch each.
_PROBE = 8


def parse_ring(window: np.ndarray, sink) -> int:
    """Hand the committed records at the start of ``window`` to ``sink``; the bytes consumed.

    ``window`` is the data area from the consumer to the producer position
    (``uint8``, contiguous, starting at a record header, a multiple of 8
    bytes long). Runs of records of one length go to ``sink.add_rows`` as one
    strided view; discarded records are skipped; parsing stops at a busy
    record or an incomplete tail.
    """
    words = window[:len(window) & ~7].view("<u4")  # headers are 8-aligned
    off, end = 0, len(words) * 4
    while end - off >= HEADER:
        first = int(words[off >> 2])
        if first & BUSY:
            break
        length = first & ~DISCARD
        step = (length + HEADER + 7) & ~7
        if end - off < step:
            break  # only whole records
        fits = (end - off) // step
        lens = words[off >> 2:(off + fits * step) >> 2:step >> 2]
        n = _run_length(lens, first)
        if first & DISCARD:
            off += n * step  # a run of discarded records of one length
            continue
        block = window[off:off + n * step].reshape(n, step)
        sink.add_rows(block[:, HEADER:HEADER + length])
        off += n * step
    return off


def _run_length(lens: np.ndarray, header: int) -> int:
    """How many leading headers equal ``header`` (the first one does).

    A short prefix first, so records of changing sizes cost a few elements
    each rather than a scan of the whole batch; ``count_nonzero`` is the
    cheapest whole-array test numpy has, and the uniform batch needs only it.
    """
    for probe in (lens[:_PROBE], lens):
        other = probe != header
        if np.count_nonzero(other):
            return int(other.argmax())
        if len(probe) == len(lens):
            break
    return len(lens)


class RingReader(BufferReader):
    """One BPF_MAP_TYPE_RINGBUF map, mapped into this process until ``close()``."""

    def __init__(self, map_fd: int, size: int, name: str = "ring buffer"):
        if size <= 0 or size & (size - 1):
            raise MapError(f"{name}: ring buffer size {size} is not a power of two")
        page = mmap.PAGESIZE
        self._maps: list[mmap.mmap] = []
        self._epoll = None
        try:
            cons = mmap.mmap(map_fd, page, access=mmap.ACCESS_WRITE, offset=0)
            self._maps.append(cons)
            prod = mmap.mmap(map_fd, page + 2 * size, access=mmap.ACCESS_READ, offset=page)
            self._maps.append(prod)
            self._epoll = select.epoll()
            self._epoll.register(map_fd, select.EPOLLIN)
        except OSError as exc:
            self.close()
            raise MapError(f"could not map {name}: {exc.strerror}",
                           hint="ring buffers can be mapped since Linux 5.8; is the program still loaded?") from None
        self._cons = np.frombuffer(cons, "<u8", count=1)
        self._prod = np.frombuffer(prod, "<u8", count=1)
        self._data = np.frombuffer(prod, np.uint8, offset=page)
        self._mask = size - 1

    def consume(self, sink) -> int:
        """Read what is committed now; returns the bytes consumed."""
        cons = int(self._cons[0])
        prod = int(self._prod[0])
        if prod == cons:
            return 0
        start = cons & self._mask
        used = parse_ring(self._data[start:start + (prod - cons)], sink)
        if used:
            self._cons[0] = cons + used
        return used

    def _release(self) -> None:
        # numpy views pin the mappings: drop them before unmapping
        self._cons = self._prod = self._data = None
        for m in self._maps:
            m.close()
        self._maps.clear()
