"""Benchmark the DW-Mesh stage on the GPU: build_dwmesh + render (no depth model, no mp4), per frame.

What is timed, per size (frames x height x width), with CUDA events after warm-up, median of repeats:

* ``total``: ``build_dwmesh`` (fixed mode) + ``NvdiffrastRenderer.render`` (rasterize, interpolate,
  antialias, mask + colour, frame 0 replaced) on GPU-resident uint8 frames and float32 depth, all
  frames in one batch (``chunk = all``) and in chunks of 8 (``ReconPipeline``'s default);
* ``build`` and ``render`` alone;
* ``+io``: the same with the inputs copied from pinned host memory and uint8 colour + bool mask
  copied back (what a pipeline that writes videos pays on top).

Inputs: a realistic depth video on the EX-4D scale (smooth ground + wall field with two moving
foreground objects: real depth steps, hence real occlusion walls), textured colours, and the
reference ``90`` orbit (``ReferenceOrbit(90)``, as the reference demo renders).

The reference EX-4D loop (per-frame mesh build + nvdiffrast render, numbers from
../shared/docs/gpu.md, one H100 80GB HBM3) is printed next to ours.

Usage on the GPU host (bring diffrp-nvdiffrast, see ../shared/docs/gpu.md; the first call JIT-builds
nvdiffrast's plugin, ~30 s, not timed):

    python3 tools/bench_recon.py --out $OUT/bench_recon.json
    python3 tools/bench_recon.py --sizes 49x512x512 --repeats 10
    python3 tools/bench_recon.py --device cpu --renderer cpu --sizes 3x64x96 --repeats 1 --warmup 0  # CPU dry run
    python3 tools/bench_recon.py --device cpu --renderer cpu --static --sizes 49x384x512 --repeats 1 --warmup 0
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ex4d.cameras import intrinsics  # noqa: E402
from ex4d.cameras.trajectories import ReferenceOrbit  # noqa: E402
from ex4d.mesh import DWMesh, build_dwmesh  # noqa: E402
from ex4d.mesh.dwmesh import set_border  # noqa: E402
from ex4d.render import CpuRenderer, Renderer  # noqa: E402

# Reference loop, ms per frame (../shared/docs/gpu.md: H100 80GB HBM3, 2026-11-25).
REFERENCE_MS = {(49, 512, 512): 18.9, (49, 576, 1024): 41.8, (81, 480, 832): 18.8}
DEFAULT_SIZES = "49x512x512,49x576x1024,81x480x832"
TARGET_MS_512 = 2.0


def parse_size(text: str) -> tuple[int, int, int]:
    try:
        t, h, w = (int(x) for x in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"size must be FRAMESxHEIGHTxWIDTH, got {text!r}") from e
    return t, h, w


def synthetic_video(t: int, h: int, w: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(rgb (T, H, W, 3) uint8, depth (T, H, W) float32): smooth scene + two moving objects with real steps."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.linspace(0, 1, h, device=device)[:, None]
    u = torch.linspace(0, 1, w, device=device)[None, :]
    phase = torch.rand(4, generator=g).tolist()
    # Background: a ground plane getting nearer towards the bottom, a far wall above, gentle bumps.
    ground = 3.2 / (v.clamp_min(0.35) - 0.1)
    smooth = torch.minimum(ground, torch.full_like(ground, 14.0)) + 0.4 * torch.sin(6.0 * u + 6.28 * phase[0]) \
        * torch.cos(4.0 * v + 6.28 * phase[1])
    frames = []
    for i in range(t):
        s = i / max(t - 1, 1)
        d = smooth.expand(h, w).clone()
        # A box (z = 3.5) sliding right and a disc (z = 2.7) moving down: depth steps of 50-300%.
        cx = 0.15 + 0.4 * s
        box = (u > cx) & (u < cx + 0.22) & (v > 0.3) & (v < 0.75)
        d = torch.where(box, torch.full_like(d, 3.5), d)
        disc = (u - 0.72) ** 2 + ((v - 0.25 - 0.3 * s) * h / w) ** 2 < 0.012
        d = torch.where(disc, torch.full_like(d, 2.7) + 0.3 * (u - 0.72), d)
        frames.append(d)
    depth = torch.stack(frames).float()
    depth = depth * (10000.0 / 3900.0 / float(depth.min()))  # nearest point at 2.564 (EX-4D scale)
    tex = torch.stack([0.5 + 0.35 * torch.sin(40 * u + 7 * v), 0.5 + 0.35 * torch.cos(33 * v - 5 * u),
                       0.5 + 0.3 * torch.sin(17 * (u + v))], dim=-1).expand(h, w, 3)
    noise = torch.rand(t, h, w, 3, generator=g).to(device)
    rgb = ((tex[None] * 0.9 + 0.1 * noise).clamp(0, 1) * 255).round().to(torch.uint8)
    return rgb, depth


class Timer:
    """CUDA-event timer on a CUDA device, perf_counter elsewhere; returns milliseconds."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn) -> float:
        if self.cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            torch.cuda.synchronize()
            return start.elapsed_time(stop)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000.0


def median_ms(timer: Timer, fn, warmup: int, repeats: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        timer(fn)
    times = [timer(fn) for _ in range(repeats)]
    return statistics.median(times), times


def make_renderer(name: str, device: torch.device, antialias: bool) -> Renderer:
    if name == "cpu":
        return CpuRenderer()
    from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

    return NvdiffrastRenderer(antialias=antialias, device=str(device))


def bench_size(size, renderer: Renderer, device: torch.device, args) -> dict:
    t, h, w = size
    rgb, depth = synthetic_video(t, h, w, device)
    K = intrinsics(h, w)
    min_depth = float(set_border(depth[0], 100.0).min())
    w2c = ReferenceOrbit(90)(t, min_depth)
    timer = Timer(device)
    out: dict = {"frames": t, "height": h, "width": w, "reference_ms_per_frame": REFERENCE_MS.get(size)}

    static = [None]

    def run(chunk: int, with_io: bool = False):
        def fn():
            if isinstance(renderer, CpuRenderer):
                renderer._scene = None  # cold: each run pays for its BVH builds, as a new video would
            src_rgb, src_depth = (rgb_host, depth_host) if with_io else (rgb, depth)
            for s in range(0, t, chunk):
                e = min(t, s + chunk)
                r, d = src_rgb[s:e], src_depth[s:e]
                if with_io:
                    r, d = r.to(device, non_blocking=True), d.to(device, non_blocking=True)
                if args.static:  # one image: one mesh, expanded over the path (as ReconPipeline does)
                    if s == 0:
                        static[0] = build_dwmesh(r[:1], d[:1], K, mode=args.mode)
                    mesh = expand_mesh(static[0], e - s)
                else:
                    mesh = build_dwmesh(r, d, K, mode=args.mode)
                res = renderer.render(mesh, w2c[s:e], K, h, w, source_rgb=r[0] if s == 0 else None)
                if with_io:
                    (res.color * 255).round().to(torch.uint8).cpu()
                    res.mask.cpu()
        return fn

    rgb_host = rgb.cpu().pin_memory() if device.type == "cuda" else rgb.cpu()
    depth_host = depth.cpu().pin_memory() if device.type == "cuda" else depth.cpu()
    mesh_all = (expand_mesh(build_dwmesh(rgb[:1], depth[:1], K, mode=args.mode), t) if args.static
                else build_dwmesh(rgb, depth, K, mode=args.mode))
    out["invalid_face_fraction"] = float((~mesh_all.face_valid).float().mean())
    out["mask_coverage"] = float(renderer.render(mesh_all, w2c, K, h, w).mask.float().mean())
    del mesh_all

    chunks = {"all": t, "8": 8} if t > 8 else {"all": t}
    for label, chunk in chunks.items():
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        total, times = median_ms(timer, run(chunk), args.warmup, args.repeats)
        # torch allocator peak; nvdiffrast's rasteriser allocates its own buffers (~80 B per triangle
        # and frame) outside it, so the device-wide usage is recorded too.
        peak = torch.cuda.max_memory_allocated() / 1024**3 if device.type == "cuda" else None
        used = (lambda f, t: (t - f) / 1024**3)(*torch.cuda.mem_get_info(device)) if device.type == "cuda" else None
        io, _ = median_ms(timer, run(chunk, with_io=True), args.warmup, args.repeats)
        out[f"chunk_{label}"] = {"total_ms_per_frame": total / t, "total_ms": total, "all_total_ms": times,
                                 "with_io_ms_per_frame": io / t, "peak_gib": peak, "device_used_gib": used}
    # Breakdown (whole batch): build alone, render alone.
    src = (rgb[:1], depth[:1]) if args.static else (rgb, depth)
    build, _ = median_ms(timer, lambda: build_dwmesh(*src, K, mode=args.mode), args.warmup, args.repeats)
    mesh = build_dwmesh(*src, K, mode=args.mode)
    mesh = expand_mesh(mesh, t) if args.static else mesh
    render, _ = median_ms(timer, lambda: renderer.render(mesh, w2c, K, h, w, source_rgb=rgb[0]),
                          args.warmup, args.repeats)
    rast, _ = median_ms(timer, lambda: renderer.rasterize_rgba(mesh, w2c, K, h, w), args.warmup, args.repeats)
    out.update({"build_ms_per_frame": build / t, "render_ms_per_frame": render / t, "rasterize_ms_per_frame": rast / t})
    ref = out["reference_ms_per_frame"]
    out["speedup_vs_reference"] = ref / out["chunk_all"]["total_ms_per_frame"] if ref else None
    return out


def expand_mesh(mesh: DWMesh, n: int) -> DWMesh:
    """A batch of n views of one mesh (stride-0 expansion, no copy)."""
    return DWMesh(mesh.vertices.expand(n, -1, -1), mesh.faces, mesh.colors.expand(n, -1, -1),
                  mesh.face_valid.expand(n, -1), None if mesh.face_keep is None else mesh.face_keep.expand(n, -1),
                  mesh.height, mesh.width, mesh.mode)


def fmt(x, spec=".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"comma-separated FRAMESxHxW (default {DEFAULT_SIZES})")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--renderer", choices=["nvdiffrast", "cpu"], default="nvdiffrast")
    ap.add_argument("--mode", choices=["fixed", "parity", "torn"], default="fixed")
    ap.add_argument("--no-antialias", action="store_true", help="nvdiffrast without antialias (reference: on)")
    ap.add_argument("--static", action="store_true",
                    help="one image viewed along the path (one mesh, built once per run; the demo's case)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_recon: no CUDA device (use --device cpu --renderer cpu for a dry run)")

    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "renderer": args.renderer, "mode": args.mode, "antialias": not args.no_antialias, "static": args.static,
            "repeats": args.repeats, "warmup": args.warmup}
    if device.type == "cuda":
        info["card"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    renderer = make_renderer(args.renderer, device, antialias=not args.no_antialias)
    if args.renderer == "nvdiffrast":
        from ex4d.render.nvdiffrast_backend import load_nvdiffrast

        t0 = time.perf_counter()
        dr = load_nvdiffrast()  # JIT build / load of the plugin: not part of the timings
        info["nvdiffrast_load_s"] = round(time.perf_counter() - t0, 1)
        import nvdiffrast

        info["nvdiffrast"] = getattr(nvdiffrast, "__version__", "?")
        del dr
    print(f"bench_recon: {info}", flush=True)

    results = {"info": info, "sizes": {}}

    def write():
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))

    for size in sizes:
        key = "x".join(map(str, size))
        print(f"-- {key} ...", flush=True)
        try:
            results["sizes"][key] = bench_size(size, renderer, device, args)
        except Exception as e:  # record and go on (e.g. out of memory at one size)
            traceback.print_exc()
            results["sizes"][key] = {"error": f"{type(e).__name__}: {e}"}
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        write()

    card = info.get("card", str(device))
    print(f"\nDW-Mesh build + render, ms per frame ({card}, renderer {args.renderer}, mode {args.mode}, "
          f"antialias {not args.no_antialias}, {'static image' if args.static else 'video'}; "
          f"median of {args.repeats} after {args.warmup} warm-up)")
    head = ("| size | reference loop (H100) | ours, one batch | ours, chunks of 8 | + host I/O | build | render "
            "| speedup | peak GiB |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for key, r in results["sizes"].items():
        if "error" in r:
            print(f"| {key} | error: {r['error']} |")
            continue
        a, c8 = r["chunk_all"], r.get("chunk_8", {})
        print(f"| {key} | {fmt(r['reference_ms_per_frame'], '.1f')} | {fmt(a['total_ms_per_frame'])} "
              f"| {fmt(c8.get('total_ms_per_frame'))} | {fmt(a['with_io_ms_per_frame'])} "
              f"| {fmt(r['build_ms_per_frame'])} | {fmt(r['render_ms_per_frame'])} "
              f"| {fmt(r['speedup_vs_reference'], '.1f')}x | {fmt(a['peak_gib'])} |")
    r512 = results["sizes"].get("49x512x512", {})
    if "chunk_all" in r512:
        ms = r512["chunk_all"]["total_ms_per_frame"]
        verdict = "meets" if ms <= TARGET_MS_512 else "misses"
        print(f"\n49x512x512: {ms:.2f} ms/frame {verdict} the {TARGET_MS_512} ms/frame target")
        results["target_512_ms_per_frame"] = TARGET_MS_512
        results["meets_target_512"] = ms <= TARGET_MS_512
    write()
    if args.out is not None:
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
