"""Fetch the model weights EX-4D uses, with huggingface_hub, into one folder (default ``$EX4D_WEIGHTS`` or ./weights).

    python tools/download_weights.py wan_i2v_14b_480p            # Wan2.1-I2V-14B-480P, diffusers format
    python tools/download_weights.py wan_i2v_14b_480p --native   # + the native Wan release (DiT shards, VAE)
    python tools/download_weights.py ex4d                        # the released adapter: EX-4D/ex4d.ckpt
    python tools/download_weights.py depthcrafter depth_anything
    python tools/download_weights.py all --local-dir /data/weights
    python tools/download_weights.py all --dry-run               # print what would be fetched, touch nothing

Layout under --local-dir (what the configs expect with ``paths.weights_dir=<local-dir>``):

    Wan2.1-I2V-14B-480P-Diffusers/   transformer/ vae/ text_encoder/ tokenizer/ image_encoder/ image_processor/
    Wan2.1-I2V-14B-480P/             (--native) diffusion_pytorch_model-0000{1..7}-of-00007.safetensors, Wan2.1_VAE.pth
    EX-4D/ex4d.ckpt
    DepthCrafter/                    unet/
    stable-video-diffusion-img2vid/  vae/ image_encoder/ feature_extractor/ scheduler/ (DepthCrafter's base)
    Depth-Anything-V2-Large-hf/

Gated or rate-limited repos read the token from ``HF_TOKEN`` / ``huggingface-cli login``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Fetch:
    repo_id: str
    folder: str  # sub-folder of --local-dir
    allow_patterns: tuple[str, ...] | None = None  # None = the whole repo
    note: str = ""


DEPTH_ANYTHING = {
    "small": "depth-anything/Depth-Anything-V2-Small-hf",
    "base": "depth-anything/Depth-Anything-V2-Base-hf",
    "large": "depth-anything/Depth-Anything-V2-Large-hf",
}


def plan(what: list[str], native: bool = False, depth_anything_size: str = "large") -> list[Fetch]:
    """The downloads for the requested items (no network)."""
    items = ["wan_i2v_14b_480p", "ex4d", "depthcrafter", "depth_anything"] if "all" in what else what
    out: list[Fetch] = []
    for item in items:
        if item == "wan_i2v_14b_480p":
            out.append(Fetch("Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "Wan2.1-I2V-14B-480P-Diffusers",
                             note="backbone, diffusers format (DiT, VAE, UMT5, CLIP)"))
            if native:
                out.append(Fetch(
                    "Wan-AI/Wan2.1-I2V-14B-480P", "Wan2.1-I2V-14B-480P",
                    ("diffusion_pytorch_model-*.safetensors", "diffusion_pytorch_model.safetensors.index.json",
                     "Wan2.1_VAE.pth", "config.json"),
                    note="native Wan DiT shards + VAE (model.transformer_files / model.vae_file)",
                ))
        elif item == "ex4d":
            out.append(Fetch("yihouxiang/EX-4D", "EX-4D", ("ex4d.ckpt",), note="released EX-4D adapter"))
        elif item == "depthcrafter":
            out.append(Fetch("tencent/DepthCrafter", "DepthCrafter", note="DepthCrafter UNet"))
            out.append(Fetch(
                "stabilityai/stable-video-diffusion-img2vid", "stable-video-diffusion-img2vid",
                ("model_index.json", "feature_extractor/*", "image_encoder/*", "scheduler/*", "vae/*", "unet/config.json"),
                note="SVD components DepthCrafter runs on (its UNet is replaced, so not fetched)",
            ))
        elif item == "depth_anything":
            repo = DEPTH_ANYTHING[depth_anything_size]
            out.append(Fetch(repo, repo.split("/")[1], note=f"Depth-Anything-V2 {depth_anything_size} (transformers)"))
        else:
            raise SystemExit(f"unknown item {item!r}; choose from wan_i2v_14b_480p, ex4d, depthcrafter, depth_anything, all")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("what", nargs="+", choices=["wan_i2v_14b_480p", "ex4d", "depthcrafter", "depth_anything", "all"])
    p.add_argument("--local-dir", type=Path, default=Path(os.environ.get("EX4D_WEIGHTS", "weights")),
                   help="destination folder (default: $EX4D_WEIGHTS or ./weights)")
    p.add_argument("--native", action="store_true", help="also fetch the native Wan release files")
    p.add_argument("--depth-anything-size", choices=sorted(DEPTH_ANYTHING), default="large")
    p.add_argument("--revision", default=None, help="git revision for every repo (default: main)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = p.parse_args(argv)

    fetches = plan(args.what, args.native, args.depth_anything_size)
    for f in fetches:
        pats = ", ".join(f.allow_patterns) if f.allow_patterns else "all files"
        print(f"{f.repo_id} -> {args.local_dir / f.folder}  [{pats}]  {f.note}")
    if args.dry_run:
        return 0

    from huggingface_hub import snapshot_download

    for f in fetches:
        dest = args.local_dir / f.folder
        path = snapshot_download(
            f.repo_id,
            local_dir=str(dest),
            allow_patterns=list(f.allow_patterns) if f.allow_patterns else None,
            revision=args.revision,
        )
        print(f"done: {path}")
    print(f"\nweights in {args.local_dir}; run with paths.weights_dir={args.local_dir.resolve()} "
          f"(or export EX4D_WEIGHTS={args.local_dir.resolve()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
