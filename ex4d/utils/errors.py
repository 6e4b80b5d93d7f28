"""Error types for bad user input. Each message names the file or config key at fault."""


class InputError(ValueError):
    """Bad user-supplied input (a video, a depth file, a trajectory file, a config value)."""


class MissingWeightsError(FileNotFoundError):
    """A model weights file or folder is missing; the message names it and the download command."""


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
