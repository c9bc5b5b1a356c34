"""Lab cgroups: cgroup v2 directories the lab makes, runs processes in, and removes.

Every lab cgroup lives under ``<cgroup2 mount>/ebpf-lab/<owner pid>-<n>``. The
owner pid in the name lets a later lab process remove what a killed one left
(``sweep``, run before the first lab cgroup is made): a ``kill -9`` of the
kernel leaves at most an empty directory, because programs attach through BPF
links that die with their process, and the processes started in the cgroup
are killed with it (``cgroup.kill``) when it is closed.
"""
from __future__ import annotations

import functools
import itertools
import os
import shlex
import signal
import subprocess
import time

from .errors import BPFLabError

LAB_PARENT = "ebpf-lab"
_counter = itertools.count(1)


class CgroupError(BPFLabError):
    pass


def cgroup2_root() -> str:
    """Where cgroup v2 is mounted: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid)."""
    mounts = []
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                mounts.append(parts[1])
    if not mounts:
        raise CgroupError("no cgroup v2 hierarchy is mounted",
                          hint="mount it: mount -t cgroup2 none /sys/fs/cgroup/unified")
    return "/sys/fs/cgroup" if "/sys/fs/cgroup" in mounts else sorted(mounts, key=len)[0]


def lab_parent() -> str:
    return os.path.join(cgroup2_root(), LAB_PARENT)


def is_cgroup2_dir(path: str) -> bool:
    """A directory inside a mounted cgroup v2 hierarchy."""
    if not os.path.isfile(os.path.join(path, "cgroup.procs")):
        return False
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        roots = [p[1] for p in (ln.split() for ln in f) if len(p) > 2 and p[2] == "cgroup2"]
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots)


def _procs(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _populated(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.events")) as f:
            return any(ln.strip() == "populated 1" for ln in f)
    except FileNotFoundError:
        return False


def remove_tree(path: str, timeout: float = 10.0) -> None:
    """Kill every process in the cgroup and its children, then remove the directories, deepest first."""
    if not os.path.isdir(path):
        return
    for sub in sorted((os.path.join(path, d) for d in os.listdir(path)
                       if os.path.isdir(os.path.join(path, d))), reverse=True):
        remove_tree(sub, timeout)
    try:   # Linux 5.14: one write kills the whole subtree
        fd = os.open(os.path.join(path, "cgroup.kill"), os.O_WRONLY)
        try:
            os.write(fd, b"1")
        finally:
            os.close(fd)
    except OSError:
        for pid in _procs(path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    while _populated(path):   # a killed process leaves the cgroup when the kernel has reaped it
        if time.monotonic() > deadline:
            raise CgroupError(f"processes {_procs(path)} in {path} did not exit after SIGKILL",
                              hint="they may be stuck in the kernel (D state); see ps -o stat,pid")
        time.sleep(0.01)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def _owner(name: str) -> int | None:
    pid, sep, n = name.partition("-")
    return int(pid) if sep and pid.isdigit() and n.isdigit() else None


def sweep() -> list[str]:
    """Remove lab cgroups whose owner process is gone; returns the paths removed."""
    parent = lab_parent()
    if not os.path.isdir(parent):
        return []
    removed = []
    for name in sorted(os.listdir(parent)):
        path = os.path.join(parent, name)
        pid = _owner(name)
        if pid is None or not os.path.isdir(path) or os.path.exists(f"/proc/{pid}"):
            continue
        try:
            remove_tree(path)
            removed.append(path)
        except (OSError, CgroupError):
            continue   # another lab process sweeping at the same time, or a stuck process: next start
    _drop_parent_if_empty()
    return removed


def _drop_parent_if_empty() -> None:
    """The lab's parent cgroup goes with its last child; another lab process's child keeps it (EBUSY)."""
    try:
        os.rmdir(lab_parent())
    except OSError:
        pass


@functools.cache
def _swept_once() -> tuple[str, ...]:
    return tuple(sweep())


def lab_cgroups(pid: int | None = None) -> list[str]:
    """Paths of lab cgroups that exist now (of one owner pid, or all)."""
    try:
        parent = lab_parent()
        names = os.listdir(parent)
    except (OSError, CgroupError):
        return []
    return [os.path.join(parent, n) for n in sorted(names)
            if _owner(n) is not None and (pid is None or _owner(n) == pid)]


class LabCgroup:
    """One lab cgroup: ``run``/``popen`` start processes in it; ``close()`` kills them and removes it."""

    def __init__(self, path: str, name: str):
        self.path = path
        self.name = name
        self._fd: int | None = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._children: list[LabCgroup] = []

    @classmethod
    def make(cls, name: str = "lab") -> LabCgroup:
        _swept_once()
        parent = lab_parent()
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise CgroupError(f"cannot make the lab's cgroup parent {parent}: {exc.strerror}",
                              hint="lab cgroups need root and a writable cgroup v2 mount") from None
        while True:
            path = os.path.join(parent, f"{os.getpid()}-{next(_counter)}")
            try:
                os.mkdir(path)
                return cls(path, name)
            except FileExistsError:   # a fork of this process made the same name
                continue
            except FileNotFoundError:  # another lab process removed the empty parent meanwhile
                os.makedirs(parent, exist_ok=True)

    def child(self, name: str) -> LabCgroup:
        """A cgroup inside this one (``cg.child("web")``): its processes are in this cgroup's subtree too,
        so programs attached here run for them as well. Closed with this cgroup."""
        from .cell import check_identifier

        self._require_open()
        check_identifier(name, "child cgroup name")
        path = os.path.join(self.path, name)
        os.mkdir(path)
        self._children.append(LabCgroup(path, f"{self.name}/{name}"))
        return self._children[-1]

    # --- what the attachers and the magic need -----------------------------------
    @property
    def fd(self) -> int:
        self._require_open()
        return self._fd

    def _require_open(self) -> None:
        if self._fd is None:
            raise CgroupError(f"lab cgroup {self.name} is closed", hint="make a new one: cg = %bpf_cgroup")

    @property
    def closed(self) -> bool:
        return self._fd is None

    @property
    def id(self) -> int:
        """The cgroup id (the directory's inode), as bpf_get_current_cgroup_id() returns it."""
        return os.stat(self.path).st_ino

    def pids(self) -> list[int]:
        return _procs(self.path)

    # --- processes ----------------------------------------------------------------
    def _argv(self, cmd) -> list[str]:
        self._require_open()
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        # The shell joins the cgroup first, then becomes the command: nothing runs outside it.
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', os.path.join(self.path, "cgroup.procs"), *argv]

    def popen(self, cmd, **kwargs) -> subprocess.Popen:
        """``subprocess.Popen`` of ``cmd`` (a shell string or an argv list) inside this cgroup.

        The command is killed if this Python process dies (even by SIGKILL), so a
        killed kernel leaves no process of its own behind in the cgroup.
        """
        kwargs.setdefault("preexec_fn", _die_with_parent)
        return subprocess.Popen(self._argv(cmd), **kwargs)

    def run(self, cmd, *, input: str | None = None, timeout: float = 60.0, check: bool = True) -> str:
        """Run ``cmd`` inside this cgroup and return what it printed (stdout; stderr too on failure)."""
        try:
            done = subprocess.run(self._argv(cmd), input=input, capture_output=True, text=True, timeout=timeout,
                                  preexec_fn=_die_with_parent)
        except subprocess.TimeoutExpired:
            raise CgroupError(f"{_show(cmd)} did not finish within {timeout} s in {self.name}",
                              hint="pass timeout=..., or start it with cg.popen(...) and stop it yourself") from None
        if check and done.returncode != 0:
            raise CgroupError(f"{_show(cmd)} exited with status {done.returncode} in lab cgroup {self.name}",
                              detail=(done.stdout + done.stderr).strip()[-2000:],
                              hint="check=False returns the output whatever the status")
        return done.stdout

    # --- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Kill the processes still in the cgroup and remove it; idempotent."""
        if self._fd is None:
            return
        for child in reversed(self._children):   # their programs go first, as this cgroup's do
            child.close()
        _release_users(self)
        fd, self._fd = self._fd, None
        os.close(fd)
        remove_tree(self.path)
        _drop_parent_if_empty()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __fspath__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.pids())} process(es)"
        return f"<lab cgroup {self.name}: {self.path}, {state}>"


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG: kept across exec


def _release_users(cg: LabCgroup) -> None:
    """Programs of the session attached to the cgroup go first: nothing stays attached to a removed cgroup."""
    from .session import SESSION

    for name in SESSION.names():
        program = SESSION.get(name)
        if getattr(program, "uses", lambda _r: False)(cg):
            SESSION.release(name)


def _show(cmd) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(str(a) for a in cmd)


# --- the session's lab cgroups, by name ------------------------------------------------

def _kind(name: str) -> str:
    return f"cgroup:{name}"


def lab_cgroup(name: str = "lab") -> LabCgroup:
    """The session's lab cgroup NAME, made on first use; closed at exit or by ``close_lab_cgroup``."""
    from .cell import check_identifier
    from .session import SESSION

    check_identifier(name, "lab cgroup name")
    cg = SESSION.peek(_kind(name))
    if cg is not None and cg.closed:   # closed by hand (cg.close()): forget it and make a new one
        SESSION.close(_kind(name))
    return SESSION.resource(_kind(name), lambda: LabCgroup.make(name))


def close_lab_cgroup(name: str) -> bool:
    """Detach the programs attached to lab cgroup NAME, then kill its processes and remove it."""
    from .session import SESSION

    return SESSION.close(_kind(name))


def resolve(value, namespace: dict | None = None):
    """What ``--cgroup VALUE`` names: a LabCgroup object, or the path of the learner's own cgroup.

    In order: a LabCgroup itself; a variable of that name in ``namespace`` (the
    notebook's) holding a LabCgroup; a lab cgroup of the session by name; a
    cgroup v2 directory, absolute or relative to the cgroup2 mount.
    """
    if isinstance(value, LabCgroup) or value is None:
        return value
    text = os.fspath(value)
    if namespace is not None and isinstance(namespace.get(text), LabCgroup):
        return namespace[text]
    from .session import SESSION

    cg = SESSION.peek(_kind(text))
    if cg is not None and not cg.closed:
        return cg
    if not os.path.isabs(text):
        candidate = os.path.join(cgroup2_root(), text)
        if os.path.isdir(candidate):
            return candidate
    return text
