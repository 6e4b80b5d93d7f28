"""The shard loader: per-epoch permutations, rank split, mid-epoch resume, exact integer batches."""

import torch

from ex4d.training.data import EpochSampler, ResumableDataLoader, collate_training


class _Set(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n, self.epoch = n, 0

    def set_epoch(self, e):
        self.epoch = e

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


def test_sampler_permutation_per_epoch_and_rank_split():
    ds = _Set(10)
    s = EpochSampler(ds, shuffle=True, seed=1)
    e0 = list(s)
    s.set_epoch(1)
    assert ds.epoch == 1 and sorted(list(s)) == list(range(10)) and list(s) != e0
    s.set_epoch(0)
    assert list(s) == e0  # same epoch, same order
    ranks = [list(EpochSampler(ds, True, 1, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(r) == 3 for r in ranks)
    flat = sum(ranks, [])
    assert len(set(flat)) == 9 and set(flat) <= set(e0)
    assert len(EpochSampler(ds, True, 1, num_replicas=3, rank=0, drop_last=False)) == 4


def test_loader_resumes_mid_epoch_and_at_epoch_end():
    ds = _Set(7)
    full = ResumableDataLoader(ds, EpochSampler(ds, seed=0), batch_size=2, drop_last=True)
    full.sampler.set_epoch(2)
    batches = [b.tolist() for b in full]
    assert len(batches) == len(full) == 3
    it = iter(full)
    next(it)
    state = full.state_dict()
    assert state["epoch"] == 2 and state["batches_done"] == 1
    resumed = ResumableDataLoader(ds, EpochSampler(ds, seed=0), batch_size=2, drop_last=True)
    resumed.load_state_dict(state)
    assert [b.tolist() for b in resumed] == batches[1:]
    assert resumed.batches_done == 3 and len(resumed) == 3  # Lightning counts the full epoch
    assert [b.tolist() for b in resumed] == batches  # the skip applies once
    end = ResumableDataLoader(ds, EpochSampler(ds, seed=0), batch_size=2, drop_last=True)
    end.load_state_dict({**state, "batches_done": 3})  # saved at the end of epoch 2: epoch 3 from its start
    assert end.sampler.epoch == 3 and ds.epoch == 3 and end.sampler.skip == 0


def test_collate_recovers_uint8_frames_exactly():
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (5, 8, 8, 3), dtype=torch.uint8, generator=g)
    m = torch.rand(5, 8, 8, generator=g) > 0.5
    video = u8.permute(3, 0, 1, 2).float() / 255.0 * 2.0 - 1.0  # as ShardDataset
    item = {"video": video, "cond": video, "mask": m[None].float(), "prompt": "", "clip_id": "a",
            "latent_video": torch.ones(2)}
    batch = collate_training([item, item])
    assert torch.equal(batch["frames"][1], u8) and batch["frames"].dtype == torch.uint8
    assert torch.equal(batch["mask"][0], m) and batch["mask"].dtype == torch.bool
    assert batch["clip_id"] == ["a", "a"] and batch["latent_video"].shape == (2, 2)
    assert "video" not in batch and "cond" not in batch
