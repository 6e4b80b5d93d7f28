"""UMT5-XXL in `gpu` mode: resident vs streamed block by block (the ``stream_text_encoder`` lever), on the GPU.

Random weights of the real UMT5-XXL shape (5.7 B parameters, 10.6 GiB in bf16), one prompt pair's worth of
input (2 x 512 tokens, as ``encode_prompt`` runs with CFG). Per variant: seconds of the first call (what a
process pays for its first prompt) and the median of the next calls, the device peak above the resident
weights, and whether the output equals the resident model's bit for bit. Also the host-to-device copy rate
from pinned and pageable memory, the floor of any streaming.

    python3 tools/bench_text_encoder.py --json $OUT/bench_text_encoder.json
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
from ex4d.model.wan import random_umt5_encoder  # noqa: E402
from ex4d.pipelines.memory import _pin_module, stream_blocks, unstream_blocks  # noqa: E402

GIB = 2**30


def _timed(fn, reps: int) -> tuple[float, float, torch.Tensor]:
    """(first call s, median of the next ``reps`` s, output)."""
    times, out = [], None
    for _ in range(reps + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:]), out


def copy_rate(nbytes: int, pinned: bool) -> float:
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
    dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dev.copy_(host, non_blocking=pinned)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(3):
        dev.copy_(host, non_blocking=pinned)
    torch.cuda.synchronize()
    return 3 * nbytes / (time.perf_counter() - t0) / 1e9


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_text_encoder.py needs a CUDA GPU")
    cuda = torch.device("cuda")
    name = torch.cuda.get_device_name()
    rows = []
    print(f"device: {name}, torch {torch.__version__}; random UMT5-XXL weights (timing only)", flush=True)
    rates = {"pinned_GBps": copy_rate(2 * GIB, True), "pageable_GBps": copy_rate(2 * GIB, False)}
    print(f"host->device copy, 2 GiB: pinned {rates['pinned_GBps']:.1f} GB/s, pageable {rates['pageable_GBps']:.1f} GB/s")

    te = random_umt5_encoder(cuda, torch.bfloat16, seed=1).eval()
    size = sum(t.numel() * t.element_size() for t in te.parameters())
    g = torch.Generator(cuda).manual_seed(0)
    ids = torch.randint(0, 32000, (2, 512), device=cuda, generator=g)
    mask = torch.zeros_like(ids)
    mask[:, :40] = 1  # a short prompt, zero padded to 512 as encode_prompt does

    def run():
        return te(ids, mask).last_hidden_state

    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    first, warm, ref = _timed(run, args.reps)
    rows.append({"variant": "resident", "first_s": first, "warm_s": warm,
                 "peak_over_base_gib": (torch.cuda.max_memory_allocated() - base) / GIB, "resident_gib": size / GIB,
                 "bit_exact": True})
    ref = ref.clone()

    t0 = time.perf_counter()
    _pin_module(te)  # to pinned CPU memory, as ModelPlacement does for a streamed model
    pin_s = time.perf_counter() - t0
    torch.cuda.empty_cache()
    print(f"pinned the model ({size / GIB:.1f} GiB) in {pin_s:.1f} s", flush=True)

    hosts = [(t, t.data) for t in te.parameters()]

    def whole_move():  # the offload modes' stage: the whole model in by DMA, run, re-pointed back
        for t, h in hosts:
            t.data = h.to(cuda, non_blocking=True)
        out = run()
        for t, h in hosts:
            t.data = h
        return out

    for label, fn, setup in (
        ("whole model moved in per call (offload stage)", whole_move, None),
        ("streamed: diffusers group offload, CUDA stream", run, dict(use_stream=True)),
        ("streamed: CUDA stream + record_stream", run, dict(use_stream=True, record_stream=True)),
        ("streamed: no stream (blocking copies)", run, dict(use_stream=False)),
    ):
        if setup is not None:
            stream_blocks(te, cuda, **setup)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        first, warm, out = _timed(fn, args.reps)
        row = {"variant": label, "first_s": first, "warm_s": warm,
               "peak_over_base_gib": (torch.cuda.max_memory_allocated() - base) / GIB, "resident_gib": 0.0,
               "bit_exact": bool(torch.equal(out, ref))}
        rows.append(row)
        print(f"  {label:<50} first {first:.2f} s, then {warm:.2f} s; peak +{row['peak_over_base_gib']:.2f} GiB; "
              f"bit-exact {row['bit_exact']}", flush=True)
        if setup is not None:
            unstream_blocks(te)

    print(f"\n| variant | first call | later calls | device peak above the other models | bit-exact |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['first_s']:.2f} s | {r['warm_s']:.2f} s | "
              f"{r['peak_over_base_gib'] + r['resident_gib']:.1f} GiB | {'yes' if r['bit_exact'] else 'NO'} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "copy": rates,
                                         "pin_seconds": pin_s, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
