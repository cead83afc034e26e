"""The exceptions the checkpoint store raises; all derive from `CheckpointError`.

Each message names the checkpoint (and the file, where one is at fault), so a user reading a log
knows what to delete, restore or investigate.
"""

from __future__ import annotations

from pathlib import Path


class CheckpointError(Exception):
    """Anything that goes wrong saving, finding or loading a checkpoint."""


class CheckpointNameError(CheckpointError, ValueError):
    """A run or checkpoint name that could escape its directory or is not a valid name."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint where one was asked for (no directory, no complete checkpoint, ...)."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint that is incomplete, truncated, or fails its checksums.

    `path` is the checkpoint directory, `file` the file at fault (None when the directory itself
    is the problem).
    """

    def __init__(self, message: str, *, path: Path, file: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.file = file


class CheckpointFormatError(CheckpointError):
    """A well-formed checkpoint this version of Keisei cannot read (e.g. a newer format)."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that does not fit the model/optimizer it is being restored into."""


class CheckpointWriteError(CheckpointError):
    """Writing a checkpoint failed (disk full, read-only, ...); `name` is the lost checkpoint.

    For an asynchronous save this is raised by the next `save()`, `flush()` or `close()`; the
    original `OSError` is the `__cause__`.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name
