"""Turns a cell into BCC source.

BCC compiles its own dialect; the seed's examples are written for libbpf.
A prelude bridges the two (SEC, BPF_KPROBE, BPF_KRETPROBE, the tracepoint
context structs), and a ``#line`` directive makes clang report cell lines,
not prelude lines.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CELL_FILE = "cell"

# BCC already provides BPF_PROG, PT_REGS_PARMn/RC and struct bpf_raw_tracepoint_args.
PRELUDE = r"""
#ifndef SEC
#define SEC(name)
#endif
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* The syscall tracepoint layouts from vmlinux.h, which BCC's headers lack. */
struct __lab_trace_entry {
    unsigned short type;
    unsigned char flags;
    unsigned char preempt_count;
    int pid;
};
struct trace_event_raw_sys_enter {
    struct __lab_trace_entry ent;
    long int id;
    unsigned long args[6];
    char __data[0];
};
struct trace_event_raw_sys_exit {
    struct __lab_trace_entry ent;
    long int id;
    long int ret;
    char __data[0];
};

/* Iterator contexts: kernel-internal structs that no header exports. */
struct bpf_iter_meta {
    struct seq_file *seq;
    __u64 session_id;
    __u64 seq_num;
};
struct bpf_iter__task { struct bpf_iter_meta *meta; struct task_struct *task; };
struct bpf_iter__task_file {
    struct bpf_iter_meta *meta;
    struct task_struct *task;
    __u32 fd;
    struct file *file;
};
struct bpf_iter__bpf_map { struct bpf_iter_meta *meta; struct bpf_map *map; };

/* libbpf's BPF_KPROBE/BPF_KRETPROBE: the outer function takes pt_regs, the
 * body sees typed arguments. Argument N is PT_REGS_PARM<N> (1-based). */
#define __LAB_NTH(_0, _1, _2, _3, _4, _5, _6, _7, _8, N, ...) N
#define __LAB_NARGS(...) __LAB_NTH(_, ##__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define __LAB_JOIN_(a, b) a##b
#define __LAB_JOIN(a, b) __LAB_JOIN_(a, b)
#define __LAB_P1 (void *)PT_REGS_PARM1(ctx)
#define __LAB_P2 __LAB_P1, (void *)PT_REGS_PARM2(ctx)
#define __LAB_P3 __LAB_P2, (void *)PT_REGS_PARM3(ctx)
#define __LAB_P4 __LAB_P3, (void *)PT_REGS_PARM4(ctx)
#define __LAB_P5 __LAB_P4, (void *)PT_REGS_PARM5(ctx)
#define __LAB_REGS_0 ctx
#define __LAB_REGS_1 ctx, __LAB_P1
#define __LAB_REGS_2 ctx, __LAB_P2
#define __LAB_REGS_3 ctx, __LAB_P3
#define __LAB_REGS_4 ctx, __LAB_P4
#define __LAB_REGS_5 ctx, __LAB_P5
#define __LAB_KPROBE_ARGS(...) __LAB_JOIN(__LAB_REGS_, __LAB_NARGS(__VA_ARGS__))

/* BCC's BPF_SEQ_PRINTF keeps its format in .rodata, which BCC's loader leaves
 * unrelocated, and so does an initialised array of constant arguments; a
 * format copied to the stack and arguments stored one by one load everywhere. */
#define __LAB_FILL_1(a, x) a[0] = (unsigned long long)(x);
#define __LAB_FILL_2(a, x, ...) __LAB_FILL_1(a, x) a[1] = (unsigned long long)(__VA_ARGS__);
#define __LAB_FILL_3(a, x, ...) __LAB_FILL_1(a, x) __LAB_FILL_2((a + 1), __VA_ARGS__)
#define __LAB_FILL_4(a, x, ...) __LAB_FILL_1(a, x) __LAB_FILL_3((a + 1), __VA_ARGS__)
#define __LAB_FILL_5(a, x, ...) __LAB_FILL_1(a, x) __LAB_FILL_4((a + 1), __VA_ARGS__)
#define __LAB_FILL_6(a, x, ...) __LAB_FILL_1(a, x) __LAB_FILL_5((a + 1), __VA_ARGS__)
#define __LAB_FILL_7(a, x, ...) __LAB_FILL_1(a, x) __LAB_FILL_6((a + 1), __VA_ARGS__)
#define __LAB_FILL_8(a, x, ...) __LAB_FILL_1(a, x) __LAB_FILL_7((a + 1), __VA_ARGS__)
#undef BPF_SEQ_PRINTF
#define BPF_SEQ_PRINTF(seq, fmt, args...)                                  \
({                                                                       \
    char ___fmt[] = fmt;                                                 \
    unsigned long long ___param[__LAB_NARGS(args) + 1];                  \
    __LAB_JOIN(__LAB_FILL_, __LAB_NARGS(args))(___param, args)           \
    bpf_seq_printf(seq, ___fmt, sizeof(___fmt), ___param, __LAB_NARGS(args) * 8); \
})
#define __LAB_FILL_0(a, ...)


/* libbpf spells the return type at the use site: int BPF_KPROBE(name, ...).
 * BCC's own BPF_PROG includes "int"; it is replaced by libbpf's form here, and
 * BCC's macros built on it get their "int" back. (No typeof(name(0)) as in
 * libbpf: BCC's rewriter refuses that call to a non-static function.) */
/* Both share the body; CALL_ARGS is the parenthesised list ____name gets. */
#define __LAB_PT_REGS_PROG(name, call_args, args...)                      \
name(struct pt_regs *ctx);                                               \
static __always_inline int ____##name(struct pt_regs *ctx, ##args); \
int name(struct pt_regs *ctx)                                \
{                                                                        \
    _Pragma("GCC diagnostic push")                                       \
    _Pragma("GCC diagnostic ignored \"-Wint-conversion\"")               \
    return ____##name call_args;                                         \
    _Pragma("GCC diagnostic pop")                                        \
}                                                                        \
static __always_inline int ____##name(struct pt_regs *ctx, ##args)
#define BPF_KPROBE(name, args...) __LAB_PT_REGS_PROG(name, (__LAB_KPROBE_ARGS(args)), ##args)
#define BPF_KRETPROBE(name, args...) __LAB_PT_REGS_PROG(name, (ctx, (void *)PT_REGS_RC(ctx)), ##args)

#undef BPF_PROG
#define BPF_PROG(name, args...)                                          \
name(unsigned long long *ctx);                                           \
static __always_inline int ____##name(unsigned long long *ctx, ##args); \
int name(unsigned long long *ctx)                            \
{                                                                        \
    _Pragma("GCC diagnostic push")                                       \
    _Pragma("GCC diagnostic ignored \"-Wint-conversion\"")               \
    return ____##name(___bpf_ctx_cast(args));                            \
    _Pragma("GCC diagnostic pop")                                        \
}                                                                        \
static __always_inline int ____##name(unsigned long long *ctx, ##args)
#undef KFUNC_PROBE
#define KFUNC_PROBE(event, args...) int BPF_PROG(kfunc__##event, ##args)
#undef KRETFUNC_PROBE
#define KRETFUNC_PROBE(event, args...) int BPF_PROG(kretfunc__##event, ##args)
#undef KMOD_RET
#define KMOD_RET(event, args...) int BPF_PROG(kmod_ret__##event, ##args)
#undef LSM_PROBE
#define LSM_PROBE(event, args...) int BPF_PROG(lsm__##event, ##args)
"""

_SEC_ANNOTATION = re.compile(r'SEC\(\s*"([^"]+)"\s*\)\s*(?:int|long|__s32|u32|__u32)?\s*'
                             r'(?:[A-Z_]+\(\s*(\w+)\s*[,)]|(\w+)\s*\()')
# Functions that BCC's and libbpf's macros define, with the name each one produces.
_MACRO_NAMES = [
    (re.compile(r"\bBPF_(?:KPROBE|KRETPROBE|PROG|KSYSCALL)\(\s*(\w+)"), "{0}"),
    (re.compile(r"\bTRACEPOINT_PROBE\(\s*(\w+)\s*,\s*(\w+)"), "tracepoint__{0}__{1}"),
    (re.compile(r"\bRAW_TRACEPOINT_PROBE\(\s*(\w+)"), "raw_tracepoint__{0}"),
    (re.compile(r"\bKFUNC_PROBE\(\s*(\w+)"), "kfunc__{0}"),
    (re.compile(r"\bKRETFUNC_PROBE\(\s*(\w+)"), "kretfunc__{0}"),
    (re.compile(r"\bKMOD_RET\(\s*(\w+)"), "kmod_ret__{0}"),
    (re.compile(r"\bLSM_PROBE\(\s*(\w+)"), "lsm__{0}"),
    (re.compile(r"\bBPF_ITER\(\s*(\w+)"), "bpf_iter__{0}"),
]
# A top-level definition: a type, a name, a parameter list, then a body.
_DEFINITION = re.compile(
    r"^(?!\s*(?:static|#|typedef|struct\s+\w+\s*\{|return|if|while|for|switch)\b)"
    r"[ \t]*(?:[A-Za-z_]\w*[\s\*]+)+?([A-Za-z_]\w*)\s*\([^;{]*\)\s*\{",
    re.MULTILINE,
)


@dataclass(frozen=True)
class CellSource:
    cell: str
    text: str

    def cell_line(self, lineno: int) -> str:
        lines = self.cell.splitlines()
        return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


# Kernel headers cost BCC about a second each to parse: include them only for cells that need them.
_HEADERS_FOR = [
    (re.compile(r"\bbpf_perf_event_data\b"), "#include <uapi/linux/bpf_perf_event.h>"),
    (re.compile(r"\bpt_regs\b|\bPT_REGS_|\bBPF_K(?:RET)?PROBE\b"), "#include <uapi/linux/ptrace.h>"),
]


def build(cell: str) -> CellSource:
    """The BCC text for a cell: headers it needs, the prelude, then the cell with its own line numbers."""
    headers = "\n".join(h for pattern, h in _HEADERS_FOR if pattern.search(cell))
    return CellSource(cell=cell, text=f'{headers}\n{PRELUDE}\n#line 1 "{CELL_FILE}"\n{cell}')


_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"|/\*.*?\*/|//[^\n]*', re.S)


def _strip_comments(text: str) -> str:
    """The text without comments; string literals (SEC("uprobe//usr/...")) stay whole."""
    def blank(m: re.Match) -> str:
        tok = m.group(0)
        return tok if tok.startswith('"') else "\n" * tok.count("\n")

    return _COMMENT_OR_STRING.sub(blank, text)


def program_functions(cell: str) -> list[str]:
    """Names of the non-static functions a cell defines, in source order.

    A best guess from the text, needed before compiling (USDT argument
    helpers are generated per function); BCC's own list confirms it after.
    """
    text = _strip_comments(cell)
    found: list[tuple[int, str]] = []
    for pattern, fmt in _MACRO_NAMES:
        found += [(m.start(), fmt.format(*m.groups())) for m in pattern.finditer(text)]
    macro_spans = {pos for pos, _ in found}
    for m in _DEFINITION.finditer(text):
        line_start = text.rfind("\n", 0, m.start(1)) + 1
        if not any(line_start <= pos < m.end() for pos in macro_spans) and m.group(1) not in {
            n for _, n in found
        }:
            found.append((m.start(), m.group(1)))
    return [name for _, name in sorted(found)]


def sec_annotations(cell: str) -> dict[str, str]:
    """``SEC("...")`` written above functions in the cell: function name -> section name."""
    return {macro_fn or fn: sec for sec, macro_fn, fn in _SEC_ANNOTATION.findall(_strip_comments(cell))
            if sec not in ("license", "version") and not sec.startswith(".")}
