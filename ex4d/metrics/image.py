"""PSNR, SSIM and LPIPS for benchmarks that have ground-truth target views.

PSNR and SSIM are torchmetrics' functional implementations (data range 1, SSIM with its default 11x11
Gaussian window), per frame, averaged per video. LPIPS is the AlexNet variant (LPIPS v0.1, as
torchmetrics and the ``lpips`` package compute it): torchmetrics ships the LPIPS linear heads
(``lpips_models/alex.pth``) but builds the AlexNet backbone through torchvision, which does not work
with the CPU torch build here, so :class:`LPIPSAlex` states the backbone itself (torchvision's AlexNet
``features`` layout, same parameter names) and loads the local ImageNet AlexNet weights
(``alexnet-owt-7be5be79.pth``); a missing file skips LPIPS with a message.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ex4d.metrics.stats import ScoreWithCI, bootstrap_mean
from ex4d.metrics.video import check_paired_sets
from ex4d.metrics.weights import resolve_weights
from ex4d.utils.errors import InputError, MissingWeightsError


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


class LPIPSAlex(nn.Module):
    """LPIPS (AlexNet, v0.1): (N, 3, H, W) float in [-1, 1] pairs -> (N,) distances.

    Random-weight construction for tests; :meth:`from_files` loads the backbone and the linear heads.
    """

    channels = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        # torchvision AlexNet ``features`` indices 0..11; parameters at 0, 3, 6, 8, 10.
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.taps = (1, 4, 7, 9, 11)  # outputs of relu1..relu5
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in self.channels])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def bundled_heads_path() -> Path:
        """The LPIPS linear heads that ship inside torchmetrics."""
        import torchmetrics.functional.image.lpips as tm_lpips

        return Path(inspect.getfile(tm_lpips)).parent / "lpips_models" / "alex.pth"

    @classmethod
    def from_files(cls, alexnet_path: str | Path, heads_path: str | Path | None = None) -> LPIPSAlex:
        m = cls()
        state = torch.load(alexnet_path, map_location="cpu", weights_only=True)
        feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        if not feats:
            raise InputError(f"{alexnet_path}: no 'features.*' parameters; expected torchvision's AlexNet weights")
        m.features.load_state_dict(feats)
        heads_path = Path(heads_path) if heads_path is not None else cls.bundled_heads_path()
        if not heads_path.exists():
            raise MissingWeightsError(f"missing LPIPS linear heads: {heads_path} (they ship with torchmetrics)")
        heads = torch.load(heads_path, map_location="cpu", weights_only=True)
        for i, lin in enumerate(m.lins):
            lin.weight.data.copy_(heads[f"lin{i}.model.1.weight"])
        return m

    @torch.no_grad()
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        def taps(x: Tensor) -> list[Tensor]:
            x = (x - self.shift) / self.scale
            out = []
            for j, layer in enumerate(self.features):
                x = layer(x)
                if j in self.taps:
                    out.append(x / torch.sqrt((x**2).sum(1, keepdim=True) + 1e-8))
            return out

        total = 0.0
        for lin, fa, fb in zip(self.lins, taps(a), taps(b)):
            total = total + lin((fa - fb) ** 2).mean(dim=(2, 3))
        return total.flatten()


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
            ``run_or_skip`` reports as a skip). An ``LPIPSAlex`` instance may be injected via ``lpips_model``.
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
            self._lpips = LPIPSAlex.from_files(path).to(self.device)
        return self._lpips

    def lpips_video(self, pred: Tensor, target: Tensor) -> float:
        a, b = _frames01(pred) * 2 - 1, _frames01(target) * 2 - 1
        vals = [
            self.lpips_model(a[i : i + self.batch_size].to(self.device), b[i : i + self.batch_size].to(self.device)).cpu()
            for i in range(0, a.shape[0], self.batch_size)
        ]
        return float(torch.cat(vals).mean())

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
