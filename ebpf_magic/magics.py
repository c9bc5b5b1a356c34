"""The IPython glue: parse the magic line, call the loader and the session, show the result."""
from __future__ import annotations

import sys

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Float, Int

from .session import SESSION


@magics_class
class BPFMagics(Magics):
    """``%config BPFMagics.default_duration = 2`` changes what ``h.events()`` waits by default."""

    max_events = Int(100_000, help="default bound on events kept by h.events()").tag(config=True)
    default_duration = Float(1.0, help="default seconds h.events() collects").tag(config=True)

    @magic_arguments()
    @argument("sec", nargs="?", default=None,
              help="libbpf SEC name, e.g. tracepoint/syscalls/sys_enter_openat, raw_tp/sched_switch, "
                   "tp_btf/sched_switch, perf_event, uprobe/BINARY:SYMBOL, usdt/BINARY:PROVIDER:NAME, "
                   "iter/task. Without it, the cell's SEC(\"...\") annotation is used.")
    @argument("-n", "--name", help="variable the handle is bound to (default: the program function's name); "
                                   "re-running a cell with the same name detaches the previous program first")
    @argument("--fn", help="the program function, when the cell defines more than one")
    @argument("--pid", type=int, help="uprobe/usdt/perf_event: only this process")
    @argument("--event", help="perf_event: cpu-clock (default), task-clock, page-faults, context-switches, "
                              "... or a hardware event (cycles, instructions) where the CPU has a PMU")
    @argument("--freq", type=int, help="perf_event: samples per second (default 99)")
    @argument("--period", type=int, help="perf_event: one sample every PERIOD events")
    @argument("--cpu", type=int, help="perf_event: only this CPU (default: all)")
    @argument("--dev", help="xdp, tc, socket: a lab host (b) or host:interface (b:eth0) of %%bpf_net's network")
    @argument("--xdp-mode", choices=["skb", "drv"], help="xdp: skb (generic) or drv (native); default: the "
                                                       "kernel's choice, shown in the handle")
    @argument("--direction", choices=["ingress", "egress"], help="tc/classifier: which way the packets go")
    @argument("--clsact", action="store_true", help="tc: attach through a netlink clsact filter as tc(8) "
                                                   "does, instead of a tcx link")
    @argument("--real-dev", action="store_true", help="--dev names an interface of this machine itself, "
                                                      "outside the lab network (never needed in the course)")
    @argument("--cgroup", help="cgroup_skb/*, cgroup/*, sockops: the cgroup to attach to: a lab cgroup "
                               "(cg = %%bpf_cgroup, then --cgroup cg) or a cgroup v2 directory")
    @argument("--map", help="sk_msg, sk_skb/*: the sockmap or sockhash to attach to, HANDLE:MAP "
                            "(e.g. est:sock_hash) or MAP of the cell itself; sk_reuseport: the "
                            "reuseport sockarray the lab fills with its listeners")
    @argument("--netns", help="sk_lookup, flow_dissector, sk_reuseport: the lab host (b) whose network namespace the "
                              "program attaches to (a BPF link)")
    @argument("--real-netns", action="store_true", help="--netns names a namespace of this machine: self "
                                                        "(its own) or a file such as /run/netns/NAME, outside "
                                                        "the lab network (never needed in the course)")
    @argument("--sockets", type=int, help="sk_reuseport: how many SO_REUSEPORT TCP listeners the lab opens "
                                          "in the --netns host (default 4); h.group holds them")
    @argument("--port", type=int, help="sk_reuseport: the port of those listeners (default: any free one)")
    @argument("--cflags", action="append", default=[],
              help="extra clang flags: --cflags '-DN=4 -DM=2' or --cflags=-DN=4; repeatable")
    @argument("--engine", choices=["bcc", "core"],
              help="bcc: BCC C with the SEC on the magic line; core: a whole libbpf program (vmlinux.h, "
                   "SEC() on each function) compiled by clang and loaded by libbpf. Default: core when the "
                   "magic line has no SEC and the cell has SEC(\"...\") annotations, else bcc")
    @argument("--set", action="append", metavar="NAME=VALUE",
              help="core: set a global (const volatile ...) before load; repeatable")
    @argument("--event-type", help="core: the struct that ring/perf buffer records carry, where the "
                                   "code does not make it plain")
    @argument("-q", "--quiet", action="store_true", help="bind the handle without displaying it")
    @cell_magic
    def bpf(self, line, cell):
        """Compile the cell, load it as the SEC's program type and attach it.

        Two engines. BCC (``%%bpf SEC``): BCC C with one program function;
        libbpf spellings work too (SEC(...), BPF_KPROBE, BPF_KRETPROBE, BPF_PROG,
        PT_REGS_PARMn, struct trace_event_raw_sys_enter/_exit). CO-RE (``%%bpf``
        with no SEC, the cell a whole libbpf program with #include "vmlinux.h"
        and SEC("...") on each function): clang + libbpf, relocated against
        this kernel's BTF. ``--engine`` overrides the choice.

        Returns a handle: h["map"].to_frame(), h.hist("map"), h.events("map"),
        h.trace_lines(), h.live("map"), h.read() (iterators), h.detach();
        CO-RE handles also have h.globals and h.programs.
        """
        from . import cell as cells
        from .attach import Options
        from .cgroups import resolve
        from .loader import run

        args = _parse(self.bpf, line)
        parsed = cells.make(
            cell, args.sec, engine=args.engine, name=args.name, fn=args.fn,
            options=Options(pid=args.pid, event=args.event, freq=args.freq, period=args.period, cpu=args.cpu,
                            dev=args.dev, xdp_mode=args.xdp_mode, direction=args.direction,
                            clsact=args.clsact, real_dev=args.real_dev,
                            cgroup=resolve(args.cgroup, self.shell.user_ns), map=args.map,
                            netns=args.netns, real_netns=args.real_netns, sockets=args.sockets,
                            port=args.port),
            cflags=cells.split_cflags(args.cflags), sets=args.set, event_type=args.event_type, quiet=args.quiet)
        defaults = {"duration": self.default_duration, "max_events": self.max_events}
        program = SESSION.replace(parsed.name, lambda: run(parsed), defaults)
        self.shell.user_ns[program.name] = program
        if program.warnings:
            print("compiler warnings:\n  " + "\n  ".join(program.warnings), file=sys.stderr)
        return None if parsed.quiet else program

    @line_magic
    def bpf_sec(self, line):
        """%bpf_sec NAME: how libbpf reads a SEC name, as a one-row DataFrame."""
        import pandas as pd

        from .sections import resolve

        (name,) = _words("bpf_sec", line, 1, "%bpf_sec tracepoint/syscalls/sys_enter_openat")
        return pd.DataFrame([resolve(name).as_row()])

    @line_magic
    def bpf_features(self, line):
        """%bpf_features: which program types this kernel runs, and why not where it does not."""
        from .features import report

        _words("bpf_features", line, 0, "%bpf_features")
        df = report()
        print("  ".join(f"{k}: {v}" for k, v in df.attrs.items()))
        return df

    @line_magic
    def bpf_list(self, line):
        """%bpf_list: the programs this lab session has loaded."""
        _words("bpf_list", line, 0, "%bpf_list")
        return SESSION.frame()

    @magic_arguments()
    @argument("name", nargs="?", help="the handle's name")
    @argument("--all", action="store_true", help="detach everything the lab loaded")
    @line_magic
    def bpf_detach(self, line):
        """%bpf_detach NAME | --all"""
        from .errors import UsageError

        args = _parse(self.bpf_detach, line)
        if args.all and args.name:
            raise UsageError(f"give a name or --all, not both (got {args.name!r} and --all)",
                             hint=f"%bpf_detach {args.name}, or %bpf_detach --all")
        if args.all:
            n = SESSION.release_all()
            print(f"detached {n} program(s)")
            return
        if not args.name:
            raise UsageError("say which program to detach", hint="%bpf_detach NAME, or %bpf_detach --all")
        if not SESSION.release(args.name):
            raise UsageError(f"nothing named {args.name!r} is loaded",
                              hint=f"loaded: {', '.join(SESSION.names()) or 'nothing'}")
        print(f"detached {args.name}")


def _parse(magic, line: str):
    """The magic's arguments; a malformed line is a short UsageError, not argparse's SystemExit."""
    from IPython.core.error import UsageError as IPythonUsageError

    from .errors import UsageError

    try:
        return parse_argstring(magic, line)
    except (IPythonUsageError, ValueError) as exc:
        raise UsageError(str(exc).strip().splitlines()[-1], hint=f"%{magic.__name__}? lists the options") from None
    except SystemExit:  # argparse exits after printing help or an error it cannot route through error()
        raise UsageError(f"%{magic.__name__} {line.strip()}: not a valid line",
                         hint=f"%{magic.__name__}? lists the options") from None


def _words(magic: str, line: str, count: int, example: str) -> list[str]:
    """A line magic's positional words, exactly ``count`` of them."""
    import shlex

    from .errors import UsageError

    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%{magic}: {exc}", hint=example) from None
    if len(words) != count:
        wanted = {0: "no arguments", 1: "one name"}.get(count, f"{count} arguments")
        raise UsageError(f"%{magic} takes {wanted}, got {len(words)}: {line.strip()!r}", hint=example)
    return words


def register(ipython) -> None:
    from .magics_cgroup import CgroupMagics, sweep_stale
    from .magics_exercise import ExerciseMagics
    from .magics_net import NetMagics

    ipython.register_magics(BPFMagics)
    ipython.register_magics(NetMagics)
    ipython.register_magics(CgroupMagics)
    ipython.register_magics(ExerciseMagics)
    sweep_stale()


def unregister(ipython) -> None:
    SESSION.release_all()
    table = ipython.magics_manager.magics
    for kind, names in (("cell", ["bpf"]), ("line", ["bpf_sec", "bpf_features", "bpf_list", "bpf_detach", "bpf_net", "bpf_cgroup", "bpf_check"])):
        for n in names:
            table[kind].pop(n, None)
