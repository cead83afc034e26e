"""Callback state through checkpoints: saved under each callback's `state_key`, restored to the
callback with the same key, whatever the registration order.

A saved state whose callback is not registered yet waits for it; one that no callback claims by
the time training starts is reported once and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from keisei.training.callback_system.base import _CallbackBase


def saved_state(callbacks: Iterable[_CallbackBase]) -> dict[str, Any]:
    """Every callback's state and schedule, keyed by `state_key` (what a checkpoint holds)."""
    return {
        "callbacks": {
            cb.state_key: {
                "state": cb.state_dict(),
                "schedule": None if cb.schedule is None else cb.schedule.state_dict(),
            }
            for cb in callbacks
        }
    }


class SavedStates:
    """The states of a checkpoint that have not found their callback yet."""

    def __init__(self) -> None:
        self._unclaimed: dict[str, Mapping[str, Any]] = {}

    def load(self, state: Mapping[str, Any]) -> None:
        """Hold the states of `state` (what `saved_state` made), replacing any held before."""
        saved: dict[str, Mapping[str, Any]] = {}
        for section in ("async_callbacks", "callbacks"):  # "async_callbacks": older checkpoints
            saved.update(state.get(section, {}))
        self._unclaimed = saved

    def claim(self, cb: _CallbackBase) -> bool:
        """Restore `cb`'s saved state and schedule, if one waits for it; True if one did."""
        saved = self._unclaimed.pop(cb.state_key, None)
        if saved is None:
            return False
        cb.load_state_dict(saved.get("state", {}))
        if cb.schedule is not None and saved.get("schedule") is not None:
            cb.schedule.load_state_dict(saved["schedule"])
        return True

    def report_unclaimed(self, logger: logging.Logger) -> None:
        """Warn once about the states no callback claimed, and drop them."""
        if self._unclaimed:
            logger.warning(
                "the checkpoint holds the state of callbacks %s, which match no registered "
                "callback; their state is ignored",
                sorted(self._unclaimed),
            )
            self._unclaimed = {}
