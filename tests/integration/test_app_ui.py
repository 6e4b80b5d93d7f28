"""The app's page as Gradio builds it (no browser): the element ids the browser test and the screenshot tool use,
run handlers that Gradio sees take a progress tracker (it feeds the bar from the stages' tqdm bars) and that
share one queue slot."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio", reason="the app extra: pip install -e '.[app]' and requirements/app-nodeps.txt")

from ex4d.app.controls import CONTROLS  # noqa: E402
from ex4d.app.session import AppSession  # noqa: E402
from ex4d.app.ui import build_app, error_line  # noqa: E402
from ex4d.utils.errors import InputError, MissingWeightsError  # noqa: E402
from tests.conftest import CONF  # noqa: E402

IDS = {"upload", "input", "load-example", "input-frame", "depth", "frames", "preset", "preview-btn", "status",
       "preview", "path-plot", "command", "run-recon", "run-all", "run-dir", "run-sheet", "run-files"}


@pytest.fixture(scope="module")
def demo():
    return build_app(AppSession(["renderer=cpu"], conf_dir=CONF))


def test_every_element_the_browser_test_uses_is_there(demo):
    ids = {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    assert ids >= IDS | {f"control-{c.name}" for c in CONTROLS}


def test_runs_track_progress_one_at_a_time(demo):
    runs = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") in ("recon", "generate")]
    assert len(runs) == 2
    for f in runs:
        assert f.tracks_progress, f"{f.fn.__name__}: Gradio does not see its gr.Progress argument"
        assert f.concurrency_id == "run" and f.concurrency_limit == 1
        assert f.inputs_as_dict  # one dict of the choices


def test_the_status_line_is_the_command_lines():
    assert error_line(InputError("input=x.mp4: not found")) == "error: input=x.mp4: not found"
    assert error_line(MissingWeightsError("weights/x missing; download with: ...")).startswith("error: weights/x")
    assert error_line(RuntimeError("boom")) == "internal error: RuntimeError: boom"
