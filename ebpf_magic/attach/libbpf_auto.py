"""CO-RE programs that libbpf attaches from their SEC name alone (kprobes, uprobes, USDT)."""
from __future__ import annotations

import ctypes as ct

from .. import libbpf
from ..errors import AttachError
from .base import Attachment, Request


def attach(req: Request, kind: str, point: str, hint: str) -> list[Attachment]:
    from ..core import logs

    so = libbpf.lib()
    with logs.capture() as msgs:
        link = so.bpf_program__attach(req.prog)
    if not link:
        err = ct.get_errno() or 22
        raise AttachError(f"attaching {req.fn} (SEC \"{req.section.name}\"): {libbpf.strerror(err)}",
                          detail="".join(msgs[-4:]).strip() or None, hint=hint)
    return [Attachment(kind, point, lambda: so.bpf_link__destroy(link), fd=so.bpf_link__fd(link))]
