"""Pipelines: plain-PyTorch compositions of the stages (no Hydra, no Lightning)."""
