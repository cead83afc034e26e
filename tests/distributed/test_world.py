"""The parts of distributed training that need no second process: what divides among ranks,
the GPU check, the guard on collectives in rank-zero work, and summing game statistics."""

from __future__ import annotations

import re

import pytest
import torch

from keisei.config import Config, ConfigError, check_world_size
from keisei.rl.rollout import GameStats
from keisei.training.distributed import (
    CollectiveInRankZeroWork,
    World,
    check_devices_for_ranks,
    rank_zero_work,
)


def config(**sections: dict) -> Config:
    return Config.model_validate(sections)


def test_global_settings_that_divide_among_the_ranks_pass():
    check_world_size(Config(), 1)
    check_world_size(Config(), 2)  # 2048 plies: 1024 per rank, 32 per game; minibatch 128
    check_world_size(config(training={"steps_per_epoch": 4096}, env={"num_envs": 64}), 4)


@pytest.mark.parametrize(
    ("sections", "ranks", "key"),
    [
        ({}, 3, "'training.steps_per_epoch' = 2048 does not divide among 3 ranks"),
        ({"env": {"num_envs": 2048}}, 2, "'env.num_envs' = 2048 (per rank) does not divide"),
        ({"ppo": {"minibatch_size": 250}, "training": {"steps_per_epoch": 2000},
          "env": {"num_envs": 25}}, 8, "'ppo.minibatch_size' = 250 does not divide among 8"),
    ],
)  # fmt: skip
def test_global_settings_that_do_not_divide_name_the_key(sections: dict, ranks: int, key: str):
    with pytest.raises(ConfigError, match=re.escape(key)):
        check_world_size(config(**sections), ranks)


def test_more_local_ranks_than_gpus_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_devices_for_ranks(config(training={"device": "cuda"}), 1)
    with pytest.raises(ConfigError, match="2 ranks on this machine but it has 1 CUDA device"):
        check_devices_for_ranks(config(training={"device": "auto"}), 2)
    with pytest.raises(ConfigError, match="names one GPU, but 2 ranks run here"):
        check_devices_for_ranks(config(training={"device": "cuda:0"}), 2)
    assert not check_devices_for_ranks(config(training={"device": "cpu"}), 8)


def test_a_collective_inside_rank_zero_work_is_refused_at_once():
    world = World()
    assert world.all_gather(3, "a test") == [3]
    with rank_zero_work("Probe.on_step_end"):
        with pytest.raises(CollectiveInRankZeroWork, match="inside Probe.on_step_end"):
            world.all_gather(3, "a test")
        with pytest.raises(CollectiveInRankZeroWork):
            world.broadcast_from_main(3, "a test")
    assert world.gather_to_main(3, "a test") == [3]  # allowed again outside


def test_game_statistics_of_several_ranks_sum():
    a, b = GameStats(), GameStats()
    a.add(0, "checkmate", 50)
    a.add(-1, "max_plies", 512)
    b.add(1, "checkmate", 70)
    total = GameStats.merged([a, b])
    assert (total.games, total.black_wins, total.white_wins, total.draws) == (3, 1, 1, 1)
    assert total.total_plies == 632
    assert total.reasons == {"checkmate": 2, "max_plies": 1}
    assert sorted(total.recent_lengths) == [50, 70, 512]
    assert total.recent_decisive_share == pytest.approx(2 / 3)


@pytest.mark.parametrize("name", ["default.yaml", "cpu-1h.yaml", "gpu-small.yaml", "gpu.yaml"])
def test_shipped_configs_divide_among_2_4_and_8_ranks(name: str):
    from pathlib import Path

    from keisei.config import load_config

    shipped = load_config(Path(__file__).resolve().parents[2] / "configs" / name)
    for ranks in (2, 4, 8):
        check_world_size(shipped, ranks)
