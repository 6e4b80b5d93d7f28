"""ex4d.evaluation without Hydra or Lightning: the Evaluator's documented example on two real 5-frame clips,
the Metric protocol of the adapters, a state split over two "processes" and merged, missing weights."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import ex4d.evaluation.evaluator as evaluator_module
from ex4d.evaluation import (CAMERAS, GENERATED, SOURCE, EvalItem, Evaluator, Metric, MetricBase, PairReader,
                             SourceFrames, VideoPair, as_metrics)
from ex4d.io.video import resize_frames, write_video
from ex4d.metrics import FIDKID, FVD, TemporalFlickering, camera_following
from ex4d.metrics.tiny import TinyFrameFeatures
from ex4d.utils.errors import MissingWeightsError

CLIP = dict(num_frames=5, max_side=128, multiple=16)


@pytest.fixture
def copies(tmp_path, sample_videos):
    """(source_dir, generated_dir): two sample videos and, as the "generated" videos, their clips resized to
    32x48 (lossless), so a perfect method's numbers are known."""
    src, gen = tmp_path / "src", tmp_path / "gen"
    src.mkdir()
    gen.mkdir()
    for name in ("bikes", "carphone_pristine"):
        shutil.copy(sample_videos[name], src / f"{name}.mp4")
        write_video(gen / f"{name}.mp4", resize_frames(SourceFrames(**CLIP)(src / f"{name}.mp4"), 32, 48), fps=15,
                    lossless=True)
    return src, gen


def test_the_documented_example_runs_without_hydra(copies):
    """The code block of ex4d/evaluation/evaluator.py's docstring, run as written."""
    example = re.search(r"::\n\n((?:    .*\n)+)", evaluator_module.__doc__).group(1)
    lines = [ln[4:] for ln in example.splitlines()]
    assert len(lines) == 5 and not any("hydra" in ln or "lightning" in ln for ln in lines)
    scope = {"source_dir": copies[0], "generated_dir": copies[1]}
    exec("\n".join(lines), scope)
    result = scope["result"]
    fid = result.metrics["fid"]
    assert fid["n"] == 2 and abs(fid["value"]) < 1e-3 and "TEST ONLY" in fid["note"]  # identical sets
    assert result.metrics["kid"]["n"] == 2 and result.metrics["temporal_flickering"]["n"] == 2
    assert [r["id"] for r in result.rows] == ["bikes", "carphone_pristine"]
    assert result.rows[0]["frames"] == 5 and (result.rows[0]["height"], result.rows[0]["width"]) == (32, 48)
    assert 0 < result.rows[0]["temporal_flickering"] <= 1 and result.skipped == [] and result.test_only


def test_adapters_state_what_they_read_and_load():
    ms = as_metrics({"fid": FIDKID(), "tiny_fid": FIDKID(extractor=TinyFrameFeatures()), "fvd": FVD("first16"),
                     "flicker": TemporalFlickering(), "camera_following": camera_following})
    assert all(isinstance(m, Metric) for m in ms.values())
    assert ms["fid"].weights == ("fid_inception",) and ms["tiny_fid"].weights == ()  # an injected network loads nothing
    assert ms["fvd"].weights == ("i3d_styleganv",) and ms["flicker"].weights == ()
    assert ms["fid"].requires == {GENERATED, SOURCE} and ms["flicker"].requires == {GENERATED}
    assert ms["camera_following"].requires == {GENERATED, CAMERAS}
    assert ms["fid"].reports == ("fid", "kid") and ms["camera_following"].reports[0] == "camera_rotation_error_deg"
    assert Evaluator(ms).requires == {GENERATED, SOURCE, CAMERAS}


class MeanBrightness(MetricBase):
    """A metric written against the protocol directly: mean pixel value of each generated video."""

    def update(self, pair: VideoPair) -> dict:
        self.per_video[pair.index] = float(pair.generated.mean())
        return {self.name: self.per_video[pair.index]}

    def compute(self) -> dict:
        values = self.ordered()
        return {self.name: {"value": float(np.mean(values)), "n": len(values)}}


def _pairs(n: int = 4) -> list[VideoPair]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        gen = rng.integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
        src = rng.integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
        out.append(VideoPair(i, f"v{i}", gen, src, f"gen/v{i}.mp4", f"src/v{i}.mp4", 16.0))
    return out


def _evaluator() -> Evaluator:
    e = Evaluator({"fid": FIDKID(extractor=TinyFrameFeatures(), n_boot=20), "flicker": TemporalFlickering(n_boot=20),
                   "brightness": MeanBrightness("brightness")})
    e.preflight(have_targets=False)
    e.load()
    return e


def test_shares_merged_in_video_order_give_the_one_process_numbers():
    """What two processes kept (each a share of the videos, as on two GPUs), merged, computes the numbers of one
    process that saw every video: features and per-video scores are replayed in video order."""
    pairs = _pairs()
    one = _evaluator()
    for p in pairs:
        one.update(p)
    rank0, rank1 = _evaluator(), _evaluator()
    for p in pairs:
        (rank0 if p.index % 2 else rank1).update(p)  # interleaved, the way a distributed sampler shares them
    rank0.merge([rank1.state()])
    merged, single = rank0.compute(), one.compute()
    assert merged.metrics == single.metrics and merged.rows == single.rows
    assert [r["id"] for r in merged.rows] == ["v0", "v1", "v2", "v3"] and merged.metrics["brightness"]["n"] == 4
    assert merged.metrics["fid"]["n"] == 4 and merged.metrics["fid"]["value"] > 0


def test_a_metric_without_its_weights_stops_the_run_unless_allowed_to_skip(tmp_path):
    metrics = {"fvd_first16": FVD("first16", weights_root=tmp_path), "brightness": MeanBrightness("brightness")}
    with pytest.raises(MissingWeightsError, match=r"^1 requested metric\(s\) cannot run .*fvd_first16 \(missing "
                                                  r"i3d_torchscript\.pt\).*allow_skip=true"):
        Evaluator(metrics, weights_dir=tmp_path).preflight(have_targets=False)
    e = Evaluator(metrics, allow_skip=True)
    e.preflight(have_targets=False)
    e.load()
    for p in _pairs(2):
        e.update(p)
    result = e.compute()
    assert result.skipped == ["fvd_first16"] and result.metrics["fvd_first16"]["skipped"]
    assert "i3d_torchscript.pt" in result.metrics["fvd_first16"]["reason"] and result.metrics["brightness"]["n"] == 2
