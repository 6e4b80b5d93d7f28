"""PSNR, SSIM and LPIPS for benchmarks that have ground-truth target views.

PSNR and SSIM are torchmetrics' functional implementations (data range 1, SSIM with its default 11x11
Gaussian window), per frame, averaged per video. LPIPS is the ``lpips`` package (richzhang/
PerceptualSimilarity, v0.1, AlexNet trunk: the network the LPIPS paper and most papers' numbers use): its
linear heads ship inside the package (``lpips/weights/v0.1/alex.pth``, sha256 checked), its AlexNet trunk
is torchvision's AlexNet loaded from the local ImageNet weights ``alexnet-owt-7be5be79.pth``
(:func:`load_lpips_alex`); a missing file or package skips LPIPS with a message. torchmetrics'
``LearnedPerceptualImagePatchSimilarity`` is a port of the same network; the unit tests check that both give
the same distances on the same trunk weights. torchvision and lpips are imported only when LPIPS is built.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
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


# LPIPS slices of torchvision's AlexNet ``features``: (slice index, the feature indices it holds); only the
# convolutions (0, 3, 6, 8, 10) carry weights.
_ALEX_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}


class LPIPSAlex(nn.Module):
    """The ``lpips`` package's ``LPIPS(net="alex", version="0.1")``: ``(a, b)`` -> per-image distances.

    Inputs: two (N, 3, H, W) float tensors in [0, 1] (mapped to [-1, 1] as the package's
    ``normalize=True`` does). Output: (N,) float.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()

    @torch.no_grad()
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.net(a, b, normalize=True).flatten()


def load_lpips_alex(alexnet_path: str | Path, heads_path: str | Path) -> LPIPSAlex:
    """``lpips.LPIPS(net="alex", version="0.1")`` with its trunk from a local torchvision AlexNet file.

    The package would download the trunk through torchvision (``pretrained=True``); it is built with a
    random trunk instead (``pnet_rand=True``, nothing is downloaded), then torchvision's AlexNet state dict
    is loaded strictly into a torchvision AlexNet (so a wrong file fails here) and its ``features`` copied
    into the package's five slices, every trunk weight accounted for. The linear heads load from
    ``heads_path`` (the file the package ships).

    Raises:
        MetricUnavailable: lpips or torchvision matching torch is not importable.
        InputError: a file is not torchvision's AlexNet / the LPIPS heads.
    """
    with eval_extra_imports("LPIPS", "lpips and torchvision"):
        import lpips
        from torchvision.models import alexnet
    with warnings.catch_warnings():  # lpips calls torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore")
        with strict_weights_load(heads_path, "the LPIPS v0.1 AlexNet linear heads"):
            model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, model_path=str(heads_path),
                                pnet_rand=True, verbose=False)
    tv = alexnet(weights=None)
    with strict_weights_load(alexnet_path, "torchvision's AlexNet weights"):
        tv.load_state_dict(torch.load(alexnet_path, map_location="cpu", weights_only=True))
    trunk = {f"slice{_ALEX_SLICES[int(k.split('.')[1])]}.{k.split('.', 1)[1]}": v
             for k, v in tv.state_dict().items() if k.startswith("features.")}
    model.net.load_state_dict(trunk, strict=True)  # every trunk parameter, no more, no fewer
    # The package loads the heads non-strictly: check that every head it has came from the file.
    heads = torch.load(heads_path, map_location="cpu", weights_only=True)
    lin = {k for k in model.state_dict() if re.match(r"lin\d\.", k)}  # (``lins.<i>`` are the same modules)
    if lin != set(heads) or any(not torch.equal(model.state_dict()[k], heads[k]) for k in lin):
        raise InputError(f"{heads_path}: not the LPIPS v0.1 AlexNet linear heads (keys {sorted(heads)[:5]})")
    model.requires_grad_(False)
    return LPIPSAlex(model)


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
        lpips_model: an injected module ``(a, b) -> (N,)`` distances on (N, 3, H, W) [0, 1] frames (as
            :class:`LPIPSAlex`), instead of loading it from ``weights_path``.
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

    def check_available(self) -> None:
        """Resolve LPIPS's files and imports without building it (raises MissingWeightsError if one is missing)."""
        if self.use_lpips and self._lpips is None:
            resolve_weights("lpips_alexnet", self.weights_path, self.sha256, self.weights_root)
            resolve_weights("lpips_heads")
            with eval_extra_imports("LPIPS", "lpips and torchvision"):
                import lpips  # noqa: F401
                import torchvision  # noqa: F401

    @property
    def lpips_model(self) -> nn.Module:
        if self._lpips is None:
            path = resolve_weights("lpips_alexnet", self.weights_path, self.sha256, self.weights_root)
            self._lpips = load_lpips_alex(path, resolve_weights("lpips_heads")).to(self.device)
        return self._lpips

    @torch.no_grad()
    def lpips_video(self, pred: Tensor, target: Tensor) -> float:
        """Mean per-frame LPIPS of two (T, H, W, 3) uint8 videos."""
        model = self.lpips_model
        a, b = _frames01(pred), _frames01(target)
        per_frame = [model(a[i : i + self.batch_size].to(self.device), b[i : i + self.batch_size].to(self.device)).float().cpu()
                     for i in range(0, a.shape[0], self.batch_size)]
        return float(torch.cat(per_frame).mean())

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
