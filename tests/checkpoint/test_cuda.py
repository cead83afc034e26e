"""GPU training state: saved from CUDA tensors through pinned staging buffers, restored exactly.

Skipped without CUDA. The async snapshot must be complete before `save()` returns even though the
device-to-host copies are issued non-blocking, and CUDA random streams must resume.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from keisei.checkpoint import CheckpointStore, load_checkpoint
from keisei.checkpoint.snapshot import StagingBuffers, TrainingState, take_snapshot
from tests.checkpoint.helpers import (
    assert_same_tensors,
    make_state,
    make_training,
    optimizer_tensors,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _cuda_training(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model, _, _ = make_training(seed=seed, hidden=4096)
    model = model.cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, optimizer


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator(device="cuda").manual_seed(seed)
    batch = torch.randn(64, 6, device="cuda", generator=generator)
    optimizer.zero_grad()
    model(batch).square().mean().backward()
    optimizer.step()


def test_cuda_round_trip_is_bitwise_and_snapshot_is_isolated(tmp_path: Path) -> None:
    model, optimizer = _cuda_training(0)
    for seed in range(3):
        _step(model, optimizer, seed)
    expected_model = {k: v.cpu().clone() for k, v in model.state_dict().items()}
    # Adam's `step` stays on the CPU: clone, or the step below would change the expectation.
    expected_optimizer = {k: v.cpu().clone() for k, v in optimizer_tensors(optimizer).items()}
    store = CheckpointStore(tmp_path)
    store.save(make_state(3, model, optimizer))
    with torch.no_grad():  # queued right behind the non-blocking copies on the same stream
        for param in model.parameters():
            param.mul_(-3.0)
    _step(model, optimizer, 99)
    store.close()
    checkpoint = load_checkpoint(tmp_path / "step_000000003")
    assert_same_tensors(checkpoint.model_state, expected_model)

    fresh_model, fresh_optimizer = _cuda_training(1)
    checkpoint.restore_model(fresh_model)
    checkpoint.restore_optimizer(fresh_optimizer)
    assert_same_tensors({k: v.cpu() for k, v in fresh_model.state_dict().items()}, expected_model)
    restored = {k: v.cpu() for k, v in optimizer_tensors(fresh_optimizer).items()}
    assert_same_tensors(restored, expected_optimizer)
    assert all(p.is_cuda for p in fresh_model.parameters())

    reference_model, reference_optimizer = _cuda_training(2)
    checkpoint.restore_model(reference_model)
    checkpoint.restore_optimizer(reference_optimizer)
    for seed in (5, 6):
        _step(fresh_model, fresh_optimizer, seed)
        _step(reference_model, reference_optimizer, seed)
    assert_same_tensors(fresh_model.state_dict(), reference_model.state_dict())
    assert int(fresh_optimizer.state_dict()["state"][0]["step"]) == 5


def test_staging_buffers_are_pinned_and_reused() -> None:
    model, optimizer = _cuda_training(0)
    _step(model, optimizer, 0)
    buffers = StagingBuffers()
    first = take_snapshot(TrainingState(step=1, model=model, optimizer=optimizer), buffers)
    assert all(t.is_pinned() for t in first.model_tensors.values())
    second = take_snapshot(TrainingState(step=2, model=model, optimizer=optimizer), buffers)
    assert all(
        a.data_ptr() == b.data_ptr()
        for a, b in zip(first.model_tensors.values(), second.model_tensors.values(), strict=True)
    )


def test_cuda_random_streams_resume(tmp_path: Path) -> None:
    torch.cuda.manual_seed_all(7)
    torch.rand(3, device="cuda")
    model, optimizer = _cuda_training(0)
    with CheckpointStore(tmp_path, async_save=False) as store:
        store.save(make_state(1, model, optimizer))
    expected = torch.rand(5, device="cuda")
    torch.cuda.manual_seed_all(123)
    checkpoint = load_checkpoint(tmp_path / "step_000000001")
    assert checkpoint.manifest["rng"]["torch_cuda"] is not None
    checkpoint.restore_rng()
    assert torch.equal(torch.rand(5, device="cuda"), expected)
