import numpy as np
import pytest

from ex4d.io.video import (
    load_clip,
    read_mask_video,
    read_video,
    select_frames,
    target_size,
    write_mask_video,
    write_video,
)
from ex4d.utils.errors import InputError


def test_lossless_video_roundtrip_is_exact(tmp_path, rng):
    frames = rng.integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "a.mp4", frames, fps=15, lossless=True)
    back, fps = read_video(tmp_path / "a.mp4")
    assert fps == pytest.approx(15)
    np.testing.assert_array_equal(back, frames)


def test_mask_video_rebinarises_exactly(tmp_path, rng):
    mask = rng.random((5, 40, 56)) > 0.4
    write_mask_video(tmp_path / "m.mp4", mask)
    np.testing.assert_array_equal(read_mask_video(tmp_path / "m.mp4"), mask)


def test_non_binary_mask_video_is_rejected(tmp_path):
    grey = np.full((3, 32, 32, 3), 128, np.uint8)
    write_video(tmp_path / "g.mp4", grey, lossless=True)
    with pytest.raises(InputError, match="g.mp4.*not binary"):
        read_mask_video(tmp_path / "g.mp4")


def test_sample_video_is_read_and_resized_to_multiples(sample_videos):
    clip = load_clip(sample_videos["bikes"], num_frames=5, stride=2, multiple=64)
    assert clip.frames.shape == (5, 256, 640, 3)
    assert clip.frames.dtype == np.uint8
    assert clip.info["frame_indices"] == [0, 2, 4, 6, 8]
    assert clip.fps == pytest.approx(25.0)


def test_squash_and_multiple_16(sample_videos):
    clip = load_clip(sample_videos["carphone_pristine"], num_frames=3, resize="squash", height=64, width=64)
    assert clip.frames.shape == (3, 64, 64, 3)
    assert target_size(144, 176, "keep_aspect", multiple=16) == (144, 176)
    assert target_size(720, 1280, "keep_aspect", multiple=64, max_side=1024) == (576, 1024)


def test_uniform_frame_selection_spans_the_clip():
    idx = select_frames(100, 5, mode="uniform")
    assert idx[0] == 0 and idx[-1] == 99 and len(idx) == 5


@pytest.mark.parametrize("kind", ["missing", "empty", "corrupt"])
def test_bad_video_files_name_the_file(tmp_path, kind):
    p = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "corrupt":
        p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(InputError, match=f"{kind}.mp4"):
        load_clip(p, num_frames=3)


def test_too_short_video_names_file_and_key(tmp_path, rng):
    write_video(tmp_path / "short.mp4", rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(InputError, match=r"short.mp4 has 3 frames.*num_frames=49"):
        load_clip(tmp_path / "short.mp4", num_frames=49)


def test_single_image_is_a_static_clip(tmp_path, rng):
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(tmp_path / "im.png")
    clip = load_clip(tmp_path / "im.png", num_frames=4, multiple=16)
    assert clip.static and clip.frames.shape == (4, 64, 96, 3)
    np.testing.assert_array_equal(clip.frames[0], clip.frames[3])


def test_image_folder_is_read_in_name_order(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(tmp_path / f"f{i:02d}.png")
    clip = load_clip(tmp_path, num_frames=3, multiple=16)
    assert [int(f.mean()) for f in clip.frames] == [0, 40, 80]


def test_empty_image_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty holds no images"):
        load_clip(tmp_path / "empty", num_frames=3)
