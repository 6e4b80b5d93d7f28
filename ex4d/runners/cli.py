"""What the entry points (``infer.py``, ``train.py``, ``evaluate.py``, ``tools/*.py``) do around a runner.

A user error (bad input file, bad config value, missing weights) prints **one line** naming the file or key
and the fix, with no traceback on screen; the traceback goes to the run's log file. The process exits with
a status that says which kind of failure it was:

====  =====================================================================================
0     success
2     bad input or config value (``InputError``; also Hydra's own composition errors, e.g. an
      unknown key or option, which Hydra prints itself)
3     missing model weights (``MissingWeightsError``; the line names the download command)
4     a set of inputs finished, but some items failed (the table above it says which)
70    internal error: a bug (one line on screen, the traceback in the log; please report it)
130   interrupted (Ctrl-C)
====  =====================================================================================

The run folder is left holding only ``FAILED.txt`` (the same line) and the log, except for training runs,
whose checkpoints stay for a resume, and for sets of inputs, whose finished items stay. Only one run at a
time may use a folder (a lock on the folder).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from ex4d.runners.common import SET_MARKER, StageClock, mark_failed, run_dir, run_lock, run_record, write_json
from ex4d.utils.errors import InputError, MissingWeightsError, error_reason, one_line

log = logging.getLogger("ex4d")

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_WEIGHTS = 3
EXIT_ITEMS_FAILED = 4
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def _cause(e: BaseException) -> BaseException:
    """Hydra's instantiate wraps constructor errors in InstantiationException: the cause is the real one."""
    while type(e).__name__ == "InstantiationException" and e.__cause__ is not None:
        e = e.__cause__
    return e


def exit_code(e: BaseException) -> int:
    """The exit status of a failure (module docstring)."""
    c = _cause(e)
    if isinstance(c, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(c, MissingWeightsError):
        return EXIT_WEIGHTS
    if isinstance(c, InputError):
        return EXIT_INPUT
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(c, OmegaConfBaseException):  # a missing / mistyped / unresolvable config value
        return EXIT_INPUT
    if isinstance(c, TypeError) and c is not e and "argument" in str(c):  # a config key the class does not take
        return EXIT_INPUT
    if _is_oom(c):  # sizes or memory mode too large for this machine: the user's to change
        return EXIT_INPUT
    return EXIT_INTERNAL


OOM_HINT = ("out of GPU memory: use smaller sizes or fewer frames (data.gen_height / data.gen_width / "
            "data.num_frames, data.max_side) or a leaner model.memory_mode (offload, low_vram)")


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, MemoryError))


def reason_line(e: BaseException) -> str:
    """The line printed and written to FAILED.txt."""
    c = _cause(e)
    if _is_oom(c):
        what = "out of host memory" if isinstance(c, MemoryError) else None
        return (OOM_HINT.replace("out of GPU memory", what) if what else OOM_HINT) + f" ({one_line(str(c))[:200]})"
    return error_reason(e)


def _file_handlers() -> list[logging.FileHandler]:
    """The root logger's file handlers (Hydra's ``<run dir>/<job>.log``), not those writing to /dev/null."""
    return [h for h in logging.getLogger().handlers
            if isinstance(h, logging.FileHandler) and h.baseFilename != os.devnull]


def log_traceback_to_files(e: BaseException, fallback: Path | None) -> Path | None:
    """Write the traceback to the log files only (never to the console); returns the log path."""
    record = logging.LogRecord("ex4d", logging.ERROR, __file__, 0, "run failed: %s", (error_reason(e),),
                               (type(e), e, e.__traceback__))
    handlers = _file_handlers()
    for h in handlers:
        h.handle(record)
    if handlers:
        return Path(handlers[0].baseFilename)
    if fallback is None:
        return None
    fallback.parent.mkdir(parents=True, exist_ok=True)
    with fallback.open("a") as f:
        f.write("run failed: " + error_reason(e) + "\n" + "".join(traceback.format_exception(e)))
    return fallback


def _is_rank0() -> bool:
    return os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0"


@dataclass
class RunOutcome:
    """How a guarded run ended (:func:`run_guarded`).

    Attributes:
        result: the runner's dict (None when it failed).
        code: the exit status it maps to (module docstring): 0, 2, 3, 4, 70 or 130.
        reason: the one line shown to the user and written to FAILED.txt (None on success).
        log: the file holding the traceback of a failure, when one was written.
    """

    result: dict | None
    code: int = EXIT_OK
    reason: str | None = None
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.code == EXIT_OK

    def message(self) -> str | None:
        """The line a user sees: ``error: ...`` (``internal error: ... please report it`` for a bug); None on
        success."""
        if self.ok:
            return None
        detail = f" (log: {self.log})" if self.log else ""
        if self.code == EXIT_INTERNAL:
            return f"internal error: {self.reason}{detail}. This is a bug: please report it with the log's traceback."
        return f"error: {self.reason}{detail}"


def run_guarded(fn: Callable[[DictConfig], dict], cfg: DictConfig, *, keep_outputs_on_failure: bool = False,
                write_summary: bool = False) -> RunOutcome:
    """Run ``fn(cfg)`` under the run-folder rules of :func:`run_app` (lock, failure classified, traceback to the
    log, the folder left holding FAILED.txt), returning the outcome instead of exiting: for callers that stay
    alive after a failed run (the web app, ``ex4d.app``). ``SystemExit`` still propagates."""
    out: Path | None = None
    try:
        out = run_dir(cfg)
        if _is_rank0():
            with run_lock(out):
                clock = StageClock()
                with clock.stage(str(getattr(fn, "__name__", "run")).removeprefix("run_")):
                    result = fn(cfg)
                if write_summary and isinstance(result, dict):
                    write_json(out / "summary.json", {**result, **run_record(cfg), **clock.record()})
        else:
            result = fn(cfg)
    except BaseException as e:  # noqa: BLE001 - every failure ends here, classified
        if isinstance(e, SystemExit):
            raise
        code = exit_code(e)
        reason = reason_line(e)
        where = log_traceback_to_files(e, out / "error.log" if out is not None else None)
        locked_out = code == EXIT_INPUT and "is in use by another run" in str(e)
        if out is not None and _is_rank0() and not locked_out:
            if (out / SET_MARKER).exists() or keep_outputs_on_failure:  # finished items / checkpoints stay
                if keep_outputs_on_failure:
                    (out / "FAILED.txt").write_text(reason + "\n")
            else:
                mark_failed(out, reason)
        return RunOutcome(None, code, reason, where)
    failed = result.get("failed") if isinstance(result, dict) else None
    n_failed = len(failed) if isinstance(failed, (list, tuple, dict)) else int(failed or 0)
    if n_failed:
        total = result.get("inputs", result.get("clips", "?"))
        return RunOutcome(result, EXIT_ITEMS_FAILED, f"{n_failed} of {total} inputs failed (see the table above "
                                                     f"and FAILED.txt in their folders, or the log)")
    return RunOutcome(result)


def run_app(fn: Callable[[DictConfig], dict], cfg: DictConfig, *, keep_outputs_on_failure: bool = False,
            write_summary: bool = False) -> dict:
    """Run ``fn(cfg)`` as a command-line app (module docstring); exits the process on failure.

    ``keep_outputs_on_failure``: leave the folder's outputs (training checkpoints) and add ``FAILED.txt``.
    ``write_summary``: write the returned dict as ``<run dir>/summary.json`` with the run record (commit,
    config hash, wall time and peak GPU memory), for tools whose runners do not write one themselves.
    """
    outcome = run_guarded(fn, cfg, keep_outputs_on_failure=keep_outputs_on_failure, write_summary=write_summary)
    if not outcome.ok:
        print(outcome.message(), file=sys.stderr)
        sys.stderr.flush()
        sys.exit(outcome.code)
    return outcome.result


# Command-line keys that place the run folder (the first three are Hydra's / the paths group's).
_OUTPUT_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "paths.output_dir", "output_dir", "+output_dir")


def check_output_root(argv: list[str]) -> None:
    """The folders a run will write under must be creatable and writable. Hydra creates the run folder before
    any of our code runs and answers a file in the way, or a read-only place, with a traceback: so this is
    checked first (InputError naming the key). Values with interpolations are left to Hydra."""
    if any(a in ("-h", "--help", "--hydra-help", "--info", "-c", "--cfg", "-i") for a in argv):
        return
    overrides = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
    targets = [(k, overrides[k]) for k in _OUTPUT_KEYS if k in overrides]
    if not any(k in overrides for k in _OUTPUT_KEYS[:3]):  # the default: <paths.root_dir>/outputs
        root = overrides.get("paths.root_dir", os.environ.get("EX4D_ROOT", "."))
        targets.append(("paths.output_dir", f"{root}/outputs"))
    for key, value in targets:
        if "${" in value or ("," in value and ("-m" in argv or "--multirun" in argv)):
            continue
        folder = Path(value).expanduser()
        blocking = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise InputError(f"{key}={value}: {blocking} is a file, not a folder; give a folder ({key}=<folder>)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as e:
            raise InputError(f"{key}={value}: cannot write there ({e.strerror or e}); give a writable folder "
                             f"({key}=<folder>)") from e


CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def check_moved_options(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """``data=<option>`` where the option is one of the inference clip options (``conf/clip``, which were
    ``conf/data``'s before training sets and inference inputs got separate groups: ``data=video``) is an
    InputError naming the new key, ``clip=<option>``; Hydra would only say that ``data/<option>`` is not found.
    """
    for a in argv:
        if a.startswith("-") or "=" not in a:
            continue
        key, value = a.split("=", 1)
        if key.lstrip("+~") != "data":
            continue
        names = [v.strip() for v in value.split(",")]  # a multirun sweep: data=video,tiny
        moved = [n for n in names if not (conf_dir / "data" / f"{n}.yaml").is_file()
                 and (conf_dir / "clip" / f"{n}.yaml").is_file()]
        if moved:
            raise InputError(f"{a}: the inference clip options are the clip group now: clip={value} (their values "
                             f"stay data.num_frames=..., data.max_side=...); data= picks training sets (conf/data)")


def main(hydra_main: Callable[[], object]) -> None:
    """Call a ``@hydra.main`` function; Hydra's own composition errors (it prints them, then exits 1: our runs
    never exit 1) become exit status 2, as every other bad-config error. Renamed options
    (:func:`check_moved_options`) and the output folder (:func:`check_output_root`) are checked first."""
    try:
        check_moved_options(sys.argv[1:])
        check_output_root(sys.argv[1:])
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    try:
        hydra_main()
    except SystemExit as e:
        if e.code == 1:
            sys.exit(EXIT_INPUT)
        raise


__all__ = ["EXIT_INPUT", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_ITEMS_FAILED", "EXIT_OK", "EXIT_WEIGHTS",
           "RunOutcome", "exit_code", "main", "one_line", "run_app", "run_guarded"]
