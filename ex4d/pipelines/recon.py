"""The DW-Mesh stage: frames -> depth -> per-frame DW-Mesh -> render along a new camera path.

Usable without Hydra::

    from ex4d.io import load_clip
    from ex4d.depth.ground_truth import GroundTruthDepthBackend
    from ex4d.cameras.trajectories import ReferenceOrbit
    from ex4d.render import make_renderer
    pipe = ReconPipeline(GroundTruthDepthBackend(), ReferenceOrbit(90), make_renderer("auto"))
    result = pipe(load_clip("example:motorcycle"))
    save_recon(result, "out/")
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ex4d.cameras.core import shared_intrinsics
from ex4d.cameras.io import save_cameras_json, save_reference_npz, validate_intrinsics, validate_K
from ex4d.cameras.plot import plot_camera_path
from ex4d.cameras.trajectories import DEFAULT_PIVOT_OFFSET, starts_at_source
from ex4d.depth.base import DepthBackend, DepthResult, validate_depth
from ex4d.io.video import VideoClip, write_mask_video, write_video
from ex4d.mesh import DWMesh, DWMeshBuilder
from ex4d.mesh.dwmesh import set_border
from ex4d.render.base import Renderer, RenderResult
from ex4d.utils.checks import check_bool, check_choice, check_int, check_memory, check_number
from ex4d.utils.device import resolve_device
from ex4d.utils.errors import InputError
from ex4d.utils.visualize import contact_sheet

log = logging.getLogger(__name__)

SAVE_MESHES = ("none", "first", "all")
MESH_FORMAT_NAMES = ("ply", "glb")  # recon.mesh_format (ex4d.mesh.export.MESH_FORMATS without the dot)
# Rough host memory of the stage (measured on the CPU renderer at 256x384 and 512x768, rounded up):
# per pixel of the whole clip (frames, depth, colour and mask outputs), per pixel of each frame of a
# chunk (its mesh, angles and render buffers), and per pixel once (shared faces, ray-tracing structures).
BYTES_PER_CLIP_PIXEL = 64
BYTES_PER_CHUNK_PIXEL = 128
BYTES_PER_PIXEL_ONCE = 1024


def recon_memory_bytes(num_frames: int, height: int, width: int, chunk_size: int) -> int:
    """Estimated peak host memory of :class:`ReconPipeline` on a clip (within a factor ~2)."""
    hw = height * width
    return hw * (BYTES_PER_CLIP_PIXEL * num_frames + BYTES_PER_CHUNK_PIXEL * min(chunk_size, num_frames)
                 + BYTES_PER_PIXEL_ONCE)


def check_recon_options(chunk_size=8, fps=30.0, save_meshes="none", mesh_format="ply", contact_columns=8,
                        replace_first_frame=True, export=()) -> None:
    """Check the ``recon.*`` keys (``conf/recon/default.yaml``) before any work; InputError names the key."""
    from ex4d.pipelines.export import check_export_formats

    check_export_formats(export, "recon.export")
    check_int(chunk_size, "recon.chunk_size", minimum=1)
    check_number(fps, "recon.fps", positive=True)
    check_choice(save_meshes, "recon.save_meshes", SAVE_MESHES)
    check_choice(mesh_format, "recon.mesh_format", MESH_FORMAT_NAMES)
    check_int(contact_columns, "recon.contact_columns", minimum=1)
    check_bool(replace_first_frame, "recon.replace_first_frame")


@dataclass
class ReconResult:
    """Everything the DW-Mesh stage produced.

    Attributes:
        clip: the input clip (frames (T, H, W, 3) uint8).
        depth: DepthResult (depth (T, H, W) on the EX-4D scale, K).
        w2c: (T, 4, 4) float64 novel camera path (OpenCV, world = source camera).
        pivot: (3,) float64 look-at pivot of the path.
        color: (T, H, W, 3) uint8 rendered colour, black in holes.
        mask: (T, H, W) bool, True = trusted pixel.
        meshes: frame index -> DWMesh (batch of one) for the frames asked to keep.
        K_T33: (T, 3, 3) float64 intrinsics of the novel path's cameras, one per frame (each equal to the
            source ``depth.K`` unless the path zooms); None means ``depth.K`` for every frame.
    """

    clip: VideoClip
    depth: DepthResult
    w2c: Tensor
    pivot: Tensor
    color: np.ndarray
    mask: np.ndarray
    meshes: dict
    K_T33: Tensor | None = None

    @property
    def path_K(self) -> Tensor:
        """The path's intrinsics in compact form: (3, 3) when every frame shares one, else (T, 3, 3)."""
        return self.depth.K if self.K_T33 is None else shared_intrinsics(self.K_T33)


class ReconPipeline:
    """Depth -> DW-Mesh -> render, batched over frames in chunks.

    Args:
        depth: a DepthBackend.
        camera: a trajectory, ``camera(num_frames, min_depth) -> (N, 4, 4) w2c``; its
            ``camera.intrinsics(num_frames, K, min_depth) -> (N, 3, 3)`` (when it has one) gives per-frame
            intrinsics from the source ``K``, else every frame renders with the source ``K``.
        renderer: a Renderer backend.
        mesh: a DWMeshBuilder (mode, min angle, border depth).
        device: where meshes are built ("auto" = CUDA when available).
        chunk_size: frames built and rendered at once (bounds memory at large resolutions).
        replace_first_frame: frame 0 = source frame with a full mask (reference behaviour).
        keep_meshes: "none" | "first" | "all": which frames' meshes to return for export.
    """

    def __init__(self, depth: DepthBackend, camera, renderer: Renderer, mesh: DWMeshBuilder | None = None,
                 device: str = "auto", chunk_size: int = 8, replace_first_frame: bool = True,
                 keep_meshes: str = "none", progress: bool = True):
        check_choice(keep_meshes, "recon.save_meshes", SAVE_MESHES)
        self.depth = depth
        self.camera = camera
        self.renderer = renderer
        self.mesh = mesh or DWMeshBuilder()
        self.device = resolve_device(device)
        self.chunk_size = check_int(chunk_size, "recon.chunk_size", minimum=1)
        self.replace_first_frame = check_bool(replace_first_frame, "recon.replace_first_frame")
        self.keep_meshes = keep_meshes
        self.progress = progress

    def __call__(self, clip: VideoClip, depth: DepthResult | None = None) -> ReconResult:
        T, H, W = clip.frames.shape[:3]
        # Before depth estimation, the first expensive step: a clip that cannot fit fails now, with the keys.
        check_memory(recon_memory_bytes(T, H, W, self.chunk_size),
                     f"reconstructing {T} frames at {H}x{W} (recon.chunk_size={self.chunk_size})",
                     "lower data.max_side (or data.height/data.width), data.num_frames or recon.chunk_size")
        if hasattr(self.camera, "validate"):  # a camera file is read and checked now, not after depth
            self.camera.validate(T)
        frames = torch.from_numpy(clip.frames)
        if depth is None:
            depth = self.depth(frames, source=clip.source)
        validate_depth(depth.depth, (T, H, W), source=f"depth of {clip.source}")
        validate_K(depth.K, f"depth of {clip.source} ({depth.info.get('backend', 'depth backend')})", "K")
        d = depth.depth.to(self.device, torch.float32)
        # Pivot radius: nearest depth of frame 0 after the border ring is pushed to the walls.
        min_depth = float(set_border(d[0], self.mesh.border_depth).min())
        w2c = self.camera(T, min_depth)
        if w2c.shape != (T, 4, 4):
            raise InputError(f"camera path has shape {tuple(w2c.shape)}, expected ({T}, 4, 4)")
        K = depth.K  # the source camera: meshes are built with it
        K_T33 = self.camera.intrinsics(T, K, min_depth) if hasattr(self.camera, "intrinsics") else None
        K_T33 = K.expand(T, 3, 3).clone() if K_T33 is None else validate_intrinsics(K_T33, "camera path", "K", T)
        if K_T33.ndim == 2:
            K_T33 = K_T33.expand(T, 3, 3).clone()
        # One shared K (every path that does not zoom) renders through the renderers' single-K path, the
        # same arithmetic as before per-frame intrinsics existed (tests/unit/test_parity_golden.py).
        K_render = shared_intrinsics(K_T33)
        if self.replace_first_frame and not (starts_at_source(w2c) and torch.equal(K_T33[0], K.to(K_T33.dtype))):
            log.warning("the camera path's frame 0 is not the source camera (identity w2c and the source K), but "
                        "recon.replace_first_frame=true shows the source frame there: the video jumps after frame 0; "
                        "start the path at the source (e.g. camera.lead_in=true) or set recon.replace_first_frame=false")
        pivot = torch.tensor([0.0, 0.0, min_depth + getattr(self.camera, "pivot_offset", DEFAULT_PIVOT_OFFSET)], dtype=torch.float64)
        colors, masks, meshes = [], [], {}
        static_mesh: DWMesh | None = None
        rgb = frames.to(self.device)
        bar = tqdm(total=T, desc="DW-Mesh + render", unit="frame", disable=not self.progress)
        for start in range(0, T, self.chunk_size):
            stop = min(T, start + self.chunk_size)
            if clip.static:
                # One image: one mesh, viewed by every camera (expanded views share storage, so
                # backends can reuse acceleration structures).
                if static_mesh is None:
                    static_mesh = self.mesh(rgb[:1], d[:1], K)
                mesh = _expand(static_mesh, stop - start)
            else:
                mesh = self.mesh(rgb[start:stop], d[start:stop], K)
            src0 = clip.frames[0] if (start == 0 and self.replace_first_frame) else None
            res: RenderResult = self.renderer.render(
                mesh, w2c[start:stop], K_render if K_render.ndim == 2 else K_render[start:stop], H, W,
                source_rgb=None if src0 is None else torch.from_numpy(src0),
            )
            colors.append((res.color * 255).round().to(torch.uint8).cpu().numpy())
            masks.append(res.mask.cpu().numpy())
            for i in range(start, stop):
                if self.keep_meshes == "all" or (self.keep_meshes == "first" and i == 0):
                    meshes[i] = mesh.frame(i - start).to("cpu")
            bar.update(stop - start)
        bar.close()
        return ReconResult(clip, depth, w2c, pivot, np.concatenate(colors), np.concatenate(masks), meshes, K_T33)


def _expand(mesh: DWMesh, n: int) -> DWMesh:
    return DWMesh(
        mesh.vertices.expand(n, -1, -1),
        mesh.faces,
        mesh.colors.expand(n, -1, -1),
        mesh.face_valid.expand(n, -1),
        None if mesh.face_keep is None else mesh.face_keep.expand(n, -1),
        mesh.height,
        mesh.width,
        mesh.mode,
    )


def save_recon(result: ReconResult, out_dir: str | Path, camera_name: str = "path", fps: float = 30.0,
               mesh_format: str = "ply", contact_columns: int = 8) -> dict:
    """Write the DW-Mesh stage's outputs into ``out_dir``; returns name -> path.

    Files: color.mp4, mask.mp4 (lossless, exactly re-binarisable), cameras.json,
    camera_<name>.npz (reference format), depth.npz, contact_sheet.png, camera_path.png,
    meshes/mesh_<i>.<fmt> when meshes were kept. The camera files hold the path's intrinsics: one (3, 3)
    ``K`` when every frame shares it, else (T, 3, 3) (``ex4d.cameras.io``); depth.npz holds the source
    camera's ``K``.
    """
    from ex4d.mesh.export import export_mesh

    check_recon_options(fps=fps, mesh_format=mesh_format, contact_columns=contact_columns)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip, T, H, W = result.clip, *result.color.shape[:3]
    K = result.depth.K
    path_K = result.path_K
    files = {
        "color": write_video(out / "color.mp4", result.color, fps=fps),
        "mask": write_mask_video(out / "mask.mp4", result.mask, fps=fps),
        "cameras_json": save_cameras_json(out / "cameras.json", result.w2c, path_K, H, W),
        "cameras_npz": save_reference_npz(out / f"camera_{camera_name}.npz", result.w2c, path_K),
    }
    # The exact source frame 0 for the generator's first-frame conditioning (color.mp4 is lossy).
    from PIL import Image

    Image.fromarray(clip.frames[0]).save(out / "first_frame.png")
    files["first_frame"] = out / "first_frame.png"
    np.savez_compressed(out / "depth.npz", depth=result.depth.depth.cpu().numpy().astype(np.float32),
                        K=K.cpu().numpy())
    files["depth"] = out / "depth.npz"
    files["contact_sheet"] = contact_sheet(
        {"input": clip.frames, "render": result.color, "mask": result.mask}, out / "contact_sheet.png",
        num_columns=contact_columns,
    )
    files["camera_plot"] = plot_camera_path(result.w2c, path_K, H, W, out / "camera_path.png", pivot=result.pivot,
                                            title=f"camera path '{camera_name}' ({T} frames)")
    if result.meshes:
        (out / "meshes").mkdir(exist_ok=True)
        for i, m in result.meshes.items():
            files[f"mesh_{i}"] = export_mesh(m, 0, out / "meshes" / f"mesh_{i:04d}.{mesh_format}")
    summary = {
        "source": clip.source,
        "frames": T,
        "size": [H, W],
        "fps": fps,
        "static": clip.static,
        "depth": result.depth.info,
        "mask_coverage": float(result.mask.mean()),
        "files": {k: str(Path(v).relative_to(out)) for k, v in files.items()},
    }
    (out / "recon.json").write_text(json.dumps(summary, indent=2))
    files["summary"] = out / "recon.json"
    return files


def commit_staged(stage_dir: Path, final_dir: Path) -> None:
    """Move every file of a finished staging folder into ``final_dir`` (so failures leave nothing half-written)."""
    final_dir.mkdir(parents=True, exist_ok=True)
    for p in stage_dir.iterdir():
        target = final_dir / p.name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        shutil.move(str(p), str(target))
    stage_dir.rmdir()
