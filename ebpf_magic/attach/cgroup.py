"""cgroup_skb, every cgroup/* hook and sockops: a BPF link on a cgroup v2 directory.

Both engines attach the same way: ``BPF_LINK_CREATE(prog_fd, cgroup_fd,
attach_type)``. A link always attaches in the kernel's multi mode
(``BPF_F_ALLOW_MULTI``): every program linked to the cgroup, and to its
ancestors, runs; for the hooks that allow or deny, one that denies wins.
Closing the link (or the death of the process holding it) detaches.
"""
from __future__ import annotations

import ctypes as ct
import os

from .. import libbpf
from ..errors import AttachError, UsageError
from .base import Attachment, Request, fd_link

_EXAMPLE = "%%bpf cgroup/connect4 --cgroup cg   (after cg = %bpf_cgroup)"


def check_options(options) -> None:
    """--cgroup names a live lab cgroup or a cgroup v2 directory; --map is HANDLE:MAP or MAP."""
    from .. import cgroups

    cg = options.cgroup
    if isinstance(cg, cgroups.LabCgroup):
        if cg.closed:
            raise UsageError(f"--cgroup: lab cgroup {cg.name} is closed", hint="make another: cg = %bpf_cgroup")
    elif cg is not None:
        path = cgroups.resolve(cg)
        if not isinstance(path, str) or not cgroups.is_cgroup2_dir(path):
            raise UsageError(f"--cgroup {cg!r} is neither a lab cgroup nor a cgroup v2 directory",
                             hint=f"make one with cg = %bpf_cgroup, or give a directory under "
                                  f"{_root_or_none()} (cat /proc/self/cgroup shows yours)")
        options.cgroup = path
    if options.map is not None:
        handle, sep, name = str(options.map).rpartition(":")
        parts = [handle, name] if sep else [name]
        if not all(p.isidentifier() for p in parts):
            raise UsageError(f"--map {options.map!r} is not HANDLE:MAP or MAP",
                             hint="e.g. --map est:sock_hash (the map sock_hash of the handle est)")


def _root_or_none() -> str:
    from .. import cgroups

    try:
        return cgroups.cgroup2_root()
    except cgroups.CgroupError:
        return "the cgroup2 mount (none is mounted)"


def _open(cg) -> tuple[int, str, object]:
    """(fd, how to show it, the session resource or None); the fd is the caller's to close."""
    from .. import cgroups

    if isinstance(cg, cgroups.LabCgroup):
        return os.dup(cg.fd), f"lab cgroup {cg.name}", cg
    try:
        return os.open(cg, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), cg, None
    except OSError as exc:
        raise AttachError(f"cannot open cgroup {cg}: {exc.strerror}",
                          hint="give a cgroup v2 directory, or a lab cgroup: cg = %bpf_cgroup") from None


def cgroup(req: Request) -> list[Attachment]:
    """A BPF link of the program on the cgroup, with the SEC's attach type."""
    sec = req.section
    if req.options.cgroup is None:
        raise AttachError(f"{sec.name} attaches to a cgroup, and the magic line names none",
                          hint=f"add --cgroup: {_EXAMPLE}; or --cgroup /sys/fs/cgroup/... for your own")
    if sec.attach_type is None:
        raise AttachError(f"{sec.name} does not say which cgroup hook",
                          hint="name the hook: cgroup_skb/ingress, cgroup_skb/egress, cgroup/sock_create, ...")
    fd, where, resource = _open(req.options.cgroup)
    try:
        opts = libbpf.LinkCreateOpts(sz=ct.sizeof(libbpf.LinkCreateOpts))
        link = libbpf.lib().bpf_link_create(req.fd, fd, int(sec.attach_type), ct.byref(opts))
    finally:
        os.close(fd)   # the link holds the cgroup itself
    if link < 0:
        err = libbpf.errno_of(link)
        raise AttachError(f"attaching {req.fn} ({sec.name}) to {where}: {libbpf.strerror(err)}",
                          hint=_hint(err, sec))
    return [fd_link(sec.name, where, link, target=resource)]


def _hint(err: int, sec) -> str:
    import errno

    if err == errno.EINVAL:
        return (f"the program must be loaded as {sec.prog_type.name} with expected attach type "
                f"{sec.attach_type.name}; check the SEC name")
    if err in (errno.EBADF, errno.ENOTDIR):
        return "--cgroup must be a cgroup v2 directory"
    return "see %bpf_features for this family"
