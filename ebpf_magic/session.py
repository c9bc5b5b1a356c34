"""What the lab has loaded in this Python process, by NAME.

The session owns lifecycles: re-running a cell releases the previous
program of the same NAME before the new one attaches, and everything is
detached when the extension unloads or the interpreter exits.

Besides programs it owns the lab's world: resources such as the lab network
or a lab cgroup (anything with ``close()``), kept by kind, closed after the
programs that may use them, on ``release_all`` and at exit.
"""
from __future__ import annotations

import atexit
from collections.abc import Callable


class Session:
    def __init__(self) -> None:
        self._programs: dict[str, object] = {}
        self._resources: dict[str, object] = {}

    # --- resources: the lab network, lab cgroups ------------------------------------
    def resource(self, kind: str, make: Callable[[], object]):
        """The session's resource of ``kind``, made on first use."""
        res = self._resources.get(kind)
        if res is None:
            res = self._resources[kind] = make()
        return res

    def peek(self, kind: str):
        """The resource of ``kind`` if it exists, without making it."""
        return self._resources.get(kind)

    def close(self, kind: str) -> bool:
        """Close one resource; programs attached to it are detached first."""
        res = self._resources.pop(kind, None)
        if res is None:
            return False
        for name, p in list(self._programs.items()):
            if getattr(p, "uses", lambda _r: False)(res):
                self.release(name)
        res.close()
        return True

    def __contains__(self, name: str) -> bool:
        return name in self._programs

    def __len__(self) -> int:
        return len(self._programs)

    def get(self, name: str):
        return self._programs.get(name)

    def names(self) -> list[str]:
        return list(self._programs)

    def replace(self, name: str | None, build: Callable[[], object], defaults: dict | None = None):
        """Release NAME, then build and own its successor (nothing is kept if build fails).

        A NAME of None is learnt from the built handle (its first program), and a
        handle of that name that was already loaded is released after the build.
        """
        if name is not None:
            self.release(name)
        program = build()
        if name is None:
            name = program.name
            self.release(name)
        program.name = name
        # The session, not the caller, decides what a handle does when it detaches itself.
        program._on_detach = self.forget
        if defaults:
            program.defaults = dict(defaults)
        self._programs[name] = program
        return program

    def release(self, name: str) -> bool:
        program = self._programs.pop(name, None)
        if program is None:
            return False
        program.detach()
        return True

    def forget(self, program) -> None:
        """A program detached by its own handle leaves the registry."""
        for name, p in list(self._programs.items()):
            if p is program:
                del self._programs[name]

    def release_all(self) -> int:
        """Detach every program, then close every resource; returns the number of programs."""
        names = list(self._programs)
        for name in reversed(names):
            self.release(name)
        for kind in reversed(list(self._resources)):
            self.close(kind)
        from .attach.perf import wait_closed

        wait_closed()  # "everything" includes the kernel's unloading, which detach leaves to a thread
        return len(names)

    def frame(self):
        import pandas as pd

        rows = [p.summary() for p in self._programs.values()]
        return pd.DataFrame(rows, columns=["name", "function", "section", "prog_type", "attached", "maps"])


SESSION = Session()
atexit.register(SESSION.release_all)
