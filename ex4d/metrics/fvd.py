"""FVD with the StyleGAN-V I3D detector on 16-frame clips.

The detector is StyleGAN-V's TorchScript I3D (``i3d_torchscript.pt``, Kinetics-400, the TF-hub model
of the original FVD), returning 400-d pre-softmax features. We call it the way the widely used
StyleGAN-V-based FVD scripts do:

    detector(videos, rescale=False, resize=False, return_features=True)

on float videos (B, 3, T, 224, 224) in [-1, 1], preparing the clips ourselves: frames to [0, 1],
shorter side resized to 224 (bilinear, ``align_corners=False``, no antialias, the longer side rounded
up), centre crop 224x224 (offset ``(size - 224) // 2``), then ``2 x - 1``. (StyleGAN-V's own training
metric instead feeds uint8 clips with ``rescale=True, resize=True`` and lets the TorchScript graph
resize; we keep the preprocessing in visible code.)

Clips (``variant``):

* ``first16``: the first 16 frames of each video (one clip per video);
* ``windows``: non-overlapping 16-frame windows ``[0:16], [16:32], ...`` (a remainder < 16 is dropped).

A video shorter than 16 frames is an error. Covariance divisor ``ddof=1`` (np.cov, as the StyleGAN-V-
based scripts); StyleGAN-V's ``FeatureStats`` uses ``ddof=0``. Sanity anchor: an all-zeros vs an
all-ones video set gives FVD about 151.26 with this detector (constant videos: the covariances vanish
and FVD is the squared mean difference, whatever N or ddof).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ex4d.metrics.frechet import FeatureStats, frechet_distance_from_stats
from ex4d.metrics.stats import ScoreWithCI, bootstrap_statistic
from ex4d.metrics.video import as_video, check_paired_sets, resize_shorter_side
from ex4d.metrics.weights import resolve_weights
from ex4d.utils.errors import InputError, MissingWeightsError

VARIANTS = ("first16", "windows")


def video_clips(video: Tensor, variant: str = "first16", clip_len: int = 16, name: str = "video") -> list[Tensor]:
    """Split a (T, H, W, 3) video into the clips of the FVD ``variant``."""
    if variant not in VARIANTS:
        raise InputError(f"fvd.variant must be one of {VARIANTS}, got {variant!r}")
    t = video.shape[0]
    if t < clip_len:
        raise InputError(f"{name}: has {t} frames, FVD needs at least {clip_len}")
    if variant == "first16":
        return [video[:clip_len]]
    return [video[s : s + clip_len] for s in range(0, t - clip_len + 1, clip_len)]


def preprocess_clip(clip: Tensor, resolution: int = 224) -> Tensor:
    """(T, H, W, 3) uint8 -> (3, T, resolution, resolution) float32 in [-1, 1] (see module docstring)."""
    x = clip.permute(0, 3, 1, 2).float() / 255.0  # (T, 3, H, W)
    x = resize_shorter_side(x, resolution, mode="bilinear", long_side="ceil")
    h, w = x.shape[-2:]
    top, left = (h - resolution) // 2, (w - resolution) // 2
    x = x[..., top : top + resolution, left : left + resolution]
    return (x * 2.0 - 1.0).permute(1, 0, 2, 3).contiguous()


def load_i3d_torchscript(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load StyleGAN-V's TorchScript I3D detector."""
    path = Path(path)
    if not path.exists():
        raise MissingWeightsError(f"missing I3D detector file: {path}")
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError as e:
        raise InputError(f"{path}: not a TorchScript file ({e})") from e


@dataclass
class FVDResult:
    """FVD of a generated set against its source set.

    Attributes:
        fvd: value with N = number of videos and a bootstrap interval over videos (``n_boot > 0``).
        variant: ``first16`` or ``windows``. n_clips: clips per set that entered the statistics.
    """

    fvd: ScoreWithCI
    variant: str
    n_videos: int
    n_clips: int

    def to_dict(self) -> dict:
        return {"fvd": self.fvd.to_dict(), "variant": self.variant, "n_videos": self.n_videos, "n_clips": self.n_clips}


class FVD:
    """FVD over 16-frame clips; the detector loads lazily on first use.

    Args:
        variant: ``first16`` or ``windows``.
        weights_path, sha256, weights_root: the ``i3d_torchscript.pt`` file (see :mod:`ex4d.metrics.weights`).
        detector: injected module called as ``detector(x, rescale=False, resize=False, return_features=True)``
            on (B, 3, T, 224, 224) float in [-1, 1], returning (B, D); skips loading weights.
        clip_len: frames per clip (16). resolution: spatial size (224).
        device, batch_size: where and how many clips per detector call.
        ddof: covariance divisor n - ddof. n_boot, seed: bootstrap over videos (0 = no interval).
    """

    def __init__(
        self,
        variant: str = "first16",
        weights_path: str | Path | None = None,
        sha256: str | None = None,
        weights_root: str | Path | None = None,
        detector: nn.Module | None = None,
        clip_len: int = 16,
        resolution: int = 224,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        ddof: int = 1,
        n_boot: int = 0,
        seed: int = 0,
    ) -> None:
        if variant not in VARIANTS:
            raise InputError(f"fvd.variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.weights_path = weights_path
        self.sha256 = sha256
        self.weights_root = weights_root
        self._detector = detector
        self.clip_len = clip_len
        self.resolution = resolution
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.ddof = ddof
        self.n_boot = n_boot
        self.seed = seed
        self.reset()

    def check_available(self) -> None:
        """Resolve the detector file without loading it."""
        if self._detector is None:
            resolve_weights("i3d_styleganv", self.weights_path, self.sha256, self.weights_root)

    @property
    def detector(self) -> nn.Module:
        if self._detector is None:
            path = resolve_weights("i3d_styleganv", self.weights_path, self.sha256, self.weights_root)
            self._detector = load_i3d_torchscript(path, self.device)
        return self._detector

    def reset(self) -> None:
        self._features: dict[bool, list[np.ndarray]] = {True: [], False: []}

    @torch.no_grad()
    def _run(self, clips: list[Tensor]) -> np.ndarray:
        x = torch.stack(clips).to(self.device)
        f = self.detector(x, rescale=False, resize=False, return_features=True)
        return f.detach().float().reshape(x.shape[0], -1).cpu().numpy()

    def features_many(self, videos: Sequence[Tensor | np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        """Per-video (n_clips, D) float32 features; clips of consecutive videos share detector batches."""
        owners: list[int] = []
        buffer: list[Tensor] = []
        chunks: list[np.ndarray] = []
        for k, (video, name) in enumerate(zip(videos, names)):
            v = as_video(video, name)
            for c in video_clips(v, self.variant, self.clip_len, name):
                buffer.append(preprocess_clip(c, self.resolution))
                owners.append(k)
                if len(buffer) == self.batch_size:
                    chunks.append(self._run(buffer))
                    buffer = []
        if buffer:
            chunks.append(self._run(buffer))
        feats = np.concatenate(chunks, axis=0)
        own = np.asarray(owners)
        return [feats[own == k] for k in range(len(videos))]

    def features(self, video: Tensor | np.ndarray, name: str = "video") -> np.ndarray:
        """(n_clips, D) float32 detector features of one (T, H, W, 3) uint8 video."""
        return self.features_many([video], [name])[0]

    def update(self, video: Tensor | np.ndarray, real: bool, name: str = "video") -> None:
        self.add_features(self.features(video, name), real)

    def add_features(self, features: np.ndarray, real: bool) -> None:
        """Add one video's (n_clips, D) features from :meth:`features` (e.g. computed in another process)."""
        self._features[real].append(features)

    def compute(self) -> FVDResult:
        gen, src = self._features[False], self._features[True]
        if len(gen) != len(src):
            raise InputError(f"FVD: {len(gen)} generated vs {len(src)} source videos were added; the sets must pair up")
        if len(gen) == 0:
            raise InputError("FVD: no videos were added")
        n = len(gen)

        def stats(per_video: list[np.ndarray], idx: np.ndarray) -> FeatureStats:
            s = FeatureStats()
            for i in idx:
                s.update(per_video[i])
            return s

        def fvd_on(idx: np.ndarray) -> float:
            return frechet_distance_from_stats(stats(gen, idx), stats(src, idx), self.ddof)

        full = fvd_on(np.arange(n))
        fvd = bootstrap_statistic(fvd_on, n, self.n_boot, seed=self.seed, value=full) if self.n_boot > 0 else ScoreWithCI(full, n)
        return FVDResult(fvd, self.variant, n, int(sum(g.shape[0] for g in gen)))

    def __call__(
        self,
        generated: Sequence[Tensor | np.ndarray],
        source: Sequence[Tensor | np.ndarray],
        names: Sequence[str] | None = None,
    ) -> FVDResult:
        """FVD of a generated set against its paired source set (same count, same lengths)."""
        gen, src = check_paired_sets(generated, source, same_length=True, names=names)
        self.reset()
        names = list(names) if names is not None else [f"video {i}" for i in range(len(gen))]
        self._features[False] = self.features_many(gen, [f"generated {n}" for n in names])
        self._features[True] = self.features_many(src, [f"source {n}" for n in names])
        return self.compute()
