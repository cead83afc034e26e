"""One rank that joins the world as `keisei train` does, runs a PPO update over DDP and leaves
the world (`World.close`), then writes the names of its process's threads to
`OUT/rank<r>.json` (`python -m tests.support.closing_rank OUT`, with the torch.distributed
environment set)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from keisei.config import Config
from keisei.rl.ppo import PPO
from keisei.training.distributed import join_world
from tests.support.ppo_rank import CONFIG, fixed_rollout, fresh_model, half


def thread_names() -> list[str]:
    """The names of this process's threads, native ones included (Linux)."""
    return sorted(path.read_text().strip() for path in Path("/proc/self/task").glob("*/comm"))


def train_and_close(world_size: int) -> None:
    world = join_world(Config.model_validate({"distributed": {"timeout_s": 60}}))
    ppo = PPO(fresh_model(), CONFIG, 1, torch.device("cpu"), world_size)
    ppo.update(half(fixed_rollout(), world.rank))
    del ppo  # as `keisei train` lets go of its trainer before it leaves the world
    world.close()


def main(out: Path) -> None:
    train_and_close(int(os.environ["WORLD_SIZE"]))
    rank = os.environ["RANK"]
    (out / f"rank{rank}.json").write_text(json.dumps(thread_names()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
