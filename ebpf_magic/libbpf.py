"""A thin ctypes layer over the system's libbpf.so.1.

Only declarations live here: which C functions the lab calls and their
argument types. libbpf does the work (loading, BTF lookups, batch reads,
links); the callers turn its negative errno returns into the lab's errors.
"""
from __future__ import annotations

import ctypes as ct
import ctypes.util
import functools
import os

BTF_KIND_TYPEDEF = 8
BTF_KIND_FUNC = 12


class ProgLoadOpts(ct.Structure):
    """struct bpf_prog_load_opts as of libbpf 1.1 (newer libbpfs accept a smaller sz)."""

    _fields_ = [
        ("sz", ct.c_size_t), ("attempts", ct.c_int), ("expected_attach_type", ct.c_int),
        ("prog_btf_fd", ct.c_uint32), ("prog_flags", ct.c_uint32), ("prog_ifindex", ct.c_uint32),
        ("kern_version", ct.c_uint32), ("attach_btf_id", ct.c_uint32), ("attach_prog_fd", ct.c_uint32),
        ("attach_btf_obj_fd", ct.c_uint32), ("fd_array", ct.POINTER(ct.c_int)),
        ("func_info", ct.c_void_p), ("func_info_cnt", ct.c_uint32), ("func_info_rec_size", ct.c_uint32),
        ("line_info", ct.c_void_p), ("line_info_cnt", ct.c_uint32), ("line_info_rec_size", ct.c_uint32),
        ("log_level", ct.c_uint32), ("log_size", ct.c_uint32), ("log_buf", ct.c_char_p),
    ]


class LinkCreateOpts(ct.Structure):
    """The head of struct bpf_link_create_opts: sz, flags, iter_info, iter_info_len, target_btf_id."""

    _fields_ = [
        ("sz", ct.c_size_t), ("flags", ct.c_uint32), ("iter_info", ct.c_void_p),
        ("iter_info_len", ct.c_uint32), ("target_btf_id", ct.c_uint32), ("_union", ct.c_uint64 * 6),
    ]


class OpenOpts(ct.Structure):
    """The head of struct bpf_object_open_opts (libbpf 1.1): sz, object_name, relaxed_maps."""

    _fields_ = [
        ("sz", ct.c_size_t), ("object_name", ct.c_char_p), ("relaxed_maps", ct.c_bool),
    ]


class UprobeOpts(ct.Structure):
    """struct bpf_uprobe_opts (libbpf 1.2+): sz, ref_ctr_offset, bpf_cookie, retprobe, func_name, attach_mode."""

    _fields_ = [
        ("sz", ct.c_size_t), ("ref_ctr_offset", ct.c_size_t), ("bpf_cookie", ct.c_uint64),
        ("retprobe", ct.c_bool), ("func_name", ct.c_char_p), ("attach_mode", ct.c_int),
    ]


class BtfType(ct.Structure):
    """struct btf_type: name offset, info (vlen | kind << 24 | kind_flag << 31), size or type."""

    _fields_ = [("name_off", ct.c_uint32), ("info", ct.c_uint32), ("size_or_type", ct.c_uint32)]

    @property
    def kind(self) -> int:
        return (self.info >> 24) & 0x1F

    @property
    def vlen(self) -> int:
        return self.info & 0xFFFF

    @property
    def kind_flag(self) -> bool:
        return bool(self.info >> 31)


PRINT_FN = ct.CFUNCTYPE(ct.c_int, ct.c_int, ct.c_char_p, ct.c_void_p)
RINGBUF_SAMPLE_FN = ct.CFUNCTYPE(ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_size_t)
PERFBUF_SAMPLE_FN = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_int, ct.c_void_p, ct.c_uint32)
PERFBUF_LOST_FN = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_int, ct.c_uint64)

_P = ct.c_void_p
_SIGNATURES = {
    # objects, programs, maps, links
    "bpf_object__open_mem": (_P, [ct.c_void_p, ct.c_size_t, ct.POINTER(OpenOpts)]),
    "bpf_object__load": (ct.c_int, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__btf": (_P, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__next_map": (_P, [_P, _P]),
    "bpf_object__find_map_by_name": (_P, [_P, ct.c_char_p]),
    "bpf_program__name": (ct.c_char_p, [_P]),
    "bpf_program__section_name": (ct.c_char_p, [_P]),
    "bpf_program__type": (ct.c_int, [_P]),
    "bpf_program__expected_attach_type": (ct.c_int, [_P]),
    "bpf_program__autoload": (ct.c_bool, [_P]),
    "bpf_program__set_autoload": (ct.c_int, [_P, ct.c_bool]),
    "bpf_program__fd": (ct.c_int, [_P]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_program__attach_perf_event": (_P, [_P, ct.c_int]),
    "bpf_program__attach_iter": (_P, [_P, _P]),
    "bpf_program__attach_uprobe_opts": (_P, [_P, ct.c_int, ct.c_char_p, ct.c_size_t, ct.POINTER(UprobeOpts)]),
    "bpf_program__attach_usdt": (_P, [_P, ct.c_int, ct.c_char_p, ct.c_char_p, ct.c_char_p, ct.c_void_p]),
    "bpf_link__destroy": (ct.c_int, [_P]),
    "bpf_link__fd": (ct.c_int, [_P]),
    "bpf_map__name": (ct.c_char_p, [_P]),
    "bpf_map__fd": (ct.c_int, [_P]),
    "bpf_map__type": (ct.c_int, [_P]),
    "bpf_map__key_size": (ct.c_uint32, [_P]),
    "bpf_map__value_size": (ct.c_uint32, [_P]),
    "bpf_map__max_entries": (ct.c_uint32, [_P]),
    "bpf_map__btf_key_type_id": (ct.c_uint32, [_P]),
    "bpf_map__btf_value_type_id": (ct.c_uint32, [_P]),
    "bpf_map__initial_value": (_P, [_P, ct.POINTER(ct.c_size_t)]),
    "bpf_map__is_internal": (ct.c_bool, [_P]),
    "bpf_map__reuse_fd": (ct.c_int, [_P, ct.c_int]),
    # BTF
    "btf__load_vmlinux_btf": (_P, []),
    "btf__free": (None, [_P]),
    "btf__type_cnt": (ct.c_uint32, [_P]),
    "btf__type_by_id": (ct.POINTER(BtfType), [_P, ct.c_uint32]),
    "btf__name_by_offset": (ct.c_char_p, [_P, ct.c_uint32]),
    "btf__find_by_name_kind": (ct.c_int, [_P, ct.c_char_p, ct.c_uint32]),
    "btf__resolve_size": (ct.c_int64, [_P, ct.c_uint32]),
    "btf__resolve_type": (ct.c_int, [_P, ct.c_uint32]),
    "btf_dump__new": (_P, [_P, ct.CFUNCTYPE(None, ct.c_void_p, ct.c_char_p, ct.c_void_p), _P, _P]),
    "btf_dump__dump_type": (ct.c_int, [_P, ct.c_uint32]),
    "btf_dump__free": (None, [_P]),
    # output buffers
    "ring_buffer__new": (_P, [ct.c_int, RINGBUF_SAMPLE_FN, _P, _P]),
    "ring_buffer__poll": (ct.c_int, [_P, ct.c_int]),
    "ring_buffer__consume": (ct.c_int, [_P]),
    "ring_buffer__free": (None, [_P]),
    "perf_buffer__new": (_P, [ct.c_int, ct.c_size_t, PERFBUF_SAMPLE_FN, PERFBUF_LOST_FN, _P, _P]),
    "perf_buffer__poll": (ct.c_int, [_P, ct.c_int]),
    "perf_buffer__consume": (ct.c_int, [_P]),
    "perf_buffer__free": (None, [_P]),
    "libbpf_set_print": (PRINT_FN, [PRINT_FN]),
    "libbpf_get_error": (ct.c_long, [_P]),
    "libbpf_major_version": (ct.c_uint32, []),
    "libbpf_minor_version": (ct.c_uint32, []),
    "libbpf_prog_type_by_name": (ct.c_int, [ct.c_char_p, ct.POINTER(ct.c_int), ct.POINTER(ct.c_int)]),
    "libbpf_bpf_prog_type_str": (ct.c_char_p, [ct.c_int]),
    "libbpf_bpf_attach_type_str": (ct.c_char_p, [ct.c_int]),
    "libbpf_find_vmlinux_btf_id": (ct.c_int, [ct.c_char_p, ct.c_int]),
    "libbpf_probe_bpf_prog_type": (ct.c_int, [ct.c_int, ct.c_void_p]),
    "bpf_prog_load": (ct.c_int, [ct.c_int, ct.c_char_p, ct.c_char_p, ct.c_void_p, ct.c_size_t,
                                 ct.POINTER(ProgLoadOpts)]),
    "bpf_raw_tracepoint_open": (ct.c_int, [ct.c_char_p, ct.c_int]),
    "bpf_link_create": (ct.c_int, [ct.c_int, ct.c_int, ct.c_int, ct.POINTER(LinkCreateOpts)]),
    "bpf_iter_create": (ct.c_int, [ct.c_int]),
    "bpf_prog_test_run_opts": (ct.c_int, [ct.c_int, ct.c_void_p]),
    "bpf_map_lookup_batch": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_void_p, ct.c_void_p,
                                        ct.POINTER(ct.c_uint32), ct.c_void_p]),
    "bpf_map_get_next_key": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p]),
    "bpf_map_lookup_elem": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p]),
    "bpf_map_update_elem": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_uint64]),
    "bpf_map_delete_elem": (ct.c_int, [ct.c_int, ct.c_void_p]),
    "bpf_map_get_fd_by_id": (ct.c_int, [ct.c_uint32]),
    "bpf_prog_get_next_id": (ct.c_int, [ct.c_uint32, ct.POINTER(ct.c_uint32)]),
    "bpf_prog_get_fd_by_id": (ct.c_int, [ct.c_uint32]),
    "bpf_obj_get_info_by_fd": (ct.c_int, [ct.c_int, ct.c_void_p, ct.POINTER(ct.c_uint32)]),
}


class LibbpfMissing(OSError):
    pass


@functools.lru_cache(maxsize=1)
def lib() -> ct.CDLL:
    """The system libbpf, with the lab's signatures declared (absent symbols are skipped)."""
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        so = ct.CDLL(name, use_errno=True)
    except OSError as exc:
        raise LibbpfMissing(f"libbpf.so.1 not found ({exc}); install libbpf1 / libbpf-dev") from exc
    for fn, (res, args) in _SIGNATURES.items():
        f = getattr(so, fn, None)
        if f is not None:
            f.restype, f.argtypes = res, args
    return so


def version() -> str:
    so = lib()
    return f"{so.libbpf_major_version()}.{so.libbpf_minor_version()}"


def errno_of(ret: int) -> int:
    """libbpf 1.x returns -errno directly; older paths set errno and return -1."""
    if ret < -1:
        return -ret
    return ct.get_errno() or -ret


def strerror(err: int) -> str:
    return f"{os.strerror(err)} (errno {err})"
