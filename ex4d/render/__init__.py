"""Mesh renderers: one interface (``Renderer``), a CPU ray-casting backend and an nvdiffrast backend.

``make_renderer("auto")`` picks nvdiffrast when a CUDA device and a working nvdiffrast are present,
else the CPU renderer. The backends are imported lazily (``ex4d.render.CpuRenderer`` works without
importing embreex until used, ``ex4d.render.NvdiffrastRenderer`` without CUDA or nvdiffrast).
"""

from __future__ import annotations

import importlib
import logging

from ex4d.render.base import (
    COMPOSITES,
    MASK_THRESHOLD,
    RENDERER_COMPOSITES,
    Renderer,
    RenderResult,
    finalize_rgba,
    resolve_composite,
)
from ex4d.utils.checks import check_choice

log = logging.getLogger(__name__)

RENDERER_BACKENDS = ("auto", "cpu", "nvdiffrast")

_LAZY = {
    "CpuRenderer": "ex4d.render.cpu_backend",
    "NvdiffrastRenderer": "ex4d.render.nvdiffrast_backend",
    "RendererUnavailableError": "ex4d.render.nvdiffrast_backend",
    "nvdiffrast_available": "ex4d.render.nvdiffrast_backend",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ex4d.render' has no attribute {name!r}")


def make_renderer(backend: str = "auto", near: float = 1e-3, far: float = 1e3, antialias: bool = True,
                  device: str = "cuda", num_threads: int | None = None, composite: str = "auto") -> Renderer:
    """Build a renderer by name.

    Args:
        backend: ``"nvdiffrast"`` (CUDA), ``"cpu"`` (Embree ray caster) or ``"auto"`` (nvdiffrast when
            CUDA and nvdiffrast work here, else cpu; the first call may JIT-build nvdiffrast's plugin).
        near, far: clip distances along camera z.
        antialias: nvdiffrast only (the CPU renderer point-samples).
        device: nvdiffrast only, the CUDA device.
        num_threads: cpu only, tracing threads (default: all cores).
        composite: how trusted colour is made: ``auto`` (``mask`` for parity meshes, else ``unpremultiply``),
            ``mask`` (the reference's rgb * M) or ``unpremultiply`` (rgb / alpha * M); see ``ex4d.render.base``.
    """
    check_choice(backend, "renderer.backend", RENDERER_BACKENDS)
    if backend == "auto":
        from ex4d.render.nvdiffrast_backend import nvdiffrast_available

        backend = "nvdiffrast" if nvdiffrast_available() else "cpu"
        log.info("renderer=auto picked %s", backend)
    if backend == "nvdiffrast":
        from ex4d.render.nvdiffrast_backend import NvdiffrastRenderer

        return NvdiffrastRenderer(near=near, far=far, antialias=antialias, device=device, composite=composite)
    from ex4d.render.cpu_backend import CpuRenderer

    return CpuRenderer(near=near, far=far, num_threads=num_threads, composite=composite)


__all__ = [
    "COMPOSITES",
    "MASK_THRESHOLD",
    "RENDERER_COMPOSITES",
    "RENDERER_BACKENDS",
    "CpuRenderer",
    "NvdiffrastRenderer",
    "Renderer",
    "RenderResult",
    "RendererUnavailableError",
    "finalize_rgba",
    "make_renderer",
    "nvdiffrast_available",
    "resolve_composite",
]
