"""Fetch the model weights EX-4D uses, with huggingface_hub, into one folder (default ``$EX4D_WEIGHTS`` or ./weights).

    python tools/download_weights.py wan_i2v_14b_480p            # Wan2.1-I2V-14B-480P, diffusers format
    python tools/download_weights.py wan_i2v_14b_480p --native   # + the native Wan release (DiT shards, VAE)
    python tools/download_weights.py ex4d                        # the released adapter: EX-4D/ex4d.ckpt
    python tools/download_weights.py depthcrafter depth_anything
    python tools/download_weights.py all --local-dir /data/weights
    python tools/download_weights.py metrics                     # evaluation metric files (FID, FVD, VBench, LPIPS)
    python tools/download_weights.py --metrics --metric-keys fid_inception,i3d_styleganv
    python tools/download_weights.py all --dry-run               # print what would be fetched, touch nothing

Layout under --local-dir (what the configs expect with ``paths.weights_dir=<local-dir>``):

    Wan2.1-I2V-14B-480P-Diffusers/   transformer/ vae/ text_encoder/ tokenizer/ image_encoder/ image_processor/
    Wan2.1-I2V-14B-480P/             (--native) diffusion_pytorch_model-0000{1..7}-of-00007.safetensors, Wan2.1_VAE.pth
    EX-4D/ex4d.ckpt
    DepthCrafter/                    unet/
    stable-video-diffusion-img2vid/  vae/ image_encoder/ feature_extractor/ scheduler/ (DepthCrafter's base)
    Depth-Anything-V2-Large-hf/
    metrics/                         pt_inception-2015-12-05-6726825d.pth, i3d_torchscript.pt, dino-vitb16/, ...
                                     (ex4d.metrics.weights.METRIC_WEIGHTS: file names, sources, sha256 checks)

Metric files come from their original URLs (GitHub releases, PyTorch, Dropbox) or Hugging Face repos (the LPIPS
heads ship with the lpips pip package: nothing to fetch); after download each is checked as the metrics check it:
against a published sha256 where one exists, else the sha256 prefix in the released file name, else only its
digest is printed (no source publishes one; compare it with the file page's). The listing says which, per file. Gated or rate-limited repos read the token from ``HF_TOKEN`` / ``huggingface-cli login``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


@dataclass(frozen=True)
class Fetch:
    repo_id: str  # Hugging Face repo, or the URL of a single file (``url`` set)
    folder: str  # sub-folder of --local-dir
    allow_patterns: tuple[str, ...] | None = None  # None = the whole repo
    note: str = ""
    url: str | None = None  # a plain file download into folder/filename
    filename: str | None = None
    metric_key: str | None = None  # ex4d.metrics.weights.METRIC_WEIGHTS key: checked after download
    package: str | None = None  # ships inside this pip package: nothing to download, only checked


ITEMS = ("wan_i2v_14b_480p", "ex4d", "depthcrafter", "depth_anything", "metrics")
# Hugging Face model folders: config + safetensors weights (+ the processor config, unused by our code).
HF_METRIC_PATTERNS = ("config.json", "preprocessor_config.json", "model.safetensors")
_URL = re.compile(r"https?://\S+")
_HF = re.compile(r"Hugging Face ([\w.-]+/[\w.-]+)")


def metric_source(spec) -> tuple[str, str]:
    """("url", URL) or ("hf", repo id) parsed from a ``WeightsFile.source`` text."""
    m = _URL.search(spec.source)
    if m:
        return "url", m.group(0)
    m = _HF.search(spec.source)
    if m:
        return "hf", m.group(1)
    raise ValueError(f"metric weights {spec.key}: cannot find a URL or 'Hugging Face <repo>' in its source {spec.source!r}")


def metric_fetches(keys: list[str] | None = None) -> list[Fetch]:
    """Downloads of the evaluation metrics' files (``ex4d.metrics.weights.METRIC_WEIGHTS``), into ``metrics/``."""
    from ex4d.metrics.weights import METRIC_WEIGHTS

    keys = list(METRIC_WEIGHTS) if not keys else keys
    unknown = [k for k in keys if k not in METRIC_WEIGHTS]
    if unknown:
        raise SystemExit(f"unknown metric weights {unknown}; choose from {sorted(METRIC_WEIGHTS)}")
    out = []
    for k in keys:
        spec = METRIC_WEIGHTS[k]
        note = f"{spec.used_by}; check: {spec.check}"
        if spec.package:
            out.append(Fetch(spec.package, "metrics", note=note, metric_key=k, package=spec.package))
            continue
        kind, where = metric_source(spec)
        if kind == "url":
            out.append(Fetch(where, "metrics", note=note, url=where, filename=spec.filename, metric_key=k))
        else:
            out.append(Fetch(where, f"metrics/{spec.filename}", HF_METRIC_PATTERNS, note=note, metric_key=k))
    return out


DEPTH_ANYTHING = {
    "small": "depth-anything/Depth-Anything-V2-Small-hf",
    "base": "depth-anything/Depth-Anything-V2-Base-hf",
    "large": "depth-anything/Depth-Anything-V2-Large-hf",
}


def plan(what: list[str], native: bool = False, depth_anything_size: str = "large",
         metric_keys: list[str] | None = None) -> list[Fetch]:
    """The downloads for the requested items (no network)."""
    items = list(ITEMS) if "all" in what else what
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
        elif item == "metrics":
            out.extend(metric_fetches(metric_keys))
        else:
            raise SystemExit(f"unknown item {item!r}; choose from {', '.join(ITEMS)}, all")
    return out


def download_url(url: str, dest: Path) -> Path:
    """One file over HTTP(S) into ``dest`` (via ``dest.part``, so an interrupted download never looks finished)."""
    import shutil
    import urllib.request

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    req = urllib.request.Request(url, headers={"User-Agent": "ex4d-download-weights"})
    with urllib.request.urlopen(req) as r, open(part, "wb") as f:
        shutil.copyfileobj(r, f, length=1 << 20)
    part.replace(dest)
    return dest


def check_metric_file(f: Fetch, local_dir: Path) -> str:
    """The downloaded metric file, checked like the metrics check it; returns ``<path> sha256=<digest> (<check>)``."""
    from ex4d.metrics.weights import resolve_weights, resolved_weights

    path = resolve_weights(f.metric_key, root=local_dir)
    rec = next((v for k, v in resolved_weights().items() if v["key"] == f.metric_key and k.startswith(str(path))), None)
    return f"{path} sha256={rec['sha256']} (checked against {rec['check']})" if rec else str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("what", nargs="*", help=f"any of {', '.join(ITEMS)}, all")
    p.add_argument("--metrics", action="store_true", help="the evaluation metrics' files (same as the item 'metrics')")
    p.add_argument("--metric-keys", default=None,
                   help="comma-separated METRIC_WEIGHTS keys to fetch with 'metrics' (default: all of them)")
    p.add_argument("--local-dir", type=Path, default=Path(os.environ.get("EX4D_WEIGHTS", "weights")),
                   help="destination folder (default: $EX4D_WEIGHTS or ./weights)")
    p.add_argument("--native", action="store_true", help="also fetch the native Wan release files")
    p.add_argument("--depth-anything-size", choices=sorted(DEPTH_ANYTHING), default="large")
    p.add_argument("--revision", default=None, help="git revision for every repo (default: main)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = p.parse_args(argv)
    what = list(args.what) + (["metrics"] if args.metrics and "metrics" not in args.what else [])
    if not what:
        p.error("name at least one item (or --metrics)")
    bad = [w for w in what if w not in (*ITEMS, "all")]
    if bad:
        p.error(f"unknown item(s) {bad}; choose from {', '.join(ITEMS)}, all")
    keys = [k.strip() for k in args.metric_keys.split(",") if k.strip()] if args.metric_keys else None

    fetches = plan(what, args.native, args.depth_anything_size, keys)
    for f in fetches:
        if f.package:
            print(f"(pip package {f.package.split(':')[0]}) {f.package}  {f.note}")
            continue
        if f.url:
            print(f"{f.url} -> {args.local_dir / f.folder / f.filename}  {f.note}")
            continue
        pats = ", ".join(f.allow_patterns) if f.allow_patterns else "all files"
        print(f"{f.repo_id} -> {args.local_dir / f.folder}  [{pats}]  {f.note}")
    if args.dry_run:
        return 0

    from huggingface_hub import snapshot_download

    for f in fetches:
        dest = args.local_dir / f.folder
        if f.package:
            print(f"  checked: {check_metric_file(f, args.local_dir)}")
            continue
        if f.url:
            path = download_url(f.url, dest / f.filename)
            print(f"done: {path}")
            print(f"  checked: {check_metric_file(f, args.local_dir)}")
            continue
        path = snapshot_download(
            f.repo_id,
            local_dir=str(dest),
            allow_patterns=list(f.allow_patterns) if f.allow_patterns else None,
            revision=args.revision,
        )
        if f.metric_key and not (dest / "model.safetensors").is_file():
            # Older repos hold only the pickled weights; transformers loads either.
            snapshot_download(f.repo_id, local_dir=str(dest), allow_patterns=["pytorch_model.bin"], revision=args.revision)
        print(f"done: {path}")
        if f.metric_key:
            print(f"  checked: {check_metric_file(f, args.local_dir)}")
    print(f"\nweights in {args.local_dir}; run with paths.weights_dir={args.local_dir.resolve()} "
          f"(or export EX4D_WEIGHTS={args.local_dir.resolve()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
