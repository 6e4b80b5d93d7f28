"""Runners: take a composed config, connect the components it names, and return a dict of results.

Entry runners (``infer``, ``train``, ``evaluate``, ``prepare_data``, ``cache_latents``, ``mask_preview``) never
import each other; what two of them share lives in ``stages`` (stage functions from a config: DW-Mesh, generator,
a set of inputs), ``shards`` (training shards and their settings), ``validate`` (config checks), ``common`` (run
folders and records) and ``cli`` (exit codes). Only runners and the app import Hydra (docs/architecture.md).
"""
