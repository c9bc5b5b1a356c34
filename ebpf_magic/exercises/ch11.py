"""Chapter 11's exercise: keep files named keep-* from being unlinked (fmod_ret)."""
from __future__ import annotations

import os
import random
import secrets
import tempfile

from . import NotYet, exercise, misjudged


@exercise("11-keep-files", "11-fmod-ret", "refuse unlink(2) of files named keep-* (fmod_ret)")
def keep_files(handle) -> str:
    names = [f"keep-{secrets.token_hex(3)}" for _ in range(random.randint(1, 3))]
    names += [secrets.token_hex(4) for _ in range(random.randint(1, 3))]
    names += [f"kee-{secrets.token_hex(2)}", f"x-keep-{secrets.token_hex(2)}"]   # near misses
    random.shuffle(names)
    wrong = []
    with tempfile.TemporaryDirectory(prefix="ebpf-lab-11-") as work:
        for name in names:
            path = os.path.join(work, name)
            open(path, "w").close()
            try:
                os.unlink(path)
                refused = None
            except OSError as exc:
                refused = exc.errno
                gone = os.path.join(work, f"gone-{secrets.token_hex(4)}")
                os.rename(path, gone)   # rename is not unlink: the clean-up can remove it
                os.unlink(gone)
            wrong.append(misjudged(f"unlink {name}", refused, name.startswith("keep-")))
    wrong = [w for w in wrong if w]
    if wrong:
        raise NotYet(f"{len(wrong)} of {len(names)} unlinks went the wrong way: " + "; ".join(wrong[:3]))
    return f"{len(names)} unlinks: every keep-* file refused with EPERM, the others removed"
