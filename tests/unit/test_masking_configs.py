"""Every masking option composes and instantiates without rendering; the mix picks by its ratio."""

import pytest
import torch
from hydra.utils import instantiate

from ex4d.cameras import intrinsics
from ex4d.masking import MixedMask, RenderMask, TrackMask
from ex4d.utils.errors import InputError
from tests.conftest import CONF

OPTIONS = sorted(p.stem for p in (CONF / "masking").glob("*.yaml"))


@pytest.mark.parametrize("option", OPTIONS)
def test_masking_option_instantiates(compose, option):
    cfg = compose("prepare_data", [f"masking={option}", "data=tiny", "depth=planes", "renderer=cpu"])
    obj = instantiate(cfg.masking)
    assert isinstance(obj, (RenderMask, TrackMask, MixedMask))
    if isinstance(obj, RenderMask):
        assert type(obj.renderer).__name__ == "CpuRenderer"  # the run's renderer group reaches the masking


def test_mesh_group_reaches_the_render_mask(compose):
    cfg = compose("prepare_data", ["masking=render", "mesh=torn", "renderer=cpu"])
    assert instantiate(cfg.masking).mesh.mode == "torn"


def test_mixed_mask_picks_by_ratio():
    frames = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    depth, K = torch.full((2, 16, 16), 5.0), intrinsics(16, 16, 16.0)

    class Fake(RenderMask):
        def _sample(self, frames, depth, K, generator):
            from ex4d.masking import MaskSample

            return MaskSample(torch.zeros(depth.shape, dtype=torch.bool), {"strategy": "render"})

    render, track = Fake(), TrackMask()
    always = MixedMask(render, track, ratio=1.0).sample(frames, depth, K, torch.Generator().manual_seed(0))
    never = MixedMask(render, track, ratio=0.0).sample(frames, depth, K, torch.Generator().manual_seed(0))
    assert always.info["chosen"] == "render" and never.info["chosen"] == "track"
    assert always.info["strategy"] == "mixed" and always.mask[0].all() and not always.mask[1].any()
    with pytest.raises(InputError, match="masking.ratio"):
        MixedMask(render, track, ratio=1.5)
