"""Mesh renderers: one interface (``Renderer``), a CPU ray-casting backend and an nvdiffrast backend."""

from ex4d.render.base import MASK_THRESHOLD, Renderer, RenderResult, finalize_rgba

__all__ = ["MASK_THRESHOLD", "Renderer", "RenderResult", "finalize_rgba"]
