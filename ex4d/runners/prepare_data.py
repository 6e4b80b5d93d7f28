"""``python tools/prepare_data.py``: depth + simulated masking once per clip -> training shards."""

from __future__ import annotations

from omegaconf import DictConfig

from ex4d.runners.shards import write_shards


def run_prepare_data(cfg: DictConfig) -> dict:
    """Instantiate data, depth and masking from ``cfg`` and write the shards (:func:`ex4d.runners.shards.write_shards`);
    returns the summary."""
    return write_shards(cfg)
