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

Usage on the GPU host (torch 2.11, no diffusers installed: bring the wheels, see ../shared/docs/gpu.md):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
    python3 tools/bench_generate.py                       # everything, about 6 minutes on one H100
    python3 tools/bench_generate.py --skip-generate       # DiT forwards only
    python3 tools/bench_generate.py --modes gpu --steps 25 --json $OUT/bench.json
    python3 tools/bench_generate.py --tiny                # CPU dry run of the code path (tiny model)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ex4d.model.adapter import LoraSettings, build_ex4d_transformer, lora_modules  # noqa: E402
from ex4d.model.wan import (  # noqa: E402
    CLIP_VIT_H14_CONFIG,
    WAN_I2V_14B_TRANSFORMER_CONFIG,
    WAN_VAE_CONFIG,
    WanComponents,
    _clip_image_processor_cls,
    apply_keep_in_fp32,
    build_tiny_wan,
    build_wan_transformer_meta,
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


@torch.no_grad()
def random_init_(module: torch.nn.Module, seed: int = 0) -> None:
    """Cheap in-place init of materialised (to_empty) parameters; values only need to be finite and sane."""
    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    for name, p in module.named_parameters():
        if p.ndim >= 2 and "scale_shift_table" not in name:
            fan_in = p[0].numel()
            p.normal_(0.0, fan_in**-0.5, generator=g)
        elif "scale_shift_table" in name:
            p.normal_(0.0, p.shape[-1] ** -0.5, generator=g)
        elif name.endswith("weight"):  # norms
            p.fill_(1.0)
        else:
            p.zero_()


def random_transformer(device: torch.device, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """The 14B I2V DiT with random weights, built without ever holding fp32 weights."""
    t0 = time.perf_counter()
    model = build_wan_transformer_meta()
    model.to(dtype)  # meta: free
    model.to_empty(device=device)
    # fp32 norms / modulation / time embedder as from_pretrained(torch_dtype=bf16) leaves them, and the rotary
    # tables (non-persistent buffers, garbage after to_empty) rebuilt
    apply_keep_in_fp32(model)
    random_init_(model, seed)
    model.eval().requires_grad_(False)
    print(f"  random 14B DiT on {device} in {time.perf_counter() - t0:.1f} s "
          f"({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params)")
    return model


def random_components(device: torch.device, dtype: torch.dtype) -> WanComponents:
    from diffusers import AutoencoderKLWan
    from transformers import CLIPVisionConfig, CLIPVisionModel

    transformer = random_transformer(device, dtype)
    with torch.device(device):
        vae = AutoencoderKLWan(**WAN_VAE_CONFIG).to(dtype)
        image_encoder = CLIPVisionModel(CLIPVisionConfig(**CLIP_VIT_H14_CONFIG)).to(dtype)
    proc = _clip_image_processor_cls()(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    return WanComponents(transformer, vae, None, None, image_encoder, proc, is_tiny=False,
                         source="random real-shape weights (benchmark only)").freeze()


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
        settings = GenerateSettings(num_steps=steps, progress=False)
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
        gen = EX4DGenerator(comps, model, GenerateSettings(num_steps=2, progress=False), device="cpu", memory_mode=mode)
        out = gen(colour, mask, prompt_embeds=pos, negative_prompt_embeds=neg)
        print(f"  tiny {mode}: {tuple(out.shape)} stages {gen.last_timings}")
    print(f"  FLOPs of one 14B forward at 13,312 tokens: {dit_flops(13312) / 1e12:.1f} TFLOP")


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
    args = p.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]

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


if __name__ == "__main__":
    main()
