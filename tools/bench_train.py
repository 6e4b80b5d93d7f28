"""Benchmark real EX-4D training steps on one GPU with RANDOM weights of the real 14B shapes.

What runs: :class:`ex4d.training.module.EX4DTrainingModule` (the training code itself) on the random-weight
Wan2.1-I2V-14B DiT (bf16) + VAE + CLIP vision tower, LoRA r16 + geometry encoder (99.8 M trainable),
512x512x49 clips (13,312 DiT tokens), batch 1, gradient checkpointing of every DiT block, AdamW, gradient
clipping 1.0. Speed and memory do not depend on weight values; UMT5 is not built (the empty-prompt
embedding it would give once is a random (1, 512, 4096) tensor here).

Engines (one process each; ``--engine both`` runs deepspeed then torch in two subprocesses):

* ``deepspeed`` (default): Lightning ``Trainer`` + ``DeepSpeedStrategy(stage=2)`` on one GPU, precision
  bf16-mixed (DeepSpeed casts the module to bf16 and keeps fp32 master weights of the adapter);
* ``lightning``: Lightning's single-device strategy, bf16 autocast, fp32 adapter (what ``strategy=auto`` runs);
* ``torch`` (``--no-deepspeed``): a plain PyTorch loop over the same module (autocast bf16, fp32 adapter,
  torch AdamW): the fallback when DeepSpeed is unavailable.

Modes (``--modes``), each with its own warm-up and timed steps:

* ``cached``: batches hold precomputed latents / CLIP tokens (``LATENT_KEYS``): the step is the DiT (+ encoder)
  forward, backward and optimizer step: what latent caching in the shards would give;
* ``online``: batches hold uint8 frames + masks; each step also runs 4 VAE encodes and CLIP (as training
  on shards without cached latents does today).

FLOP conventions (F = one DiT forward, the gpu.md formula: 40 (2N(6d^2 + 2 d ffn) + 4 N^2 d + 4 N 769 d);
LoRA and geometry-encoder FLOPs (+0.5 %) and the VAE / CLIP encodes are not counted):

* ``mfu_3f`` (the target's convention): 3F per sample per step / time / peak: classic MFU, forward + 2F
  backward, no credit for recompute. NB: the backbone is frozen, so its weight gradients (about F_linear)
  are never computed: even this convention credits some work that is not done.
* ``mfu`` ("3F + recompute"): 3F plus the recompute of gradient checkpointing (one forward with ``full``,
  a forward less the self-attention core with ``save_self_attention``); closer to hardware utilisation.
* ``hfu``: an estimate of the FLOPs actually executed: forward F + recompute (as above) + backward with
  input gradients only for the frozen linears (1 x F_linear) and 2 x F_attention for the attention core
  (dQ, dK, dV, dP; flash-style kernels also recompute the scores, not counted).

Peak: dense bf16 989.4 TFLOP/s for H100 SXM / H200, 756 for H100 PCIe (override: ``--peak-tflops``).
Targets of issue 4: mfu_3f >= 45 %, peak memory < 70 GB on one card.

Usage on the GPU host (torch 2.11; bring the diffusers and deepspeed wheels and msgpack, which ``import
deepspeed`` needs: ``bash ../shared/tools/device-wheels.sh msgpack==1.2.4``; see ../shared/docs/gpu.md):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
    python3 tools/bench_train.py --out $OUT/bench_train.json                  # DeepSpeed ZeRO-2, both modes
    python3 tools/bench_train.py --engine both --out $OUT/bench_train.json    # + the plain-torch baseline
    python3 tools/bench_train.py --no-deepspeed --modes cached                # plain torch only
    python3 tools/bench_train.py --tiny --engine torch                        # CPU dry run of the code path
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_generate import dit_flops, random_components  # noqa: E402  (random real-shape Wan, FLOP formula)

from ex4d.model.adapter import LoraSettings  # noqa: E402
from ex4d.model.wan import WAN_I2V_14B_TRANSFORMER_CONFIG, build_tiny_wan  # noqa: E402
from ex4d.training.checkpointing import CHECKPOINT_POLICIES  # noqa: E402
from ex4d.training.module import LATENT_KEYS, EX4DTrainingModule, dit_tokens  # noqa: E402
from ex4d.training.optim import OptimizerSettings, build_optimizer  # noqa: E402

GIB = 1024**3
TARGET_MFU = 0.45
TARGET_PEAK_GB = 70.0


# ---- FLOPs -----------------------------------------------------------------------------------------


def flop_split(tokens: int, d: int = 5120, ffn: int = 13824, layers: int = 40, ctx: int = 769) -> dict[str, float]:
    """One DiT forward split into linear layers and attention core (self + cross; they add up to dit_flops)."""
    n = tokens
    linear = layers * 2 * n * (6 * d * d + 2 * d * ffn)
    self_attention = layers * 4 * n * n * d
    attention = self_attention + layers * 4 * n * ctx * d
    total = dit_flops(tokens, d, ffn, layers, ctx)
    assert abs(linear + attention - total) <= 1e-6 * total
    return {"forward": total, "linear": linear, "attention": attention, "self_attention": self_attention}


def step_flops(tokens: int, batch: int, checkpointing: bool, policy: str = "full", **shape) -> dict[str, float]:
    """FLOPs per training step under the three conventions of the module docstring. The recompute of
    gradient checkpointing is one forward (``full``) or one forward less the self-attention core
    (``save_self_attention``)."""
    f = flop_split(tokens, **shape)
    F = f["forward"]
    recompute = 0.0
    if checkpointing:
        recompute = F - (f["self_attention"] if policy == "save_self_attention" else 0.0)
    return {
        "mfu": batch * (3 * F + recompute),
        "mfu_3f": batch * 3 * F,
        "hfu": batch * (F + recompute + f["linear"] + 2 * f["attention"]),
    }


def peak_tflops(name: str, override: float | None) -> tuple[float, str]:
    if override:
        return override, "given"
    if "H100" in name and "PCIe" in name:
        return 756.0, "H100 PCIe dense bf16"
    if "H100" in name or "H200" in name or "GH200" in name:
        return 989.4, "H100 SXM / H200 dense bf16"
    if "A100" in name:
        return 312.0, "A100 dense bf16"
    return 989.4, "unknown card: assumed H100 SXM (pass --peak-tflops)"


# ---- synthetic batches ------------------------------------------------------------------------------


def make_batch(mode: str, T: int, H: int, W: int, image_tokens: int, image_dim: int, dtype: torch.dtype,
               z_dim: int = 16, seed: int = 0) -> dict:
    """One CPU batch (B = 1) of the given mode (module docstring)."""
    g = torch.Generator().manual_seed(seed)
    if mode == "online":
        frames = torch.randint(0, 256, (1, T, H, W, 3), dtype=torch.uint8, generator=g)
        mask = torch.rand(1, T, H, W, generator=g) > 0.3
        mask[:, 0] = True
        return {"frames": frames, "mask": mask, "clip_id": ["synthetic"], "prompt": [""]}
    F, h, w = (T - 1) // 4 + 1, H // 8, W // 8
    lat = lambda c: torch.randn(1, c, F, h, w, generator=g)  # noqa: E731
    batch = {"latent_video": lat(z_dim), "i2v_condition": lat(4 + z_dim), "latent_cond": lat(z_dim),
             "latent_mask": lat(z_dim), "clip_tokens": torch.randn(1, image_tokens, image_dim, generator=g).to(dtype)}
    assert set(batch) == set(LATENT_KEYS)  # what EX4DTrainingModule.encode_batch passes through
    return batch


class Phases(torch.utils.data.Dataset):
    """Warm-up + timed batches of each mode, in order: the schedule of one run."""

    def __init__(self, batches: dict[str, dict], modes: list[str], warmup: int, steps: int) -> None:
        self.schedule = [(m, i < warmup) for m in modes for i in range(warmup + steps)]
        self.batches = batches

    def __len__(self) -> int:
        return len(self.schedule)

    def __getitem__(self, i: int) -> dict:
        return self.batches[self.schedule[i][0]]


# ---- timing -------------------------------------------------------------------------------------------


class StepClock:
    """Per-step GPU time (CUDA events at each step start; the next start or the run end closes a step) and
    peak memory per mode (reset when a mode's timed steps begin)."""

    def __init__(self, schedule: list[tuple[str, bool]], cuda: bool) -> None:
        self.schedule, self.cuda = schedule, cuda
        self.events: list = []
        self.wall: list[float] = []
        self.peak: dict[str, float] = {}

    def start(self, i: int) -> None:
        mode, warm = self.schedule[i]
        prev = self.schedule[i - 1] if i > 0 else None
        if prev is not None and prev[0] != mode:
            self._close(prev[0])  # the previous mode's timed steps are over
        if self.cuda:
            if not warm and (prev is None or prev[1] or prev[0] != mode):  # first timed step of this mode
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.events.append(ev)
        self.wall.append(time.perf_counter())

    def _close(self, mode: str) -> None:
        if self.cuda and mode not in self.peak:
            torch.cuda.synchronize()
            self.peak[mode] = torch.cuda.max_memory_allocated() / GIB

    def finish(self) -> None:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.events.append(ev)
            torch.cuda.synchronize()
        self.wall.append(time.perf_counter())
        self._close(self.schedule[-1][0])

    def step_seconds(self) -> list[float]:
        if self.cuda:
            return [a.elapsed_time(b) / 1000 for a, b in zip(self.events[:-1], self.events[1:])]
        return [b - a for a, b in zip(self.wall[:-1], self.wall[1:])]


def _lightning_clock_callback(clock: StepClock):
    from lightning.pytorch.callbacks import Callback

    class _Cb(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.start(batch_idx)

        def on_train_end(self, trainer, pl_module):
            clock.finish()

    return _Cb()


# ---- engines ------------------------------------------------------------------------------------------


def build_module(comps, args, text_dim: int) -> EX4DTrainingModule:
    g = torch.Generator().manual_seed(0)
    return EX4DTrainingModule(
        comps, LoraSettings(rank=args.rank, alpha=args.rank), OptimizerSettings(lr=1e-5, warmup_steps=0),
        gradient_checkpointing=not args.no_checkpointing, checkpoint_policy=args.checkpoint_policy,
        compile_blocks=args.compile, sample=None,
        num_val_samples=0, text_embeddings={"empty": torch.randn(1, 512, text_dim, generator=g)},
    )


def run_lightning(module, data: Phases, clock: StepClock, device: torch.device, deepspeed: bool) -> dict:
    import lightning as L

    if deepspeed:
        from lightning.pytorch.strategies import DeepSpeedStrategy

        # (conf/strategy/deepspeed_zero2.yaml also sets exclude_frozen_parameters, for checkpoints; none here)
        strategy = DeepSpeedStrategy(stage=2, logging_batch_size_per_gpu=1, logging_level=30)
    else:
        strategy = "auto"
    trainer = L.Trainer(
        accelerator=device.type, devices=1, strategy=strategy,
        precision="bf16-mixed" if device.type == "cuda" else "32-true", max_steps=len(data), max_epochs=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[_lightning_clock_callback(clock)], use_distributed_sampler=False, limit_val_batches=0,
        num_sanity_val_steps=0, gradient_clip_val=1.0,
    )
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=0)
    trainer.fit(module, train_dataloaders=loader)
    return {"strategy": type(trainer.strategy).__name__, "precision": str(trainer.precision)}


def run_torch(module, data: Phases, clock: StepClock, device: torch.device) -> dict:
    module.build(device)
    module.to(device)
    module.train()
    params = module.trainable_parameters()
    opt = build_optimizer(params, module.optim, device.type)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    for i in range(len(data)):
        clock.start(i)
        batch = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in data[i].items()}
        with amp:
            out = module.flow_loss(module.encode_batch(batch), torch.Generator().manual_seed(i))
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    clock.finish()
    return {"strategy": "plain torch loop", "precision": "bf16 autocast, fp32 adapter" if device.type == "cuda" else "fp32"}


def run_engine(args) -> dict:
    tiny = args.tiny
    if not tiny and not torch.cuda.is_available():
        sys.exit("bench_train.py needs a CUDA GPU (use --tiny for a CPU dry run)")
    device = torch.device("cpu" if tiny else "cuda")
    if args.engine == "deepspeed" and device.type != "cuda":
        sys.exit("DeepSpeed trains on CUDA only: use --engine lightning or torch with --tiny")
    name = "CPU (tiny model)" if tiny else torch.cuda.get_device_name(device)
    T, H, W = args.frames, args.height, args.width
    t0 = time.perf_counter()
    if tiny:
        comps = build_tiny_wan(seed=0)
        text_dim, image_tokens, image_dim, dit_dtype = 16, 5, 16, torch.float32
        shape = dict(d=24, ffn=32, layers=2, ctx=512 + 5)
    else:
        comps = random_components(device, torch.bfloat16)
        cfg = WAN_I2V_14B_TRANSFORMER_CONFIG
        text_dim, image_tokens, image_dim, dit_dtype = cfg["text_dim"], 257, cfg["image_dim"], torch.bfloat16
        shape = {}
    module = build_module(comps, args, text_dim)
    build_s = time.perf_counter() - t0
    batches = {m: make_batch(m, T, H, W, image_tokens, image_dim, dit_dtype) for m in args.modes}
    data = Phases(batches, args.modes, args.warmup, args.steps)
    clock = StepClock(data.schedule, device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.engine == "torch":
        info = run_torch(module, data, clock, device)
    else:
        info = run_lightning(module, data, clock, device, deepspeed=args.engine == "deepspeed")
    overall_peak = torch.cuda.max_memory_allocated() / GIB if device.type == "cuda" else None
    secs = clock.step_seconds()
    tokens = dit_tokens(T, H, W)
    flops = step_flops(tokens, 1, not args.no_checkpointing, args.checkpoint_policy, **shape)
    peak, peak_src = peak_tflops(name, args.peak_tflops)
    rows = []
    for mode in args.modes:
        timed = [s for s, (m, warm) in zip(secs, data.schedule) if m == mode and not warm]
        med = statistics.median(timed)
        row = {"engine": args.engine, "mode": mode, "steps": len(timed), "step_s_median": med,
               "step_s_mean": statistics.fmean(timed), "step_s_all": timed, "tokens_per_sample": tokens,
               "samples_per_s": 1 / med, "tokens_per_s": tokens / med,
               "peak_gib": clock.peak.get(mode), "peak_gb": clock.peak[mode] * GIB / 1e9 if mode in clock.peak else None}
        for k, f in flops.items():
            row[f"{k}_tflops_per_step"] = f / 1e12
            row[k] = f / med / (peak * 1e12)
        rows.append(row)
    trainable = module.model.parameter_counts()
    return {"device": name, "torch": torch.__version__, "engine": args.engine, **info, "rank": args.rank,
            "shape": f"{H}x{W}x{T}", "gradient_checkpointing": not args.no_checkpointing,
            "checkpoint_policy": args.checkpoint_policy, "compile": args.compile,
            "trainable": trainable, "peak_tflops": peak, "peak_tflops_source": peak_src, "build_s": build_s,
            "overall_peak_gib": overall_peak, "rows": rows, "tiny": tiny}


# ---- report -------------------------------------------------------------------------------------------


def print_table(results: list[dict]) -> None:
    first = results[0]
    print(f"\n## Training benchmark, {first['device']}, torch {first['torch']}, random weights "
          f"({'tiny test model' if first['tiny'] else 'real 14B shapes'}), {first['shape']}, batch 1, LoRA r{first['rank']} + "
          f"encoder ({first['trainable']['total']:,} trainable), gradient checkpointing "
          f"{('on, policy ' + first['checkpoint_policy']) if first['gradient_checkpointing'] else 'off'}"
          f"{', compiled blocks' if first['compile'] else ''}\n")
    print("| engine | mode | step s (median) | samples/s | tokens/s | MFU 3F + recompute | MFU 3F | HFU est. | peak GiB (GB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for res in results:
        for r in res["rows"]:
            pk = f"{r['peak_gib']:.1f} ({r['peak_gb']:.1f})" if r["peak_gib"] is not None else "-"
            print(f"| {res['engine']} ({res['strategy']}) | {r['mode']} | {r['step_s_median']:.3f} | "
                  f"{r['samples_per_s']:.3f} | {r['tokens_per_s']:,.0f} | {100 * r['mfu']:.1f}% | "
                  f"{100 * r['mfu_3f']:.1f}% | {100 * r['hfu']:.1f}% | {pk} |")
    r0 = first["rows"][0]
    print(f"\nFLOPs per step: 3F + recompute {r0['mfu_tflops_per_step']:.0f} TFLOP, 3F {r0['mfu_3f_tflops_per_step']:.0f}, "
          f"executed estimate {r0['hfu_tflops_per_step']:.0f}; peak {first['peak_tflops']} TFLOP/s "
          f"({first['peak_tflops_source']}). 'online' also runs 4 VAE encodes + CLIP per step (not counted).")
    if not first["tiny"]:
        for res in results:
            for r in res["rows"]:
                ok_mfu = r["mfu_3f"] >= TARGET_MFU  # the strict convention: no credit for recompute
                ok_mem = r["peak_gb"] is not None and r["peak_gb"] < TARGET_PEAK_GB
                print(f"  targets {res['engine']}/{r['mode']}: MFU (3F) >= {TARGET_MFU:.0%}: {'PASS' if ok_mfu else 'FAIL'} "
                      f"({r['mfu_3f']:.1%}); peak < {TARGET_PEAK_GB:.0f} GB: {'PASS' if ok_mem else 'FAIL'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", choices=["deepspeed", "lightning", "torch", "both"], default="deepspeed",
                   help="both = deepspeed, then torch, each in its own process")
    p.add_argument("--no-deepspeed", action="store_true", help="same as --engine torch (plain PyTorch loop)")
    p.add_argument("--modes", default="cached,online", help="comma list of cached / online")
    p.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per mode")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--frames", type=int, default=49)
    p.add_argument("--no-checkpointing", action="store_true", help="disable gradient checkpointing (expect OOM at 512x512x49)")
    p.add_argument("--compile", action="store_true", help="regional torch.compile of the DiT blocks")
    p.add_argument("--checkpoint-policy", choices=CHECKPOINT_POLICIES, default="save_self_attention",
                   help="what the recompute skips (ex4d.training.checkpointing)")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the card (default: by name)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--tiny", action="store_true", help="CPU dry run with the tiny random model (numbers meaningless)")
    args = p.parse_args()
    if args.no_deepspeed:
        args.engine = "torch"
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in ("cached", "online")]
    if bad:
        sys.exit(f"--modes: unknown {bad} (cached, online)")
    if args.tiny and (args.height, args.width, args.frames) == (512, 512, 49):
        args.height, args.width, args.frames = 32, 32, 5

    if args.engine == "both":
        results = []
        for engine in ("deepspeed", "torch"):
            tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_train_{engine}_{os.getpid()}.json"
            cmd = [sys.executable, __file__, *_child_argv(args, engine, tmp)]
            print(f"\n### engine {engine}: {' '.join(cmd[1:])}", flush=True)
            rc = subprocess.call(cmd)
            if rc == 0 and tmp.exists():
                results.extend(json.loads(tmp.read_text())["results"])
            else:
                print(f"  engine {engine} failed (exit {rc})", flush=True)
        if not results:
            sys.exit("no engine produced results")
    else:
        print(f"engine {args.engine}: building {'tiny' if args.tiny else 'random 14B'} model ...", flush=True)
        results = [run_engine(args)]
    print_table(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"results": results}, indent=2))
        print(f"\nJSON: {args.out}")


def _child_argv(args, engine: str, out: Path) -> list[str]:
    """The command line of one engine's subprocess (same settings, its own JSON file)."""
    argv = ["--engine", engine, "--modes", ",".join(args.modes), "--steps", str(args.steps), "--warmup",
            str(args.warmup), "--rank", str(args.rank), "--checkpoint-policy", args.checkpoint_policy, "--height", str(args.height), "--width", str(args.width),
            "--frames", str(args.frames), "--out", str(out)]
    argv += [f for f, on in (("--no-checkpointing", args.no_checkpointing), ("--compile", args.compile),
                             ("--tiny", args.tiny)) if on]
    if args.peak_tflops:
        argv += ["--peak-tflops", str(args.peak_tflops)]
    return argv


if __name__ == "__main__":
    main()
