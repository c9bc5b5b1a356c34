"""Attaching a loaded program: the family registry names one small attacher per family."""
from __future__ import annotations

from ..errors import AttachError
from ..families import attachable, family
from .base import Attachment, Options, Request

__all__ = ["Attachment", "Options", "Request", "attach", "btf_id"]


def btf_id(section) -> int | None:
    """The BTF id the kernel wants at load time, for families that attach by BTF."""
    if family(section.family).btf is None:
        return None
    from .tracing import btf_id as lookup

    return lookup(section)


def attach(req: Request) -> list[Attachment]:
    fam = family(req.section.family)
    fn = fam.attach_function()
    if fn is None:
        raise AttachError(f"the lab does not attach {fam.name} programs yet ({req.section.name})",
                          hint="families attached here: " + ", ".join(attachable()))
    return fn(req)
