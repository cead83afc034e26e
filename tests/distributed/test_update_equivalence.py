"""One PPO update with 2 ranks, each on half of a fixed rollout, gives the weights of 1 rank on
the whole rollout: gradients are averaged and advantages normalised over both halves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from keisei.rl.ppo import PPO
from keisei.training.ranks.launch import free_port
from tests.support.ppo_rank import CONFIG, fixed_rollout, fresh_model
from tests.support.ranks import keisei_env


def test_two_ranks_on_halves_update_like_one_rank_on_the_whole(tmp_path: Path):
    port = str(free_port())
    ranks = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.ppo_rank", str(tmp_path)],
            env=keisei_env(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=port),  # fmt: skip
        )
        for rank in range(2)
    ]
    assert [rank.wait(timeout=120) for rank in ranks] == [0, 0]

    model = fresh_model()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    PPO(model, CONFIG, total_updates=1, device=torch.device("cpu")).update(fixed_rollout())
    whole = model.state_dict()
    rank0 = load_file(str(tmp_path / "rank0.safetensors"))
    rank1 = load_file(str(tmp_path / "rank1.safetensors"))
    for key, value in whole.items():
        assert torch.equal(rank0[key], rank1[key]), key  # the ranks agree exactly
        torch.testing.assert_close(rank0[key], value, rtol=1e-4, atol=1e-6, msg=key)
    moved = sum(not torch.equal(initial[k], whole[k]) for k in whole)
    assert moved >= len(whole) // 2  # the update really changed the weights

