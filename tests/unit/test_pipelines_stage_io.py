"""ex4d.pipelines.stage_io: finding the colour + mask pair of a recon folder, and what its errors advise."""

from __future__ import annotations

import pytest

from ex4d.pipelines.stage_io import find_recon_videos
from ex4d.utils.errors import InputError


def _touch(folder, *names):
    for n in names:
        (folder / n).write_bytes(b"x")


@pytest.mark.parametrize("files,match", [
    ((), "no color.mp4 \\+ mask.mp4"),
    (("color.mp4",), "no color.mp4 \\+ mask.mp4"),
    (("render_30.mp4", "mask_30.mp4", "color_90.mp4", "mask_90.mp4"),
     r"several camera paths \['mask_30.mp4', 'mask_90.mp4'\]; keep one pair.*color.mp4 \+ mask.mp4"),
])
def test_bad_recon_folders_say_what_to_do(tmp_path, files, match):
    _touch(tmp_path, *files)
    with pytest.raises(InputError, match=match) as e:
        find_recon_videos(tmp_path)
    assert str(tmp_path) in str(e.value)
    assert "recon_video" not in str(e.value)  # no advice to set keys that do not exist


def test_the_advice_works_our_names_win(tmp_path):
    _touch(tmp_path, "render_30.mp4", "mask_30.mp4", "color_90.mp4", "mask_90.mp4", "color.mp4", "mask.mp4")
    assert find_recon_videos(tmp_path) == (tmp_path / "color.mp4", tmp_path / "mask.mp4")
    with pytest.raises(InputError, match="is not a directory"):
        find_recon_videos(tmp_path / "nope")
