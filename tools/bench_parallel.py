"""One video over several GPUs (issue 7): context-parallel DiT forwards and a whole video vs one GPU, with
RANDOM weights of the real 14B shapes (``model=wan_i2v_14b_random``'s loader). Launch one process per GPU:

    torchrun --nproc_per_node=2 tools/bench_parallel.py --context ulysses --baseline --save-baseline /tmp/b.pt
    torchrun --nproc_per_node=2 tools/bench_parallel.py --context ring --load-baseline /tmp/b.pt --no-video

What runs, on every rank: the same random DiT (seeded, so identical on all ranks), LoRA r16 + geometry
encoder with random (non-zero) adapter weights, the generator with the exact levers (``fuse_lora``,
``cfg_batch``, ``vae_batch``; no compile unless ``--compile``), random prompt embeddings (UMT5 not run).

1. ``--baseline``: rank 0 alone (the other ranks wait) times one DiT forward and the whole video at
   ``--shape`` on one GPU, as ``infer.py`` without ``parallel`` runs it; ``--save-baseline`` keeps its forward
   output and final latents for a later launch (``--load-baseline``).
2. The same with ``parallel.context=<context>`` over all ranks (:mod:`ex4d.pipelines.parallel`).
3. Equality: max |delta| and relative L2 of the CP forward and final latents vs the one-GPU ones, next to
   the bf16 noise yardstick (the one-GPU forward of the same input run as item 0 of a batch of 2, which
   only changes the kernels' blocking).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_generate import dit_flops, dit_inputs  # noqa: E402

from ex4d.model.adapter import LoraSettings, build_ex4d_transformer  # noqa: E402
from ex4d.model.wan import (  # noqa: E402
    TINY_CLIP_CONFIG,
    TINY_TRANSFORMER_CONFIG,
    TINY_VAE_CONFIG,
    RandomWanLoader,
)
from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings  # noqa: E402
from ex4d.pipelines.memory import efficient_attention  # noqa: E402
from ex4d.pipelines.parallel import ParallelSettings, init_distributed  # noqa: E402

GIB = 1024**3
# --tiny: the tiny test model's shapes through the same random loader (CPU dry run)
TINY = {"transformer": TINY_TRANSFORMER_CONFIG, "vae": TINY_VAE_CONFIG, "image_encoder": TINY_CLIP_CONFIG}


def sync_device() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def timed(fn, reps: int, warmup: int = 1, sync: bool = True) -> tuple[float, object]:
    """Median seconds of ``fn`` (``sync``: all ranks in step, a barrier before each rep)."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(reps):
        if sync:
            torch.distributed.barrier()
        sync_device()
        t0 = time.perf_counter()
        out = fn()
        sync_device()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--context", choices=["ulysses", "ring"], default="ulysses")
    p.add_argument("--shape", default="480x832x81", help="HxWxT of the video")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--reps", type=int, default=3, help="timed DiT forwards per configuration")
    p.add_argument("--baseline", action="store_true", help="also run the one-GPU baseline on rank 0")
    p.add_argument("--save-baseline", type=Path, default=None)
    p.add_argument("--load-baseline", type=Path, default=None)
    p.add_argument("--no-video", action="store_true", help="DiT forwards only")
    p.add_argument("--compile", action="store_true", help="regional torch.compile of the blocks (both paths)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--tiny", action="store_true", help="CPU (gloo) dry run of the code path with small random "
                   "shapes (numbers meaningless): torchrun --nproc_per_node=2 tools/bench_parallel.py --tiny --baseline")
    args = p.parse_args()

    env, device = init_distributed("cpu" if args.tiny else "cuda")
    if args.tiny:
        args.shape, args.steps = "32x64x5", 2
    H, W, T = (int(v) for v in args.shape.split("x"))
    dtype = torch.float32 if args.tiny else torch.bfloat16
    loader = RandomWanLoader(device=str(device), dtype=str(dtype).removeprefix("torch."), load_text_encoder=False,
                             **(TINY if args.tiny else {}))
    cfg = loader.transformer_config
    say = print if env.is_main else (lambda *a, **k: None)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (tiny dry run)"
    say(f"{env.world_size} x {card}, torch {torch.__version__}, shape {H}x{W}x{T}, {args.steps} steps, "
        f"context={args.context}", flush=True)

    t0 = time.perf_counter()
    comps = loader.load()
    model = build_ex4d_transformer(comps.transformer, LoraSettings(rank=16, alpha=16),
                                   hidden_channels=comps.encoder_hidden_channels, dtype=dtype)
    model.to(device)
    g = torch.Generator(device=device).manual_seed(7)
    with torch.no_grad():  # a non-trivial adapter, identical on every rank
        for prm in model.adapter_parameters():
            prm.copy_(torch.randn(prm.shape, device=device, dtype=prm.dtype, generator=g) * 0.01)
    say(f"  models built in {time.perf_counter() - t0:.1f} s", flush=True)

    settings = GenerateSettings(levers="off", num_steps=args.steps, progress=False, fuse_lora=True, cfg_batch=True, vae_batch=True,
                                compile_blocks=args.compile)
    gcpu = torch.Generator().manual_seed(0)
    colour = torch.randint(0, 256, (T, H, W, 3), dtype=torch.uint8, generator=gcpu)
    mask = torch.rand(T, H, W, generator=gcpu) > 0.3
    mask[0] = True
    colour[~mask] = 0
    pos = torch.randn(1, 512, cfg["text_dim"], generator=gcpu).to(dtype)
    neg = torch.randn(1, 512, cfg["text_dim"], generator=gcpu).to(dtype)
    x, t, text, img, geometry, tokens = dit_inputs((H, W, T), device, dtype, cfg)
    flops = dit_flops(tokens)
    result: dict = {"card": card, "ranks": env.world_size, "context": args.context, "shape": [H, W, T],
                    "tokens": tokens, "steps": args.steps, "compile": args.compile}

    def forward(gen):
        def fn():
            with torch.no_grad(), efficient_attention(device, settings.attention_backend):
                return gen.model(x, t, text, img, geometry=geometry)
        return fn

    def video(gen):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        frames = gen(colour, mask, prompt_embeds=pos, negative_prompt_embeds=neg)
        sync_device()
        peak = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else 0.0
        return time.perf_counter() - t0, frames, gen.last_latents.float().cpu(), peak

    # 1. one GPU (rank 0 alone)
    base = torch.load(args.load_baseline) if args.load_baseline else None
    if args.baseline:
        if env.is_main:
            plain = EX4DGenerator(comps, model, settings, device=device)
            sec, out1 = timed(forward(plain), args.reps, sync=False)
            with torch.no_grad(), efficient_attention(device, settings.attention_backend):
                out2 = plain.model(torch.cat([x, x]), t.expand(2), torch.cat([text, text]), torch.cat([img, img]),
                                   geometry=geometry)[:1]
            base = {"forward_s": sec, "forward": out1.float().cpu(), "noise_rel_l2": rel_l2(out2, out1),
                    "noise_max_abs": float((out2.float() - out1.float()).abs().max())}
            say(f"  1 GPU   forward {sec:.3f} s ({flops / sec / 1e12:.0f} TFLOP/s); bf16 yardstick (batch-2 item 0 "
                f"vs batch 1): rel L2 {base['noise_rel_l2']:.2e}, max |d| {base['noise_max_abs']:.3e}", flush=True)
            if not args.no_video:
                vs, _, lat, peak = video(plain)
                base.update(video_s=vs, latents=lat, video_peak_gib=peak, stages=dict(plain.last_timings))
                say(f"  1 GPU   video {vs:.1f} s, peak {peak:.1f} GiB  {plain.last_timings}", flush=True)
            del plain  # the fused LoRA stays: the context-parallel generator below fuses on the other ranks
        torch.distributed.barrier()
        if env.is_main and args.save_baseline:
            torch.save(base, args.save_baseline)
    if base is not None and env.is_main:
        result["one_gpu"] = {k: v for k, v in base.items() if not isinstance(v, torch.Tensor)}

    # 2. the same over all ranks
    cp = EX4DGenerator(comps, model, settings, device=device, parallel=ParallelSettings(context=args.context))
    sec, out = timed(forward(cp), args.reps)
    row = {"forward_s": sec, "forward_tflops_per_gpu": flops / sec / 1e12 / env.world_size}
    say(f"  {env.world_size} GPUs {args.context} forward {sec:.3f} s", flush=True)
    if not args.no_video:
        vs, _, lat, peak = video(cp)
        row.update(video_s=vs, video_peak_gib_rank0=peak, stages=dict(cp.last_timings))
        say(f"  {env.world_size} GPUs {args.context} video {vs:.1f} s, peak {peak:.1f} GiB (rank 0)  {cp.last_timings}",
            flush=True)
    if env.is_main and base is not None:
        row["forward_rel_l2_vs_1gpu"] = rel_l2(out.float().cpu(), base["forward"])
        row["forward_max_abs_vs_1gpu"] = float((out.float().cpu() - base["forward"]).abs().max())
        row["forward_speedup"] = base["forward_s"] / sec
        if "latents" in base and "video_s" in row:
            row["latents_rel_l2_vs_1gpu"] = rel_l2(lat, base["latents"])
            row["latents_max_abs_vs_1gpu"] = float((lat - base["latents"]).abs().max())
            row["video_speedup"] = base["video_s"] / row["video_s"]
        say("  vs 1 GPU: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)), flush=True)
    result["parallel"] = row
    if env.is_main and args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
