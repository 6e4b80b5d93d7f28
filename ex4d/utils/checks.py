"""Checks of single config values and of memory, raising InputError that names the key.

Hydra hands values over as the user typed them (``data.num_frames=2.5`` is a float, ``=abc`` a string,
``camera.lead_in=maybe`` a string that ``bool()`` would take as True), so every numeric or boolean knob
that reaches arithmetic is checked here first, where the message can still name the key.
"""

from __future__ import annotations

import math
import os

from ex4d.utils.errors import InputError


def check_int(value, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (integral floats such as 49.0 accepted), within [minimum, maximum]."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value == int(value)
    if ok:
        value = int(value)
    low = "" if minimum is None else f" >= {minimum}"
    high = "" if maximum is None else f" <= {maximum}"
    want = f"an integer{low}{' and' if low and high else ''}{high}"
    if not ok or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InputError(f"{key} must be {want}, got {value!r}")
    return value


def check_number(value, key: str, positive: bool = False, minimum: float | None = None) -> float:
    """``value`` as a finite float; ``positive``: > 0; ``minimum``: >= minimum."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    want = "a finite number" + (" > 0" if positive else "") + (f" >= {minimum}" if minimum is not None else "")
    if not ok or (positive and value <= 0) or (minimum is not None and value < minimum):
        raise InputError(f"{key} must be {want}, got {value!r}")
    return float(value)


def check_bool(value, key: str) -> bool:
    """``value`` if it is a bool (Hydra parses true/false); anything else, e.g. the string 'maybe', is an error."""
    if not isinstance(value, bool):
        raise InputError(f"{key} must be true or false, got {value!r}")
    return value


def check_choice(value, key: str, choices) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in tuple(choices):
        raise InputError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def host_memory_bytes() -> int | None:
    """Physical memory of this machine in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(need_bytes: float, what: str, fix: str, limit_bytes: int | None = None) -> None:
    """Refuse work whose estimated memory ``need_bytes`` exceeds this machine's physical memory.

    A run that cannot fit would otherwise allocate for minutes and die of an out-of-memory kill with no
    message; the estimate is deliberately rough (within a factor ~2), so only hopeless sizes are refused.

    Args:
        what: what needs the memory, with the key or file that asked for it (``data.height=100000 ...``).
        fix: the key(s) to change.
        limit_bytes: the limit; None: :func:`host_memory_bytes` (no check where unknown).
    """
    limit = host_memory_bytes() if limit_bytes is None else limit_bytes
    if limit is not None and need_bytes > limit:
        raise InputError(f"{what} needs about {format_bytes(need_bytes)} of memory, more than this machine's "
                         f"{format_bytes(limit)}; {fix}")
