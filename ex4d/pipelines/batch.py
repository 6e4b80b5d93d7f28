"""Many inputs at once: list them, and a Dataset that yields generator batches, reconstructing on demand.

Each item reconstructs its input (DW-Mesh stage) the first time it is read, on whichever rank owns it,
and is skipped entirely when its ``output.mp4`` already exists, so an interrupted run resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from ex4d.data.manifest import RECORD_EXTS, read_manifest_records, resolve_manifest_path
from ex4d.pipelines.stage_io import find_recon_videos, read_first_frame, read_recon_videos, resize_for_generation
from ex4d.utils.errors import InputError, error_reason
from ex4d.utils.naming import unique_ids  # noqa: F401 (re-exported for the runner)

VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
def list_inputs(source: str) -> list[Path] | None:
    """The inputs of a set (a folder of videos, or a manifest), or None when ``source`` is one input.

    A manifest is a ``.txt`` (one path per line), ``.csv`` (column ``path``) or ``.jsonl`` (key ``path``);
    relative paths are relative to the manifest. A folder of images is one input (an image sequence).
    """
    p = Path(source)
    if p.is_dir():
        videos = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXTS)
        return videos or None
    if p.suffix.lower() not in RECORD_EXTS:
        return None
    if not p.is_file():
        raise InputError(f"input manifest {p} does not exist")
    records = read_manifest_records(p, "input manifest")
    if not records:
        raise InputError(f"input manifest {p} lists no inputs")
    paths = []
    for where, rec in records:  # every entry now: a typo on line 90 should not surface after 89 videos
        q = resolve_manifest_path(rec["path"], p)
        if not q.exists():
            raise InputError(f"{where}: {rec['path']} ({q}) does not exist (relative paths are relative to the manifest)")
        paths.append(q)
    return paths


class ReconGenerateSet(Dataset):
    """Items for ``GeneratePredictModule.predict_step``, one video each (use ``batch_size=None``).

    Args:
        inputs: input paths; ``ids``: their output folder names under ``out_root``.
        recon: ``recon(source, out_dir)`` runs the DW-Mesh stage into ``out_dir`` (writes color.mp4, mask.mp4).
        height, width: generation size (None keeps the recon size).
        output_name: file whose presence marks an item finished (skipped at construction).
        continue_on_error: an item whose recon or reading fails yields ``{"id", "out_dir", "error": reason, "traceback"}``
            instead of raising, so one bad input does not stop the set (the predict module passes it on).
    """

    def __init__(self, inputs: list[Path], ids: list[str], out_root: Path, recon: Callable[[str, Path], object],
                 height: int | None, width: int | None, output_name: str = "output.mp4",
                 continue_on_error: bool = False):
        self.out_root = Path(out_root)
        todo = [(i, s) for i, s in zip(ids, inputs) if not (self.out_root / i / output_name).is_file()]
        self.skipped = len(inputs) - len(todo)
        self.items = todo
        self.recon = recon
        self.height, self.width = height, width
        self.continue_on_error = continue_on_error

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        vid, source = self.items[index]
        out_dir = self.out_root / vid
        if not self.continue_on_error:
            return self._item(vid, source, out_dir)
        try:
            return self._item(vid, source, out_dir)
        except Exception as e:  # noqa: BLE001 - recorded for this item; the set goes on
            import traceback

            return {"id": vid, "out_dir": str(out_dir), "error": error_reason(e),
                    "traceback": "".join(traceback.format_exception(e))}

    def _item(self, vid: str, source: Path, out_dir: Path) -> dict:
        if not ((out_dir / "color.mp4").is_file() and (out_dir / "mask.mp4").is_file()):
            self.recon(str(source), out_dir)
        colour, mask = read_recon_videos(*find_recon_videos(out_dir))
        first = read_first_frame(out_dir, colour)
        colour, mask, first = resize_for_generation(colour, mask, self.height, self.width, first)
        return {"id": vid, "colour": colour, "mask": mask, "first_frame": first, "out_dir": str(out_dir)}
