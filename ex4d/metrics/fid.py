"""FID and KID between generated frames and source frames (Inception-v3 pool features, 2048-d).

Protocol (ex4d-method.md section 7): every frame of every generated video against every frame of the
source videos (``frame_stride`` subsamples both the same way), uint8 input, TF1 bilinear resize to
299 (no antialias), float64 statistics, covariance with ``ddof=1`` as TF FID / pytorch-fid /
torch-fidelity. The extractor is torch-fidelity's ``FeatureExtractorInceptionV3`` (the one torchmetrics'
``FrechetInceptionDistance`` / ``KernelInceptionDistance`` run), loaded strictly from a local
``pt_inception-2015-12-05-6726825d.pth``; any module mapping (N, 3, H, W) uint8 to (N, D) features can be
injected instead (``metrics=tiny`` uses a tiny random one).

Why torchmetrics' metric classes are not used as the accumulator: the protocol bootstraps FID over
*videos* (resampling needs per-video statistics) and seeds the KID subsets; torchmetrics keeps one
running sum per set (FID) or draws subsets from the global RNG (KID). So the features go into our float64
:class:`~ex4d.metrics.frechet.FeatureStats`; a unit test checks that FID and KID equal torchmetrics' on the
same extractor and frames.

Usage::

    fid = FIDKID(weights_path="weights/metrics/pt_inception-2015-12-05-6726825d.pth", device="cuda")
    result = fid(generated_videos, source_videos)      # lists of (T, H, W, 3) uint8
    print(result.fid)                                   # "55.42 [53.10, 57.90] (N=150)"

or streaming: ``fid.update(video, real=False)`` per video, then ``fid.compute()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ex4d.metrics.frechet import FeatureStats, frechet_distance_from_stats, kernel_inception_distance
from ex4d.metrics.stats import ScoreWithCI, bootstrap_statistic
from ex4d.metrics.video import as_video, check_paired_sets
from ex4d.metrics.weights import eval_extra_imports, resolve_weights, strict_weights_load
from ex4d.utils.errors import InputError

FeatureExtractor = Callable[[Tensor], Tensor]


class InceptionPoolFeatures(nn.Module):
    """(N, 3, H, W) uint8 RGB -> (N, 2048) float32: torch-fidelity's FID Inception-v3, pool features only.

    torch-fidelity's extractor returns a tuple (one tensor per requested feature); this keeps the
    ``FeatureExtractor`` contract of one tensor.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)[0]


def load_fid_inception(path: str | Path) -> InceptionPoolFeatures:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` ("inception-v3-compat", 2048-d) from a local file.

    torch-fidelity loads the state dict strictly; with a path given it never downloads. Import is here,
    not at module level: torch-fidelity imports torchvision, which generation and training never need.

    Raises:
        MetricUnavailable: torch-fidelity (or a torchvision matching torch) is not importable.
        InputError: the file is not the FID Inception-v3 state dict.
    """
    with eval_extra_imports("FID/KID", "torch-fidelity with a torchvision"):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    with strict_weights_load(path, "the FID Inception-v3 weights"):
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    return InceptionPoolFeatures(net)


@dataclass
class FIDResult:
    """FID/KID of a generated set against its source set.

    Attributes:
        fid: FID with N = number of videos and a bootstrap interval over videos (when ``n_boot > 0``).
        kid_mean, kid_std: KID (unbiased polynomial MMD^2) mean and std over subsets, feature units.
        n_videos: number of video pairs. n_frames_generated, n_frames_source: frames that entered the statistics.
    """

    fid: ScoreWithCI
    kid_mean: float
    kid_std: float
    n_videos: int
    n_frames_generated: int
    n_frames_source: int

    def to_dict(self) -> dict:
        return {
            "fid": self.fid.to_dict(),
            "kid_mean": self.kid_mean,
            "kid_std": self.kid_std,
            "n_videos": self.n_videos,
            "n_frames_generated": self.n_frames_generated,
            "n_frames_source": self.n_frames_source,
        }


class FIDKID:
    """FID + KID over video frames; weights load lazily on first use.

    Args:
        weights_path: the FID Inception weights file; default ``<weights_dir>/metrics/pt_inception-...pth``.
        sha256: digest/prefix to check (default: the ``6726825d`` prefix of the file name; "" disables).
        weights_root: root for the default path (see :mod:`ex4d.metrics.weights`).
        extractor: injected feature extractor (N, 3, H, W) uint8 -> (N, D); skips loading weights.
        device: where the extractor runs.
        batch_size: frames per extractor call.
        frame_stride: use every k-th frame (1 = all frames).
        ddof: covariance divisor n - ddof.
        kid_subsets, kid_subset_size: KID subsets (subset size capped at the number of frames).
        n_boot: bootstrap resamples over videos for the FID interval (0 = no interval; each resample
            costs two 2048x2048 eigendecompositions).
        seed: seed of KID subsets and the bootstrap.
    """

    def __init__(
        self,
        weights_path: str | Path | None = None,
        sha256: str | None = None,
        weights_root: str | Path | None = None,
        extractor: FeatureExtractor | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        frame_stride: int = 1,
        ddof: int = 1,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        n_boot: int = 0,
        seed: int = 0,
    ) -> None:
        if frame_stride < 1:
            raise InputError(f"fid.frame_stride must be >= 1, got {frame_stride}")
        self.weights_path = weights_path
        self.sha256 = sha256
        self.weights_root = weights_root
        self._extractor = extractor
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.frame_stride = frame_stride
        self.ddof = ddof
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.n_boot = n_boot
        self.seed = seed
        self.reset()

    def check_available(self) -> None:
        """Resolve the weights file and the torch-fidelity import without building the network."""
        if self._extractor is None:
            resolve_weights("fid_inception", self.weights_path, self.sha256, self.weights_root)
            with eval_extra_imports("FID/KID", "torch-fidelity with a torchvision"):
                import torch_fidelity  # noqa: F401

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            path = resolve_weights("fid_inception", self.weights_path, self.sha256, self.weights_root)
            self._extractor = load_fid_inception(path).to(self.device)
        return self._extractor

    def reset(self) -> None:
        self._features: dict[bool, list[np.ndarray]] = {True: [], False: []}

    @torch.no_grad()
    def features(self, video: Tensor | np.ndarray, name: str = "video") -> np.ndarray:
        """(T', D) float32 features of the frames of one (T, H, W, 3) uint8 video."""
        v = as_video(video, name)[:: self.frame_stride]
        x = v.permute(0, 3, 1, 2).contiguous()
        out = []
        for i in range(0, x.shape[0], self.batch_size):
            f = self.extractor(x[i : i + self.batch_size].to(self.device))
            out.append(f.detach().float().reshape(f.shape[0], -1).cpu().numpy())
        return np.concatenate(out, axis=0)

    def update(self, video: Tensor | np.ndarray, real: bool, name: str = "video") -> None:
        """Add one video's frames to the source (``real=True``) or generated set."""
        self.add_features(self.features(video, name), real)

    def add_features(self, features: np.ndarray, real: bool) -> None:
        """Add one video's (T', D) features from :meth:`features` (e.g. computed in another process)."""
        self._features[real].append(features)

    def _stats(self, per_video: Sequence[np.ndarray], idx: np.ndarray) -> FeatureStats:
        s = FeatureStats()
        for i in idx:
            s.update(per_video[i])
        return s

    def compute(self) -> FIDResult:
        """FID/KID of everything added with :meth:`update`; the two sets must have equal video counts."""
        gen, src = self._features[False], self._features[True]
        if len(gen) != len(src):
            raise InputError(f"FID: {len(gen)} generated vs {len(src)} source videos were added; the sets must pair up")
        if len(gen) == 0:
            raise InputError("FID: no videos were added")
        n = len(gen)

        def fid_on(idx: np.ndarray) -> float:
            return frechet_distance_from_stats(self._stats(gen, idx), self._stats(src, idx), self.ddof)

        full = fid_on(np.arange(n))
        fid = bootstrap_statistic(fid_on, n, self.n_boot, seed=self.seed, value=full) if self.n_boot > 0 else ScoreWithCI(full, n)
        g_all, s_all = np.concatenate(gen), np.concatenate(src)
        kid_mean, kid_std = kernel_inception_distance(
            g_all, s_all, self.kid_subsets, self.kid_subset_size, seed=self.seed
        )
        return FIDResult(fid, kid_mean, kid_std, n, int(g_all.shape[0]), int(s_all.shape[0]))

    def __call__(
        self,
        generated: Sequence[Tensor | np.ndarray],
        source: Sequence[Tensor | np.ndarray],
        names: Sequence[str] | None = None,
    ) -> FIDResult:
        """FID/KID of a generated set against its paired source set (same count, same lengths)."""
        gen, src = check_paired_sets(generated, source, same_length=True, names=names)
        self.reset()
        names = list(names) if names is not None else [f"video {i}" for i in range(len(gen))]
        for g, s, n in zip(gen, src, names):
            self.update(g, real=False, name=f"generated {n}")
            self.update(s, real=True, name=f"source {n}")
        return self.compute()
