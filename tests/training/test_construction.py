"""Building a `Trainer` has no side effects until the run is known to be good: a failed resume
leaves the run directory as it was and starts no process; shipped configs follow their own
alignment rule."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path

import pytest

from keisei.checkpoint import CheckpointMismatchError
from keisei.config import Config, load_config
from keisei.training.callback_manager import CallbackManager
from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer
from tests.support.tiny_config import TINY

REPO = Path(__file__).resolve().parents[2]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}  # fmt: skip


def test_a_failed_resume_changes_no_file_and_starts_no_worker(tmp_path: Path):
    base = [*TINY, f"logging.model_dir={tmp_path}", "training.total_timesteps=128"]
    Trainer(plan_run(None, base, "run", None)).train()
    before = snapshot(tmp_path / "run")
    handlers = list(logging.getLogger("keisei").handlers)
    children = set(multiprocessing.active_children())

    wrong = plan_run(
        None,
        [*base, "model.channels=16", "evaluation.enable_periodic_evaluation=true",
         "evaluation.async_mode=true", "training.total_timesteps=256"],
        "run",
        "latest",
    )  # fmt: skip
    with pytest.raises(CheckpointMismatchError, match="channels"):
        Trainer(wrong)

    assert snapshot(tmp_path / "run") == before  # config.yaml, train.log, metrics untouched
    assert logging.getLogger("keisei").handlers == handlers  # no log file handler left behind
    assert set(multiprocessing.active_children()) == children  # no evaluation worker started


@pytest.mark.parametrize(
    "preset", [None, "default.yaml", "cpu-1h.yaml", "gpu.yaml", "gpu-small.yaml"]
)
def test_shipped_configs_need_no_interval_rounding(
    preset: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    config = Config() if preset is None else load_config(REPO / "configs" / preset)
    caplog.set_level(logging.INFO, logger="keisei")
    manager = CallbackManager(config, tmp_path)
    manager.setup_default_callbacks()
    manager.setup_async_callbacks()
    assert "is not a multiple of" not in caplog.text
    assert config.training.total_timesteps % config.training.steps_per_epoch == 0
