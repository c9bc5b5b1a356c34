"""From a cell to an attached program: resolve the SEC, compile, load, attach.

Nothing stays loaded when any step fails: the compiled module is released
before the error reaches the learner.
"""
from __future__ import annotations

import os

from . import attach as attachers
from . import bcc_engine, source, tracepipe
from .errors import AttachError, BPFLabError, NotRootError
from .handle import Program
from .sections import Section, resolve

_CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 21, 38, 39


def check_privileges() -> None:
    try:
        with open("/proc/self/status") as f:
            cap = int(next(ln for ln in f if ln.startswith("CapEff:")).split()[1], 16)
    except (OSError, StopIteration, ValueError):
        cap = 0
    has = lambda bit: bool(cap >> bit & 1)  # noqa: E731
    if os.geteuid() == 0 or has(_CAP_SYS_ADMIN) or (has(_CAP_BPF) and has(_CAP_PERFMON)):
        return
    raise NotRootError(f"loading BPF programs needs root (running as uid {os.geteuid()})",
                       hint="start the lab as root: sudo make lab")


def choose_section(sec: str | None, cell: str, fn: str | None) -> tuple[Section, str | None]:
    """The SEC from the magic line, else from a SEC("...") annotation in the cell."""
    if sec:
        return resolve(sec), fn
    annotated = source.sec_annotations(cell)
    if fn and fn in annotated:
        return resolve(annotated[fn]), fn
    if len(annotated) == 1:
        (only_fn, only_sec), = annotated.items()
        return resolve(only_sec), fn or only_fn
    if not annotated:
        raise BPFLabError("the cell has no SEC", hint="name it on the magic line: %%bpf tracepoint/syscalls/"
                                                      "sys_enter_getpid")
    raise BPFLabError(f"the cell has several SEC annotations ({', '.join(annotated)})",
                      hint="pick one with --fn NAME")


def choose_function(compiled: list[str], wanted: str | None) -> str:
    if wanted:
        if wanted not in compiled:
            raise BPFLabError(f"no program function {wanted!r} in the cell",
                              hint=f"program functions: {', '.join(compiled) or 'none (static ones do not count)'}")
        return wanted
    if len(compiled) == 1:
        return compiled[0]
    if not compiled:
        raise BPFLabError("the cell defines no program function",
                          hint="write one non-static function taking the program's context")
    raise BPFLabError(f"the cell defines several program functions: {', '.join(compiled)}",
                      hint="name the one to load with --fn NAME, or make helpers static")


def build(cell: str, sec: str | None = None, *, name: str | None = None, fn: str | None = None,
          options: attachers.Options | None = None, cflags: list[str] | None = None) -> Program:
    """Compile, load and attach a cell; returns an attached, unregistered Program."""
    check_privileges()
    options = options or attachers.Options()
    section, fn = choose_section(sec, cell, fn)
    if section.target.problem:
        raise AttachError(f"{section.name}: {section.target.problem}", hint="fix the SEC name")
    usdt = []
    if section.family == "usdt":
        guess = fn or _single(source.program_functions(cell))
        usdt = [attachers.uprobes.usdt_context(section, guess, options.pid)]
    btf_id = attachers.btf_id(section)
    module = bcc_engine.compile_cell(source.build(cell), cflags=cflags, usdt_contexts=usdt)
    program = None
    try:
        fn = choose_function(module.functions(), fn)
        fd = bcc_engine.load(module, fn, section, btf_id=btf_id)
        if "bpf_trace_printk" in cell:
            tracepipe.drain()
        program = Program(name or fn, module, fn, section, [])
        program.attachments = attachers.attach(attachers.Request(module, fn, fd, section, options))
        if section.family == "iter":
            program.read()
        return program
    except BaseException:
        if program is not None:
            program.detach()
        module.release()
        raise


def _single(names: list[str]) -> str:
    if len(names) != 1:
        raise BPFLabError("a usdt cell needs to say which function is the probe",
                          hint="add --fn NAME (found: " + (", ".join(names) or "none") + ")")
    return names[0]
