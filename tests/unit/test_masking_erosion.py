"""Random mask erosion: exact cv2.erode semantics, seeded per-frame kernel sizes."""

import cv2
import numpy as np
import pytest
import torch

from ex4d.masking.erosion import erode, erode_masks, sample_erosion_sizes
from ex4d.utils.errors import InputError


@pytest.mark.parametrize("k", range(1, 9))
def test_erode_matches_cv2_exactly(rng, k):
    # The reference erodes 0/255 mask frames with cv2.erode(np.ones((k, k))): anchor k//2, border never erodes.
    mask = rng.random((3, 29, 35)) > 0.15
    ref = np.stack([cv2.erode(m.astype(np.uint8) * 255, np.ones((k, k), np.uint8)) > 127 for m in mask])
    np.testing.assert_array_equal(erode(torch.from_numpy(mask), k).numpy(), ref)


def test_per_frame_sizes_are_seeded_and_cover_2_to_8():
    a = sample_erosion_sizes(7000, torch.Generator().manual_seed(5))
    b = sample_erosion_sizes(7000, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    counts = torch.bincount(a, minlength=9)
    assert counts[:2].sum() == 0 and (counts[2:] > 0).all()
    assert counts[2:].float().div(7000).sub(1 / 7).abs().max() < 0.02  # uniform over 2..8
    assert not torch.equal(a, sample_erosion_sizes(7000, torch.Generator().manual_seed(6)))


def test_erode_masks_is_deterministic_and_uses_each_frames_size(rng):
    mask = torch.from_numpy(rng.random((6, 24, 24)) > 0.05)
    out1 = erode_masks(mask, torch.Generator().manual_seed(0))
    out2 = erode_masks(mask, torch.Generator().manual_seed(0))
    assert torch.equal(out1, out2)
    sizes = sample_erosion_sizes(6, torch.Generator().manual_seed(0))
    for t in range(6):
        assert torch.equal(out1[t], erode(mask[t], int(sizes[t])))
    assert (out1 <= mask).all()  # erosion only removes trusted pixels


def test_full_mask_stays_full_and_bad_input_is_rejected():
    full = torch.ones(3, 16, 16, dtype=torch.bool)
    assert erode_masks(full, torch.Generator().manual_seed(1)).all()
    with pytest.raises(InputError, match="bool"):
        erode_masks(full.float(), None)
    with pytest.raises(InputError, match="k_min"):
        erode_masks(full, None, k_min=5, k_max=2)
