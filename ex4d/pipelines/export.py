"""Export a run's camera path and first-frame DW-Mesh for other tools (COLMAP, glTF viewers, point tools).

Reads only the files the DW-Mesh stage writes (``cameras.json``, ``depth.npz``, ``first_frame.png``; and
``color.mp4`` / ``output.mp4`` for images), so it works on any finished run folder::

    from ex4d.pipelines.export import export_run
    export_run("outputs/infer/<run>", ["colmap", "gltf", "ply"])

Writes under ``<run>/export/``:

* ``colmap/cameras.txt``, ``images.txt``, ``points3D.txt``: the novel path as a COLMAP text model
  (:mod:`ex4d.cameras.colmap`: PINHOLE, one camera per distinct ``K``, world = the source camera of frame 0,
  scene depth units); image ``i`` is frame ``i`` of the run's videos, named ``frame_00000.png`` ...;
  ``points3D.txt`` holds the first-frame DW-Mesh's trusted surface points (every ``points_stride``-th pixel
  in both directions; occlusion walls and the border skirt left out), each with its source colour;
  ``colmap/images/`` holds the frames themselves when ``images`` is ``render`` (``color.mp4``, the
  reconstruction size) or ``output`` (``output.mp4``; its intrinsics are scaled to the generated size, which
  is squashed to 512x512 by default, so fx != fy there);
* ``mesh_0000.glb`` / ``mesh_0000.ply``: frame 0's DW-Mesh (:mod:`ex4d.mesh.export`: PLY in the project's
  axes, GLB converted to glTF's +y up), rebuilt from ``depth.npz`` and ``first_frame.png`` with the run's
  mesh settings (pass the run's ``DWMeshBuilder``; the default is ``mesh=fixed``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ex4d.cameras.colmap import write_colmap_text
from ex4d.cameras.io import load_cameras_json
from ex4d.mesh import DWMesh, DWMeshBuilder
from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("colmap", "gltf", "ply")
IMAGE_SOURCES = ("none", "render", "output")
EXPORT_DIR = "export"


def check_export_formats(formats, key: str = "recon.export") -> tuple[str, ...]:
    """Normalise ``formats`` (a list, or a comma-separated string; empty = none) and check every name.

    Raises:
        InputError: naming ``key``, for an unknown format.
    """
    if formats is None:
        return ()
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    names = tuple(dict.fromkeys(str(f).strip().lower() for f in items if str(f).strip()))
    bad = [f for f in names if f not in EXPORT_FORMATS]
    if bad:
        raise InputError(f"{key}: unknown export format(s) {bad}; choose from {list(EXPORT_FORMATS)}, "
                         f"e.g. {key}=[colmap,gltf]")
    return names


def first_frame_mesh(run_dir: str | Path, builder: DWMeshBuilder | None = None) -> DWMesh:
    """Frame 0's DW-Mesh of a run, rebuilt on the CPU from ``depth.npz`` (depth[0], source ``K``) and the exact
    source frame ``first_frame.png``: the mesh the DW-Mesh stage rendered frame 0 from."""
    from PIL import Image

    run = Path(run_dir)
    for name in ("depth.npz", "first_frame.png"):
        if not (run / name).is_file():
            raise InputError(f"{run}: no {name}; export needs a folder written by the DW-Mesh stage (stage=recon/all)")
    with np.load(run / "depth.npz") as z:
        depth, K = torch.from_numpy(z["depth"][:1].astype(np.float32)), torch.from_numpy(z["K"])
    rgb = torch.from_numpy(np.array(Image.open(run / "first_frame.png").convert("RGB")))[None]
    return (builder or DWMeshBuilder())(rgb, depth, K)


def mesh_points(mesh: DWMesh, stride: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Trusted surface points of frame 0 of ``mesh``: vertices of every ``stride``-th row and column whose
    alpha is 1 (not on an occlusion wall or the border skirt). Returns (P, 3) float64 world points and (P, 3)
    uint8 colours."""
    H, W = mesh.height, mesh.width
    keep = torch.zeros(H, W, dtype=torch.bool)
    keep[::stride, ::stride] = True
    keep &= (mesh.colors[0, :, 3] > 0.5).reshape(H, W).cpu()
    idx = keep.reshape(-1).nonzero().squeeze(1)
    xyz = mesh.vertices[0, idx].double().cpu().numpy()
    rgb = (mesh.colors[0, idx, :3].cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return xyz, rgb


def _video_frames(path: Path) -> np.ndarray:
    from ex4d.io.video import read_video

    if not path.is_file():
        raise InputError(f"{path}: not found (export images=... needs it)")
    return read_video(path)[0]


def export_run(run_dir: str | Path, formats=EXPORT_FORMATS, out_dir: str | Path | None = None,
               mesh_builder: DWMeshBuilder | None = None, images: str = "none", points_stride: int = 4) -> dict:
    """Write the exports of a run folder (module docstring); returns name -> path.

    Args:
        run_dir: a folder written by the DW-Mesh stage.
        formats: any of ``colmap``, ``gltf``, ``ply`` (list or comma-separated string).
        out_dir: where to write (default ``<run_dir>/export``).
        mesh_builder: the run's mesh settings (default ``mesh=fixed``).
        images: ``none``, ``render`` or ``output``: frames written beside the COLMAP model.
        points_stride: pixel stride of the points in ``points3D.txt`` (0 = no points).

    Raises:
        InputError: unknown format or image source, missing run files.
    """
    formats = check_export_formats(formats, "formats")
    if images not in IMAGE_SOURCES:
        raise InputError(f"images: expected one of {list(IMAGE_SOURCES)}, got {images!r}")
    if isinstance(points_stride, bool) or not isinstance(points_stride, int) or points_stride < 0:
        raise InputError(f"points_stride: expected an integer >= 0, got {points_stride!r}")
    run = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run / EXPORT_DIR
    files: dict[str, Path] = {}
    mesh = first_frame_mesh(run, mesh_builder) if formats else None
    if "colmap" in formats:
        cams = load_cameras_json(run / "cameras.json")
        K_T33, height, width = cams.K_T33, cams.height, cams.width
        frames = None
        if images != "none":
            frames = _video_frames(run / ("color.mp4" if images == "render" else "output.mp4"))
            if frames.shape[0] != cams.w2c.shape[0]:
                raise InputError(f"{run}: {frames.shape[0]} frames in the {images} video, {cams.w2c.shape[0]} cameras")
            h, w = frames.shape[1:3]
            if (h, w) != (height, width):  # generated at another size: the same rays, rescaled pixel units
                K_T33 = K_T33.clone()
                K_T33[:, 0] *= w / width
                K_T33[:, 1] *= h / height
                height, width = h, w
        xyz, rgb = mesh_points(mesh, points_stride) if points_stride else (None, None)
        written = write_colmap_text(out / "colmap", cams.w2c, K_T33, height, width, points_xyz=xyz, points_rgb=rgb)
        files.update({f"colmap_{k}": v for k, v in written.items()})
        if frames is not None:
            from PIL import Image

            (out / "colmap" / "images").mkdir(parents=True, exist_ok=True)
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(out / "colmap" / "images" / f"frame_{i:05d}.png")
            files["colmap_image_folder"] = out / "colmap" / "images"
    from ex4d.mesh.export import export_mesh

    for fmt, ext in (("gltf", "glb"), ("ply", "ply")):
        if fmt in formats:
            files[f"mesh_{fmt}"] = export_mesh(mesh, 0, out / f"mesh_0000.{ext}")
    if files:
        log.info("exported %s to %s", ", ".join(formats), out)
    return files
