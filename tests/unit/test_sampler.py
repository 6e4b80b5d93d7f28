"""The reference sampler's pieces: sigma schedule, Euler step, mask erosion, conditioning tensors, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ex4d.pipelines.conditioning import (
    clip_pixels,
    first_frame_image,
    frames_from_video,
    geometry_inputs,
    reference_sigmas,
    validate_inputs,
)
from ex4d.pipelines.generate import GenerateSettings
from ex4d.utils.errors import InputError


def _scheduler(steps: int = 25, shift: float = 5.0):
    from diffusers import FlowMatchEulerDiscreteScheduler

    s = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    s.set_timesteps(sigmas=torch.linspace(1.0, 0.0, steps + 1)[:-1].numpy())
    return s


@pytest.mark.parametrize("steps", [25, 10, 1])
def test_sigma_schedule_equals_the_method_doc_formula(steps):
    s = _scheduler(steps)
    # method doc: sigma' = linspace(1, 0, S+1), sigma = 5 s / (1 + 4 s), Euler to 0
    sp = np.linspace(1.0, 0.0, steps + 1)
    formula = 5 * sp / (1 + 4 * sp)
    np.testing.assert_allclose(s.sigmas.numpy().astype(np.float64), formula, atol=1e-7, rtol=0)
    assert s.sigmas[-1] == 0 and len(s.timesteps) == steps
    # bit-identical to the reference's own fp32 arithmetic, terminal 0 appended
    assert torch.equal(s.sigmas[:-1], reference_sigmas(steps, 5.0))
    assert torch.equal(s.timesteps, s.sigmas[:-1] * 1000)


def test_25_step_schedule_endpoints():
    sig = reference_sigmas(25, 5.0)
    assert sig[0] == 1.0
    assert sig[1].item() == pytest.approx(5 * 0.96 / (1 + 4 * 0.96), abs=1e-7)
    assert sig[-1].item() == pytest.approx(5 * 0.04 / (1 + 4 * 0.04), abs=1e-7)


def test_scheduler_step_is_plain_euler_in_fp32():
    s = _scheduler(25)
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 16, 2, 4, 4, generator=g)
    for i, t in enumerate(s.timesteps[:3]):
        nxt = s.step(v, t, x, return_dict=False)[0]
        assert nxt.dtype == torch.float32
        assert torch.equal(nxt, x + (s.sigmas[i + 1] - s.sigmas[i]) * v)
        x = nxt


def test_generator_erosion_is_the_shared_seeded_reference_erosion():
    """The generator uses ex4d.masking.erosion (cv2.erode semantics, seeded per-frame k in 2..8)."""
    from ex4d.masking.erosion import erode_masks, sample_erosion_sizes

    mask = torch.ones(9, 40, 40, dtype=torch.bool)
    mask[:, 10:30, 10:30] = False
    a = erode_masks(mask, torch.Generator().manual_seed(0), 2, 8)
    assert torch.equal(a, erode_masks(mask, torch.Generator().manual_seed(0), 2, 8))
    ks = sample_erosion_sizes(9, torch.Generator().manual_seed(0), 2, 8)
    assert ks.min() >= 2 and ks.max() <= 8
    for i, k in enumerate(ks.tolist()):
        assert (~a[i]).sum(dim=0).max().item() == 20 + k - 1  # a k x k erosion grows a hole by k - 1


def test_geometry_inputs_reference_double_mapping():
    colour = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    mask = torch.tensor([[[True, False], [False, True]]])
    x_c, x_m = geometry_inputs(colour, mask, torch.float32, "reference")
    assert x_c.shape == (1, 3, 1, 2, 2)
    assert set(x_c.unique().tolist()) == {-1.0, 1.0}  # holes -> -1 (black), white trusted -> 1
    assert set(x_m.unique().tolist()) == {-3.0, 1.0}  # reference: 2(2M-1)-1
    _, x_m_fixed = geometry_inputs(colour, mask, torch.float32, "fixed")
    assert set(x_m_fixed.unique().tolist()) == {-1.0, 1.0}


def test_first_frame_reference_rounding_truncates_like_to_pil_image():
    frame = torch.arange(256, dtype=torch.uint8).repeat(3, 1).T.reshape(16, 16, 3)
    exact = first_frame_image(frame, "exact")
    ref = first_frame_image(frame, "reference")
    assert exact.shape == ref.shape == (1, 3, 16, 16)
    diff = ((exact - ref) * 127.5).round()
    assert diff.min() >= 0 and diff.max() <= 1  # at most one grey level lower, never higher
    assert torch.equal(ref[0, :, 0, 0], torch.full((3,), -1.0))


def test_clip_pixels_shape_and_normalisation():
    img = torch.zeros(1, 3, 32, 48)  # mid grey in [-1, 1]
    px = clip_pixels(img, 28, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    assert px.shape == (1, 3, 28, 28) and torch.allclose(px, torch.zeros_like(px), atol=1e-6)


def test_frames_from_video_truncates_and_clamps():
    v = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0]).view(1, 1, 5, 1, 1).expand(1, 3, 5, 1, 1)
    f = frames_from_video(v)
    assert f.shape == (5, 1, 1, 3) and f.dtype == torch.uint8
    assert f[:, 0, 0, 0].tolist() == [0, 0, 127, 255, 255]


# ---- input validation ------------------------------------------------------------------------


def _ok(T=5, H=32, W=48):
    return np.zeros((T, H, W, 3), np.uint8), np.ones((T, H, W), bool)


def test_valid_inputs_pass_and_masks_are_normalised():
    c, m = _ok()
    c2, m2, f0 = validate_inputs(c, m.astype(np.uint8) * 255)
    assert m2.dtype == torch.bool and m2.all() and f0.shape == (32, 48, 3)
    _, m3, _ = validate_inputs(c, m.astype(np.float32))
    assert m3.all()


@pytest.mark.parametrize(
    "case,match",
    [
        ("length", "different lengths"),
        ("size", "different sizes"),
        ("nonbinary", "not binary"),
        ("res", "multiples of 16"),
        ("frames", "4k \\+ 1"),
        ("dtype", "uint8"),
        ("channels", "one channel"),
        ("first", "first frame"),
    ],
)
def test_bad_inputs_raise_clear_errors(case, match):
    c, m = _ok()
    f0 = None
    if case == "length":
        m = m[:4]
    elif case == "size":
        m = m[:, :16]
    elif case == "nonbinary":
        m = (np.arange(5 * 32 * 48).reshape(5, 32, 48) % 7).astype(np.uint8)
    elif case == "res":
        c, m = _ok(H=40, W=40)
        c, m = c[:, :36], m[:, :36]
    elif case == "frames":
        c, m = _ok(T=6)
    elif case == "dtype":
        c = c.astype(np.float32)
    elif case == "channels":
        m = np.ones((5, 32, 48, 3), bool)
    elif case == "first":
        f0 = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(InputError, match=match):
        validate_inputs(c, m, f0)


@pytest.mark.parametrize(
    "kwargs,key",
    [
        (dict(num_steps=0), "num_steps"),
        (dict(guidance_scale=0.5), "guidance_scale"),
        (dict(shift=0), "shift"),
        (dict(erosion_min=5, erosion_max=3), "erosion"),
        (dict(mask_encoding="double"), "mask_encoding"),
        (dict(clip_preprocess="crop"), "clip_preprocess"),
    ],
)
def test_generate_settings_schema(kwargs, key):
    with pytest.raises(InputError, match=key):
        GenerateSettings(**kwargs)
