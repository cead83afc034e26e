"""Save then load restores a run exactly: weights, optimizer, scheduler, scaler, RNG, metadata."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from keisei.checkpoint import (
    CheckpointError,
    CheckpointStore,
    LoadedCheckpoint,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)
from keisei.config import CheckpointConfig
from tests.checkpoint.helpers import (
    ARCHITECTURE,
    assert_same_tensors,
    make_state,
    make_training,
    optimizer_tensors,
    train_step,
)


@pytest.mark.parametrize("async_save", [True, False])
def test_round_trip_restores_model_and_optimizer_bitwise(tmp_path: Path, async_save: bool) -> None:
    model, optimizer, scheduler = make_training(seed=0)
    for seed in range(3):
        train_step(model, optimizer, scheduler, seed)
    with CheckpointStore(tmp_path, async_save=async_save) as store:
        path = store.save(make_state(30, model, optimizer, scheduler))
    assert path == tmp_path / "step_000000030"

    checkpoint = CheckpointStore(tmp_path).load_latest()
    fresh_model, fresh_optimizer, fresh_scheduler = make_training(seed=99)
    checkpoint.restore(fresh_model, fresh_optimizer, fresh_scheduler, architecture=ARCHITECTURE)

    assert_same_tensors(fresh_model.state_dict(), model.state_dict())
    assert_same_tensors(optimizer_tensors(fresh_optimizer), optimizer_tensors(optimizer))
    assert fresh_optimizer.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]
    assert fresh_scheduler.state_dict() == scheduler.state_dict()

    # The next step of the resumed run is bitwise the step the original run takes.
    for seed in (7, 8, 9):
        train_step(model, optimizer, scheduler, seed)
        train_step(fresh_model, fresh_optimizer, fresh_scheduler, seed)
    assert_same_tensors(fresh_model.state_dict(), model.state_dict())
    assert_same_tensors(optimizer_tensors(fresh_optimizer), optimizer_tensors(optimizer))
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()


def test_one_checkpoint_restores_independent_optimizers(tmp_path: Path) -> None:
    """Restoring twice from one loaded checkpoint gives two optimizers that share no state."""
    model, optimizer, scheduler = make_training()
    train_step(model, optimizer, scheduler)
    with CheckpointStore(tmp_path, async_save=False) as store:
        store.save(make_state(1, model, optimizer, scheduler))
    checkpoint = store.load_latest()
    runs = []
    for _ in range(2):
        other_model, other_optimizer, other_scheduler = make_training(seed=4)
        checkpoint.restore(other_model, other_optimizer, other_scheduler, rng=False)
        runs.append((other_model, other_optimizer, other_scheduler))
    for seed in (3, 4):
        for run in runs:
            train_step(*run, seed=seed)
        train_step(model, optimizer, scheduler, seed)
    for other_model, other_optimizer, _ in runs:
        assert_same_tensors(other_model.state_dict(), model.state_dict())
        assert_same_tensors(optimizer_tensors(other_optimizer), optimizer_tensors(optimizer))
    fresh, fresh_optimizer, _ = make_training()
    checkpoint.restore_optimizer(fresh_optimizer)  # the checkpoint itself was not changed
    assert int(fresh_optimizer.state_dict()["state"][0]["step"]) == 1


def test_metadata_round_trips_with_types(tmp_path: Path) -> None:
    model, optimizer, scheduler = make_training()
    callback_state = {
        "CheckpointCallback": {"schedule": {"next": 400}, "last_saved_step": None},
        "Eval": {"best": float("-inf"), "history": (1, 2.5), "by_step": {100: "a", 200: "b"}},
    }
    extra = {"config": {"training": {"seed": 3}}, "name": "run-1"}
    with CheckpointStore(tmp_path, async_save=False) as store:
        state = make_state(123, model, optimizer, scheduler, metrics={"evaluation/elo": 1510.5})
        state.callback_state = callback_state
        state.extra = extra
        store.save(state)
    checkpoint = load_checkpoint(tmp_path / "step_000000123")
    assert checkpoint.step == 123
    assert checkpoint.counters == {"episodes": 12, "black_wins": 1, "white_wins": 2, "draws": 3}
    assert checkpoint.callback_state == callback_state
    assert checkpoint.extra == extra
    assert checkpoint.config_hash == "c0ffee"
    assert checkpoint.architecture == ARCHITECTURE
    assert checkpoint.metrics == {"evaluation/elo": 1510.5}
    assert checkpoint.manifest["format_version"] == 2
    assert set(checkpoint.manifest["files"]) == {"model.safetensors", "optimizer.safetensors"}


def test_async_save_snapshots_before_returning(tmp_path: Path) -> None:
    """The loop may change weights and optimizer state right after `save()` returns."""
    model, optimizer, scheduler = make_training()
    train_step(model, optimizer, scheduler)
    expected_model = {k: v.clone() for k, v in model.state_dict().items()}
    expected_optimizer = {k: v.clone() for k, v in optimizer_tensors(optimizer).items()}
    store = CheckpointStore(tmp_path, async_save=True)
    store.save(make_state(10, model, optimizer, scheduler))
    for seed in range(5):  # mutate while the write may still be in flight
        train_step(model, optimizer, scheduler, seed)
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(123.0)
    store.close()
    checkpoint = store.load("step_000000010")
    assert_same_tensors(checkpoint.model_state, expected_model)
    restored_model, restored_optimizer, _ = make_training()
    checkpoint.restore_optimizer(restored_optimizer)
    assert_same_tensors(optimizer_tensors(restored_optimizer), expected_optimizer)


def test_next_save_waits_for_the_write_in_flight(tmp_path: Path) -> None:
    model, optimizer, scheduler = make_training()
    store = CheckpointStore(tmp_path, keep_last=10)
    for step in range(1, 6):
        train_step(model, optimizer, scheduler, step)
        store.save(make_state(step, model, optimizer, scheduler))
        assert store.pending in (None, f"step_{step:09d}")
        assert len(store.checkpoints()) >= step - 1  # the previous one is committed
    store.flush()
    assert store.pending is None
    assert [p.name for p in store.checkpoints()] == [f"step_{s:09d}" for s in range(1, 6)]
    assert (tmp_path / "latest").read_text().strip() == "step_000000005"
    store.close()
    store.close()  # idempotent
    with pytest.raises(CheckpointError, match="closed"):
        store.save(make_state(6, model))


def test_wait_true_commits_before_returning(tmp_path: Path) -> None:
    model, optimizer, _ = make_training()
    store = CheckpointStore(tmp_path, async_save=True)
    path = store.save(make_state(5, model, optimizer), wait=True)
    assert (path / "manifest.json").is_file()
    assert store.pending is None
    store.close()


def test_model_only_and_fresh_optimizer_checkpoints(tmp_path: Path) -> None:
    model, optimizer, _ = make_training()
    with CheckpointStore(tmp_path, async_save=False) as store:
        store.save(make_state(1, model))  # no optimizer at all
        store.save(make_state(2, model, optimizer))  # optimizer before its first step
    only_model = load_checkpoint(tmp_path / "step_000000001")
    assert set(only_model.manifest["files"]) == {"model.safetensors"}
    other, other_optimizer, _ = make_training(seed=5)
    only_model.restore_model(other)
    assert_same_tensors(other.state_dict(), model.state_dict())
    with pytest.raises(CheckpointError, match="no optimizer state"):
        only_model.restore_optimizer(other_optimizer)
    load_checkpoint(tmp_path / "step_000000002").restore_optimizer(other_optimizer)
    assert other_optimizer.state_dict() == optimizer.state_dict()


def test_sgd_momentum_and_grad_scaler_round_trip(tmp_path: Path) -> None:
    model, _, _ = make_training()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)
    for seed in range(3):
        optimizer.zero_grad()
        batch = torch.randn(4, 6, generator=torch.Generator().manual_seed(seed))
        scaler.scale(model(batch).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
    with CheckpointStore(tmp_path, async_save=False) as store:
        state = make_state(3, model, optimizer)
        state.scaler = scaler
        store.save(state)
    checkpoint = CheckpointStore(tmp_path).load_latest()
    other_model, _, _ = make_training(seed=3)
    other_optimizer = torch.optim.SGD(other_model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    other_scaler = torch.amp.GradScaler("cpu")
    checkpoint.restore(other_model, other_optimizer, scaler=other_scaler)
    assert other_scaler.state_dict() == scaler.state_dict()
    assert other_scaler.get_scale() == 1024.0 * 8
    assert_same_tensors(optimizer_tensors(other_optimizer), optimizer_tensors(optimizer))


def test_rng_states_are_restored(tmp_path: Path) -> None:
    model, optimizer, _ = make_training()
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    with CheckpointStore(tmp_path, async_save=False) as store:
        store.save(make_state(1, model, optimizer))

    def draw() -> tuple[list[float], list[float], list[float], torch.Tensor]:
        return (
            [random.random() for _ in range(3)],
            list(np.random.normal(size=3)),  # uses the cached Gaussian too
            [random.gauss(0, 1) for _ in range(3)],
            torch.randn(5),
        )

    expected = draw()
    random.seed(100)
    np.random.seed(100)
    torch.manual_seed(100)
    load_checkpoint(tmp_path / "step_000000001").restore_rng()
    got = draw()
    assert got[:3] == expected[:3]
    assert torch.equal(got[3], expected[3])


def test_rng_capture_restore_round_trip_directly() -> None:
    np.random.normal()  # leaves a cached Gaussian
    state = capture_rng_state()
    first = (random.random(), np.random.normal(), torch.rand(2))
    restore_rng_state(state)
    second = (random.random(), np.random.normal(), torch.rand(2))
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
    assert state["torch_cuda"] is None or isinstance(state["torch_cuda"], list)


def test_from_config(tmp_path: Path) -> None:
    cfg = CheckpointConfig(
        keep_last=2, keep_every_timesteps=100, best_metric="elo", async_save=False
    )
    store = CheckpointStore.from_config(cfg, tmp_path)
    assert store.policy.keep_last == 2
    assert store.policy.keep_every == 100
    assert store.policy.best_metric == "elo"
    assert store.async_save is False
    assert store.directory == tmp_path


def test_state_saver_adapts_to_the_callback_protocol(tmp_path: Path) -> None:
    model, optimizer, _ = make_training()
    with CheckpointStore(tmp_path) as store:
        saver = store.saver(lambda step: make_state(step, model, optimizer))
        path = saver.save(40, wait=True)
        assert (path / "manifest.json").is_file()
        bad = store.saver(lambda step: make_state(step + 1, model, optimizer))
        with pytest.raises(CheckpointError, match="asked to save step 7"):
            bad.save(7)
    assert isinstance(store.load("latest"), LoadedCheckpoint)


def test_json_only_fields_reject_tensors_before_anything_is_written(tmp_path: Path) -> None:
    model, optimizer, _ = make_training()
    store = CheckpointStore(tmp_path)
    state = make_state(1, model, optimizer)
    state.callback_state = {"bad": torch.zeros(2)}
    with pytest.raises(CheckpointError, match="callback_state/bad"):
        store.save(state)
    state.callback_state = {"bad": object()}
    with pytest.raises(CheckpointError, match="callback_state/bad"):
        store.save(state)
    store.close()
    assert not tmp_path.exists() or store.checkpoints() == []
