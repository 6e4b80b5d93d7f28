"""Every command in the README's ```bash blocks runs on a fresh checkout, or the README says what it needs.

Each command is classified from the README text alone:

* marked ``[needs: ...]`` (in its comment, continuation lines included) with anything this test cannot stand in
  for (``Wan weights``, ``gpu``, ``N gpus``, ``data``): skipped, and listed in the skip reason;
* marked only ``[needs: depth weights]``: run with ``depth=planes`` appended, the test-only depth stand-in (a box
  in front of a wall) for DepthCrafter, so everything but the depth network is exercised;
* ``make test``, ``pytest`` (this suite), ``pip install ...`` (the environment it runs in), ``python app.py`` (a
  server; ``test_app_browser.py`` drives it in chromium): not run;
  ``make demo``: its recipe in the Makefile must be ``python infer.py`` (checked), which runs as its own command;
* anything else: run as it is written.

How a command runs: through ``bash -c`` with the line as written, in its own copy of the checkout (the files
``git ls-files`` lists, tracked or untracked-not-ignored: no ``outputs/``, no ``weights/``), with ``python`` on
``PATH`` = this interpreter (as an activated venv) and the ``EX4D_*`` variables removed (a fresh shell). The
README's ``python tools/sample_inputs.py`` runs first, once, in the copy the others start from, so
``my_video.mp4`` and friends exist as the README says. Appended, to keep the suite short on 2 cores (the README
commands themselves render 49 frames at up to 1024 px: 10-40 s each):

* ``infer.py``: ``data.num_frames=5 data.max_side=128`` (a key the command sets itself is not appended;
  with ``camera=file`` the frame count stays: the path file holds one pose per frame, 49);
* ``train.py`` and ``evaluate.py``: nothing: the README's smoke runs are bounded by ``trainer=cpu`` (20 steps)
  and the tiny sets, and ``data=tiny`` prepares its own shards.

Then: exit code 0 and the outputs the README promises (``EXPECTED``). Every README command is either run or
accounted for by the rules above, and a runnable command of a script without an ``EXPECTED`` entry fails: a new
README command cannot escape the test silently. The runs go ``WORKERS`` at a time (2 on 2 cores; the processes
are mostly imports; each has its own checkout copy, so timestamped run directories never collide), each with its
share of the cores (``OMP_NUM_THREADS``); a ``-k`` selection runs only the selected commands.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
NEEDS = re.compile(r"\[needs: ([^\]]+)\]")
STAND_INS = {"depth weights": ["depth=planes"]}           # need -> overrides that replace it
NOT_RUN = {"make test": "this test suite", "pytest": "this test suite",   # and any `pip install ...`
           "pytest -m slow": "this test suite's slow tier",
           # a server that runs until stopped: test_app_browser.py starts it and drives it in chromium
           "python app.py": "the app's browser test",
           "python app.py --port 8000 renderer=cpu data.max_side=512": "the app's browser test"}
ALIASES = {"make demo": "python infer.py"}               # checked against the Makefile
SHRINK = {"infer.py": {"data.num_frames": "5", "data.max_side": "128"}}
PREPARE = ("tools/sample_inputs.py",)                    # run first: the others read what they write
TIMEOUT_S = 600
WORKERS = max(1, min(4, os.cpu_count() or 1))            # commands run at once


@dataclass(frozen=True)
class Command:
    text: str                  # the command as written (continuation lines joined)
    comment: str               # its comments, continuation comment lines included
    needs: tuple[str, ...]     # items of its [needs: ...] marks

    @property
    def script(self) -> str | None:
        """The Python file it runs (``python <script> ...``), else None."""
        words = [w for w in shlex.split(self.text) if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", w)]
        return words[1] if len(words) > 1 and words[0] == "python" else None

    @property
    def missing(self) -> list[str]:
        """What it needs that this test cannot stand in for."""
        return [n for n in self.needs if n not in STAND_INS]


def readme_commands(text: str) -> list[Command]:
    """Commands of the ```bash blocks: a line not starting with whitespace starts one; an indented line (in the
    README: ``# ...`` comment lines aligned under the comments) continues it, as does a trailing backslash."""
    parts: list[tuple[str, str]] = []  # (text, comment)
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        continued = False
        for line in block.splitlines():
            if not line.strip():
                continued = False
                continue
            code, _, comment = line.partition(" #") if not line.strip().startswith("#") else ("", "", line.strip()[1:])
            code = code.strip().removesuffix("\\").strip()
            if parts and (continued or line[0].isspace()):
                prev_code, prev_comment = parts[-1]
                parts[-1] = (f"{prev_code} {code}".strip(), f"{prev_comment} {comment.strip()}".strip())
            else:
                parts.append((code, comment.strip()))
            continued = line.partition(" #")[0].rstrip().endswith("\\")
    return [Command(code, comment, tuple(n.strip() for m in NEEDS.findall(comment) for n in m.split(",")))
            for code, comment in parts]


COMMANDS = readme_commands(README.read_text())
RUN = [c for c in COMMANDS if c.text not in NOT_RUN and c.text not in ALIASES
       and not c.text.startswith("pip install") and not c.missing]
SKIPPED = [c for c in COMMANDS if c.missing]


def _one_dir(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} under {root}, found {[str(p) for p in found]}"
    return found[0]


def _expect_infer(cwd: Path, cmd: Command) -> None:
    files = ("color.mp4", "mask.mp4", "cameras.json", "depth.npz", "summary.json")
    if " -m " in f" {cmd.text} ":  # one run directory per job of the sweep
        jobs = 1
        for word in shlex.split(cmd.text):
            if "=" in word and "," in word:
                jobs *= len(word.split("=", 1)[1].split(","))
        sweep = _one_dir(cwd / "outputs" / "infer", "multirun_*")
        runs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
        assert len(runs) == jobs, runs
    else:
        runs = [_one_dir(cwd / "outputs" / "infer", "*")]
    for run in runs:
        for name in files:
            assert (run / name).is_file(), f"{cmd.text}: no {name} in {run}"


def _expect_train(cwd: Path, cmd: Command) -> None:
    run = _one_dir(cwd / "outputs" / "train", "*")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] > 0 and Path(summary["adapter"]).is_file(), summary
    for name in ("adapters/last.safetensors", "checkpoints/last.ckpt", "config.yaml"):
        assert (run / name).is_file(), f"{cmd.text}: no {name} in {run}"
    if "data=tiny" in cmd.text:  # prepared on first use (data.prepare_if_missing)
        assert (_one_dir(cwd / "outputs" / "shards", "tiny_*") / "index.jsonl").is_file()


def _expect_evaluate(cwd: Path, cmd: Command) -> None:
    run = _one_dir(cwd / "outputs" / "evaluate", "*")
    for name in ("results.json", "table.md", "per_video.csv"):
        assert (run / name).is_file(), f"{cmd.text}: no {name} in {run}"


def _expect_sample_inputs(cwd: Path, cmd: Command) -> None:
    for name in ("my_video.mp4", "photo.jpg", "my_path.json"):
        assert (cwd / name).is_file(), name
    assert len(list((cwd / "frames_folder").glob("*.jpg"))) == 49
    assert len(list((cwd / "videos").glob("*.mp4"))) == 2


EXPECTED = {"infer.py": _expect_infer, "train.py": _expect_train, "evaluate.py": _expect_evaluate,
            "tools/sample_inputs.py": _expect_sample_inputs}


def appended(cmd: Command) -> list[str]:
    """Overrides added to a command (module docstring)."""
    extra = [o for n in cmd.needs for o in STAND_INS[n]]
    given = {w.split("=", 1)[0] for w in shlex.split(cmd.text) if "=" in w}
    for key, value in SHRINK.get(cmd.script or "", {}).items():
        if key in given or (key == "data.num_frames" and "camera=file" in cmd.text):
            continue
        extra.append(f"{key}={value}")
    return extra


def copy_checkout(dest: Path) -> Path:
    """The files of a fresh clone (plus untracked, not ignored ones: work in progress) copied to ``dest``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                                capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"the README commands run in a copy of the git checkout; git ls-files failed here: {e}")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def run_command(cmd: Command, cwd: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EX4D_")}
    # WORKERS commands share the cores: torch's default (one thread per core each) would oversubscribe them.
    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // WORKERS))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    line = " ".join([cmd.text, *appended(cmd)])
    proc = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    (cwd / "command.log").write_text(f"$ {line}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def readme_runs(request, tmp_path_factory) -> dict[str, tuple[Path, Future]]:
    """command text -> (its checkout copy, the future of its run), for the commands this session selected."""
    selected = {item.callspec.params["cmd"].text for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec") and "cmd" in item.callspec.params}
    bin_dir = tmp_path_factory.mktemp("bin")
    python = bin_dir / "python"  # `python` = this interpreter, as in an activated venv (exec keeps its venv)
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    base = copy_checkout(tmp_path_factory.mktemp("checkout"))
    runs: dict[str, tuple[Path, Future]] = {}
    for cmd in (c for c in RUN if c.script in PREPARE):  # in the base copy: every other copy starts from it
        done: Future = Future()
        done.set_result(run_command(cmd, base, bin_dir))
        runs[cmd.text] = (base, done)
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    for i, cmd in enumerate(c for c in RUN if c.script not in PREPARE and c.text in selected):
        cwd = shutil.copytree(base, tmp_path_factory.getbasetemp() / f"readme_{i:02d}", symlinks=True)
        runs[cmd.text] = (Path(cwd), pool.submit(run_command, cmd, Path(cwd), bin_dir))
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


def test_readme_parses_into_the_known_commands():
    texts = [c.text for c in COMMANDS]
    assert len(COMMANDS) >= 25, texts
    for known in ("make demo", "python infer.py", "python train.py model=wan_tiny data=tiny trainer=cpu logger=csv",
                  "python evaluate.py benchmark=extreme_90 model=wan_tiny benchmark.data=tiny allow_skip=true"):
        assert known in texts
    assert all(c.text and not c.text.startswith("#") for c in COMMANDS)


def test_every_readme_command_is_run_or_marked():
    # Each command is run below, marked [needs: ...] with something unavailable here, or named in NOT_RUN /
    # ALIASES / pip install. A runnable one must say what it writes (EXPECTED).
    others = [c for c in COMMANDS if c.text in NOT_RUN or c.text in ALIASES or c.text.startswith("pip install")]
    assert sorted(map(str, RUN + SKIPPED + others)) == sorted(map(str, COMMANDS))
    assert {c.text for c in others if not c.text.startswith("pip install")} == {*NOT_RUN, *ALIASES}, others
    assert all(ALIASES[c.text] in {r.text for r in RUN} for c in others if c.text in ALIASES)
    unaccounted = [c.text for c in RUN if c.script not in EXPECTED]
    assert not unaccounted, (f"README commands that this test would run but does not know the outputs of (add the "
                             f"script to EXPECTED) or that need something (mark them [needs: ...]): {unaccounted}")
    assert len(RUN) >= 10 and len(SKIPPED) >= 10, ([c.text for c in RUN], [c.text for c in SKIPPED])


def test_make_demo_is_python_infer_py():
    recipe = re.search(r"^demo:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert recipe and recipe.group(1).strip() == "$(BIN)/python infer.py", recipe


@pytest.mark.slow
@pytest.mark.parametrize("cmd", RUN, ids=[c.text.removeprefix("python ") for c in RUN])
def test_readme_command_runs(readme_runs, cmd: Command):
    cwd, future = readme_runs[cmd.text]
    proc = future.result()
    log = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, f"`{cmd.text}` (+ {appended(cmd)}) exited {proc.returncode} in {cwd}:\n{log}"
    assert cmd.script in EXPECTED, f"`{cmd.text}` ran; add what {cmd.script} writes to EXPECTED"
    EXPECTED[cmd.script](cwd, cmd)


@pytest.mark.parametrize("cmd", SKIPPED, ids=[c.text.removeprefix("python ") for c in SKIPPED])
def test_readme_command_needing_what_is_not_here(cmd: Command):
    pytest.skip(f"needs {', '.join(cmd.needs)}")
