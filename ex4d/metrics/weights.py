"""Local weight files of the metric extractors, their checks, and how a missing file skips a metric.

Nothing here downloads: every extractor loads from a local path. A missing (or wrongly hashed) file raises
:class:`ex4d.utils.errors.MissingWeightsError` whose message names the file and where to get it;
:func:`run_or_skip` turns that into a :class:`Skipped` result for the report, never a silent zero.

Where files live: ``<weights_dir>/metrics/<filename>``, with ``weights_dir`` from the argument, else the
``EX4D_WEIGHTS`` environment variable (as ``paths.weights_dir``), else ``./weights``. Hugging Face models are folders
(``config.json`` + ``model.safetensors``) saved with ``save_pretrained`` / ``huggingface-cli download``.
A file that ships inside a pip package (the LPIPS linear heads) is found in that package.

Checks: every file's full sha256 is computed on use, logged, and recorded (:func:`resolved_weights`, which
``evaluate.py`` writes into ``results.json``). It is then compared with, in this order:

1. the ``sha256`` a metric's config sets (a full digest or a prefix of >= 8 hex digits; "" disables);
2. the registry's full ``sha256``, where one is published (``sha256_source`` says where);
3. else the hash prefix in the released file's name (``name_hash``: torch.hub names files
   ``name-<first hex digits of the sha256>.pth`` and its loader checks that prefix), so a truncated or
   wrong download is still caught;
4. else nothing: no digest of the file is published anywhere we could find (``no_digest`` says so), and
   the file is accepted with its digest logged, to compare against your own download's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ex4d.utils.errors import InputError, MissingWeightsError, download_command
from ex4d.utils.hashing import sha256_file

log = logging.getLogger(__name__)

_HUB_NO_DIGEST = ("the model card and docs state no digest; the hub shows the file's LFS SHA256 on its page, "
                  "compare the logged digest with it")


@dataclass(frozen=True)
class WeightsFile:
    """A weights file (or Hugging Face model folder) that a metric needs.

    Attributes:
        key: short id used in configs and by ``tools/download_weights.py``.
        filename: file or folder name under ``<weights_dir>/metrics``.
        source: where to get it (URL or hub id), quoted in the missing-file message.
        sha256: the full 64-hex digest of the file (for a folder: of ``hashed_member``), where published.
        sha256_source: where that digest is published (required with ``sha256``).
        name_hash: the hex prefix of the sha256 in the released file's name (torch.hub convention).
        no_digest: why there is no ``sha256`` (required without it): the file is accepted with its digest logged.
        hashed_member: for a folder, the file inside it that the digest refers to (``model.safetensors``, or
            ``pytorch_model.bin`` in a folder that has only that).
        package: ``"<module>:<path inside it>"`` for a file that ships inside a pip package (no download).
        used_by: the metric(s) that need it (for messages).
    """

    key: str
    filename: str
    source: str
    sha256: str | None = None
    sha256_source: str = ""
    name_hash: str | None = None
    no_digest: str = ""
    hashed_member: str | None = None
    package: str | None = None
    used_by: str = ""

    @property
    def check(self) -> str:
        """How a file is checked, in words (``tools/download_weights.py`` prints it)."""
        if self.sha256:
            return f"sha256 {self.sha256} (published in {self.sha256_source})"
        if self.name_hash:
            return f"sha256 prefix {self.name_hash} from the released file name, full digest logged ({self.no_digest})"
        return f"digest logged only ({self.no_digest})"


# The files the evaluation protocol needs (ex4d-method.md section 7). Sources are the files the reference
# implementations load (VBench: Vchitect/VBench pretrained/*/model_path.txt, download.sh); the Hugging Face
# folders hold the same weights converted. No source publishes a full sha256 of a downloaded file (read:
# pytorch-fid, torch-fidelity, torchvision's model docs, StyleGAN-V, LAION-AI/aesthetic-predictor, IQA-PyTorch,
# AMT, VBench); the LPIPS heads ship in the lpips wheel, whose RECORD file publishes their digest.
METRIC_WEIGHTS: dict[str, WeightsFile] = {
    w.key: w
    for w in [
        WeightsFile(
            "fid_inception",
            "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth "
            "(the same file as torch-fidelity's weights-inception-2015-12-05-6726825d.pth, which it loads)",
            name_hash="6726825d",
            no_digest="pytorch-fid and torch-fidelity publish only the name prefix, which their torch.hub download checks",
            used_by="FID, KID",
        ),
        WeightsFile(
            "i3d_styleganv",
            "i3d_torchscript.pt",
            "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1 (StyleGAN-V FVD detector)",
            no_digest="StyleGAN-V's repository publishes no digest of the detector file",
            used_by="FVD",
        ),
        WeightsFile(
            "dino_vitb16",
            "dino-vitb16",
            "Hugging Face facebook/dino-vitb16 (VBench loads the same DINO ViT-B/16 through torch.hub)",
            hashed_member="model.safetensors",
            no_digest=_HUB_NO_DIGEST,
            used_by="vbench subject_consistency",
        ),
        WeightsFile(
            "clip_vitb32",
            "clip-vit-base-patch32",
            "Hugging Face openai/clip-vit-base-patch32 (VBench: OpenAI CLIP ViT-B/32)",
            hashed_member="model.safetensors",
            no_digest=_HUB_NO_DIGEST,
            used_by="vbench background_consistency",
        ),
        WeightsFile(
            "clip_vitl14",
            "clip-vit-large-patch14",
            "Hugging Face openai/clip-vit-large-patch14 (VBench: OpenAI CLIP ViT-L/14)",
            hashed_member="model.safetensors",
            no_digest=_HUB_NO_DIGEST,
            used_by="vbench aesthetic_quality",
        ),
        WeightsFile(
            "laion_aesthetic",
            "sa_0_4_vit_l_14_linear.pth",
            "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth",
            no_digest="LAION-AI/aesthetic-predictor and VBench publish no digest of the head",
            used_by="vbench aesthetic_quality",
        ),
        WeightsFile(
            "musiq_spaq",
            "musiq_spaq_ckpt-358bb6af.pth",
            "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth "
            "(VBench's pretrained/pyiqa_model; the MUSIQ network comes from the pyiqa package)",
            name_hash="358bb6af",
            no_digest="IQA-PyTorch publishes only the name prefix (and pyiqa loads its files without checking it)",
            used_by="vbench imaging_quality",
        ),
        WeightsFile(
            "amt_s",
            "amt-s.pth",
            "https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth (VBench's pretrained/amt_model/download.sh; "
            "the AMT-S network comes from the vbench package)",
            no_digest="AMT and VBench publish no digest of amt-s.pth; " + _HUB_NO_DIGEST,
            used_by="vbench motion_smoothness",
        ),
        WeightsFile(
            "raft_large",
            "raft_large_C_T_V1-22a6c225.pth",
            "https://download.pytorch.org/models/raft_large_C_T_V1-22a6c225.pth (torchvision's port of RAFT "
            "raft-things, the model VBench uses; loaded into torchvision's raft_large)",
            name_hash="22a6c225",
            no_digest="torchvision publishes only the name prefix, which its torch.hub download checks",
            used_by="vbench dynamic_degree (RAFT)",
        ),
        WeightsFile(
            "lpips_alexnet",
            "alexnet-owt-7be5be79.pth",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth (torchvision's AlexNet, the LPIPS "
            "backbone)",
            name_hash="7be5be79",
            no_digest="torchvision publishes only the name prefix, which its torch.hub download checks",
            used_by="LPIPS",
        ),
        WeightsFile(
            "lpips_heads",
            "alex.pth",
            "the pip package lpips==0.1.4 (lpips/weights/v0.1/alex.pth: the LPIPS v0.1 linear heads; torchmetrics "
            "ships the same bytes): pip install -e '.[eval]'",
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            sha256_source="the RECORD file of lpips-0.1.4-py3-none-any.whl on PyPI "
            "(sha256=33MoXjWyI1Wi34fNtrcLNDcTtmft29pz4Zd-DIYINcA, urlsafe base64 of the same digest)",
            package="lpips:weights/v0.1/alex.pth",
            used_by="LPIPS",
        ),
    ]
}


def weights_dir(root: str | Path | None = None) -> Path:
    """``<root>/metrics`` with root from the argument, ``$EX4D_WEIGHTS`` (as ``paths.weights_dir`` and the download
    tool) or ``./weights``."""
    base = Path(root) if root is not None else Path(os.environ.get("EX4D_WEIGHTS", "weights"))
    return base / "metrics"


def _missing_message(spec: WeightsFile, path: Path, what: str) -> str:
    used = f" (needed by {spec.used_by})" if spec.used_by else ""
    if spec.package:
        return f"{what}: {path}{used}. It ships with {spec.source}."
    # The tool writes into <local-dir>/metrics/: point it at the folder above this file's metrics/ folder.
    root = next((q.parent for q in Path(path).parents if q.name == "metrics"), None)
    return (
        f"{what}: {path}{used}. Get '{spec.filename}' from {spec.source} and put it at {path}, or set the "
        f"metric's weights path. Run `{download_command('metrics', '--metric-keys', spec.key, local_dir=root)}` "
        "on a machine with internet."
    )


def _package_file(spec: WeightsFile) -> Path:
    module, _, rel = str(spec.package).partition(":")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise MetricUnavailable(_missing_message(spec, Path(f"<package {module}>") / rel, f"package {module!r} is not installed"))
    return Path(list(found.submodule_search_locations)[0]) / rel


# Digests computed in this process: (path, size, mtime_ns) -> sha256, so a preflight check and the later
# load hash a multi-GB file once.
_DIGESTS: dict[tuple[str, int, int], str] = {}
# What resolve_weights accepted, by path (evaluate.py writes it into results.json).
_RESOLVED: dict[str, dict] = {}
_SEQ = [0]


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached for this process by (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def resolved_weights(since: int = 0) -> dict[str, dict]:
    """``{path: {"key", "sha256", "check"}}`` of every file :func:`resolve_weights` accepted in this process
    (only those accepted after the mark ``since`` from :func:`resolve_counter`)."""
    return {k: {f: x for f, x in v.items() if f != "seq"} for k, v in _RESOLVED.items() if v["seq"] > since}


def resolve_counter() -> int:
    """A mark for :func:`resolved_weights`: files resolved from now on are ``resolved_weights(mark)``."""
    return _SEQ[0]


def resolve_weights(
    key_or_spec: str | WeightsFile, path: str | Path | None = None, sha256: str | None = None, root: str | Path | None = None
) -> Path:
    """Check and return the local path of a metric's weights (see the module docstring for the checks).

    Args:
        key_or_spec: a key of :data:`METRIC_WEIGHTS` or a :class:`WeightsFile`.
        path: explicit file/folder path (config); default ``weights_dir(root) / spec.filename`` (or the file
            inside its pip package).
        sha256: digest or >= 8-hex prefix to check instead of the registry's ("" disables the check).
        root: weights root (see :func:`weights_dir`).

    Raises:
        MissingWeightsError: the file is missing or its hash does not match; the message names the file
            and where to get it.
    """
    spec = METRIC_WEIGHTS[key_or_spec] if isinstance(key_or_spec, str) else key_or_spec
    if path is not None:
        p = Path(path)
    elif spec.package:
        p = _package_file(spec)
    else:
        p = weights_dir(root) / spec.filename
    if not p.exists():
        raise MissingWeightsError(_missing_message(spec, p, "missing weights file"))
    target = p
    if p.is_dir():
        if spec.hashed_member is None:
            raise InputError(f"{p}: is a folder, but {spec.key} names no file inside it to hash")
        # A Hugging Face folder may hold only the pickled weights (older repos; transformers loads either).
        members = [spec.hashed_member] + (["pytorch_model.bin"] if spec.hashed_member == "model.safetensors" else [])
        target = next((p / m for m in members if (p / m).is_file()), p / spec.hashed_member)
        if not target.exists():
            raise MissingWeightsError(_missing_message(spec, target, "missing weights file"))
    if sha256 is not None:
        expected, how = (sha256 or None), ("the configured sha256" if sha256 else "no check (sha256='')")
    elif spec.sha256:
        expected, how = spec.sha256, f"the published sha256 ({spec.sha256_source})"
    elif spec.name_hash:
        expected, how = spec.name_hash, f"the sha256 prefix in the released file name ({spec.no_digest})"
    else:
        expected, how = None, f"none: {spec.no_digest}"
    digest = file_sha256(target)
    if expected:
        expected = expected.lower()
        if len(expected) < 8 or any(c not in "0123456789abcdef" for c in expected):
            raise InputError(f"sha256 for {spec.key}: expected a hex digest or a prefix of >= 8 hex digits, got {expected!r}")
        if not digest.startswith(expected):
            raise MissingWeightsError(
                _missing_message(spec, target, f"sha256 mismatch (got {digest[:16]}..., expected {expected[:16]}...)")
            )
    log.info("weights %s: %s sha256=%s (checked against %s)", spec.key, target, digest, how)
    _SEQ[0] += 1
    _RESOLVED[str(target)] = {"key": spec.key, "sha256": digest, "check": how, "seq": _SEQ[0]}
    return p


@dataclass(frozen=True)
class Skipped:
    """A metric that could not run (missing weights or an optional package); printed in the report."""

    metric: str
    reason: str

    def __str__(self) -> str:
        return f"{self.metric}: skipped ({self.reason})"

    def to_dict(self) -> dict:
        return {"skipped": True, "reason": self.reason}


class MetricUnavailable(MissingWeightsError):
    """An optional package a metric needs is not importable; the message says which and how to install it."""


@contextlib.contextmanager
def eval_extra_imports(metric: str, packages: str, hint: str = "") -> Iterator[None]:
    """Wrap the imports of a metric network from the ``eval`` extra: a failure (ImportError, or a
    RuntimeError from a torchvision built for another torch) becomes :class:`MetricUnavailable` saying
    ``<metric> needs <packages> matching torch <version> (pip install -e '.[eval]')``, then ``hint``."""
    try:
        yield
    except Exception as e:
        import torch

        raise MetricUnavailable(
            f"{metric} needs {packages} matching torch {torch.__version__} (pip install -e '.[eval]'): {e}{hint}"
        ) from e


@contextlib.contextmanager
def strict_weights_load(path: str | Path, expected: str) -> Iterator[None]:
    """Wrap a strict state-dict load of a metric network: a key / shape mismatch or a file that is not a
    torch checkpoint becomes an :class:`InputError` naming the file and the weights ``expected``."""
    try:
        yield
    except (RuntimeError, pickle.UnpicklingError, EOFError, KeyError) as e:
        raise InputError(f"{path}: not {expected} ({str(e)[:300]})") from e


def run_or_skip(metric: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)``; on missing weights / packages return :class:`Skipped` and log why.

    Only :class:`MissingWeightsError` (which :class:`MetricUnavailable` is) becomes a skip: any other
    error (bad input, a bug) propagates.
    """
    try:
        return fn(*args, **kwargs)
    except MissingWeightsError as e:
        skipped = Skipped(metric, str(e))
        log.warning("%s", skipped)
        return skipped
