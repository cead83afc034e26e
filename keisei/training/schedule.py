"""When periodic work is due: the one scheduling rule, written once.

`align_interval` rounds an interval up to a whole number of epochs (callbacks only run at epoch
ends, so an unaligned interval would drift). `EveryNSteps` is a small filter object in the style of
Ignite's `every=`: it is due exactly once each time the step counter reaches or crosses a multiple
of its interval, however far the counter jumps between calls.
"""

from __future__ import annotations

import heapq
import logging
import math
from typing import Any


def align_interval(interval: int, steps_per_epoch: int, name: str, logger: logging.Logger) -> int:
    """Round `interval` up to a multiple of `steps_per_epoch`, telling the user once if changed."""
    if interval <= 0:
        raise ValueError(f"{name} must be a positive number of steps, got {interval}")
    if steps_per_epoch <= 0:
        raise ValueError(
            f"steps_per_epoch must be a positive number of steps, got {steps_per_epoch}"
        )
    aligned = -(-interval // steps_per_epoch) * steps_per_epoch
    if aligned != interval:
        logger.info(
            "%s = %d is not a multiple of steps_per_epoch = %d; using %d",
            name,
            interval,
            steps_per_epoch,
            aligned,
        )
    return aligned


class EveryNSteps:
    """Due once per call in which the step reaches or crosses a new multiple of `interval`.

    A jump that crosses several multiples at once is one firing (the work would be identical);
    `multiples_covered` says how many multiples the last firing stood for. The state (the last
    multiple reached) goes into checkpoints so that a resumed run neither repeats nor skips one.
    """

    def __init__(self, interval: int) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        self.last_multiple: int | None = None
        self.multiples_covered = 0

    def start(self, step: int) -> None:
        """Anchor at `step` unless already anchored (by an earlier call or a restored state)."""
        if self.last_multiple is None:
            self.last_multiple = step // self.interval

    def due(self, step: int) -> bool:
        """True when `step` reached a multiple not reached before; records that it has."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        multiple = step // self.interval
        if self.last_multiple is None:
            self.last_multiple = 0
        if multiple > self.last_multiple:
            self.multiples_covered = multiple - self.last_multiple
            self.last_multiple = multiple
            return True
        return False

    def realign(self, interval: int) -> None:
        """Change the interval, keeping the position reached (in steps)."""
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if self.last_multiple is not None:
            self.last_multiple = (self.last_multiple * self.interval) // interval
        self.interval = interval

    def state_dict(self) -> dict[str, Any]:
        return {"interval": self.interval, "last_multiple": self.last_multiple}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        last = state.get("last_multiple")
        saved_interval = int(state.get("interval", self.interval))
        if last is not None and saved_interval != self.interval:
            # Keep the position in steps, expressed in the new interval.
            last = (int(last) * saved_interval) // self.interval
        self.last_multiple = None if last is None else int(last)


class DueQueue:
    """Scheduled callbacks of every kind, ordered by the next step at which each is due.

    One queue serves sync and async callbacks alike: each entry carries its kind, and each
    dispatch takes the due entries of its own kind, leaving the others due for theirs. The cost
    of a step on which nothing is due does not grow with the number of scheduled callbacks.
    """

    def __init__(self) -> None:
        # (next due step, order, entry number, kind, schedule, item): the entry number breaks
        # ties between equal orders (a sync and an async callback), so nothing else is compared.
        self._heap: list[tuple[int, int, int, bool, EveryNSteps, Any]] = []
        self.earliest: float = math.inf
        """The step at which the first entry falls due (inf when empty): below it nothing is due,
        so a caller can skip `pop_due` altogether."""

    @staticmethod
    def _next_due(schedule: EveryNSteps) -> int:
        return ((schedule.last_multiple or 0) + 1) * schedule.interval

    def rebuild(self, entries: list[tuple[int, bool, EveryNSteps, Any]]) -> None:
        """Replace the contents with (order, kind, schedule, item) entries."""
        self._heap = [
            (self._next_due(schedule), order, number, kind, schedule, item)
            for number, (order, kind, schedule, item) in enumerate(entries)
        ]
        heapq.heapify(self._heap)
        self.earliest = self._heap[0][0] if self._heap else math.inf

    def pop_due(self, step: int, kind: bool) -> list[tuple[int, Any]]:
        """The (order, item) pairs of `kind` due at `step`; their schedules record that they
        fired. Due entries of the other kind stay due."""
        heap = self._heap
        if not heap or heap[0][0] > step:
            return []
        due: list[tuple[int, Any]] = []
        refiled = []
        while heap and heap[0][0] <= step:
            entry = heapq.heappop(heap)
            if entry[3] != kind:
                refiled.append(entry)
                continue
            _, order, number, _, schedule, item = entry
            schedule.due(step)
            refiled.append((self._next_due(schedule), order, number, kind, schedule, item))
            due.append((order, item))
        for entry in refiled:
            heapq.heappush(heap, entry)
        self.earliest = heap[0][0]
        return due
