"""The callbacks every run gets from its config: the checkpoint callback, and evaluation (in the
training process, or in async mode in a background process) when periodic evaluation is on."""

from __future__ import annotations

from pathlib import Path

from keisei.config import Config, EvaluationConfig
from keisei.training.callback_system.base import AsyncCallback, Callback
from keisei.training.callback_system.checkpoint import CheckpointCallback
from keisei.training.callback_system.evaluation import AsyncEvaluationCallback, EvaluationCallback


def default_callbacks(
    config: Config, model_dir: Path, *, checkpoint_interval: int, evaluation_interval: int
) -> list[Callback]:
    """A checkpoint callback, after a sync evaluation callback when periodic evaluation is on
    and not in async mode."""
    new: list[Callback] = [
        CheckpointCallback(
            checkpoint_interval, model_dir, max_failures=config.checkpoint.max_failures
        )
    ]
    evaluation = config.evaluation
    if evaluation.enable_periodic_evaluation and not evaluation.async_mode:
        new.insert(0, EvaluationCallback(evaluation_interval))
    return new


def default_async_callbacks(config: Config, *, evaluation_interval: int) -> list[AsyncCallback]:
    """Background evaluation when periodic evaluation is on in async mode; else none."""
    evaluation = config.evaluation
    if evaluation.enable_periodic_evaluation and evaluation.async_mode:
        return [async_evaluation_callback(evaluation, evaluation_interval)]
    return []


def async_evaluation_callback(
    evaluation: EvaluationConfig, interval: int
) -> AsyncEvaluationCallback:
    """Background evaluation every `interval` steps, as the evaluation settings say."""
    return AsyncEvaluationCallback(
        interval,
        policy=evaluation.async_policy,
        queue_size=evaluation.async_queue_size,
        shutdown_timeout_s=evaluation.async_shutdown_timeout_s,
    )
