"""Which callbacks run at the end of an epoch, and in what order.

Built from the registered, enabled callbacks whenever they change. Scheduled callbacks of both
kinds sit in one `DueQueue`; those without a schedule run every epoch. At a step, the step hooks
run in registration order with checkpoint callbacks last; when a callback whose step hook ran
asks for a checkpoint (`wants_checkpoint`), every checkpoint callback runs at that step too, due
or not. Polling callbacks get their poll hook every epoch, before the step hooks.
"""

from __future__ import annotations

from collections.abc import Sequence

from keisei.training.callback_system.base import AsyncCallback, _CallbackBase
from keisei.training.callback_system.checkpoint import CheckpointCallback
from keisei.training.schedule import DueQueue, EveryNSteps


def _is_async(cb: _CallbackBase) -> bool:
    return isinstance(cb, AsyncCallback)


_NOTHING: tuple[tuple[()], tuple[()]] = ((), ())


def _rank(pair: tuple[int, _CallbackBase]) -> int:
    return pair[0]


class DispatchPlan:
    """The dispatch order of one set of callbacks (rebuild it when the set changes)."""

    def __init__(self) -> None:
        self._due = DueQueue()
        # Indexed by kind (`is_async`) at rebuild time, so a dispatch filters nothing.
        self._every_epoch: dict[bool, list[tuple[int, _CallbackBase]]] = {False: [], True: []}
        self.sync_pollers: tuple[_CallbackBase, ...] = ()
        self.async_pollers: tuple[_CallbackBase, ...] = ()
        self._checkpointers: list[tuple[int, _CallbackBase]] = []
        self.checkpoint_wanted_at: int | None = None
        """The step at which a callback last asked for a checkpoint."""
        self._first_checkpoint_rank: dict[bool, int] = {False: 0, True: 0}
        """Ranks from this one up are checkpoint callbacks (ranked after all the others)."""

    def rebuild(self, registries: Sequence[Sequence[_CallbackBase]]) -> None:
        """Index the callbacks of each registry (already filtered to the enabled ones)."""
        every_epoch: dict[bool, list[tuple[int, _CallbackBase]]] = {False: [], True: []}
        pollers: dict[bool, list[_CallbackBase]] = {False: [], True: []}
        self._checkpointers = []
        self._first_checkpoint_rank = {False: 0, True: 0}
        scheduled: list[tuple[int, bool, EveryNSteps, _CallbackBase]] = []
        for registry in registries:
            count = len(registry)
            for index, cb in enumerate(registry):
                kind = _is_async(cb)
                self._first_checkpoint_rank[kind] = count
                is_checkpoint = isinstance(cb, CheckpointCallback)
                rank = index + (count if is_checkpoint else 0)  # checkpoints after the others
                if is_checkpoint:
                    self._checkpointers.append((rank, cb))
                if cb.polls:
                    pollers[kind].append(cb)
                if cb.schedule is None:
                    every_epoch[kind].append((rank, cb))
                else:
                    scheduled.append((rank, kind, cb.schedule, cb))
        self._every_epoch = every_epoch
        self.sync_pollers, self.async_pollers = tuple(pollers[False]), tuple(pollers[True])
        self._due.rebuild(scheduled)

    def step_hooks(
        self, step: int, *, is_async: bool
    ) -> tuple[Sequence[_CallbackBase], Sequence[_CallbackBase]]:
        """The callbacks of one kind whose step hook runs at `step`: the others, then the due
        checkpoint callbacks, each in order; their schedules record that they fired."""
        every_epoch = self._every_epoch[is_async]
        if step < self._due.earliest and not every_epoch:
            return _NOTHING  # the usual epoch end: nothing due, nothing to order
        calls = self._due.pop_due(step, is_async)
        if every_epoch:
            calls += every_epoch
        if not calls:  # what was due is of the other kind
            return _NOTHING
        if len(calls) > 1:
            calls.sort(key=_rank)
        first_checkpoint = self._first_checkpoint_rank[is_async]
        if calls[-1][0] < first_checkpoint:
            return [cb for _, cb in calls], ()
        return (
            [cb for rank, cb in calls if rank < first_checkpoint],
            [cb for rank, cb in calls if rank >= first_checkpoint],
        )

    def want_checkpoint(self, step: int) -> None:
        """A callback asked for a checkpoint at `step` (see `wants_checkpoint`)."""
        self.checkpoint_wanted_at = step

    def checkpoints(self, step: int, due: Sequence[_CallbackBase]) -> Sequence[_CallbackBase]:
        """The checkpoint callbacks to run at `step`: the due ones, and every other one too when
        a checkpoint was asked for at this step."""
        if self.checkpoint_wanted_at != step:
            return due
        return [cb for _, cb in self._checkpointers]
