"""Where one DiT forward spends its time on the GPU, and the fastest forward its kernels allow (issue 6).

RANDOM weights of the real 14B I2V shapes (speed does not depend on the values). Per shape:

1. the EX-4D forward with the exact levers (LoRA fused + regional compile, cuDNN-first SDPA), timed with CUDA
   events, and one forward under ``torch.profiler``: GPU kernel time grouped into attention, GEMM,
   convolution and the rest (inductor's fused norm / modulation / RoPE / GELU kernels, copies), with the
   TFLOP/s of the attention and GEMM groups against their FLOPs (tools/bench_train.flop_split);
2. the same kernels alone at the forward's shapes (SDPA on (1, 40, N, 128); F.linear at every linear's
   shape), which give a kernel-bound floor: linear FLOPs / GEMM rate + attention FLOPs / SDPA rate.
   A forward at these numerics cannot beat that floor without faster kernels;
3. optionally (``--max-autotune``) the forward with ``mode="max-autotune-no-cudagraphs"`` (inductor tries
   Triton GEMM templates against cuBLAS per shape);
4. optionally (``--fa4``) the forward with its self-attention calls on FlashAttention's CuTe-DSL kernel
   (``flash_attn.cute``, installed by hand: see tools/bench_attention.py), through a custom op so that
   regional compile keeps it opaque; the cross-attention calls stay on cuDNN (faster there). BENCHMARK ONLY:
   it patches ``F.scaled_dot_product_attention`` in this process.

Usage on the GPU host (wheels as in ../shared/docs/gpu.md):

    python3 tools/profile_dit.py --json $OUT/profile_dit.json
    python3 tools/profile_dit.py --shapes 512x512x49 --max-autotune
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

from bench_generate import dit_inputs, random_transformer, time_cuda  # noqa: E402
from bench_train import flop_split  # noqa: E402

from ex4d.model.adapter import LoraSettings, build_ex4d_transformer  # noqa: E402
from ex4d.pipelines.memory import efficient_attention  # noqa: E402

# Substrings of GPU kernel names, checked in this order (first match wins).
CATEGORIES = (
    ("attention", ("sdpa", "fmha", "flash", "attention", "attn")),
    ("gemm", ("gemm", "nvjet", "xmma", "cutlass", "cublas", "triton_tem_fused_mm", "_mm_", "matmul")),
    ("conv", ("conv", "implicit_convolve", "winograd")),
)


def kernel_category(name: str) -> str:
    low = name.lower()
    if low.startswith(("triton_poi", "triton_red", "triton_per")):  # inductor's fused pointwise / reductions
        return "other"  # (their names list the ops they fuse, e.g. "..._scaled_dot_product_cudnn_attention_...")
    for cat, keys in CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other"


def profile_kernels(fn) -> tuple[dict[str, float], list[tuple[str, float, int]]]:
    """Run ``fn()`` once under torch.profiler: GPU milliseconds per category and the top kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    per_cat: dict[str, float] = {}
    per_kernel: dict[str, list[float]] = {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        ms = e.time_range.elapsed_us() / 1000
        per_cat[kernel_category(e.name)] = per_cat.get(kernel_category(e.name), 0.0) + ms
        per_kernel.setdefault(e.name, []).append(ms)
    top = sorted(((k, sum(v), len(v)) for k, v in per_kernel.items()), key=lambda r: -r[1])[:12]
    return per_cat, top


def kernel_rates(tokens: int, d: int = 5120, ffn: int = 13824, heads: int = 40, ctx: int = 769) -> dict:
    """Seconds of the forward's attention and GEMM work when run as bare kernels (one block, x 40)."""
    dev, dt = torch.device("cuda"), torch.bfloat16
    n = tokens
    hd = d // heads
    q = torch.randn(1, heads, n, hd, device=dev, dtype=dt)
    kv_ctx = torch.randn(1, heads, 512, hd, device=dev, dtype=dt), torch.randn(1, heads, 257, hd, device=dev, dtype=dt)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def attention_block():
        sdpa(q, q, q)
        for k in kv_ctx:
            sdpa(q, k, k)

    with torch.no_grad(), efficient_attention(dev, "auto"):
        attn_s, _ = time_cuda(attention_block, warmup=3, reps=10)
    x = torch.randn(n, d, device=dev, dtype=dt)
    h = torch.randn(n, ffn, device=dev, dtype=dt)
    # nn.Linear weight layout (out, in), as the DiT's linears call them
    w_dd, w_up, w_down = (torch.randn(a, b, device=dev, dtype=dt) for a, b in ((d, d), (ffn, d), (d, ffn)))
    linear = torch.nn.functional.linear

    def linear_block():  # qkvo self + q, o cross (6 x d->d), FFN up and down
        for _ in range(6):
            linear(x, w_dd)
        linear(x, w_up)
        linear(h, w_down)

    with torch.no_grad():
        gemm_s, _ = time_cuda(linear_block, warmup=3, reps=10)
    split = flop_split(tokens)
    layers = 40
    return {"attention_s": attn_s * layers, "gemm_s": gemm_s * layers,
            "attention_tflops": split["attention"] / (attn_s * layers) / 1e12,
            "gemm_tflops": split["linear"] / (gemm_s * layers) / 1e12,
            "floor_s": (attn_s + gemm_s) * layers}


def use_fa4_for_self_attention() -> None:
    """Route SDPA calls whose queries and keys have the same length to flash_attn.cute (docstring, 4)."""
    import torch.nn.functional as F
    from flash_attn.cute.interface import flash_attn_func

    @torch.library.custom_op("ex4d_bench::fa4_attention", mutates_args=())
    def fa4_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))[0]  # (B, S, H, D)
        return out.transpose(1, 2)

    @fa4_attention.register_fake
    def _(q, k, v):
        b, h, s, d = q.shape
        return q.new_empty(b, s, h, d).transpose(1, 2)

    plain = F.scaled_dot_product_attention

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if (attn_mask is None and dropout_p == 0.0 and not is_causal and scale is None and not enable_gqa
                and query.is_cuda and query.dtype == torch.bfloat16 and query.shape[-2] == key.shape[-2]):
            return fa4_attention(query, key, value)
        return plain(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                     scale=scale, enable_gqa=enable_gqa)

    F.scaled_dot_product_attention = sdpa


def timed_forward(model, shape, reps: int) -> dict:
    """One compiled forward at ``shape``: the first call's wall seconds (compile), the median of ``reps`` timed
    calls, peak GiB, its output (fp32) and the call itself (for the profiler)."""
    tr = model.transformer
    x, t, text, img, geometry, tokens = dit_inputs(shape, tr.device, tr.dtype, dict(tr.config))

    def fwd():
        with torch.no_grad(), efficient_attention(tr.device, "auto"):
            return model(x, t, text, img, geometry=geometry)

    t0 = time.perf_counter()
    out = fwd().float()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    sec, peak = time_cuda(fwd, warmup=1, reps=reps)
    return {"label": "x".join(map(str, shape)), "tokens": tokens, "fwd": fwd, "out": out, "first_s": first,
            "seconds": sec, "peak_gib": peak}


def run_shape(model, shape, args) -> tuple[dict, torch.Tensor]:
    """The profile of one shape (printed) and the forward's output."""
    f = timed_forward(model, shape, args.reps)
    label, tokens, sec, first, peak = f["label"], f["tokens"], f["seconds"], f["first_s"], f["peak_gib"]
    split = flop_split(tokens)
    cats, top = profile_kernels(f["fwd"])
    rates = kernel_rates(tokens)
    gpu_ms = sum(cats.values())
    row = {"shape": label, "tokens": tokens, "forward_s": sec, "first_call_s": first, "peak_gib": peak,
           "tflops": split["forward"] / sec / 1e12, "kernel_ms": cats, "kernel_ms_total": gpu_ms,
           "top_kernels": [{"name": n[:120], "ms": ms, "calls": c} for n, ms, c in top],
           "flops": split, "bare_kernels": rates}
    print(f"\n### {label} ({tokens:,} tokens): forward {sec:.3f} s ({row['tflops']:.0f} TFLOP/s), "
          f"first call {first:.0f} s, peak {peak:.1f} GiB\n")
    print("| kernels | ms in one forward | share | TFLOP/s on their FLOPs | bare kernels alone, s (TFLOP/s) |")
    print("|---|---|---|---|---|")
    for cat in ("attention", "gemm", "conv", "other"):
        ms = cats.get(cat, 0.0)
        fl = split["attention"] if cat == "attention" else split["linear"] if cat == "gemm" else None
        rate = f"{fl / (ms / 1000) / 1e12:.0f}" if fl and ms else ""
        bare = (f"{rates['attention_s']:.3f} ({rates['attention_tflops']:.0f})" if cat == "attention" else
                f"{rates['gemm_s']:.3f} ({rates['gemm_tflops']:.0f})" if cat == "gemm" else "")
        print(f"| {cat} | {ms:.1f} | {ms / gpu_ms:.1%} | {rate} | {bare} |")
    print(f"| all GPU kernels | {gpu_ms:.1f} | | {split['forward'] / (gpu_ms / 1000) / 1e12:.0f} | "
          f"floor {rates['floor_s']:.3f} s |")
    print("\ntop kernels:")
    for n, ms, c in top:
        print(f"  {ms:8.1f} ms  x{c:<4d} [{kernel_category(n)}] {n[:110]}")
    return row, f["out"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="512x512x49,480x832x81", help="HxWxT list")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--max-autotune", action="store_true",
                   help="also time the forward compiled with mode=max-autotune-no-cudagraphs (slow compile)")
    p.add_argument("--fa4", action="store_true", help="also time the forward with FA4 (flash_attn.cute) self-attention")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("profile_dit.py needs a CUDA GPU")
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",") if s]
    name = torch.cuda.get_device_name()
    print(f"device: {name}, torch {torch.__version__}; RANDOM weights of the real 14B shapes (timing only)")
    tr = random_transformer(torch.device("cuda"), torch.bfloat16)
    model = build_ex4d_transformer(tr, LoraSettings(rank=16, alpha=16))
    model.merge_lora(keep_base=False)  # exact lever fuse_lora
    tr.compile_repeated_blocks(fullgraph=True, dynamic=False)  # exact lever compile_blocks
    profiled = [run_shape(model, s, args) for s in shapes]
    results = [row for row, _ in profiled]
    fa4 = []
    if args.fa4:
        use_fa4_for_self_attention()
        torch._dynamo.reset()
        for s, (base, ref) in zip(shapes, profiled):
            f = timed_forward(model, s, args.reps)
            cats, _ = profile_kernels(f["fwd"])
            out = f["out"]
            fa4.append({"shape": f["label"], "forward_s": f["seconds"], "cudnn_forward_s": base["forward_s"],
                        "first_call_s": f["first_s"], "peak_gib": f["peak_gib"], "kernel_ms": cats,
                        "max_abs_delta": (out - ref).abs().max().item(),
                        "rel_l2_delta": ((out - ref).norm() / ref.norm()).item()})
            r = fa4[-1]
            print(f"\nFA4 (flash_attn.cute) self-attention {r['shape']}: {r['forward_s']:.3f} s per forward "
                  f"(cuDNN {r['cudnn_forward_s']:.3f} s), attention kernels {cats.get('attention', 0):.1f} ms, "
                  f"max|d| {r['max_abs_delta']:.3g} (rel L2 {r['rel_l2_delta']:.2e}) vs the cuDNN forward; "
                  f"peak {r['peak_gib']:.1f} GiB")
    autotune = []
    if args.max_autotune:
        torch._dynamo.reset()
        for blk in tr.blocks:  # drop the default-mode compile, compile again with autotuning
            blk._compiled_call_impl = None
        tr.compile_repeated_blocks(fullgraph=True, dynamic=False, mode="max-autotune-no-cudagraphs")
        for s, base in zip(shapes, results):
            f = timed_forward(model, s, args.reps)
            autotune.append({"shape": f["label"], "forward_s": f["seconds"], "first_call_s": f["first_s"],
                             "default_mode_s": base["forward_s"]})
            print(f"\nmax-autotune-no-cudagraphs {f['label']}: {f['seconds']:.3f} s per forward "
                  f"(default mode {base['forward_s']:.3f} s; compile {f['first_s']:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "shapes": results,
                                         "fa4": fa4, "max_autotune": autotune}, indent=2))


if __name__ == "__main__":
    main()
