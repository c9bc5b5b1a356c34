"""The handle a ``%%bpf`` cell returns: its program, attach points, maps and output."""
from __future__ import annotations

import html

from . import validate
from .errors import MapError


class MapView:
    """One BCC map of a program; ``to_frame()`` reads it whole into a DataFrame."""

    def __init__(self, program: Program, name: str):
        self._program = program
        self.name = name

    @property
    def table(self):
        return self._program._bpf()[self.name.encode()]

    def to_frame(self):
        from .frames import map_frame

        return map_frame(self.table)

    def clear(self) -> None:
        self.table.clear()

    def _writable(self):
        t = self.table
        if getattr(t, "Key", None) is None or type(t).__name__ in validate.UNWRITABLE_TABLES:
            raise MapError(f"{self.name} is a {type(t).__name__}: the program writes it, Python only reads",
                           hint="write key/value maps (BPF_HASH, BPF_ARRAY) from Python")
        return t

    def __setitem__(self, key, value) -> None:
        """Write one entry from Python: ``h["watch"][pid] = 1`` (scalars, or the ctypes Key/Leaf)."""
        t = self._writable()
        k, v = validate.to_ctype(t.Key, key, "key"), validate.to_ctype(t.Leaf, value, "value")
        validate.map_call(self._program.name, self.name, "writing", lambda: t.__setitem__(k, v))

    def __delitem__(self, key) -> None:
        t = self._writable()
        k = validate.to_ctype(t.Key, key, "key")
        validate.map_call(self._program.name, self.name, "deleting from", lambda: t.__delitem__(k))

    def __len__(self) -> int:
        return sum(1 for _ in self.table.keys())

    def __repr__(self) -> str:
        return f"<map {self.name} of {self._program.name}: use .to_frame()>"


class BaseHandle:
    """What both engines' handles share: reading helpers, lifecycle and display."""

    engine = "bcc"
    warnings: tuple[str, ...] = ()   # the compiler's warnings about the cell, shown under it

    def __init__(self, name: str, attachments):
        self.name = name
        self.attachments = attachments
        self.output: str | None = None
        self.defaults = {"duration": 1.0, "max_events": 100_000}
        self._on_detach = None

    def _alive(self):
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def summary(self) -> dict:
        raise NotImplementedError

    def _detached(self) -> MapError:
        return MapError(f"{self.name} is detached; its maps are gone",
                        hint=f"re-run the cell that defines {self.name}")

    def _no_map(self, name: str, names: list[str], extra: str = "") -> MapError:
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        return MapError(f"{self.name} has no map {name!r}",
                        hint=f"its maps: {', '.join(names) or 'none'}"
                             + (f"; did you mean {close[0]!r}?" if close else "") + extra)

    def live(self, name: str, kind: str = "frame", every: float = 0.5, duration: float | None = None):
        """A widget re-plotting map ``name`` every ``every`` s (kind "frame" or "hist") with a stop button.

        With ``duration`` (or EBPF_LAB_HEADLESS=1, as under test) it waits that long and
        returns the DataFrame instead.
        """
        from .live import live

        validate.check_name(name)
        validate.check_kind(kind)
        validate.check_every(every)
        validate.check_duration(duration)
        return live(self, name, kind=kind, every=every, duration=duration)

    def trace_lines(self, duration: float = 1.0, max_lines: int = 10_000):
        """``bpf_trace_printk`` output read from trace_pipe for ``duration`` seconds."""
        from . import tracepipe

        validate.check_duration(duration, allow_none=False)
        validate.check_max_lines(max_lines)
        self._alive()
        return tracepipe.read(duration, max_lines)

    def read(self) -> str:
        """Run an iterator program once more and return what it printed."""
        from .attach.tracing import read_iterator

        link = next((a for a in self.attachments if a.kind == "iter" and a.attached), None)
        if link is None:
            raise MapError(f"{self.name} is not an attached iterator", hint="SEC iter/<name>, e.g. iter/task")
        self.output = read_iterator(link.fd)
        return self.output

    # --- lifecycle ---------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return any(a.attached for a in self.attachments)

    def uses(self, resource) -> bool:
        """Attached to a session resource (the lab network, a lab cgroup): the session detaches it first."""
        return any(a.target is resource and a.attached for a in self.attachments)

    def detach(self) -> None:
        for a in reversed(self.attachments):
            try:
                a.detach()
            except Exception:  # releasing the program below frees it anyway
                pass
        self._release()
        if self._on_detach is not None:
            on_detach, self._on_detach = self._on_detach, None
            on_detach(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()

    # --- display -------------------------------------------------------------------
    def __repr__(self) -> str:
        s = self.summary()
        return (f"<bpf {s['name']}: {s['function']} SEC(\"{s['section']}\") {s['prog_type']}, "
                f"attached: {s['attached']}; maps: {s['maps'] or 'none'}>")

    def _repr_html_(self) -> str:
        s = self.summary()
        rows = "".join(f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>"
                       f"{html.escape(str(v))}</td></tr>" for k, v in s.items() if k != "name")
        out = ""
        if self.output:
            head = "\n".join(self.output.splitlines()[:8])
            out = f"<pre style='font-size:85%'>{html.escape(head)}\n…</pre>"
        title = (f"bpf object <code>{html.escape(s['name'])}</code> (CO-RE)" if self.engine == "core"
                 else f"bpf program <code>{html.escape(s['name'])}</code>")
        return f"<b>{title}</b><table>{rows}</table>{out}"

    # --- network programs (xdp, tc, socket, flow_dissector, sk_lookup): test runs, sockets, captures ----
    def test_run(self, packet, repeat: int = 1, program: str | None = None):
        """Run the program on ``packet`` (bytes or scapy) ``repeat`` times: action, ns per run, output."""
        from .testrun import test_run

        return test_run(self, packet, repeat=repeat, program=program)

    def test_run_many(self, packets, repeat: int = 1, program: str | None = None):
        """``test_run`` on each packet: one DataFrame row each."""
        from .testrun import test_run_many

        return test_run_many(self, packets, repeat=repeat, program=program)

    @property
    def group(self):
        """sk_reuseport: the lab's SO_REUSEPORT listeners (``.sockets``, ``.port``) the program chooses among."""
        from .attach.reuseport import ReuseportGroup

        for a in self.attachments:
            if a.attached and isinstance(getattr(a, "sock", None), ReuseportGroup):
                return a.sock
        raise AttributeError(f"{self.name} has no reuseport group: only sk_reuseport cells attached with "
                             f"--netns HOST have one")

    def put_socket(self, map_name: str, key, sock) -> None:
        """Put ``sock`` (e.g. from ``net.listen``) into the sockmap/sockhash ``map_name`` under ``key``."""
        from .socket_maps import put_socket

        put_socket(self, map_name, key, sock)

    def remove_socket(self, map_name: str, key) -> None:
        """Take the socket under ``key`` out of the sockmap/sockhash ``map_name``."""
        from .socket_maps import remove_socket

        remove_socket(self, map_name, key)

    def packets(self, duration: float = 1.0, max_packets: int = 100_000):
        """Socket filters: what the filter kept, for ``duration`` s (and since the last call)."""
        from .packets import packets

        return packets(self, duration, max_packets)

    def to_pcap(self, path) -> str:
        """Socket filters: every packet ``packets()`` read so far, as a pcap file."""
        from .packets import to_pcap

        return to_pcap(self, path)



class Program(BaseHandle):
    """A BCC cell: one program function, its BCC module (maps) and attach points."""

    def __init__(self, name, module, fn, section, attachments):
        super().__init__(name, attachments)
        self.module = module
        self.function = fn
        self.section = section

    def _alive(self):
        if self.module is None or self.module.bpf is None:
            raise self._detached()
        return self.module.bpf

    _bpf = _alive

    def _release(self) -> None:
        if self.module is not None:
            self.module.release()

    @property
    def bpf(self):
        """The underlying bcc.BPF object, for BCC's own API (stack walks, ksym(), sym())."""
        return self._bpf()

    @property
    def map_names(self) -> list[str]:
        self._bpf()
        return self.module.table_names()

    @property
    def maps(self) -> dict[str, MapView]:
        return {n: MapView(self, n) for n in self.map_names}

    def __getitem__(self, name: str) -> MapView:
        validate.check_name(name)
        names = self.map_names
        if name not in names:
            raise self._no_map(name, names)
        return MapView(self, name)

    def hist(self, name: str, unit: str | None = None):
        from .frames import log2_hist

        validate.check_unit(unit)
        return log2_hist(self[name].table, unit=unit)

    def events(self, name: str, duration: float | None = None, max_events: int | None = None,
               page_cnt: int = 64, event_type=None):
        """Records of a ring or perf buffer for ``duration`` s, at most ``max_events`` kept.

        ``page_cnt`` sizes a perf buffer per CPU; a bigger one loses less under bursts.
        ``event_type``: a ctypes Structure for records BCC cannot decode by itself.
        """
        from .events import collect_events

        validate.check_map_name(self, name)
        validate.check_duration(duration)
        validate.check_max_events(max_events)
        validate.check_page_cnt(page_cnt)
        validate.check_event_type(event_type, "bcc")
        return collect_events(self._bpf(), name,
                              duration=self.defaults["duration"] if duration is None else duration,
                              max_events=self.defaults["max_events"] if max_events is None else max_events,
                              page_cnt=page_cnt, event_type=event_type)

    def summary(self) -> dict:
        alive = self.module is not None and self.module.bpf is not None
        return {"name": self.name, "function": self.function, "section": self.section.name,
                "prog_type": self.section.prog_type.name,
                "attached": ", ".join(str(a) for a in self.attachments if a.attached) or "-",
                "maps": ", ".join(self.map_names) if alive else "-"}
