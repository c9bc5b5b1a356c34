"""``%bpf_cgroup``: the lab's cgroups from a notebook."""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments


@magics_class
class CgroupMagics(Magics):
    @magic_arguments()
    @argument("name", nargs="?", default="lab",
              help="the lab cgroup's name in this session (default: lab); a cell's --cgroup finds it "
                   "by this name or by the variable it was assigned to")
    @argument("--close", action="store_true",
              help="detach the programs attached to it, kill its processes and remove it")
    @argument("--list", action="store_true", help="the lab cgroups of this kernel session, as a DataFrame")
    @line_magic
    def bpf_cgroup(self, line):
        """cg = %bpf_cgroup [NAME]: a cgroup v2 that the lab makes, and removes at exit.

        ``cg.run(cmd)`` runs a command (a shell string or an argv list) inside it
        and returns its output; ``cg.popen(cmd, ...)`` starts one; ``cg.pids()``,
        ``cg.path``, ``cg.id`` (bpf_get_current_cgroup_id()). Attach with
        ``%%bpf cgroup/connect4 --cgroup cg``. Running it again with the same
        NAME returns the same cgroup; ``%bpf_cgroup NAME --close`` removes it.
        """
        from . import cgroups
        from .magics import _parse

        args = _parse(self.bpf_cgroup, line)
        if args.list:
            return _frame()
        if args.close:
            if not cgroups.close_lab_cgroup(args.name):
                from .errors import BPFLabError

                raise BPFLabError(f"no lab cgroup {args.name!r} is open", hint="%bpf_cgroup --list shows them")
            print(f"closed lab cgroup {args.name}")
            return None
        return cgroups.lab_cgroup(args.name)


def _frame():
    import os

    import pandas as pd

    from . import cgroups
    from .session import SESSION

    rows = []
    for path in cgroups.lab_cgroups(os.getpid()):
        names = [n for n in SESSION.names() if any(a.attached and getattr(a.target, "path", None) == path
                                                     for a in SESSION.get(n).attachments)]
        with open(os.path.join(path, "cgroup.procs")) as f:
            rows.append({"path": path, "id": os.stat(path).st_ino, "processes": len(f.read().split()),
                         "programs": ", ".join(names) or "-"})
    return pd.DataFrame(rows, columns=["path", "id", "processes", "programs"])



def sweep_stale() -> None:
    """At extension load: remove the lab cgroups of lab processes that died (a kill -9 leaves one)."""
    from . import cgroups
    from .errors import BPFLabError

    try:
        cgroups.sweep()
    except (BPFLabError, OSError):
        pass   # no cgroup v2 or not root: nothing of the lab's can be there
