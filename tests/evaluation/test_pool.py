"""The opponent pool: bounded, newest kept, sampled uniformly or by nearest rating."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from keisei.checkpoint import CheckpointStore, TrainingState
from keisei.evaluation.during_training.pool import OpponentPool


def write_checkpoints(root: Path, steps: list[int]) -> Path:
    directory = root / "run" / "checkpoints"
    model = torch.nn.Linear(2, 2)
    with CheckpointStore(directory, keep_last=len(steps)) as store:
        for step in steps:
            store.save(TrainingState(step=step, model=model), wait=True)
    return directory


def test_the_pool_keeps_the_newest_checkpoints_older_than_the_agent(tmp_path: Path):
    directory = write_checkpoints(tmp_path, [100, 200, 300, 400, 500])
    pool = OpponentPool(3)
    pool.refresh(directory, before_step=500)
    assert [m.step for m in pool.members] == [200, 300, 400]
    assert pool.members[0].name == "run/step_000000200"


def test_vanished_checkpoints_leave_the_pool(tmp_path: Path):
    directory = write_checkpoints(tmp_path, [100, 200])
    pool = OpponentPool(5)
    pool.refresh(directory)
    for path in (directory / "step_000000100").iterdir():
        path.unlink()
    (directory / "step_000000100").rmdir()
    pool.refresh(directory)
    assert [m.step for m in pool.members] == [200]


def test_uniform_sampling_is_distinct_and_seeded(tmp_path: Path):
    directory = write_checkpoints(tmp_path, [100, 200, 300, 400])
    picks = []
    for _ in range(2):
        pool = OpponentPool(4, "uniform", np.random.default_rng(3))
        pool.refresh(directory)
        picks.append([m.step for m in pool.sample(2)])
    assert picks[0] == picks[1]
    assert len(set(picks[0])) == 2
    assert pool.sample(10) and len(pool.sample(10)) == 4


def test_nearest_sampling_prefers_unrated_then_closest_rating(tmp_path: Path):
    directory = write_checkpoints(tmp_path, [100, 200, 300, 400])
    pool = OpponentPool(4, "nearest")
    pool.refresh(directory)
    ratings = {"run/step_000000100": 0.0, "run/step_000000200": 150.0,
               "run/step_000000300": 320.0}  # fmt: skip
    chosen = pool.sample(2, ratings=ratings, current_rating=300.0)
    assert [m.step for m in chosen] == [400, 300]  # 400 has never played; 300 is nearest
