"""Faults injected on purpose into real runs (for tests): callbacks that break things at a step."""

from __future__ import annotations

import errno
import time
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


class SlowClose(Callback):
    """Makes teardown take a while: `close()` writes `<marker>.closing`, waits, then writes
    `<marker>.closed` (so a test can press Ctrl-C during teardown)."""

    def __init__(self, marker: str, seconds: float = 3.0) -> None:
        super().__init__()
        self.marker = marker
        self.seconds = seconds

    def close(self) -> None:
        Path(f"{self.marker}.closing").write_text("")
        time.sleep(self.seconds)
        Path(f"{self.marker}.closed").write_text("")
