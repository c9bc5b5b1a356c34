"""The engine-neutral event policy (records.py): sinks, slices, limits, Ctrl-C, attrs.

Pure logic: the buffers are stand-ins that call the sink the way BCC's and
libbpf's readers do; the live tests run the same code on real buffers.
"""
from __future__ import annotations

import ctypes as ct
import sys
import time

import numpy as np
import pytest

from ebpf_magic.records import (
    POLL_SLICE_MS,
    SOURCES,
    RawSink,
    RecordSink,
    check_limits,
    deadline_slices,
    poll_records,
    record_attrs,
)
from ebpf_magic.uapi import MapType


class Rec(ct.Structure):
    _fields_ = [("a", ct.c_uint32), ("b", ct.c_uint32)]


def _row(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8).reshape(1, -1)


def _feed(sink, *values):
    for a, b in values:
        sink.add_rows(_row(bytes(Rec(a, b))))


def test_sink_keeps_limit_and_counts_the_rest():
    sink = RecordSink(ct.sizeof(Rec), limit=3)
    _feed(sink, (1, 2), (3, 4), (5, 6), (7, 8), (9, 10))
    assert (sink.n, sink.dropped, sink.short) == (3, 2, 0)
    arr = np.frombuffer(sink.bytes(), dtype=[("a", "<u4"), ("b", "<u4")])
    assert arr["a"].tolist() == [1, 3, 5] and arr["b"].tolist() == [2, 4, 6]


def test_sink_grows_past_its_first_chunk():
    sink = RecordSink(ct.sizeof(Rec), limit=5000)
    _feed(sink, *((i, 2 * i) for i in range(3000)))
    arr = np.frombuffer(sink.bytes(), dtype=[("a", "<u4"), ("b", "<u4")])
    assert len(sink.chunks) > 1 and arr["a"].tolist() == list(range(3000))


def test_short_records_are_zero_filled_and_counted():
    sink = RecordSink(8, limit=10)
    sink.add_rows(_row(bytes(ct.c_uint32(0xDEADBEEF))))
    assert sink.short == 1
    assert sink.bytes().tobytes() == (0xDEADBEEF).to_bytes(4, sys.byteorder) + b"\0" * 4


def test_raw_sink_keeps_each_record_as_bytes():
    sink = RawSink(limit=2)
    for payload in (b"ab", b"cde", b"f"):
        sink.add_rows(_row(payload))
    assert sink.records == [b"ab", b"cde"] and sink.n == 2 and sink.dropped == 1


def test_kernel_lost_and_attrs():
    sink = RecordSink(8, limit=1)
    _feed(sink, (1, 1), (2, 2))
    sink.lost(5)
    sink.lost(2)
    attrs = record_attrs(sink, "perf", time.monotonic(), interrupted=False)
    assert attrs["source"] == "perf"
    assert (attrs["kernel_lost"], attrs["dropped_by_limit"], attrs["lost"]) == (7, 1, 8)
    assert attrs["truncated"] == 0 and attrs["interrupted"] is False and attrs["duration"] >= 0
    assert set(attrs) == {"source", "kernel_lost", "dropped_by_limit", "lost", "duration", "truncated",
                          "interrupted"}


def test_sources_cover_exactly_the_record_maps():
    assert SOURCES == {MapType.RINGBUF: "ringbuf", MapType.PERF_EVENT_ARRAY: "perf"}
    assert SOURCES[27] == "ringbuf"  # a raw map type number from the kernel finds it too


class FakeBuffer:
    """Hands records to the sink on poll/consume, as the real readers' callbacks do."""

    def __init__(self, sink, per_poll=0, pending=0, interrupt_at=None):
        self.sink, self.per_poll, self.pending, self.interrupt_at = sink, per_poll, pending, interrupt_at
        self.timeouts: list[int] = []
        self.consumed = False

    def poll(self, timeout):
        self.timeouts.append(timeout)
        if self.interrupt_at is not None and len(self.timeouts) == self.interrupt_at:
            raise KeyboardInterrupt
        _feed(self.sink, *[(0, 0)] * self.per_poll)

    def consume(self):
        self.consumed = True
        _feed(self.sink, *[(0, 0)] * self.pending)


def test_zero_duration_only_drains():
    sink = RecordSink(8, limit=10)
    buf = FakeBuffer(sink, pending=4)
    assert poll_records(sink, 0, buf.poll, buf.consume) is False
    assert buf.timeouts == [] and buf.consumed and sink.n == 4


def test_full_sink_stops_polling_and_skips_the_drain():
    sink = RecordSink(8, limit=5)
    buf = FakeBuffer(sink, per_poll=2, pending=100)
    poll_records(sink, 3600, buf.poll, buf.consume)  # returns by the limit, long before the hour
    assert len(buf.timeouts) == 3 and not buf.consumed
    assert (sink.n, sink.dropped) == (5, 1)


def test_ctrl_c_ends_polling_keeps_records_and_still_drains():
    sink = RecordSink(8, limit=100)
    buf = FakeBuffer(sink, per_poll=1, pending=2, interrupt_at=3)
    assert poll_records(sink, 3600, buf.poll, buf.consume) is True
    assert buf.consumed and sink.n == 2 + 2


def test_slices_are_short_and_end_at_the_deadline():
    sink = RecordSink(8, limit=10)
    slices = list(deadline_slices(0.25, sink))
    assert slices and all(1 <= s <= POLL_SLICE_MS for s in slices)
    assert list(deadline_slices(-1, sink)) == []


@pytest.mark.parametrize("max_events,page_cnt", [(0, 64), (-3, 64), (1.5, 64), ("10", 64), (True, 64),
                                                 (10, 0), (10, 3), (10, 48), (10, 2.0)])
def test_bad_limits_are_refused(max_events, page_cnt):
    with pytest.raises(ValueError):
        check_limits(max_events, page_cnt)


def test_good_limits_pass():
    check_limits(1, 1)
    check_limits(np.int64(100), 64)
