"""What a new process pays for the DiT's compiled blocks when the compile cache is warm (issue 14, point 3).

The generator compiles the DiT blocks regionally (``compile_repeated_blocks``: one ``torch.compile`` per block
module) and keeps inductor's and AOT's artefacts per machine, so a second process does not recompile; it still
traces the block with dynamo in its first call. torch's experimental *caching precompile*
(``torch._dynamo.config.caching_precompile``) also keeps dynamo's traced bytecode and guards. This measures
both, per number of blocks, in fresh processes over one fresh cache folder each:

* ``build``: seconds of ``compile_repeated_blocks`` (a saved dynamo package is loaded here),
* ``first``: seconds of the first forward (tracing, cache loads), ``warm``: the second forward,
* whether the second process's output equals the first's bit for bit, and dynamo's counters,

for two ways of compiling the blocks: ``per-block`` (diffusers' ``compile_repeated_blocks``, what the generator
does: a compiled wrapper per block module) and ``shared`` (one ``torch.compile`` of the block class's forward,
bound to every block: one dynamo package for all of them).

CPU by default (the tiny test model's block, a few seconds per variant); ``--real`` uses the 14B block widths
and the 512x512x49 latents on CUDA with random weights (BENCHMARK ONLY).

    python tools/bench_compile_warmup.py --layers 2,10 --json /tmp/warmup.json
    python3 tools/bench_compile_warmup.py --real --layers 2,40 --json $OUT/compile_warmup.json   # GPU host
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args) -> None:
    """One process: build, (load the mega-cache file,) two forwards, (save the file); one JSON line out."""
    import torch
    from torch._dynamo.utils import compilation_time_metrics, counters

    sys.path.insert(0, str(ROOT))
    from ex4d.model.wan import TINY_TRANSFORMER_CONFIG, WAN_I2V_14B_TRANSFORMER_CONFIG, random_wan_transformer

    torch._dynamo.config.caching_precompile = args.precompile
    device = torch.device("cuda" if args.real else "cpu")
    dtype = torch.bfloat16 if args.real else torch.float32
    config = {**(WAN_I2V_14B_TRANSFORMER_CONFIG if args.real else TINY_TRANSFORMER_CONFIG),
              "num_layers": args.child_layers}
    tr = random_wan_transformer(device, dtype, seed=0, config=config).eval().requires_grad_(False)
    f, h, w = (13, 64, 64) if args.real else (3, 8, 8)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(1, 36, f, h, w, device=device, dtype=dtype, generator=g)
    text = torch.randn(1, 512 if args.real else 8, config["text_dim"], device=device, dtype=dtype, generator=g)
    img = torch.randn(1, 257 if args.real else 5, config["image_dim"], device=device, dtype=dtype, generator=g)
    t = torch.tensor([500.0], device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def forward():
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = tr(x, t, text, encoder_hidden_states_image=img, return_dict=False)[0]
        sync()
        return out, time.perf_counter() - t0

    t0 = time.perf_counter()
    if args.how == "shared":
        import types

        block_forward = torch.compile(type(tr.blocks[0]).forward, fullgraph=True, dynamic=False)
        for block in tr.blocks:
            block.forward = types.MethodType(block_forward, block)
    else:
        tr.compile_repeated_blocks(fullgraph=True, dynamic=False)
    build = time.perf_counter() - t0
    mega = Path(args.cache) / "mega.bin"
    loaded = mega.is_file()
    if loaded:  # as the generator does before a variant's first call
        torch.compiler.load_cache_artifacts(mega.read_bytes())
    out, first = forward()
    _, warm = forward()
    if not loaded:
        mega.write_bytes(torch.compiler.save_cache_artifacts()[0])
    ref = Path(args.cache) / "out.pt"
    same = None
    if ref.is_file():
        same = bool(torch.equal(torch.load(ref), out.cpu()))
    else:
        torch.save(out.cpu(), ref)
    metrics = {k: round(sum(v), 3) for k, v in compilation_time_metrics.items()
               if k in ("bytecode_tracing", "OutputGraph.call_user_compiler", "after_deserialization",
                        "precompile_load_guards", "precompile_build_guards", "build_guards", "_compile.compile_inner")}
    print("RESULT " + json.dumps({"build_s": build, "first_s": first, "warm_s": warm, "same_as_first_process": same,
                                  "counters": {k: dict(v) for k, v in counters.items() if k in
                                               ("stats", "dynamo_cache", "aot_autograd")},
                                  "compile_seconds": metrics}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", default="2,10", help="numbers of DiT blocks, comma separated")
    p.add_argument("--how", default="per-block,shared", help="per-block and/or shared (see above), comma separated")
    p.add_argument("--real", action="store_true", help="14B block widths, 512x512x49 latents, bf16 on CUDA")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child-layers", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    p.add_argument("--precompile", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-how", dest="how_one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_layers:
        args.how = args.how_one
        return child(args)

    rows = []
    for layers, how, precompile in itertools.product([int(v) for v in args.layers.split(",")],
                                                     [v.strip() for v in args.how.split(",")], (False, True)):
        cache = tempfile.mkdtemp(prefix="ex4d_warmup_")
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(Path(cache) / "inductor"),
               "TRITON_CACHE_DIR": str(Path(cache) / "triton")}
        for process in ("first", "second"):
            cmd = [sys.executable, __file__, "--child-layers", str(layers), "--child-how", how, "--cache", cache,
                   *(["--real"] if args.real else []), *(["--precompile"] if precompile else [])]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            row = {"layers": layers, "how": how, "caching_precompile": precompile, "process": process}
            if line is None:
                row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            else:
                row.update(json.loads(line.removeprefix("RESULT ")))
            rows.append(row)
            print(f"layers {layers:3d} {how:9} precompile {precompile!s:5} {process:6}: " + (
                f"build {row['build_s']:6.2f} s  first forward {row['first_s']:6.2f} s  warm {row['warm_s']:.3f} s"
                f"  same output {row['same_as_first_process']}" if "build_s" in row else f"FAILED {row['error']}"),
                flush=True)
    if args.json:
        import torch

        args.json.parent.mkdir(parents=True, exist_ok=True)
        device = torch.cuda.get_device_name() if args.real else "cpu"
        args.json.write_text(json.dumps({"device": device, "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
