"""Training data: the prepared shards (``ex4d.data.shards.ShardDataset``) as a LightningDataModule.

Resumability: the training loader is a :class:`ResumableDataLoader`. Each epoch's order is a permutation
seeded by (seed, epoch), split across ranks by the sampler itself (so ``trainer.use_distributed_sampler``
must be false: Lightning would otherwise wrap the sampler). The loader reports how many batches of the
current epoch it has handed out (``state_dict``); Lightning stores that in its checkpoints and gives it
back on resume (``load_state_dict``), and the next epoch iteration skips exactly those batches, so a run
resumed mid-epoch sees the same batches as the uninterrupted run.

Mask erosion: ``ShardDataset`` draws a new erosion per epoch; the sampler forwards ``set_epoch`` to it
before any iterator (and any worker process) of that epoch exists. Workers are therefore not persistent.

Batches (``collate_training``): ``frames`` (B, T, H, W, 3) uint8, ``mask`` (B, T, H, W) bool (True =
trusted, after erosion), ``clip_id`` and ``prompt`` lists, plus any extra tensors of the shards (cached
latents) stacked. Integers, not floats: Lightning's bf16 strategies cast floating batch tensors to bf16,
which would not round-trip 8-bit colour; the module turns them into model inputs exactly as inference does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ex4d.utils.checks import check_int
from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)

_DROP = ("video", "cond")  # float copies of frames / mask: rebuilt from the integers in the module


def collate_training(items: list[dict]) -> dict:
    """ShardDataset items -> a batch of integer frames and bool masks (module docstring); items without a
    ``video`` (cached latents only, e.g. :class:`SyntheticClips`) give their tensors stacked."""
    batch: dict = {"clip_id": [it["clip_id"] for it in items], "prompt": [it.get("prompt", "") for it in items]}
    if "video" in items[0]:
        video = torch.stack([it["video"] for it in items])  # (B, 3, T, H, W) in [-1, 1], = 2 u8 / 255 - 1
        batch["frames"] = ((video + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1)
        batch["frames"] = batch["frames"].contiguous()
        batch["mask"] = torch.stack([it["mask"][0] > 0.5 for it in items])
    for k, v in items[0].items():
        if k not in batch and k not in _DROP and k != "mask" and isinstance(v, torch.Tensor):
            batch[k] = torch.stack([it[k] for it in items])
    return batch


class SyntheticClips(Dataset):
    """BENCHMARK ONLY: random training samples in the cached-latent form (``data=synthetic``), no files.

    What a shard with cached VAE latents and CLIP tokens gives the module (``LATENT_KEYS``), at the clip
    shape of the config, so ``train.py`` can time real steps at any scale without data (e.g. with
    ``model=wan_i2v_14b_random``). Item ``i`` is seeded by ``(seed, i)``; ``split=val`` is empty.

    Args:
        split: ``train`` | ``val`` | ``all``.
        num_clips, num_frames, height, width: how many samples and their clip shape (frames 4k + 1, sides
            multiples of 16).
        z_dim: VAE latent channels (16); image_tokens, image_dim: CLIP tokens (257 x 1280 for ViT-H/14).
    """

    def __init__(self, split: str = "train", num_clips: int = 64, num_frames: int = 49, height: int = 512,
                 width: int = 512, z_dim: int = 16, image_tokens: int = 257, image_dim: int = 1280, seed: int = 0):
        if split not in ("train", "val", "all"):
            raise InputError(f"synthetic split must be 'train', 'val' or 'all', got {split!r}")
        if split == "val":
            raise InputError("data=synthetic has no validation clips")
        if (num_frames - 1) % 4 or height % 16 or width % 16 or num_clips < 1:
            raise InputError(f"data=synthetic: need num_clips >= 1, frames 4k + 1 and sides multiple of 16, got "
                             f"{num_clips} clips of {num_frames}x{height}x{width}")
        self.num_clips, self.seed = int(num_clips), int(seed)
        self.latent_shape = (z_dim, (num_frames - 1) // 4 + 1, height // 8, width // 8)
        self.image_shape = (image_tokens, image_dim)

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
        z, F, h, w = self.latent_shape
        lat = lambda c: torch.randn(c, F, h, w, generator=g)  # noqa: E731
        return {"latent_video": lat(z), "i2v_condition": lat(4 + z), "latent_cond": lat(z), "latent_mask": lat(z),
                "clip_tokens": torch.randn(*self.image_shape, generator=g), "clip_id": f"synthetic_{i:05d}",
                "prompt": ""}


class EpochSampler(Sampler[int]):
    """Indices of one epoch for one rank.

    Order: ``torch.randperm`` seeded by (seed, epoch) when ``shuffle``, else 0..N-1. Ranks: like
    ``DistributedSampler``, the order is cut to a multiple of ``num_replicas`` (``drop_last``) or padded by
    wrapping around, and rank r takes every ``num_replicas``-th index from r. ``skip`` samples of this
    rank are left out of the next iteration only (resume).
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 drop_last: bool = True, forward_epoch: bool = True) -> None:
        if not 0 <= rank < num_replicas:
            raise InputError(f"sampler rank {rank} outside 0..{num_replicas - 1}")
        self.dataset = dataset
        self.shuffle, self.seed = shuffle, int(seed)
        self.num_replicas, self.rank, self.drop_last = int(num_replicas), int(rank), drop_last
        self.forward_epoch = forward_epoch
        self.epoch = 0
        self.skip = 0
        n = len(dataset)  # type: ignore[arg-type]
        self.num_samples = n // num_replicas if drop_last else math.ceil(n / num_replicas)
        if self.num_samples == 0:
            raise InputError(f"{n} training clips cannot be split over {num_replicas} ranks: prepare more clips")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.forward_epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)

    def order(self) -> list[int]:
        """This rank's indices of the current epoch (before ``skip``)."""
        n = len(self.dataset)  # type: ignore[arg-type]
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            idx = torch.randperm(n, generator=g).tolist()
        else:
            idx = list(range(n))
        total = self.num_samples * self.num_replicas
        idx = idx[:total] if self.drop_last else (idx * math.ceil(total / n))[:total]
        return idx[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        idx, self.skip = self.order()[self.skip:], 0
        return iter(idx)

    def __len__(self) -> int:
        return self.num_samples  # the full epoch: Lightning counts resumed batches itself


class ResumableDataLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` that can say how far into its epoch it is (module docstring)."""

    def __init__(self, dataset: Dataset, sampler: EpochSampler, **kwargs) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.batches_done = 0

    def __iter__(self):
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        self.batches_done = sampler.skip // (self.batch_size or 1)
        for batch in super().__iter__():
            self.batches_done += 1  # counted when handed out: a checkpoint at batch b holds b + 1
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches_done": self.batches_done, "batch_size": self.batch_size,
                "num_replicas": self.sampler.num_replicas}

    def load_state_dict(self, state: dict) -> None:
        sampler: EpochSampler = self.sampler  # type: ignore[assignment]
        if (state.get("batch_size"), state.get("num_replicas")) != (self.batch_size, sampler.num_replicas):
            log.warning("resuming with a different batch size or number of ranks (%s -> %s, %s -> %s): the rest of "
                        "the interrupted epoch is not replayed exactly", state.get("batch_size"), self.batch_size,
                        state.get("num_replicas"), sampler.num_replicas)
        epoch, done = int(state["epoch"]), int(state["batches_done"])
        if done >= len(self):  # saved at the end of an epoch: the next one starts from its beginning
            epoch, done = epoch + 1, 0
        # Before any iterator of this epoch exists (Lightning loads loader states before its first iter()).
        sampler.set_epoch(epoch)
        sampler.skip = done * (self.batch_size or 1)


class ShardDataModule(L.LightningDataModule):
    """Training / validation loaders over prepared shards.

    Args:
        dataset: ``ShardDataset`` factory taking ``split=`` (config ``data.shards``, ``_partial_``).
        batch_size, num_workers: per rank (config ``data.batch_size``, ``data.num_workers``).
        seed: base seed of the epoch permutations.
        val_batches_shuffle: shuffle the validation clips (off: validation is comparable across evaluations).
        pin_memory: pin host memory (CUDA only).
    """

    def __init__(self, dataset: Callable[..., Dataset], batch_size: int = 1, num_workers: int = 0, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = True, pin_memory: bool = True) -> None:
        super().__init__()
        check_int(batch_size, "data.batch_size", minimum=1)
        check_int(num_workers, "data.num_workers", minimum=0)
        self.dataset_factory = dataset
        self.batch_size, self.num_workers, self.seed = int(batch_size), int(num_workers), int(seed)
        self.shuffle, self.drop_last, self.pin_memory = shuffle, drop_last, pin_memory
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self.dataset_factory(split="train")
        if self.val_set is None and stage in (None, "fit", "validate"):
            try:
                self.val_set = self.dataset_factory(split="val")
            except InputError as e:  # a shard folder without val clips: train without validation
                log.warning("no validation clips (%s): validation is skipped", e)
                self.val_set = None

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader_kwargs(self) -> dict:
        on_cuda = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        return dict(num_workers=self.num_workers, collate_fn=collate_training,
                    pin_memory=self.pin_memory and on_cuda, persistent_workers=False)

    def train_dataloader(self) -> ResumableDataLoader:
        assert self.train_set is not None, "setup('fit') first"
        world, rank = self._rank()
        sampler = EpochSampler(self.train_set, self.shuffle, self.seed, world, rank, self.drop_last)
        if len(sampler) < self.batch_size and self.drop_last:
            raise InputError(f"data.batch_size={self.batch_size} is larger than the {len(sampler)} training clips per "
                             f"rank ({len(self.train_set)} clips, {world} ranks)")
        return ResumableDataLoader(self.train_set, sampler, batch_size=self.batch_size, drop_last=self.drop_last,
                                   **self._loader_kwargs())

    def val_dataloader(self):
        if self.val_set is None:
            return []
        world, rank = self._rank()
        sampler = EpochSampler(self.val_set, False, self.seed, world, rank, drop_last=False, forward_epoch=False)
        return DataLoader(self.val_set, sampler=sampler, batch_size=1, **self._loader_kwargs())
