"""Which callbacks run at the end of an epoch, and in what order.

Built from the registered, enabled callbacks whenever they change. Scheduled callbacks of both
kinds sit in one `DueQueue`; those without a schedule run every epoch. At a step, the step hooks
run in registration order with checkpoint callbacks last; when a callback that
`needs_checkpoint` is due, the checkpoint callbacks run at that step too (due or not). Polling
callbacks get their poll hook every epoch, before the step hooks.
"""

from __future__ import annotations

from collections.abc import Sequence

from keisei.training.callback_base import AsyncCallback, _CallbackBase
from keisei.training.callbacks import CheckpointCallback
from keisei.training.schedule import DueQueue, EveryNSteps


def _is_async(cb: _CallbackBase) -> bool:
    return isinstance(cb, AsyncCallback)


def _is_sync(cb: _CallbackBase) -> bool:
    return not isinstance(cb, AsyncCallback)


class DispatchPlan:
    """The dispatch order of one set of callbacks (rebuild it when the set changes)."""

    def __init__(self) -> None:
        self._due = DueQueue()
        self._every_epoch: list[tuple[int, _CallbackBase]] = []
        self._pollers: list[_CallbackBase] = []
        self._checkpointers: list[tuple[int, _CallbackBase]] = []
        self._checkpoint_wanted_at: int | None = None

    def rebuild(self, registries: Sequence[Sequence[_CallbackBase]]) -> None:
        """Index the callbacks of each registry (already filtered to the enabled ones)."""
        self._every_epoch, self._pollers, self._checkpointers = [], [], []
        scheduled: list[tuple[int, EveryNSteps, _CallbackBase]] = []
        for registry in registries:
            count = len(registry)
            for index, cb in enumerate(registry):
                is_checkpoint = isinstance(cb, CheckpointCallback)
                rank = index + (count if is_checkpoint else 0)  # checkpoints after the others
                if is_checkpoint:
                    self._checkpointers.append((rank, cb))
                if cb.polls:
                    self._pollers.append(cb)
                if cb.schedule is None:
                    self._every_epoch.append((rank, cb))
                else:
                    scheduled.append((rank, cb.schedule, cb))
        self._due.rebuild(scheduled)

    def pollers(self, *, is_async: bool) -> list[_CallbackBase]:
        accept = _is_async if is_async else _is_sync
        return [cb for cb in self._pollers if accept(cb)]

    def step_hooks(self, step: int, *, is_async: bool) -> list[_CallbackBase]:
        """The callbacks of one kind whose step hook runs at `step`, in order; their schedules
        record that they fired."""
        accept = _is_async if is_async else _is_sync
        due = self._due.pop_due(step, accept)
        if any(cb.needs_checkpoint for _, cb in due):
            self._checkpoint_wanted_at = step
        calls = due + [(rank, cb) for rank, cb in self._every_epoch if accept(cb)]
        if not is_async and self._checkpoint_wanted_at == step:  # checkpoints are sync
            listed = {id(cb) for _, cb in calls}
            calls += [(rank, cb) for rank, cb in self._checkpointers if id(cb) not in listed]
        calls.sort(key=lambda pair: pair[0])
        return [cb for _, cb in calls]
