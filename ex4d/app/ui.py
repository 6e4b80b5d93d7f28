"""The app's page (Gradio): input, depth, camera path controls, preview, runs. The only module importing Gradio.

Every event calls :class:`ex4d.app.session.AppSession`; a failure shows the run plumbing's one line in the
status box (``error: ...``), never a traceback. Element ids (``elem_id``) are stable: the browser test and the
screenshot tool find the controls by them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

# Gradio reports usage to its servers unless told not to: a local app stays local (set before the import).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ex4d.app.controls import CONTROLS, DEFAULT_PRESET, PRESETS, control_defaults  # noqa: E402
from ex4d.app.session import (  # noqa: E402
    DEPTH_OPTIONS,
    EXAMPLE_INPUT,
    AppSession,
    Choices,
    input_thumbnail,
)
from ex4d.runners.cli import EXIT_INTERNAL, exit_code, reason_line  # noqa: E402

log = logging.getLogger("ex4d.app")

# Files of a run folder offered for download (those present).
DOWNLOADS = ("color.mp4", "mask.mp4", "output.mp4", "cameras.json", "summary.json", "contact_sheet.png",
             "contact_sheet_output.png", "camera_path.png")
# System fonts: the default theme fetches Google fonts, which a local (or offline) app must not need.
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]

INTRO = """# EX-4D: a new camera path for one video
Load a video (or the built-in example), pick or edit a camera path, look at the DW-Mesh preview (render and
mask of a few frames; black / mask 0 = holes the generator fills), then run the DW-Mesh stage or generation.
Every run writes the run folder `python infer.py` writes, and the command below makes the same run."""


def error_line(e: BaseException) -> str:
    """The one line a failure shows (as ``infer.py`` prints it)."""
    return ("internal error: " if exit_code(e) == EXIT_INTERNAL else "error: ") + reason_line(e)


def build_app(session: AppSession) -> gr.Blocks:
    """The page, wired to ``session``."""
    base = session.compose([*session.base_overrides, f"camera={DEFAULT_PRESET}"])
    defaults = control_defaults(DEFAULT_PRESET, session.conf_dir)
    with gr.Blocks(title="EX-4D", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(label="video or image", file_types=["video", "image"], type="filepath",
                                 elem_id="upload")
                with gr.Row():
                    inp = gr.Textbox(label="input (path, folder or example:motorcycle)", elem_id="input", scale=3)
                    example = gr.Button("Load the example", elem_id="load-example", scale=1)
                thumb = gr.Image(label="input frame 0", interactive=False, height=160, elem_id="input-frame",
                                 format="png")
                depth = gr.Dropdown(list(DEPTH_OPTIONS), value="auto", label="depth (auto: ground truth for the "
                                    "example, DepthCrafter for your videos; both models need their weights)",
                                    elem_id="depth")
                frames = gr.Number(value=int(base.data.num_frames), precision=0, minimum=1, label="frames "
                                   "(data.num_frames; generation needs 4k + 1)", elem_id="frames")
                preset = gr.Dropdown(list(PRESETS), value=DEFAULT_PRESET, label="camera path preset",
                                     elem_id="preset")
                sliders = [gr.Slider(c.minimum, c.maximum, value=defaults[c.name] if defaults[c.name] is not None
                                     else c.minimum, step=c.step, label=c.label,
                                     visible=defaults[c.name] is not None, elem_id=f"control-{c.name}")
                           for c in CONTROLS]
                preview_btn = gr.Button("Preview", elem_id="preview-btn")
            with gr.Column(scale=3):
                status = gr.Textbox(label="status", interactive=False, elem_id="status", lines=2)
                preview = gr.Image(label="DW-Mesh preview: render (top) and mask (bottom)", interactive=False,
                                   format="png", elem_id="preview")
                path_plot = gr.Image(label="camera path", interactive=False, format="png", elem_id="path-plot")
                command = gr.Textbox(label="the same run from the command line", interactive=False,
                                     elem_id="command")
                with gr.Row():
                    run_recon = gr.Button("Run the DW-Mesh stage", variant="primary", elem_id="run-recon")
                    run_all = gr.Button("Run generation (stage=all)", variant="primary", elem_id="run-all")
                run_dir = gr.Textbox(label="run folder", interactive=False, elem_id="run-dir")
                sheet = gr.Image(label="run: input / render / mask (and output)", interactive=False, format="png",
                                 elem_id="run-sheet")
                files = gr.File(label="run files", file_count="multiple", interactive=False, elem_id="run-files")

        # A set of inputs: handlers get one dict {component: value} (and Gradio sees their progress argument).
        choice_inputs = {inp, depth, preset, frames, *sliders}

        def choices_of(data: dict) -> Choices:
            d = control_defaults(data[preset], session.conf_dir)
            # Hidden sliders (controls the preset has no key for) keep stale values: only the shown ones count.
            controls = {c.name: float(data[s]) if d[c.name] is not None and data[s] is not None else None
                        for c, s in zip(CONTROLS, sliders)}
            return Choices(input=str(data[inp] or "").strip(), depth=data[depth], preset=data[preset],
                           controls=controls, num_frames=int(data[frames]) if data[frames] else None)

        def do_preview(data):
            try:
                choices = choices_of(data)
                cmd = session.command(choices, "recon")
                p = session.preview(choices)
            except Exception as e:  # noqa: BLE001 - the UI shows the line, the log keeps the traceback
                log.warning("preview failed: %s", error_line(e), exc_info=exit_code(e) == EXIT_INTERNAL)
                return None, None, error_line(e), gr.update()  # no stale preview beside the error
            note = (f"preview: frames {p.frames} of {p.num_frames} at {p.size[0]}x{p.size[1]} in "
                    f"{p.seconds:.1f} s; trusted pixels {100 * p.mask_coverage:.0f} %")
            return p.strip, p.path_plot, note, cmd

        def do_thumbnail(value):
            try:
                return input_thumbnail(str(value or "").strip()), ""
            except Exception as e:  # noqa: BLE001
                return None, error_line(e)

        def on_preset(name):
            d = control_defaults(name, session.conf_dir)
            # Only the controls the preset's class has a key for are shown (ex4d.app.controls' table).
            return [gr.update(value=d[c.name], visible=True) if d[c.name] is not None
                    else gr.update(visible=False) for c in CONTROLS]

        def do_run(stage, data, progress):
            progress(0, desc=f"stage={stage}: starting")
            try:
                report = session.run(choices_of(data), stage)
            except Exception as e:  # noqa: BLE001
                return error_line(e), gr.update(), gr.update(), gr.update(), gr.update()
            folder = report.output_dir
            if folder is None or report.summary is None:
                return report.message, str(folder or ""), None, None, report.command
            shown = folder / ("contact_sheet_output.png" if (folder / "contact_sheet_output.png").is_file()
                              else "contact_sheet.png")
            downloads = [str(folder / f) for f in DOWNLOADS if (folder / f).is_file()]
            return report.message, str(folder), str(shown) if shown.is_file() else None, downloads, report.command

        preview_outputs = [preview, path_plot, status, command]
        thumb_outputs = [thumb, status]
        example.click(lambda: EXAMPLE_INPUT, outputs=inp).then(
            do_thumbnail, inp, thumb_outputs).then(do_preview, choice_inputs, preview_outputs)
        upload.upload(lambda f: f, upload, inp).then(
            do_thumbnail, inp, thumb_outputs).then(do_preview, choice_inputs, preview_outputs)
        inp.submit(do_thumbnail, inp, thumb_outputs).then(do_preview, choice_inputs, preview_outputs)
        preset.input(on_preset, preset, sliders).then(do_preview, choice_inputs, preview_outputs)
        for s in sliders:
            s.input(do_preview, choice_inputs, preview_outputs, trigger_mode="always_last")
        for c in (depth, frames):
            c.input(do_preview, choice_inputs, preview_outputs, trigger_mode="always_last")
        preview_btn.click(do_preview, choice_inputs, preview_outputs)
        run_outputs = [status, run_dir, sheet, files, command]

        # The progress bar follows the stages' tqdm bars (DW-Mesh frames, denoising steps).
        def recon(data, progress=gr.Progress(track_tqdm=True)):
            return do_run("recon", data, progress)

        def generate(data, progress=gr.Progress(track_tqdm=True)):
            return do_run("all", data, progress)

        # One run at a time (AppSession refuses a second one too): both buttons share the queue.
        for button, fn, stage in ((run_recon, recon, "recon"), (run_all, generate, "all")):
            button.click(lambda s=stage: f"running stage={s} ...", None, status).then(
                fn, choice_inputs, run_outputs, concurrency_limit=1, concurrency_id="run")
    return demo


def launch(session: AppSession, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serve the page on ``host:port`` (a local server; nothing is shared). Returns the Blocks."""
    demo = build_app(session)
    demo.queue(default_concurrency_limit=2)
    allowed = [str(Path(session.compose(session.base_overrides).paths.output_dir).resolve())]
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    demo.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, quiet=False,
                ssr_mode=False, theme=theme, allowed_paths=allowed, footer_links=[])
    return demo
