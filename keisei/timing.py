"""Wall time per named section of the training loop (for progress display and benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class SectionTimer:
    """Accumulates seconds per section: `with timer.section("env"): ...`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def shares(self) -> dict[str, float]:
        """Each section's fraction of the total timed."""
        total = sum(self.seconds.values()) or 1.0
        return {name: value / total for name, value in self.seconds.items()}

    def reset(self) -> None:
        self.seconds.clear()
