"""tools/cache_latents.py on the tiny shards with the TEST-ONLY tiny Wan: cached inputs equal what the
training step would encode from the same eroded mask; reruns skip; training uses them; mismatched
settings are refused."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from hydra.utils import instantiate

import ex4d.data.latents as latents
from ex4d.data.latents import cached_latent_settings
from ex4d.data.shards import INDEX_NAME, ShardDataset, read_index, read_shard, sample_seed, write_shard
from ex4d.masking.erosion import erode_masks
from ex4d.runners.cache_latents import run_cache_latents
from ex4d.runners.train import run_train
from ex4d.training.data import collate_training
from ex4d.pipelines.conditioning import LATENT_KEYS, encode_clip
from ex4d.utils.errors import InputError

CPU_RUN = ["trainer=cpu", "logger=csv", "trainer.limit_val_batches=0", "module.num_val_samples=0",
           "optimizer.warmup_steps=0"]


@pytest.fixture
def shards(tiny_shards, tmp_path):
    out = tmp_path / "shards"
    shutil.copytree(tiny_shards, out)
    return out


def _cfg(compose, shards, *overrides):
    return compose("cache_latents", ["model=wan_tiny", "data=tiny", f"data.shards_dir={shards}", "device=cpu",
                                     "progress=false", *overrides])


def test_cached_inputs_equal_the_online_encoding_and_reruns_skip(compose, shards):
    cfg = _cfg(compose, shards)
    first = run_cache_latents(cfg)
    assert first["written"] == 4 and first["existing"] == 0
    rec = read_index(shards)[0]
    tensors, meta = read_shard(shards / rec["file"])
    assert set(LATENT_KEYS) <= set(tensors) and meta["latents"]["mask_encoding"] == "reference"
    assert tensors["latent_video"].shape == (16, 2, 8, 8)  # 5 frames 64x64 -> 2 x 8 x 8 latents

    # the same inputs from the training code path, with the cache's erosion draw
    module = instantiate(compose("train", ["model=wan_tiny", "data=tiny"]).module)
    module.build()
    g = torch.Generator().manual_seed(sample_seed(0, "cached", rec["clip_id"]))
    mask = erode_masks(tensors["mask"], g, 2, 8)
    online = encode_clip(module.conditioner, tensors["frames"], mask)
    for k in LATENT_KEYS:
        torch.testing.assert_close(tensors[k], online[k][0].cpu(), rtol=1e-5, atol=1e-5)

    # the loader passes them through; the module uses them as they are
    batch = collate_training([ShardDataset(shards, split="train")[i] for i in range(2)])
    assert all(batch[k].shape[0] == 2 for k in LATENT_KEYS)
    assert torch.equal(module.encode_batch(batch)["latent_mask"], batch["latent_mask"])

    mtime = (shards / rec["file"]).stat().st_mtime_ns
    second = run_cache_latents(cfg)
    assert second["written"] == 0 and second["existing"] == 4
    assert (shards / rec["file"]).stat().st_mtime_ns == mtime


def test_training_uses_the_cache_and_refuses_other_settings(compose, shards, tmp_path):
    run_cache_latents(_cfg(compose, shards))
    assert cached_latent_settings(shards)["backbone"].startswith("TinyWanLoader")
    base = ["model=wan_tiny", "data=tiny", f"data.shards_dir={shards}", *CPU_RUN]
    summary = run_train(compose("train", [*base, "trainer.max_steps=2", f"output_dir={tmp_path / 'run'}"]))
    assert summary["global_step"] == 2
    with pytest.raises(InputError, match="mask_encoding: cached 'reference' vs 'fixed'"):
        run_train(compose("train", [*base, "module.mask_encoding=fixed", "module.sample.mask_encoding=fixed",
                                    "trainer.max_steps=1", f"output_dir={tmp_path / 'run2'}"]))
    with pytest.raises(InputError, match="overwrite=true"):
        run_cache_latents(_cfg(compose, shards, "module.mask_encoding=fixed", "module.sample.mask_encoding=fixed"))
    again = run_cache_latents(_cfg(compose, shards, "module.mask_encoding=fixed",
                                   "module.sample.mask_encoding=fixed", "overwrite=true"))
    assert again["written"] == 4 and cached_latent_settings(shards)["mask_encoding"] == "fixed"


def test_the_check_reads_one_summary_file_and_falls_back_when_the_index_changes(compose, shards, monkeypatch):
    run_cache_latents(_cfg(compose, shards, "limit=2"))  # partial: no summary
    assert not (shards / latents.SUMMARY_NAME).exists()
    with pytest.raises(InputError, match="missing or differ in 2 of 4 clips"):
        cached_latent_settings(shards)
    run_cache_latents(_cfg(compose, shards))
    assert (shards / latents.SUMMARY_NAME).is_file()
    expected = cached_latent_settings(shards)

    headers = []
    real = latents.read_shard_meta
    monkeypatch.setattr(latents, "read_shard_meta", lambda p: headers.append(p) or real(p))
    assert cached_latent_settings(shards) == expected and headers == []  # one file, no shard header

    # clips added after caching (a new index): the summary no longer applies, the headers are read
    index = shards / INDEX_NAME
    lines = index.read_text().splitlines()
    extra = shards / "extra.safetensors"
    shutil.copy(shards / read_index(shards)[0]["file"], extra)
    tensors, meta = read_shard(extra)
    meta.pop("latents")
    write_shard(extra, tensors["frames"], tensors["mask"], tensors["depth"], tensors["K"], meta)
    rec = json.loads(lines[0])
    rec.update(file=extra.name, clip_id="extra")
    index.write_text("\n".join([*lines, json.dumps(rec)]) + "\n")
    with pytest.raises(InputError, match="missing or differ in 1 of 5 clips"):
        cached_latent_settings(shards)
    assert len(headers) == 5
