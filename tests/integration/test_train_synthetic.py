"""``model=wan_i2v_14b_random data=synthetic``: the scaling-benchmark path of ``train.py`` (tools/
bench_train_scaling.py), here with small shape overrides so it runs on a CPU. Random weights: TEST ONLY."""

from __future__ import annotations

import csv

import pytest
import torch
from omegaconf import open_dict

from ex4d.model.wan import (
    TINY_CLIP_CONFIG,
    TINY_TRANSFORMER_CONFIG,
    TINY_VAE_CONFIG,
    WAN_I2V_14B_TRANSFORMER_CONFIG,
    RandomWanLoader,
)
from ex4d.runners.train import run_train
from ex4d.training.data import SyntheticClips, collate_training
from ex4d.training.module import LATENT_KEYS
from ex4d.utils.errors import InputError

# the tiny model's shapes, made by the random loader's code path (UMT5: d_model = the DiT's text_dim)
SMALL_UMT5 = {"vocab_size": 300, "d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2}
SMALL = {"transformer": TINY_TRANSFORMER_CONFIG, "vae": TINY_VAE_CONFIG, "image_encoder": TINY_CLIP_CONFIG,
         "text_encoder": SMALL_UMT5}


def _loader(**kw) -> RandomWanLoader:
    return RandomWanLoader(dtype="float32", device="cpu", **SMALL, **kw)


def test_random_loader_defaults_to_the_real_14b_shape_and_is_seeded():
    assert RandomWanLoader().transformer_config == WAN_I2V_14B_TRANSFORMER_CONFIG
    a, b, c = _loader().load(), _loader().load(), _loader(seed=1).load()
    wa, wb, wc = (x.transformer.blocks[0].attn1.to_q.weight for x in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert torch.isfinite(wa).all() and 0.1 < wa.std().item() * 24**0.5 < 10  # ~ 1/sqrt(fan_in)
    assert not a.is_tiny and "BENCHMARK ONLY" in a.source
    # the text path: a random UMT5 (real class; real XXL shape by default) behind a stand-in tokenizer
    assert type(a.text_encoder).__name__ == "UMT5EncoderModel" and a.text_encoder.config.d_model == 16
    assert a.tokenizer("a prompt", padding="max_length", max_length=512)["input_ids"].__len__() == 512
    assert _loader(load_text_encoder=False).load().text_encoder is None
    emb = _loader().text_embeddings(["empty"])["empty"]
    assert emb.shape == (1, 512, 16)


def test_random_umt5_has_the_real_xxl_shape():
    from transformers import UMT5Config, UMT5EncoderModel

    from ex4d.model.wan import UMT5_XXL_CONFIG, random_umt5_encoder

    assert RandomWanLoader().text_encoder_config == UMT5_XXL_CONFIG
    m = random_umt5_encoder("meta", torch.bfloat16)
    assert isinstance(m, UMT5EncoderModel) and isinstance(m.config, UMT5Config)
    assert 5.6e9 < sum(p.numel() for p in m.parameters()) < 5.8e9  # UMT5-XXL's encoder: 5.68 B
    with pytest.raises(InputError, match="text_encoder.d_model"):
        RandomWanLoader(text_encoder={"d_model": 8})


def test_synthetic_clips_have_the_cached_latent_layout():
    ds = SyntheticClips(num_clips=3, num_frames=9, height=32, width=48, image_tokens=5, image_dim=16)
    batch = collate_training([ds[0], ds[1]])
    assert set(LATENT_KEYS) <= set(batch) and "frames" not in batch
    assert batch["latent_video"].shape == (2, 16, 3, 4, 6) and batch["i2v_condition"].shape == (2, 20, 3, 4, 6)
    assert batch["clip_tokens"].shape == (2, 5, 16)
    assert torch.equal(ds[1]["latent_video"], SyntheticClips(num_clips=3, num_frames=9, height=32, width=48,
                                                             image_tokens=5, image_dim=16)[1]["latent_video"])
    with pytest.raises(InputError, match="4k \\+ 1"):
        SyntheticClips(num_frames=8)
    with pytest.raises(InputError, match="no validation"):
        SyntheticClips(split="val")


def test_train_py_runs_real_steps_on_random_weights_and_synthetic_clips(compose, tmp_path):
    # python train.py model=wan_i2v_14b_random data=synthetic ... (shapes shrunk for the CPU)
    out = tmp_path / "run"
    cfg = compose("train", [
        "model=wan_i2v_14b_random", "model.dtype=float32", "model.device=cpu",
        "data=synthetic", "data.num_clips=4", "data.num_frames=5", "data.height=32", "data.width=32",
        "data.num_workers=0", "+data.shards.image_tokens=5", "+data.shards.image_dim=16",
        "model.encoder_hidden_channels=16", "module.num_val_samples=0",
        "trainer=cpu", "logger=csv", "trainer.max_steps=3", "trainer.log_every_n_steps=1",
        f"output_dir={out}",
    ])
    with open_dict(cfg):
        cfg.model.update(SMALL)  # the shape overrides a user would give as +model.transformer.<key>=...
    summary = run_train(cfg)
    assert summary["global_step"] == 3
    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    tokens = [float(r["perf/tokens_per_s"]) for r in rows if r.get("perf/tokens_per_s")]
    assert len(losses) == 3 and all(l == l and l > 0 for l in losses)  # finite, positive
    assert tokens and all(t > 0 for t in tokens)
