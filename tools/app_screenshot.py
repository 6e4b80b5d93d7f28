"""Screenshot of the interactive app for the README: starts ``python app.py``, loads the built-in example in
headless chromium, edits the orbit angle, runs the DW-Mesh stage (into the app's default outputs/infer/, a folder
removed again after the shot) and saves the page.

Examples:
    python tools/app_screenshot.py                           # docs/app.png, the app's defaults (49 frames)
    python tools/app_screenshot.py --out /tmp/app.png --angle 45 renderer=cpu
Needs Debian's chromium (/usr/bin/chromium or EX4D_CHROMIUM) and the dev extra (playwright).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ex4d.app import browser  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "app.png")
    parser.add_argument("--angle", type=float, default=60.0, help="orbit angle typed into the control")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("overrides", nargs="*", help="app.py overrides")
    args = parser.parse_args()
    problem = browser.chromium_problem()
    if problem:
        sys.exit(f"error: {problem}")
    with tempfile.TemporaryDirectory() as tmp:
        with browser.serve_app(args.overrides, Path(tmp) / "app.log") as url, \
                browser.chromium_page(width=args.width, height=900) as page:
            page.goto(url, wait_until="load")
            browser.load_example(page)
            browser.set_control(page, "angle", args.angle, expect=f"camera.angle_deg={args.angle!r}")
            status = browser.click_and_wait_status(page, "run-recon", timeout_s=600)
            if not status.startswith("done:"):
                sys.exit(f"the run failed: {status}")
            page.wait_for_selector("#run-sheet img")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            run = browser.ROOT / browser.text(page, "run-dir")  # app.py runs in the repository root
            if run.is_dir() and run.parent.name == "infer":  # the folder this shot made, nothing else
                shutil.rmtree(run)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
