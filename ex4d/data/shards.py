"""Training shards: one safetensors file per clip with everything a training step needs.

Written once by ``tools/prepare_data.py`` (depth + simulated masking per clip, ``ex4d.data.prepare``),
read by ``ShardDataset`` every step, so training never runs a depth model or a renderer.

Layout of a shard folder::

    <shards_dir>/
        clips/<clip_id>.safetensors   tensors: frames (T, H, W, 3) uint8, mask (T, H, W) bool (True =
                                      trusted, *before* erosion), depth (T, H, W) float16 (EX-4D scale),
                                      K (3, 3) float64; header metadata "meta": JSON (source, frame
                                      indices, fps, split, masking info, settings fingerprint)
        index.jsonl                   one line per clip: clip_id, file, split, source, num_frames,
                                      height, width, hole_fraction, strategy
        prepare_summary.json          counts of the last prepare run

Why safetensors: memory-mapped, no pickle, header readable without loading the tensors (resume and
index rebuilds read only the header). Extra tensors are allowed and passed through by the dataset:
``tools/cache_latents.py`` (:mod:`ex4d.data.latents`) adds the VAE latents and CLIP tokens of each
clip (``latent_video``, ``i2v_condition``, ``clip_tokens``, ``latent_cond``, ``latent_mask``) to the same
files, with a ``latents`` record in the header, without a new format.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from ex4d.masking.erosion import erode_masks
from ex4d.utils.checks import check_bool, check_int
from ex4d.utils.errors import InputError
from ex4d.utils.files import atomic_path

INDEX_NAME = "index.jsonl"
CLIPS_DIR = "clips"
CORE_KEYS = ("frames", "mask", "depth", "K")


def shard_path(root: str | Path, clip_id: str) -> Path:
    return Path(root) / CLIPS_DIR / f"{clip_id}.safetensors"


def write_shard(path: str | Path, frames: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor, K: torch.Tensor,
                meta: dict, extra: dict[str, torch.Tensor] | None = None) -> Path:
    """Write one clip atomically (temp file, then rename: a crash never leaves a half shard).

    Args:
        frames: (T, H, W, 3) uint8. mask: (T, H, W) bool, True = trusted. depth: (T, H, W) float
            (stored float16: 3 significant digits, enough for meshing). K: (3, 3).
        meta: JSON-serialisable provenance, stored in the header.
    """
    T, H, W = mask.shape
    assert frames.shape == (T, H, W, 3) and frames.dtype == torch.uint8, (frames.shape, frames.dtype)
    assert mask.dtype == torch.bool and depth.shape == (T, H, W), (mask.dtype, depth.shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "frames": frames.detach().cpu().contiguous(),
        "mask": mask.detach().cpu().contiguous(),
        "depth": depth.detach().cpu().to(torch.float16).contiguous(),
        "K": K.detach().cpu().to(torch.float64).contiguous(),
        **{k: v.detach().cpu().contiguous() for k, v in (extra or {}).items()},
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta, default=str)})
    return path


def read_shard_meta(path: str | Path) -> dict:
    """The ``meta`` header of a shard, without loading its tensors."""
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("meta", "{}"))


def read_shard(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) of a shard."""
    try:
        return load_file(str(path)), read_shard_meta(path)
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise InputError(f"shard {path} could not be read ({type(e).__name__}: {e})") from e


def index_record(root: str | Path, path: Path, meta: dict) -> dict:
    return {
        "clip_id": meta["clip_id"],
        "file": path.relative_to(root).as_posix(),
        "split": meta.get("split", "train"),
        "source": meta.get("source"),
        "num_frames": meta.get("num_frames"),
        "height": meta.get("height"),
        "width": meta.get("width"),
        "hole_fraction": meta.get("masking", {}).get("hole_fraction"),
        "strategy": meta.get("masking", {}).get("strategy"),
        "mesh": meta.get("masking", {}).get("mesh"),  # mesh mode of a render mask (None: no render mask)
    }


def write_index(root: str | Path, records: list[dict]) -> Path:
    """Write ``index.jsonl`` atomically, sorted by clip id."""
    root = Path(root)
    path = root / INDEX_NAME
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in sorted(records, key=lambda r: r["clip_id"])))
    return path


def read_index(root: str | Path) -> list[dict]:
    path = Path(root) / INDEX_NAME
    if not path.is_file():
        raise InputError(f"data.shards_dir {root} has no {INDEX_NAME}: write the shards first with "
                         f"`python tools/prepare_data.py data=...`")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sample_seed(seed: int, *keys) -> int:
    """A 63-bit seed from a base seed and keys (clip id, epoch, ...): independent of processing order."""
    digest = hashlib.sha1(":".join(map(str, (seed, *keys))).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


class ShardDataset(Dataset):
    """Training samples from prepared shards.

    Args:
        root: the shards folder (``data.shards_dir``).
        split: ``train``, ``val`` or ``all``.
        erode: apply the reference's random erosion (``ex4d.masking.erosion.erode_masks``) when loading,
            as the reference dataset does; a fresh draw per epoch (call ``set_epoch``), seeded by
            (``seed``, epoch, clip id) so runs are reproducible regardless of worker layout.
        k_min, k_max: erosion kernel range (reference 2..8).
        seed: base seed of the erosion draws.
        return_depth: also return ``depth`` (T, H, W) float32.

    Items (dict):
        video: (3, T, H, W) float32 in [-1, 1], the target.
        cond: (3, T, H, W) float32, ``2 (frames01 * mask) - 1``: the masked source, holes at -1 (black),
            exactly what inference feeds the geometry encoder (method doc, section 5).
        mask: (1, T, H, W) float32 in {0, 1}, 1 = trusted (after erosion).
        prompt: "" (training uses the empty prompt).
        clip_id: str; plus any extra tensors stored in the shard (cached latents) under their own names.
    """

    def __init__(self, root: str | Path, split: str = "train", erode: bool = True, k_min: int = 2, k_max: int = 8,
                 seed: int = 0, return_depth: bool = False):
        if split not in ("train", "val", "all"):
            raise InputError(f"shard split must be 'train', 'val' or 'all', got {split!r}")
        self.root = Path(root)
        records = read_index(self.root)
        self.records = [r for r in records if split == "all" or r["split"] == split]
        if not self.records:
            raise InputError(f"data.shards_dir {root} has no clips of split {split!r} ({len(records)} clips in all)")
        self.split = split
        self.erode = check_bool(erode, "data.erosion.enabled")
        self.k_min = check_int(k_min, "data.erosion.k_min", minimum=1)
        self.k_max = check_int(k_max, "data.erosion.k_max", minimum=self.k_min)  # checked here, not at the first batch
        check_int(seed, "data.erosion.seed")
        self.seed = int(seed)
        self.return_depth = return_depth
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the erosion draws of ``epoch`` (the DataModule calls this at each epoch start; worker processes
        see it when they are re-created per epoch, i.e. without ``persistent_workers``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        rec = self.records[i]
        tensors, _ = read_shard(self.root / rec["file"])
        frames, mask = tensors["frames"], tensors["mask"]
        if self.erode:
            g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, rec["clip_id"]))
            mask = erode_masks(mask, g, self.k_min, self.k_max)
        video01 = frames.permute(3, 0, 1, 2).float() / 255.0  # (3, T, H, W)
        m = mask.unsqueeze(0).float()  # (1, T, H, W)
        item = {
            "video": video01 * 2.0 - 1.0,
            "cond": (video01 * m) * 2.0 - 1.0,
            "mask": m,
            "prompt": "",
            "clip_id": rec["clip_id"],
        }
        if self.return_depth:
            item["depth"] = tensors["depth"].float()
        item.update({k: v for k, v in tensors.items() if k not in CORE_KEYS})
        return item
