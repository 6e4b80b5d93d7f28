"""Drive the app in a real headless browser: Debian's chromium through Playwright (the browser test and
``tools/app_screenshot.py``).

Playwright (the ``dev`` extra) is only the driver here: the browser is the system's chromium at
``EX4D_CHROMIUM`` (default ``/usr/bin/chromium``, ``make test`` installs it), never one Playwright downloads.
The app runs as ``python app.py`` in a subprocess on a free localhost port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("EX4D_CHROMIUM", "/usr/bin/chromium")
# Headless, no GPU, and nothing that phones home: the machines running this have no network but localhost, and
# chromium's background connections would only be refused (slowly, many at a time).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_problem() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"no chromium at {CHROMIUM}: install Debian's (apt-get install chromium; make test does it as root) "
                "or set EX4D_CHROMIUM=<chromium binary>")
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[dev]'"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(overrides: list[str], log_file: Path, port: int | None = None, timeout_s: float = 120.0):
    """``python app.py --port <port> <overrides>`` in a subprocess; yields its URL once it answers, stops it after.
    Its output goes to ``log_file`` (read it when something fails)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with open(log_file, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *overrides], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited with status {proc.returncode}: "
                                       f"{Path(log_file).read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"app.py did not answer at {url} within {timeout_s} s: "
                                       f"{Path(log_file).read_text()[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def chromium_page(width: int = 1400, height: int = 1100):
    """A Playwright page in headless chromium (:data:`CHROMIUM`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


# -- what a user does (element ids from ex4d.app.ui) --------------------------------------------------------------

def text(page, elem_id: str) -> str:
    """The value of a text box."""
    return page.input_value(f"#{elem_id} textarea")


def image_src(page, elem_id: str) -> str | None:
    el = page.query_selector(f"#{elem_id} img")
    return None if el is None else el.get_attribute("src")


def load_example(page, timeout_s: float = 60.0) -> str:
    """Click "Load the example" and wait for the first preview; returns the preview image's URL."""
    page.click("#load-example")
    page.wait_for_selector("#preview img", timeout=timeout_s * 1000)
    return image_src(page, "preview")


def set_control(page, name: str, value: float, timeout_s: float = 60.0, expect: str | None = None) -> str:
    """Type ``value`` into a trajectory control's number box (as a user does); wait for the preview of it (the
    command line shows ``expect``, e.g. ``camera.angle_deg=30.0``); returns the new preview image's URL."""
    box = f"#control-{name} input[type=number]"
    page.fill(box, str(value))
    page.press(box, "Enter")
    if expect is not None:
        page.wait_for_function("([id, s]) => document.querySelector(`#${id} textarea`).value.includes(s)",
                               arg=["command", expect], timeout=timeout_s * 1000)
    return image_src(page, "preview")


def click_and_wait_status(page, button: str, prefix: tuple[str, ...] = ("done:", "error:", "internal error:"),
                          timeout_s: float = 120.0) -> str:
    """Click a run button and wait until the status box holds the run's outcome line; returns it."""
    before = text(page, "status")
    page.click(f"#{button}")
    page.wait_for_function(
        "([before, prefixes]) => { const v = document.querySelector('#status textarea').value;"
        " return v !== before && prefixes.some(p => v.startsWith(p)); }",
        arg=[before, list(prefix)], timeout=timeout_s * 1000)
    return text(page, "status")


def fetch_image(page, src: str):
    """The image at ``src`` (served by the app) as an (H, W, 3) uint8 array."""
    import io

    import numpy as np
    from PIL import Image

    body = page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
