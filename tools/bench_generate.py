"""Benchmark the generation stage on one GPU with RANDOM weights of the real 14B shapes.

Speed and memory do not depend on weight values, so nothing needs downloading. Measured:

1. one DiT forward (= one CFG branch) at 512x512x49 (13,312 tokens) and 480x832x81 (32,760 tokens):
   diffusers' plain DiT, the EX-4D DiT (LoRA r16 unfused + geometry tokens: the reference's configuration),
   and the EX-4D DiT with the LoRA fused into the weights; optionally with regional torch.compile;
2. a full 25-step CFG 5 generation at 512x512x49 (VAE encode x3, 50 DiT forwards, VAE decode) per memory
   mode (gpu / offload / low_vram), wall time per stage and peak memory.

Random-weight shortcuts (said in the output too): the UMT5 text encoder is NOT run; its output is
replaced by random prompt embeddings of the right shape (1, 512, 4096), which saves 11 GB and about a
second. The VAE and the CLIP image encoder are real-shape random models.

The 14B DiT is built on the meta device, materialised with ``to_empty`` on the GPU in bf16, and filled
by a cheap in-place init (normal(0, 1/sqrt(fan_in)) weights, zero biases, unit norms), in seconds.

3. ``--levers``: the issue-6 table instead (docs/performance.md, section "Levers"): every speed lever of
   ``GenerateSettings`` on and off, the plain path re-measured as the baseline in the same run, seconds,
   TFLOP/s, peak GiB and the max abs difference of the output vs the plain path. Sections (``--sections``):
   ``video`` (default 512x512x49 video: plain, the exact levers together, each inexact lever on top),
   ``forward`` (one DiT forward per lever at each ``--lever-shapes``), ``memory`` (offload pageable vs
   pinned, low_vram with and without CFG batch). Rows that would overrun ``--budget-s`` are listed as
   skipped, so the table always prints.

Usage on the GPU host (torch 2.11, no diffusers installed: bring the wheels, see ../shared/docs/gpu.md):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
    python3 tools/bench_generate.py                       # everything, about 6 minutes on one H100
    python3 tools/bench_generate.py --skip-generate       # DiT forwards only
    python3 tools/bench_generate.py --modes gpu --steps 25 --json $OUT/bench.json
    python3 tools/bench_generate.py --tiny                # CPU dry run of the code path (tiny model)
    python3 tools/bench_generate.py --levers --json $OUT/levers.json    # issue 6 table, <= 9 min on one H100
    python3 tools/bench_generate.py --levers --tiny       # CPU dry run of the levers table (tiny model)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ex4d.model.adapter import LoraSettings, build_ex4d_transformer, lora_modules  # noqa: E402
from ex4d.model.wan import (  # noqa: E402
    WAN_I2V_14B_TRANSFORMER_CONFIG,
    RandomWanLoader,
    WanComponents,
    build_tiny_wan,
    random_wan_transformer,
)
from ex4d.pipelines.memory import efficient_attention, require_efficient_attention  # noqa: E402

# Reference EX-4D path (DiffSynth WanModel + LoRA r16 unfused + encoder, SDPA, bf16 autocast), one H100
# 80GB HBM3, random weights, ../shared/docs/gpu.md (2026-11-25).
REFERENCE = {(512, 512, 49): (1.313, 33.8), (480, 832, 81): (4.111, 37.8)}
UMT5_XXL_GIB = 5.68e9 * 2 / 1024**3  # encoder parameters in bf16: resident in gpu mode, not built here
GIB = 1024**3


def dit_flops(tokens: int, d: int = 5120, ffn: int = 13824, layers: int = 40, ctx: int = 769) -> float:
    """FLOPs of one 14B DiT forward (gpu.md): 40 (2N(6d^2 + 2 d ffn) + 4 N^2 d + 4 N 769 d)."""
    n = tokens
    return layers * (2 * n * (6 * d * d + 2 * d * ffn) + 4 * n * n * d + 4 * n * ctx * d)


# ---- random real-shape components ----------------------------------------------------------------


def random_transformer(device: torch.device, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """The 14B I2V DiT with random weights (``RandomWanLoader``'s), built without ever holding fp32 weights."""
    t0 = time.perf_counter()
    model = random_wan_transformer(device, dtype, seed)
    model.eval().requires_grad_(False)
    print(f"  random 14B DiT on {device} in {time.perf_counter() - t0:.1f} s "
          f"({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params)")
    return model


def random_components(device: torch.device, dtype: torch.dtype) -> WanComponents:
    """DiT + VAE + CLIP vision tower of the real shapes, random weights (``model=wan_i2v_14b_random``)."""
    t0 = time.perf_counter()
    comps = RandomWanLoader(dtype=str(dtype).removeprefix("torch."), device=str(device), load_text_encoder=False).load()
    print(f"  random 14B components on {device} in {time.perf_counter() - t0:.1f} s")
    return comps


# ---- measurements --------------------------------------------------------------------------------


def time_cuda(fn, warmup: int, reps: int) -> tuple[float, float]:
    """Median seconds of ``fn`` over ``reps`` (CUDA events, after ``warmup``) and peak GiB allocated."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b) / 1000)
    return statistics.median(times), torch.cuda.max_memory_allocated() / GIB


def dit_inputs(shape, device, dtype, cfg):
    H, W, T = shape
    F, h, w = (T - 1) // 4 + 1, H // 8, W // 8
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(1, cfg["in_channels"], F, h, w, device=device, dtype=dtype, generator=g)
    text = torch.randn(1, 512, cfg["text_dim"], device=device, dtype=dtype, generator=g)
    img = torch.randn(1, 257, cfg["image_dim"], device=device, dtype=dtype, generator=g)
    t = torch.tensor([500.0], device=device)
    geometry = torch.randn(1, cfg["num_attention_heads"] * cfg["attention_head_dim"], F, h // 2, w // 2,
                           device=device, dtype=dtype, generator=g) * 0.01
    tokens = F * (h // 2) * (w // 2)
    return x, t, text, img, geometry, tokens


def bench_forwards(args, device, dtype) -> list[dict]:
    cfg = WAN_I2V_14B_TRANSFORMER_CONFIG
    transformer = random_transformer(device, dtype)
    require_efficient_attention(device, dtype, cfg["num_attention_heads"], cfg["attention_head_dim"])
    rows = []
    shapes = [(512, 512, 49), (480, 832, 81)]

    def run(label, fwd):
        for shape in shapes:
            x, t, text, img, geometry, tokens = dit_inputs(shape, device, dtype, cfg)
            reps = args.reps if tokens < 20000 else max(2, args.reps - 2)
            with torch.no_grad(), efficient_attention(device):
                sec, peak = time_cuda(lambda: fwd(x, t, text, img, geometry), warmup=args.warmup, reps=reps)
            ref_s, ref_mem = REFERENCE[shape]
            row = {"variant": label, "shape": "x".join(map(str, shape)), "tokens": tokens, "seconds": sec,
                   "tflops": dit_flops(tokens) / sec / 1e12, "peak_gib": peak, "reference_seconds": ref_s,
                   "reference_peak_gib": ref_mem, "speedup_vs_reference": ref_s / sec}
            rows.append(row)
            print(f"  {label:<34} {row['shape']:>10}  {sec:.3f} s  {row['tflops']:.0f} TFLOP/s  peak {peak:.1f} GiB"
                  f"  (reference {ref_s:.3f} s: x{ref_s / sec:.2f})", flush=True)

    run("diffusers DiT (no adapter)", lambda x, t, c, i, g: transformer(x, t, c, i, return_dict=False)[0])
    ex4d = build_ex4d_transformer(transformer, LoraSettings(rank=16, alpha=16))
    run("EX-4D: LoRA r16 unfused + geometry", lambda x, t, c, i, g: ex4d(x, t, c, i, geometry=g))
    for m in lora_modules(transformer, ex4d.adapter_name).values():
        m.merge(adapter_names=[ex4d.adapter_name])
    run("EX-4D: LoRA fused + geometry", lambda x, t, c, i, g: ex4d(x, t, c, i, geometry=g))
    if args.compile:
        transformer.compile_repeated_blocks(fullgraph=True)
        run("EX-4D: fused + compiled blocks", lambda x, t, c, i, g: ex4d(x, t, c, i, geometry=g))
    del ex4d, transformer
    torch.cuda.empty_cache()
    return rows


def bench_generation(args, device, dtype) -> list[dict]:
    from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings

    comps = random_components(device, dtype)
    model = build_ex4d_transformer(comps.transformer, LoraSettings(rank=16, alpha=16))
    H, W, T = 512, 512, 49
    g = torch.Generator().manual_seed(0)
    colour = torch.randint(0, 256, (T, H, W, 3), dtype=torch.uint8, generator=g)
    mask = torch.rand(T, H, W, generator=g) > 0.3
    mask[0] = True
    pos = torch.randn(1, 512, 4096, generator=g).to(dtype)  # stands in for UMT5 (not run)
    neg = torch.randn(1, 512, 4096, generator=g).to(dtype)
    if args.fuse:  # once, on the GPU, before the modes move the DiT around
        for m in lora_modules(comps.transformer, model.adapter_name).values():
            m.merge(adapter_names=[model.adapter_name])
    rows = []
    for mode in args.modes:
        steps = args.steps if mode == "gpu" else args.mode_steps
        settings = GenerateSettings(levers="off", num_steps=steps, progress=False)
        torch.cuda.empty_cache()
        t0 = time.perf_counter()
        gen = EX4DGenerator(comps, model, settings, device=device, memory_mode=mode)
        torch.cuda.synchronize()
        place_s = time.perf_counter() - t0
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        frames = gen(colour, mask, prompt_embeds=pos, negative_prompt_embeds=neg)
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / GIB
        lt = gen.last_timings
        per_fwd = lt["denoise"] / (2 * steps)
        row = {"mode": mode, "steps": steps, "fused_lora": args.fuse, "total_seconds": total,
               "placement_seconds": place_s, "per_dit_forward_seconds": per_fwd, "peak_gib": peak,
               "stages": lt, "frames": list(frames.shape)}
        rows.append(row)
        stages = ", ".join(f"{k} {v:.2f}" for k, v in lt.items())
        print(f"  {mode:<9} {steps:>2} steps: {total:.1f} s total (placement {place_s:.1f} s before), "
              f"{per_fwd:.3f} s/forward, peak {peak:.1f} GiB  [{stages}]", flush=True)
        del gen
    return rows


# the tiny DiT with every dim a multiple of 16, so the fp8 rows run too (torch._scaled_mm needs it)
TINY_FP8_OVERRIDES = {"attention_head_dim": 16, "ffn_dim": 64, "added_kv_proj_dim": 32}


def tiny_transformer() -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    from ex4d.model.wan import TINY_TRANSFORMER_CONFIG

    torch.manual_seed(0)
    return WanTransformer3DModel(**{**TINY_TRANSFORMER_CONFIG, **TINY_FP8_OVERRIDES}).eval().requires_grad_(False)


def tiny_components() -> WanComponents:
    comps = build_tiny_wan()
    comps.transformer = tiny_transformer()
    return comps


def tiny_dry_run() -> None:
    """CPU smoke test of the code path with the tiny random model (numbers meaningless)."""
    from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings

    comps = build_tiny_wan()
    model = build_ex4d_transformer(comps.transformer, LoraSettings(rank=4, alpha=4), hidden_channels=16)
    T, H, W = 5, 32, 32
    colour = torch.randint(0, 256, (T, H, W, 3), dtype=torch.uint8)
    mask = torch.rand(T, H, W) > 0.3
    pos, neg = torch.randn(1, 512, 16), torch.randn(1, 512, 16)
    for mode in ("gpu", "offload", "low_vram"):
        gen = EX4DGenerator(comps, model, GenerateSettings(levers="off", num_steps=2, progress=False), device="cpu",
                            memory_mode=mode)
        out = gen(colour, mask, prompt_embeds=pos, negative_prompt_embeds=neg)
        print(f"  tiny {mode}: {tuple(out.shape)} stages {gen.last_timings}")
    print(f"  FLOPs of one 14B forward at 13,312 tokens: {dit_flops(13312) / 1e12:.1f} TFLOP")


# ---- issue 6: the levers table ------------------------------------------------------------------
#
# One run measures every speed lever of GenerateSettings on and off, the plain path re-measured as the
# baseline, in sections run in priority order (a time budget cuts from the end; see bench_levers):
#   video:   the default video (512x512x49, 25 steps, CFG 5) end to end, plain vs the exact levers together,
#            max |delta| of the final latents (+ VAE-batch and embedding-cache stage rows);
#   forward: one DiT forward at 512x512x49 per lever vs the plain EX-4D forward (LoRA unfused + geometry,
#            SDPA auto), max |delta| of the flow prediction;
#   memory:  offload (pageable vs pinned) and low_vram (two forwards vs CFG batch) over a few steps;
#   big:     the main forward levers at 480x832x81;
#   inexact: videos with each inexact lever on top of the exact ones.


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device) -> float:
    return torch.cuda.max_memory_allocated() / GIB if torch.device(device).type == "cuda" else 0.0


def _empty_cache(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def time_any(fn, warmup: int, reps: int, device) -> tuple[float, float]:
    """``time_cuda`` on CUDA; wall-clock median on the CPU (the --tiny dry run)."""
    if torch.device(device).type == "cuda":
        return time_cuda(fn, warmup, reps)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), 0.0


class Budget:
    """Wall-clock budget of the levers run: rows that would start after it are reported as skipped."""

    def __init__(self, seconds: float) -> None:
        self.t0 = time.perf_counter()
        self.seconds = seconds

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self, need: float = 0.0) -> bool:
        return self.elapsed + need <= self.seconds


def _delta(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """max |out - ref| and ||out - ref|| / ||ref|| in fp32."""
    d = out.float() - ref.float()
    return d.abs().max().item(), (d.norm() / ref.float().norm().clamp_min(1e-30)).item()


def _checksums(transformer, names) -> dict[str, int]:
    """64-bit integer checksums of the bf16 bit patterns of some weights (exactness without a second copy)."""
    mods = dict(transformer.named_modules())
    out = {}
    for n in names:
        w = mods[n].get_base_layer().weight.detach()
        out[n] = w.view(torch.int16).sum(dtype=torch.int64).item()
    return out


@torch.no_grad()
def randomise_adapter(model, seed: int = 1) -> None:
    """A trained-looking adapter: nonzero LoRA B (|BA| about 4% of |W|) and geometry tokens, so that merging
    changes the weights and every lever's delta is measured on a real LoRA path."""
    g = torch.Generator(device=next(model.encoder.parameters()).device).manual_seed(seed)
    for name, p in model.lora_parameters().items():
        if "lora_B" in name:
            p.normal_(0.0, 0.01, generator=g)
    model.encoder.latent_patch_embedding.weight.normal_(0.0, 1e-3, generator=g)


def _video_inputs(comps, video_shape):
    H, W, T = video_shape
    g = torch.Generator().manual_seed(0)
    colour = torch.randint(0, 256, (T, H, W, 3), dtype=torch.uint8, generator=g)
    mask = torch.rand(T, H, W, generator=g) > 0.3
    mask[0] = True
    text_dim, dtype = comps.transformer.config.text_dim, comps.transformer.dtype
    pos = torch.randn(1, 512, text_dim, generator=g).to(dtype)  # stands in for UMT5 (not run)
    neg = torch.randn(1, 512, text_dim, generator=g).to(dtype)
    return colour, mask, pos, neg


def lever_forward_rows(args, transformer, model, shape, budget, table, big: bool) -> None:
    """DiT-forward rows at one shape. ``big``: the 480x832x81 subset (plain, merged + compile, + fp8)."""
    from ex4d.model.fp8 import convert_to_fp8, restore_from_fp8
    from ex4d.pipelines.memory import efficient_attention, sdpa_backends_used

    tr = transformer
    device, dtype = tr.device, tr.dtype
    cfgd = dict(tr.config)
    x, t, text, img, geometry, tokens = dit_inputs(shape, device, dtype, cfgd)
    neg = torch.randn(text.shape, device=device, dtype=dtype, generator=torch.Generator(device).manual_seed(5))
    compile_kw = {"fullgraph": True, "dynamic": False, **({} if device.type == "cuda" else {"backend": "eager"})}
    x2, t2, text2, img2 = torch.cat([x, x]), t.expand(2), torch.cat([text, neg]), torch.cat([img, img])
    label = "x".join(map(str, shape))
    flops = dit_flops(tokens)
    reps = args.lever_reps
    est = 2.0 * (1.1 if tokens < 20000 else 3.6) * (reps + args.lever_warmup + 1)  # a batch-2 row, roughly

    def b1():
        return model(x, t, text, img, geometry=geometry)

    def b2():
        return model(x2, t2, text2, img2, geometry=geometry)

    with torch.no_grad(), efficient_attention(device, "auto"):
        ref_pos, ref_neg = b1().float(), model(x, t, neg, img, geometry=geometry).float()
        kernels = sdpa_backends_used(b1)
    plain_s: list[float] = []

    def row(lever, on_top, fn, batch=1, backend="auto", note="", compiled=False):
        if not budget.left(est + (args.compile_estimate_s if compiled else 0)):  # noqa: B023
            table.append({"section": "forward", "lever": lever, "shape": label, "skipped": "time budget"})
            print(f"  [{budget.elapsed:5.0f} s] skip {lever} {label} (time budget)", flush=True)
            return
        try:
            with torch.no_grad(), efficient_attention(device, backend):
                _sync(device)
                t0 = time.perf_counter()
                out = fn()
                _sync(device)
                first_s = time.perf_counter() - t0
                sec, peak = time_any(fn, args.lever_warmup, reps, device)
        except RuntimeError as e:  # a kernel that cannot run here, a compile error, out of memory: go on
            msg = " ".join(str(e).split())[:160]
            table.append({"section": "forward", "lever": lever, "shape": label, "skipped": f"failed: {msg}"})
            print(f"  [{budget.elapsed:5.0f} s] {lever} {label} FAILED: {msg}", flush=True)
            _empty_cache(device)
            return
        per = sec / batch
        if batch == 2:
            d = [_delta(out[:1], ref_pos), _delta(out[1:], ref_neg)]
            dmax, drel = max(a for a, _ in d), max(b for _, b in d)
        else:
            dmax, drel = _delta(out, ref_pos)
        if not plain_s:
            plain_s.append(per)
        if compiled:
            note = (note + "; " if note else "") + f"first call {first_s:.0f} s (compile)"
        r = {"section": "forward", "lever": lever, "on_top_of": on_top, "shape": label, "tokens": tokens,
             "batch": batch, "seconds": per, "unit": "s / forward (per CFG branch)", "speedup": plain_s[0] / per,
             "tflops": flops / per / 1e12, "peak_gib": peak, "max_abs_delta": dmax, "rel_l2_delta": drel,
             "note": note}
        table.append(r)
        print(f"  [{budget.elapsed:5.0f} s] {lever:<40} {label:>10}  {per:.3f} s/fwd  x{r['speedup']:.2f}  "
              f"{r['tflops']:.0f} TFLOP/s  peak {peak:.1f} GiB  max|d| {dmax:.2e}  {note}", flush=True)

    kern = ", ".join(f"{k} x{v}" for k, v in kernels.items())
    row("plain (LoRA unfused, SDPA auto)", "-", b1, note=f"SDPA kernels seen: {kern}")
    if not big:
        for backend in ("cudnn", "flash", "efficient"):
            row(f"attention_backend={backend}", "plain", b1, backend=backend)
        row("cfg_batch (one batch-2 forward)", "plain", b2, batch=2)

    # LoRA merge, with the exactness of the unmerge checked by checksums and a bit-equal output after
    names = list(lora_modules(tr, model.adapter_name))
    before = _checksums(tr, names)
    _sync(device)
    t0 = time.perf_counter()
    model.merge_lora(keep_base=True)
    _sync(device)
    merge_s = time.perf_counter() - t0
    row("fuse_lora (merged)", "plain", b1, note=f"merge {merge_s:.1f} s incl. base copy")
    if not big:
        model.unmerge_lora()
        with torch.no_grad(), efficient_attention(device, "auto"):
            after = b1().float()
        exact = _checksums(tr, names) == before
        print(f"  unmerge: {len(names)} LoRA target weights bit-identical to before the merge: {exact}; "
              f"output after unmerge equals plain: {torch.equal(after, ref_pos)}", flush=True)
        table.append({"section": "forward", "lever": "unmerge exactness", "shape": label,
                      "note": f"weights bit-identical: {exact}; output bit-identical: {torch.equal(after, ref_pos)}"})
        model.merge_lora(keep_base=True)

    # regional compile of the blocks, on the merged model (what the fast path runs)
    cfgdyn = torch._dynamo.config
    setattr(cfgdyn, "recompile_limit" if hasattr(cfgdyn, "recompile_limit") else "cache_size_limit", 64)
    tr.compile_repeated_blocks(**compile_kw)
    row("+ compile_blocks", "fuse_lora", b1, compiled=True)
    if not big:
        row("+ compile_blocks + cfg_batch", "fuse_lora", b2, batch=2, compiled=True)
    _uncompile(tr)
    fp8 = args.fp8
    if fp8 != "off":
        originals = convert_to_fp8(tr, fp8)
        try:
            if not big:
                row(f"fp8_linears={fp8} (eager)", "fuse_lora", b1, note="inexact")
            tr.compile_repeated_blocks(**compile_kw)
            if big:
                row(f"fp8_linears={fp8} + compile_blocks", "fuse_lora", b1, note="inexact", compiled=True)
            else:
                row(f"fp8_linears={fp8} + compile_blocks + cfg_batch", "fuse_lora", b2, batch=2, note="inexact",
                    compiled=True)
        finally:
            _uncompile(tr)
            restore_from_fp8(tr, originals)
    model.unmerge_lora()


def _uncompile(transformer) -> None:
    for m in transformer.modules():
        if m.__class__.__name__ in (transformer._repeated_blocks or ()):
            m._compiled_call_impl = None


def lever_video_rows(args, comps, model, budget, table, state: dict, which: str) -> None:
    """Full default videos (512x512x49, CFG 5). ``which``: ``plain`` (the reference settings; runs first,
    ``state`` keeps its latents and time), ``exact`` (the exact levers together) or ``inexact`` (each inexact
    lever on top of the exact ones)."""
    from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings

    colour, mask, pos, neg = _video_inputs(comps, args.video_shape)
    device = comps.transformer.device
    label = "x".join(map(str, args.video_shape))
    steps = args.video_steps
    flops = 2 * steps * dit_flops(args.video_tokens)  # nominal DiT work of the video (every step, both branches)
    exact = dict(fuse_lora=True, compile_blocks=True, cfg_batch=True, vae_batch=True, cache_embeddings=True,
                 compile_cache=str(args.compile_cache) if args.compile_cache else None)
    rows = [("plain (reference settings)", "-", {"cache_embeddings": False}),
            ("exact levers: fuse_lora + compile_blocks + cfg_batch + vae_batch", "plain", exact),
            (f"+ cfg_truncate_after={args.cfg_truncate}", "exact levers",
             {**exact, "cfg_truncate_after": args.cfg_truncate}),
            (f"+ first_block_cache={args.fbc}", "exact levers", {**exact, "first_block_cache": args.fbc}),
            (f"+ fp8_linears={args.fp8}", "exact levers", {**exact, "fp8_linears": args.fp8})]
    if args.fp8 == "off":
        rows.pop()
    rows = {"plain": rows[:1], "exact": rows[1:2], "inexact": rows[2:]}[which]
    for lever, on_top, kw in rows:
        compiled = kw.get("compile_blocks", False)
        need = 45 + (args.compile_estimate_s + 10 if compiled else 0)
        if not budget.left(need):
            table.append({"section": "video", "lever": lever, "shape": label, "skipped": "time budget"})
            print(f"  [{budget.elapsed:5.0f} s] skip video {lever} (time budget)", flush=True)
            continue
        settings = GenerateSettings(levers="off", num_steps=steps, progress=False, **kw)
        _empty_cache(device)
        gen = None
        try:
            gen = EX4DGenerator(comps, model, settings, device=device, memory_mode="gpu", reversible=True)
            note = ""
            if compiled:  # compile (or load from inductor's cache) on a short video first, not in the timing
                t0 = time.perf_counter()
                # enough steps that a truncated CFG also runs its batch-1 steps (both block variants compile)
                warm = 2 if settings.cfg_truncate_after >= 1.0 else max(2, math.ceil(1 / (1 - settings.cfg_truncate_after)))
                gen(colour, mask, prompt_embeds=pos, negative_prompt_embeds=neg,
                    settings=dataclasses.replace(settings, num_steps=warm), return_latents=True)
                note = f"warm-up (compile) {time.perf_counter() - t0:.0f} s, not timed"
            gen.clear_cache()  # a first video of its source frame: no cached CLIP tokens / first-frame latent
            _sync(device)
            _reset_peak(device)
            t0 = time.perf_counter()
            gen(colour, mask, prompt_embeds=pos, negative_prompt_embeds=neg)
            _sync(device)
            total = time.perf_counter() - t0
            peak = _peak_gib(device)
            lat = gen.last_latents.float().clone()
            lt, st = dict(gen.last_timings), dict(gen.last_stats)
            if which == "plain":
                try:
                    _stage_rows(gen, colour, mask, budget, table)
                except RuntimeError as e:
                    print(f"  stage rows FAILED: {' '.join(str(e).split())[:160]}", flush=True)
        except RuntimeError as e:  # compile error, out of memory, ...: record it and go on with the next row
            msg = " ".join(str(e).split())[:160]
            table.append({"section": "video", "lever": lever, "shape": label, "skipped": f"failed: {msg}"})
            print(f"  [{budget.elapsed:5.0f} s] video {lever} FAILED: {msg}", flush=True)
            continue
        finally:
            if gen is not None:
                gen.close()
            del gen
            _empty_cache(device)
        if "ref" not in state:
            if which != "plain":  # the plain video failed or was not run: no baseline for deltas
                state.update(ref=lat * float("nan"), plain_s=float("nan"))
            else:
                state["ref"], state["plain_s"] = lat, total
                state["gpu_per_forward"] = lt["denoise"] / (2 * steps)
        dmax, drel = _delta(lat, state["ref"])
        r = {"section": "video", "lever": lever, "on_top_of": on_top, "shape": label, "steps": steps,
             "seconds": total, "unit": "s / video", "speedup": state["plain_s"] / total,
             "tflops": flops / lt["denoise"] / 1e12, "peak_gib": peak, "max_abs_delta": dmax, "rel_l2_delta": drel,
             "stages": lt, "stats": st,
             "note": (note + "; " if note else "") + f"{st['dit_calls']} DiT calls"
                     + (f" ({st['fbc_reused']} reused the first-block cache)" if "fbc_reused" in st else "")
                     + f"; denoise {lt['denoise']:.1f} s, "
                     f"VAE enc {lt['vae_encode']:.2f} s, dec {lt['vae_decode']:.2f} s"}
        table.append(r)
        print(f"  [{budget.elapsed:5.0f} s] video {lever:<60} {total:.1f} s  x{r['speedup']:.2f}  peak {peak:.1f} GiB"
              f"  max|d| {dmax:.2e}  {r['note']}", flush=True)


@torch.no_grad()
def _stage_rows(gen, colour, mask, budget, table) -> None:
    """vae_batch and cache_embeddings, measured on their own stage (cheap; their effect on a whole video is
    below the run-to-run noise of 25 DiT steps)."""
    from ex4d.pipelines.conditioning import first_frame_image, geometry_inputs

    T = colour.shape[0]
    eroded = mask
    x_c, x_m = geometry_inputs(colour, eroded, gen.components.vae.dtype)
    image = first_frame_image(colour[0])

    device = gen.device
    label = "x".join(map(str, (colour.shape[1], colour.shape[2], T)))

    def timed(fn):
        _sync(device)
        _reset_peak(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        return out, time.perf_counter() - t0, _peak_gib(device)

    gen.encode_conditions(image, x_c, x_m, batch=False)  # warm-up (cuDNN algorithm choice)
    sep, sep_s, sep_peak = timed(lambda: gen.encode_conditions(image, x_c, x_m, batch=False))
    gen.encode_conditions(image, x_c, x_m, batch=True)
    bat, bat_s, bat_peak = timed(lambda: gen.encode_conditions(image, x_c, x_m, batch=True))
    d = [_delta(b, a) for a, b in zip(sep, bat)]
    for lever, sec, peak, dd, note in (
        ("vae encode x3, separate (plain)", sep_s, sep_peak, (0.0, 0.0), "colour, mask, first-frame videos"),
        ("vae_batch (one batch of 3)", bat_s, bat_peak, (max(a for a, _ in d), max(b for _, b in d)), ""),
    ):
        table.append({"section": "stage", "lever": lever, "on_top_of": "-" if "plain" in lever else "plain",
                      "shape": label, "seconds": sec, "unit": "s / video", "speedup": sep_s / sec,
                      "tflops": 0.0, "peak_gib": peak, "max_abs_delta": dd[0], "rel_l2_delta": dd[1], "note": note})
    first_s = timed(lambda: (gen.encode_image(image), gen._vae_encode(gen.first_frame_video(image, T))))[1]
    table.append({"section": "stage", "lever": "cache_embeddings (2nd video of a source frame)", "on_top_of": "plain",
                  "shape": label, "seconds": first_s, "unit": "s saved / video", "tflops": 0.0,
                  "peak_gib": 0.0, "max_abs_delta": 0.0, "rel_l2_delta": 0.0,
                  "note": "CLIP tokens + first-frame VAE encode skipped; UMT5 (not run here) is skipped per "
                          "prompt too"})
    print(f"  [{budget.elapsed:5.0f} s] VAE encodes: separate {sep_s:.2f} s, batched {bat_s:.2f} s; cached "
          f"first-frame work {first_s:.2f} s", flush=True)


def lever_memory_rows(args, comps, model, budget, table, gpu_per_forward: float | None) -> None:
    """offload pageable vs pinned, low_vram two forwards vs CFG batch, over ``--lever-mode-steps`` steps."""
    from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings

    colour, mask, pos, neg = _video_inputs(comps, args.video_shape)
    device = comps.transformer.device
    label = "x".join(map(str, args.video_shape))
    steps = args.lever_mode_steps
    model.release_base_copy()  # the merge rows' 28 GB CPU copy: not needed any more, and RAM is needed now
    if device.type == "cuda" and hasattr(torch._C, "_host_emptyCache"):
        torch._C._host_emptyCache()
    ref = None
    gen = None
    rows = [("offload, pageable (pin_memory=False)", "offload", {"pin_memory": False}, "-"),
            ("offload + pin_memory", "offload", {"pin_memory": True}, "offload pageable"),
            ("low_vram (group offload, pinned)", "low_vram", {}, "offload pageable"),
            ("low_vram + cfg_batch", "low_vram", {"cfg_batch": True}, "low_vram")]
    for lever, mode, kw, on_top in rows:
        if not budget.left(75 if "pageable" in lever else 30):
            table.append({"section": "memory", "lever": lever, "shape": label, "skipped": "time budget"})
            print(f"  [{budget.elapsed:5.0f} s] skip {lever} (time budget)", flush=True)
            continue
        settings = GenerateSettings(levers="off", num_steps=steps, progress=False, **kw)
        build_kw = {k: v for k, v in kw.items() if k == "pin_memory"}
        try:
            _sync(device)
            t0 = time.perf_counter()
            if gen is None or build_kw or gen.placement.mode != mode:
                gen = None
                _empty_cache(device)
                built = GenerateSettings(levers="off", num_steps=steps, progress=False, **build_kw)
                gen = EX4DGenerator(comps, model, built, device=device, memory_mode=mode)
            _sync(device)
            place_s = time.perf_counter() - t0
            _reset_peak(device)
            t0 = time.perf_counter()
            gen(colour, mask, prompt_embeds=pos, negative_prompt_embeds=neg, settings=settings)
            _sync(device)
            total = time.perf_counter() - t0
            peak = _peak_gib(device)
            lat = gen.last_latents.float().clone()
        except RuntimeError as e:
            msg = " ".join(str(e).split())[:160]
            table.append({"section": "memory", "lever": lever, "shape": label, "skipped": f"failed: {msg}"})
            print(f"  [{budget.elapsed:5.0f} s] {lever} FAILED: {msg}", flush=True)
            continue
        if ref is None:
            ref = lat
        dmax, drel = _delta(lat, ref)
        per = gen.last_timings["denoise"] / (2 * steps)
        ratio = f"; x{per / gpu_per_forward:.2f} the gpu-mode s/forward" if gpu_per_forward else ""
        r = {"section": "memory", "lever": lever, "on_top_of": on_top, "shape": label, "steps": steps,
             "seconds": per, "unit": "s / forward (denoise incl. transfers)", "total_seconds": total,
             "placement_seconds": place_s, "tflops": dit_flops(args.video_tokens) / per / 1e12, "peak_gib": peak,
             "max_abs_delta": dmax, "rel_l2_delta": drel, "stages": dict(gen.last_timings),
             "note": f"{steps} steps: {total:.1f} s per video call, placement {place_s:.1f} s once{ratio}"}
        table.append(r)
        print(f"  [{budget.elapsed:5.0f} s] {lever:<40} {per:.3f} s/fwd  peak {peak:.1f} GiB  max|d| {dmax:.2e}  "
              f"{r['note']}", flush=True)
    del gen


LEVER_SECTIONS = ("video", "forward", "memory", "big", "inexact")


def bench_levers(args, device, dtype, make_components, make_transformer) -> list[dict]:
    """The levers table. ``make_components()`` / ``make_transformer()`` build the (random) models: the 14B
    shapes on the GPU, the tiny model for the CPU dry run.

    Sections, in priority order (the budget cuts from the end): ``video`` the plain and the exact-levers
    videos (+ the VAE-batch and embedding-cache stage rows); ``forward`` every lever on one DiT forward at the
    first ``--lever-shapes``; ``memory`` offload pageable / pinned and low_vram without / with CFG batch (leaves
    the DiT group-offloaded, so what follows runs on a fresh DiT with the same seeded weights); ``big`` the
    main forward levers at the other shapes; ``inexact`` videos with each inexact lever on top of the exact ones.
    """
    import gc

    budget = Budget(args.budget_s)
    table: list[dict] = []
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.lever_shapes.split(",") if s]
    sections = [x for x in args.sections.split(",") if x]
    bad = set(sections) - set(LEVER_SECTIONS)
    if bad:
        sys.exit(f"--sections: unknown {sorted(bad)}; choose from {LEVER_SECTIONS}")

    comps = make_components()
    hidden = comps.encoder_hidden_channels

    def adapter(transformer):
        torch.manual_seed(0)  # peft's LoRA A init and the encoder's inner layers: identical on a fresh DiT
        m = build_ex4d_transformer(transformer, LoraSettings(rank=16, alpha=16), hidden_channels=hidden)
        randomise_adapter(m)
        return m

    model = adapter(comps.transformer)
    state: dict = {}
    offloaded = False
    # the plain video first: nothing compiled, merged or hooked yet
    if "video" in sections or "inexact" in sections:
        lever_video_rows(args, comps, model, budget, table, state, "plain")
    if "forward" in sections and shapes:
        lever_forward_rows(args, comps.transformer, model, shapes[0], budget, table, big=False)
    if "video" in sections:
        lever_video_rows(args, comps, model, budget, table, state, "exact")
    if "memory" in sections:
        lever_memory_rows(args, comps, model, budget, table, state.get("gpu_per_forward"))
        offloaded = True
    if offloaded and (("big" in sections and len(shapes) > 1) or "inexact" in sections):
        # group offloading cannot be undone: a fresh DiT (same seed, same weights) for the rest
        comps.transformer = None
        del model
        gc.collect()
        _empty_cache(device)
        if device.type == "cuda" and hasattr(torch._C, "_host_emptyCache"):
            torch._C._host_emptyCache()
        comps.transformer = make_transformer()
        comps.vae.to(device)
        comps.image_encoder.to(device)
        model = adapter(comps.transformer)
    if "big" in sections:
        for shape in shapes[1:]:
            lever_forward_rows(args, comps.transformer, model, shape, budget, table, big=True)
    if "inexact" in sections:
        lever_video_rows(args, comps, model, budget, table, state, "inexact")
    return table


def print_lever_table(table: list[dict], device_name: str, budget_s: float) -> None:
    print(f"\n## Levers (issue 6), {device_name}, torch {torch.__version__}, random weights, bf16")
    print("\nforward rows: seconds per DiT forward (per CFG branch), delta of the flow prediction vs the plain forward;"
          "\nvideo rows: seconds per 512x512x49 video (25 steps, CFG 5, models loaded, UMT5 not run), delta of the"
          "\nfinal latents vs the plain video; memory rows: denoise seconds per forward incl. weight transfers, delta"
          "\nvs the first memory row. TFLOP/s: nominal DiT FLOPs / time (effective when steps are skipped).\n")
    print("| section | lever | on top of | shape | seconds | unit | x vs plain | TFLOP/s | peak GiB | max abs delta "
          "| rel L2 delta | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        if "skipped" in r:
            print(f"| {r['section']} | {r['lever']} | | {r.get('shape', '')} | skipped: {r['skipped']} | | | | | | | |")
        elif "seconds" not in r:
            print(f"| {r['section']} | {r['lever']} | | {r.get('shape', '')} | | | | | | | | {r.get('note', '')} |")
        else:
            sp = f"x{r['speedup']:.2f}" if "speedup" in r else ""
            print(f"| {r['section']} | {r['lever']} | {r.get('on_top_of', '')} | {r['shape']} | {r['seconds']:.3f} | "
                  f"{r['unit']} | {sp} | {r['tflops']:.0f} | {r['peak_gib']:.1f} | {r['max_abs_delta']:.3g} | "
                  f"{r['rel_l2_delta']:.3g} | {r.get('note', '')} |")
    print(f"\n(budget {budget_s:.0f} s; goals: DiT forward <= 0.70 s at 512x512x49 and <= 2.5 s at 480x832x81; "
          "default video <= 35 s at <= 40 GB; low_vram <= 24 GB at <= 1.5x the gpu-mode time.)")


def print_tables(fwd_rows, gen_rows, device_name) -> None:
    print(f"\n## Generation benchmark, {device_name}, random weights, bf16")
    if fwd_rows:
        print("\nDiT forward (one CFG branch), batch 1, median of several after warm-up:\n")
        print("| variant | shape | tokens | seconds | TFLOP/s | peak GiB | reference EX-4D path | speed-up |")
        print("|---|---|---|---|---|---|---|---|")
        for r in fwd_rows:
            print(f"| {r['variant']} | {r['shape']} | {r['tokens']:,} | {r['seconds']:.3f} | {r['tflops']:.0f} | "
                  f"{r['peak_gib']:.1f} | {r['reference_seconds']:.3f} s, {r['reference_peak_gib']:.1f} GiB | "
                  f"x{r['speedup_vs_reference']:.2f} |")
        print("\n(gpu.md, same card type: diffusers DiT 1.019 s / 3.429 s; reference EX-4D path 1.313 s / 4.111 s.)")
    if gen_rows:
        print("\nFull generation 512x512x49, CFG 5 (text encoder replaced by random embeddings, not run):\n")
        print("| memory mode | steps | total s | s / DiT forward | peak GiB | VAE enc s | denoise s | VAE dec s |")
        print("|---|---|---|---|---|---|---|---|")
        for r in gen_rows:
            st = r["stages"]
            print(f"| {r['mode']} | {r['steps']} | {r['total_seconds']:.1f} | {r['per_dit_forward_seconds']:.3f} | "
                  f"{r['peak_gib']:.1f} | {st.get('vae_encode', 0):.2f} | {st.get('denoise', 0):.1f} | "
                  f"{st.get('vae_decode', 0):.2f} |")
        print("\n(reference: 25 steps x 2 forwards x 1.313 s = 65.7 s of DiT per default video. Peaks exclude the "
              f"UMT5-XXL encoder, about {UMT5_XXL_GIB:.1f} GiB more in gpu mode, transient in the others.)")


# ---- through the user's command (issue 14) ---------------------------------------------------------

CLI_BEGIN, CLI_END = "<!-- through-cli:begin -->", "<!-- through-cli:end -->"
CLI_RUNS = {  # name -> (label, overrides): the reference code path, then the default twice
    "ref": ("reference path (`generate.levers=off`: LoRA unmerged, eager, 2 CFG forwards)", ["generate.levers=off"]),
    "cold": ("default (`levers=auto`), fresh machine cache: pays the compile", []),
    "second": ("default, second process (compile cache from the run above)", []),
    "fp8": ("INEXACT opt-in `generate.fp8_linears=rowwise` on top of the default", ["generate.fp8_linears=rowwise"]),
    "offload": ("default levers, `model.memory_mode=offload`", ["model.memory_mode=offload"]),
    "low_vram": ("default levers, `model.memory_mode=low_vram`", ["model.memory_mode=low_vram"]),
}


def _frames_psnr(a: Path, b: Path) -> float:
    """Mean per-frame PSNR (dB) between two videos' frames (the evaluation's PSNR)."""
    from ex4d.io.video import read_video
    from ex4d.metrics.image import psnr_video

    return psnr_video(torch.from_numpy(read_video(a)[0]), torch.from_numpy(read_video(b)[0]))


def _frames_equal(a: Path, b: Path) -> bool:
    """Whether two videos decode to the same frames, bit for bit."""
    from ex4d.io.video import read_video

    fa, fb = read_video(a)[0], read_video(b)[0]
    return fa.shape == fb.shape and bool((fa == fb).all())


def _cli_shapes(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",") if s.strip()]


def run_through_cli(args) -> list[dict]:
    """``python infer.py stage=all`` as a user runs it, per shape: the reference path, the default in a fresh
    machine cache (compile paid), the default in a second process (compile cache reused); each process
    generates ``--cli-videos`` videos, so the last one of each is a warm video. Returns the rows."""
    import os
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    work = Path(args.cli_dir) if args.cli_dir else Path(tempfile.mkdtemp(prefix="ex4d_cli_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(root / "tools" / "sample_inputs.py"), "--out", str(work)], check=True,
                   cwd=root, capture_output=True)
    videos = work / "set"  # --cli-videos of the sample clips, long enough for the frame counts
    videos.mkdir(exist_ok=True)
    clips = [work / "videos" / "carphone_pristine.mp4", work / "videos" / "bikes.mp4"]
    for clip in clips[: args.cli_videos]:
        (videos / clip.name).write_bytes(clip.read_bytes())
    cache = work / "cache"  # EX4D_CACHE_DIR: fresh, so the first default run pays the compile
    if args.tiny:
        model = ["model=wan_tiny", "checkpoint=null", "renderer=cpu", "data.max_side=128", "data.multiple=16"]
        steps = 2
    else:
        model = ["model=wan_i2v_14b_random", "checkpoint=random"]
        steps = args.video_steps
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for H, W, T in _cli_shapes(args.cli_shapes):
        for name in args.cli_runs.split(","):
            label, extra = CLI_RUNS[name]
            out = work / "runs" / f"{H}x{W}x{T}_{name}"
            cmd = ["infer.py", "stage=all", *model, f"input={videos}", "depth=planes", f"data.num_frames={T}",
                   f"data.gen_height={H}", f"data.gen_width={W}", f"generate.num_steps={steps}",
                   *([f"windows.frames={T}"] if T > 49 else []), *extra, *args.cli_extra,
                   f"+output_dir={out}"]  # one window
            env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
            env["EX4D_CACHE_DIR"] = str(cache)
            print(f"[through-cli] {H}x{W}x{T} {name}: python {' '.join(cmd)}", flush=True)
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, *cmd], cwd=root, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if args.json:
                (args.json.parent / f"{H}x{W}x{T}_{name}.log").write_text(proc.stdout + proc.stderr)
            row = {"shape": f"{H}x{W}x{T}", "run": name, "label": label, "wall_s": wall,
                   "command": "python " + " ".join(c for c in cmd if not c.startswith(("+output_dir", "input="))),
                   "returncode": proc.returncode}
            if proc.returncode:
                row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                print(f"  FAILED ({proc.returncode}): {row['error']}", flush=True)
                rows.append(row)
                continue
            summary = json.loads((out / "summary.json").read_text())
            row["peak_gib"] = max((s.get("peak_gpu_memory_gib") or 0) for s in summary["stages"].values())
            row["stage_peaks_gib"] = {k: v.get("peak_gpu_memory_gib") for k, v in summary["stages"].items()}
            row["levers"] = summary.get("levers")
            row["videos"] = []
            for item in summary["items"]:
                d = out / item["id"]
                gen = json.loads((d / "generate.json").read_text())
                rec = json.loads((d / "recon_summary.json").read_text())
                row["videos"].append({"id": item["id"], "recon_s": rec["seconds"], "generate_s": gen["seconds"],
                                      "video_s": rec["seconds"] + gen["seconds"], "timings": gen["timings"]})

            def against(runs, compare):  # {video id: compare(this run's mp4, that run's)}, same seed and inputs
                other = next((r for r in rows if r["shape"] == row["shape"] and r["run"] in runs and "videos" in r),
                             None)
                theirs = work / "runs" / f"{H}x{W}x{T}_{other['run']}" if other else None
                return {v["id"]: compare(out / v["id"] / "output.mp4", theirs / v["id"] / "output.mp4")
                        for v in row["videos"] if theirs and (theirs / v["id"] / "output.mp4").is_file()}

            if name == "fp8":  # how far the inexact lever moves the output
                row["psnr_vs_exact_db"] = against(("cold", "second"), _frames_psnr)
            if name == "second":  # a compile cache must not change the output: same frames as the cold run
                row["same_frames_as_cold"] = against(("cold",), _frames_equal)
            row["first_video_s"] = row["videos"][0]["video_s"]
            row["warm_video_s"] = row["videos"][-1]["video_s"]
            print(f"  wall {wall:.1f} s; videos " + ", ".join(f"{v['video_s']:.1f} s" for v in row["videos"])
                  + f"; peak {row['peak_gib']:.1f} GiB", flush=True)
            rows.append(row)
            if args.json:  # after every run: a run cut short by a time limit keeps what it measured
                args.json.write_text(json.dumps({"rows": rows}, indent=2))
    return rows


def _peaks(r: dict) -> str:
    """Peak GPU memory of the process (the largest of its stages'), and of its generate stage when it has one
    (a one-file input; a set of inputs runs recon and generation as one stage)."""
    gen = (r.get("stage_peaks_gib") or {}).get("generate")
    return f"{r['peak_gib']:.1f}" + (f" (generate stage {gen:.1f})" if gen is not None else "")


def cli_table(rows: list[dict], device: str, calls: int = 1) -> str:
    """The markdown of the through-CLI rows (each beside the reference path of its shape: ratio); ``calls`` > 1:
    the rows were merged from that many runs on separate machines of the same kind (``row["call"]``). A warm
    video is the last of a process that made two; a one-video process has none."""
    def warm(r):
        return r["warm_video_s"] if len(r.get("videos", ())) > 1 else None

    def tag(r):
        return f" (call {r['call']})" if calls > 1 and "call" in r else ""

    ok = [r for r in rows if "warm_video_s" in r]
    ref = {r["shape"]: r for r in ok if r["run"] == "ref" and warm(r)}
    weights = "the tiny test model" if "tiny" in device else "random 14B weights of the real shapes, UMT5 included"
    lines = [f"Measured on **{device}** with `python tools/bench_generate.py --through-cli` "
             f"({time.strftime('%Y-%m-%d')}; {weights}; "
             "`depth=planes`, the sample clips). *video* = recon + generation of one video inside a run (text, "
             "CLIP, VAE, denoise, decode; the mp4 writing is not in it, the process wall is); *warm* = the second "
             "video of a process (a one-video process has none)."
             + (f" The rows come from {calls} calls, each on its own machine of this kind (`--cli-merge`): ratios "
                "between rows of different calls compare two machines." if calls > 1 else ""), "",
             "| shape | run | first video | warm video | share of the last video (text / CLIP / VAE enc / denoise / "
             "decode / recon) | process wall | peak GiB | warm video vs reference path |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "warm_video_s" not in r:
            lines.append(f"| {r['shape']} | {r['label']}{tag(r)} | failed: {' '.join(r.get('error', []))[:120]} "
                         "| | | | | |")
            continue
        v = r["videos"][-1]
        tm = v["timings"]
        parts = [tm.get("text_encode", 0), tm.get("image_encode", 0), tm.get("vae_encode", 0), tm.get("denoise", 0),
                 tm.get("vae_decode", 0), v["recon_s"]]
        share = " / ".join(f"{p:.1f}" for p in parts)
        base = ref.get(r["shape"])
        w = warm(r)
        ratio = f"x{warm(base) / w:.2f}" if base and w else "-"
        lines.append(f"| {r['shape']} | {r['label']}{tag(r)} | {r['first_video_s']:.1f} s | "
                     + (f"**{w:.1f} s**" if w else "-") + f" | {share} s | {r['wall_s']:.0f} s | "
                     f"{_peaks(r)} | {ratio} |")
    for shape in dict.fromkeys(r["shape"] for r in rows):
        warm_default = [r for r in ok if r["shape"] == shape and r["run"] in ("cold", "second") and warm(r)]
        for second in (r for r in ok if r["shape"] == shape and r["run"] == "second"):
            same = [r for r in warm_default if r.get("call") == second.get("call")] or warm_default
            if same:
                base = same[0]
                gap = second["first_video_s"] / warm(base) - 1
                lines.append(f"\n{shape}: a second process's first video{tag(second)} {second['first_video_s']:.1f} s "
                             f"vs a warm video{tag(base)} {warm(base):.1f} s ({gap:+.0%}; goal within 10%).")
        gpu = warm_default[:1]
        for name, goal in (("offload", 1.1), ("low_vram", 1.3)):
            for r in (r for r in ok if r["shape"] == shape and r["run"] == name and warm(r)):
                if gpu:
                    a, b = r["videos"][-1]["timings"]["denoise"], gpu[0]["videos"][-1]["timings"]["denoise"]
                    lines.append(f"\n{shape} `{name}`{tag(r)}: warm denoise {a:.1f} s vs {b:.1f} s resident (`gpu`"
                                 f"{tag(gpu[0])}, same 50 DiT forwards): x{a / b:.2f} per forward (goal <= {goal}x); "
                                 f"peak {_peaks(r)} GiB.")
    for r in rows:
        if r.get("psnr_vs_exact_db"):
            psnr = ", ".join(f"{k} {v:.1f} dB" for k, v in r["psnr_vs_exact_db"].items())
            lines.append(f"\n{r['shape']} fp8 (inexact){tag(r)}: mean per-frame PSNR of its output vs the exact "
                         f"default run's, same seed and inputs (both through the mp4 encoder): {psnr}.")
    levers = next((r["levers"] for r in rows if r.get("levers") and r["run"] not in ("ref", "fp8")), None)
    if levers:
        on = [k for k, v in levers.items() if isinstance(v, dict) and v.get("on") is True]
        merge = levers.get("build_seconds", {}).get("lora_merge")
        lines.append(f"\nDefault levers as summary.json reports them: {', '.join(on) or 'none (plain path)'}; "
                     f"memory_mode {levers['memory_mode']['mode']} ({levers['memory_mode']['why']})"
                     + (f"; LoRA merged in place in {merge:.2f} s." if merge is not None else "."))
    lines.append("\nCommands (output and input folders omitted): " + "; ".join(
        f"`{c}`" for c in dict.fromkeys(r["command"] for r in rows)))
    return "\n".join(lines)


def write_doc_table(doc: Path, table: str) -> None:
    """Replace the text between the through-CLI markers of ``doc`` (appended as a section if absent)."""
    text = doc.read_text() if doc.is_file() else ""
    block = f"{CLI_BEGIN}\n{table}\n{CLI_END}"
    if CLI_BEGIN in text and CLI_END in text:
        head, rest = text.split(CLI_BEGIN, 1)
        text = head + block + rest.split(CLI_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n### Through the user's command (`--through-cli`)\n\n" + block + "\n"
    doc.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--skip-forward", action="store_true", help="skip the single-forward benchmark")
    p.add_argument("--skip-generate", action="store_true", help="skip the full-generation benchmark")
    p.add_argument("--modes", default="gpu,offload,low_vram", help="memory modes for the full generation")
    p.add_argument("--steps", type=int, default=25, help="denoising steps in gpu mode (reference 25)")
    p.add_argument("--mode-steps", type=int, default=5, help="steps in offload/low_vram modes (peak memory and s/forward)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per forward (fewer at 480x832x81)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--fuse", action="store_true", help="fuse the LoRA for the full generation")
    p.add_argument("--compile", action="store_true", help="also time regional torch.compile of the DiT blocks")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--tiny", action="store_true", help="CPU dry run with the tiny random model")
    g = p.add_argument_group("levers (issue 6)")
    g.add_argument("--levers", action="store_true", help="print the levers table (instead of the sections above)")
    g.add_argument("--sections", default="video,forward,memory,big,inexact",
                   help="levers sections, in this priority order: video,forward,memory,big,inexact")
    g.add_argument("--lever-shapes", default="512x512x49,480x832x81",
                   help="HxWxT of the forward rows; the first gets every lever, the others the main ones")
    g.add_argument("--budget-s", type=float, default=480, help="wall seconds; later rows are listed as skipped")
    g.add_argument("--video-steps", type=int, default=25, help="steps of the video rows (reference 25)")
    g.add_argument("--lever-mode-steps", type=int, default=2, help="steps of the offload / low_vram rows")
    g.add_argument("--lever-reps", type=int, default=3, help="timed forwards per forward row")
    g.add_argument("--lever-warmup", type=int, default=1, help="untimed forwards per forward row (after the first)")
    g.add_argument("--fp8", default="rowwise", choices=["off", "rowwise", "tensorwise"], help="fp8_linears rows")
    g.add_argument("--fbc", type=float, default=0.1, help="first_block_cache threshold of its video row")
    g.add_argument("--cfg-truncate", type=float, default=0.8, help="cfg_truncate_after of its video row")
    g.add_argument("--compile-cache", type=Path, default=None,
                   help="GenerateSettings.compile_cache of the compiled video rows (torch.compile mega-cache file)")
    g.add_argument("--compile-estimate-s", type=float, default=45,
                   help="expected seconds of one block compile, for the budget decisions")
    c = p.add_argument_group("through the user's command (issue 14)")
    c.add_argument("--through-cli", action="store_true",
                   help="time `python infer.py stage=all` subprocesses (reference path vs default) and write the table")
    c.add_argument("--cli-shapes", default="512x512x49", help="HxWxT generation shapes, comma separated")
    c.add_argument("--cli-runs", default="ref,cold,second",
                   help="runs per shape, in order: ref, cold, second, fp8, offload, low_vram (CLI_RUNS)")
    c.add_argument("--cli-videos", type=int, default=2, choices=[1, 2], help="videos per process (the last is warm)")
    c.add_argument("--cli-extra", nargs="*", default=[],
                   help="overrides appended to every run (e.g. +model.transformer.num_layers=2 for a quick probe)")
    c.add_argument("--cli-dir", default=None, help="work folder (inputs, runs, the machine cache); default: a temp dir")
    c.add_argument("--doc", type=Path, default=None,
                   help="markdown file whose through-CLI table is replaced (e.g. docs/performance.md)")
    c.add_argument("--cli-merge", type=Path, nargs="+", default=None,
                   help="no run: rebuild the table from these --json files of earlier runs (in order)")
    args = p.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    if args.through_cli and args.cli_merge:  # runs split over several device calls: one table
        parts = [json.loads(f.read_text()) for f in args.cli_merge]
        rows = [{**r, "call": i} for i, part in enumerate(parts, 1) for r in part["rows"]]
        device = " / ".join(dict.fromkeys(part.get("device", "?") for part in parts))
        table = cli_table(rows, device, calls=len(parts))
        print(table)
        if args.doc:
            write_doc_table(args.doc, table)
        return
    if args.through_cli:
        rows = run_through_cli(args)
        device = "CPU, tiny random model (numbers meaningless)" if args.tiny else (
            torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU")
        table = cli_table(rows, device)
        print(table)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"device": device, "rows": rows}, indent=2))
        if args.doc:
            write_doc_table(args.doc, table)
        if any(r.get("returncode") for r in rows):
            sys.exit(1)
        return

    if args.levers:
        run_levers(args)
        return
    if args.tiny:
        tiny_dry_run()
        return
    if not torch.cuda.is_available():
        sys.exit("bench_generate.py needs a CUDA GPU (use --tiny for a CPU dry run)")
    device, dtype = torch.device("cuda"), torch.bfloat16
    name = torch.cuda.get_device_name(device)
    print(f"device: {name}, torch {torch.__version__}; RANDOM weights of the real shapes (timing only)")
    if "H100" not in name:
        print("  note: the reference figures were measured on an H100 80GB HBM3; compare on the same card")
    fwd_rows = [] if args.skip_forward else bench_forwards(args, device, dtype)
    gen_rows = [] if args.skip_generate else bench_generation(args, device, dtype)
    print_tables(fwd_rows, gen_rows, name)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "forward": fwd_rows,
                                         "generation": gen_rows}, indent=2))


def run_levers(args) -> None:
    """The issue-6 levers table on the GPU (14B shapes, random weights) or, with --tiny, on the CPU."""
    if args.tiny:  # code-path check only: tiny model, tiny shapes, numbers meaningless
        device, dtype, name = torch.device("cpu"), torch.float32, "CPU (tiny random model: numbers meaningless)"
        args.video_shape, args.lever_shapes = (32, 32, 5), "32x32x5,32x48x5"
        make_components, make_transformer = tiny_components, tiny_transformer
    else:
        if not torch.cuda.is_available():
            sys.exit("bench_generate.py --levers needs a CUDA GPU (add --tiny for a CPU dry run)")
        device, dtype = torch.device("cuda"), torch.bfloat16
        name = torch.cuda.get_device_name(device)
        args.video_shape = (512, 512, 49)
        make_components = lambda: random_components(device, dtype)  # noqa: E731
        make_transformer = lambda: random_transformer(device, dtype)  # noqa: E731
    H, W, T = args.video_shape
    args.video_tokens = ((T - 1) // 4 + 1) * (H // 16) * (W // 16)
    print(f"device: {name}, torch {torch.__version__}; RANDOM weights of the real shapes (timing only); "
          f"levers table, budget {args.budget_s:.0f} s", flush=True)
    table = bench_levers(args, device, dtype, make_components, make_transformer)
    print_lever_table(table, name, args.budget_s)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        clean = [{k: v for k, v in r.items()} for r in table]
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "levers": clean}, indent=2))


if __name__ == "__main__":
    main()
