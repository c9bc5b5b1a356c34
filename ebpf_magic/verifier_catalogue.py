"""The catalogue of verifier, load and compile failures a learner meets, as data.

Each entry: a ``cause`` (short id, what tests and exercises check), a pattern
searched in the verifier's log (or clang's diagnostics), a plain explanation
and a concrete fix. ``subject`` says which C name the matcher
(:mod:`ebpf_magic.explain`) looks for in the failing cell line:

- ``deref``: the pointer dereferenced on the line (``*p``, ``p->f``, ``p[i]``)
- ``lookup``: like ``deref``, preferring a variable assigned from a map lookup
- ``index``: the index or offset variable (``a[i]``, ``p + off``)
- ``field``: the member accessed (``ctx->field``)
- ``alloc``: the variable the unreleased reference was stored in
- ``addr``: the variable whose address is taken (``&key``)

Texts use ``{var}`` (the C name, or "the pointer"), ``{helper}``, ``{fields}``
and the pattern's named groups. The patterns follow kernel/bpf/verifier.c's
messages on Linux 6.x and libbpf 1.x's CO-RE log fix-up.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    cause: str
    pattern: re.Pattern
    explanation: str
    fix: str
    subject: str = ""
    helper: str = ""        # a regex: the entry applies only when the helper involved matches


def _e(cause: str, pattern: str, explanation: str, fix: str, subject: str = "", helper: str = "") -> Entry:
    return Entry(cause, re.compile(pattern), explanation, fix, subject, helper)


# Order matters: the first entry whose pattern is found wins, so specific before general.
VERIFIER: tuple[Entry, ...] = (
    _e("null_map_value", r"R\d+ invalid mem access 'map_value_or_null'",
       "{var} comes from a map lookup, which returns NULL when the key is absent; "
       "the verifier refuses to read through it before a NULL check",
       "check it first: if (!{var}) return 0; (BCC: the same after map.lookup())", "lookup"),
    _e("null_pointer", r"R\d+ invalid mem access '(?P<type>\w+_or_null)'",
       "{var} may be NULL (a {type} from a helper that can fail) and is used without a check",
       "test it before use: if (!{var}) return 0;", "deref"),
    _e("null_pointer_arith", r"pointer arithmetic on (?P<type>\w+_or_null) prohibited",
       "{var} may still be NULL here: the verifier allows no arithmetic on it before a NULL check",
       "check the lookup's result for NULL first, then index or add to it", "lookup"),
    _e("scalar_deref", r"R\d+ invalid mem access 'scalar'",
       "{var} holds a plain number to the verifier, not a pointer it knows: kernel memory "
       "cannot be read by dereferencing an address directly",
       "read it with bpf_probe_read_kernel(&dst, sizeof(dst), &{var}->field), or BPF_CORE_READ({var}, field) "
       "in a CO-RE cell; tp_btf programs get typed pointers they may dereference", "deref"),
    _e("pkt_end_arith", r"pointer arithmetic on pkt_end prohibited",
       "data_end marks the end of the packet and cannot be moved; only pointers into the packet can",
       "compare a packet pointer against data_end: if ((void *)(hdr + 1) > data_end) return ...;", "index"),
    _e("packet_bounds", r"invalid access to packet|offset is outside of the packet",
       "{var} points into the packet, which is read before proving that many bytes exist",
       "check the end first: if ((void *)({var} + 1) > (void *)(long)ctx->data_end) return XDP_PASS; "
       "(or TC_ACT_OK)", "deref"),
    _e("helper_size_unbounded", r"R(?P<reg>\d+) unbounded memory access, use 'var &= const'",
       "the size passed to {helper} has no upper bound the verifier can see",
       "bound it before the call: if (n > sizeof(buf)) n = sizeof(buf); or n &= (sizeof(buf) - 1);", "index"),
    _e("negative_size", r"R(?P<reg>\d+) min value is negative, either use unsigned",
       "the length or index given to {helper} may be negative (a signed int)",
       "declare it unsigned (u32) or check it: if (n < 0 || n > MAX) return 0;", "index"),
    _e("unbounded_index", r"R\d+ unbounded memory access, make sure to bounds check",
       "the index {var} can take any value, so the access may land anywhere in memory",
       "bound it before use: if ({var} >= MAX_ENTRIES) return 0; or {var} &= (MAX_ENTRIES - 1);", "index"),
    _e("signed_index", r"math between (?P<type>\w+) pointer and register with unbounded min value",
       "the index {var} is signed and only checked from above, so it may be negative",
       "make it unsigned (u32) or also check {var} >= 0 before indexing", "index"),
    _e("map_value_out_of_range",
       r"invalid access to map value, value_size=(?P<value_size>\d+) off=(?P<off>-?\d+) size=(?P<size>\d+)",
       "the access with {var} reaches offset {off}, outside the {value_size}-byte map value",
       "clamp the index to the array: if ({var} >= ARRAY_LEN) return 0; (or {var} &= ARRAY_LEN - 1 "
       "for a power of two)", "index"),
    _e("memory_out_of_range", r"invalid access to memory, mem_size=(?P<mem_size>\d+) off=(?P<off>-?\d+) "
                              r"size=(?P<size>\d+)",
       "{var} points at {mem_size} bytes (e.g. a bpf_ringbuf_reserve() record) and the access reaches "
       "offset {off}",
       "reserve a record as large as the struct you fill (sizeof(*{var})) and stay inside it", "deref"),
    _e("stack_variable_offset", r"invalid variable-offset (?:read from|write to) stack",
       "the index {var} into a stack array is not bounded to the array",
       "check the index against the array's length first: if ({var} >= ARRAY_LEN) return 0;", "index"),
    _e("stack_out_of_bounds", r"invalid (?:write|read) to stack R\d+ off=|invalid stack off=",
       "the access falls outside the program's 512-byte stack",
       "keep locals small; put large buffers in a per-CPU array map", "index"),
    _e("uninit_stack", r"invalid (?:indirect )?read from stack (?:R(?P<reg>\d+))?",
       "{var} is passed or read before every byte of it is written (padding included)",
       "initialise it where it is declared: = {{}}; or __builtin_memset(&{var}, 0, sizeof({var})); "
       "then fill it in", "index"),
    _e("combined_stack", r"combined stack size of (?P<calls>\d+) calls is (?P<size>\d+)",
       "the functions on one call chain use {size} bytes of stack together; the limit is 512",
       "make the large buffers static globals or per-CPU array map values, or mark helpers __always_inline"),
    _e("uninit_register", r"R(?P<reg>\d+) !read_ok",
       "register R{reg} is read before anything was stored in it: R0 at exit means the function "
       "returns without a value",
       "return a value on every path (return 0;) and initialise every variable you read"),
    _e("ctx_variable_access", r"variable ctx access var_off=|dereference of modified ctx ptr",
       "the context pointer ({var}) was moved before the access; context fields must be read at "
       "fixed offsets straight from ctx",
       "read ctx->field directly, without adding an offset or index to ctx first", "deref"),
    _e("btf_beyond_struct", r"access beyond struct (?P<struct>\w+) at off (?P<off>-?\d+) size (?P<size>\d+)",
       "{var} is a typed kernel pointer (struct {struct} in the kernel's BTF), and offset {off} lies outside "
       "that struct, so the verifier cannot say what is there",
       "read fields by name ({var}->field, or BPF_CORE_READ); memory the struct points to is reached by "
       "following that pointer, and other kernel memory with bpf_probe_read_kernel()", "deref"),
    _e("ctx_access", r"invalid bpf_context access off=(?P<off>\d+) size=(?P<size>\d+)",
       "{var} is not a field this program type may {rw} in its context (offset {off}, {size} bytes); "
       "it may use: {fields}",
       "use one of the allowed fields; packet bytes in socket filters via bpf_skb_load_bytes(); the "
       "context of tracepoints and perf events is read-only", "field"),
    _e("gpl_only", r"cannot call GPL-restricted function from non-GPL compatible program",
       "{helper} is only for GPL-compatible programs and this cell's licence is not",
       'declare a GPL licence: char LICENSE[] SEC("license") = "GPL"; (BCC cells are GPL by default)'),
    _e("helper_not_allowed", r"program of this type cannot use helper (?P<name>\w+)#",
       "{name} is not available to {prog_type} programs",
       "use a helper this program type offers (bpftool feature probe lists them), or a program type "
       "that has {name}"),
    _e("unknown_helper", r"(?:invalid|unknown) func (?P<name>\w+)#(?P<id>\d+)",
       "the program calls helper number {id}, which this kernel does not have",
       "call only helpers declared in <bpf/bpf_helpers.h> for this kernel; check the name and its kernel version"),
    _e("kfunc_not_allowed", r"calling kernel function (?P<name>\w+) is not allowed",
       "the kernel function {name} is not registered for {prog_type} programs",
       "call it from a program type that may use it (tracing, tp_btf, syscall, ...) or use a helper"),
    _e("endless_loop", r"infinite loop detected at insn|back-edge from insn",
       "the loop can run forever: the verifier saw the same state come back without progress",
       "give the loop a bound the verifier can see: for (int i = 0; i < 64 && cond; i++), "
       "or use bpf_loop()/bpf_for()"),
    _e("too_complex", r"The sequence of (?P<jumps>\d+) jumps is too complex",
       "the program has too many branches pending at once for the verifier to follow",
       "simplify: fewer nested conditions in the loop, or move work into bpf_loop() callbacks"),
    _e("too_large", r"BPF program is too large",
       "the verifier walked a million instructions without finishing: loops multiply the paths it checks",
       "lower the loop bounds, or use bpf_loop()/bpf_for() so each iteration is verified once"),
    _e("unreleased_ringbuf", r"Unreleased reference id=\d+ alloc_insn=(?P<insn>\d+)",
       "{var} was reserved with bpf_ringbuf_reserve() and some path returns without giving it back",
       "on every path after a successful reserve call bpf_ringbuf_submit({var}, 0) or "
       "bpf_ringbuf_discard({var}, 0)", "alloc", helper="ringbuf"),
    _e("unreleased_socket", r"Unreleased reference id=\d+ alloc_insn=(?P<insn>\d+)",
       "{var} holds a socket from {helper}, and some path returns without releasing it",
       "call bpf_sk_release({var}) on every path once the lookup succeeded", "alloc", helper="sk_lookup|skc_lookup"),
    _e("unreleased_reference", r"Unreleased reference id=\d+ alloc_insn=(?P<insn>\d+)",
       "{var} holds a reference from {helper} that is not released on every path",
       "release it (the helper's release pair) before each return", "alloc"),
    _e("ringbuf_reuse", r"R(?P<reg>\d+) type=scalar expected=ringbuf_mem",
       "{var} was already submitted or discarded: after that it is no longer a record you may use",
       "submit or discard each reserved record exactly once, as the last use of it", "lookup"),
    _e("helper_arg_type", r"R(?P<reg>\d+) type=(?P<type>\w+) expected=(?P<expected>[\w ,]+)",
       "argument {reg} of {helper} ({var}) is a {type}, but it must be one of: {expected}",
       "pass a pointer to memory the verifier knows (a stack variable &x, a map value), not a number "
       "cast to a pointer", "index"),
    _e("wrong_map_type", r"cannot pass map_type (?P<map_type>\d+) into func (?P<name>\w+)#",
       "{name} needs another kind of map than the {map_type_name} map given to it",
       "declare the map with the type the helper works on (ringbuf helpers: BPF_MAP_TYPE_RINGBUF; "
       "perf_event_output: BPF_MAP_TYPE_PERF_EVENT_ARRAY)"),
    _e("write_readonly_map", r"write into map forbidden",
       "the program writes into a read-only map: const globals live in .rodata, frozen at load",
       "write into a non-const global or a map value; keep const for settings read by the program"),
    _e("write_readonly_btf", r"only read is supported",
       "{var} is a kernel object: tp_btf and fentry programs may read it but never write it",
       "copy the value into a local or a map, and change that", "deref"),
    _e("sleepable_helper", r"helper call might sleep in a non-sleepable prog",
       "{helper} may sleep (e.g. to fault in user memory), which this program type may not do",
       "use a sleepable program (SEC(\"uprobe.s/...\"), SEC(\"lsm.s/...\")) or bpf_probe_read_user() instead"),
    _e("core_relocation", r"failed to resolve CO-RE relocation .*?(?P<kind>struct|union|enum) "
                          r"(?P<type>\w+)\.(?P<field>\w+)",
       "{type}.{field} does not exist in this kernel's BTF, so BPF_CORE_READ() cannot find it",
       "check the field's name in this kernel (bpftool btf dump file /sys/kernel/btf/vmlinux | grep ...); "
       "guard optional fields with bpf_core_field_exists()"),
    _e("bad_return", r"At program exit the register R0 has (?P<has>.*) should have been in \[(?P<lo>-?\d+), "
                     r"(?P<hi>-?\d+)\]",
       "this program type must return a value in [{lo}, {hi}], and this path returns {has}",
       "return one of the allowed values (cgroup programs: 1 allow, 0 deny)"),
    _e("unreachable_code", r"unreachable insn (?P<insn>\d+)",
       "the program has instructions no path reaches (often an inline asm exit)",
       "remove the dead code; let the function end with a C return"),
    _e("misaligned", r"misaligned (?P<what>\w+) access",
       "a {what} access is not aligned to its size",
       "read multi-byte values from aligned offsets, or copy them with __builtin_memcpy()"),
)

# The failing verifier line ends the log; these lines come after it and say nothing new.
TRAILER = ("processed ", "HINT", "bpf: Failed", "verification time", "stack depth", "-- END",
           "BPF_EXIT instruction in main prog would lead to reference leak", "cur state:", "old state:")
NOISE = re.compile(r"reference type\('UNKNOWN '\) size cannot be determined|^func '\w+' arg\d+ has btf_id")

# errno E2BIG: the kernel stopped and libbpf's log buffer overflowed before its last line.
TOO_LARGE = next(e for e in VERIFIER if e.cause == "too_large")


def _c(cause, pattern, explanation, fix, subject=""):
    return Entry(cause, re.compile(pattern, re.M), explanation, fix, subject)


# BCC's dialect in a libbpf cell and the reverse: found in the cell's text when clang fails.
BCC_ONLY = re.compile(r"\bBPF_(?:HASH|ARRAY|PERCPU_ARRAY|PERCPU_HASH|HISTOGRAM|PERF_OUTPUT|RINGBUF_OUTPUT|"
                      r"STACK_TRACE|TABLE)\s*\(|\b\w+\.(?:lookup|lookup_or_try_init|increment|update|"
                      r"perf_submit|ringbuf_output|ringbuf_reserve|get_stackid|atomic_increment)\s*\(|"
                      r"\bTRACEPOINT_PROBE\s*\(|\bRAW_TRACEPOINT_PROBE\s*\(")
CORE_ONLY = re.compile(r"\bSEC\s*\(\s*\"|#\s*include\s*[\"<]vmlinux\.h|\b__uint\s*\(\s*type|"
                       r"\b__type\s*\(\s*(?:key|value)|#\s*include\s*<bpf/bpf_(?:helpers|tracing|core_read)\.h>")

COMPILE: tuple[Entry, ...] = (
    _c("bcc_syntax_in_core", BCC_ONLY.pattern,
       "this is a libbpf (CO-RE) cell, but `{found}` is BCC's dialect, which plain clang does not know",
       'declare maps as struct {{ __uint(type, BPF_MAP_TYPE_HASH); ... }} name SEC(".maps"); and use '
       "bpf_map_lookup_elem(&name, &key); or write the SEC on the magic line for a BCC cell"),
    _c("core_syntax_in_bcc", CORE_ONLY.pattern,
       "this is a BCC cell (SEC on the magic line), but `{found}` belongs to libbpf (CO-RE) programs",
       "either drop the SEC from the magic line and keep the libbpf program, or use BCC's "
       "BPF_HASH(name, key, value) and map.lookup(&key) without SEC/vmlinux.h"),
    _c("stack_limit", r"BPF stack limit (?:of 512 bytes )?is exceeded",
       "the function's locals need more than the 512 bytes of stack a BPF program has",
       "move large buffers into a per-CPU array map (lookup index 0) or make them smaller"),
    _c("missing_include", r"'(?P<header>[^']+)' file not found",
       "the header {header} is not on this machine's include path",
       "check its name; libbpf cells use \"vmlinux.h\" and <bpf/bpf_helpers.h>, BCC cells need no includes "
       "for helpers"),
    _c("undeclared_function", r"(?:call to undeclared function|implicit declaration of function) '(?P<name>\w+)'",
       "{name} is not declared: a misspelt helper, or one whose header is not included",
       "check the name; in a CO-RE cell #include <bpf/bpf_helpers.h> (helpers) and <bpf/bpf_tracing.h> / "
       "<bpf/bpf_core_read.h> for BPF_PROG and BPF_CORE_READ"),
    _c("unknown_type", r"unknown type name '(?P<name>\w+)'",
       "the type {name} is not declared here",
       "CO-RE cells: #include \"vmlinux.h\" (u32, u64, kernel structs); BCC cells: include the kernel header "
       "that defines it"),
    _c("no_member", r"no member named '(?P<name>\w+)' in '(?P<type>[^']+)'",
       "{type} has no field {name} in the headers used",
       "check the field's name (bpftool btf dump file /sys/kernel/btf/vmlinux format c | grep -A40 '{type} {{')"),
)
