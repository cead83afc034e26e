"""What every rank does next, decided together at the points of an epoch where the ranks can
part ways: after self-play (did it fail anywhere?) and after the callbacks (callbacks disabled,
a critical failure, a Ctrl-C). Each is one all-gather that every rank reaches, so all of them
take the same branch at the same step and none waits forever for another. A single process
decides alone, with no collective.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from keisei.training.callback_manager import CallbackManager
from keisei.training.callback_system.base import CriticalCallbackError
from keisei.training.distributed import RankFailedError, World, describe
from keisei.training.interrupt import StopRequested

T = TypeVar("T")

__all__ = ["agree_on_epoch_end", "agreed", "describe"]


def _describe_with_cause(exc: BaseException) -> str:
    cause = exc.__cause__
    return describe(exc) + ("" if cause is None else f" ({describe(cause)})")


def _raise_first_rank_failure(failures: list[str | None], what: str, step: int) -> None:
    for rank, failure in enumerate(failures):
        if failure is not None:
            raise RankFailedError(rank, f"{what} failed on rank {rank} at step {step}: {failure}")


def agreed(world: World, what: str, step: int, work: Callable[[], T]) -> T:
    """Run `work` on every rank; if it failed on any, every rank raises (no rank goes on to wait
    in a collective for one that stopped)."""
    if not world.distributed:
        return work()
    try:
        result, error = work(), None
    except Exception as exc:
        result, error = None, exc
    outcomes = world.all_gather(None if error is None else describe(error), what)
    if error is not None:
        world.mark_agreed(error)
        raise error
    _raise_first_rank_failure(outcomes, what, step)
    return result  # type: ignore[return-value]


def agree_on_epoch_end(
    world: World,
    manager: CallbackManager,
    step: int,
    failure: CriticalCallbackError | None,
    stop: bool,
) -> None:
    """After the callbacks: callbacks disabled on any rank are disabled on all; a critical
    failure (`failure`, here) or a Ctrl-C (`stop`) on any rank stops every rank now."""
    if world.distributed:
        decisions = world.all_gather(
            {
                "disabled": sorted(manager.disabled_keys()),
                "failure": None if failure is None else _describe_with_cause(failure),
                "stop": stop,
            },
            "the epoch's decisions",
        )
        for rank, decision in enumerate(decisions):
            manager.disable(
                set(decision["disabled"]),
                f"it failed on rank {rank}, so every rank disables it at step {step}",
            )
        stop = any(decision["stop"] for decision in decisions)
        if failure is None:
            _raise_first_rank_failure([d["failure"] for d in decisions], "the callbacks", step)
    if failure is not None:
        world.mark_agreed(failure)
        raise failure
    if stop:
        raise StopRequested(f"stopped by Ctrl-C at step {step}")
