"""The live view's widget on the kernel's side: what ipywidgets sends, how often, and that it stays small.

The browser test sees the frames arrive; this one checks, without a browser, that
the view keeps one Image widget whose value is a whole PNG, replaced in place at
least twice a second, and that neither the widget tree nor Python's heap grows
while it runs.
"""
from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc

import pytest

from tests.browser.conftest import wait_for

pytestmark = pytest.mark.live

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COUNTER = r"""
BPF_HASH(calls, u32, u64);
int on_enter(void *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid != TARGET) return 0;
    calls.increment(pid);
    return 0;
}""".replace("TARGET", str(os.getpid()))


def _per_frame(view, count: int, timeout: float, sample) -> list:
    """``sample(change)`` for each of the next ``count`` frames the view publishes.

    Called in the view's own thread as it publishes a frame, so always at the same
    point of its cycle.
    """
    seen: list = []
    done = threading.Event()

    def on_value(change):
        seen.append(sample(change))
        if len(seen) >= count:
            done.set()

    view.image.observe(on_value, names="value")
    try:
        wait_for(done.is_set, timeout, f"{count} live frames")
    finally:
        view.image.unobserve(on_value, names="value")
    return seen[:count]


def _frames(view, count: int, timeout: float) -> list[tuple[float, bytes]]:
    """The next `count` distinct PNGs the view publishes, with when each arrived."""
    # ipywidgets keeps a memoryview: copy it
    return _per_frame(view, count, timeout, lambda change: (time.monotonic(), bytes(change["new"])))


def _heap_per_frame(view, count: int, timeout: float) -> list[int]:
    """Python's traced heap as each of the next ``count`` frames is published.

    A measurement from another thread may land while a figure is half drawn,
    which on a busy machine is most of the time.
    """
    def heap(_change) -> int:
        gc.collect()            # figures are freed by the cycle collector, not at once
        return tracemalloc.get_traced_memory()[0]

    return _per_frame(view, count, timeout, heap)


def test_live_view_replaces_one_png_twice_a_second_without_growing(ip, monkeypatch):
    import ipywidgets as w

    monkeypatch.delenv("EBPF_LAB_HEADLESS", raising=False)
    h = ip.run_cell_magic("bpf", "tracepoint/syscalls/sys_enter_getppid -n live_calls", COUNTER)
    stop_load = threading.Event()

    def load():   # keeps the map changing, so every frame differs from the one before
        while not stop_load.is_set():
            os.getppid()
            time.sleep(0.001)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    view = h.live("calls", every=0.25)
    try:
        assert isinstance(view.image, w.Image) and view.image.format == "png"
        tree = [type(c).__name__ for c in view.widget.children]
        first = _frames(view, 4, 120)
        for _t, png in first:
            assert png.startswith(PNG_SIGNATURE) and len(png) > 1000
        assert len({png for _t, png in first}) == 4, "each frame is a new picture of a changing map"
        gaps = [b[0] - a[0] for a, b in zip(first, first[1:], strict=False)]
        # Twice a second at least, with room for a busy machine's scheduling.
        assert min(gaps) < 0.5, f"frames every {gaps} s"

        tracemalloc.start()
        try:
            heap = _heap_per_frame(view, 16, 300)
        finally:
            tracemalloc.stop()
        # The first 4 frames warm matplotlib's caches; then 12 more must not grow the heap.
        grown = heap[-1] - heap[3]
        assert grown < 2_000_000, f"the heap grew by {grown} bytes over 12 frames: {heap}"
        assert [type(c).__name__ for c in view.widget.children] == tree
        assert bytes(view.image.value).startswith(PNG_SIGNATURE)
    finally:
        view.stop()
        stop_load.set()
        loader.join(timeout=30)
    wait_for(lambda: not view._thread.is_alive(), 60, "the live view's thread to end")
    assert view.status.value.startswith("stopped after")
    h.detach()
