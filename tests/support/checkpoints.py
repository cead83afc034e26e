"""A real checkpoint of a tiny untrained network, for tests that need a model on disk."""

from __future__ import annotations

from pathlib import Path

import torch

from keisei.checkpoint import CheckpointStore, TrainingState
from keisei.model import ActorCritic, Architecture

TINY = Architecture(blocks=1, channels=8, value_hidden=8)


def tiny_model(seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(TINY).eval()


def save_checkpoint(run_dir: Path, seed: int = 0, step: int = 10) -> Path:
    """A real checkpoint of an untrained tiny network under `run_dir/checkpoints`."""
    model = tiny_model(seed)
    store = CheckpointStore(run_dir / "checkpoints")
    store.save(
        TrainingState(step=step, model=model, architecture=model.architecture.to_dict()),
        wait=True,
    )
    store.close()
    return run_dir
