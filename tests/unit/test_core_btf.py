"""BTF -> numpy dtypes and columns, on a real clang-built BPF object opened (not loaded) by libbpf.

No root and no kernel program: libbpf parses the object, the layouts are
checked against what gcc says for the same C types on the host, and the
decoders run on hand-made bytes.
"""
from __future__ import annotations

import ctypes as ct
import json
import os
import platform
import shutil
import struct
import subprocess

import numpy as np
import pytest

from ebpf_magic import libbpf
from ebpf_magic.core.btf import DATASEC, INT, STRUCT, Btf, globals_frame
from ebpf_magic.frames import frame_from_arrays

TYPES_H = r"""
#include <linux/types.h>

enum state { ST_IDLE = 0, ST_RUN = 1, ST_DEAD = 7 };

struct key_t { __u32 pid; __u32 cpu; };

struct inner { __u16 a; __u64 b; };

union num { __u64 whole; __u32 halves[2]; };

struct value_t {
    __u32 count;
    struct inner in;
    char comm[16];
    int hist[4];
    enum state st;
    unsigned int flag : 1;
    unsigned int level : 3;
    int delta : 5;
    union num n;
    union { __u32 raw; __u8 bytes[4]; };
    __u64 *ptr;
    __s8 small;
    _Bool ok;
};

struct event { __u64 ts; __u32 pid; enum state st; char comm[16]; __s64 delta; };

struct wide { unsigned __int128 u; __int128 s; };
"""

PROG_C = r"""
#include "types.h"
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
         __type(key, __u32); __type(value, __u64); } counts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
         __type(key, struct key_t); __type(value, struct value_t); } stats SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4);
         __type(key, __u32); __type(value, enum state); } states SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, struct event); } heap SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, struct wide); } wides SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");

const volatile int x = 7;
const volatile enum state start_state = ST_RUN;
int counter;
char name[8] = "abc";
struct inner pair = { .a = 3, .b = 1ULL << 40 };

SEC("tracepoint/syscalls/sys_enter_openat")
int handle(void *ctx)
{
    __u32 zero = 0;
    struct event *e = bpf_map_lookup_elem(&heap, &zero);
    if (!e)
        return 0;
    e->pid = x;
    e->st = start_state;
    counter++;
    bpf_ringbuf_output(&events, e, sizeof(*e), 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

# The same types compiled for the host: its offsetof/sizeof are the C truth
# the BTF-derived dtypes must match (x86-64 and BPF share these layouts), and
# it encodes one value_t so bit fields are checked against the compiler's
# own placement, not only against our arithmetic.
HOST_C = r"""
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "types.h"

#define OFF(T, m) printf("\"" #T "." #m "\": %zu,\n", offsetof(struct T, m))
#define SIZE(T) printf("\"" #T "\": %zu,\n", sizeof(struct T))

int main(void)
{
    printf("{\"offsetof\": {\n");
    OFF(key_t, pid); OFF(key_t, cpu);
    OFF(inner, a); OFF(inner, b);
    OFF(value_t, count); OFF(value_t, in); OFF(value_t, comm); OFF(value_t, hist); OFF(value_t, st);
    OFF(value_t, n); OFF(value_t, raw); OFF(value_t, bytes); OFF(value_t, ptr); OFF(value_t, small);
    OFF(value_t, ok);
    OFF(event, ts); OFF(event, pid); OFF(event, st); OFF(event, comm); OFF(event, delta);
    OFF(wide, u); OFF(wide, s);
    printf("\"end\": 0}, \"sizeof\": {\n");
    SIZE(key_t); SIZE(inner); SIZE(value_t); SIZE(event); SIZE(wide);
    printf("\"num\": %zu}, \"sample\": \"", sizeof(union num));

    struct value_t v;
    memset(&v, 0, sizeof(v));
    v.count = 42; v.in.a = 0xBEEF; v.in.b = 1ULL << 40;
    strcpy(v.comm, "bash");
    v.hist[0] = -1; v.hist[3] = 9;
    v.st = ST_DEAD; v.flag = 1; v.level = 5; v.delta = -3;
    v.n.whole = 0x0000000200000001ULL; v.raw = 0x04030201;
    v.ptr = (__u64 *)0xffff888000001000ULL; v.small = -5; v.ok = 1;
    for (size_t i = 0; i < sizeof(v); i++)
        printf("%02x", ((unsigned char *)&v)[i]);
    printf("\"}\n");
    return 0;
}
"""


def _multiarch_include() -> list[str]:
    """<linux/types.h> wants <asm/types.h>, which lives in the host's multiarch directory."""
    try:
        triple = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    except OSError:
        triple = ""
    triple = triple or f"{platform.machine()}-linux-gnu"
    return [f"-I/usr/include/{triple}"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not shutil.which("clang"):
        pytest.skip("clang is not installed")
    d = tmp_path_factory.mktemp("core_btf")
    (d / "types.h").write_text(TYPES_H)
    (d / "prog.bpf.c").write_text(PROG_C)
    (d / "host.c").write_text(HOST_C)
    subprocess.run(["clang", "-target", "bpf", "-O2", "-g", *_multiarch_include(), "-I", str(d),
                    "-c", str(d / "prog.bpf.c"), "-o", str(d / "prog.bpf.o")], check=True)
    host = None
    if shutil.which("gcc"):
        subprocess.run(["gcc", "-O0", "-I", str(d), str(d / "host.c"), "-o", str(d / "host")], check=True)
        host = json.loads(subprocess.run([str(d / "host")], capture_output=True, text=True,
                                         check=True).stdout)
    return (d / "prog.bpf.o").read_bytes(), host


@pytest.fixture(scope="module")
def obj(built):
    """The object opened by libbpf (no load, no root), with its BTF and maps by name."""
    elf, _ = built
    lib = libbpf.lib()
    buf = ct.create_string_buffer(elf, len(elf))  # libbpf reads the image until load/close
    opts = libbpf.OpenOpts(sz=ct.sizeof(libbpf.OpenOpts), object_name=b"btftest")
    ptr = lib.bpf_object__open_mem(buf, len(elf), ct.byref(opts))
    assert ptr, f"bpf_object__open_mem failed: {libbpf.strerror(ct.get_errno())}"
    maps, m = {}, None
    while m := lib.bpf_object__next_map(ptr, m):
        maps[lib.bpf_map__name(m).decode()] = m
    try:
        yield Btf.of_object(ptr), maps, buf
    finally:
        lib.bpf_object__close(ptr)


@pytest.fixture(scope="module")
def host(built):
    if built[1] is None:
        pytest.skip("gcc is not installed")
    return built[1]


def value_tid(maps, name: str) -> int:
    return libbpf.lib().bpf_map__btf_value_type_id(maps[name])


def key_tid(maps, name: str) -> int:
    return libbpf.lib().bpf_map__btf_key_type_id(maps[name])


def internal_map(maps, suffix: str) -> str:
    found = [n for n in maps if n.endswith(suffix)]
    assert len(found) == 1, (suffix, list(maps))
    return found[0]


# The layout of struct value_t, written out by hand (x86-64/BPF ABI).
VALUE_FMT = "<I4x" "H6xQ" "16s" "4i" "I" "I" "Q" "I4x" "Q" "b?6x"
STATES = {0: "ST_IDLE", 1: "ST_RUN", 7: "ST_DEAD"}


def pack_value(count, a, b, comm, hist, st, flag, level, delta, whole, raw, ptr, small, ok) -> bytes:
    bits = flag | level << 1 | (delta & 0x1F) << 4
    return struct.pack(VALUE_FMT, count, a, b, comm, *hist, st, bits, whole, raw, ptr, small, ok)


# --------------------------------------------------------------------------- basics

def test_btf_needs_a_pointer():
    with pytest.raises(ValueError, match="-g"):
        Btf(0)


def test_scalar_maps(obj):
    btf, maps, _ = obj
    lib = libbpf.lib()
    assert btf.dtype(key_tid(maps, "counts")) == np.dtype(np.uint32)
    assert btf.dtype(value_tid(maps, "counts")) == np.dtype(np.uint64)
    assert btf.dtype(key_tid(maps, "counts")).itemsize == lib.bpf_map__key_size(maps["counts"])
    st = btf.dtype(value_tid(maps, "states"))
    assert st.kind in "iu" and st.itemsize == 4
    assert btf.enum_names(value_tid(maps, "states")) == {"value": STATES}
    assert btf.enum_names(value_tid(maps, "states"), prefix="state") == {"state": STATES}


def test_type_helpers(obj):
    btf, maps, _ = obj
    tid = key_tid(maps, "counts")
    assert btf.name(tid) == "__u32"
    rid = btf.resolve(tid)
    assert btf.kind(rid) == INT and btf.name(rid) == "unsigned int"
    assert btf.size(tid) == 4
    sid = btf.find("value_t", "struct")
    assert sid == btf.find("value_t") == btf.find("value_t", STRUCT) == value_tid(maps, "stats")
    assert btf.find("no_such_type") is None
    assert btf.type_str(sid) == "struct value_t"
    assert btf.type_str(btf.find("state", "enum")) == "enum state"
    names = [m[0] for m in btf.members(sid)]
    assert names[:4] == ["count", "in", "comm", "hist"] and "" in names  # the anonymous union
    assert btf.find(".rodata", DATASEC) is not None


# --------------------------------------------------------------------------- layouts

@pytest.mark.parametrize("struct_name", ["key_t", "inner", "value_t", "event", "wide"])
def test_layout_matches_gcc(obj, host, struct_name):
    btf, _, _ = obj
    dt = btf.dtype(btf.find(struct_name, "struct"))
    assert dt.itemsize == host["sizeof"][struct_name]
    members = {k.split(".", 1)[1]: v for k, v in host["offsetof"].items() if k.startswith(f"{struct_name}.")}
    assert members
    for member, off in members.items():
        assert dt.fields[member][1] == off, member


def test_value_dtype(obj, host):
    btf, maps, _ = obj
    dt = btf.dtype(value_tid(maps, "stats"))
    assert dt.itemsize == struct.calcsize(VALUE_FMT) == host["sizeof"]["value_t"]
    assert dt["comm"] == np.dtype("S16")
    assert dt["hist"].subdtype == (np.dtype(np.int32), (4,))
    assert dt["ptr"] == np.dtype(np.uint64)
    assert dt["small"] == np.dtype(np.int8) and dt["ok"] == np.dtype(np.bool_)
    inner = dt["in"]
    assert inner.names == ("a", "b") and inner.itemsize == host["sizeof"]["inner"]
    assert inner.fields["b"][1] == host["offsetof"]["inner.b"]
    union = dt["n"]
    assert union.itemsize == host["sizeof"]["num"]
    assert union.fields["whole"][1] == union.fields["halves"][1] == 0
    # the anonymous union's members are the struct's own fields, overlapping
    assert dt.fields["raw"][1] == dt.fields["bytes"][1] == host["offsetof"]["value_t.raw"]
    assert btf.dtype(key_tid(maps, "stats")).names == ("pid", "cpu")


def test_bitfields(obj):
    btf, maps, _ = obj
    found = {path: (off * 8 + shift, width, signed)
             for path, off, shift, width, signed in btf.bitfields(value_tid(maps, "stats"))}
    # after `enum state st` at byte 56, the bit-field unit starts at byte 60
    assert found == {"flag": (480, 1, False), "level": (481, 3, False), "delta": (484, 5, True)}


def test_enum_names_paths(obj):
    btf, maps, _ = obj
    assert btf.enum_names(value_tid(maps, "stats")) == {"st": STATES}
    assert btf.enum_names(value_tid(maps, "heap")) == {"st": STATES}
    assert btf.enum_names(value_tid(maps, "counts")) == {}


# --------------------------------------------------------------------------- decoding

def test_decode_hand_made_values(obj):
    btf, maps, _ = obj
    raw = (pack_value(42, 0xBEEF, 1 << 40, b"bash", [-1, 0, 0, 9], 7, 1, 5, -3, 0x200000001,
                      0x04030201, 0xFFFF888000001000, -5, True)
           + pack_value(1, 2, 3, b"systemd-journald", [1, 2, 3, 4], 5, 0, 7, 15, 0, 0, 0, 127, False))
    cols = btf.decode(raw, value_tid(maps, "stats"))
    assert list(cols["count"]) == [42, 1]
    assert list(cols["in.a"]) == [0xBEEF, 2] and list(cols["in.b"]) == [1 << 40, 3]
    assert list(cols["comm"]) == ["bash", "systemd-journald"]  # no NUL needed when it fills the array
    assert list(cols["hist"]) == [[-1, 0, 0, 9], [1, 2, 3, 4]]
    assert list(cols["st"]) == ["ST_DEAD", 5]  # 5 has no enumerator: kept as the number
    assert list(cols["flag"]) == [1, 0] and list(cols["level"]) == [5, 7]
    assert list(cols["delta"]) == [-3, 15]
    assert list(cols["n.whole"]) == [0x200000001, 0] and list(cols["n.halves"]) == [[1, 2], [0, 0]]
    assert list(cols["raw"]) == [0x04030201, 0] and list(cols["bytes"]) == [[1, 2, 3, 4], [0, 0, 0, 0]]
    assert list(cols["ptr"]) == [0xFFFF888000001000, 0]
    assert list(cols["small"]) == [-5, 127] and list(cols["ok"]) == [True, False]
    # a numpy buffer and an explicit count work too
    one = btf.decode(np.frombuffer(raw, np.uint8), value_tid(maps, "stats"), count=1)
    assert list(one["comm"]) == ["bash"]


def test_decode_matches_gcc_encoding(obj, host):
    btf, maps, _ = obj
    v = btf.value(bytes.fromhex(host["sample"]), value_tid(maps, "stats"))
    assert v == {
        "count": 42, "in": {"a": 0xBEEF, "b": 1 << 40}, "comm": "bash", "hist": [-1, 0, 0, 9],
        "st": "ST_DEAD", "flag": 1, "level": 5, "delta": -3, "n": {"whole": 0x200000001, "halves": [1, 2]},
        "raw": 0x04030201, "bytes": [1, 2, 3, 4], "ptr": 0xFFFF888000001000, "small": -5, "ok": True,
    }


def test_decode_scalars_and_prefix(obj):
    btf, maps, _ = obj
    cols = btf.decode(struct.pack("<3Q", 1, 2, 2**64 - 1), value_tid(maps, "counts"), prefix="total")
    assert list(cols) == ["total"] and cols["total"].dtype == np.uint64
    assert cols["total"].tolist() == [1, 2, 2**64 - 1]
    states = btf.decode(struct.pack("<4I", 0, 1, 7, 3), value_tid(maps, "states"))
    assert list(states["value"]) == ["ST_IDLE", "ST_RUN", "ST_DEAD", 3]
    with pytest.raises(ValueError, match="fewer than 4"):
        btf.decode(b"\0" * 8, value_tid(maps, "counts"), count=4)


def test_event_struct(obj, host):
    btf, maps, _ = obj
    tid = btf.find("event", "struct")
    assert tid == value_tid(maps, "heap")
    assert btf.dtype(tid).itemsize == host["sizeof"]["event"] == 40
    fmt = "<QII16sq"
    raw = struct.pack(fmt, 10**9, 1234, 1, b"cat", -2) + struct.pack(fmt, 2 * 10**9, 1, 9, b"", 0)
    cols = btf.decode(memoryview(raw), tid, prefix="event")
    assert {k: list(v) for k, v in cols.items()} == {
        "ts": [10**9, 2 * 10**9], "pid": [1234, 1], "st": ["ST_RUN", 9], "comm": ["cat", ""], "delta": [-2, 0]}


def test_int128(obj):
    btf, maps, _ = obj
    big = (1 << 100) + 5
    raw = big.to_bytes(16, "little") + (-big).to_bytes(16, "little", signed=True)
    cols = btf.decode(raw, value_tid(maps, "wides"))
    assert list(cols["u"]) == [big] and list(cols["s"]) == [-big]


def test_frame_with_enum_names(obj):
    btf, maps, _ = obj
    ktid, vtid = key_tid(maps, "stats"), value_tid(maps, "stats")
    keys = np.frombuffer(struct.pack("<4I", 7, 0, 3, 1), btf.dtype(ktid))
    values = btf.array(pack_value(1, 0, 0, b"a", [0] * 4, 1, 0, 0, 0, 0, 0, 0, 0, False)
                       + pack_value(2, 0, 0, b"b", [0] * 4, 7, 1, 2, -1, 0, 0, 0, 0, True), vtid)
    df = btf.name_enums(frame_from_arrays(keys, values), ktid, vtid)
    assert list(df.columns[:3]) == ["pid", "cpu", "count"]
    assert df["pid"].tolist() == [3, 7]  # sorted by key
    assert df["st"].tolist() == ["ST_DEAD", "ST_RUN"] and df["comm"].tolist() == ["b", "a"]
    assert df["delta"].tolist() == [-1, 0] and df["in.a"].tolist() == [0, 0]

    skeys = np.arange(4, dtype=np.uint32)
    svals = btf.array(struct.pack("<4I", 0, 1, 7, 2), value_tid(maps, "states"))
    sdf = btf.name_enums(frame_from_arrays(skeys, svals), key_tid(maps, "states"), value_tid(maps, "states"))
    assert sdf["value"].tolist() == ["ST_IDLE", "ST_RUN", "ST_DEAD", 2]


# --------------------------------------------------------------------------- globals

def initial_value(maps, name: str) -> bytes:
    size = ct.c_size_t()
    ptr = libbpf.lib().bpf_map__initial_value(maps[name], ct.byref(size))
    assert ptr, f"no initial value for {name}"
    return ct.string_at(ptr, size.value)


def test_datasec(obj):
    btf, maps, _ = obj
    ro = btf.datasec(".rodata")
    assert {name for name, _, _ in ro} == {"x", "start_state"}
    assert [off for _, off, _ in ro] == sorted(off for _, off, _ in ro)
    types = {name: tid for name, _, tid in ro}
    assert btf.dtype(types["x"]) == np.dtype(np.int32)  # through const volatile
    assert btf.type_str(types["x"]) == "const volatile int"
    # libbpf names the map after the object ("btftest.rodata"); the DATASEC is ".rodata"
    rodata_map = internal_map(maps, ".rodata")
    assert rodata_map != ".rodata" and btf.datasec(rodata_map) == ro
    assert [v[0] for v in btf.datasec(".bss")] == ["counter"]
    assert {v[0] for v in btf.datasec(".data")} == {"name", "pair"}
    assert {".bss", ".data", ".rodata", ".maps"} <= set(btf.datasecs())
    with pytest.raises(KeyError, match="no data section"):
        btf.datasec(".nope")


def test_globals_from_initial_values(obj):
    btf, maps, _ = obj
    ro = internal_map(maps, ".rodata")
    assert globals_frame(btf, ro, initial_value(maps, ro)) == {"x": 7, "start_state": "ST_RUN"}
    data = internal_map(maps, ".data")
    assert globals_frame(btf, data, initial_value(maps, data)) == {"name": "abc",
                                                                   "pair": {"a": 3, "b": 1 << 40}}
    bss = internal_map(maps, ".bss")
    assert globals_frame(btf, bss, initial_value(maps, bss)) == {"counter": 0}
    with pytest.raises(ValueError, match="past the"):
        globals_frame(btf, data, b"\0" * 4)


def test_globals_types(obj):
    btf, maps, _ = obj
    ro = initial_value(maps, internal_map(maps, ".rodata"))
    v = globals_frame(btf, ".rodata", bytearray(ro))
    assert type(v["x"]) is int and type(v["start_state"]) is str


# --------------------------------------------------------------------------- the kernel's own BTF

@pytest.mark.skipif(not os.access("/sys/kernel/btf/vmlinux", os.R_OK), reason="no readable kernel BTF")
def test_vmlinux_structs_have_exact_layouts():
    """Every kernel struct and union (bit fields, anonymous unions, flexible arrays) gets a dtype of its size."""
    with Btf.vmlinux() as btf:
        checked = 0
        for tid in range(1, len(btf)):
            t = btf.type(tid)
            if t.kind in (STRUCT, 5):
                assert btf.dtype(tid).itemsize == t.size_or_type, btf.type_str(tid)
                checked += 1
        assert checked > 1000
        task = btf.dtype(btf.find("task_struct", "struct"))
        assert task["pid"] == np.dtype(np.int32) and task["comm"] == np.dtype("S16")


@pytest.mark.skipif(not os.access("/sys/kernel/btf/vmlinux", os.R_OK), reason="no readable kernel BTF")
def test_map_type_enum_matches_the_running_kernel():
    """uapi.MapType has every map type of this kernel's enum bpf_map_type, by name and number."""
    from ebpf_magic.uapi import MapType

    with Btf.vmlinux() as btf:
        kernel = {name.removeprefix("BPF_MAP_TYPE_"): value
                  for value, name in btf.enumerators(btf.find("bpf_map_type", "enum")).items()}
    kernel = {k: v for k, v in kernel.items() if not k.startswith("__")}  # __MAX_BPF_MAP_TYPE
    assert kernel, "the kernel's BTF has no enum bpf_map_type"
    for name, value in kernel.items():
        assert MapType[name] == value, name
    assert max(MapType) >= max(kernel.values())
    assert MapType.label(MapType.PERCPU_HASH) == "percpu_hash" and MapType.label(999) == "999"
