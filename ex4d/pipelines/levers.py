"""Which speed levers a generator runs with: one small policy, overridable per lever, reported per run.

The exact levers (outputs equal to the plain path up to float reassociation; docs/performance.md "Levers"
has the measured table) are switched by ``GenerateSettings.levers``:

* ``auto`` (default): each exact lever where it was measured to help. On CUDA with a full-size model:
  the LoRA merged into the DiT in place (no base copy), regional ``torch.compile`` of the DiT blocks with a
  persistent compile cache (so the warm-up is paid once per machine, not per process), UMT5 streamed block
  by block from pinned memory in ``gpu`` mode (it runs once per prompt: 11 GB less resident), and CFG as one
  batch-2 forward where the DiT is streamed (``low_vram``: it halves the weight traffic; on a resident DiT
  batch 2 measured no faster than two forwards). The three VAE encodes as one batch stay off (1.02x on
  their stage, +3.6 GiB peak). On the CPU and for the tiny test model: the plain path.
* ``exact``: every exact lever wherever it can run (for benchmarks).
* ``off``: the plain path, as the reference code runs (LoRA unmerged, eager, two CFG forwards).

Two caches persist per machine (:func:`default_cache_dir`) under ``auto``, on CUDA with a full-size model: the
compile artefacts of each compiled variant, and the text embeddings of each (prompt pair, text encoder), so a
later process neither recompiles nor runs UMT5 for a prompt this machine has seen (the EX-4D prompt is fixed).

A lever set to ``true`` / ``false`` in the settings wins over the policy. The inexact levers (fp8 matmuls,
first-block cache, CFG truncation) are never switched on by a policy.

Example::

    plan = plan_levers(GenerateSettings(), device=torch.device("cuda"), tiny=False, memory_mode="gpu")
    plan.values   # {'fuse_lora': True, 'compile_blocks': True, 'cfg_batch': False, 'vae_batch': False,
                  #  'stream_text_encoder': True}
    plan.reasons  # why each one is on or off
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

LEVER_MODES = ("auto", "exact", "off")
EXACT_LEVERS = ("fuse_lora", "compile_blocks", "cfg_batch", "vae_batch", "stream_text_encoder")
COMPILE_CACHE_AUTO = "auto"


@dataclass(frozen=True)
class LeverPlan:
    """The resolved exact levers of one generator, why each is on or off, and the compile cache used."""

    values: dict[str, bool]
    reasons: dict[str, str]
    mode: str
    compile_cache: str | None = None
    text_cache: str | None = None
    build_seconds: dict[str, float] = field(default_factory=dict)

    def report(self) -> dict:
        """What summary.json records under ``generate.levers``."""
        out = {"mode": self.mode, **{k: {"on": v, "why": self.reasons[k]} for k, v in self.values.items()}}
        out["compile_cache"] = self.compile_cache
        out["text_cache"] = self.text_cache
        if self.build_seconds:
            out["build_seconds"] = {k: round(v, 3) for k, v in self.build_seconds.items()}
        return out


def _cannot_run(lever: str, *, device: torch.device, memory_mode: str, text_encoder: bool) -> str | None:
    """Why ``lever`` cannot run here whatever the settings say (None: it can)."""
    if lever == "compile_blocks" and device.type != "cuda":
        return "compile runs on CUDA only"
    if lever == "stream_text_encoder":
        if not text_encoder:
            return "no text encoder is loaded"
        if memory_mode != "gpu":
            return f"memory_mode={memory_mode} moves the text encoder for its stage already"
    return None


def _auto(lever: str, *, mode: str, device: torch.device, tiny: bool, memory_mode: str, parallel: bool,
          shared_dit: bool, merge_per_call: bool, text_encoder: bool) -> tuple[bool, str]:
    if mode == "off":
        return False, "levers=off"
    if device.type != "cuda":
        return False, "not on CUDA: the plain path"
    why = _cannot_run(lever, device=device, memory_mode=memory_mode, text_encoder=text_encoder)
    if why:
        return False, why
    if lever in ("fuse_lora", "compile_blocks") and shared_dit:
        return False, "the DiT is shared with training (its weights must stay unmerged and eager)"
    if lever == "fuse_lora" and merge_per_call:
        return False, "merge_lora_per_call merges per call instead"
    if mode == "exact":
        return True, "levers=exact"
    if tiny:
        return False, "tiny test model: the plain path"
    if lever == "fuse_lora":
        return True, "measured 1.12x per forward; merged in place, no base copy"
    if lever == "compile_blocks":
        if parallel:
            return False, "context parallelism: compile not measured with it"
        if memory_mode == "low_vram":
            return False, "memory_mode=low_vram: group offloading's hooks break the block graphs"
        return True, "measured 1.28x per forward over the merged DiT; compile cache persists across processes"
    if lever == "cfg_batch":
        if memory_mode == "low_vram":
            return True, "low_vram: one weight stream per step for both branches (measured 1.23x)"
        return False, f"memory_mode={memory_mode}: batch 2 measured no faster than two forwards"
    if lever == "vae_batch":
        return False, "measured 1.02x on the three encodes (0.03 s a video) for +3.6 GiB of peak memory"
    if lever == "stream_text_encoder":
        return True, ("UMT5 runs once per prompt (embeddings cached): streamed block by block from pinned memory, "
                      "10.6 GiB less resident")
    raise KeyError(lever)


def plan_levers(settings, *, device: torch.device | str, tiny: bool, memory_mode: str, parallel: bool = False,
                shared_dit: bool = False, text_encoder: bool = True) -> LeverPlan:
    """Resolve the exact levers of ``settings`` (a :class:`~ex4d.pipelines.generate.GenerateSettings`).

    Args:
        device: where the DiT runs.
        tiny: the tiny test model (the plain path under ``auto``).
        memory_mode: ``gpu`` | ``offload`` | ``low_vram`` (already resolved from ``auto``).
        parallel: the DiT forward is split over ranks (context parallelism).
        shared_dit: the generator shares its DiT with training: nothing that rewrites or compiles it.
        text_encoder: a text encoder is loaded (else there is nothing to stream).
    """
    device = torch.device(device)
    values, reasons = {}, {}
    for lever in EXACT_LEVERS:
        given = getattr(settings, lever)
        if given is not None:
            why = _cannot_run(lever, device=device, memory_mode=memory_mode, text_encoder=text_encoder) if given else None
            values[lever], reasons[lever] = (False, f"set, but {why}") if why else (bool(given), "set")
            continue
        values[lever], reasons[lever] = _auto(
            lever, mode=settings.levers, device=device, tiny=tiny, memory_mode=memory_mode, parallel=parallel,
            shared_dit=shared_dit, merge_per_call=bool(settings.merge_lora_per_call), text_encoder=text_encoder,
        )
    cache = settings.compile_cache if values["compile_blocks"] else None  # nothing compiled: nothing to keep
    if cache == COMPILE_CACHE_AUTO:
        cache = str(default_cache_dir() / "compile")
    text = settings.text_cache if text_encoder else None
    if text == COMPILE_CACHE_AUTO:  # where the exact levers run (the reference path keeps nothing)
        on = device.type == "cuda" and not tiny and settings.levers != "off"
        text = str(default_cache_dir() / "text") if on else None
    return LeverPlan(values, reasons, settings.levers, cache, text)


def default_cache_dir() -> Path:
    """Per-machine cache of the project: ``$EX4D_CACHE_DIR``, else ``$XDG_CACHE_HOME/ex4d``, else
    ``~/.cache/ex4d``."""
    if os.environ.get("EX4D_CACHE_DIR"):
        return Path(os.environ["EX4D_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ex4d"


def use_persistent_inductor_cache(cache_dir: Path) -> None:
    """Point inductor's and Triton's on-disk caches into ``cache_dir`` (unless the user set them): the
    defaults live in /tmp, which does not outlive a reboot or a container."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(cache_dir / "triton"))


def weights_fingerprint(module: torch.nn.Module, samples: int = 256) -> str:
    """A cheap identity of a model's weights: its class, config, every parameter's and buffer's name, shape and
    dtype, and ``samples`` evenly strided values of each (so a fine-tuned or re-seeded model differs; reading
    them costs milliseconds where hashing 11 GB would cost seconds)."""
    h = hashlib.sha256(type(module).__name__.encode())
    config = getattr(module, "config", None)
    if config is not None:
        as_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        h.update(json.dumps(as_dict, sort_keys=True, default=str).encode())
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        flat = t.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // samples)][:samples].cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(sample.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]


def text_cache_file(cache: str | Path, *, encoder: str, key: dict) -> Path:
    """The file of one prompt pair's embeddings in the text cache folder, named by the text encoder's
    :func:`weights_fingerprint` and ``key`` (prompts, their token ids, dtype, length)."""
    blob = json.dumps({"encoder": encoder, **key}, sort_keys=True, default=str)
    return Path(cache) / f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}.safetensors"


def compile_cache_file(cache: str | Path, *, model_config: dict, key: dict) -> Path:
    """The compile-artefact file for one compiled variant: ``cache`` itself when it names a file (``.bin``),
    else a file in that folder named by the torch version, the GPU, the DiT config and ``key`` (shape, batch)."""
    cache = Path(cache)
    if cache.suffix:
        return cache
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    blob = json.dumps({"torch": torch.__version__, "gpu": gpu, "dit": model_config, **key}, sort_keys=True,
                      default=str)
    return cache / f"{hashlib.sha256(blob.encode()).hexdigest()[:20]}.bin"


__all__ = [
    "COMPILE_CACHE_AUTO",
    "EXACT_LEVERS",
    "LEVER_MODES",
    "LeverPlan",
    "compile_cache_file",
    "default_cache_dir",
    "plan_levers",
    "text_cache_file",
    "use_persistent_inductor_cache",
    "weights_fingerprint",
]
