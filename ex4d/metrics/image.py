"""PSNR, SSIM and LPIPS for benchmarks that have ground-truth target views.

PSNR and SSIM are torchmetrics' functional implementations (data range 1, SSIM with its default 11x11
Gaussian window), per frame, averaged per video. LPIPS is torchmetrics'
``LearnedPerceptualImagePatchSimilarity`` with the AlexNet backbone (LPIPS v0.1; the linear heads ship
inside torchmetrics), the backbone being torchvision's AlexNet loaded from the local ImageNet weights
``alexnet-owt-7be5be79.pth`` (:func:`load_lpips_alex`); a missing file skips LPIPS with a message.
torchvision is imported only when LPIPS is built.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ex4d.metrics.stats import ScoreWithCI, bootstrap_mean
from ex4d.metrics.video import check_paired_sets
from ex4d.metrics.weights import eval_extra_imports, resolve_weights, strict_weights_load
from ex4d.utils.errors import InputError


def _frames01(video: Tensor) -> Tensor:
    return video.permute(0, 3, 1, 2).float() / 255.0


def psnr_video(pred: Tensor, target: Tensor) -> float:
    """Mean per-frame PSNR (dB) of two (T, H, W, 3) uint8 videos; identical frames count as 100 dB."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    a, b = _frames01(pred), _frames01(target)
    mse = ((a - b) ** 2).flatten(1).mean(1)
    vals = peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))
    # Identical frames give inf; cap so a mean stays finite and the cap is visible in the number.
    vals = torch.where(mse == 0, torch.full_like(vals, 100.0), vals)
    return float(vals.mean())


def ssim_video(pred: Tensor, target: Tensor) -> float:
    """Mean per-frame SSIM of two (T, H, W, 3) uint8 videos (torchmetrics, Gaussian 11x11, sigma 1.5)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    vals = structural_similarity_index_measure(_frames01(pred), _frames01(target), data_range=1.0, reduction="none")
    return float(vals.mean())


@contextlib.contextmanager
def _torch_hub_dir(path: Path) -> Iterator[None]:
    """Point ``torch.hub``'s cache at ``path`` for the duration of the block (process-global; restored after)."""
    import torch.hub

    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(path))
    try:
        yield
    finally:
        torch.hub.set_dir(previous)


def load_lpips_alex(alexnet_path: str | Path) -> nn.Module:
    """torchmetrics' ``LearnedPerceptualImagePatchSimilarity(net_type="alex")`` with a local AlexNet backbone.

    torchmetrics builds the backbone as ``torchvision.models.alexnet(weights=AlexNet_Weights.DEFAULT)``,
    which reads ``<torch hub dir>/checkpoints/alexnet-owt-7be5be79.pth`` and downloads it only when that
    file is absent. So the hub cache is pointed, for the construction only, at a temporary folder whose
    ``checkpoints/`` holds a link to our checked file under torchvision's file name: torchvision then loads
    it strictly, and nothing is downloaded. The LPIPS v0.1 linear heads ship inside torchmetrics.

    Returns:
        the metric in ``normalize=True`` mode (inputs (N, 3, H, W) float in [0, 1]), ``reduction="mean"``.

    Raises:
        MetricUnavailable: torchvision matching torch is not importable.
        InputError: the file is not torchvision's AlexNet state dict.
    """
    with eval_extra_imports("LPIPS", "torchvision"):
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity
        from torchvision.models import AlexNet_Weights
    expected_name = Path(AlexNet_Weights.DEFAULT.url).name
    with tempfile.TemporaryDirectory(prefix="ex4d-lpips-hub-") as hub:
        (Path(hub) / "checkpoints").mkdir()
        (Path(hub) / "checkpoints" / expected_name).symlink_to(Path(alexnet_path).resolve())
        with strict_weights_load(alexnet_path, "torchvision's AlexNet weights"), _torch_hub_dir(Path(hub)):
            metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="mean", normalize=True)
    return metric.eval()


@dataclass
class ImageMetricsResult:
    """Per-video means and set-level ScoreWithCI for PSNR, SSIM and (when available) LPIPS."""

    psnr: ScoreWithCI
    ssim: ScoreWithCI
    lpips: ScoreWithCI | None
    per_video: dict[str, list[float]]

    def to_dict(self) -> dict:
        return {
            "psnr": self.psnr.to_dict(),
            "ssim": self.ssim.to_dict(),
            "lpips": None if self.lpips is None else self.lpips.to_dict(),
            "per_video": self.per_video,
        }


class ImageMetrics:
    """PSNR / SSIM / LPIPS of generated videos against ground-truth target videos (paired, same lengths).

    Args:
        lpips: compute LPIPS (needs the AlexNet weights; a missing file raises MissingWeightsError, which
            ``run_or_skip`` reports as a skip).
        lpips_model: an injected torchmetrics LPIPS metric (``reset`` / ``update(a, b)`` on [0, 1] frames /
            ``compute``), instead of loading it from ``weights_path``.
    """

    def __init__(
        self,
        lpips: bool = True,
        weights_path=None,
        sha256=None,
        weights_root=None,
        lpips_model: nn.Module | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        n_boot: int = 1000,
        seed: int = 0,
    ) -> None:
        self.use_lpips = lpips
        self.weights_path, self.sha256, self.weights_root = weights_path, sha256, weights_root
        self._lpips = lpips_model
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.n_boot = n_boot
        self.seed = seed

    @property
    def lpips_model(self) -> nn.Module:
        if self._lpips is None:
            path = resolve_weights("lpips_alexnet", self.weights_path, self.sha256, self.weights_root)
            self._lpips = load_lpips_alex(path).to(self.device)
        return self._lpips

    @torch.no_grad()
    def lpips_video(self, pred: Tensor, target: Tensor) -> float:
        """Mean per-frame LPIPS of two (T, H, W, 3) uint8 videos (the metric averages over the frames it saw)."""
        metric = self.lpips_model
        a, b = _frames01(pred), _frames01(target)
        metric.reset()
        for i in range(0, a.shape[0], self.batch_size):
            metric.update(a[i : i + self.batch_size].to(self.device), b[i : i + self.batch_size].to(self.device))
        return float(metric.compute())

    def __call__(
        self, generated: Sequence[Tensor | np.ndarray], targets: Sequence[Tensor | np.ndarray], names: Sequence[str] | None = None
    ) -> ImageMetricsResult:
        gen, tgt = check_paired_sets(generated, targets, same_length=True, names=names)
        names = list(names) if names is not None else [f"video {i}" for i in range(len(gen))]
        for g, t, n in zip(gen, tgt, names):
            if g.shape != t.shape:
                raise InputError(f"{n}: generated video {tuple(g.shape)} and target {tuple(t.shape)} differ in size")
        per = {"psnr": [psnr_video(g, t) for g, t in zip(gen, tgt)], "ssim": [ssim_video(g, t) for g, t in zip(gen, tgt)]}
        if self.use_lpips:
            per["lpips"] = [self.lpips_video(g, t) for g, t in zip(gen, tgt)]
        ci = {k: bootstrap_mean(v, self.n_boot, seed=self.seed) for k, v in per.items()}
        return ImageMetricsResult(ci["psnr"], ci["ssim"], ci.get("lpips"), per)
