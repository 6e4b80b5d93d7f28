"""Generation as a LightningModule, so ``trainer.predict`` runs many videos and spreads them over GPUs.

The module holds only the configuration objects; each rank builds its own :class:`EX4DGenerator` on its
device when prediction starts (``setup``), outside the module tree, so Lightning never moves the 14B model
itself (the generator's memory mode decides where models live). Writing outputs and skipping finished
videos belong to the caller (a prediction writer callback and the dataset), not here.

Batch format (use a DataLoader with ``batch_size=None``: one video per step)::

    {"id": str, "colour": (T, H, W, 3) uint8, "mask": (T, H, W) bool,
     "first_frame": (H, W, 3) uint8 (optional), "prompt": str (optional), "seed": int (optional)}

``predict_step`` returns ``{"id": ..., "frames": (T, H, W, 3) uint8 CPU tensor, "timings": {...}}``. With
``continue_on_error`` a failing video (or a batch that arrives as ``{"id", "error"}``, an input the dataset
could not prepare) gives ``{"id": ..., "error": one-line reason, "traceback": str}`` instead, and the loop goes on.
"""

from __future__ import annotations

import time

from pathlib import Path

import lightning as L

from ex4d.model.adapter import LoraSettings
from ex4d.pipelines.generate import EX4DGenerator, GenerateSettings, build_generator
from ex4d.pipelines.windows import WindowSettings, generate_windowed


class GeneratePredictModule(L.LightningModule):
    """Args: as :func:`~ex4d.pipelines.generate.build_generator` (``model`` is a config-group loader); ``windows``:
    videos longer than ``windows.frames`` are generated in overlapping windows (:mod:`ex4d.pipelines.windows`)."""

    def __init__(
        self,
        model,
        lora: LoraSettings | None = None,
        checkpoint: str | Path | None = None,
        settings: GenerateSettings | None = None,
        memory_mode: str | None = None,
        continue_on_error: bool = False,
        windows: WindowSettings | None = None,
    ) -> None:
        super().__init__()
        self.continue_on_error = continue_on_error
        self.model_loader = model
        self.lora = lora
        self.checkpoint = checkpoint
        self.settings = settings
        self.memory_mode = memory_mode
        self.windows = windows
        self._generator: EX4DGenerator | None = None  # a plain object: not a registered submodule

    @property
    def generator(self) -> EX4DGenerator:
        if self._generator is None:
            raise RuntimeError("GeneratePredictModule: the generator is built in setup(); call trainer.predict")
        return self._generator

    def setup(self, stage: str) -> None:
        if self._generator is None:
            self._generator = build_generator(
                self.model_loader, self.lora, self.checkpoint, self.settings,
                device=self.trainer.strategy.root_device, memory_mode=self.memory_mode,
            )

    def predict_step(self, batch: dict, batch_idx: int = 0) -> dict:
        if batch.get("error"):
            return {"id": batch.get("id", batch_idx), "error": batch["error"], "traceback": batch.get("traceback")}
        if not self.continue_on_error:
            return self._generate(batch, batch_idx)
        try:
            return self._generate(batch, batch_idx)
        except Exception as e:  # noqa: BLE001 - recorded for this video; the others go on
            import traceback

            from ex4d.utils.errors import error_reason

            return {"id": batch.get("id", batch_idx), "error": error_reason(e),
                    "traceback": "".join(traceback.format_exception(e))}

    def _generate(self, batch: dict, batch_idx: int) -> dict:
        t0 = time.perf_counter()
        frames = generate_windowed(
            self.generator,
            batch["colour"],
            batch["mask"],
            batch.get("first_frame"),
            self.windows,
            prompt=batch.get("prompt"),
            seed=int(batch["seed"]) if batch.get("seed") is not None else None,
        )
        return {"id": batch.get("id", batch_idx), "frames": frames, "timings": dict(self.generator.last_timings),
                "seconds": time.perf_counter() - t0}
