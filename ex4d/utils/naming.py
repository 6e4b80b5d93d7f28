"""Names of output folders."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def unique_ids(paths: Iterable[Path]) -> list[str]:
    """File stems, suffixed ``_1``, ``_2`` where stems repeat (so two inputs never share an output folder)."""
    seen: dict[str, int] = {}
    ids = []
    for q in paths:
        q = Path(q)
        n = seen.get(q.stem, 0)
        seen[q.stem] = n + 1
        ids.append(q.stem if n == 0 else f"{q.stem}_{n}")
    return ids
