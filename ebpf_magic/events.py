"""Events from BCC's BPF_RINGBUF_OUTPUT / BPF_PERF_OUTPUT tables as a DataFrame.

The BCC side only: finding the table and BCC's guess at the record type.
The readers (the buffers' mapped pages, parsed in numpy batches), the
sinks, the polling policy and the frame's attrs are ``records``', shared
with the CO-RE engine.
"""
from __future__ import annotations

import contextlib
import ctypes as ct
import io
import time
import warnings

import numpy as np
import pandas as pd

from .dtypes import dtype_of, flatten
from .errors import MapError
from .records import SOURCES, RawSink, RecordSink, check_limits, open_reader, read_buffer, record_attrs
from .uapi import MapType


def _table(bpf, name):
    """The BPF object's table object for ``name``, reusing one the caller already made.

    BCC caches tables under the exact key used (``"x"`` and ``b"x"`` give two
    objects); reusing the caller's keeps one view of which perf buffers are open.
    """
    alt = name.encode() if isinstance(name, str) else bytes(name).decode()
    for key in (name, alt):
        if key in bpf.tables:
            return bpf.tables[key]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # BCC nags about str names
            return bpf[name]
    except KeyError:
        raise MapError(f"no table named '{name}' in this BPF program",
                       hint="declare it with BPF_RINGBUF_OUTPUT(name, pages) or BPF_PERF_OUTPUT(name)") from None


def _event_class(table):
    """BCC's inferred ctypes struct for the records, or (None, reason) when it cannot tell."""
    from bcc import table as bcc_table

    cls = getattr(table, "_event_class", None)
    if cls is not None:
        return cls, None
    err = io.StringIO()
    try:
        # BCC reports an unknown field type by printing and calling sys.exit()
        with contextlib.redirect_stderr(err):
            cls = bcc_table._get_event_class(table)
    except (SystemExit, Exception) as exc:  # any failure just means "decode as bytes"
        return None, err.getvalue().strip() or f"{type(exc).__name__}: {exc}"
    if not getattr(cls, "_fields_", None) or ct.sizeof(cls) == 0:
        return None, ("BCC infers the record type only from a struct passed to perf_submit() / "
                      "ringbuf_output(), and found none for this table")
    return cls, None


def collect_events(bpf, name: str, duration: float = 1.0, max_events: int = 100_000,
                   page_cnt: int = 64, *, event_type=None) -> pd.DataFrame:
    """Collect records from a ring buffer or perf buffer table for ``duration`` seconds.

    ``bpf`` is a loaded ``bcc.BPF``; ``name`` names a ``BPF_RINGBUF_OUTPUT`` or
    ``BPF_PERF_OUTPUT`` table. The buffer is opened, polled until ``duration``
    seconds pass or ``max_events`` records arrived, drained once and closed
    again, so a later call can reopen it. ``duration=0`` just drains what is
    already there. Ctrl-C stops early and returns what arrived so far
    (``attrs["interrupted"]``).

    Records are decoded with the C struct BCC infers from the program's
    ``perf_submit()`` / ``ringbuf_output()`` call: one column per field (see
    ``dtypes.flatten``; ``char[N]`` fields become ``str``). When BCC cannot
    infer it (a scalar record, or a struct with a nested struct member), the frame
    has one ``data`` column of raw ``bytes`` (for perf buffers including the
    kernel's alignment padding) and ``attrs["undecoded_reason"]`` says why;
    pass ``event_type=`` a ctypes Structure mirroring the C struct to decode
    such records anyway.

    ``df.attrs``:

    * ``dropped_by_limit``: records that arrived after ``max_events`` and were
      thrown away (only those still in the buffer when it was drained are
      seen; later ones are never read);
    * ``kernel_lost``: records the kernel reported lost because the perf
      buffer was full (``page_cnt`` pages per CPU; must be a power of two).
      The kernel does not report ring-buffer overflow to user space: a full
      ring makes ``bpf_ringbuf_output()`` / ``ringbuf_reserve()`` fail in the
      BPF program (-EAGAIN / NULL), so for ring buffers ``kernel_lost`` is 0
      unless the program counts those failures itself, e.g. in a map;
    * ``lost``: ``kernel_lost + dropped_by_limit``;
    * ``duration``: seconds actually spent polling;
    * ``source``: ``"ringbuf"`` or ``"perf"``; ``truncated``: records shorter
      than the struct (zero-filled).

    Ring buffer size is fixed by the program (``BPF_RINGBUF_OUTPUT(name,
    pages)``); ``page_cnt`` only sizes perf buffers. The two also differ in
    what you get: a ring buffer exists as long as the program is loaded and
    keeps what was written while nobody read it (up to its size), so the
    first rows may predate this call; a perf buffer exists only while open,
    so it holds events from this call only. Perf buffers are per CPU, so
    their rows are in order per CPU, not globally; ring buffer rows are in
    global submission order.
    """
    check_limits(max_events, page_cnt)
    if event_type is not None and ct.sizeof(event_type) == 0:
        raise ValueError("event_type must be a non-empty ctypes Structure")
    table = _table(bpf, name)
    kind = getattr(table, "ttype", None)
    if kind not in SOURCES:
        raise MapError(f"'{name}' is not a ring buffer or perf buffer", where=name,
                       hint=f"use frames.map_frame(bpf['{name}']) for key/value maps")
    cls, why = (event_type, None) if event_type is not None else _event_class(table)
    sink = RecordSink(ct.sizeof(cls), max_events) if cls is not None else RawSink(max_events)

    if kind == MapType.PERF_EVENT_ARRAY and table._open_key_fds:
        raise MapError(f"perf buffer '{name}' is already open through BCC's open_perf_buffer()",
                       hint="close the other reader first (del bpf[name]) or use a separate table")
    started = time.monotonic()
    with open_reader(kind, table.map_fd, page_cnt, name) as reader:
        interrupted = read_buffer(reader, sink, duration)

    if cls is not None:
        records = np.frombuffer(sink.bytes(), dtype=dtype_of(cls), count=sink.n)
        df = pd.DataFrame(flatten(records, "value"))
    else:
        df = pd.DataFrame({"data": pd.Series(sink.records, dtype=object)})
        df.attrs["undecoded_reason"] = why
    df.attrs.update(record_attrs(sink, SOURCES[kind], started, interrupted))
    return df

