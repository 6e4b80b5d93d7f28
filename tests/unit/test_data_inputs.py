"""ex4d.data.inputs: the inference data options, checked before anything is read."""

from __future__ import annotations

import pytest

from ex4d.data.inputs import clip_options, load_input_clip
from ex4d.utils.errors import InputError


@pytest.mark.parametrize("option", ["monocular", "tiny", "synthetic"])
def test_training_data_options_are_refused_for_inference(compose, option):
    cfg = compose("infer", [f"data={option}"])
    with pytest.raises(InputError, match=r"training data option.*inference inputs are the clip group \(clip=video"):
        clip_options(cfg.data)


@pytest.mark.parametrize("option", ["video", "tiny"])
def test_every_clip_option_passes(compose, option):
    """conf/clip (the inference inputs) sits at data.*: each option is the inference schema."""
    cfg = compose("infer", [f"clip={option}"])
    assert clip_options(cfg.data)["num_frames"] == {"video": 49, "tiny": 5}[option]


def test_the_inference_data_option_passes(compose):
    opts = clip_options(compose("infer", ["data.num_frames=5"]).data)
    assert opts["num_frames"] == 5 and opts["height"] is None


@pytest.mark.parametrize("data,key", [
    ({"num_frames": 5, "fps": 30}, r"unknown keys \['fps'\]"),
    ({"gen_height": 0, "gen_width": 512}, "data.gen_height"),
    ({"gen_height": 512, "gen_width": 500}, "data.gen_width must be a multiple of 16.*496 or 512"),
    ({"gen_height": 512, "gen_width": None}, "data.gen_height and data.gen_width"),
    ({"multiple": 0}, "data.multiple"),
])
def test_bad_data_keys_are_named(data, key):
    with pytest.raises(InputError, match=key):
        clip_options(data)


@pytest.mark.parametrize("kw,key", [({"multiple": 0}, "data.multiple"), ({"num_frames": 0}, "data.num_frames"),
                                    ({"height": 100_000, "width": 100_000, "multiple": 16}, "data.height=100000")])
def test_the_builtin_example_checks_options_and_memory(monkeypatch, kw, key):
    monkeypatch.setattr("ex4d.utils.checks.host_memory_bytes", lambda: 64 * 2**30)  # any machine: 49 x 1e10 px won't fit
    with pytest.raises(InputError, match=key):
        load_input_clip("example:motorcycle", **kw)
