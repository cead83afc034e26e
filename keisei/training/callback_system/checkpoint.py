"""The checkpoint callback: the only writer of checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keisei.checkpoint import CheckpointWriteError
from keisei.training.callback_system.base import Callback, CheckpointSaver, TrainerView
from keisei.training.schedule import EveryNSteps


class CheckpointCallback(Callback):
    """Saves a checkpoint every `interval` steps, and a final one when training stops.

    The only writer of checkpoints. The manager runs checkpoint callbacks after all others at
    the same step (so a checkpoint holds the freshest state of everything else), and also at a
    step where another callback asks for a checkpoint (`wants_checkpoint`). After a failure the
    final checkpoint is written at the last completed step; the trainer marks it in its manifest
    (see `Trainer`).

    A write that fails (a full disk, a read-only directory) is logged and tried again at the
    next due step with the state of then; after `max_failures` failures in a row training stops
    (`CheckpointWriteError`, naming the cause). A failing final checkpoint stops it at once.
    Critical: anything else going wrong here stops training too.
    """

    critical = True

    def __init__(
        self,
        interval: int,
        model_dir: str | Path | None = None,
        *,
        max_failures: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures}")
        self.schedule = EveryNSteps(interval)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.max_failures = max_failures
        self.last_saved_step: int | None = None
        self.failures_in_a_row = 0

    def _saver(self, trainer: TrainerView) -> CheckpointSaver:
        saver = trainer.checkpoint_saver
        if saver is None:
            raise RuntimeError(
                f"{self.name}: a checkpoint is due at step {trainer.global_timestep} but the "
                "trainer has no checkpoint saver"
            )
        return saver

    def _failed(self, trainer: TrainerView, error: CheckpointWriteError) -> None:
        self.failures_in_a_row += 1
        trainer.logger.error(
            "%s: %d checkpoint write(s) failed in a row (training stops at %d): %s",
            self.name,
            self.failures_in_a_row,
            self.max_failures,
            error,
        )
        if self.failures_in_a_row >= self.max_failures:
            raise CheckpointWriteError(
                f"{self.failures_in_a_row} checkpoint writes failed in a row; the last: {error}",
                name=error.name,
            ) from error

    def _account(self, saver: CheckpointSaver, trainer: TrainerView) -> None:
        """Count the writes that ended since the last look."""
        for outcome in saver.take_outcomes():
            if outcome.error is None:
                self.failures_in_a_row = 0
            else:
                self._failed(trainer, outcome.error)

    def _save_final(self, saver: CheckpointSaver, trainer: TrainerView) -> None:
        step = trainer.global_timestep
        path = saver.save(step, wait=True)  # a failure here stops training
        self.last_saved_step = step
        trainer.logger.info("final checkpoint for step %d: %s", step, path)

    def on_train_start(self, trainer: TrainerView) -> None:
        saver = trainer.checkpoint_saver  # after a resume, its own checkpoint need not be redone
        if saver is not None and saver.committed(trainer.global_timestep) is not None:
            self.last_saved_step = trainer.global_timestep

    def on_step_end(self, trainer: TrainerView) -> None:
        step = trainer.global_timestep
        saver = self._saver(trainer)
        self._account(saver, trainer)
        if self.last_saved_step == step:
            return
        try:
            saver.save(step)
        except CheckpointWriteError as error:  # a synchronous store fails at once
            self._failed(trainer, error)
            return
        self.last_saved_step = step

    def on_train_end(self, trainer: TrainerView) -> None:
        saver = self._saver(trainer)
        self._account(saver, trainer)
        if self.last_saved_step == trainer.global_timestep:
            try:
                saver.flush()  # the checkpoint of the last step must be on disk
                return
            except CheckpointWriteError as error:
                trainer.logger.error("%s: %s; trying once more", self.name, error)
        self._save_final(saver, trainer)

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        saver = trainer.checkpoint_saver
        if saver is None:
            return
        try:
            saver.flush()
        except CheckpointWriteError:  # already logged by the store; still worth a final try
            pass
        saver.take_outcomes()  # training stops anyway: no more counting
        step = trainer.global_timestep
        if self.last_saved_step == step and saver.committed(step) is not None:
            return
        self._save_final(saver, trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"last_saved_step": self.last_saved_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_saved_step = state.get("last_saved_step")
