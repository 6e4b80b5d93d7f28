"""Attention kernels at the DiT's shapes (issue 6): which is fastest on this card, and how far apart are they.

Times one attention call of the 14B DiT (40 heads x 128, bf16, no mask) per kernel and shape:
self-attention at 13,312 tokens (512x512x49) and 32,760 tokens (480x832x81), and the cross-attention to the
512 text / 257 CLIP tokens. Kernels: PyTorch SDPA restricted to cuDNN, flash (FA2) or memory-efficient
attention, and, where importable, FlashAttention's CuTe-DSL kernels (``flash_attn.cute``, "FA4", which has a
Hopper path) and FlashAttention-3 (``flash_attn_interface``). Each row: ms per call (torch.utils.benchmark,
median), TFLOP/s (4 B H Nq Nk D), and the max abs / relative L2 difference of the output from cuDNN's.

    python3 tools/bench_attention.py --json $OUT/bench_attention.json
    # FlashAttention's CuTe-DSL kernels without a flash-attn build (what docs/performance.md measured), on top
    # of the project's wheels (bash tools/gpu_host.sh attention installs those):
    pip install --no-deps --target /tmp/fa4 nvidia_cutlass_dsl-4.1.0-cp312-*.whl   # needs cuda-python 12.x
    PYTHONPATH=/tmp/fa4/nvidia_cutlass_dsl/python_packages:<dir holding flash_attn/cute of flash-attn 2.8.3.post1>:$PYTHONPATH \
        python3 tools/bench_attention.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ex4d.pipelines.memory import efficient_attention  # noqa: E402

HEADS, HEAD_DIM = 40, 128
SHAPES = {"self 512x512x49": (13312, 13312), "self 480x832x81": (32760, 32760),
          "cross text 512x512x49": (13312, 512), "cross image 512x512x49": (13312, 257)}


def sdpa_kernel(backend: str):
    """SDPA restricted to one backend (the generator's ``attention_backend`` context)."""
    device = torch.device("cuda")

    def run(q, k, v):  # (B, S, H, D) in, (B, S, H, D) out, as the FlashAttention APIs
        with efficient_attention(device, backend):
            return torch.nn.functional.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

    return run


def optional_kernels() -> dict:
    found = {}
    try:
        from flash_attn.cute.interface import flash_attn_func as fa_cute

        found["flash_attn.cute (FA4 DSL)"] = lambda q, k, v: fa_cute(q, k, v)[0]
    except Exception as e:  # noqa: BLE001  (absent or broken install: report and go on)
        print(f"  flash_attn.cute not usable: {type(e).__name__}: {str(e)[:200]}")
    try:
        from flash_attn_interface import flash_attn_func as fa3

        found["flash_attn_interface (FA3)"] = lambda q, k, v: fa3(q, k, v)[0]
    except Exception as e:  # noqa: BLE001
        print(f"  flash_attn_interface (FA3) not usable: {type(e).__name__}: {str(e)[:200]}")
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_attention.py needs a CUDA GPU")
    name = torch.cuda.get_device_name()
    print(f"device: {name}, torch {torch.__version__}")
    kernels = {f"SDPA {b}": sdpa_kernel(b) for b in ("cudnn", "flash", "efficient")}
    kernels.update(optional_kernels())
    rows = []
    g = torch.Generator(device="cuda").manual_seed(0)
    for shape, (nq, nk) in SHAPES.items():
        q = torch.randn(1, nq, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=g)
        k, v = (torch.randn(1, nk, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=g) for _ in "kv")
        flops = 4 * HEADS * nq * nk * HEAD_DIM
        ref = None
        for label, fn in kernels.items():
            try:
                with torch.no_grad():
                    out = fn(q, k, v).float()
                    fn(q, k, v)  # warm-up (DSL kernels compile on their first call)
                    sec = Timer("fn(q, k, v)", globals={"fn": fn, "q": q, "k": k, "v": v}).timeit(args.reps).median
            except Exception as e:  # noqa: BLE001  (a kernel that cannot run this shape)
                rows.append({"shape": shape, "kernel": label, "error": f"{type(e).__name__}: {str(e)[:160]}"})
                print(f"  {shape:<24} {label:<28} FAILED {rows[-1]['error']}", flush=True)
                continue
            if ref is None:
                ref = out
            d = (out - ref).abs().max().item()
            rel = ((out - ref).norm() / ref.norm()).item()
            rows.append({"shape": shape, "kernel": label, "ms": sec * 1e3, "tflops": flops / sec / 1e12,
                         "max_abs_diff_vs_first": d, "rel_l2_vs_first": rel})
            print(f"  {shape:<24} {label:<28} {sec * 1e3:8.2f} ms  {flops / sec / 1e12:5.0f} TFLOP/s  "
                  f"max|d| {d:.2e}  rel {rel:.1e}", flush=True)
    print("\n| shape | kernel | ms | TFLOP/s | max abs diff vs cuDNN (rel L2) |\n|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['shape']} | {r['kernel']} | failed: {r['error'][:80]} | | |")
        else:
            print(f"| {r['shape']} | {r['kernel']} | {r['ms']:.2f} | {r['tflops']:.0f} | "
                  f"{r['max_abs_diff_vs_first']:.1e} ({r['rel_l2_vs_first']:.1e}) |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
