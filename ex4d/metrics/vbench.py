"""VBench's seven quality dimensions (the custom-input ones) and their aggregate, from local weights.

Each dimension follows VBench's published implementation (``Vchitect/VBench``, ``vbench/<dimension>.py``)
for preprocessing, formula and normalisation; models load from local files (Hugging Face folders via
transformers where possible) and every model can be injected (tests use tiny random modules of the real
classes). A missing weights file or package raises :class:`ex4d.utils.errors.MissingWeightsError`
naming the file and where to get it; :func:`run_vbench` turns that into a :class:`Skipped` entry.

Dimensions (score per video, then the mean over videos; all in [0, 1], higher is better):

* ``subject_consistency``: DINO ViT-B/16 CLS features of every frame (shorter side resized to 224,
  bilinear, no crop, ImageNet normalisation). For frame i >= 1:
  ``(max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2``; the video score is the mean over i.
* ``background_consistency``: the same formula on CLIP ViT-B/32 image embeddings (shorter side 224,
  bicubic, centre crop 224, CLIP normalisation).
* ``motion_smoothness``: drop the odd frames, re-create each from its two even neighbours with a frame
  interpolator, and score ``(255 - mean |interpolated - real|) / 255`` over the odd frames (uint8
  absolute difference; the interpolated frame is converted to uint8 by truncation, as VBench's
  ``tensor2img`` does). VBench's interpolator is AMT-S: ``interpolator="amt"`` (default) builds the AMT-S
  network from the ``vbench`` package's copy of AMT (``vbench.third_party.amt``; installed without its
  dependencies, see ``docs/evaluation.md``) and loads ``amt-s.pth`` into it, frames in [0, 1] padded to a
  multiple of 16 (replicate), time 0.5, ``scale_factor=1`` (VBench lowers it only when a frame would not
  fit the GPU). ``interpolator="blend"`` is a documented weak baseline (the average of the two
  neighbours), reported under the name ``motion_smoothness_blend``; it is not VBench's number.
* ``temporal_flickering``: no network: ``(255 - mean_i mean|frame_{i+1} - frame_i|) / 255`` over
  consecutive frame pairs (float absolute difference of the uint8 frames), as ``vbench/temporal_flickering.py``.
  VBench applies it to its static-scene prompts only; on custom input (ours) it scores every video, so
  camera motion itself counts as "flicker": read it next to ``dynamic_degree``.
* ``dynamic_degree``: optical flow between consecutive frames (subsampled to about 8 fps: every
  ``round(fps / 8)``-th frame); a pair's score is the mean of the top 5% flow magnitudes; a video is
  dynamic when at least ``round(4 * n / 16)`` pairs exceed ``6 * max(1, 8 / fps) * min(H, W) / 256``
  pixels (n = frames after subsampling). The dimension is the fraction of dynamic videos. VBench uses
  RAFT (raft-things, 20 iterations); ``flow="raft"`` (default) loads torchvision's port of it
  (``raft_large``, local ``raft_large_C_T_V1-22a6c225.pth``); ``flow="dis"`` is OpenCV's DIS flow (no
  weights), a documented fallback reported as ``dynamic_degree_dis``.
* ``aesthetic_quality``: CLIP ViT-L/14 image embeddings (L2-normalised) through the LAION aesthetic
  linear head (``sa_0_4_vit_l_14_linear.pth``), divided by 10, averaged over frames.
  **``vbench_aq``** is this number: the likely paper-comparable "VBench" score of EX-4D's Table 1
  (0.450; the scale matches ReCamMaster's own aesthetic numbers).
* ``imaging_quality``: MUSIQ (SPAQ checkpoint ``musiq_spaq_ckpt-358bb6af.pth``, the network from the
  ``pyiqa`` package, installed without its dependencies) on every frame, frames resized so the longer side
  is at most 512 (VBench's default ``longer`` mode), score / 100.
* ``vbench_quality`` (:class:`VBenchQuality`): VBench's leaderboard "Quality Score" over the seven quality
  dimensions above: each dimension min-max normalised with VBench's published constants
  (``scripts/constant.py``: ``NORMALIZE_DIC``), weighted (``DIM_WEIGHT``: dynamic degree 0.5, others 1), the
  weighted sum divided by the weight total (``scripts/cal_final_score.py``: ``get_quality_score``). It is
  linear in the dimension scores, so the set value is the mean of per-video values, bootstrapped like them.

Frames are ``(T, H, W, 3)`` uint8 RGB throughout. VBench resizes uint8 tensors with torchvision, which
rounds back to uint8; we round the same way.

Known small differences from VBench's own runs (they change scores in the 3rd-4th decimal, not the
formulas): CLIP and DINO come as Hugging Face conversions of the same weights (VBench: OpenAI ``clip``
JIT files and torch.hub DINO); non-square DINO inputs use transformers' bicubic position-embedding
interpolation, DINO's own uses a slightly different scale factor; VBench's per-dimension aggregate for
the consistency dimensions weights videos by frame count, ours is the mean of per-video scores (equal
when all videos have the same length, as in our benchmarks).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ex4d.metrics.stats import ScoreWithCI, bootstrap_mean
from ex4d.metrics.video import as_video, center_crop, resize_shorter_side
from ex4d.metrics.weights import (
    MetricUnavailable,
    Skipped,
    eval_extra_imports,
    resolve_weights,
    run_or_skip,
    strict_weights_load,
)
from ex4d.utils.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Callable types of the injectable models.
ImageEmbedder = Callable[[Tensor], Tensor]  # (N, 3, h, w) normalised float -> (N, D)
Interpolator = Callable[[Tensor, Tensor], Tensor]  # two (1, 3, H, W) float32 [0, 1] -> middle frame, same layout
FlowModel = Callable[[Tensor, Tensor], Tensor]  # two (1, 3, H, W) float [0, 255] -> (1, 2, H, W) flow in pixels
QualityScorer = Callable[[Tensor], Tensor]  # (1, 3, H, W) float [0, 1] -> score in [0, 100]


def _resize_like_uint8(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """Resize float [0, 255] images and round/clamp back to integer values, as torchvision does on uint8."""
    y = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=False)
    return y.round().clamp(0, 255)


def _normalise(x: Tensor, mean: tuple, std: tuple) -> Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x / 255.0 - m) / s


def dino_preprocess(video: Tensor, size: int = 224) -> Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, 224, W') ImageNet-normalised: shorter side 224, bilinear, no crop."""
    x = video.permute(0, 3, 1, 2).float()
    r = resize_shorter_side(x, size, mode="bilinear", long_side="floor")
    if r.shape[-2:] != x.shape[-2:]:
        r = r.round().clamp(0, 255)
    return _normalise(r, IMAGENET_MEAN, IMAGENET_STD)


def clip_preprocess(video: Tensor, size: int = 224) -> Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, 224, 224) CLIP-normalised: shorter side 224 bicubic, centre crop."""
    x = video.permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    out = (size, int(w * scale)) if h <= w else (int(h * scale), size)
    if out != (h, w):
        x = _resize_like_uint8(x, out, "bicubic")
    return _normalise(center_crop(x, size), CLIP_MEAN, CLIP_STD)


def consistency_score(features: Tensor) -> float:
    """VBench's consistency formula on (T, D) per-frame features of one video.

    For each frame i >= 1: ``(max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2``; returns the mean
    over i (1.0 for a one-frame video, as VBench's background consistency does).
    """
    if features.shape[0] < 2:
        return 1.0
    f = F.normalize(features.double(), dim=-1)
    prev = (f[1:] * f[:-1]).sum(-1).clamp_min(0.0)
    first = (f[1:] * f[:1]).sum(-1).clamp_min(0.0)
    return float(((prev + first) / 2).mean())


def motion_smoothness_score(video: Tensor, interpolator: Interpolator) -> float:
    """VBench's motion-smoothness formula for one (T, H, W, 3) uint8 video (T >= 3).

    Even frames 0, 2, 4, ... are kept; the interpolator predicts each odd frame 2i+1 from frames 2i and
    2i+2 (float32 in [0, 1], as VBench's ``img2tensor``); the prediction goes back to uint8 as VBench's
    ``tensor2img`` does it (``x * 255``, clip, truncate); the score is
    ``(255 - mean_i mean|pred_i - frame_{2i+1}|) / 255``. With an even T the last frame has no right
    neighbour and is not scored (as in VBench).
    """
    if video.shape[0] < 3:
        raise InputError(f"motion smoothness needs at least 3 frames, got {video.shape[0]}")
    x = video.permute(0, 3, 1, 2).float() / 255.0
    evens = x[0::2]
    diffs = []
    for i in range(evens.shape[0] - 1):
        mid = interpolator(evens[i : i + 1], evens[i + 1 : i + 2])
        pred = (mid.float().cpu() * 255.0).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0)  # truncates
        real = video[2 * i + 1]
        diffs.append((pred.int() - real.int()).abs().double().mean().item())  # float64, as numpy's mean of uint8
    return float((255.0 - np.mean(diffs)) / 255.0)


def temporal_flickering_score(video: Tensor) -> float:
    """VBench's temporal-flickering score of one (T, H, W, 3) uint8 video: ``(255 - mean MAE) / 255``.

    MAE of each consecutive frame pair (float absolute difference over every pixel and channel), averaged
    over the T - 1 pairs; 1.0 for a static video (and for a one-frame video, which has no pair to differ).
    """
    if video.shape[0] < 2:
        return 1.0
    v = video.float()
    mae = (v[1:] - v[:-1]).abs().flatten(1).mean(1)
    return float((255.0 - mae.double().mean().item()) / 255.0)


def blend_interpolator(a: Tensor, b: Tensor) -> Tensor:
    """Weak baseline interpolator: the average of the two neighbours (exact for static or linearly fading video)."""
    return (a + b) / 2


def top5_flow_magnitude(flow: Tensor) -> float:
    """Mean of the largest 5% of flow magnitudes of a (1, 2, H, W) or (2, H, W) flow (VBench's pair score)."""
    f = flow.reshape(-1, *flow.shape[-3:])[0].double()
    mag = torch.sqrt(f[0] ** 2 + f[1] ** 2).flatten()
    k = int(mag.numel() * 0.05)
    if k < 1:
        return float(mag.max())
    return float(torch.topk(mag, k).values.mean())


def dynamic_degree_params(frame_hw: tuple[int, int], n_frames: int, fps: float) -> tuple[float, int]:
    """VBench's (threshold in pixels, number of pairs needed) for a video."""
    factor = max(1.0, 8.0 / fps)
    thres = factor * 6.0 * (min(frame_hw) / 256.0)
    count_num = round(4 * (n_frames / 16.0))
    return thres, count_num


def is_dynamic(pair_scores: Sequence[float], thres: float, count_num: int) -> bool:
    """VBench's check_move: dynamic when at least ``count_num`` pair scores exceed ``thres``."""
    count = 0
    for s in pair_scores:
        if s > thres:
            count += 1
        if count >= count_num:
            return True
    return False


class DISFlow:
    """OpenCV DIS optical flow (no weights): the documented fallback for RAFT in dynamic degree."""

    def __init__(self, preset: int | None = None) -> None:
        import cv2

        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if preset is None else preset)

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        cv2 = self._cv2

        def gray(x: Tensor) -> np.ndarray:
            rgb = x[0].permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).cpu().numpy()
            return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)

        flow = self._dis.calc(gray(a), gray(b), None)  # (H, W, 2) float32 pixels
        return torch.from_numpy(flow).permute(2, 0, 1)[None]


class RaftTorchvisionFlow:
    """RAFT (large, 20 iterations) through torchvision's implementation, from a local weights file.

    torchvision's ``raft_large`` with the ``C_T_V1`` weights is its port of the original raft-things
    checkpoint that VBench loads. The network is built with ``weights=None`` (nothing downloads) and the
    local file loaded strictly. torchvision (the ``eval`` extra, matching torch) is imported only here.
    """

    def __init__(self, weights_path: str | Path, device: str | torch.device = "cpu", iters: int = 20) -> None:
        with eval_extra_imports("dynamic degree with RAFT", "torchvision",
                                hint="; or use flow='dis' (OpenCV DIS fallback)"):
            from torchvision.models.optical_flow import raft_large
        self.model = raft_large(weights=None, progress=False)
        with strict_weights_load(weights_path, "torchvision's raft_large weights"):
            self.model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        self.model.eval().to(device)
        self.device = torch.device(device)
        self.iters = iters

    @torch.no_grad()
    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        h, w = a.shape[-2:]
        # RAFT needs sizes divisible by 8 (VBench pads likewise, replicating the border). torchvision's
        # correlation pyramid also needs 1/8-scale maps of >= 16 px, so frames under 128 px are padded
        # up to 128 (the original RAFT has no such limit; only such tiny frames see the extra border).
        ph = max(128, -(-h // 8) * 8) - h
        pw = max(128, -(-w // 8) * 8) - w
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        a1 = F.pad(a, pad, mode="replicate").to(self.device) / 127.5 - 1.0
        b1 = F.pad(b, pad, mode="replicate").to(self.device) / 127.5 - 1.0
        flow = self.model(a1, b1, num_flow_updates=self.iters)[-1]
        return flow[..., pad[2] : pad[2] + h, pad[0] : pad[0] + w].cpu()


# Where the network code of AMT-S and MUSIQ comes from: packages installed without their dependencies
# (requirements/eval-nodeps.txt; docs/evaluation.md says why).
NODEPS_INSTALL = "pip install --no-deps -r requirements/eval-nodeps.txt"


def amt_s_network() -> type[nn.Module]:
    """The AMT-S network class (``Model``) from the vbench package's copy of AMT (``networks/AMT-S.py``)."""
    with eval_extra_imports("motion smoothness (AMT-S)", "the vbench package (AMT's network code) and decord",
                            hint=f"; install with {NODEPS_INSTALL}"):
        from PIL import ImageFile

        # vbench's AMT utils set PIL's process-wide LOAD_TRUNCATED_IMAGES = True on import, which would make every
        # later truncated input image load silently (ex4d.io.video refuses them): put the flag back.
        truncated = ImageFile.LOAD_TRUNCATED_IMAGES
        try:
            # The module file name has a hyphen, so it is imported by name; vbench's package __init__ needs decord.
            return importlib.import_module("vbench.third_party.amt.networks.AMT-S").Model
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = truncated


class AMTInterpolator:
    """VBench's AMT-S frame interpolation: ``(a, b)`` -> the frame halfway between them.

    As ``vbench/motion_smoothness.py`` calls it: frames (1, 3, H, W) float in [0, 1], padded to multiples of
    16 by border replication (AMT's ``InputPadder``), ``embt = 0.5``, ``scale_factor = 1`` (VBench lowers it
    only when a frame would not fit in GPU memory: above about 5 megapixels per frame on an 80 GB GPU), the
    network's ``eval=True`` output ``imgt_pred`` (already clamped to [0, 1]), cropped back. Frames under
    128 px are padded up to 128 (smaller ones give NaN).

    Args:
        model: an AMT-S ``Model`` (:func:`amt_s_network`) with its weights loaded.
    """

    multiple = 16
    min_side = 128

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", scale_factor: float = 1.0) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.scale_factor = scale_factor
        self.embt = torch.full((1, 1, 1, 1), 0.5, device=self.device)

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> AMTInterpolator:
        """Build AMT-S with VBench's ``AMT-S.yaml`` parameters and load ``amt-s.pth`` (``{"state_dict": ...}``)."""
        model = amt_s_network()(corr_radius=3, corr_lvls=4, num_flows=3)
        with strict_weights_load(path, "an AMT-S checkpoint ({'state_dict': <AMT-S weights>})"):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(ckpt["state_dict"])
        return cls(model, device)

    @torch.no_grad()
    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        h, w = a.shape[-2:]
        # AMT-S gives NaN under 128 px per side (its 1/16-scale encoder and 4-level correlation pyramid run
        # out of pixels; VBench fails on such frames): smaller frames (test sizes only) are border-padded up
        # to 128, as for RAFT.
        ph = max(self.min_side, h + (-h) % self.multiple) - h
        pw = max(self.min_side, w + (-w) % self.multiple) - w
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        a1 = F.pad(a.float(), pad, mode="replicate").to(self.device)
        b1 = F.pad(b.float(), pad, mode="replicate").to(self.device)
        out = self.model(a1, b1, self.embt, scale_factor=self.scale_factor, eval=True)["imgt_pred"]
        return out[..., pad[2] : pad[2] + h, pad[0] : pad[0] + w].cpu()


def load_musiq(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """pyiqa's MUSIQ (VBench's ``MUSIQ(pretrained_model_path=...)``: the SPAQ checkpoint, one output) from a
    local file: built with ``pretrained=False`` (nothing downloads), the state dict loaded strictly with
    ``weights_only=True`` (pyiqa's own loader unpickles arbitrary objects)."""
    with eval_extra_imports("imaging quality (MUSIQ)", "the pyiqa package", hint=f"; install with {NODEPS_INSTALL}"):
        from pyiqa.archs.musiq_arch import MUSIQ
    model = MUSIQ(pretrained=False)
    with strict_weights_load(path, "a MUSIQ (SPAQ) state dict"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})  # as pyiqa's clean_state_dict
    # eval(): MUSIQ preprocesses (multi-scale patches) only when not training; its dropout rates are 0,
    # so this equals VBench's `model.training = False`.
    return model.eval().to(device)


class LaionAestheticHead(nn.Module):
    """LAION aesthetic predictor v1 head: ``Linear(768, 1)`` on L2-normalised CLIP ViT-L/14 embeddings."""

    def __init__(self, dim: int = 768) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1)

    @classmethod
    def from_file(cls, path: str | Path) -> LaionAestheticHead:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if set(state) != {"weight", "bias"}:
            raise InputError(f"{path}: expected a Linear state dict with 'weight' and 'bias', got keys {sorted(state)[:5]}")
        head = cls(int(state["weight"].shape[1]))
        head.linear.load_state_dict(state)
        return head.eval()

    def forward(self, embeds: Tensor) -> Tensor:
        return self.linear(F.normalize(embeds.float(), dim=-1)).squeeze(-1)


class HFDinoEmbedder(nn.Module):
    """DINO ViT CLS feature (after the final LayerNorm) from a transformers ``ViTModel``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    @classmethod
    def from_folder(cls, path: str | Path) -> HFDinoEmbedder:
        from transformers import ViTModel

        return cls(ViTModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False))

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        # Non-square inputs (shorter side 224) need interpolated position embeddings, as DINO does.
        return self.model(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state[:, 0]


class HFClipEmbedder(nn.Module):
    """CLIP image embedding (projected, not normalised) from a transformers ``CLIPVisionModelWithProjection``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    @classmethod
    def from_folder(cls, path: str | Path) -> HFClipEmbedder:
        from transformers import CLIPVisionModelWithProjection

        return cls(CLIPVisionModelWithProjection.from_pretrained(str(path), local_files_only=True))

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.model(pixel_values=x).image_embeds


def _embed(embedder: ImageEmbedder, x: Tensor, batch_size: int, device: torch.device) -> Tensor:
    out = [embedder(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out)


@dataclass
class DimensionResult:
    """One VBench dimension over a video set.

    Attributes:
        name: reported name (``dynamic_degree_dis`` etc. when a fallback model was used).
        score: mean of the per-video scores with N and a bootstrap interval.
        per_video: the per-video scores, in input order.
    """

    name: str
    score: ScoreWithCI
    per_video: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, **self.score.to_dict(), "per_video": self.per_video}


class VBenchDimension:
    """Base: ``score_video`` per video, ``__call__`` over a set; models load lazily on first use."""

    name = "base"

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 16, n_boot: int = 1000, seed: int = 0) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.n_boot = n_boot
        self.seed = seed

    @property
    def report_name(self) -> str:
        return self.name

    def check_available(self) -> None:
        """Resolve the files and imports the models need, without building them (cheap: runs before any
        video is generated). Raises MissingWeightsError / MetricUnavailable naming what is missing."""

    def score_video(self, video: Tensor) -> float:
        raise NotImplementedError

    def __call__(self, videos: Sequence[Tensor | np.ndarray], names: Sequence[str] | None = None) -> DimensionResult:
        if len(videos) == 0:
            raise InputError(f"{self.name}: no videos")
        names = list(names) if names is not None else [f"video {i}" for i in range(len(videos))]
        scores = [self.score_video(as_video(v, n)) for v, n in zip(videos, names)]
        return DimensionResult(self.report_name, bootstrap_mean(scores, self.n_boot, seed=self.seed), scores)


class _EmbeddingConsistency(VBenchDimension):
    """Consistency of per-frame image embeddings (VBench's subject / background consistency formula).

    Subclasses name the weights entry, the embedder class and its preprocessing."""

    weights_key: str
    embedder_cls: type
    preprocess = staticmethod(lambda video: video)

    def __init__(self, weights_path=None, sha256=None, weights_root=None, embedder: ImageEmbedder | None = None, **kw) -> None:
        super().__init__(**kw)
        self.weights_path, self.sha256, self.weights_root = weights_path, sha256, weights_root
        self._embedder = embedder

    def check_available(self) -> None:
        if self._embedder is None:
            resolve_weights(self.weights_key, self.weights_path, self.sha256, self.weights_root)

    @property
    def embedder(self) -> ImageEmbedder:
        if self._embedder is None:
            path = resolve_weights(self.weights_key, self.weights_path, self.sha256, self.weights_root)
            self._embedder = self.embedder_cls.from_folder(path).to(self.device)
        return self._embedder

    def score_video(self, video: Tensor) -> float:
        return consistency_score(_embed(self.embedder, self.preprocess(video), self.batch_size, self.device))


class SubjectConsistency(_EmbeddingConsistency):
    """DINO ViT-B/16 consistency (``facebook/dino-vitb16`` folder, or an injected embedder)."""

    name = "subject_consistency"
    weights_key = "dino_vitb16"
    embedder_cls = HFDinoEmbedder
    preprocess = staticmethod(dino_preprocess)


class BackgroundConsistency(_EmbeddingConsistency):
    """CLIP ViT-B/32 consistency (``openai/clip-vit-base-patch32`` folder, or an injected embedder)."""

    name = "background_consistency"
    weights_key = "clip_vitb32"
    embedder_cls = HFClipEmbedder
    preprocess = staticmethod(clip_preprocess)


class MotionSmoothness(VBenchDimension):
    """Frame-interpolation smoothness (module docstring).

    Args:
        interpolator: ``"amt"`` (VBench's AMT-S from ``amt-s.pth``), ``"blend"`` (the documented
            neighbour-average baseline, reported as ``motion_smoothness_blend``), a callable
            :data:`Interpolator`, or None (the metric is skipped with a message).
        weights_path, sha256, weights_root: the ``amt-s.pth`` file (see :mod:`ex4d.metrics.weights`).
    """

    name = "motion_smoothness"

    def __init__(self, interpolator: Interpolator | str | None = "amt", weights_path=None, sha256=None, weights_root=None,
                 **kw) -> None:
        super().__init__(**kw)
        if isinstance(interpolator, str) and interpolator not in ("amt", "blend"):
            raise InputError(f"motion_smoothness.interpolator must be 'amt', 'blend', a callable or None, got {interpolator!r}")
        self.interpolator = interpolator
        self.weights_path, self.sha256, self.weights_root = weights_path, sha256, weights_root
        self._interp: Interpolator | None = None if isinstance(interpolator, str) else interpolator

    @property
    def report_name(self) -> str:
        return "motion_smoothness_blend" if self.interpolator == "blend" else self.name

    def _unavailable(self) -> MetricUnavailable:
        return MetricUnavailable(
            "motion smoothness has no frame interpolator (interpolator=null): set metrics.motion_smoothness."
            "interpolator=amt (VBench's AMT-S, amt-s.pth) or 'blend' (the neighbour-average baseline)"
        )

    def check_available(self) -> None:
        if self.interpolator is None:
            raise self._unavailable()
        if self.interpolator == "amt" and self._interp is None:
            resolve_weights("amt_s", self.weights_path, self.sha256, self.weights_root)
            amt_s_network()

    @property
    def interp(self) -> Interpolator:
        if self._interp is None:
            if self.interpolator is None:
                raise self._unavailable()
            if self.interpolator == "blend":
                self._interp = blend_interpolator
            else:
                path = resolve_weights("amt_s", self.weights_path, self.sha256, self.weights_root)
                self._interp = AMTInterpolator.from_file(path, self.device)
        return self._interp

    def score_video(self, video: Tensor) -> float:
        return motion_smoothness_score(video, self.interp)


class TemporalFlickering(VBenchDimension):
    """VBench's temporal flickering (no network; module docstring)."""

    name = "temporal_flickering"

    def score_video(self, video: Tensor) -> float:
        return temporal_flickering_score(video)


class DynamicDegree(VBenchDimension):
    """Fraction of dynamic videos. ``flow``: ``"raft"`` (torchvision RAFT, local weights), ``"dis"``, or a callable.

    Args:
        fps: frame rate of the videos (Wan2.1 writes 16 fps); sets the subsampling and threshold.
    """

    name = "dynamic_degree"

    def __init__(self, flow: FlowModel | str = "raft", fps: float = 16.0, weights_path=None, sha256=None, weights_root=None, **kw) -> None:
        super().__init__(**kw)
        if isinstance(flow, str) and flow not in ("raft", "dis"):
            raise InputError(f"dynamic_degree.flow must be 'raft', 'dis' or a callable, got {flow!r}")
        if fps <= 0:
            raise InputError(f"dynamic_degree.fps must be > 0, got {fps}")
        self.flow_choice = flow
        self.fps = fps
        self.weights_path, self.sha256, self.weights_root = weights_path, sha256, weights_root
        self._flow: FlowModel | None = None if isinstance(flow, str) else flow

    @property
    def report_name(self) -> str:
        return "dynamic_degree_dis" if self.flow_choice == "dis" else self.name

    def check_available(self) -> None:
        if self._flow is None and self.flow_choice == "raft":
            resolve_weights("raft_large", self.weights_path, self.sha256, self.weights_root)
            with eval_extra_imports("dynamic degree with RAFT", "torchvision", hint="; or use flow='dis' (OpenCV DIS fallback)"):
                from torchvision.models.optical_flow import raft_large  # noqa: F401

    @property
    def flow(self) -> FlowModel:
        if self._flow is None:
            if self.flow_choice == "dis":
                self._flow = DISFlow()
            else:
                path = resolve_weights("raft_large", self.weights_path, self.sha256, self.weights_root)
                self._flow = RaftTorchvisionFlow(path, self.device)
        return self._flow

    def pair_scores(self, video: Tensor) -> tuple[list[float], float, int]:
        """Per-pair top-5% flow magnitudes and the video's (threshold, count) after subsampling."""
        interval = max(1, round(self.fps / 8))
        frames = video[::interval].permute(0, 3, 1, 2).float()
        thres, count_num = dynamic_degree_params(tuple(frames.shape[-2:]), frames.shape[0], self.fps)
        scores = [top5_flow_magnitude(self.flow(frames[i : i + 1], frames[i + 1 : i + 2])) for i in range(frames.shape[0] - 1)]
        return scores, thres, count_num

    def score_video(self, video: Tensor) -> float:
        if video.shape[0] < 2:
            raise InputError(f"dynamic degree needs at least 2 frames, got {video.shape[0]}")
        scores, thres, count_num = self.pair_scores(video)
        return float(is_dynamic(scores, thres, count_num))


class AestheticQuality(VBenchDimension):
    """LAION aesthetic head on CLIP ViT-L/14, / 10. This is ``vbench_aq``, the likely paper-comparable score."""

    name = "aesthetic_quality"

    def __init__(
        self,
        clip_path=None,
        head_path=None,
        clip_sha256=None,
        head_sha256=None,
        weights_root=None,
        embedder: ImageEmbedder | None = None,
        head: nn.Module | None = None,
        **kw,
    ) -> None:
        super().__init__(**kw)
        self.clip_path, self.head_path = clip_path, head_path
        self.clip_sha256, self.head_sha256, self.weights_root = clip_sha256, head_sha256, weights_root
        self._embedder, self._head = embedder, head

    def check_available(self) -> None:
        if self._head is None:
            resolve_weights("laion_aesthetic", self.head_path, self.head_sha256, self.weights_root)
        if self._embedder is None:
            resolve_weights("clip_vitl14", self.clip_path, self.clip_sha256, self.weights_root)

    @property
    def models(self) -> tuple[ImageEmbedder, nn.Module]:
        if self._head is None:
            path = resolve_weights("laion_aesthetic", self.head_path, self.head_sha256, self.weights_root)
            self._head = LaionAestheticHead.from_file(path).to(self.device)
        if self._embedder is None:
            path = resolve_weights("clip_vitl14", self.clip_path, self.clip_sha256, self.weights_root)
            self._embedder = HFClipEmbedder.from_folder(path).to(self.device)
        return self._embedder, self._head

    @torch.no_grad()
    def score_video(self, video: Tensor) -> float:
        embedder, head = self.models
        emb = _embed(embedder, clip_preprocess(video), self.batch_size, self.device)
        return float((head(emb.to(self.device)).float().cpu() / 10.0).mean())


def musiq_preprocess(frame: Tensor, max_side: int = 512) -> Tensor:
    """(H, W, 3) uint8 -> (1, 3, h, w) float [0, 1]; longer side resized to ``max_side`` if larger (VBench 'longer')."""
    x = frame.permute(2, 0, 1)[None].float()
    h, w = x.shape[-2:]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        x = _resize_like_uint8(x, (int(scale * h), int(scale * w)), "bilinear")
    return x / 255.0


class ImagingQuality(VBenchDimension):
    """MUSIQ (SPAQ) per frame, / 100 (:func:`load_musiq`: the ``pyiqa`` package's network), or an injected ``scorer``."""

    name = "imaging_quality"

    def __init__(self, weights_path=None, sha256=None, weights_root=None, scorer: QualityScorer | None = None, **kw) -> None:
        super().__init__(**kw)
        self.weights_path, self.sha256, self.weights_root = weights_path, sha256, weights_root
        self._scorer = scorer

    def check_available(self) -> None:
        if self._scorer is None:
            resolve_weights("musiq_spaq", self.weights_path, self.sha256, self.weights_root)
            with eval_extra_imports("imaging quality (MUSIQ)", "the pyiqa package", hint=f"; install with {NODEPS_INSTALL}"):
                from pyiqa.archs.musiq_arch import MUSIQ  # noqa: F401

    @property
    def scorer(self) -> QualityScorer:
        if self._scorer is None:
            path = resolve_weights("musiq_spaq", self.weights_path, self.sha256, self.weights_root)
            self._scorer = load_musiq(path, self.device)
        return self._scorer

    @torch.no_grad()
    def score_video(self, video: Tensor) -> float:
        scorer = self.scorer
        scores = [float(scorer(musiq_preprocess(f).to(self.device))) for f in video]
        return float(np.mean(scores) / 100.0)


# VBench's quality dimensions and their leaderboard constants (Vchitect/VBench scripts/constant.py:
# QUALITY_LIST, NORMALIZE_DIC as (min, max), DIM_WEIGHT).
QUALITY_NORMALIZE = {
    "subject_consistency": (0.1462, 1.0),
    "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0),
    "motion_smoothness": (0.706, 0.9975),
    "aesthetic_quality": (0.0, 1.0),
    "imaging_quality": (0.0, 1.0),
    "dynamic_degree": (0.0, 1.0),
}
QUALITY_WEIGHT = {**{k: 1.0 for k in QUALITY_NORMALIZE}, "dynamic_degree": 0.5}
DIMENSIONS = (
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "motion_smoothness",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
)


def vbench_quality_score(scores: Mapping[str, float]) -> float:
    """VBench's leaderboard Quality Score from the seven quality-dimension scores (each in [0, 1]).

    ``sum_k w_k (s_k - min_k) / (max_k - min_k) / sum_k w_k`` with VBench's constants (module docstring).
    Missing dimensions are an error (VBench's script counts a missing one as 0; we refuse to).
    """
    missing = [k for k in QUALITY_NORMALIZE if k not in scores]
    if missing:
        raise InputError(f"vbench_quality needs every quality dimension; missing {missing}")
    total = sum(QUALITY_WEIGHT[k] * (float(scores[k]) - lo) / (hi - lo) for k, (lo, hi) in QUALITY_NORMALIZE.items())
    return total / sum(QUALITY_WEIGHT.values())


class VBenchQuality:
    """The aggregate of the quality dimensions (:func:`vbench_quality_score`), per video and over the set.

    The score is linear in the dimension scores, so the set score (VBench: from the set-level dimension
    means) equals the mean of the per-video scores; the interval bootstraps those.
    """

    name = "vbench_quality"
    dimensions = tuple(QUALITY_NORMALIZE)

    def __init__(self, n_boot: int = 1000, seed: int = 0) -> None:
        self.n_boot = n_boot
        self.seed = seed

    def __call__(self, per_video: Mapping[str, Sequence[float]], name: str | None = None) -> DimensionResult:
        """``per_video``: each quality dimension's per-video scores, same video order and count."""
        missing = [k for k in self.dimensions if k not in per_video]
        if missing:
            raise InputError(f"vbench_quality needs every quality dimension; missing {missing}")
        counts = {len(per_video[k]) for k in self.dimensions}
        if len(counts) != 1 or 0 in counts:
            raise InputError(f"vbench_quality: the dimensions scored different numbers of videos ({sorted(counts)})")
        n = counts.pop()
        scores = [vbench_quality_score({k: per_video[k][i] for k in self.dimensions}) for i in range(n)]
        return DimensionResult(name or self.name, bootstrap_mean(scores, self.n_boot, seed=self.seed), scores)


def run_vbench(dimensions: Sequence[VBenchDimension], videos: Sequence[Tensor | np.ndarray], names: Sequence[str] | None = None) -> dict:
    """Run each dimension on the generated videos; missing weights skip that dimension (logged).

    Returns:
        ``{report_name: DimensionResult | Skipped}``, plus ``"vbench_aq"`` (the aesthetic-quality result,
        labelled the likely paper-comparable score) when aesthetic quality ran or was skipped, and
        ``"vbench_quality"`` when all seven quality dimensions ran with their VBench models (not with the
        blend / DIS stand-ins).
    """
    out: dict = {}
    by_name: dict[str, DimensionResult] = {}
    for dim in dimensions:
        out[dim.report_name] = run_or_skip(dim.report_name, dim, videos, names)
        if dim.name == "aesthetic_quality":
            res = out[dim.report_name]
            out["vbench_aq"] = res if isinstance(res, Skipped) else DimensionResult("vbench_aq", res.score, res.per_video)
        if dim.report_name == dim.name and isinstance(out[dim.name], DimensionResult):
            by_name[dim.name] = out[dim.name]
    if all(k in by_name for k in VBenchQuality.dimensions):
        n_boot, seed = dimensions[0].n_boot, dimensions[0].seed
        out["vbench_quality"] = VBenchQuality(n_boot, seed)({k: by_name[k].per_video for k in VBenchQuality.dimensions})
    return out
