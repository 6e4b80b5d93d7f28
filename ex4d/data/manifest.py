"""Reading manifests: the one parser behind training data, inference sets and benchmark sets.

Formats: ``.csv`` with a header holding a ``path`` column; ``.jsonl`` with one JSON object per line,
each with a ``"path"`` key; ``.txt`` with one path per line (``#`` starts a comment line). Other
columns / keys (``sha256``, ``target``, ...) are passed through for the caller.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ex4d.utils.errors import InputError

RECORD_EXTS = (".csv", ".jsonl", ".txt")


def read_manifest_records(path: str | Path, label: str = "manifest", key: str | None = None) -> list[tuple[str, dict]]:
    """``(where, record)`` for every entry of a manifest, in file order.

    ``where`` is ``"<label> <path> (<key>), line <n>"`` for error messages (``key``: the config key that
    named the manifest, if any); ``record`` holds ``path`` and the
    other non-empty fields of its line, as written (paths are not resolved). Blank lines are skipped;
    an entry without a path, a CSV without a ``path`` column or a line that is not a JSON object raises
    InputError naming the manifest and line.
    """
    p = Path(path)
    ext = p.suffix.lower()
    name = f"{label} {p}" + (f" ({key})" if key else "")
    if ext not in RECORD_EXTS:
        raise InputError(f"{name}: unknown format {ext!r}; use one of {RECORD_EXTS}")
    records: list[tuple[str, dict]] = []
    try:
        text = p.read_text()
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: not a text file ({e.reason} at byte {e.start}); a manifest is UTF-8 text") from e
    except OSError as e:
        raise InputError(f"{name}: cannot be read ({e.strerror or e})") from e
    if ext == ".csv":
        with io.StringIO(text, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise InputError(f"{name}: needs a 'path' column, has {reader.fieldnames}")
            for row in reader:  # line_num: the physical line (DictReader skips blank lines)
                rec = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
                if rec:
                    records.append((f"{name}, line {reader.line_num}", rec))
    else:
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if not s or (ext == ".txt" and s.startswith("#")):
                continue
            where = f"{name}, line {n}"
            if ext == ".txt":
                records.append((where, {"path": s}))
                continue
            try:
                rec = json.loads(s)
            except json.JSONDecodeError as e:
                raise InputError(f"{where}: not JSON ({e})") from e
            if not isinstance(rec, dict):
                raise InputError(f"{where}: expected a JSON object with a \"path\" key, got {type(rec).__name__}")
            records.append((where, rec))
    for where, rec in records:
        if not rec.get("path"):
            raise InputError(f"{where}: needs a \"path\" key")
    return records


def resolve_manifest_path(value, manifest: str | Path) -> Path:
    """A manifest entry's path: ``~`` expanded, relative paths taken against the manifest's folder."""
    q = Path(str(value)).expanduser()
    return q if q.is_absolute() else Path(manifest).parent / q
