"""Live views: a map or histogram re-plotted every few hundred ms while the program runs.

The view is an ipywidgets box (plot, status line, stop button). A background
thread reads the map and replaces the PNG bytes of one ``ipywidgets.Image``:
ipywidgets sends bytes traits as binary buffers and the front end turns them
into a blob URL, so nothing is base64-encoded and nothing accumulates (an
``Output`` widget would keep a growing list of outputs, and raw bytes put in
its state arrive as "[object Object]"). The thread never uses ``with out:``,
which captures output of whatever cell runs at that moment. Under test, or
with ``duration=``, the same call blocks for that long and returns the last
DataFrame: the plain twin that nbval can run.
"""
from __future__ import annotations

import io
import os
import threading
import time

HEADLESS_ENV = "EBPF_LAB_HEADLESS"


def headless() -> bool:
    return os.environ.get(HEADLESS_ENV) == "1"


def snapshot(program, name: str, kind: str):
    if kind == "hist":
        return program.hist(name)
    if kind == "frame":
        return program[name].to_frame()
    raise ValueError(f"kind must be 'frame' or 'hist', not {kind!r}")


def render_png(df, kind: str, title: str, top: int = 15) -> bytes:
    """A PNG of the snapshot; matplotlib's object API, so no global pyplot state is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if kind == "hist":
        df.plot(ax=ax, title=title)
    elif len(df):
        value = "value" if "value" in df.columns else df.columns[-1]
        key = "key" if "key" in df.columns else df.columns[0]
        shown = df.nlargest(top, value)
        ax.barh(shown[key].astype(str), shown[value])
        ax.invert_yaxis()
        ax.set_xlabel(value)
        ax.set_title(title)
    else:
        ax.set_title(f"{title}: empty")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class LiveView:
    def __init__(self, program, name: str, kind: str = "frame", every: float = 0.5):
        import ipywidgets as w

        self.program, self.name, self.kind, self.every = program, name, kind, every
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.status = w.Label("starting")
        self.button = w.Button(description="stop", button_style="warning", icon="stop")
        self.button.on_click(lambda _b: self.stop())
        self.widget = w.VBox([w.HBox([self.button, self.status]), self.image])
        self.last = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bpf-live-{name}", daemon=True)

    def start(self) -> LiveView:
        # The first frame is drawn before the widget is shown: an empty Image would show as a broken one.
        if self._draw(0):
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.button.disabled = True

    def _draw(self, frames: int) -> bool:
        """One frame; False (and the view stopped, saying why) once the map cannot be read."""
        try:
            self.last = snapshot(self.program, self.name, self.kind)
            # The update number in the title shows the view is live even while the map stands still.
            png = render_png(self.last, self.kind, f"{self.program.name}[{self.name!r}], update {frames + 1}")
        except Exception as exc:  # the program was detached, or the map went away
            self.status.value = f"stopped: {exc}".splitlines()[0]
            self.stop()
            return False
        self.image.value = png
        self.status.value = f"{frames + 1} updates, every {self.every:g} s"
        return True

    def _run(self) -> None:
        frames = 1
        due = time.monotonic()
        while True:
            # A fixed cadence: drawing takes time of its own, which must not stretch the period.
            due = max(due + self.every, time.monotonic())
            if self._stop.wait(due - time.monotonic()) or not self._draw(frames):
                break
            frames += 1
        if self._stop.is_set() and not self.status.value.startswith("stopped"):
            self.status.value = f"stopped after {frames} updates"

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def live(program, name: str, kind: str = "frame", every: float = 0.5, duration: float | None = None):
    """A live view of ``program[name]``; with ``duration`` (or headless), the DataFrame after that long."""
    program[name]  # a clear MapError now, not after the wait or inside the thread
    if duration is not None or headless():
        end = time.monotonic() + (duration if duration is not None else 1.0)
        while time.monotonic() < end:
            time.sleep(min(every, max(0.0, end - time.monotonic())))
        return snapshot(program, name, kind)
    return LiveView(program, name, kind, every).start()
