"""Pure logic: error rendering, the cell scanner and the prelude text."""
from __future__ import annotations

from ebpf_magic import source
from ebpf_magic.errors import AttachError, BPFLabError, MapError, UnknownSectionError


def test_render_is_three_short_parts():
    err = AttachError("no tracepoint x:y", where="cell line 2: int f()", hint="did you mean x:z?")
    lines = err._render_traceback_()
    assert len(lines) == 3
    assert "no tracepoint x:y" in lines[0] and "cell line 2" in lines[1] and "did you mean" in lines[2]


def test_errors_are_real_exceptions_with_plain_str():
    assert issubclass(UnknownSectionError, ValueError)
    err = MapError("p has no map 'x'", hint="its maps: counts")
    assert str(err) == "Map error: p has no map 'x'\n  try: its maps: counts"
    assert isinstance(err, KeyError) and isinstance(err, BPFLabError)


SEED_STYLE = '''
SEC("tp/syscalls/sys_enter_openat")
int handle_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
    return 0;
}
static __always_inline int helper(int x) { return x; }
SEC("kprobe/inet_listen")
int BPF_KPROBE(inet_listen_entry, struct socket *sock, int backlog)
{
    if (backlog) { return helper(backlog); }
    return 0;
}
/* int commented_out(void *ctx) { } */
SEC("kretprobe/dummy_file_write")
int BPF_KRETPROBE(file_write_exit, ssize_t ret)
{
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_enter_getpid) { return 0; }
BPF_ITER(task) { return 0; }
'''


def test_program_functions_finds_definitions_and_macros_in_order():
    assert source.program_functions(SEED_STYLE) == [
        "handle_openat_enter", "inet_listen_entry", "file_write_exit",
        "tracepoint__syscalls__sys_enter_getpid", "bpf_iter__task",
    ]


def test_sec_annotations_map_functions_to_sections():
    assert source.sec_annotations(SEED_STYLE + 'char LICENSE[] SEC("license") = "GPL";') == {
        "handle_openat_enter": "tp/syscalls/sys_enter_openat",
        "inet_listen_entry": "kprobe/inet_listen",
        "file_write_exit": "kretprobe/dummy_file_write",
    }


def test_build_keeps_cell_line_numbers():
    src = source.build("int a;\nint b;\n")
    assert src.text.endswith('#line 1 "cell"\nint a;\nint b;\n')
    assert src.cell_line(2) == "int b;"
    assert src.cell_line(9) == ""


def test_prelude_defines_what_the_seed_uses():
    for name in ("SEC(name)", "BPF_KPROBE(name", "BPF_KRETPROBE(name", "BPF_PROG(name",
                 "struct trace_event_raw_sys_enter {", "struct trace_event_raw_sys_exit {"):
        assert name in source.PRELUDE, name


def test_headers_only_for_cells_that_need_them():
    assert "#include" not in source.build("int f(void *ctx) { return 0; }").text.split("#ifndef SEC")[0]
    assert "bpf_perf_event.h" in source.build("int f(struct bpf_perf_event_data *ctx) { return 0; }").text
    assert "ptrace.h" in source.build("int f(struct pt_regs *ctx) { return PT_REGS_RC(ctx); }").text


def test_comments_go_but_paths_in_strings_stay():
    cell = 'SEC("uprobe//usr/lib/x86_64-linux-gnu/libc.so.6:malloc") // a comment\nint on_malloc(void *ctx) { return 0; }'
    assert source.sec_annotations(cell) == {"on_malloc": "uprobe//usr/lib/x86_64-linux-gnu/libc.so.6:malloc"}
