"""Scaling of ``python train.py`` over GPUs with RANDOM 14B weights (issue 7): step time, tokens/s per GPU,
scaling efficiency against one GPU, peak memory per GPU, MFU.

Each point is the real training command, run as a subprocess (Lightning launches one process per GPU):

    EX4D_RUN_ID=<id> python train.py model=wan_i2v_14b_random data=synthetic strategy=<strategy> \\
        trainer=gpu trainer.devices=<N> trainer.max_steps=<warmup + steps> logger=csv callbacks=training_monitor

``data=synthetic`` feeds cached-latent samples (what shards with cached VAE latents give), so a step is the
DiT (+ geometry encoder) forward, backward and the optimizer step, batch 1 per GPU at the configured clip
shape (default 512x512x49, 13,312 tokens). Times come from the ``TrainingMonitor`` columns of rank 0's
metrics.csv (wall time between optimizer steps); the first ``--warmup`` steps are dropped. Peak memory is
rank 0's ``torch.cuda.max_memory_allocated`` (ranks are symmetric). MFU: the strict 3F per sample, and
3F + the recompute of gradient checkpointing (tools/bench_train.py's ``step_flops``; the recompute depends
on ``module.checkpoint_policy``, whose ``auto`` this script resolves as the module does).

    python3 tools/bench_train_scaling.py --devices 1,2 --strategy deepspeed_zero3 --json $OUT/scaling.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_train import step_flops  # noqa: E402  (FLOPs per training step, gpu.md formula)

from ex4d.training.checkpointing import resolve_checkpoint_policy  # noqa: E402
from ex4d.training.module import dit_tokens  # noqa: E402


def run_point(args, devices: int, out_root: Path) -> dict:
    run_id = f"scaling_{args.strategy}_{devices}gpu_{int(time.time())}"
    cmd = [sys.executable, "train.py", "model=wan_i2v_14b_random", "data=synthetic", f"strategy={args.strategy}",
           "trainer=gpu", f"trainer.devices={devices}", f"trainer.max_steps={args.warmup + args.steps}",
           "trainer.log_every_n_steps=1", "trainer.limit_val_batches=0", "module.num_val_samples=0",
           f"data.num_frames={args.frames}", f"data.height={args.height}", f"data.width={args.width}",
           f"lora.rank={args.rank}", f"module.checkpoint_policy={args.checkpoint_policy}", "logger=csv", "callbacks=training_monitor", f"paths.output_dir={out_root}",
           *args.extra]
    env = {**os.environ, "EX4D_RUN_ID": run_id}
    print("$ EX4D_RUN_ID=%s %s" % (run_id, " ".join(cmd)), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-8000:], sep="\n", flush=True)
        return {"devices": devices, "error": f"exit {proc.returncode}", "wall_s": wall}
    run_dir = out_root / "train" / run_id
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))

    def col(key):
        return [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]

    steps = [v for s, v in col("perf/step_s") if s >= args.warmup]
    mem = [v for _, v in col("perf/gpu_mem_peak_gib")]
    losses = [v for _, v in col("train/loss")]
    step_s = statistics.median(steps)
    tokens = dit_tokens(args.frames, args.height, args.width)
    per_gpu_tokens_s = tokens / step_s
    sharded = "zero3" in args.strategy or "fsdp" in args.strategy  # what resolve_checkpoint_policy checks
    policy = resolve_checkpoint_policy(args.checkpoint_policy, SimpleNamespace(zero_stage_3=sharded))
    flops = step_flops(tokens, 1, True, policy)
    peak = args.peak_tflops * 1e12
    return {
        "devices": devices, "strategy": args.strategy, "step_s": step_s, "step_s_all": steps,
        "tokens_per_s": per_gpu_tokens_s * devices, "tokens_per_s_per_gpu": per_gpu_tokens_s,
        "peak_mem_gib_rank0": max(mem) if mem else None, "checkpoint_policy": policy,
        "mfu": flops["mfu"] / step_s / peak, "mfu_3f": flops["mfu_3f"] / step_s / peak, "loss_finite": all(v == v for v in losses), "wall_s": wall,
        "command": " ".join(cmd),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", default="1,2", help="comma list of GPU counts")
    p.add_argument("--strategy", default="deepspeed_zero3")
    p.add_argument("--steps", type=int, default=6, help="timed steps per point")
    p.add_argument("--warmup", type=int, default=3, help="steps dropped per point (first step has no time)")
    p.add_argument("--frames", type=int, default=49)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--checkpoint-policy", default="auto", help="module.checkpoint_policy of the runs")
    p.add_argument("--peak-tflops", type=float, default=989.4, help="dense bf16 peak per GPU (H100 SXM / H200)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--out-root", type=Path, default=Path("/tmp/ex4d_scaling"))
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("extra", nargs="*", help="more train.py overrides")
    args = p.parse_args()

    import torch

    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA"
    points = [run_point(args, int(n), args.out_root) for n in args.devices.split(",")]
    base = next((q for q in points if q["devices"] == 1 and "error" not in q), None)
    print(f"\n{args.strategy}, {args.frames}x{args.height}x{args.width}, batch 1 per GPU, LoRA r{args.rank}, "
          f"gradient checkpointing ({next((q['checkpoint_policy'] for q in points if 'error' not in q), '?')}), "
          f"random weights; card: {card}")
    print("| GPUs | s/step | tokens/s | tokens/s per GPU | scaling eff. | peak GiB (rank 0) | MFU 3F + recompute | MFU 3F |")
    print("|---|---|---|---|---|---|---|---|")
    for q in points:
        if "error" in q:
            print(f"| {q['devices']} | failed ({q['error']}) | | | | | | |")
            continue
        eff = q["tokens_per_s_per_gpu"] / base["tokens_per_s_per_gpu"] if base else float("nan")
        q["scaling_efficiency"] = eff
        mem = "n/a" if q["peak_mem_gib_rank0"] is None else f"{q['peak_mem_gib_rank0']:.1f}"
        print(f"| {q['devices']} | {q['step_s']:.3f} | {q['tokens_per_s']:,.0f} | {q['tokens_per_s_per_gpu']:,.0f} | "
              f"{eff:.1%} | {mem} | {q['mfu']:.1%} | {q['mfu_3f']:.1%} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"card": card, "points": points}, indent=2))


if __name__ == "__main__":
    main()
