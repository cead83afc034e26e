"""A second Ctrl-C during the PPO update: no checkpoint claims the new step, `latest` stays on the
last clean checkpoint, and `--resume latest` ends bitwise equal to an uninterrupted run."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from keisei.checkpoint import CheckpointStore, load_checkpoint, read_manifest
from keisei.log import read_metrics
from keisei.training.run_dir import RunPlan, plan_run
from keisei.training.trainer import Trainer
from tests.support.tiny_config import TINY


def tiny_plan(tmp_path: Path, name: str, *extra: str, resume: str | None = None) -> RunPlan:
    return plan_run(None, [*TINY, f"logging.model_dir={tmp_path}", *extra], name, resume)


def press_ctrl_c_twice_during_update(trainer: Trainer, *, update: int, after_steps: int) -> None:
    """Make the optimizer deliver two real SIGINTs to this process in the middle of the
    `update`-th PPO update (1-based), after `after_steps` optimizer steps of it."""
    optimizer = trainer.ppo.optimizer
    original: Callable[..., Any] = optimizer.step
    calls = {"steps": 0}
    steps_per_update = trainer.config.ppo.update_epochs * (
        trainer.config.training.steps_per_epoch // trainer.config.ppo.minibatch_size
    )
    target = (update - 1) * steps_per_update + after_steps

    def step(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        calls["steps"] += 1
        if calls["steps"] == target:
            os.kill(os.getpid(), signal.SIGINT)  # first press: stop at the end of the epoch
            os.kill(os.getpid(), signal.SIGINT)  # second press: stop now, mid-update
        return result

    optimizer.step = step  # type: ignore[method-assign]


def test_second_ctrl_c_during_the_update_then_resume_latest_is_bitwise_exact(tmp_path: Path):
    straight = Trainer(tiny_plan(tmp_path, "straight"))
    straight.train()

    interrupted = Trainer(tiny_plan(tmp_path, "crash"))
    # Epoch 4 runs from step 192 to 256; the checkpoint of step 128 is the last clean one.
    press_ctrl_c_twice_during_update(interrupted, update=4, after_steps=1)
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    assert interrupted.global_timestep == 192  # the half-done update did not advance it

    store_dir = tmp_path / "crash" / "checkpoints"
    assert (store_dir / "latest").read_text().strip() == "step_000000128"
    assert not (store_dir / "step_000000256").exists()
    # The state after the failure is kept for inspection, named so nothing mistakes it for a
    # resume point, and marked in its manifest.
    salvage = store_dir / "step_000000192-interrupted"
    manifest = read_manifest(salvage)
    assert manifest["clean"] is False and manifest["step"] == 192
    assert "KeyboardInterrupt" in manifest["failure"]
    assert load_checkpoint(salvage).step == 192
    assert CheckpointStore(store_dir).load_latest().step == 128

    resumed = Trainer(tiny_plan(tmp_path, "crash", resume="latest"))
    assert resumed.global_timestep == 128
    resumed.train()
    expected = straight.model.state_dict()
    actual = resumed.model.state_dict()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    assert straight.stats.state_dict() == resumed.stats.state_dict()


def test_ctrl_c_once_stops_at_the_epoch_boundary_with_a_clean_latest(tmp_path: Path):
    trainer = Trainer(tiny_plan(tmp_path, "once"))
    optimizer = trainer.ppo.optimizer
    original = optimizer.step
    calls = {"steps": 0}

    def step(*args: Any, **kwargs: Any) -> Any:
        calls["steps"] += 1
        if calls["steps"] == 10:  # during the third update (four optimizer steps each)
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    optimizer.step = step  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert trainer.global_timestep == 192  # the epoch was finished first
    checkpoint = CheckpointStore(tmp_path / "once" / "checkpoints").load_latest()
    assert checkpoint.step == 192
    assert checkpoint.manifest["clean"] is True
    assert "StopRequested" in checkpoint.manifest["failure"]


def test_metrics_past_the_resumed_checkpoint_are_dropped_so_no_step_appears_twice(
    tmp_path: Path,
):
    overrides = ("logging.tensorboard=true",)
    interrupted = Trainer(tiny_plan(tmp_path, "metrics", *overrides))
    press_ctrl_c_twice_during_update(interrupted, update=4, after_steps=1)
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    run = tmp_path / "metrics"
    before = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "ppo/policy_loss" in r]
    assert before == [64, 128, 192]  # 192 came after the checkpoint of 128

    Trainer(tiny_plan(tmp_path, "metrics", *overrides, resume="latest")).train()

    after = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "ppo/policy_loss" in r]
    assert after == [64, 128, 192, 256]
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("ppo/policy_loss")] == [64, 128, 192, 256]
