"""Depth Anything V2 (transformers) per frame, normalised over the clip to the EX-4D depth scale.

Depth Anything V2's relative models predict affine-invariant *disparity* (larger = nearer) for one
image, so frames are estimated independently (no temporal consistency, unlike DepthCrafter) and the
clip is then min-max normalised as a whole, exactly like DepthCrafter's output.

    backend = DepthAnythingBackend("depth-anything/Depth-Anything-V2-Large-hf")
    result = backend(frames_uint8_THW3)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ex4d.cameras import intrinsics
from ex4d.depth._loading import download_hint, hf_offline, load_pretrained, looks_local, resolve_device, resolve_dtype
from ex4d.depth.base import DepthBackend, DepthResult, disparity_to_ex4d_depth
from ex4d.utils.checks import check_int, check_number
from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Large-hf"
DEPTH_ANYTHING_SIZES = ("small", "base", "large")  # tools/download_weights.py --depth-anything-size


class DepthAnythingBackend(DepthBackend):
    """Per-frame Depth Anything (V2) relative disparity -> EX-4D depth (clip-level normalisation).

    Args:
        model: hub id or local folder of a transformers depth-estimation checkpoint that predicts
            relative disparity (``AutoModelForDepthEstimation`` + its image processor).
        batch_size: frames per forward pass.
        input_size: side of the processor's target size (None: the checkpoint's, 518 for V2); the
            processor keeps the aspect ratio and rounds to multiples of the patch size (14).
        dtype, device, cache_dir, local_files_only: as for ``DepthCrafterBackend``.
        focal_px: focal length of the returned K (reference 500 px).
    """

    name = "depth_anything"

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 8, input_size: int | None = None,
                 dtype: str = "float16", device: str = "auto", cache_dir: str | None = None,
                 local_files_only: bool | None = None, focal_px: float = 500.0):
        check_int(batch_size, "depth.batch_size", minimum=1)
        if input_size is not None:
            check_int(input_size, "depth.input_size", minimum=14)  # one 14 px patch
        self.model_source, self.batch_size, self.input_size = str(model), int(batch_size), input_size
        self.dtype_name, self.device_name = dtype, device
        self.cache_dir, self.local_files_only = cache_dir, local_files_only
        self.focal_px = check_number(focal_px, "depth.focal_px", positive=True)
        self._model: Any = None
        self._processor: Any = None
        self._device: torch.device | None = None
        self._dtype: torch.dtype | None = None

    def load(self) -> None:
        """Load the model and its image processor now (the first call does it otherwise)."""
        if self._model is not None:
            return
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        device = resolve_device(self.device_name, "depth.device")
        dtype = resolve_dtype(self.dtype_name, device, key="depth.dtype")
        common = {"cache_dir": self.cache_dir,
                  "local_files_only": hf_offline() if self.local_files_only is None else bool(self.local_files_only)}
        # A local folder named like one of the released sizes gets that size's repo (the large one otherwise).
        size = next((s for s in DEPTH_ANYTHING_SIZES if Path(self.model_source).name.lower() == f"depth-anything-v2-{s}-hf"),
                    "large")
        folder = f"Depth-Anything-V2-{size.title()}-hf"
        repo = f"depth-anything/{folder}" if looks_local(self.model_source) else self.model_source
        args = ["depth_anything"] + ([] if size == "large" else ["--depth-anything-size", size])
        hint = download_hint(self.model_source, repo, args, folder) + " Or set depth.model=<folder>."
        what = f"Depth Anything model {self.model_source}"
        processor = load_pretrained(lambda: AutoImageProcessor.from_pretrained(self.model_source, **common),
                                    self.model_source, what, hint)
        model = load_pretrained(
            lambda: AutoModelForDepthEstimation.from_pretrained(self.model_source, dtype=dtype, **common),
            self.model_source, what, hint)
        self._model = model.to(device).eval().requires_grad_(False)
        self._processor, self._device, self._dtype = processor, device, dtype

    def __call__(self, frames: Tensor, source: str | None = None) -> DepthResult:
        """frames (T, H, W, 3) uint8 RGB -> DepthResult with depth (T, H, W) on the EX-4D scale."""
        frames = torch.as_tensor(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise InputError(f"{source or 'frames'}: expected (T, H, W, 3) uint8 RGB, "
                             f"got {tuple(frames.shape)} {frames.dtype}")
        T, H, W = frames.shape[:3]
        depth = disparity_to_ex4d_depth(self.predict_disparity(frames))
        info = {"backend": self.name, "model": self.model_source, "normalisation": "clip", "focal_px": self.focal_px,
                "dtype": str(self._dtype).replace("torch.", "")}
        return DepthResult(depth=depth, K=intrinsics(H, W, self.focal_px), info=info)

    @torch.no_grad()  # not inference_mode: its outputs would refuse later in-place use
    def predict_disparity(self, frames: Tensor) -> Tensor:
        """(T, H, W, 3) uint8 -> (T, H, W) float32 relative disparity on CPU, resized back to the frames' size."""
        self.load()
        T, H, W = frames.shape[:3]
        kwargs = {} if self.input_size is None else {"size": {"height": self.input_size, "width": self.input_size}}
        out = []
        for i in range(0, T, self.batch_size):
            batch = [f.numpy() for f in frames[i:i + self.batch_size].cpu()]
            pixels = self._processor(images=batch, return_tensors="pt", **kwargs).pixel_values
            pred = self._model(pixel_values=pixels.to(self._device, self._dtype)).predicted_depth  # (B, h, w)
            # Bilinear, not the processor's bicubic: bicubic overshoots at depth edges.
            pred = torch.nn.functional.interpolate(pred[:, None].float(), size=(H, W), mode="bilinear",
                                                   align_corners=False)
            out.append(pred[:, 0].cpu())
        return torch.cat(out)

