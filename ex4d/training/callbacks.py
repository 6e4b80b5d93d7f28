"""Training callbacks: adapter-only checkpoints and the performance log (throughput, memory, lr, grad norm).

The full resumable state (adapter + optimizer + loop state; DeepSpeed shards) is Lightning's
``ModelCheckpoint`` (``conf/callbacks/model_checkpoint.yaml``); :class:`AdapterCheckpoint` writes the small
file inference loads (``python infer.py ... checkpoint=<run>/adapters/last.safetensors``).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ex4d.training.module import dit_tokens
from ex4d.training.strategy import strategy_info

log = logging.getLogger(__name__)
GIB = 1024**3


class AdapterCheckpoint(Callback):
    """Write the adapter (LoRA + geometry encoder, one safetensors file) every N optimizer steps.

    Args:
        dirpath: folder (the runner sets ``<run dir>/adapters``).
        every_n_train_steps: period in optimizer steps (0: only at the end).
        save_last: also keep ``last.safetensors`` (a copy of the newest) and write one at the end of training.
        filename: name pattern; ``{step}`` is the global step.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 500, save_last: bool = True,
                 filename: str = "step_{step:07d}.safetensors") -> None:
        if int(every_n_train_steps) < 0:
            raise ValueError(f"callbacks.adapter_checkpoint.every_n_train_steps: expected >= 0, got {every_n_train_steps}")
        self.dirpath = Path(dirpath) if dirpath else None
        self.every = int(every_n_train_steps)
        self.save_last = save_last
        self.filename = filename
        self._last_step = -1
        self.last_path: Path | None = None

    def _dir(self, trainer: L.Trainer) -> Path:
        return self.dirpath or Path(trainer.default_root_dir) / "adapters"

    def save(self, trainer: L.Trainer, pl_module) -> Path | None:
        step = trainer.global_step
        if step == self._last_step:
            return self.last_path
        path = self._dir(trainer) / self.filename.format(step=step)
        written = pl_module.save_adapter_file(path, {"epoch": trainer.current_epoch})  # collective; rank 0 writes
        self._last_step = step
        if written is not None:
            if self.save_last:
                shutil.copyfile(written, written.parent / "last.safetensors")
            log.info("adapter saved: %s", written)
            self.last_path = written
        return written

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fast_dev_run or self.every == 0:
            return
        step = trainer.global_step
        if step > 0 and step % self.every == 0:
            self.save(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and not trainer.fast_dev_run and trainer.global_step > 0:
            self.save(trainer, pl_module)

    def state_dict(self) -> dict:
        return {"last_step": self._last_step}

    def load_state_dict(self, state: dict) -> None:
        self._last_step = int(state.get("last_step", -1))


class TrainingMonitor(Callback):
    """Log ``train/lr``, ``train/grad_norm`` (total L2 norm before clipping), ``perf/step_s``,
    ``perf/samples_per_s`` and ``perf/tokens_per_s`` (all ranks together; DiT tokens) and, on CUDA,
    ``perf/gpu_mem_peak_gib`` / ``perf/gpu_mem_reserved_gib`` (this rank).

    Step time is wall time between consecutive optimizer-step ends, so it includes data loading, the VAE /
    CLIP encodes and logging: what a user waits for. The first step after (re)start or a validation is not
    reported.
    """

    def __init__(self) -> None:
        self._t_last: float | None = None
        self._samples = 0
        self._tokens = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._t_last = None

    def on_validation_end(self, trainer, pl_module) -> None:
        self._t_last, self._samples, self._tokens = None, 0, 0  # validation time is not a training step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # the lr of this step (the scheduler moves it after the step)
        pl_module.log("train/lr", float(optimizer.param_groups[0]["lr"]), on_step=True, on_epoch=False)
        if _is_deepspeed(trainer):
            return  # gradients live in DeepSpeed's buffers; read its norm after the step
        grads = [p.grad.detach() for p in pl_module.trainable_parameters() if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
            pl_module.log("train/grad_norm", norm, on_step=True, on_epoch=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        frames = batch.get("frames")
        if frames is not None:
            B, T, H, W = frames.shape[:4]
            tokens = B * dit_tokens(T, H, W)
        else:
            lat = batch["latent_video"]
            B, tokens = lat.shape[0], lat.shape[0] * lat.shape[2] * (lat.shape[3] // 2) * (lat.shape[4] // 2)
        self._samples += B * trainer.world_size
        self._tokens += tokens * trainer.world_size
        if trainer.fit_loop.epoch_loop._should_accumulate():  # mid-accumulation: no optimizer step yet
            return
        if _is_deepspeed(trainer):
            norm = trainer.strategy.deepspeed_engine.get_global_grad_norm()
            if norm is not None:
                pl_module.log("train/grad_norm", float(norm), on_step=True, on_epoch=False)
        now = time.perf_counter()
        if self._t_last is not None:
            dt = now - self._t_last
            pl_module.log("perf/step_s", dt, on_step=True, on_epoch=False)
            pl_module.log("perf/samples_per_s", self._samples / dt, on_step=True, on_epoch=False)
            pl_module.log("perf/tokens_per_s", self._tokens / dt, on_step=True, on_epoch=False)
        self._t_last, self._samples, self._tokens = now, 0, 0
        dev = pl_module.device
        if dev.type == "cuda":
            pl_module.log("perf/gpu_mem_peak_gib", torch.cuda.max_memory_allocated(dev) / GIB, on_step=True,
                          on_epoch=False)
            pl_module.log("perf/gpu_mem_reserved_gib", torch.cuda.memory_reserved(dev) / GIB, on_step=True,
                          on_epoch=False)


def _is_deepspeed(trainer) -> bool:
    return strategy_info(trainer.strategy).deepspeed
