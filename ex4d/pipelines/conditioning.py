"""Pure functions that turn the DW-Mesh outputs into the generator's conditioning tensors.

Everything here is CPU-cheap and deterministic; the generator calls these before any model runs, so a bad
input fails before the first weight is touched (no partial output). :func:`encode_clip` composes them with a
generator's encoders into the model inputs of a training clip (training and the latent cache share it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ex4d.data.inputs import GENERATION_MULTIPLE
from ex4d.utils.errors import InputError

VAE_TIME_FACTOR = 4  # Wan VAE: 4x in time (T = 4k + 1 frames -> k + 1 latent frames)
SIZE_MULTIPLE = GENERATION_MULTIPLE  # 8x VAE x 2x DiT patch


def _as_tensor(x, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise InputError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")


def validate_inputs(colour, mask, first_frame=None) -> tuple[Tensor, Tensor, Tensor]:
    """Check and normalise the generator inputs.

    Args:
        colour: (T, H, W, 3) uint8 RGB render of the new path, holes black (frame 0 = source frame).
        mask: (T, H, W) bool (True = trusted pixel). Integer/float masks are accepted when they only hold
            {0, 1} or {0, 255}; anything else is "not binary" (binarise decoded mp4 masks first).
        first_frame: (H, W, 3) uint8 source frame 0 for the I2V conditioning; None uses ``colour[0]``.

    Returns:
        colour (T, H, W, 3) uint8, mask (T, H, W) bool, first_frame (H, W, 3) uint8, all CPU tensors.

    Raises:
        InputError: wrong rank/dtype, colour and mask of different lengths or sizes, non-binary mask,
            H or W not a multiple of 16, T not 4k + 1.
    """
    c = _as_tensor(colour, "colour video")
    m = _as_tensor(mask, "mask video")
    if c.ndim != 4 or c.shape[-1] != 3:
        raise InputError(f"colour video: expected shape (T, H, W, 3), got {tuple(c.shape)}")
    if c.dtype != torch.uint8:
        raise InputError(f"colour video: expected dtype uint8 (0..255), got {c.dtype}")
    if m.ndim == 4 and m.shape[-1] in (1, 3):
        raise InputError(f"mask video: expected shape (T, H, W) (one channel), got {tuple(m.shape)}")
    if m.ndim != 3:
        raise InputError(f"mask video: expected shape (T, H, W), got {tuple(m.shape)}")
    if m.shape[0] != c.shape[0]:
        raise InputError(f"colour and mask videos have different lengths: {c.shape[0]} vs {m.shape[0]} frames")
    if tuple(m.shape[1:]) != tuple(c.shape[1:3]):
        raise InputError(
            f"colour and mask videos have different sizes: colour {tuple(c.shape[1:3])} vs mask {tuple(m.shape[1:])} (H, W)"
        )
    if m.dtype != torch.bool:
        values = torch.unique(m)
        if m.is_floating_point() and not torch.isfinite(values).all():
            raise InputError("mask video is not binary: it holds NaN or inf")
        vals = set(values.tolist())
        if vals <= {0, 1}:
            m = m != 0
        elif m.dtype == torch.uint8 and vals <= {0, 255}:
            m = m != 0
        else:
            shown = sorted(vals)[:6]
            raise InputError(
                f"mask video is not binary: {len(vals)} distinct values (e.g. {shown}); expected bool, {{0, 1}} or "
                "{0, 255} (binarise a decoded mp4 mask first, e.g. mask > 127)"
            )
    T, H, W = m.shape
    if T % VAE_TIME_FACTOR != 1:
        lo = (T - 1) // VAE_TIME_FACTOR * VAE_TIME_FACTOR + 1
        raise InputError(f"frames must be 4k + 1 (e.g. 49, 81) for the Wan VAE, got {T}; use {lo} or {lo + 4}")
    if H % SIZE_MULTIPLE or W % SIZE_MULTIPLE:
        raise InputError(
            f"height and width must be multiples of {SIZE_MULTIPLE} (8x VAE x 2x patch), got {H}x{W}; "
            f"e.g. {H // SIZE_MULTIPLE * SIZE_MULTIPLE}x{W // SIZE_MULTIPLE * SIZE_MULTIPLE}"
        )
    if first_frame is None:
        f0 = c[0].clone()
    else:
        f0 = _as_tensor(first_frame, "first frame")
        if f0.dtype != torch.uint8 or tuple(f0.shape) != (H, W, 3):
            raise InputError(f"first frame: expected ({H}, {W}, 3) uint8, got {tuple(f0.shape)} {f0.dtype}")
    return c.contiguous(), m.contiguous(), f0.contiguous()


def first_frame_image(frame: Tensor, rounding: str = "reference") -> Tensor:
    """The I2V conditioning image, (1, 3, H, W) float32 in [-1, 1].

    ``reference`` reproduces the reference's path exactly: 2 (c/255) - 1 computed in bf16, mapped back
    to 8 bits by truncation (torchvision's ``to_pil_image``), then ``u8 * 2/255 - 1`` in fp32. ``exact``
    is ``u8 / 127.5 - 1``.
    """
    x = frame.permute(2, 0, 1).unsqueeze(0)
    if rounding == "exact":
        return x.float() / 127.5 - 1.0
    if rounding != "reference":
        raise InputError(f"first_frame_rounding: expected 'reference' or 'exact', got {rounding!r}")
    y = (x.float() / 255.0).to(torch.bfloat16) * 2 - 1
    u8 = (y.float() * 0.5 + 0.5).mul(255).to(torch.uint8)  # truncation, as .byte()
    return u8.float() * (2 / 255) - 1


def geometry_inputs(colour: Tensor, mask: Tensor, dtype: torch.dtype, mask_encoding: str = "reference") -> tuple[Tensor, Tensor]:
    """VAE inputs of the geometry encoder, each (1, 3, T, H, W) in ``dtype``.

    x_c = 2 (C * M) - 1 (C in [0, 1], holes -> -1). The mask video m = 2M - 1 in {-1, 1}; ``reference``
    feeds the VAE 2m - 1 in {-3, 1} (the reference maps to +-1 twice; the released encoder was trained on
    that), ``fixed`` feeds m. Arithmetic happens in ``dtype`` like the reference (bf16 there).
    """
    c = colour.permute(3, 0, 1, 2).unsqueeze(0).float() / 255.0  # (1, 3, T, H, W)
    M = mask.unsqueeze(0).unsqueeze(0).float().expand(1, 3, *mask.shape)
    x_c = (c * M).to(dtype) * 2 - 1
    m = M.to(dtype) * 2 - 1
    if mask_encoding == "reference":
        m = m * 2 - 1
    elif mask_encoding != "fixed":
        raise InputError(f"mask_encoding: expected 'reference' or 'fixed', got {mask_encoding!r}")
    return x_c.contiguous(), m.contiguous()


# Per-clip model inputs of a training step; a batch holding all of them (cached latents) skips the VAE and CLIP.
LATENT_KEYS = ("latent_video", "i2v_condition", "clip_tokens", "latent_cond", "latent_mask")


def encode_clip(gen, frames: Tensor, mask: Tensor, mask_encoding: str = "reference",
                first_frame_rounding: str = "reference", clip_preprocess: str = "reference") -> dict[str, Tensor]:
    """Model inputs of one training clip, built by the generator's inference functions.

    Args:
        gen: an :class:`~ex4d.pipelines.generate.EX4DGenerator` over the training components (its device is
            used; only its stage functions run, never the DiT).
        frames: (T, H, W, 3) uint8 source clip, any device (T = 4k + 1, H and W multiples of 16).
        mask: (T, H, W) bool, True = trusted, already eroded (the dataset erodes, as inference does before
            encoding).

    Returns:
        dict of (1, ...) tensors on ``gen.device``: ``latent_video`` (1, 16, F, h, w) fp32 target z_0;
        ``i2v_condition`` (1, 20, F, h, w) fp32 frame mask + first-frame latent; ``clip_tokens``
        (1, n, image_dim) in the DiT dtype; ``latent_cond`` / ``latent_mask`` (1, 16, F, h, w) fp32
        geometry-encoder inputs.
    """
    dev = gen.device
    vae = gen.components.vae
    frames, mask = frames.to(dev), mask.to(dev)
    T = mask.shape[0]
    image = first_frame_image(frames[0], first_frame_rounding)  # (1, 3, H, W) in [-1, 1]
    clip_tokens = gen.encode_image(image, clip_preprocess)
    # Geometry route: inference's masked render has black holes = the source times the mask.
    x_c, x_m = geometry_inputs(frames, mask, vae.dtype, mask_encoding)
    first_latent, z_c, z_m = gen.encode_conditions(image, x_c, x_m)
    condition = gen.first_frame_condition(first_latent, T)  # 4-channel frame mask + first-frame latent
    video = frames.permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0  # (1, 3, T, H, W) in [-1, 1]
    z_0 = gen._vae_encode(video)
    return {"latent_video": z_0, "i2v_condition": condition.float(), "clip_tokens": clip_tokens,
            "latent_cond": z_c, "latent_mask": z_m}


def clip_pixels(image: Tensor, size: int, mean, std) -> Tensor:
    """Reference CLIP preprocessing: bicubic squash of the [-1, 1] image to size x size (no antialias,
    align_corners=False), then (x/2 + 1/2 - mean) / std. Returns (1, 3, size, size) float32."""
    x = F.interpolate(image.float(), size=(size, size), mode="bicubic", align_corners=False)
    x = x * 0.5 + 0.5
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def reference_sigmas(num_steps: int, shift: float) -> Tensor:
    """The reference's sigma schedule, in fp32 as it computes it: sigma' = linspace(1, 0, S+1)[:-1],
    sigma = shift sigma' / (1 + (shift - 1) sigma'). (The terminal 0 is appended by the scheduler.)"""
    s = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float32)[:-1]
    return shift * s / (1 + (shift - 1) * s)


def frames_from_video(video: Tensor) -> Tensor:
    """VAE output (1, 3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8 on the CPU, truncating like the reference."""
    v = ((video[0].float() + 1) * 127.5).clamp(0, 255).to(torch.uint8)
    return v.permute(1, 2, 3, 0).contiguous().cpu()
