"""The default and reference-parity recon paths stay bit-identical as features are added.

The digests below were computed by this file's ``_digests()`` at commit 52a6c1f, before per-frame
intrinsics existed (issue 17): camera presets' poses, the files ``save_recon`` writes about cameras,
the CPU renderer's colour and mask on a small two-plane clip (``mesh=fixed`` and ``mesh=parity``),
and the nvdiffrast backend's clip-space vertex maths (which runs on the CPU). Any change to these
numbers changes what the reference presets render: it must be deliberate, never a side effect.
Deliberate changes so far: ``recon_fixed_90.color`` since ``renderer.composite=auto`` un-premultiplies the
trusted colour for ``mesh=fixed`` (docs/fidelity.md; with ``composite=mask`` it is the earlier digest, its mask
and every parity digest are unchanged).

The render digests come from Embree (float32). They are reproducible on one machine and across the
x86-64 hosts the project runs on; should they ever differ on a new CPU while the camera digests
agree, the cause is the ray tracer, not the camera code.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from ex4d.cameras import intrinsics
from ex4d.cameras.trajectories import Arc, Dolly, Orbit, trajectory_from_preset
from ex4d.depth.constant import PlanesDepthBackend
from ex4d.io.video import VideoClip
from ex4d.mesh import DWMeshBuilder
from ex4d.pipelines.recon import ReconPipeline, save_recon
from ex4d.render import CpuRenderer
from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

MIN_DEPTH = 10000 / 3900
T, H, W = 4, 48, 64


def _sha(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a.numpy() if isinstance(a, torch.Tensor) else a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _clip() -> VideoClip:
    """Four textured frames (the texture drifts, so every frame's mesh differs)."""
    v, u = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    frames = np.stack([np.stack([(u * 4 + 9 * t) % 256, (v * 5 + 3 * t) % 256, (u + v + 7 * t) % 256], -1)
                       for t in range(T)]).astype(np.uint8)
    return VideoClip(frames, 30.0, "golden")


def _recon(camera, mode: str, tmp_path=None) -> dict:
    """Digests of a recon; with ``tmp_path`` also of the camera files ``save_recon`` writes (slow: it plots)."""
    pipe = ReconPipeline(PlanesDepthBackend(), camera, CpuRenderer(num_threads=1), DWMeshBuilder(mode),
                         device="cpu", chunk_size=3, progress=False)
    res = pipe(_clip())
    arrays = {"color": _sha(res.color), "mask": _sha(res.mask), "w2c": _sha(res.w2c)}
    if tmp_path is None:
        return arrays
    out = tmp_path / "recon"
    save_recon(res, out, camera_name="golden")
    with np.load(out / "camera_golden.npz") as z:
        npz = _sha(z["extrinsics"], z["intrinsics"])
    cams = json.loads((out / "cameras.json").read_text())
    return {**arrays, "npz": npz, "json": hashlib.sha256(json.dumps(cams, sort_keys=True).encode()).hexdigest()[:16]}


def _digests(tmp_path) -> dict:
    out = {}
    for name in ("30", "60", "90", "180"):
        for n in (49, 13, 97):
            out[f"preset_{name}_{n}"] = _sha(trajectory_from_preset(name)(n, MIN_DEPTH))
    out["orbit_full"] = _sha(Orbit(-90, 90, lead_in=True)(49, MIN_DEPTH))
    out["arc"] = _sha(Arc(0, 60, 0, 20)(49, MIN_DEPTH))
    out["dolly_in"] = _sha(Dolly("in")(49, MIN_DEPTH))
    out["recon_fixed_90"] = _recon(trajectory_from_preset("90"), "fixed", tmp_path)
    out["recon_parity_90"] = _recon(trajectory_from_preset("90"), "parity")
    out["recon_parity_180"] = _recon(trajectory_from_preset("180"), "parity")
    g = torch.Generator().manual_seed(0)
    verts = torch.rand(3, 50, 3, generator=g) * torch.tensor([2.0, 2.0, 5.0]) + torch.tensor([-1.0, -1.0, 1.0])
    clip_pos = NvdiffrastRenderer(device="cpu").clip_positions(verts, trajectory_from_preset("90")(3, MIN_DEPTH),
                                                                intrinsics(H, W), H, W)
    out["nvdiffrast_clip_positions"] = _sha(clip_pos)
    return out


GOLDEN = {
    "preset_30_49": "526ba62145552447",
    "preset_30_13": "b8f55ae359a98449",
    "preset_30_97": "fd2e3444cec86ead",
    "preset_60_49": "21d8cfb7edc4db0b",
    "preset_60_13": "5879ef754d15454e",
    "preset_60_97": "2a572fbbe2c61896",
    "preset_90_49": "f502258638a96d66",
    "preset_90_13": "904500bdf2307af9",
    "preset_90_97": "e6dd3104889ee547",
    "preset_180_49": "b5e34046ab0fd197",
    "preset_180_13": "ff5ef8779ac008df",
    "preset_180_97": "2fe17d683c29750c",
    "orbit_full": "fcf83a3b895a211e",
    "arc": "3d4a5da91e3c404e",
    "dolly_in": "2913ba2654815ef9",
    "recon_fixed_90": {
        "color": "773d5e3d69478088",
        "mask": "33bd06cab7831f88",
        "w2c": "35b31cb95f774b3f",
        "npz": "6fe11e3ada4db518",
        "json": "a4d51fa74101b58b"
    },
    "recon_parity_90": {
        "color": "afa384a39a64ad0a",
        "mask": "1d5680fb248b18de",
        "w2c": "35b31cb95f774b3f"
    },
    "recon_parity_180": {
        "color": "6612a9a5c0841338",
        "mask": "f7b8cf4a17e62ad1",
        "w2c": "3b851dc818138a03"
    },
    "nvdiffrast_clip_positions": "ca8936e59c33b37a",
}


def test_default_and_parity_outputs_are_unchanged(tmp_path):
    assert _digests(tmp_path) == GOLDEN
