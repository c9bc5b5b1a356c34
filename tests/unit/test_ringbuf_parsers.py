"""The ring and perf buffer parsers on synthetic byte buffers laid out as the kernel writes them."""
from __future__ import annotations

import struct

import numpy as np

from ebpf_magic.perfbuf import RECORD_LOST, RECORD_SAMPLE, parse_perf
from ebpf_magic.records import RawSink, RecordSink
from ebpf_magic.ringbuf import BUSY, DISCARD, parse_ring


def ring_record(payload: bytes, flags: int = 0) -> bytes:
    pad = -(len(payload) + 8) % 8
    return struct.pack("<II", len(payload) | flags, 0) + payload + b"\xee" * pad


def perf_sample(payload: bytes) -> bytes:
    raw = payload + b"\0" * (-(len(payload) + 4) % 8)
    return struct.pack("<IHHI", RECORD_SAMPLE, 0, 12 + len(raw), len(raw)) + raw


def perf_lost(count: int) -> bytes:
    return struct.pack("<IHHQQ", RECORD_LOST, 0, 24, 7, count)


def arr(b: bytes) -> np.ndarray:
    return np.frombuffer(b, np.uint8)


def rows(sink: RecordSink) -> list[bytes]:
    data = sink.bytes()
    return [data[i * sink.rec:(i + 1) * sink.rec].tobytes() for i in range(sink.n)]


def test_ring_uniform_batch_is_parsed_whole():
    recs = [struct.pack("<QQ", i, i * 3) for i in range(1000)]
    buf = b"".join(ring_record(r) for r in recs)
    sink = RecordSink(16, 10_000)
    assert parse_ring(arr(buf), sink) == len(buf) == 1000 * 24
    assert rows(sink) == recs


def test_ring_mixed_sizes_stay_in_order():
    recs = [bytes([i]) * (1 + i % 13) for i in range(200)]
    buf = b"".join(ring_record(r) for r in recs)
    sink = RawSink(10_000)
    assert parse_ring(arr(buf), sink) == len(buf)
    assert sink.records == recs


def test_ring_skips_discarded_and_stops_at_busy():
    a, b, c, d = (struct.pack("<Q", v) for v in (1, 2, 3, 4))
    committed = ring_record(a) + ring_record(b, DISCARD) + ring_record(c)
    buf = committed + ring_record(d, BUSY) + ring_record(a)
    sink = RecordSink(8, 100)
    assert parse_ring(arr(buf), sink) == len(committed)
    assert rows(sink) == [a, c]


def test_ring_discarded_record_of_another_size():
    a, b = struct.pack("<Q", 1), struct.pack("<Q", 2)
    buf = ring_record(a) + ring_record(b"x" * 30, DISCARD) + ring_record(b)
    sink = RecordSink(8, 100)
    assert parse_ring(arr(buf), sink) == len(buf)
    assert rows(sink) == [a, b]


def test_ring_busy_first_record_consumes_nothing():
    sink = RecordSink(8, 100)
    assert parse_ring(arr(ring_record(b"12345678", BUSY)), sink) == 0
    assert sink.n == 0


def test_ring_incomplete_tail_is_left_for_later():
    whole = ring_record(b"A" * 16)
    sink = RecordSink(16, 100)
    assert parse_ring(arr(whole + whole[:12]), sink) == len(whole)
    assert sink.n == 1


def test_limit_counts_the_rest_as_dropped():
    buf = b"".join(ring_record(struct.pack("<Q", i)) for i in range(50))
    sink = RecordSink(8, 20)
    parse_ring(arr(buf), sink)
    assert sink.n == 20 and sink.dropped == 30
    assert [struct.unpack("<Q", r)[0] for r in rows(sink)] == list(range(20))


def test_sink_pads_short_and_cuts_long_records():
    sink = RecordSink(8, 100)
    parse_ring(arr(ring_record(b"abcd") + ring_record(b"0123456789AB")), sink)
    assert rows(sink) == [b"abcd\0\0\0\0", b"01234567"]
    assert sink.short == 1


def test_sink_grows_over_many_chunks():
    n = 5000
    sink = RecordSink(4, n)
    for start in range(0, n, 7):
        block = np.arange(start, min(start + 7, n), dtype="<u4").view(np.uint8).reshape(-1, 4)
        sink.add_rows(block)
    assert np.array_equal(np.frombuffer(sink.bytes(), "<u4"), np.arange(n))


def test_perf_samples_keep_order_and_lost_is_counted():
    recs = [struct.pack("<IIQ", i, 2 * i, 3 * i) for i in range(300)]
    buf = b"".join(perf_sample(r) for r in recs[:100]) + perf_lost(42) + b"".join(
        perf_sample(r) for r in recs[100:])
    sink = RecordSink(16, 1000)
    assert parse_perf(arr(buf), sink) == len(buf)
    assert rows(sink) == recs
    assert sink.kernel_lost == 42 and sink.short == 0


def test_perf_raw_size_includes_the_kernels_padding():
    sink = RawSink(10)
    parse_perf(arr(perf_sample(b"x" * 16)), sink)
    assert sink.records == [b"x" * 16 + b"\0" * 4]  # 4 + 16 rounded up to 8, as the kernel does


def test_perf_mixed_sizes():
    recs = [bytes([i]) * (4 + 4 * (i % 5)) for i in range(100)]
    sink = RecordSink(20, 1000)
    parse_perf(arr(b"".join(perf_sample(r) for r in recs)), sink)
    assert [r[:len(want)] for r, want in zip(rows(sink), recs, strict=True)] == recs
    assert sink.n == 100


def test_perf_other_record_types_are_skipped():
    other = struct.pack("<IHH", 3, 0, 16) + b"\0" * 8  # PERF_RECORD_COMM-sized filler
    sink = RecordSink(8, 10)
    buf = other + perf_sample(b"12345678")
    assert parse_perf(arr(buf), sink) == len(buf)
    assert rows(sink) == [b"12345678"]


def test_perf_malformed_size_stops():
    sink = RecordSink(8, 10)
    assert parse_perf(arr(struct.pack("<IHH", RECORD_SAMPLE, 0, 4)), sink) == 0
