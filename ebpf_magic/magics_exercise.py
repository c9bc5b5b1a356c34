"""``%bpf_check``: run a chapter's exercise against the learner's handle."""
from __future__ import annotations

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments


@magics_class
class ExerciseMagics(Magics):
    @magic_arguments()
    @argument("exercise", nargs="?", help="the exercise's name, as the chapter gives it")
    @argument("handle", nargs="?", help="the variable holding your program (the %%%%bpf cell's -n NAME)")
    @argument("--list", action="store_true", help="every exercise of the course, as a DataFrame")
    @line_magic
    def bpf_check(self, line):
        """%bpf_check EXERCISE HANDLE: check your program against the exercise's own workload.

        The check runs a workload whose answer your program must find, then reads
        your maps or events. It says "passed" or "not yet" with the reason; a wrong
        answer is not an error, so the notebook goes on. The result is true only
        on a pass: ``v = %bpf_check ...`` then ``assert v, v.reason`` stops on a wrong one.
        """
        from . import exercises
        from .errors import UsageError
        from .magics import _parse

        args = _parse(self.bpf_check, line)
        if args.list:
            import pandas as pd

            rows = [{"exercise": e.name, "chapter": e.chapter, "title": e.title}
                    for e in sorted(exercises.registry().values(), key=lambda e: (e.chapter, e.name))]
            return pd.DataFrame(rows, columns=["exercise", "chapter", "title"])
        if not args.exercise or not args.handle:
            raise UsageError("%bpf_check needs an exercise and a handle",
                             hint="%bpf_check 02-openat-count my_prog (%bpf_check --list names them)")
        if args.handle not in self.shell.user_ns:
            raise UsageError(f"no variable {args.handle!r} in this notebook",
                             hint=f"run the exercise's %%bpf cell with -n {args.handle} first")
        return exercises.check(args.exercise, self.shell.user_ns[args.handle])
