"""Which map and size each output helper call gets, from synthetic BPF instructions."""
from __future__ import annotations

import struct

from ebpf_magic.core.event_types import PERF_EVENT_OUTPUT, RINGBUF_OUTPUT, RINGBUF_RESERVE, _scan


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, dst | src << 4, off, imm)


def ld_map(dst: int) -> bytes:
    return insn(0x18, dst, 1) + insn(0, 0)  # ld_imm64 takes two slots


def call(helper: int) -> bytes:
    return insn(0x85, imm=helper)


def test_reserve_output_and_perf_output_are_found():
    code = (ld_map(1) + insn(0xB7, 2, imm=24) + insn(0xB7, 3, imm=0) + call(RINGBUF_RESERVE)
            + insn(0xBF, 6, 0)                                     # r6 = r0
            + ld_map(1) + insn(0xBF, 2, 10) + insn(0xB7, 3, imm=16) + call(RINGBUF_OUTPUT)
            + ld_map(2) + insn(0xB7, 3, imm=-1) + insn(0xB7, 5, imm=8) + call(PERF_EVENT_OUTPUT))
    # relocations name the map each ld_imm64 loads, by byte offset
    maps = {0: "rb", 8 * 6: "rb", 8 * 11: "events"}
    found: dict[str, set[int]] = {}
    _scan(code, maps, found)
    assert found == {"rb": {24, 16}, "events": {8}}


def test_a_size_computed_at_run_time_or_clobbered_is_not_guessed():
    code = (ld_map(1) + insn(0xB7, 2, imm=24) + insn(0x07, 2, imm=8)   # r2 += 8: no longer a known constant
            + call(RINGBUF_RESERVE)
            + ld_map(1) + call(1)                                      # any call clobbers r1-r5
            + insn(0xB7, 2, imm=8) + call(RINGBUF_RESERVE))
    found: dict[str, set[int]] = {}
    _scan(code, {0: "rb", 8 * 5: "rb"}, found)
    assert found == {}
