"""Training callbacks: the classes to subclass, and the ones Keisei ships.

Subclass `Callback` (plain hooks) or `AsyncCallback` (coroutine hooks); the hooks, when each runs
and what it may return are described in `keisei.training.callback_system.base`, re-exported here.
The shipped callbacks: `CheckpointCallback` (the only writer of checkpoints), `EvaluationCallback`
(evaluates committed checkpoints in the training process) and `AsyncEvaluationCallback` (the same
in a background process, without making the loop wait). Their code lives in
`keisei.training.callback_system`; this module is where users import them from.
"""

from __future__ import annotations

from keisei.training.callback_system.base import (
    AsyncCallback,
    Callback,
    CheckpointSaver,
    CriticalCallbackError,
    Evaluator,
    Metrics,
    TrainerView,
    check_hooks,
)
from keisei.training.callback_system.checkpoint import CheckpointCallback
from keisei.training.callback_system.evaluation import AsyncEvaluationCallback, EvaluationCallback

__all__ = [
    "AsyncCallback",
    "AsyncEvaluationCallback",
    "Callback",
    "CheckpointCallback",
    "CheckpointSaver",
    "CriticalCallbackError",
    "EvaluationCallback",
    "Evaluator",
    "Metrics",
    "TrainerView",
    "check_hooks",
]
