"""Chapter 12's exercise: no new directories inside directories named locked-* (lsm/inode_mkdir)."""
from __future__ import annotations

import os
import random
import secrets
import tempfile

from . import NotYet, exercise, misjudged


@exercise("12-locked-dirs", "12-lsm", "refuse mkdir(2) inside directories named locked-* (BPF LSM)")
def locked_dirs(handle) -> str:
    parents = [f"locked-{secrets.token_hex(3)}" for _ in range(random.randint(1, 3))]
    parents += [f"open-{secrets.token_hex(3)}" for _ in range(random.randint(1, 3))] + ["unlocked-x"]
    random.shuffle(parents)
    wrong = []
    with tempfile.TemporaryDirectory(prefix="ebpf-lab-12-") as work:
        for parent in parents:
            # made under another name, then renamed: a program that refuses too much must not stop the set-up
            made = os.path.join(work, f"tmp-{secrets.token_hex(4)}")
            os.mkdir(made)
            os.rename(made, os.path.join(work, parent))
            try:
                os.mkdir(os.path.join(work, parent, "sub"))
                refused = None
            except OSError as exc:
                refused = exc.errno
            wrong.append(misjudged(f"mkdir in {parent}", refused, parent.startswith("locked-")))
    wrong = [w for w in wrong if w]
    if wrong:
        raise NotYet(f"{len(wrong)} of {len(parents)} mkdirs went the wrong way: " + "; ".join(wrong[:3]))
    return f"{len(parents)} mkdirs: refused with EPERM in every locked-* directory, created elsewhere"
