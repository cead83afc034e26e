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


def _rank(pair: tuple[int, _CallbackBase]) -> int:
    return pair[0]


class DispatchPlan:
    """The dispatch order of one set of callbacks (rebuild it when the set changes)."""

    def __init__(self) -> None:
        self._due = DueQueue()
        # Indexed by kind (`is_async`) at rebuild time, so a dispatch filters nothing.
        self._every_epoch: dict[bool, list[tuple[int, _CallbackBase]]] = {False: [], True: []}
        self._pollers: dict[bool, tuple[_CallbackBase, ...]] = {False: (), True: ()}
        self._checkpointers: list[tuple[int, _CallbackBase]] = []
        self._checkpoint_wanted_at: int | None = None
        self._any_needs_checkpoint = False

    def rebuild(self, registries: Sequence[Sequence[_CallbackBase]]) -> None:
        """Index the callbacks of each registry (already filtered to the enabled ones)."""
        every_epoch: dict[bool, list[tuple[int, _CallbackBase]]] = {False: [], True: []}
        pollers: dict[bool, list[_CallbackBase]] = {False: [], True: []}
        self._checkpointers = []
        scheduled: list[tuple[int, bool, EveryNSteps, _CallbackBase]] = []
        for registry in registries:
            count = len(registry)
            for index, cb in enumerate(registry):
                is_checkpoint = isinstance(cb, CheckpointCallback)
                rank = index + (count if is_checkpoint else 0)  # checkpoints after the others
                kind = _is_async(cb)
                if is_checkpoint:
                    self._checkpointers.append((rank, cb))
                if cb.polls:
                    pollers[kind].append(cb)
                if cb.schedule is None:
                    every_epoch[kind].append((rank, cb))
                else:
                    scheduled.append((rank, kind, cb.schedule, cb))
        self._any_needs_checkpoint = any(cb.needs_checkpoint for _, _, _, cb in scheduled)
        self._every_epoch = every_epoch
        self._pollers = {kind: tuple(cbs) for kind, cbs in pollers.items()}
        self._due.rebuild(scheduled)

    def pollers(self, *, is_async: bool) -> tuple[_CallbackBase, ...]:
        return self._pollers[is_async]

    def step_hooks(self, step: int, *, is_async: bool) -> list[tuple[int, _CallbackBase]]:
        """(rank, callback) for the callbacks of one kind whose step hook runs at `step`, in
        order; their schedules record that they fired."""
        every_epoch = self._every_epoch[is_async]
        if (
            step < self._due.earliest
            and not every_epoch
            and (is_async or self._checkpoint_wanted_at != step)
        ):
            return []  # the usual epoch end: nothing due, nothing to order
        calls = self._due.pop_due(step, is_async)
        if self._any_needs_checkpoint and any(cb.needs_checkpoint for _, cb in calls):
            self._checkpoint_wanted_at = step
        if every_epoch:
            calls += every_epoch
        if not is_async and self._checkpoint_wanted_at == step:  # checkpoints are sync
            listed = {id(cb) for _, cb in calls}
            calls += [(rank, cb) for rank, cb in self._checkpointers if id(cb) not in listed]
        if len(calls) > 1:
            calls.sort(key=_rank)
        return calls
