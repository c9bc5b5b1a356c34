"""BPF perf buffers read through their mapped per-CPU rings, a batch of records per numpy operation.

A BPF_MAP_TYPE_PERF_EVENT_ARRAY holds, per CPU, the fd of a perf event that
``bpf_perf_event_output`` writes into: a ``PERF_COUNT_SW_BPF_OUTPUT``
software event sampling ``PERF_SAMPLE_RAW``, whose ring user space maps
(include/uapi/linux/perf_event.h): one metadata page (``struct
perf_event_mmap_page``: ``data_head`` written by the kernel, ``data_tail`` by
the reader, ``data_offset``/``data_size``), then 2^n data pages, mapped once,
so a record may wrap. Records start with ``struct perf_event_header`` (u32
type, u16 misc, u16 size); a sample is that header, a u32 size and the raw
bytes (padded to 8 bytes, the padding included in the size); a lost record
is the header, a u64 id and a u64 count of records the kernel dropped
because the ring was full.

Memory ordering as in ``ringbuf``: numpy loads/stores on the shared page,
plain acquire/release on x86; the tail is written after the records were
copied out.
"""
from __future__ import annotations

import ctypes as ct
import fcntl
import mmap
import os
import select

import numpy as np

from . import libbpf
from .errors import MapError
from .records import BufferReader

TYPE_SOFTWARE = 1
COUNT_SW_BPF_OUTPUT = 10
SAMPLE_RAW = 1 << 10
RECORD_LOST = 2
RECORD_SAMPLE = 9
_IOC_ENABLE = 0x2400
# offsets in struct perf_event_mmap_page
_DATA_HEAD, _DATA_TAIL, _DATA_OFFSET, _DATA_SIZE = 1024, 1032, 1040, 1048
_SAMPLE_HEAD = 12  # perf_event_header + u32 raw size
_PROBE = 8


def parse_perf(window: np.ndarray, sink) -> int:
    """Hand the samples in ``window`` (whole records, ``uint8``) to ``sink`` and lost counts to ``sink.lost``.

    Runs of samples of one size go to ``sink.add_rows`` as one strided view.
    Returns the bytes parsed (all of them unless a record is malformed).
    """
    off, end = 0, len(window)
    while end - off >= 8:
        head = window[off:off + 8]
        kind = int(head[:4].view("<u4")[0])
        size = int(head[6:8].view("<u2")[0])
        if size < 8 or size > end - off:
            break  # never seen from a sane kernel; stop rather than loop or read past the head
        if kind != RECORD_SAMPLE:
            if kind == RECORD_LOST and size >= 24:
                sink.lost(int(window[off + 16:off + 24].view("<u8")[0]))
            off += size
            continue
        fits = (end - off) // size
        block = window[off:off + fits * size].reshape(fits, size)
        n = _run_length(block, size)
        if size > _SAMPLE_HEAD:
            sink.add_rows(block[:n, _SAMPLE_HEAD:])
        off += n * size
    return off


def _run_length(block: np.ndarray, size: int) -> int:
    """How many leading rows are samples of ``size`` bytes (type and size compared as one u64)."""
    want = np.uint64(RECORD_SAMPLE | size << 48)
    heads = block[:, :8].view("<u8")[:, 0]
    for probe in (heads[:_PROBE], heads):
        other = (probe & np.uint64(0xFFFF0000FFFFFFFF)) != want
        if np.count_nonzero(other):
            return int(other.argmax())
        if len(probe) == len(heads):
            break
    return len(heads)


class _CpuRing:
    def __init__(self, fd: int, pages: int):
        self.fd = fd
        page = mmap.PAGESIZE
        self.map = mmap.mmap(fd, (1 + pages) * page, access=mmap.ACCESS_WRITE)
        meta = np.frombuffer(self.map, "<u8", count=_DATA_SIZE // 8 + 1)
        offset, size = int(meta[_DATA_OFFSET // 8]), int(meta[_DATA_SIZE // 8])
        if not size:  # kernels before 4.1 leave them 0: data follows the first page
            offset, size = page, pages * page
        self.head = meta[_DATA_HEAD // 8:_DATA_HEAD // 8 + 1]
        self.tail = meta[_DATA_TAIL // 8:_DATA_TAIL // 8 + 1]
        self.data = np.frombuffer(self.map, np.uint8, count=size, offset=offset)
        self.size = size

    def consume(self, sink) -> int:
        head = int(self.head[0])
        tail = int(self.tail[0])
        if head == tail:
            return 0
        start, n = tail % self.size, head - tail
        if start + n <= self.size:
            window = self.data[start:start + n]
        else:  # the ring is mapped once: join the two pieces of a wrapped batch
            window = np.concatenate((self.data[start:], self.data[:start + n - self.size]))
        used = parse_perf(window, sink)
        self.tail[0] = head  # past a malformed record too, or it would block the ring for good
        return used

    def close(self) -> None:
        self.head = self.tail = self.data = None
        self.map.close()
        os.close(self.fd)


class PerfReader(BufferReader):
    """The per-CPU rings of one perf event array, open and in the map's slots until ``close()``."""

    def __init__(self, map_fd: int, cpus: list[int], page_cnt: int, name: str = "perf buffer"):
        from .attach.perf import perf_event_open

        self._map_fd, self._name = map_fd, name
        self._rings: dict[int, _CpuRing] = {}
        self._epoll = select.epoll()
        try:
            for cpu in cpus:
                fd = perf_event_open(TYPE_SOFTWARE, COUNT_SW_BPF_OUTPUT, cpu=cpu, period=1,
                                     sample_type=SAMPLE_RAW)
                try:
                    ring = _CpuRing(fd, page_cnt)
                except OSError:
                    os.close(fd)
                    raise
                self._rings[cpu] = ring
                fcntl.ioctl(fd, _IOC_ENABLE, 0)
                self._epoll.register(fd, select.EPOLLIN)
                key, value = ct.c_uint32(cpu), ct.c_uint32(fd)
                ret = libbpf.lib().bpf_map_update_elem(map_fd, ct.byref(key), ct.byref(value), 0)
                if ret != 0:
                    raise OSError(libbpf.errno_of(ret), f"putting CPU {cpu}'s buffer in the map")
        except OSError as exc:
            self.close()
            raise MapError(f"could not open {name}: {exc.strerror or exc}",
                           hint="perf buffers need perf_event_open (root, or perf_event_paranoid <= 1)") from None

    def consume(self, sink) -> int:
        return sum(ring.consume(sink) for ring in self._rings.values())

    def _release(self) -> None:
        """Empty the map's slots (the program's later outputs go nowhere) and release every ring."""
        so = libbpf.lib()
        for cpu, ring in self._rings.items():
            so.bpf_map_delete_elem(self._map_fd, ct.byref(ct.c_uint32(cpu)))
            ring.close()
        self._rings.clear()
