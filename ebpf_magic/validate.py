"""Checks of the handle methods' arguments, before anything is read, polled or written.

A wrong argument is a short UsageError that names it and shows a call that
works, instead of a numpy, ctypes or libbpf error from deep inside a reader.
"""
from __future__ import annotations

import ctypes as ct
import math
import numbers

from .errors import MapError, UsageError

MAX_DURATION = 24 * 3600.0   # seconds; longer waits are a typo, and Ctrl-C stops a long one anyway
MIN_EVERY = 0.05             # seconds between live redraws; faster only burns the CPU
KINDS = ("frame", "hist")
# BCC table classes whose entries only the kernel side writes
UNWRITABLE_TABLES = ("RingBuf", "PerfEventArray", "StackTrace")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_name(value, what: str = "map name") -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"the {what} must be a non-empty string, not {value!r}",
                         hint="e.g. h[\"counts\"], h.events(\"events\")")
    return value


def check_map_name(handle, name, extra: str = "") -> str:
    """``name`` is a string naming one of the handle's maps (a detached handle says so first)."""
    check_name(name)
    names = handle.map_names
    if name not in names:
        raise handle._no_map(name, names, extra)
    return name


def check_duration(value, what: str = "duration", allow_none: bool = True):
    """Seconds to wait: a finite number from 0 to a day (None: the handle's default)."""
    if value is None and allow_none:
        return None
    if not _is_number(value) or not math.isfinite(value):
        raise UsageError(f"{what}={value!r} is not a number of seconds", hint=f"e.g. {what}=2 or {what}=0.5")
    if not 0 <= value <= MAX_DURATION:
        raise UsageError(f"{what}={value!r} is out of range", hint=f"seconds from 0 to {MAX_DURATION:g}")
    return value


def check_count(value, what: str, allow_none: bool = True):
    """A positive whole number (None: the default)."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value <= 0:
        raise UsageError(f"{what}={value!r} must be a positive whole number", hint=f"e.g. {what}=1000")
    return int(value)


def check_max_events(value):
    return check_count(value, "max_events")


def check_max_lines(value):
    return check_count(value, "max_lines", allow_none=False)


def check_page_cnt(value) -> int:
    """Perf buffer pages per CPU: the kernel wants a power of two."""
    n = check_count(value, "page_cnt", allow_none=False)
    if n & (n - 1):
        lower = 1 << (n.bit_length() - 1)
        raise UsageError(f"page_cnt={n} is not a power of two", hint=f"page_cnt={lower} or {lower * 2}")
    return n


def check_every(value) -> float:
    if not _is_number(value) or not math.isfinite(value) or value < MIN_EVERY:
        raise UsageError(f"every={value!r} must be at least {MIN_EVERY} seconds", hint="e.g. every=0.5")
    return value


def check_kind(value) -> str:
    if value not in KINDS:
        raise UsageError(f"kind={value!r} is not a view", hint="kind=\"frame\" (the map's rows) or kind=\"hist\"")
    return value


def check_unit(value):
    if value is not None and not isinstance(value, str):
        raise UsageError(f"unit={value!r} must be a string", hint="e.g. unit=\"usecs\"")
    return value


def check_event_type(value, engine: str):
    """CO-RE: a struct name from the cell; BCC: a ctypes Structure mirroring the record."""
    if value is None:
        return None
    if engine == "core":
        if not isinstance(value, str) or not value.isidentifier():
            raise UsageError(f"event_type={value!r} is not a struct name",
                             hint="the struct's name in the cell, e.g. event_type=\"event\"")
        return value
    if not (isinstance(value, type) and issubclass(value, (ct.Structure, ct.Union)) and ct.sizeof(value)):
        raise UsageError(f"event_type={value!r} is not a ctypes Structure",
                         hint="a class Event(ctypes.Structure) with _fields_ mirroring the C struct")
    return value


# --- values written into maps from Python --------------------------------------------------------

def _int_range(ctype) -> tuple[int, int] | None:
    """(low, high) of a ctypes integer type, None for other types."""
    if not (isinstance(ctype, type) and issubclass(ctype, ct._SimpleCData)) or ctype._type_ not in "bBhHiIlLqQ":
        return None
    bits = 8 * ct.sizeof(ctype)
    if ctype._type_.islower():
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def to_ctype(ctype, value, what: str):
    """``value`` as an instance of a BCC table's Key or Leaf type, refusing what ctypes would wrap or truncate."""
    if isinstance(value, ctype):
        return value
    span = _int_range(ctype)
    if span is not None:
        if not _is_int(value):
            raise UsageError(f"the {what} {value!r} is not a whole number", hint=f"the {what} is an integer")
        if not span[0] <= value <= span[1]:
            raise UsageError(f"the {what} {value} does not fit", hint=f"the {what} holds {span[0]}..{span[1]}")
        return ctype(value)
    try:
        if isinstance(value, dict):
            return ctype(**value)
        if isinstance(value, tuple):
            return ctype(*value)
        return ctype(value)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        fields = ", ".join(f[0] for f in getattr(ctype, "_fields_", []))
        raise UsageError(f"the {what} {value!r} does not fit {ctype.__name__}: {exc}",
                         hint=f"a tuple or dict of its fields ({fields})" if fields else
                              f"a {ctype.__name__} value") from None


def map_call(handle_name: str, map_name: str, action: str, call):
    """Run a BCC table write or delete; BCC raises KeyError or bare Exceptions with an errno text."""
    try:
        return call()
    except KeyError:
        raise MapError(f"{action} {handle_name}[{map_name!r}]: no such key",
                       hint=f"list the keys with {handle_name}[{map_name!r}].to_frame()") from None
    except Exception as exc:
        raise MapError(f"{action} {handle_name}[{map_name!r}] failed: {exc}".splitlines()[0],
                       hint="ring and perf buffers, stack traces and full maps cannot take writes") from None
