"""Records from ring and perf buffers: where they land, how long to poll, what the frame says.

Engine-neutral: both engines read their buffers with ``ringbuf.RingReader``
and ``perfbuf.PerfReader`` (the mapped pages, parsed a batch at a time) and
hand ``poll_records`` two callables; the policy is:

* poll in short slices, so the deadline and ``max_events`` are honoured
  promptly and Ctrl-C is seen between slices (``attrs["interrupted"]``);
* stop as soon as the sink holds ``max_events`` records;
* then drain what is already committed once, unless the sink is full (a fast
  producer could otherwise keep the drain busy for long).

The readers copy whole batches of records (rows of a numpy view of the
mapped buffer) into growing numpy chunks; decoding into columns happens
once, in bulk, after the buffer is closed. Memory is bounded by
``max_events``.
"""
from __future__ import annotations

import numbers
import time
from collections.abc import Callable

import numpy as np

from .uapi import MapType

POLL_SLICE_MS = 100
_FIRST_CHUNK = 1024

# The ``source`` attr of each map type that carries records.
SOURCES = {MapType.RINGBUF: "ringbuf", MapType.PERF_EVENT_ARRAY: "perf"}


class BufferReader:
    """What the ring and perf buffer readers share: wait in epoll, then read; close.

    The wait is libbpf's (``ring_buffer__poll``, ``perf_buffer__poll``):
    ``epoll_wait`` on the buffer's fds, level-triggered, then read everything
    committed. While records wait, ``epoll_wait`` returns at once, so a
    steady stream is read a batch per call; an empty buffer puts the reader
    to sleep until the kernel's wake-up (a ring buffer wakes its reader when
    a record is committed into a buffer the reader had emptied; a perf buffer
    on every sample, ``wakeup_events = 1``).
    """

    _epoll = None

    def consume(self, sink) -> int:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def poll(self, timeout_ms: int, sink) -> int:
        """Wait up to ``timeout_ms`` for records, then hand what is committed to ``sink``; the bytes read."""
        self._epoll.poll(timeout_ms / 1000)
        return self.consume(sink)

    def close(self) -> None:
        self._release()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_limits(max_events: int, page_cnt: int) -> None:
    """Reject limits the buffers cannot honour, before anything is opened."""
    if not _whole(max_events) or max_events < 1:
        raise ValueError(f"max_events must be a whole number of at least 1, got {max_events!r}")
    if not _whole(page_cnt) or page_cnt < 1 or page_cnt & (page_cnt - 1):
        raise ValueError(f"page_cnt must be a power of two, got {page_cnt!r}")


def _whole(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


class RecordSink:
    """Fixed-size records copied into growing numpy chunks, at most ``limit`` of them.

    Also counts what did not make it: ``dropped`` (arrived after the limit),
    ``short`` (shorter than a record, zero-filled) and ``kernel_lost`` (what
    the kernel reported lost because a perf buffer was full).
    """

    def __init__(self, rec_size: int, limit: int):
        self.rec = rec_size
        self.limit = limit
        self.n = 0
        self.dropped = 0
        self.short = 0
        self.kernel_lost = 0
        self.chunks: list[np.ndarray] = []
        self._ptr = 0
        self._room = 0

    def add_rows(self, rows: np.ndarray) -> None:
        """Keep records given as the rows of a 2-D ``uint8`` array (any strides), up to the limit.

        Rows longer than a record are cut to it (a perf buffer pads records
        to 8 bytes); shorter ones are zero-filled and counted as ``short``.
        """
        count = len(rows)
        take = min(count, self.limit - self.n)
        self.dropped += count - take
        width = min(rows.shape[1], self.rec)
        if width < self.rec:
            self.short += take
        done = 0
        while done < take:
            if self._room == 0:
                # geometric growth keeps allocations few without reserving limit * rec up front
                n_rows = min(self.limit - self.n, max(_FIRST_CHUNK, self.n))
                self.chunks.append(np.zeros((n_rows, self.rec), np.uint8))
                self._ptr, self._room = 0, n_rows
            step = min(take - done, self._room)
            self.chunks[-1][self._ptr:self._ptr + step, :width] = rows[done:done + step, :width]
            self._ptr += step
            self._room -= step
            self.n += step
            done += step

    def lost(self, count: int) -> None:
        self.kernel_lost += int(count)

    def bytes(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros(0, np.uint8)
        whole = self.chunks[0] if len(self.chunks) == 1 else np.concatenate(self.chunks)
        return whole.reshape(-1)[: self.n * self.rec]


class RawSink(RecordSink):
    """For records of unknown type: each one kept as ``bytes`` of its own length."""

    def __init__(self, limit: int):
        super().__init__(0, limit)
        self.records: list[bytes] = []

    def add_rows(self, rows: np.ndarray) -> None:
        take = min(len(rows), self.limit - self.n)
        self.dropped += len(rows) - take
        self.records.extend(r.tobytes() for r in rows[:take])
        self.n += take


def deadline_slices(duration: float, sink: RecordSink):
    """Poll timeouts in ms until ``duration`` seconds pass or the sink is full."""
    end = time.monotonic() + max(0.0, duration)
    while sink.n < sink.limit:
        left = end - time.monotonic()
        if left <= 0:
            return
        yield max(1, min(POLL_SLICE_MS, int(left * 1000)))


def poll_records(sink: RecordSink, duration: float, poll: Callable[[int], object],
                 consume: Callable[[], object]) -> bool:
    """Run the polling policy on an open buffer; True if Ctrl-C stopped it.

    ``poll(timeout_ms)`` waits for records and hands them to ``sink``;
    ``consume()`` hands over whatever is already committed without waiting.
    """
    interrupted = False
    try:
        for timeout in deadline_slices(duration, sink):
            poll(timeout)
    except KeyboardInterrupt:
        interrupted = True
    # What is already committed counts, if only as dropped_by_limit; a full
    # sink would only turn it into drops.
    if sink.n < sink.limit:
        consume()
    return interrupted


def open_reader(map_type: int, map_fd: int, page_cnt: int, name: str):
    """A ``RingReader`` or ``PerfReader`` on the buffer behind ``map_fd``; close it (``with``) when done.

    Both engines come here, with the map's fd. A perf buffer takes records
    only from here on; a ring buffer has kept them all along.
    """
    from .maps import _map_info, online_cpus
    from .perfbuf import PerfReader
    from .ringbuf import RingReader

    size = _map_info(map_fd).max_entries
    if map_type == MapType.RINGBUF:
        return RingReader(map_fd, size, name)
    # the map has a slot per possible CPU; records come only from online ones
    return PerfReader(map_fd, [c for c in online_cpus() if c < size], page_cnt, name)


def read_buffer(reader, sink: RecordSink, duration: float) -> bool:
    """Poll an open reader under the policy above; True if Ctrl-C stopped it."""
    return poll_records(sink, duration, lambda timeout: reader.poll(timeout, sink), lambda: reader.consume(sink))


def record_attrs(sink: RecordSink, source: str, started: float, interrupted: bool) -> dict:
    """The ``attrs`` every events frame carries, whichever engine read it.

    ``started`` is the ``time.monotonic()`` taken just before the buffer was
    opened.
    """
    return {
        "source": source,
        "kernel_lost": int(sink.kernel_lost),
        "dropped_by_limit": int(sink.dropped),
        "lost": int(sink.kernel_lost) + int(sink.dropped),
        "duration": time.monotonic() - started,
        "truncated": int(sink.short),
        "interrupted": bool(interrupted),
    }
