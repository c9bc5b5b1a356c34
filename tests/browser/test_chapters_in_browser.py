"""Every chapter this kernel runs, as a learner runs it: opened in JupyterLab, Run All, in Chromium.

Per chapter: the "eBPF lab" kernel runs it; no error output except in cells tagged
raises-exception; every plot cell shows a PNG that decodes; every live view draws an
image and a second, different one within 2 s; the browser logs no broken image URL;
and once the kernel is shut down, no BPF program it held is still loaded. A screenshot
of each chapter goes to build/screenshots/.
"""
from __future__ import annotations

import base64
import json
import os
import platform
import re
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.browser.conftest import KERNEL_NAME, NOTEBOOKS, SCREENSHOTS, wait_for
from tests.conftest import descendants

CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LIVE_NEXT_FRAME_S = 2.0
RUN_ALL_TIMEOUT_S = 1200      # a bound on a hung chapter only; the slowest takes a few minutes on a busy machine
LIVE_FRAMES_WANTED = 4
LIVE_WATCH_S = 90             # a bound only: watching ends as soon as the view has drawn LIVE_FRAMES_WANTED
PLOT_CALL = re.compile(r"\.plot\b|\bplt\.|\bsubplots\(|\bax\w*(\[\d\])?\.(bar|barh|broken_barh|imshow)\(")
LIVE_CALL = re.compile(r"\.live\(")

# The notebook panel, its kernel, and whether it is ready to run.
STATE_JS = """
const app = window.jupyterapp;
const w = app && app.shell.currentWidget;
if (!w || !w.sessionContext || !w.content || !w.context) return null;
const k = w.sessionContext.session && w.sessionContext.session.kernel;
return {path: w.context.path, ready: w.context.isReady && w.sessionContext.isReady,
        kernel: k ? k.name : null, id: k ? k.id : null, status: k ? k.status : null};
"""

# Records each distinct blob: image a widget shows (the live views), with its time and its bytes'
# first eight, so the test can tell a new, decodable frame from a stale or broken one.
RECORDER_JS = """
const w = window.jupyterapp.shell.currentWidget;
const frames = window.__labFrames = [];
const seen = new Set();
const cellOf = (node) => w.content.widgets.findIndex(c => c.node.contains(node));
const scan = () => {
  for (const img of w.content.node.querySelectorAll('.jp-OutputArea img')) {
    const src = img.getAttribute('src') || '';
    if (!src.startsWith('blob:') || seen.has(src)) continue;
    seen.add(src);
    const rec = {cell: cellOf(img), t: performance.now(), sig: null, bytes: 0, error: null};
    frames.push(rec);
    fetch(src).then(r => r.arrayBuffer()).then(b => {
      rec.bytes = b.byteLength;
      rec.sig = Array.from(new Uint8Array(b.slice(0, 8)));
    }).catch(e => { rec.error = String(e); });
  }
};
new MutationObserver(scan).observe(w.content.node, {subtree: true, childList: true, attributes: true,
                                                    attributeFilter: ['src']});
"""

# Runs cells [first, last] as JupyterLab's own Run command does (stopping at an unexpected error),
# or the whole notebook with Run All when no range is given.
RUN_JS = """
const [first, last] = arguments;
const app = window.jupyterapp, nb = app.shell.currentWidget.content;
let command = 'notebook:run-all-cells';
if (first !== null) {
  nb.deselectAll();
  nb.activeCellIndex = first;
  if (last > first) nb.extendContiguousSelectionTo(last);
  command = 'notebook:run-cell';
}
window.__labRun = {done: false, ok: null, error: null};
app.commands.execute(command).then(
  ok => { window.__labRun.done = true; window.__labRun.ok = ok; },
  e => { window.__labRun.done = true; window.__labRun.error = String(e); });
"""

CELLS_JS = """
const w = window.jupyterapp.shell.currentWidget;
return w.content.widgets.map((c, i) => {
  if (c.model.type !== 'code') return null;
  const text = (t) => (Array.isArray(t) ? t.join('') : (t || '')).slice(0, 3000);
  return {
    index: i,
    source: c.model.sharedModel.getSource(),
    tags: c.model.getMetadata('tags') || [],
    count: c.model.executionCount,
    outputs: c.model.outputs.toJSON().map(o => ({type: o.output_type, name: o.name || null,
      text: text(o.text), ename: o.ename || null, evalue: o.evalue || null,
      mimes: o.data ? Object.keys(o.data) : []})),
    images: Array.from(c.node.querySelectorAll('.jp-OutputArea img')).map(im => im.getAttribute('src') || ''),
  };
});
"""


def _chapter_skip(path: Path) -> str | None:
    meta = json.loads(path.read_text()).get("metadata", {}).get("ebpf", {})
    have = tuple(int(x) for x in re.match(r"\d+(?:\.\d+)*", platform.release()).group(0).split("."))
    need = meta.get("kernel_min")
    if need and have < tuple(int(x) for x in need.split(".")):
        return f"needs Linux >= {need}, this kernel is {platform.release()}"
    from ebpf_magic.features import feature

    missing = []
    for family in meta.get("requires", []):
        f = feature(family)
        if f is not None and not f.available:
            missing.append(f"this kernel lacks {family}: {f.reason}")
    return "; ".join(missing) or None


# --- the kernel's processes and the BPF programs they hold ---------------------------

def _kernel_pid(kernel_id: str) -> int | None:
    needle = f"kernel-{kernel_id}.json".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if needle in f.read():
                        return int(entry)
            except OSError:
                continue
    return None


def _held_prog_ids(pid: int) -> set[int]:
    ids: set[int] = set()
    for p in descendants(pid):
        base = f"/proc/{p}/fdinfo"
        try:
            fds = os.listdir(base)
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"{base}/{fd}") as f:
                    ids.update(int(line.split()[1]) for line in f if line.startswith("prog_id:"))
            except (OSError, ValueError, IndexError):
                continue
    return ids


def _loaded_progs() -> dict[int, str]:
    out = subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, text=True, timeout=60, check=True)
    return {p["id"]: f"{p.get('type', '?')} {p.get('name', '')}" for p in json.loads(out.stdout or "[]")}


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


# --- what the page shows -------------------------------------------------------------

def _png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; ValueError if it is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError(f"not a PNG (starts {data[:16]!r})")
    return struct.unpack(">II", data[16:24])


def _decoded_pngs(images: list[str]) -> list[tuple[int, int]]:
    sizes = []
    for src in images:
        if src.startswith("data:image/png;base64,"):
            sizes.append(_png_size(base64.b64decode(src.split(",", 1)[1], validate=True)))
    return sizes


def _problems(cells: list[dict]) -> list[str]:
    found = []
    for cell in cells:
        n, tags = f"cell {cell['index']}", cell["tags"]
        if cell["count"] is None:
            found.append(f"{n} did not run: {cell['source'][:80]!r}")
        for o in cell["outputs"]:
            if o["type"] == "error" and "raises-exception" not in tags:
                found.append(f"{n} raised {o['ename']}: {o['evalue']}")
            elif o["type"] == "stream" and o["name"] == "stderr" and "Traceback (most recent call last)" in o["text"]:
                found.append(f"{n} printed a traceback:\n{o['text']}")
        if PLOT_CALL.search(cell["source"]) and not LIVE_CALL.search(cell["source"]):
            try:
                sizes = _decoded_pngs(cell["images"])
            except ValueError as exc:
                found.append(f"{n}: a plot image does not decode: {exc}")
                continue
            if not any(w >= 50 and h >= 50 for w, h in sizes):
                found.append(f"{n} plots but shows no PNG image (images: {[s[:40] for s in cell['images']]})")
    return found


def _live_problems(cells: list[dict], frames: list[dict]) -> tuple[list[str], list[str]]:
    found, notes = [], []
    for cell in cells:
        if not LIVE_CALL.search(cell["source"]):
            continue
        mine = [f for f in frames if f["cell"] == cell["index"]]
        good = [f for f in mine if f["sig"] is not None and bytes(f["sig"]) == PNG_SIGNATURE]
        bad = [f for f in mine if f["error"] or (f["sig"] is not None and bytes(f["sig"]) != PNG_SIGNATURE)]
        gaps = [(b["t"] - a["t"]) / 1000 for a, b in zip(good, good[1:], strict=False)]
        notes.append(f"live view in cell {cell['index']}: {len(good)} PNG frames, "
                     f"gaps {min(gaps, default=0):.2f}-{max(gaps, default=0):.2f} s")
        if bad:
            found.append(f"cell {cell['index']}: live view frames that are not PNGs: {bad[:3]}")
        if len(good) < 2:
            found.append(f"cell {cell['index']}: the live view drew {len(good)} PNG frame(s), not two")
        elif min(gaps) > LIVE_NEXT_FRAME_S:
            found.append(f"cell {cell['index']}: the live view's second frame came {min(gaps):.2f} s "
                         f"after its first (more than {LIVE_NEXT_FRAME_S} s)")
    return found, notes


def _console_problems(driver) -> list[str]:
    try:
        entries = driver.get_log("browser")
    except Exception:  # a driver without the log endpoint: nothing to check there
        return []
    return [e["message"] for e in entries if "ERR_INVALID_URL" in e["message"] or "[object Object]" in e["message"]]


def _screenshot(driver, name: str, cells: list[dict]) -> Path:
    # The most telling part of the chapter: its first live view, else its first plot.
    target = next((c for c in cells if LIVE_CALL.search(c["source"])), None) or \
        next((c for c in cells if c["images"]), None)
    if target is not None:
        driver.execute_script("window.jupyterapp.shell.currentWidget.content.widgets[arguments[0]]"
                              ".node.scrollIntoView({block: 'start'});", target["index"])
        # Two animation frames: the scroll has been painted when the second one starts.
        driver.execute_async_script("const done = arguments[arguments.length - 1];"
                                    "requestAnimationFrame(() => requestAnimationFrame(() => done(true)));")
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _segments(browser) -> list[tuple[int | None, int | None, bool]]:
    """(first, last, is a live view) ranges of cells; [(None, None, False)] (Run All) without live views.

    A learner watches a live view before running on: the chapter runs up to and including each
    live view, the test watches it draw while the kernel is otherwise idle, then runs on.
    """
    sources = browser.execute_script("return window.jupyterapp.shell.currentWidget.content.widgets.map("
                                     "c => c.model.type === 'code' ? c.model.sharedModel.getSource() : '');")
    live = [i for i, src in enumerate(sources) if LIVE_CALL.search(src)]
    if not live:
        return [(None, None, False)]
    out, start = [], 0
    for i in live:
        if i > start:
            out.append((start, i - 1, False))
        out.append((i, i, True))
        start = i + 1
    if start < len(sources):
        out.append((start, len(sources) - 1, False))
    return out


def _unrun(browser, first: int | None, last: int | None) -> list[int]:
    """Code cells in [first, last] with no execution count: the run stopped before them."""
    return browser.execute_script(
        "const [first, last] = arguments;"
        "return window.jupyterapp.shell.currentWidget.content.widgets.map((c, i) =>"
        "  c.model.type === 'code' && c.model.executionCount === null"
        "  && (first === null || (i >= first && i <= last)) ? i : -1).filter(i => i >= 0);", first, last)


def _run_chapter(browser, chapter: Path, pid: int, held: set[int]) -> dict:
    run: dict = {}
    for first, last, is_live in _segments(browser):
        browser.execute_script(RUN_JS, first, last)

        def finished():
            held.update(_held_prog_ids(pid))   # sampled throughout: the chapter detaches its own at the end
            run = browser.execute_script("return window.__labRun;")
            return run["done"] and browser.execute_script(STATE_JS)["status"] == "idle" and run

        run = wait_for(finished, RUN_ALL_TIMEOUT_S, f"{chapter.name}: cells {first}-{last} to run", every=0.5)
        # JupyterLab's run resolves to false when any cell replied with an error, the expected ones of
        # raises-exception cells included: whether the run stopped is told by the cells left unrun.
        if run["error"] or _unrun(browser, first, last):
            return run    # the cells left unrun, and the error that stopped them, are reported
        if is_live:
            try:
                wait_for(lambda cell=first: len([f for f in browser.execute_script("return window.__labFrames;")
                                                 if f["cell"] == cell and f["sig"]]) >= LIVE_FRAMES_WANTED,
                         LIVE_WATCH_S, f"the live view in cell {first} to draw")
            except TimeoutError:
                pass   # what it did draw is judged with the other checks
    return run


@pytest.mark.live
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_in_jupyterlab(chapter: Path, lab, browser):
    why = _chapter_skip(chapter)
    if why:
        pytest.skip(why)
    started = time.monotonic()
    _console_problems(browser)   # drains what the previous chapter logged
    browser.get(lab.url(f"/lab/tree/{chapter.name}"))
    state = wait_for(lambda: (s := browser.execute_script(STATE_JS)) and s["path"] == chapter.name
                     and s["ready"] and s["status"] == "idle" and s, 240, f"{chapter.name} open with an idle kernel")
    assert state["kernel"] == KERNEL_NAME, f"{chapter.name} runs on kernel {state['kernel']!r}, not {KERNEL_NAME!r}"
    pid = wait_for(lambda: _kernel_pid(state["id"]), 60, "the kernel's process")

    # The committed outputs go first: only what this run draws may count (stored plots, stored counts).
    browser.execute_script("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs');")
    wait_for(lambda: browser.execute_script(
        "return window.jupyterapp.shell.currentWidget.content.widgets.every(c => c.model.type !== 'code'"
        " || (c.model.executionCount === null && c.model.outputs.length === 0));"),
        60, f"{chapter.name}'s stored outputs to be cleared")
    browser.execute_script(RECORDER_JS)
    held: set[int] = set()
    run = _run_chapter(browser, chapter, pid, held)
    ran_s = time.monotonic() - started
    cells = [c for c in browser.execute_script(CELLS_JS) if c]
    frames = browser.execute_script("return window.__labFrames;")
    shot = _screenshot(browser, chapter.stem, cells)
    problems = _problems(cells)
    live, notes = _live_problems(cells, frames)
    problems += live
    problems += [f"browser console: {m}" for m in _console_problems(browser)]
    if run["error"]:
        problems.append(f"Run All failed: {run['error']}")

    held.update(_held_prog_ids(pid))
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.jupyterapp.shell.currentWidget.sessionContext.shutdown().then(() => done(true), e => done(String(e)));")
    wait_for(lambda: _gone(pid), 120, f"the kernel (pid {pid}) to exit")
    loaded = _loaded_progs()
    left = {i: loaded[i] for i in held if i in loaded}
    if left:
        problems.append(f"BPF programs still loaded after the kernel shut down: {left}")
    print(f"{chapter.stem}: {len(cells)} code cells, {len(held)} BPF programs held, "
          f"{time.monotonic() - started:.1f} s ({ran_s:.1f} s to Run All); {'; '.join(notes)}; screenshot {shot}")
    assert not problems, f"{chapter.name} in JupyterLab:\n  " + "\n  ".join(problems)
