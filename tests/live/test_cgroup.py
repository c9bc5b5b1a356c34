"""cgroup_skb and the cgroup/* hooks (BCC engine) on a lab cgroup: real syscalls and traffic from a child in it."""
from __future__ import annotations

import socket

import pytest

from tests.conftest import require
from tests.live.cgroup_helpers import HOSTS, array, build, cg, free_port, run_py, servers

pytestmark = pytest.mark.live
FIXTURES = (cg, servers,)   # imported fixtures: pytest finds them by name


@pytest.fixture(autouse=True)
def _cgroup_family():
    require("cgroup")


UDP_EXCHANGE = """
import json, socket
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); srv.bind(("127.0.0.1", 0))
cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); cli.bind(("127.0.0.1", 0))
for i in range(5):
    cli.sendto(b"x" * 100, srv.getsockname())
    data, peer = srv.recvfrom(4096)
    srv.sendto(data, peer)
    cli.recvfrom(4096)
print(json.dumps({"ok": True}))
"""

SKB_COUNT = """
BPF_ARRAY(stats, u64, 2);
int count(struct __sk_buff *skb) {
    u8 proto = 0;
    int packets = 0, bytes = 1;
    if (skb->protocol != bpf_htons(0x0800)) return 1;
    bpf_skb_load_bytes(skb, 9, &proto, 1);
    if (proto != 17) return 1;
    u64 *p = stats.lookup(&packets), *b = stats.lookup(&bytes);
    if (p) __sync_fetch_and_add(p, 1);
    if (b) __sync_fetch_and_add(b, skb->len);
    return 1;
}
"""


def test_cgroup_skb_counts_exact_packets_and_bytes_of_a_udp_exchange(cg):
    egress = build(SKB_COUNT, "cgroup_skb/egress", name="egress", cgroup=cg)
    ingress = build(SKB_COUNT, "cgroup_skb/ingress", name="ingress", cgroup=cg)
    try:
        assert run_py(cg, UDP_EXCHANGE) == {"ok": True}
        # 5 datagrams and 5 echoes, each 20 (IPv4) + 8 (UDP) + 100 bytes; both ends are in the cgroup.
        assert array(egress, "stats") == [10, 10 * 128]
        assert array(ingress, "stats") == [10, 10 * 128]
    finally:
        egress.detach()
        ingress.detach()


def test_cgroup_skb_egress_firewall_drops_with_eperm(cg):
    cell = """
BPF_ARRAY(dropped, u64, 1);
int fw(struct __sk_buff *skb) {
    int k = 0;
    u8 proto = 0;
    u16 dport = 0;
    if (skb->protocol != bpf_htons(0x0800)) return 1;
    bpf_skb_load_bytes(skb, 9, &proto, 1);
    bpf_skb_load_bytes(skb, 22, &dport, 2);   /* an unconnected socket's skb->remote_port is 0 */
    if (proto == 17 && dport == bpf_htons(PORT)) { dropped.increment(k); return 0; }
    return 1;
}"""
    port = free_port(4, socket.SOCK_DGRAM)
    with build(cell.replace("PORT", str(port)), "cgroup_skb/egress", cgroup=cg) as h:
        out = run_py(cg, f"""
            import errno, json, socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.sendto(b"hi", ("127.0.0.1", {port})); r = "sent"
            except OSError as e:
                r = errno.errorcode[e.errno]
            print(json.dumps({{"r": r}}))""")
        assert out == {"r": "EPERM"}
        assert array(h, "dropped") == [1]


def test_sock_create_denies_udp_sockets_and_sock_release_counts_closes(cg):
    deny = """
BPF_ARRAY(denied, u64, 1);
int no_udp(struct bpf_sock *sk) {
    int k = 0;
    if (sk->type == 2 /* SOCK_DGRAM */) { denied.increment(k); return 0; }
    return 1;
}"""
    count = """
BPF_ARRAY(released, u64, 1);
int closes(struct bpf_sock *sk) {
    int k = 0;
    if (sk->type == 1 /* SOCK_STREAM */) released.increment(k);
    return 1;
}"""
    with build(deny, "cgroup/sock_create", cgroup=cg) as d, build(count, "cgroup/sock_release", cgroup=cg) as r:
        out = run_py(cg, """
            import errno, json, socket
            res = []
            for _ in range(3):
                try:
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM); res.append("created")
                except OSError as e:
                    res.append(errno.errorcode[e.errno])
            for _ in range(4):
                socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            print(json.dumps(res))""")
        assert out == ["EPERM"] * 3
        assert array(d, "denied") == [3]
        assert array(r, "released") == [4]


@pytest.mark.parametrize("version", [4, 6])
def test_post_bind_denies_one_port(cg, version):
    cell = """
BPF_ARRAY(seen, u64, 2);
int guard(struct bpf_sock *sk) {
    int all = 0, denied = 1;
    seen.increment(all);
    if (sk->src_port == PORT) { seen.increment(denied); return 0; }
    return 1;
}"""
    port = free_port(version)
    with build(cell.replace("PORT", str(port)), f"cgroup/post_bind{version}", cgroup=cg) as h:
        out = run_py(cg, f"""
            import errno, json, socket
            res = []
            for port in (0, {port}):
                s = socket.socket(socket.AF_INET{'6' if version == 6 else ''}, socket.SOCK_STREAM)
                try:
                    s.bind(("{HOSTS[version]}", port)); res.append("bound")
                except OSError as e:
                    res.append(errno.errorcode[e.errno])
            print(json.dumps(res))""")
        assert out == ["bound", "EPERM"]
        assert array(h, "seen") == [2, 1]


@pytest.mark.parametrize("version", [4, 6])
def test_bind_rewrites_the_port(cg, version):
    cell = """
int rebind(struct bpf_sock_addr *ctx) {
    if (ctx->user_port == bpf_htons(FROM)) ctx->user_port = bpf_htons(TO);
    return 1;
}"""
    src, dst = free_port(version), free_port(version)
    while dst == src:
        dst = free_port(version)
    with build(cell.replace("FROM", str(src)).replace("TO", str(dst)), f"cgroup/bind{version}", cgroup=cg):
        out = run_py(cg, f"""
            import json, socket
            s = socket.socket(socket.AF_INET{'6' if version == 6 else ''}, socket.SOCK_STREAM)
            s.bind(("{HOSTS[version]}", {src}))
            print(json.dumps(s.getsockname()[1]))""")
    assert out == dst


CONNECT_CHILD = """
import errno, json, socket
res = []
for port in PORTS:
    s = socket.socket(FAMILY, socket.SOCK_STREAM)
    try:
        s.connect((HOST, port)); res.append(s.recv(16).decode())
    except OSError as e:
        res.append(errno.errorcode[e.errno])
    s.close()
print(json.dumps(res))
"""


def connect_child(version: int, ports) -> str:
    fam = "socket.AF_INET6" if version == 6 else "socket.AF_INET"
    return (CONNECT_CHILD.replace("PORTS", repr(list(ports))).replace("FAMILY", fam)
            .replace("HOST", repr(HOSTS[version])))


@pytest.mark.parametrize("version", [4, 6])
def test_connect_denies_one_port_and_rewrites_another(cg, servers, version):
    a, b, denied = servers(b"A", version), servers(b"B", version), servers(b"D", version)
    cell = """
BPF_ARRAY(calls, u64, 1);
int policy(struct bpf_sock_addr *ctx) {
    int k = 0;
    calls.increment(k);
    if (ctx->user_port == bpf_htons(DENIED)) return 0;
    if (ctx->user_port == bpf_htons(FROM)) ctx->user_port = bpf_htons(TO);
    return 1;
}"""
    cell = cell.replace("DENIED", str(denied.port)).replace("FROM", str(a.port)).replace("TO", str(b.port))
    with build(cell, f"cgroup/connect{version}", cgroup=cg) as h:
        out = run_py(cg, connect_child(version, [a.port, denied.port, b.port]))
        assert out == ["B", "EPERM", "B"]
        assert array(h, "calls") == [3]
    assert (a.accepted, b.accepted, denied.accepted) == (0, 2, 0)
    # Detached: the same child reaches A again, outside the lab's policy.
    assert run_py(cg, connect_child(version, [a.port])) == ["A"]


def test_allow_multi_runs_both_programs_and_a_deny_wins(cg, servers):
    a = servers(b"A")
    counter = """
BPF_ARRAY(calls, u64, 1);
int counter(struct bpf_sock_addr *ctx) { int k = 0; calls.increment(k); return 1; }"""
    denier = """
BPF_ARRAY(calls, u64, 1);
int denier(struct bpf_sock_addr *ctx) { int k = 0; calls.increment(k); return 0; }"""
    # The denier first: the counter attached after it still runs, and the deny still wins.
    with build(denier, "cgroup/connect4", cgroup=cg) as d, build(counter, "cgroup/connect4", cgroup=cg) as c:
        assert run_py(cg, connect_child(4, [a.port, a.port])) == ["EPERM", "EPERM"]
        assert array(d, "calls") == [2] and array(c, "calls") == [2]
        d.detach()
        assert run_py(cg, connect_child(4, [a.port])) == ["A"]
        assert array(c, "calls") == [3]
    assert a.accepted == 1


@pytest.mark.parametrize("version", [4, 6])
def test_sendmsg_rewrites_the_destination_of_a_datagram(cg, version):
    fam = socket.AF_INET6 if version == 6 else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as a, socket.socket(fam, socket.SOCK_DGRAM) as b:
        a.bind((HOSTS[version], 0))
        b.bind((HOSTS[version], 0))
        pa, pb = a.getsockname()[1], b.getsockname()[1]
        cell = """
int resend(struct bpf_sock_addr *ctx) {
    if (ctx->user_port == bpf_htons(FROM)) ctx->user_port = bpf_htons(TO);
    return 1;
}""".replace("FROM", str(pa)).replace("TO", str(pb))
        with build(cell, f"cgroup/sendmsg{version}", cgroup=cg):
            run_py(cg, f"""
                import json, socket
                s = socket.socket(socket.AF_INET{'6' if version == 6 else ''}, socket.SOCK_DGRAM)
                s.sendto(b"to-a", ("{HOSTS[version]}", {pa}))
                print(json.dumps(True))""")
        b.settimeout(10)
        assert b.recv(64) == b"to-a"
        a.setblocking(False)
        with pytest.raises(BlockingIOError):  # loopback delivers before sendto() returns
            a.recv(64)


@pytest.mark.parametrize("version", [4, 6])
def test_recvmsg_rewrites_the_source_a_reader_sees(cg, version):
    fake = 4242
    cell = """
int disguise(struct bpf_sock_addr *ctx) { ctx->user_port = bpf_htons(FAKE); return 1; }
""".replace("FAKE", str(fake))
    with build(cell, f"cgroup/recvmsg{version}", cgroup=cg):
        out = run_py(cg, f"""
            import json, socket
            fam = socket.AF_INET{'6' if version == 6 else ''}
            r = socket.socket(fam, socket.SOCK_DGRAM); r.bind(("{HOSTS[version]}", 0))
            s = socket.socket(fam, socket.SOCK_DGRAM); s.bind(("{HOSTS[version]}", 0))
            s.sendto(b"hello", r.getsockname())
            data, peer = r.recvfrom(64)
            print(json.dumps([data.decode(), peer[1], s.getsockname()[1] != {fake}]))""")
    assert out == ["hello", fake, True]


@pytest.mark.parametrize("version", [4, 6])
def test_getpeername_and_getsockname_rewrite_what_the_socket_reports(cg, servers, version):
    srv = servers(b"A", version)
    peer = "int peer(struct bpf_sock_addr *ctx) { ctx->user_port = bpf_htons(1111); return 1; }"
    name = "int self_(struct bpf_sock_addr *ctx) { ctx->user_port = bpf_htons(2222); return 1; }"
    with (build(peer, f"cgroup/getpeername{version}", cgroup=cg),
          build(name, f"cgroup/getsockname{version}", cgroup=cg)):
        out = run_py(cg, f"""
            import json, socket
            s = socket.socket(socket.AF_INET{'6' if version == 6 else ''}, socket.SOCK_STREAM)
            s.connect(("{HOSTS[version]}", {srv.port}))
            print(json.dumps([s.getpeername()[1], s.getsockname()[1], s.recv(8).decode()]))""")
    assert out == [1111, 2222, "A"]


def test_sysctl_write_is_refused_and_reads_are_seen(cg):
    cell = """
BPF_ARRAY(calls, u64, 2);
int guard(struct bpf_sysctl *ctx) {
    int reads = 0, writes = 1;
    char name[16] = {};
    bpf_sysctl_get_name(ctx, name, sizeof(name), 1 /* BPF_F_SYSCTL_BASE_NAME: "somaxconn" */);
    if (name[0] != 's' || name[1] != 'o' || name[2] != 'm' || name[3] != 'a') return 1;
    if (ctx->write) { calls.increment(writes); return 0; }
    calls.increment(reads);
    return 1;
}"""
    path = "/proc/sys/net/core/somaxconn"
    with build(cell, "cgroup/sysctl", cgroup=cg) as h:
        out = run_py(cg, f"""
            import errno, json, os
            fd = os.open("{path}", os.O_RDONLY)
            value = os.read(fd, 64).decode()   # one read(): one call of the program
            os.close(fd)
            fd = os.open("{path}", os.O_WRONLY)
            try:
                os.write(fd, value.encode()); r = "written"   # the same value: harmless if not refused
            except OSError as e:
                r = errno.errorcode[e.errno]
            print(json.dumps([r, value.strip().isdigit()]))""")
        assert out == ["EPERM", True]
        assert array(h, "calls") == [1, 1]


def test_sockopt_hooks_see_the_calls_and_refuse_one(cg):
    get = """
BPF_ARRAY(calls, u64, 1);
int on_get(struct bpf_sockopt *ctx) {
    int k = 0;
    if (ctx->level == 1 && ctx->optname == 8 /* SOL_SOCKET, SO_RCVBUF */) calls.increment(k);
    return 1;
}"""
    set_ = """
BPF_ARRAY(calls, u64, 2);
int on_set(struct bpf_sockopt *ctx) {
    int all = 0, refused = 1;
    if (ctx->level != 1) return 1;
    calls.increment(all);
    if (ctx->optname == 7 /* SO_SNDBUF */) { calls.increment(refused); return 0; }
    return 1;
}"""
    with build(get, "cgroup/getsockopt", cgroup=cg) as g, build(set_, "cgroup/setsockopt", cgroup=cg) as s:
        out = run_py(cg, """
            import errno, json, socket
            s = socket.socket()
            res = [s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 0 for _ in range(3)]
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536); res.append("set")
            except OSError as e:
                res.append(errno.errorcode[e.errno])
            print(json.dumps(res))""")
        assert out == [True, True, True, "EPERM"]
        assert array(g, "calls") == [3]
        assert array(s, "calls") == [2, 1]


def test_dev_denies_opening_dev_zero(cg):
    cell = """
BPF_ARRAY(seen, u64, 2);
int devices(struct bpf_cgroup_dev_ctx *ctx) {
    int zero = 0, null = 1;
    if (ctx->major == 1 && ctx->minor == 5) { seen.increment(zero); return 0; }
    if (ctx->major == 1 && ctx->minor == 3) seen.increment(null);
    return 1;
}"""
    with build(cell, "cgroup/dev", cgroup=cg) as h:
        out = run_py(cg, """
            import errno, json, os
            res = []
            for dev in ("/dev/zero", "/dev/null"):
                try:
                    os.close(os.open(dev, os.O_RDONLY)); res.append("opened")
                except OSError as e:
                    res.append(errno.errorcode[e.errno])
            print(json.dumps(res))""")
        assert out == ["EPERM", "opened"]
        assert array(h, "seen") == [1, 1]


def test_a_cgroup_program_without_cgroup_is_refused_before_anything_stays(live):
    from ebpf_magic.errors import AttachError

    with pytest.raises(AttachError, match="--cgroup"):
        build("int f(struct bpf_sock_addr *ctx) { return 1; }", "cgroup/connect4")
