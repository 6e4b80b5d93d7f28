"""``python app.py`` in a real headless browser (Debian's chromium driven by Playwright): load the example, change
the orbit angle, see the preview change, run the DW-Mesh stage, find infer.py's run folder; generation without
weights shows the one-line message.

Needs chromium at ``/usr/bin/chromium`` (``make test-slow`` installs it when missing; ``EX4D_CHROMIUM`` names another):
without it the test fails saying so, it does not skip. Deselect it with ``-m "not browser"``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ex4d.app import browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SMALL = ["renderer=cpu", "data.num_frames=9", "data.max_side=128", "data.multiple=16"]


def test_app_in_a_browser(tmp_path):
    problem = browser.chromium_problem()
    if problem:
        pytest.fail(f"the app's browser test cannot run: {problem}")
    outputs = tmp_path / "outputs"
    overrides = [*SMALL, f"paths.output_dir={outputs}", f"paths.weights_dir={tmp_path}/no_weights"]
    with browser.serve_app(overrides, tmp_path / "app.log") as url, browser.chromium_page() as page:
        try:
            page.goto(url, wait_until="load")
            first = browser.load_example(page)
            assert browser.text(page, "input") == "example:motorcycle"
            assert browser.text(page, "status").startswith("preview: frames [0, 3, 5, 8] of 9")
            assert browser.image_src(page, "input-frame") is not None

            second = browser.set_control(page, "angle", 30, expect="camera.angle_deg=30.0")
            assert second != first
            a, b = browser.fetch_image(page, first), browser.fetch_image(page, second)
            assert a.shape == b.shape and a.shape[1] > a.shape[0]  # a strip: frames side by side
            changed = np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 16
            assert changed.mean() > 0.05, "the preview did not follow the angle"
            command = browser.text(page, "command")
            assert command.startswith("python infer.py ") and "camera=ref_90 camera.angle_deg=30.0" in command

            status = browser.click_and_wait_status(page, "run-recon")
            assert status.startswith("done: "), status
            run = outputs / "infer" / browser.text(page, "run-dir").rsplit("/", 1)[-1]
            assert status == f"done: {run}" and run.is_dir()
            for name in ("color.mp4", "mask.mp4", "cameras.json", "camera_ref_90.npz", "summary.json", "config.yaml",
                         "contact_sheet.png", "infer.log", ".hydra/overrides.yaml"):
                assert (run / name).is_file(), name
            summary = json.loads((run / "summary.json").read_text())
            assert summary["stage"] == "recon" and summary["recon"]["frames"] == 9
            assert yaml.safe_load((run / "config.yaml").read_text())["camera"]["angle_deg"] == 30.0
            assert len(json.loads((run / "cameras.json").read_text())["w2c"]) == 9
            page.wait_for_selector("#run-sheet img")

            status = browser.click_and_wait_status(page, "run-all")
            assert status.startswith("error: stage=all needs ") and "download_weights.py" in status, status
            assert [p.name for p in (outputs / "infer").iterdir()] == [run.name]  # refused before a folder
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print((tmp_path / "app.log").read_text()[-4000:])
            raise
