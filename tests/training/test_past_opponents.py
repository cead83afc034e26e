"""Training with `selfplay.past_opponent_share`: the opponent comes from the run's checkpoints,
stays frozen, and a resumed run plays exactly as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import torch

from keisei.checkpoint import load_model_weights, read_manifest, resolve_checkpoint
from keisei.log import read_metrics
from keisei.training.run_dir import RunPlan, plan_run
from keisei.training.trainer import Trainer
from tests.support.tiny_config import TINY

VERSUS = ["selfplay.past_opponent_share=0.5", "training.total_timesteps=384"]


def plan(tmp_path: Path, name: str, *extra: str, resume: str | None = None) -> RunPlan:
    return plan_run(None, [*TINY, *VERSUS, f"logging.model_dir={tmp_path}", *extra], name, resume)


def test_versus_games_play_a_frozen_checkpoint_of_the_run(tmp_path: Path):
    trainer = Trainer(plan(tmp_path, "versus"))
    trainer.train()
    versus = trainer.collector.versus
    assert versus.count == 2  # half of env.num_envs = 4
    assert versus.opponent_name in ("step_000000128", "step_000000256")
    assert versus.opponent is not None
    saved = load_model_weights(tmp_path / "versus" / "checkpoints" / versus.opponent_name)
    for key, value in versus.opponent.state_dict().items():
        assert torch.equal(value, saved[key]), key  # never trained
    assert not any(p.requires_grad for p in versus.opponent.parameters())
    learner = trainer.model.state_dict()
    assert any(not torch.equal(learner[k], saved[k]) for k in saved)
    rows = read_metrics(tmp_path / "versus" / "metrics.jsonl")
    assert any("selfplay/past_opponent_games" in row for row in rows)
    manifest = read_manifest(resolve_checkpoint(tmp_path / "versus"))
    assert manifest["extra"]["past_opponents"]["opponent"] == versus.opponent_name


def test_resume_with_past_opponents_is_bitwise_exact(tmp_path: Path):
    straight = Trainer(plan(tmp_path, "straight"))
    straight.train()
    first = Trainer(plan(tmp_path, "halves", "training.total_timesteps=192"))
    first.train()
    resumed = Trainer(plan(tmp_path, "halves", resume="latest"))
    assert resumed.global_timestep == 192
    assert resumed.collector.versus.opponent_name == first.collector.versus.opponent_name
    resumed.train()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert straight.stats.state_dict() == resumed.stats.state_dict()
    assert straight.collector.versus.opponent_name == resumed.collector.versus.opponent_name
