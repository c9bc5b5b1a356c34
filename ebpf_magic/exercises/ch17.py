"""Chapter 17's exercise: a sockops program that counts established TCP connections per server port."""
from __future__ import annotations

import json
import random
import sys
import textwrap

from . import NotYet, exercise, require_map

# Runs inside the learner's cgroup. Servers listen on the secret ports; every connection is accepted
# (so both ends are established before it closes), and connect() to the refused port fails.
_WORKLOAD = """
import errno, json, random, socket, sys
plan = json.loads(sys.argv[1])
rng = random.Random(plan["seed"])

def listen_on_random_port():
    while True:
        port = rng.randrange(20000, 40000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        s.listen(16)
        return s, port

def closed_port(taken):
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in taken:
            return port

(secret, p), (decoy, q) = listen_on_random_port(), listen_on_random_port()
r = closed_port({p, q})
refused = 0
order = ["p"] * plan["k_p"] + ["q"] * plan["k_q"] + ["r"] * plan["k_r"]
rng.shuffle(order)
for which in order:
    if which == "r":
        try:
            socket.create_connection(("127.0.0.1", r), timeout=10).close()
        except ConnectionRefusedError:
            refused += 1
        continue
    server = secret if which == "p" else decoy
    c = socket.create_connection(server.getsockname(), timeout=10)
    s, _ = server.accept()
    c.close()
    s.close()
print(json.dumps({"p": p, "q": q, "r": r, "refused": refused}))
"""


def _lab_cgroup(handle):
    """The lab cgroup the learner's sockops program is attached to."""
    from ..cgroups import LabCgroup

    for a in getattr(handle, "attachments", []):
        if a.attached and isinstance(a.target, LabCgroup) and not a.target.closed:
            return a.target
    raise NotYet("the program is not attached to a lab cgroup: load it with %%bpf sockops --cgroup cg "
                 "(after cg = %bpf_cgroup)")


def _swap16(port: int) -> int:
    return ((port & 0xFF) << 8) | (port >> 8)


@exercise("17-established-per-port", "17-sockops-and-sockmap",
          "sockops: count established connections per server port")
def established_per_port(handle) -> str:
    counts_map = require_map(handle, "established")
    cg = _lab_cgroup(handle)
    k_p = random.randint(3, 9)
    k_q = random.choice([k for k in range(1, 10) if k not in (k_p, 2 * k_p)])
    plan = {"seed": random.getrandbits(32), "k_p": k_p, "k_q": k_q, "k_r": 2}
    counts_map.clear()   # only this run's connections count
    out = cg.run([sys.executable, "-c", textwrap.dedent(_WORKLOAD), json.dumps(plan)], timeout=120)
    ran = json.loads(out.strip().splitlines()[-1])
    p, q, r = ran["p"], ran["q"], ran["r"]
    if ran["refused"] != plan["k_r"]:
        raise NotYet(f"the check's workload went wrong: {ran['refused']} of {plan['k_r']} connect() calls "
                     f"to port {r} were refused (is something listening there?)")
    frame = counts_map.to_frame()
    got = {int(k): int(v) for k, v in zip(frame["key"], frame["value"], strict=True) if int(v)}
    made = f"the check made {k_p} connections to port {p} and {k_q} to port {q}"
    if not got:
        raise NotYet(f"'established' is empty: {made}; on the op that says a connection is established, "
                     f"add 1 under its server's port")
    if p not in got:
        if _swap16(p) in got:
            raise NotYet(f"port {p} is counted under {_swap16(p)}, its bytes swapped: skops->local_port is in "
                         f"host byte order, skops->remote_port needs bpf_ntohl()")
        raise NotYet(f"no entry for port {p}: {made}; the map has {_show(got)}")
    if got[p] != k_p:
        why = (" (both ends of each connection counted: the client's ACTIVE_ESTABLISHED_CB too)"
               if got[p] == 2 * k_p else "")
        raise NotYet(f"port {p} counted {got[p]}, expected {k_p}{why}")
    if got.get(q) != k_q:
        raise NotYet(f"port {q} counted {got.get(q, 0)}, expected {k_q}")
    if r in got:
        raise NotYet(f"port {r} counted {got[r]}, but every connect() to it was refused: count connections "
                     f"that were established, not attempts (BPF_SOCK_OPS_TCP_CONNECT_CB)")
    extra = {k: v for k, v in got.items() if k not in (p, q)}
    if extra:
        raise NotYet(f"entries for ports no server of the check listens on: {_show(extra)} (the clients' "
                     f"ephemeral ports? key by the server's port)")
    return (f"port {p}: {k_p} connections, port {q}: {k_q}, refused port {r}: none; "
            f"each connection counted once, by its server's port")


def _show(counts: dict[int, int]) -> str:
    items = sorted(counts.items())
    text = ", ".join(f"{k}: {v}" for k, v in items[:8])
    return "{" + text + (", ..." if len(items) > 8 else "") + "}"
