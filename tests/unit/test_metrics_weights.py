"""Local weights resolution, sha256 checks and skip-with-message (ex4d.metrics.weights)."""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ex4d.metrics.weights import METRIC_WEIGHTS, Skipped, WeightsFile, resolve_weights, run_or_skip, weights_dir
from ex4d.utils.errors import InputError, MissingWeightsError


def test_missing_file_message_names_file_and_source(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        resolve_weights("i3d_styleganv", root=tmp_path)
    msg = str(e.value)
    assert "i3d_torchscript.pt" in msg and str(tmp_path) in msg and "dropbox" in msg and "FVD" in msg


def test_sha256_full_and_prefix(tmp_path):
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    spec = WeightsFile("x", "w.bin", "somewhere")
    assert resolve_weights(spec, path=f, sha256=digest) == f
    assert resolve_weights(spec, path=f, sha256=digest[:8].upper()) == f
    with pytest.raises(MissingWeightsError, match="sha256 mismatch"):
        resolve_weights(spec, path=f, sha256="00000000")
    with pytest.raises(InputError, match="hex"):
        resolve_weights(spec, path=f, sha256="abc")
    # The hash encoded in a torch.hub-style name is checked by default; "" disables the check.
    with pytest.raises(MissingWeightsError, match="sha256 mismatch"):
        resolve_weights("fid_inception", path=f)
    assert resolve_weights("fid_inception", path=f, sha256="") == f


def test_folder_hashes_its_member(tmp_path):
    d = tmp_path / "clip"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"abc")
    good = hashlib.sha256(b"abc").hexdigest()
    assert resolve_weights("clip_vitb32", path=d, sha256=good) == d
    with pytest.raises(MissingWeightsError, match="sha256 mismatch"):
        resolve_weights("clip_vitb32", path=d, sha256="deadbeef")
    old = tmp_path / "dino"  # a folder with only the pickled weights: that file is hashed
    old.mkdir()
    (old / "pytorch_model.bin").write_bytes(b"bin")
    assert resolve_weights("dino_vitb16", path=old) == old
    from ex4d.metrics.weights import resolved_weights

    assert resolved_weights()[str(old / "pytorch_model.bin")]["sha256"] == hashlib.sha256(b"bin").hexdigest()
    with pytest.raises(MissingWeightsError, match="empty/model.safetensors"):
        (tmp_path / "empty").mkdir()
        resolve_weights("dino_vitb16", path=tmp_path / "empty")


def test_run_or_skip_turns_only_missing_weights_into_skips(tmp_path, caplog):
    def needs_weights():
        resolve_weights("musiq_spaq", root=tmp_path)

    res = run_or_skip("imaging_quality", needs_weights)
    assert isinstance(res, Skipped) and "musiq_spaq_ckpt-358bb6af.pth" in res.reason
    assert "skipped" in str(res) and res.to_dict()["skipped"] is True
    assert "musiq_spaq_ckpt" in caplog.text

    def bad_input():
        raise InputError("bad video")

    with pytest.raises(InputError):
        run_or_skip("x", bad_input)
    assert run_or_skip("x", lambda: 3) == 3


def test_registry_and_default_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EX4D_WEIGHTS", str(tmp_path))
    assert weights_dir() == tmp_path / "metrics"
    for key, spec in METRIC_WEIGHTS.items():
        assert spec.key == key and spec.filename and spec.source


def test_every_metric_file_has_a_published_sha256_or_says_why_not():
    # Each file: a full digest with where it is published, or the reason none is (then it is accepted with
    # its digest logged); a hash prefix in a released file name is checked too.
    assert {"amt_s", "lpips_heads", "musiq_spaq", "i3d_styleganv"} <= set(METRIC_WEIGHTS)
    for key, spec in METRIC_WEIGHTS.items():
        if spec.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256) and spec.sha256_source, key
        else:
            assert spec.no_digest, key
        if spec.name_hash:
            assert spec.name_hash in spec.filename and re.fullmatch(r"[0-9a-f]{8,}", spec.name_hash), key
        assert spec.check, key


def test_file_without_a_published_digest_is_accepted_and_its_digest_logged(tmp_path, caplog):
    from ex4d.metrics.weights import resolved_weights

    f = tmp_path / "metrics" / "amt-s.pth"
    f.parent.mkdir()
    f.write_bytes(b"amt")
    with caplog.at_level("INFO", logger="ex4d.metrics.weights"):
        assert resolve_weights("amt_s", root=tmp_path) == f
    digest = hashlib.sha256(b"amt").hexdigest()
    assert f"sha256={digest}" in caplog.text and "no digest" in caplog.text
    assert resolved_weights()[str(f)] == {"key": "amt_s", "sha256": digest, "check": resolved_weights()[str(f)]["check"]}
    assert resolved_weights()[str(f)]["check"].startswith("none:")


def test_packaged_file_is_checked_against_the_digest_its_wheel_publishes():
    import lpips

    from ex4d.metrics.weights import resolved_weights

    p = resolve_weights("lpips_heads")
    assert p == Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    assert resolved_weights()[str(p)]["sha256"] == METRIC_WEIGHTS["lpips_heads"].sha256
    assert "RECORD" in resolved_weights()[str(p)]["check"]
    missing = WeightsFile("x", "x.pth", "the pip package nope", package="ex4d_no_such_pkg:w.pth")
    with pytest.raises(MissingWeightsError, match="ex4d_no_such_pkg"):
        resolve_weights(missing)


def test_importing_the_metrics_package_loads_no_torchvision_or_torch_fidelity():
    # The GPU host runs generation with a torch that has no matching torchvision: only building a metric
    # that needs them may import them.
    code = (
        "import sys, ex4d.metrics, ex4d.metrics.fid, ex4d.metrics.image, ex4d.metrics.vbench\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torchvision', 'torch_fidelity', 'torchmetrics'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_eval_extra_package_becomes_a_skip_naming_the_install_command():
    from ex4d.metrics.weights import MetricUnavailable, Skipped, eval_extra_imports, run_or_skip

    def build():
        with eval_extra_imports("LPIPS", "torchvision", hint="; or skip it"):
            import ex4d_no_such_package  # noqa: F401

    with pytest.raises(MetricUnavailable, match=r"LPIPS needs torchvision matching torch .*pip install -e '\.\[eval\]'"
                                                 r".*'ex4d_no_such_package'; or skip it"):
        build()
    assert isinstance(run_or_skip("lpips", build), Skipped)
