"""tools/download_weights.py: the metric files next to the model targets (no network)."""

import hashlib
import importlib.util
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
