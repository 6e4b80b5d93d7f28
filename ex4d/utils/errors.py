"""Error types for bad user input. Each message names the file or config key at fault."""


class InputError(ValueError):
    """Bad user-supplied input (a video, a depth file, a trajectory file, a config value)."""


class MissingWeightsError(FileNotFoundError):
    """A model weights file or folder is missing; the message names it and the download command."""
