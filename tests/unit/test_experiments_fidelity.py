"""experiments/fidelity: the right-view protocol (ground-truth visibility, scores) on hand-checkable scenes."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

FIDELITY = ROOT / "experiments" / "fidelity"


def _load(name: str):
    sys.path.insert(0, str(FIDELITY))  # the figure script imports right_view as a sibling
    spec = importlib.util.spec_from_file_location(name, FIDELITY / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rv():
    return _load("right_view")


@pytest.fixture(scope="module")
def renderer():
    from ex4d.render.cpu_backend import CpuRenderer

    return CpuRenderer(num_threads=1)


def test_true_visibility_of_a_strip_in_front_of_a_wall(rv, renderer):
    """f = 20 px, baseline 1: the wall (z = 4, disparity 5 px) shifts 5 px left in the right view, the strip in
    front (source columns 15..19, z = 2, disparity 10 px) 10 px. Right of the strip the right camera looks into
    the gap the strip hid from the left one: the gap spans x = 9.5..15.5 (pixel centres at +0.5), so columns
    10..14 are occluded (9, on the boundary, goes either way); the strip covers 5..9; the last 5 columns see
    past the left view's frame (not scored)."""
    H, W, f = 8, 40, 20.0
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    depth = np.full((H, W), 4.0, np.float32)
    depth[:, 15:20] = 2.0
    disparity = (f * 1.0 / depth).astype(np.float32)
    w2c = np.eye(4)[None].copy()
    w2c[0, 0, 3] = -1.0  # camera centre at x = +1
    covisible, occluded = rv.true_visibility(depth, disparity, K, w2c, K, renderer)
    for row in range(1, H - 1):
        assert set(range(10, 15)) <= set(np.flatnonzero(occluded[row]).tolist()) <= set(range(9, 15)), row
        assert covisible[row, :9].all() and covisible[row, 15:W - 6].all()
        assert not (covisible[row, W - 5:] | occluded[row, W - 5:]).any()  # outside the left view
    # a ground-truth hole next to the strip: the step is measured on the filled disparity, so the gap stays occluded
    holed = disparity.copy()
    holed[:, 20] = np.nan
    cov2, occ2 = rv.true_visibility(depth, holed, K, w2c, K, renderer)
    assert occ2[1:-1, 10:15].all() and not cov2[1:-1, 10:15].any()


def test_scores_by_hand(rv):
    target = np.full((8, 8, 3), 100, np.uint8)
    colour = np.full((8, 8, 3), 110, np.uint8)  # every trusted pixel 10 levels off: PSNR 10 log10(255^2 / 100)
    covisible = np.zeros((8, 8), bool)
    covisible[0, :5] = covisible[1, :5] = True  # 10 co-visible
    occluded = np.zeros((8, 8), bool)
    occluded[:2, 5:7] = True  # 4 occluded
    mask = covisible.copy()
    mask[0, 0] = mask[1, 0] = False  # 2 of 10 co-visible pixels marked hole
    mask[0, 5] = True  # 1 of 4 occluded pixels trusted
    s = rv.score(colour, mask, target, covisible, occluded)
    assert s["leak"] == pytest.approx(0.25) and s["over_mask"] == pytest.approx(0.2)
    assert s["psnr_db"] == pytest.approx(10 * math.log10(255**2 / 100)) and s["n_trusted"] == 8
    perfect = rv.score(target.copy(), mask, target, covisible, occluded)
    assert perfect["psnr_db"] == math.inf and perfect["ssim"] == pytest.approx(1.0)


def test_figure_classes(rv):
    fig = _load("mesh_modes_figure")
    covisible = np.array([[True, True, False, False, False]])
    occluded = np.array([[False, False, True, True, False]])
    mask = np.array([[True, False, True, False, True]])
    img = fig.class_image(mask, covisible, occluded)
    expected = ["trusted", "over_mask", "leak", "hole", "unscored"]
    assert [tuple(img[0, i]) for i in range(5)] == [fig.CLASS_COLOURS[k] for k in expected]


def test_right_view_run_at_a_small_size(rv):
    """The whole protocol at a quarter of the size: torn leaks almost everything, DW-Mesh little; compositing
    changes the colour, never the mask (these are properties, not the documented numbers)."""
    out = rv.run(["fixed", "torn"], ["mask", "unpremultiply"], 125, 185, num_threads=1)
    r = {(x["mode"], x["composite"]): x for x in out["results"]}
    assert r["torn", "mask"]["leak"] > 0.9 > 0.2 > r["fixed", "mask"]["leak"]
    for mode in ("fixed", "torn"):
        assert r[mode, "mask"]["leak"] == r[mode, "unpremultiply"]["leak"]
        assert r[mode, "mask"]["over_mask"] == r[mode, "unpremultiply"]["over_mask"]
    assert r["fixed", "unpremultiply"]["psnr_db"] > r["fixed", "mask"]["psnr_db"]
    assert 0 < out["occluded_fraction"] < out["covisible_fraction"] < 1 and out["size"] == [125, 185]
