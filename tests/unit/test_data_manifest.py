import pytest

from ex4d.data.manifest import read_manifest_records, resolve_manifest_path
from ex4d.utils.errors import InputError


def test_three_formats_give_the_same_records_with_line_numbers(tmp_path):
    (tmp_path / "m.csv").write_text("path,sha256\na.mp4,\n\nsub/b.mp4,abcdef12\n")
    (tmp_path / "m.jsonl").write_text('{"path": "a.mp4"}\n\n{"path": "sub/b.mp4", "sha256": "abcdef12"}\n')
    (tmp_path / "m.txt").write_text("# videos\na.mp4\n\nsub/b.mp4\n")
    csv_rec = read_manifest_records(tmp_path / "m.csv")
    assert [r for _, r in csv_rec] == [{"path": "a.mp4"}, {"path": "sub/b.mp4", "sha256": "abcdef12"}]
    assert csv_rec[1][0].endswith("m.csv, line 4")
    assert [r for _, r in read_manifest_records(tmp_path / "m.jsonl")] == [r for _, r in csv_rec]
    txt = read_manifest_records(tmp_path / "m.txt")
    assert [r["path"] for _, r in txt] == ["a.mp4", "sub/b.mp4"] and txt[1][0].endswith("line 4")
    assert resolve_manifest_path("sub/b.mp4", tmp_path / "m.txt") == tmp_path / "sub" / "b.mp4"
    assert resolve_manifest_path("/abs/c.mp4", tmp_path / "m.txt").as_posix() == "/abs/c.mp4"


@pytest.mark.parametrize("name,text,match", [
    ("nopath.csv", "file\na.mp4\n", r"nopath\.csv \(data\.root\): needs a 'path' column"),
    ("empty_path.csv", "path,sha256\n,abcdef12\n", r"empty_path\.csv \(data\.root\), line 2: needs a \"path\" key"),
    ("broken.jsonl", '{"path": "a.mp4"}\nnot json\n', r"broken\.jsonl \(data\.root\), line 2: not JSON"),
    ("list.jsonl", '["a.mp4"]\n', r"line 1: expected a JSON object"),
    ("m.yaml", "a.mp4\n", r"unknown format '\.yaml'"),
])
def test_bad_manifests_name_file_key_and_line(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=match):
        read_manifest_records(tmp_path / name, key="data.root")
