"""Chapter 16's exercise: a cgroup/connect4 program that denies exactly one secret port.

The check listens on a few loopback ports, writes one of them (the secret) into
the learner's ``secret`` array, and starts a process in the cgroup the program
is attached to that calls ``connect()`` on every port. The verdict comes from
the syscalls' own results: EPERM for the secret port, success for the others.
Two rounds with different secrets, so a port written into the program fails.
"""
from __future__ import annotations

import ctypes as ct
import json
import random
import socket
import sys

from . import NotYet, exercise

N_PORTS = 6
ROUNDS = 2

_CHILD = """
import errno, json, socket, sys
res = {}
for port in json.loads(sys.argv[1]):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", port)); res[port] = "connected"
    except OSError as e:
        res[port] = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    s.close()
print(json.dumps(res))
"""


def _lab_cgroup_of(handle):
    """The lab cgroup the handle's cgroup/connect4 program is attached to."""
    from ..cgroups import LabCgroup

    links = [a for a in getattr(handle, "attachments", []) if a.attached]
    connect4 = [a for a in links if a.kind == "cgroup/connect4"]
    if not connect4:
        kinds = ", ".join(sorted({a.kind for a in links})) or "nothing"
        raise NotYet(f"the program must be attached as cgroup/connect4 (it is attached to {kinds}): "
                     "%%bpf cgroup/connect4 --cgroup cg -n HANDLE")
    target = connect4[0].target
    if not isinstance(target, LabCgroup) or target.closed:
        raise NotYet("attach it to the lab cgroup (--cgroup cg after cg = %bpf_cgroup): "
                     "the check starts its connecting process there")
    return target


def _map(handle, name: str):
    names = list(handle.map_names)   # a property on both engines' handles
    if name not in names:
        raise NotYet(f"the program needs a map named {name!r} (BPF_ARRAY({name}, u32, 1)); "
                     f"it has {', '.join(names) or 'no maps'}")
    return handle[name]


def _write_secret(view, port: int) -> None:
    """Index 0 of the learner's array := port. A CO-RE cell's maps are read-only through its handle,
    so the check writes those through libbpf, as a little-endian value of the map's own size."""
    info = getattr(view, "info", None)
    if info is None:
        view[0] = port
        return
    from .. import libbpf

    if info.key_size != 4 or info.value_size not in (2, 4, 8):
        raise NotYet(f"secret must be an array of u32 (key u32, value u32); it has keys of {info.key_size} "
                     f"and values of {info.value_size} bytes")
    key, value = ct.c_uint32(0), ct.c_uint64(port)
    ret = libbpf.lib().bpf_map_update_elem(info.fd, ct.byref(key), ct.byref(value), 0)
    if ret != 0:
        raise NotYet(f"the check could not write the secret into the map secret: "
                     f"{libbpf.strerror(libbpf.errno_of(ret))}; make it BPF_MAP_TYPE_ARRAY, one u32 entry")


def _listeners(n: int) -> list[socket.socket]:
    """Loopback listeners: a connect() completes in their backlog, nobody needs to accept."""
    made = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        made.append(s)
    return made


def _round(cg, ports: list[int], secret: int, number: int) -> None:
    order = random.sample(ports, len(ports))
    out = cg.run([sys.executable, "-c", _CHILD, json.dumps(order)], check=False)
    try:
        results = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
    except (ValueError, IndexError):
        raise NotYet(f"the connecting process in {cg.name} printed no result: {out.strip()[-200:]!r}") from None
    where = f"round {number} of {ROUNDS}" + (" (a new secret port)" if number > 1 else "")
    others = [p for p in ports if p != secret]
    failed = [p for p in others if results[p] != "connected"]
    if results[secret] == "connected":
        raise NotYet(f"{where}: connect() to the secret port {secret} succeeded"
                     + (f", and {len(failed)} of the {len(others)} other ports failed" if failed else "")
                     + ": return 0 when ctx->user_port is the secret port (network byte order)")
    if results[secret] != "EPERM":
        raise NotYet(f"{where}: connect() to the secret port {secret} failed with {results[secret]}, not EPERM")
    if failed:
        raise NotYet(f"{where}: the secret port {secret} got EPERM, but so did {len(failed)} of the "
                     f"{len(others)} other ports (e.g. {failed[0]}: {results[failed[0]]}): deny only the secret port")


@exercise("16-deny-secret-port", "16-cgroup", "cgroup/connect4: deny exactly the secret port")
def deny_secret_port(handle) -> str:
    cg = _lab_cgroup_of(handle)
    secret_map = _map(handle, "secret")
    listeners = _listeners(N_PORTS)
    try:
        ports = [s.getsockname()[1] for s in listeners]
        for number, secret in enumerate(random.sample(ports, ROUNDS), 1):
            _write_secret(secret_map, secret)
            _round(cg, ports, secret, number)
    finally:
        for s in listeners:
            s.close()
    return (f"{ROUNDS} rounds of {N_PORTS} connect() calls from the lab cgroup, each with a new secret port: "
            f"only the secret port got EPERM, the other {N_PORTS - 1} connected")
