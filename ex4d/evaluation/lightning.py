"""The evaluation loop as a Lightning predict loop, so ``trainer.devices=N`` spreads the videos over N devices.

:class:`EvaluatePredictModule` holds an :class:`~ex4d.evaluation.evaluator.Evaluator` (a plain object, not a
submodule: Lightning never moves the metric networks; each rank builds them on its own device in
``setup``). Each ``predict_step`` takes one :class:`~ex4d.evaluation.metric.VideoPair` (from
:class:`~ex4d.evaluation.pairs.EvalPairs`) and updates the metrics. Lightning's predict loop gives each rank
a disjoint share of the videos (no padding duplicates). When the loop is done, :meth:`EvaluatePredictModule.finish`
sends what every rank kept (per-video rows, scores, features) to rank 0, which merges the shares in video
order and computes the set-level numbers (FID/KID, FVD, bootstrap intervals) once; the result is broadcast,
so every rank returns the same one. With one device this is just the loop.

Usage (:func:`run_evaluation` does this)::

    module = EvaluatePredictModule(evaluator, device="auto")
    loader = DataLoader(EvalPairs(items, reader, evaluator.requires), batch_size=None, collate_fn=keep)
    trainer = L.Trainer(accelerator="auto", devices=N, logger=False, enable_checkpointing=False)
    trainer.predict(module, loader, return_predictions=False)
    result = module.finish()   # EvaluationResult, on every rank
"""

from __future__ import annotations

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ex4d.evaluation.evaluator import EvaluationResult, Evaluator
from ex4d.evaluation.pairs import EvalPairs, keep


class EvaluatePredictModule(L.LightningModule):
    """Args:
    evaluator: the metrics (preflight done; :meth:`Evaluator.load` runs in ``setup`` on each rank).
    device: where the metric networks run: ``"auto"`` / None (the rank's device), ``"cpu"``, ``"cuda"`` (the
        rank's GPU when the trainer runs on GPUs, else the current one), ``"cuda:<i>"`` or a ``torch.device``.
    """

    def __init__(self, evaluator: Evaluator, device: str | torch.device | None = "auto") -> None:
        super().__init__()
        self.evaluator = evaluator  # a plain object: not a registered submodule
        self.metrics_device = device
        self.result: EvaluationResult | None = None

    def metric_device(self) -> torch.device:
        root = self.trainer.strategy.root_device
        if self.metrics_device in (None, "auto"):
            return root
        want = torch.device(self.metrics_device)
        # plain "cuda" on a GPU trainer: each rank its own GPU (an explicit index is kept)
        return root if want.type == root.type == "cuda" and want.index is None else want

    def setup(self, stage: str) -> None:
        self.evaluator.to(self.metric_device()).load()

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # numpy frames stay on the host; each metric moves what it needs to its device

    def predict_step(self, batch, batch_idx: int = 0) -> dict:
        return self.evaluator.update(batch)

    def finish(self) -> EvaluationResult:
        """After ``trainer.predict`` returned, on every rank: :func:`finish_distributed`."""
        self.result = finish_distributed(self.evaluator)
        return self.result


def finish_distributed(evaluator: Evaluator) -> EvaluationResult:
    """Every rank's :meth:`Evaluator.state` to rank 0, merged there in video order, computed once, the result
    broadcast (a failure on rank 0 is raised on every rank). Without an initialised process group (one
    device): :meth:`Evaluator.compute`. Called after the predict loop rather than in one of its hooks: a rank
    whose share is empty (fewer videos than devices) skips the loop's epoch hooks but still gets here."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return evaluator.compute()
    world, rank = dist.get_world_size(), dist.get_rank()
    states = [None] * world if rank == 0 else None
    dist.gather_object(evaluator.state(), states, dst=0)
    outcome: list = [None]
    if rank == 0:
        try:
            evaluator.merge(s for r, s in enumerate(states) if r != 0)
            outcome = [("ok", evaluator.compute())]
        except Exception as e:  # noqa: BLE001 - sent to the other ranks (they would wait forever), raised below
            outcome = [("error", e)]
    dist.broadcast_object_list(outcome, src=0)
    status, value = outcome[0]
    if status == "error":
        raise value
    return value


def run_evaluation(evaluator: Evaluator, items, reader, trainer: L.Trainer, device: str | torch.device | None = "auto",
                   num_workers: int = 0) -> EvaluationResult:
    """The evaluator's loop over ``items`` in ``trainer``'s predict loop (preflight done); the result on every rank."""
    module = EvaluatePredictModule(evaluator, device)
    loader = DataLoader(EvalPairs(items, reader, evaluator.requires), batch_size=None, shuffle=False, collate_fn=keep,
                        num_workers=num_workers)
    trainer.predict(module, loader, return_predictions=False)
    return module.finish()
