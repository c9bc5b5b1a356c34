"""A refusal at the end of a long verifier log is still explained: libbpf prints the whole log
as one message, and the lab keeps all of it."""
from __future__ import annotations

import pytest

from ebpf_magic.errors import VerifierError

pytestmark = pytest.mark.live

# 60 unrolled lookups make a verifier log of several kilobytes before the unchecked read.
LONG_LOG_CELL = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, u32); __type(value, u64); } m SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getppid")
int tp(void *ctx)
{
    u64 acc = 0;
    for (int i = 0; i < 60; i++) {
        u32 k = i;
        u64 *v = bpf_map_lookup_elem(&m, &k);
        if (v)
            acc += *v;
        if (acc == 77)
            break;
    }
    u32 k = 1;
    u64 *v = bpf_map_lookup_elem(&m, &k);
    return *v + acc;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_the_refusal_after_a_long_log_is_explained(live):
    from ebpf_magic.loader import build

    with pytest.raises(VerifierError) as info:
        build(LONG_LOG_CELL, None)
    err = info.value
    assert err.cause == "null_map_value", str(err)
    assert "map_value_or_null" in err.what and "return *v + acc;" in (err.where or "")
