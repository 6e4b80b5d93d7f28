"""Error types for bad user input. Each message names the file or config key at fault."""


class InputError(ValueError):
    """Bad user-supplied input (a video, a depth file, a trajectory file, a config value)."""


class MissingWeightsError(FileNotFoundError):
    """A model weights file or folder is missing; the message names it and the download command."""


DOWNLOAD_TOOL = "python tools/download_weights.py"


def download_command(*args: str, local_dir=None) -> str:
    """The ``tools/download_weights.py`` command line that fetches ``args`` (its items and options, e.g.
    ``"depthcrafter"`` or ``"wan_i2v_14b_480p", "--native"``) into ``local_dir``.

    Every download hint in a message is built here, so each one is a command the tool accepts (a test feeds
    them all to its argument parser).
    """
    cmd = " ".join([DOWNLOAD_TOOL, *args])
    return cmd if local_dir is None else f"{cmd} --local-dir {local_dir}"


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(text).split())


def error_reason(e: BaseException) -> str:
    """The one-line reason of a failure, as FAILED.txt and the console show it: the message alone for user
    errors (it names the file or key and the fix), ``Type: message`` for anything else."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    cause = e
    # Hydra's instantiate wraps constructor errors (InstantiationException); the cause names the key and fix.
    while type(cause).__name__ == "InstantiationException" and cause.__cause__ is not None:
        cause = cause.__cause__
    msg = one_line(str(cause))
    if isinstance(cause, (InputError, MissingWeightsError)):
        return msg
    return f"{type(cause).__name__}: {msg}" if msg else type(cause).__name__
