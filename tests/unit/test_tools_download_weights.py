"""tools/download_weights.py: the metric files next to the model targets (no network)."""

import hashlib
import importlib.util
import re
import sys

import pytest

from ex4d.metrics.weights import METRIC_WEIGHTS, WeightsFile
from ex4d.utils.errors import MissingWeightsError
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dw():
    spec = importlib.util.spec_from_file_location("download_weights", ROOT / "tools" / "download_weights.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses need their module registered
    spec.loader.exec_module(mod)
    return mod


def test_every_metric_file_has_a_source_and_lands_where_the_metrics_look(dw):
    fetches = dw.plan(["metrics"])
    assert sorted(f.metric_key for f in fetches) == sorted(METRIC_WEIGHTS)
    by_key = {f.metric_key: f for f in fetches}
    fid = by_key["fid_inception"]
    assert fid.url.startswith("https://") and fid.folder == "metrics" and fid.filename == METRIC_WEIGHTS["fid_inception"].filename
    dino = by_key["dino_vitb16"]
    assert dino.url is None and dino.repo_id == "facebook/dino-vitb16" and dino.folder == "metrics/dino-vitb16"
    assert "model.safetensors" in dino.allow_patterns
    amt = by_key["amt_s"]
    assert amt.url == "https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth" and amt.filename == "amt-s.pth"
    heads = by_key["lpips_heads"]  # ships with the lpips package: listed and checked, never downloaded
    assert heads.package == "lpips:weights/v0.1/alex.pth" and heads.url is None and "published" in heads.note
    with pytest.raises(ValueError, match="cannot find a URL"):
        dw.metric_source(WeightsFile("x", "x.pt", "ask a friend"))


def test_all_keeps_the_model_targets_and_adds_metrics(dw, capsys):
    folders = {f.folder for f in dw.plan(["all"], native=True)}
    assert {"Wan2.1-I2V-14B-480P-Diffusers", "EX-4D", "DepthCrafter", "metrics", "metrics/clip-vit-large-patch14"} <= folders
    assert dw.main(["--metrics", "--metric-keys", "fid_inception,i3d_styleganv", "--dry-run", "--local-dir", "/tmp/w"]) == 0
    out = capsys.readouterr().out
    assert "/tmp/w/metrics/pt_inception-2015-12-05-6726825d.pth" in out and "/tmp/w/metrics/i3d_torchscript.pt" in out
    assert "dino" not in out
    assert dw.main(["--metrics", "--dry-run", "--local-dir", "/tmp/w"]) == 0
    listing = capsys.readouterr().out  # every file with how it is checked
    assert "/tmp/w/metrics/amt-s.pth" in listing and "digest logged only" in listing
    assert "sha256 prefix 22a6c225" in listing and "df73285e35b22355" in listing
    assert dw.main(["ex4d", "metrics", "--dry-run", "--local-dir", "/tmp/w"]) == 0
    with pytest.raises(SystemExit):
        dw.main(["--metric-keys", "nope", "metrics", "--dry-run"])
    with pytest.raises(SystemExit):
        dw.main(["--dry-run"])  # nothing named


def test_url_download_is_checked_against_the_hash_in_its_name(dw, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"not the inception weights")
    fetch = dw.metric_fetches(["fid_inception"])[0]
    dest = dw.download_url(src.as_uri(), tmp_path / "w" / "metrics" / fetch.filename)
    assert dest.read_bytes() == src.read_bytes() and not dest.with_name(dest.name + ".part").exists()
    with pytest.raises(MissingWeightsError, match="sha256 mismatch"):
        dw.check_metric_file(fetch, tmp_path / "w")
    ok = dw.Fetch("x", "metrics", url="file:///x", filename="i3d_torchscript.pt", metric_key="i3d_styleganv")
    (tmp_path / "w" / "metrics" / "i3d_torchscript.pt").write_bytes(b"x")  # no hash recorded: existence only
    checked = dw.check_metric_file(ok, tmp_path / "w")  # no digest published: accepted, its digest printed
    assert checked.startswith(str(tmp_path / "w" / "metrics" / "i3d_torchscript.pt")) and f"sha256={hashlib.sha256(b'x').hexdigest()}" in checked
    heads = dw.metric_fetches(["lpips_heads"])[0]
    assert "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0" in dw.check_metric_file(heads, tmp_path / "w")


# Every `python tools/download_weights.py ...` in a message, a config comment or a doc. Arguments end at a
# backtick, quote, parenthesis, semicolon, comment sign or a sentence's closing period.
_HINT = re.compile(r"python tools/download_weights\.py((?: +[^\s`'\"();,#]+)*)")


def _hint_args(text: str) -> list[list[str]]:
    out = []
    for m in _HINT.finditer(text):
        args = m.group(1).split()
        if args and args[-1].endswith("."):
            args[-1] = args[-1][:-1]
        out.append(args)
    return out


def _runtime_hints(tmp_path) -> dict[str, str]:
    """The messages every missing-weights path produces (weights folders under an empty tmp_path)."""
    import torch

    from ex4d.depth.depth_anything import DepthAnythingBackend
    from ex4d.depth.depthcrafter import DepthCrafterBackend
    from ex4d.metrics.weights import resolve_weights
    from ex4d.model.checkpoint import load_reference_checkpoint
    from ex4d.model.wan import load_wan_components
    from ex4d.pipelines.generate import DOWNLOAD_HINT

    w = tmp_path / "weights"
    frames = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    calls = {
        "depthcrafter_unet": lambda: DepthCrafterBackend(unet=str(w / "DepthCrafter"), base=str(w / "x"))(frames),
        "depth_anything": lambda: DepthAnythingBackend(model=str(w / "Depth-Anything-V2-Large-hf")).load(),
        "depth_anything_small": lambda: DepthAnythingBackend(model=str(w / "Depth-Anything-V2-Small-hf")).load(),
        "wan": lambda: load_wan_components(w / "Wan2.1-I2V-14B-480P-Diffusers"),
        "checkpoint": lambda: load_reference_checkpoint(w / "EX-4D" / "ex4d.ckpt", None),
        "metrics": lambda: resolve_weights("fid_inception", root=w),
    }
    hints = {"generate.DOWNLOAD_HINT": DOWNLOAD_HINT}
    for name, call in calls.items():
        with pytest.raises(MissingWeightsError) as e:
            call()
        hints[name] = str(e.value)
    return hints


def test_every_download_hint_is_a_command_the_tool_accepts(dw, tmp_path, capsys):
    hints = _runtime_hints(tmp_path)
    texts = dict(hints)
    for base in ("ex4d", "conf", "docs", "tools", "experiments"):
        for p in (ROOT / base).rglob("*"):
            if p.suffix in (".py", ".yaml", ".md") and p.is_file():
                texts[str(p.relative_to(ROOT))] = p.read_text()
    texts["README.md"] = (ROOT / "README.md").read_text()
    checked = 0
    for where, text in texts.items():
        for args in _hint_args(text):
            # Lines that only name the tool (e.g. "see tools/download_weights.py") carry no command to check,
            # nor do f-string templates in the code: the runtime hints above are their rendered form.
            if not args or any("{" in a for a in args):
                continue
            try:
                assert dw.main([*args, "--dry-run"]) == 0, (where, args)
            except SystemExit as e:  # argparse rejects (code 2), an unknown item; --help exits with 0
                if e.code == 0:
                    continue
                pytest.fail(f"{where}: `python tools/download_weights.py {' '.join(args)}` is rejected by the tool ({e})")
            checked += 1
    capsys.readouterr()
    runtime = [a for t in hints.values() for a in _hint_args(t)]
    assert len(runtime) >= 7 and checked >= len(runtime) + 5
    # The hints put the files where the configs look (the tool writes <local-dir>/<folder>).
    w = tmp_path / "weights"
    assert f"download_weights.py depthcrafter --local-dir {w}`" in hints["depthcrafter_unet"]
    assert f"download_weights.py depth_anything --depth-anything-size small --local-dir {w}`" in hints["depth_anything_small"]
    assert "hf download depth-anything/Depth-Anything-V2-Small-hf" in hints["depth_anything_small"]
    assert f"download_weights.py ex4d --local-dir {w}" in hints["checkpoint"]
    assert f"download_weights.py metrics --metric-keys fid_inception --local-dir {w}`" in hints["metrics"]


def test_the_hint_parser_catches_a_wrong_hint(dw):
    (bad,) = _hint_args("Download with `python tools/download_weights.py depth=depthcrafter` or hf download")
    with pytest.raises(SystemExit):
        dw.main([*bad, "--dry-run"])
