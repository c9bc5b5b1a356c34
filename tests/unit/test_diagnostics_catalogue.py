"""The failure catalogue as data, and the matcher on verifier logs recorded from this kernel (pure logic)."""
from __future__ import annotations

import errno
import string

from ebpf_magic.diagnostics import compile_error, load_error
from ebpf_magic.errors import VerifierError
from ebpf_magic.explain import _call_args, explain_compile, explain_verifier
from ebpf_magic.sections import resolve
from ebpf_magic.verifier_catalogue import COMPILE, VERIFIER

TP = resolve("tracepoint/syscalls/sys_enter_getpid")

# The end of a real log (BCC, Linux 6.18): a map value read before its NULL check.
NULL_LOG = """\
;  @ cell:6
6: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1,map=counts,ks=4,vs=8)
;  @ cell:7
7: (79) r0 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 7 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""
NULL_CELL = "BPF_HASH(counts, u32, u64);\nint f(void *ctx) {\n    u32 pid = 1;\n" \
            "    u64 *seen = counts.lookup(&pid);\n    u64 next = *seen + 1;\n    return (int)next;\n}"


def test_at_least_thirty_distinct_causes():
    causes = [e.cause for e in VERIFIER + COMPILE]
    assert len(causes) == len(set(causes))
    assert len(causes) >= 30


def test_every_text_formats_with_any_values():
    class Any(dict):
        def __missing__(self, key):
            return "x"

    for e in VERIFIER + COMPILE:
        string.Formatter().vformat(e.explanation, (), Any())
        string.Formatter().vformat(e.fix, (), Any())


def test_null_map_value_names_the_lookup_variable():
    err = load_error("f", TP, errno.EACCES, NULL_LOG, NULL_CELL, lambda n: n - 2)
    assert isinstance(err, VerifierError)
    assert (err.cause, err.variable) == ("null_map_value", "seen")
    assert err.where == "cell line 5: u64 next = *seen + 1;"
    assert "if (!seen) return 0;" in err.hint
    assert len(err.lines()) <= 12


def test_unreleased_reference_found_from_its_allocating_instruction():
    log = ("; u32 *e = bpf_ringbuf_reserve(&events, sizeof(u32), 0); @ cell:3\n"
           "4: (85) call bpf_ringbuf_reserve#131\n; return 0; @ cell:6\n9: (95) exit\n"
           "Unreleased reference id=2 alloc_insn=4\n")
    cell = "x\ny\n    u32 *e = bpf_ringbuf_reserve(&events, sizeof(u32), 0);\n    if (!e) return 0;\n" \
           "    *e = 1;\n    return 0;\n}"
    got = explain_verifier(log.splitlines(), errno.EACCES, cell, TP, failing_line=6)
    assert (got.cause, got.variable) == ("unreleased_ringbuf", "e")


def test_unmatched_log_keeps_the_generic_hint():
    err = load_error("f", TP, errno.EACCES, "0: (95) exit\nsomething new the catalogue lacks\n", "int f;")
    assert err.cause is None and err.explanation is None
    assert "tracepoint programs get a TRACEPOINT context" in err.hint


def test_helper_arguments_split_at_top_level_commas():
    assert _call_args("n = bpf_probe_read_kernel(buf, min(a, b), (void *)p);", "bpf_probe_read_kernel") == \
        ["buf", "min(a, b)", "(void *)p"]


def test_bcc_syntax_in_a_core_cell_is_named_before_clang_s_message():
    cell = '#include "vmlinux.h"\nBPF_HASH(counts, u32, u64);\nSEC("tp/x/y") int f(void *c) { return 0; }'
    got = explain_compile(cell, ["type specifier missing, defaults to 'int'"], "core")
    assert (got.cause, got.variable) == ("bcc_syntax_in_core", "BPF_HASH")


def test_compile_error_with_a_fatal_include_error_points_at_the_cell():
    printed = "cell:1:10: fatal error: 'bpf/nope.h' file not found\n1 error generated.\n"
    err = compile_error('#include <bpf/nope.h>\nSEC("tp/a/b") int f(void *c) { return 0; }', printed, 1,
                        engine="core")
    assert err.cause == "missing_include" and err.where.startswith("cell line 1:")
