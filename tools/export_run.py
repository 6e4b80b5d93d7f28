"""Export a finished run's camera path and first-frame DW-Mesh for other tools.

    python tools/export_run.py outputs/infer/<run>                       # COLMAP model + GLB + PLY in <run>/export/
    python tools/export_run.py outputs/infer/<run> --formats colmap --images output   # + the generated frames
    python tools/export_run.py outputs/infer/<run> --formats gltf --out /tmp/scene

What is written (``ex4d.pipelines.export`` has the details):

* ``colmap/{cameras,images,points3D}.txt``: COLMAP text model of the novel path (PINHOLE, one camera per
  distinct K, world = the source camera of frame 0); points from the first-frame DW-Mesh;
  ``colmap/images/frame_00000.png`` ... with ``--images render`` (color.mp4) or ``output`` (output.mp4, K
  rescaled to its size);
* ``mesh_0000.glb`` / ``mesh_0000.ply``: frame 0's DW-Mesh, rebuilt with the run's mesh settings (its
  ``config.yaml``);
* ``export.json``: what was written and from what.

The same exports come out of ``python infer.py ... recon.export=[colmap,gltf,ply]``. A bad argument or an
incomplete run folder prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def mesh_builder_of(run_dir: Path):
    """The run's DW-Mesh builder from its ``config.yaml`` (``mesh`` node), or None (the default, mesh=fixed)."""
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        return None
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(cfg_path)
    return instantiate(cfg.mesh) if "mesh" in cfg else None


def main(argv: list[str] | None = None) -> int:
    from ex4d.pipelines.export import EXPORT_FORMATS, IMAGE_SOURCES, export_run
    from ex4d.utils.errors import InputError

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="a folder written by infer.py (stage recon or all)")
    ap.add_argument("--formats", default=",".join(EXPORT_FORMATS), help="comma-separated: colmap, gltf, ply")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default <run_dir>/export)")
    ap.add_argument("--images", choices=IMAGE_SOURCES, default="none", help="frames beside the COLMAP model")
    ap.add_argument("--points-stride", type=int, default=4, help="pixel stride of points3D.txt (0 = none)")
    args = ap.parse_args(argv)
    try:
        if not args.run_dir.is_dir():
            raise InputError(f"{args.run_dir}: not a folder")
        builder = mesh_builder_of(args.run_dir)
        files = export_run(args.run_dir, args.formats, args.out, builder, args.images, args.points_stride)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or args.run_dir / "export"
    out.mkdir(parents=True, exist_ok=True)
    mesh = "default (mesh=fixed)" if builder is None else {k: v for k, v in vars(builder).items() if not k.startswith("_")}
    record = {"run_dir": str(args.run_dir.resolve()), "formats": args.formats, "images": args.images,
              "points_stride": args.points_stride, "mesh": mesh,
              "files": {k: str(Path(v).relative_to(out)) for k, v in files.items()}}
    (out / "export.json").write_text(json.dumps(record, indent=2))
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
