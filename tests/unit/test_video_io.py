import numpy as np
import pytest

from ex4d.io.video import (
    MIN_INPUT_SIDE,
    check_clip_options,
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


BAD_CLIP_OPTIONS = [
    ({"num_frames": 0}, "data.num_frames"),
    ({"num_frames": -2}, "data.num_frames"),
    ({"num_frames": 2.5}, "data.num_frames"),
    ({"num_frames": "abc"}, "data.num_frames"),
    ({"stride": 0}, "data.stride"),
    ({"multiple": 0}, "data.multiple"),
    ({"multiple": -16}, "data.multiple"),
    ({"multiple": 1.5}, "data.multiple"),
    ({"max_side": 0}, "data.max_side"),
    ({"max_side": -5}, "data.max_side"),
    ({"max_side": 16, "multiple": 32}, "data.max_side"),  # smaller than the multiple
    ({"height": 0, "width": 64}, "data.height"),
    ({"height": -64, "width": 64}, "data.height"),
    ({"height": 64, "width": 65, "multiple": 16}, "data.width.*multiple"),
    ({"height": 64}, "data.height and data.width"),
    ({"resize": "squash"}, "data.resize=squash needs data.height"),
    ({"resize": "stretch"}, "data.resize"),
    ({"frame_mode": "random"}, "data.frame_mode"),
]


@pytest.mark.parametrize("kw,key", BAD_CLIP_OPTIONS)
def test_bad_clip_options_name_the_key_before_reading(tmp_path, kw, key):
    # The source does not exist: an option error must come first (checked before any file is touched).
    with pytest.raises(InputError, match=key):
        load_clip(tmp_path / "not_read.mp4", **kw)
    with pytest.raises(InputError, match=key):
        check_clip_options(**kw)


@pytest.mark.parametrize("size", [(1, 1), (7, 7), (16, 200), (200, 31)])
def test_inputs_below_the_minimum_side_are_refused(tmp_path, rng, size):
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    write_video(tmp_path / "small.mp4", rng.integers(0, 256, (3, *size, 3), dtype=np.uint8), lossless=True)
    for name in ("small.png", "small.mp4"):
        with pytest.raises(InputError, match=rf"{name} is {size[0]}x{size[1]} px.*at least {MIN_INPUT_SIDE} px"):
            load_clip(tmp_path / name, num_frames=3, multiple=16)


def test_large_upscales_are_logged(tmp_path, rng, caplog):
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "im.png")
    with caplog.at_level("WARNING", logger="ex4d.io.video"):
        clip = load_clip(tmp_path / "im.png", num_frames=2, multiple=64)
    assert clip.frames.shape[1:3] == (64, 64)
    assert "im.png is 40x40 px" in caplog.text and "upscale" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ex4d.io.video"):
        load_clip(tmp_path / "im.png", num_frames=2, multiple=8)  # 40x40 kept: no warning
    assert "upscale" not in caplog.text


@pytest.mark.parametrize("kw,key", [
    ({"resize": "squash", "height": 100_000, "width": 100_000, "multiple": 16}, "data.height=100000 data.width=100000"),
    ({"max_side": 100_000}, "data.max_side=100000"),  # keep_aspect never upscales: the input itself is too big
    ({"resize": "none", "multiple": 1}, "data.resize=none"),
])
def test_sizes_beyond_memory_are_refused_before_decoding(tmp_path, rng, monkeypatch, kw, key):
    import ex4d.utils.checks as checks

    write_video(tmp_path / "v.mp4", rng.integers(0, 256, (3, 256, 384, 3), dtype=np.uint8))
    # A machine of 1 MiB (3 frames of 256x384 take 0.84 MiB, decoding needs twice that).
    monkeypatch.setattr(checks, "host_memory_bytes", lambda: 2**20)
    monkeypatch.setattr("ex4d.io.video.read_frames", lambda *a, **k: pytest.fail("decoded before the memory check"))
    with pytest.raises(InputError, match=rf"{key}.*v.mp4.*more than this machine's 1 MiB"):
        load_clip(tmp_path / "v.mp4", num_frames=3, **kw)
    monkeypatch.undo()  # on this machine the same clip loads: only the memory limit refused it
    if "height" not in kw:
        assert load_clip(tmp_path / "v.mp4", num_frames=3, **kw).frames.shape == (3, 256, 384, 3)


def _truncated(p, rng):
    write_video(p, rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


@pytest.mark.parametrize("name,make,match", [
    ("zero.mp4", lambda p, rng: p.write_bytes(b""), "empty"),
    ("text.mp4", lambda p, rng: p.write_text("hello, not a video"), "could not be read"),
    ("trunc.mp4", _truncated, "could not be read"),
    ("zero.png", lambda p, rng: p.write_bytes(b""), "could not be read"),
    ("trunc.png", lambda p, rng: (__import__("PIL.Image").Image.fromarray(
        rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(p), p.write_bytes(p.read_bytes()[:80])), "could not be read"),
    ("deep.png", lambda p, rng: __import__("PIL.Image").Image.fromarray(
        rng.integers(0, 65535, (64, 64), dtype=np.uint16)).save(p), "16-bit"),
    ("nothing_here", lambda p, rng: None, "does not exist"),
    ("empty_dir", lambda p, rng: p.mkdir(), "holds no images"),
    ("mixed", lambda p, rng: (p.mkdir(), *(__import__("PIL.Image").Image.fromarray(
        np.zeros((64, w, 3), np.uint8)).save(p / f"{w}.png") for w in (64, 96))), "differ in size: 64.png is 64x64 but 96.png"),
])
def test_bad_source_files_name_the_file(tmp_path, rng, name, make, match):
    p = tmp_path / name
    make(p, rng)
    with pytest.raises(InputError, match=match) as e:
        load_clip(p, num_frames=2, multiple=16)
    assert name in str(e.value)


@pytest.mark.parametrize("kw,fix", [
    ({"num_frames": 49}, "set data.num_frames=6"),
    ({"num_frames": 4, "stride": 3}, "set data.num_frames=2 or data.stride=1"),
    ({"num_frames": 9, "frame_mode": "uniform"}, "set data.num_frames=6"),
])
def test_short_video_says_what_to_set(tmp_path, rng, kw, fix):
    write_video(tmp_path / "six.mp4", rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="six.mp4 has 6 frames") as e:
        load_clip(tmp_path / "six.mp4", multiple=16, **kw)
    assert fix in str(e.value)


@pytest.mark.parametrize("orientation,shape", [(1, (32, 48)), (3, (32, 48)), (6, (48, 32)), (8, (48, 32))])
def test_exif_orientation_is_applied(tmp_path, orientation, shape):
    # A phone photo is stored unrotated with an orientation tag; read as stored it would be silently sideways.
    from PIL import Image

    pixels = np.zeros((32, 48, 3), np.uint8)
    pixels[:, :8] = 255  # a white band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    clip = load_clip(tmp_path / "photo.jpg", num_frames=1, multiple=16)
    assert clip.frames.shape[1:3] == shape
    band = {1: (slice(None), slice(0, 8)), 3: (slice(None), slice(-8, None)),  # 180: the band moves right
            6: (slice(0, 8), slice(None)), 8: (slice(-8, None), slice(None))}[orientation]
    assert clip.frames[0][band].mean() > 200


def test_a_truncated_image_fails_even_when_a_library_allowed_them_process_wide(tmp_path, monkeypatch):
    # vbench's AMT utils set PIL's ImageFile.LOAD_TRUNCATED_IMAGES = True when the motion-smoothness metric loads.
    from PIL import Image, ImageFile

    from ex4d.io.video import read_frames

    p = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:80])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(InputError, match="cut.png"):
        read_frames(p)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for whoever set it
