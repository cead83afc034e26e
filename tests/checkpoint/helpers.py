"""Tiny real models and training states for the checkpoint tests (and their subprocesses)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from keisei.checkpoint import TrainingState

ARCHITECTURE = {"type": "mlp", "sizes": [6, 12, 3], "activation": ("relu", 1)}


class TinyNet(nn.Module):
    """A small MLP with a non-trainable buffer of another dtype and a 0-d buffer."""

    def __init__(self, hidden: int = 12) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Linear(hidden, 3))
        self.register_buffer("visits", torch.zeros(3, dtype=torch.int64))
        self.register_buffer("temperature", torch.tensor(1.0, dtype=torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.temperature.float()


def make_training(
    seed: int = 0, hidden: int = 12
) -> tuple[TinyNet, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    torch.manual_seed(seed)
    model = TinyNet(hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, scheduler


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    seed: int = 1,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    batch = torch.randn(5, 6, generator=generator)
    optimizer.zero_grad()
    model(batch).square().mean().backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    with torch.no_grad():
        model.visits += 1


def make_state(
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    **fields: object,
) -> TrainingState:
    return TrainingState(
        step=step,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        counters={"episodes": step // 10, "black_wins": 1, "white_wins": 2, "draws": 3},
        callback_state={"CheckpointCallback": {"last_saved_step": step}},
        config_hash="c0ffee",
        architecture=dict(ARCHITECTURE),
        **fields,  # type: ignore[arg-type]
    )


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    return {
        f"{index}/{key}": value
        for index, state in optimizer.state_dict()["state"].items()
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }


def fill_weights(model: nn.Module, step: int) -> None:
    """Deterministic weights for `step` (the kill test checks a checkpoint against them)."""
    generator = torch.Generator().manual_seed(step)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))


def expected_weights(model: nn.Module, step: int) -> dict[str, torch.Tensor]:
    fill_weights(model, step)
    return {key: value.clone() for key, value in model.state_dict().items()}


def leftovers(directory: Path) -> list[str]:
    """Temporary or half-deleted entries in a store directory."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """The manifest's own checksum as the format defines it, computed independently of Keisei:
    sha256 of the JSON without `manifest_sha256`, keys sorted, no spaces, ASCII, no NaN."""
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def edit_manifest(checkpoint: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change a checkpoint's manifest with `edit` and update its own checksum, if it has one (as
    a tool that knows the format would), so what is tested is the reader's other checks."""
    path = checkpoint / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    if "manifest_sha256" in manifest:
        manifest["manifest_sha256"] = manifest_sha256(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")
