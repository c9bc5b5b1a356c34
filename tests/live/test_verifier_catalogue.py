"""The failure catalogue, live: each entry triggered by a real cell on this kernel, its explanation checked.

Every case is a small program a learner could write; the test loads it for
real (BCC or libbpf, as the cell says), expects the lab's error and checks
the catalogue's cause, the C name it found, the words of the explanation and
fix, that the rendered error stays short and that nothing stays loaded.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest

from ebpf_magic import loader
from ebpf_magic.errors import AttachError, BPFLabError, CompileError, VerifierError
from tests.conftest import held_prog_ids

pytestmark = pytest.mark.live

HEADERS = """\
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
"""
GPL = 'char LICENSE[] SEC("license") = "GPL";\n'


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def core(text: str, licence: str | None = GPL) -> str:
    """A libbpf (CO-RE) cell: the usual includes, a licence, then the program."""
    return HEADERS + (licence or "") + dedent(text)


@dataclass
class Case:
    id: str
    cause: str
    cell: str
    sec: str | None = None
    variable: str | None = None
    words: list[str] = field(default_factory=list)
    error: type = VerifierError
    located: bool = True        # the error names a cell line
    where_has: str = ""         # ... and that line holds this text


CASES = [
    Case("null_map_value", "null_map_value", dedent("""\
        BPF_HASH(counts, u32, u64);
        int f(void *ctx) {
            u32 pid = 1;
            u64 *seen = counts.lookup(&pid);
            u64 next = *seen + 1;
            return (int)next;
        }
        """),
         sec='tracepoint/syscalls/sys_enter_getpid', variable='seen', words=['NULL', 'if (!seen)']),
    Case("null_map_value_core", "null_map_value", core("""\
        struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, u32); __type(value, u64); } counts SEC(".maps");
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u32 pid = 1;
            u64 *seen = bpf_map_lookup_elem(&counts, &pid);
            *seen += 1;
            return 0;
        }
        """),
         variable='seen', words=['NULL', 'if (!seen)']),
    Case("unbounded_index", "unbounded_index", dedent("""\
        BPF_ARRAY(slots, u64, 1);
        int f(void *ctx) {
            u32 zero = 0;
            u64 *arr = slots.lookup(&zero);
            if (!arr) return 0;
            u32 idx = bpf_get_prandom_u32();
            char *p = (char *)arr;
            return p[idx];
        }
        """),
         sec='tracepoint/syscalls/sys_enter_getpid', variable='idx', words=['idx >=']),
    Case("out_of_range_index", "map_value_out_of_range", dedent("""\
        struct val { u64 hist[8]; };
        BPF_ARRAY(slots, struct val, 1);
        int f(void *ctx) {
            u32 zero = 0;
            struct val *v = slots.lookup(&zero);
            if (!v) return 0;
            u32 bucket = bpf_get_prandom_u32() & 15;
            v->hist[bucket] += 1;
            return 0;
        }
        """),
         sec='tracepoint/syscalls/sys_enter_getpid', variable='bucket', words=['offset 120', '64-byte']),
    Case("ptr_arith_scalar", "map_value_out_of_range", core("""\
        struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, u32); __type(value, u64); } vals SEC(".maps");
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u32 zero = 0;
            u64 *v = bpf_map_lookup_elem(&vals, &zero);
            if (!v) return 0;
            long off = (long)bpf_get_prandom_u32() - 100;
            char *p = (char *)v + off;
            return *p;
        }
        """),
         variable=None, words=['offset -100']),
    Case("packet_bounds", "packet_bounds", core("""\
        SEC("xdp")
        int f(struct xdp_md *ctx) {
            void *data = (void *)(long)ctx->data;
            struct ethhdr *eth = data;
            if (eth->h_proto == bpf_htons(0x0800))
                return XDP_DROP;
            return XDP_PASS;
        }
        """),
         variable='eth', words=['(eth + 1) > ', 'data_end']),
    Case("packet_bounds_tc", "pkt_end_arith", core("""\
        SEC("tc")
        int f(struct __sk_buff *skb) {
            void *data = (void *)(long)skb->data;
            void *data_end = (void *)(long)skb->data_end;
            struct iphdr *ip = data + 14;
            if ((void *)(ip + 1) > data_end + 20)
                return 0;
            return ip->protocol;
        }
        """),
         variable=None, words=['data_end']),
    Case("ctx_access_socket", "ctx_access", core("""\
        SEC("socket")
        int f(struct __sk_buff *skb) {
            void *data = (void *)(long)skb->data;
            return data != 0;
        }
        """),
         variable='skb->data', words=['bpf_skb_load_bytes', 'pkt_type']),
    Case("ctx_access_perf", "ctx_access", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(struct trace_event_raw_sys_enter *ctx) {
            ctx->id = 5;
            return 0;
        }
        """),
         variable='ctx->id', words=['write', '__syscall_nr']),
    Case("ctx_modified", "ctx_variable_access", core("""\
        SEC("xdp")
        int f(struct xdp_md *ctx) {
            struct xdp_md *c = ctx;
            u32 i = bpf_get_prandom_u32() & 1;
            c = (void *)c + i * 4;
            return c->data;
        }
        """),
         variable='c', words=['fixed offsets']),
    Case("gpl_only", "gpl_only", core("""\
        char LICENSE[] SEC("license") = "Proprietary";
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            bpf_printk("hi");
            return 0;
        }
        """, licence=None),
         variable=None, words=['bpf_trace_printk', '"GPL"']),
    Case("helper_not_allowed2", "helper_not_allowed", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            return bpf_redirect(1, 0);
        }
        """),
         variable='bpf_redirect', words=['tracepoint programs']),
    Case("unknown_func", "unknown_helper", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            long (*nope)(void) = (void *)999;
            return nope();
        }
        """),
         variable=None, words=['999']),
    Case("kfunc_not_allowed", "kfunc_not_allowed", core("""\
        extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
        extern void bpf_task_release(struct task_struct *p) __ksym;
        SEC("socket")
        int f(struct __sk_buff *skb) {
            struct task_struct *t = bpf_task_acquire(bpf_get_current_task_btf());
            if (t) bpf_task_release(t);
            return 0;
        }
        """),
         variable='bpf_task_acquire', words=['socket_filter']),
    Case("too_large", "too_large", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            volatile u64 sum = 0;
            for (u32 i = 0; i < 2000000; i++)
                sum += i;
            return sum;
        }
        """),
         variable=None, words=['bpf_loop']),
    Case("ringbuf_unreleased", "unreleased_ringbuf", core("""\
        struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u32 *e = bpf_ringbuf_reserve(&events, sizeof(u32), 0);
            if (!e) return 0;
            *e = 1;
            return 0;
        }
        """),
         variable='e', words=['bpf_ringbuf_submit(e, 0)']),
    Case("socket_unreleased", "unreleased_socket", core("""\
        SEC("tc")
        int f(struct __sk_buff *skb) {
            struct bpf_sock_tuple t = {};
            struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), -1, 0);
            if (!sk) return 0;
            return sk->state;
        }
        """),
         variable='sk', words=['bpf_sk_release(sk)', 'bpf_sk_lookup_tcp']),
    Case("double_submit", "ringbuf_reuse", core("""\
        struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u32 *e = bpf_ringbuf_reserve(&events, 8, 0);
            if (!e) return 0;
            bpf_ringbuf_submit(e, 0);
            bpf_ringbuf_submit(e, 0);
            return 0;
        }
        """),
         variable='e', words=['already submitted']),
    Case("ringbuf_mem_oob", "memory_out_of_range", core("""\
        struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u32 *e = bpf_ringbuf_reserve(&events, 8, 0);
            if (!e) return 0;
            e[3] = 1;
            bpf_ringbuf_submit(e, 0);
            return 0;
        }
        """),
         variable='e', words=['8 bytes', 'offset 12']),
    Case("helper_arg_type", "helper_arg_type", core("""\
        struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, u32); __type(value, u64); } counts SEC(".maps");
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u32 pid = bpf_get_current_pid_tgid();
            u64 *v = bpf_map_lookup_elem(&counts, (void *)(long)pid);
            return v ? 1 : 0;
        }
        """),
         variable='(void *)(long)pid', words=['bpf_map_lookup_elem', 'scalar']),
    Case("wrong_map_type", "wrong_map_type", core("""\
        struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, u32); __type(value, u64); } events SEC(".maps");
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u64 x = 1;
            bpf_ringbuf_output(&events, &x, sizeof(x), 0);
            return 0;
        }
        """),
         variable='bpf_ringbuf_output', words=['hash map', 'BPF_MAP_TYPE_RINGBUF']),
    Case("write_rodata", "write_readonly_map", core("""\
        const char name[16] = "lab";
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            bpf_get_current_comm((void *)name, sizeof(name));
            return 0;
        }
        """),
         variable=None, words=['.rodata']),
    Case("write_btf", "write_readonly_btf", core("""\
        SEC("tp_btf/sched_switch")
        int BPF_PROG(f, bool preempt, struct task_struct *prev, struct task_struct *next) {
            prev->pid = 0;
            return 0;
        }
        """),
         variable='prev', words=['read it but never write']),
    Case("direct_kernel_read", "scalar_deref", dedent("""\
        #include <linux/sched.h>
        int f(void *ctx) {
            struct task_struct *t = (struct task_struct *)bpf_get_current_task();
            struct task_struct *parent;
            bpf_probe_read_kernel(&parent, sizeof(parent), &t->real_parent);
            return parent->pid;
        }
        """),
         sec='tracepoint/syscalls/sys_enter_getpid', variable='parent', words=['bpf_probe_read_kernel']),
    Case("direct_kernel_read_core", "scalar_deref", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            struct task_struct *t = (struct task_struct *)bpf_get_current_task();
            return t->pid;
        }
        """),
         variable='t', words=['BPF_CORE_READ(t, field)']),
    Case("sleepable_helper", "sleepable_helper", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            char buf[8];
            bpf_copy_from_user(buf, sizeof(buf), (void *)0x1000);
            return buf[0];
        }
        """),
         variable=None, words=['bpf_copy_from_user', 'uprobe.s']),
    Case("core_missing_field", "core_relocation", core("""\
        struct task_struct___lab { int no_such_field; } __attribute__((preserve_access_index));
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            struct task_struct___lab *t = (void *)bpf_get_current_task();
            return BPF_CORE_READ(t, no_such_field);
        }
        """),
         variable='task_struct___lab.no_such_field', words=['bpf_core_field_exists']),
    # The log's last line annotation is the statement before the read: the error names the read.
    Case("core_missing_field_later", "core_relocation", core("""\
        struct task_struct___lab { int no_such_field; } __attribute__((preserve_access_index));
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            struct task_struct___lab *t = (void *)bpf_get_current_task();
            int pid = 0;
            pid = BPF_CORE_READ(t, no_such_field);
            return pid;
        }
        """), variable='task_struct___lab.no_such_field', where_has="BPF_CORE_READ(t, no_such_field)"),
    Case("no_return2", "uninit_register", dedent("""\
        int f(void *ctx) {
        }
        """),
         sec='tracepoint/syscalls/sys_enter_getpid', variable=None, words=['return 0;']),
    Case("no_return", "unreachable_code", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            asm volatile("exit");
            return 0;
        }
        """),
         variable=None, words=['dead code'], located=False),
    Case("return_range", "bad_return", core("""\
        SEC("cgroup_skb/ingress")
        int f(struct __sk_buff *skb) {
            return 7;
        }
        """),
         variable=None, words=['[0, 1]']),
    Case("helper_size_unbounded", "negative_size", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            char buf[64];
            u32 n = bpf_get_prandom_u32();
            bpf_probe_read_kernel(buf, n, (void *)bpf_get_current_task());
            return buf[0];
        }
        """),
         variable='n', words=['bpf_probe_read_kernel', 'unsigned']),
    Case("signed_index", "signed_index", core("""\
        struct val { u64 hist[8]; };
        struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, u32); __type(value, struct val); } slots SEC(".maps");
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u32 zero = 0;
            struct val *v = bpf_map_lookup_elem(&slots, &zero);
            if (!v) return 0;
            int bucket = (int)bpf_get_prandom_u32();
            if (bucket < 8)
                v->hist[bucket] += 1;
            return 0;
        }
        """), variable="bucket", words=["negative", "bucket >= 0"]),
    Case("stack_index", "stack_variable_offset", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u64 vals[4] = {};
            u32 i = bpf_get_prandom_u32() & 7;
            vals[i] = 1;
            return vals[0];
        }
        """), variable="i", words=["stack array", "i >= ARRAY_LEN"]),
    Case("endless_loop", "endless_loop", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u32 n = 0;
            while (1) {
                if (n == 0) continue;
                n++;
            }
            return n;
        }
        """), words=["forever", "bpf_loop"], located=False),
    # clang's errors: the same catalogue, from the compiler's messages and the cell's dialect
    Case("stack_limit", "stack_limit", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            char buf[600];
            bpf_get_current_comm(buf, sizeof(buf));
            return buf[599];
        }
        """), words=["512 bytes", "per-CPU array"], error=CompileError),
    # LLVM in libbcc would exit the Python process: the BCC engine refuses it before compiling.
    Case("stack_limit_bcc", "stack_limit", dedent("""\
        int f(void *ctx) {
            char buf[600];
            bpf_get_current_comm(buf, sizeof(buf));
            return buf[599];
        }
        """), sec="tracepoint/syscalls/sys_enter_getpid", words=["512 bytes", "per-CPU array"],
         error=CompileError),
    Case("undeclared_helper", "undeclared_function", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            return bpf_get_current_pid_tgidd() & 1;
        }
        """), variable="bpf_get_current_pid_tgidd", words=["misspelt", "bpf_helpers.h"], error=CompileError),
    Case("missing_include", "missing_include", core("""\
        #include <bpf/bpf_no_such_header.h>
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) { return 0; }
        """), variable="bpf/bpf_no_such_header.h", words=["include path"], error=CompileError),
    Case("unknown_type", "unknown_type", dedent("""\
        #include <bpf/bpf_helpers.h>
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) { u32 pid = 0; return pid; }
        """), variable="__u64", words=["vmlinux.h"], error=CompileError, located=False),  # bpf_helpers.h needs it first
    Case("bcc_in_core", "bcc_syntax_in_core", core("""\
        BPF_HASH(counts, u32, u64);
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(void *ctx) {
            u32 pid = 1;
            counts.increment(pid);
            return 0;
        }
        """), variable="BPF_HASH", words=["BCC's dialect", "bpf_map_lookup_elem"], error=CompileError),
    Case("btf_beyond_struct", "btf_beyond_struct", core("""\
        SEC("tp_btf/sched_switch")
        int BPF_PROG(f, bool preempt, struct task_struct *prev) {
            char *raw = (char *)prev;
            bpf_printk("%d", raw[20000]);
            return 0;
        }
        """), variable="raw", words=["task_struct", "BPF_CORE_READ"]),
    # The verifier accepts these; the kernel refuses them at attach, comparing the furthest
    # context offset read with the record's size (kernel/events/core.c, perf_event_set_bpf_prog).
    Case("tracepoint_past_record", "tracepoint_past_record", core("""\
        SEC("tracepoint/syscalls/sys_enter_getpid")
        int f(struct trace_event_raw_sys_enter *ctx) {
            bpf_printk("%ld", ctx->args[5]);
            return 0;
        }
        """), words=["sys_enter_getpid/format", "args[]"], error=AttachError, located=False),
    Case("tracepoint_past_record_bcc", "tracepoint_past_record", dedent("""\
        int f(void *ctx) {
            u64 *words = ctx;
            bpf_trace_printk("%lu\\n", words[20]);
            return 0;
        }
        """), sec="tracepoint/syscalls/sys_enter_getpid", words=["bytes"], error=AttachError, located=False),
    Case("core_in_bcc", "core_syntax_in_bcc", dedent("""\
        struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, u32); __type(value, u64); } counts SEC(".maps");
        int f(void *ctx) {
            u32 pid = 1;
            u64 *v = bpf_map_lookup_elem(&counts, &pid);
            return v ? 1 : 0;
        }
        """), sec="tracepoint/syscalls/sys_enter_getpid", words=["libbpf (CO-RE)", "BPF_HASH"],
         error=CompileError),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue_entry(live, case):
    before = held_prog_ids()
    with pytest.raises(case.error) as info:
        loader.build(case.cell, case.sec)
    assert held_prog_ids() == before, "a failed cell left a program loaded"
    err = info.value
    check_explained(err, case)


def check_explained(err: BPFLabError, case: Case) -> None:
    shown = "\n".join(err.lines())
    assert err.cause == case.cause, shown
    if case.variable is not None:
        assert err.variable == case.variable, shown
        assert case.variable in err.explanation + err.hint, shown
    for word in case.words:
        assert word in err.explanation + " " + err.hint, (word, shown)
    if case.located:
        assert err.where and err.where.startswith("cell line "), shown
        assert case.where_has in err.where, shown
    assert 3 <= len(err._render_traceback_()) <= 12, shown


UNINIT = Case("uninit_stack", "uninit_stack", core("""\
    struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, u32); __type(value, u64); } counts SEC(".maps");
    SEC("socket")
    int f(struct __sk_buff *skb) {
        u32 key;
        u64 *v = bpf_map_lookup_elem(&counts, &key);
        return v ? 1 : 0;
    }
    """), variable="key", words=["= {}", "__builtin_memset(&key"])


def test_uninitialised_stack_without_perfmon(live, tmp_path):
    """Root (CAP_PERFMON) may read uninitialised stack; a loader with CAP_BPF alone may not.

    The socket filter needs only CAP_BPF, so a child limited to it meets the check a
    learner meets with a BPF token or a CAP_BPF-only service.
    """
    code = textwrap.dedent(f"""\
        import json
        from ebpf_magic import loader
        from ebpf_magic.errors import BPFLabError
        try:
            loader.build({UNINIT.cell!r})
        except BPFLabError as exc:
            print(json.dumps(dict(cause=exc.cause, variable=exc.variable, explanation=exc.explanation,
                                  hint=exc.hint, where=exc.where, lines=exc._render_traceback_())))
        """)
    env = dict(os.environ, HOME=str(tmp_path))
    out = subprocess.run(["setpriv", "--bounding-set=-all,+bpf", "--inh-caps=-all", "--", sys.executable, "-c", code],
                         capture_output=True, text=True, env=env, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
    import json
    got = json.loads(out.stdout.strip().splitlines()[-1])

    class Seen(BPFLabError):
        pass

    err = Seen("", where=got["where"], hint=got["hint"], explanation=got["explanation"], cause=got["cause"],
               variable=got["variable"])
    err._render_traceback_ = lambda: got["lines"]
    check_explained(err, UNINIT)


def test_magic_shows_the_explanation(ip):
    """Through %%bpf: the learner sees why and what to do, with the variable named."""
    case = CASES[0]
    with pytest.raises(VerifierError) as info:
        ip.run_cell_magic("bpf", case.sec, case.cell)
    rendered = "\n".join(info.value._render_traceback_())
    assert "why: seen comes from a map lookup" in rendered
    assert "try: check it first: if (!seen) return 0;" in rendered
