"""The self-play PPO trainer end to end: schedule, resume equivalence, failures, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from keisei.checkpoint import CheckpointStore, load_model_weights
from keisei.config import load_config
from keisei.log import read_metrics
from keisei.training.callbacks import Callback, CriticalCallbackError, TrainerView
from keisei.training.run_dir import RunPlan, plan_run
from keisei.training.trainer import Trainer
from tests.support.tiny_config import TINY


def tiny_plan(tmp_path: Path, name: str, *extra: str, resume: str | None = None) -> RunPlan:
    overrides = [*TINY, f"logging.model_dir={tmp_path}", *extra]
    return plan_run(None, overrides, name, resume)


class StepLog(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.episodes: list[int] = []

    def on_step_end(self, trainer: TrainerView) -> None:
        self.steps.append(trainer.global_timestep)
        self.episodes.append(trainer.total_episodes_completed)


def test_tiny_run_trains_end_to_end_with_checkpoints_on_schedule(tmp_path: Path):
    plan = tiny_plan(tmp_path, "tiny", "logging.tensorboard=true")
    trainer = Trainer(plan)
    log = StepLog()
    trainer.manager.add_callback(log)
    summary = trainer.train()

    assert log.steps == [64, 128, 192, 256]
    assert log.episodes[-1] > 0  # 40-ply games finished along the way
    checkpoints = sorted(p.name for p in (plan.run_dir / "checkpoints").glob("step_*"))
    assert checkpoints == ["step_000000128", "step_000000256"]
    assert summary.final_checkpoint == plan.run_dir / "checkpoints" / "step_000000256"
    records = read_metrics(plan.run_dir / "metrics.jsonl")
    updates = [r for r in records if "ppo/policy_loss" in r]
    assert [r["step"] for r in updates] == [64, 128, 192, 256]
    for key in (
        "ppo/value_loss",
        "ppo/entropy",
        "ppo/approx_kl",
        "ppo/clip_fraction",
        "ppo/explained_variance",
        "ppo/learning_rate",
        "ppo/grad_norm",
    ):
        assert key in updates[-1]
    assert (plan.run_dir / "config.yaml").is_file()
    log_text = (plan.run_dir / "train.log").read_text()
    assert "checkpoint saved: " in log_text and "step_000000128" in log_text
    assert "final checkpoint" not in log_text  # step 256 was saved on schedule, not again
    assert "is not a multiple of" not in log_text
    assert list((plan.run_dir / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "setting",
    ["ppo.amp=off", "ppo.amp=bf16", "selfplay.playouts=4"],
    ids=["float32", "bf16", "search-improved"],
)
def test_resume_gives_bitwise_identical_weights(tmp_path: Path, setting: str):
    straight = Trainer(tiny_plan(tmp_path, "straight", setting))
    straight.train()

    first_half = Trainer(tiny_plan(tmp_path, "halves", setting, "training.total_timesteps=128"))
    first_half.train()
    resumed = Trainer(
        tiny_plan(tmp_path, "halves", setting, "training.total_timesteps=256", resume="latest")
    )
    assert resumed.global_timestep == 128
    resumed.train()

    a = straight.model.state_dict()
    b = resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert straight.stats.state_dict() == resumed.stats.state_dict()
    on_disk = load_model_weights(tmp_path / "halves" / "checkpoints" / "step_000000256")
    for key in a:
        assert torch.equal(a[key], on_disk[key]), key


def test_a_failing_callback_does_not_stop_training(tmp_path: Path):
    class Broken(Callback):
        def on_step_end(self, trainer: TrainerView) -> None:
            raise RuntimeError("broken callback")

    plan = tiny_plan(tmp_path, "broken", "training.total_timesteps=128")
    trainer = Trainer(plan)
    trainer.manager.add_callback(Broken())
    summary = trainer.train()
    assert summary.final_step == 128
    text = (plan.run_dir / "train.log").read_text()
    assert "callback Broken failed in on_step_end at step 64" in text
    assert "RuntimeError: broken callback" in text


class Lifecycle(Callback):
    """Counts the teardown hooks it hears."""

    def __init__(self) -> None:
        super().__init__()
        self.exceptions: list[BaseException] = []
        self.closed = 0

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        self.exceptions.append(exc)

    def close(self) -> None:
        self.closed += 1


def test_a_critical_failure_stops_training_with_one_teardown_and_a_final_checkpoint(
    tmp_path: Path,
):
    class Fatal(Callback):
        critical = True

        def on_step_end(self, trainer: TrainerView) -> None:
            if trainer.global_timestep == 192:
                raise RuntimeError("fatal")

    plan = tiny_plan(tmp_path, "fatal")
    trainer = Trainer(plan)
    lifecycle = Lifecycle()
    trainer.manager.add_callback(lifecycle)
    trainer.manager.add_callback(Fatal())
    expected = "Fatal failed in on_step_end at step 192"
    with pytest.raises(CriticalCallbackError, match=expected) as info:
        trainer.train()
    assert isinstance(info.value.__cause__, RuntimeError)
    assert lifecycle.exceptions == [info.value]  # told once, by the trainer's teardown path
    assert lifecycle.closed == 1
    # Stopped at an epoch boundary: the final checkpoint is clean, so `latest` names it.
    checkpoint = CheckpointStore(plan.run_dir / "checkpoints").load_latest()
    assert checkpoint.step == 192
    assert checkpoint.manifest["clean"] is True
    assert "CriticalCallbackError" in checkpoint.manifest["failure"]


def test_bad_config_fails_before_any_work(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "keisei.cli", "train", "--no-live", "--run-name", "bad",
         "--set", f"logging.model_dir={tmp_path}", "--set", "training.steps_per_epoch=0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "'training.steps_per_epoch' = 0" in result.stderr
    assert not (tmp_path / "bad").exists()


def test_ctrl_c_leaves_a_loadable_final_checkpoint(tmp_path: Path):
    overrides = [*TINY, f"logging.model_dir={tmp_path}", "training.total_timesteps=100000000"]
    command = [sys.executable, "-m", "keisei.cli", "train", "--no-live", "--run-name", "sigint"]
    for override in overrides:
        command += ["--set", override]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    metrics = tmp_path / "sigint" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().count("ppo/policy_loss") >= 2):
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "resume with: keisei train --resume" in output
    checkpoint = CheckpointStore(tmp_path / "sigint" / "checkpoints").load_latest()
    assert checkpoint.step >= 128
    assert checkpoint.step % 64 == 0  # stopped cleanly at an epoch boundary
    config = load_config(tmp_path / "sigint" / "config.yaml")
    assert config.training.steps_per_epoch == 64
