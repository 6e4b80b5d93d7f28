"""Long inputs: generation in overlapping windows of the generator's frame count, the conditioning carried across.

Wan2.1-I2V and the EX-4D adapter were trained on 49-frame clips, and the DiT's cost grows with the square of
the token count, so a clip longer than one window (``WindowSettings.frames``, default 49) is generated as a
chain of windows of exactly that many frames:

1. **Plan** (:func:`plan_windows`): n = ceil((T - overlap) / (frames - overlap)) windows, the first at frame
   0, the last ending at frame T - 1, the starts spread evenly (rounded) in between. Every two neighbours
   share at least ``overlap`` frames (more when T does not tile exactly: the slack is spread over all seams
   rather than dumped on the last one). T need not be 4k + 1; every window is.
2. **Window 0** is the ordinary single-window call: the render's colour and mask, the source frame 0 as the
   I2V first frame.
3. **Window k > 0**, starting at frame s and overlapping the frames already generated up to e: its colour
   frames s .. e-1 are *replaced by the generated ones* with the mask set to 1 there (trusted: the geometry
   encoder sees them as known content, and the adapter was trained to keep masked-in pixels), and its I2V
   first frame is the generated frame s (CLIP tokens and first-frame latent from it). Frames e .. s+frames-1
   come from the render as usual.
4. **Crossfade**: over the overlap, output = (1 - w_j) previous + w_j new with w_j = (j + 1) / (ov + 1),
   j = 0 .. ov-1 (linear, never fully either side), so no frame switches abruptly from one window's sample
   to the next's. Frames after the overlap are the new window's.

Every window uses the same sampler settings and seed (the noise is the same tensor each time, as the
frame count is); the mask erosion is drawn per window from the same seed.

Limits (also in the README and docs/cameras.md):

* **drift**: each window sees only the previous window's last frames, not the source video's first frame
  (except through the render, which is the source's own colour where the mesh is trusted); content that
  the generator invents in holes (disoccluded background, outpainted borders) may change from one window
  to the next beyond the overlap, and errors accumulate along the chain;
* **identity**: the I2V condition of window k is a generated frame, so a subject's appearance is anchored
  to the source only in window 0;
* **time**: n windows cost n full generations (each a 49-frame sampling, ~61 s on one H100 at 512x512 with
  reference settings); T = 97 with the defaults is 3 windows.

A clip that fits one window (T <= frames) takes the plain single call, bit for bit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ex4d.pipelines.conditioning import VAE_TIME_FACTOR
from ex4d.utils.checks import check_int
from ex4d.utils.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class WindowSettings:
    """Windowed generation of clips longer than the generator's window (config node ``windows``).

    Attributes:
        frames: frames per window, 4k + 1 (49: what Wan2.1-I2V and the EX-4D adapter were trained on).
        overlap: minimum frames shared by neighbouring windows (1 <= overlap < frames); they carry the
            conditioning and are crossfaded.
    """

    frames: int = 49
    overlap: int = 8

    def __post_init__(self) -> None:
        check_int(self.frames, "windows.frames", minimum=VAE_TIME_FACTOR + 1)
        if self.frames % VAE_TIME_FACTOR != 1:
            lo = (self.frames - 1) // VAE_TIME_FACTOR * VAE_TIME_FACTOR + 1
            raise InputError(f"windows.frames={self.frames}: a window has 4k + 1 frames (Wan's VAE); "
                             f"use {lo} or {lo + VAE_TIME_FACTOR}")
        check_int(self.overlap, "windows.overlap", minimum=1)
        if self.overlap >= self.frames:
            raise InputError(f"windows.overlap={self.overlap} must be smaller than windows.frames={self.frames}")


def plan_windows(num_frames: int, settings: WindowSettings) -> list[tuple[int, int]]:
    """The windows of a clip of ``num_frames`` frames: a list of (start, stop) frame ranges (module docstring).

    One window ``(0, num_frames)`` when the clip fits (``num_frames <= settings.frames``).
    """
    T, F, O = int(num_frames), settings.frames, settings.overlap
    if T <= F:
        return [(0, T)]
    n = math.ceil((T - O) / (F - O))
    starts = np.round(np.linspace(0.0, T - F, n)).astype(int).tolist()
    return [(s, s + F) for s in starts]


def _cpu_tensor(x) -> Tensor:
    """A CPU tensor of an array or tensor (a Lightning batch arrives as tensors on the device)."""
    return x.detach().cpu() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))


def crossfade_weights(overlap: int) -> Tensor:
    """(overlap,) float32 weights of the new window over the overlap: (j + 1) / (overlap + 1)."""
    return torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)


def generate_windowed(generator, colour, mask, first_frame=None, settings: WindowSettings | None = None,
                      **call_kwargs) -> Tensor:
    """Generate a clip of any length with ``generator`` (an :class:`~ex4d.pipelines.generate.EX4DGenerator`
    or any callable with its signature), in windows when it is longer than ``settings.frames``.

    Args:
        generator: ``generator(colour, mask, first_frame, **call_kwargs) -> (F, H, W, 3) uint8``.
        colour: (T, H, W, 3) uint8 render along the new path (holes black; frame 0 = source frame).
        mask: (T, H, W) bool, True = trusted pixel.
        first_frame: (H, W, 3) uint8 source frame 0 for window 0's I2V conditioning (None: ``colour[0]``).
        settings: window size and overlap (default 49 / 8).
        call_kwargs: passed to every call (``prompt``, ``seed``, ``settings``, ...).

    Returns:
        (T, H, W, 3) uint8 CPU tensor.
    """
    settings = settings or WindowSettings()
    T = len(colour)
    windows = plan_windows(T, settings)
    if len(windows) == 1:  # fits: the plain call, untouched
        return generator(colour, mask, first_frame, **call_kwargs)
    colour, mask = _cpu_tensor(colour), _cpu_tensor(mask)
    if mask.dtype != torch.bool:
        raise InputError(f"mask video: windowed generation needs a bool (T, H, W) mask, got {mask.dtype}")
    if colour.shape[0] != mask.shape[0]:
        raise InputError(f"colour and mask videos have different lengths: {colour.shape[0]} vs {mask.shape[0]} frames")
    log.info("%d frames > windows.frames=%d: %d windows %s", T, settings.frames, len(windows), windows)
    out = torch.zeros(colour.shape, dtype=torch.uint8)
    done = 0  # frames 0 .. done-1 are generated
    for k, (start, stop) in enumerate(windows):
        if k == 0:
            new = generator(colour[start:stop], mask[start:stop], first_frame, **call_kwargs)
            out[start:stop] = _cpu_tensor(new)
            done = stop
            continue
        ov = done - start
        assert ov >= settings.overlap, (windows, k)
        c_w, m_w = colour[start:stop].clone(), mask[start:stop].clone()
        c_w[:ov] = out[start:done]  # the overlap: generated frames, trusted
        m_w[:ov] = True
        new = _cpu_tensor(generator(c_w, m_w, out[start].clone(), **call_kwargs))
        w = crossfade_weights(ov)[:, None, None, None]
        blend = (1.0 - w) * out[start:done].float() + w * new[:ov].float()
        out[start:done] = blend.round().clamp(0, 255).to(torch.uint8)
        out[done:stop] = new[ov:]
        done = stop
    assert done == T
    return out
