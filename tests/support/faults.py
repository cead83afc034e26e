"""Faults injected on purpose into real runs (for tests): callbacks that break things at a step."""

from __future__ import annotations

import errno
from pathlib import Path

from keisei.training.callbacks import Callback, TrainerView


class FillDiskAt(Callback):
    """At `step`, fills the file system holding `path` with a file there (until ENOSPC)."""

    def __init__(self, path: str, step: int) -> None:
        super().__init__()
        self.path = Path(path)
        self.step = step

    def on_step_end(self, trainer: TrainerView) -> None:
        if trainer.global_timestep != self.step:
            return
        with open(self.path, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
