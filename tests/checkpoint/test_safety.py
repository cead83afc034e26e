"""Names cannot escape the store; pickles never run; model-only loaders find checkpoints."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from keisei.checkpoint import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNameError,
    CheckpointStore,
    TrainingState,
    import_state_dict,
    load_checkpoint,
    load_model_weights,
    read_architecture,
    resolve_checkpoint,
    run_checkpoint_dir,
    validate_name,
)
from tests.checkpoint.helpers import ARCHITECTURE, assert_same_tensors, make_state, make_training

BAD_NAMES = ["", ".", "..", "../x", "a/b", "a\\b", "/abs", ".hidden", "a..b", "x\x00y", "a b", "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_rejected(name: str) -> None:
    with pytest.raises(CheckpointNameError):
        validate_name(name)
    with pytest.raises(CheckpointNameError, match="run name"):
        run_checkpoint_dir("runs", name)


@pytest.mark.parametrize("name", ["run-1", "2024-05-01_12.30", "A", "step_000000010"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name
    assert run_checkpoint_dir("runs", name) == Path("runs") / name / "checkpoints"


@pytest.mark.parametrize("name", ["../step_000000001", "..", ".tmp-x", "a\\..\\b"])
def test_store_load_refuses_names_that_leave_the_directory(tmp_path: Path, name: str) -> None:
    store = CheckpointStore(tmp_path / "store")
    with pytest.raises((CheckpointNameError, CheckpointError)):
        store.load(name)


@pytest.mark.parametrize("step", [-1, 1.5, True, "3"])
def test_bad_steps_are_rejected_before_writing(tmp_path: Path, step: object) -> None:
    model, _, _ = make_training()
    with CheckpointStore(tmp_path / "store") as store:
        with pytest.raises(CheckpointNameError):
            store.save(TrainingState(step=step, model=model))  # type: ignore[arg-type]
    assert not (tmp_path / "store").exists()


def test_the_store_writes_nowhere_but_its_directory(tmp_path: Path) -> None:
    model, optimizer, scheduler = make_training()
    store_dir = tmp_path / "run" / "checkpoints"
    with CheckpointStore(store_dir, keep_last=1) as store:
        for step in range(1, 4):
            store.save(make_state(step, model, optimizer, scheduler))
    everything = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    outside = {p for p in everything if p.parts[:2] != ("run", "checkpoints")}
    assert outside == {Path("run")}


class _Payload:
    """Unpickling this creates `marker`: proof that pickled code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _evil(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"weight": _Payload(marker)}))
    return path


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_crafted_pickles_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _evil(tmp_path / "probe.pkl", marker)
    pickle.loads((tmp_path / "probe.pkl").read_bytes())["weight"].close()
    assert marker.exists()  # the payload is real ...
    marker.unlink()  # ... and from here on must never run

    model, optimizer, _ = make_training()
    store_dir = tmp_path / "store"
    with CheckpointStore(store_dir, async_save=False) as store:
        store.save(make_state(1, model, optimizer))
        store.save(make_state(2, model, optimizer))
    newest = store_dir / "step_000000002"
    for name in ("model.pt", "optimizer.pt", "data.pkl", "rng_state.pth"):
        _evil(newest / name, marker)
        _evil(store_dir / name, marker)
    _evil(store_dir / "step_000000001" / "model.safetensors", marker)  # replace real weights

    assert CheckpointStore(store_dir).load_latest().step == 2
    load_model_weights(store_dir)
    read_architecture(store_dir / "latest")
    with pytest.raises(CheckpointCorruptError, match="model.safetensors"):
        load_checkpoint(store_dir / "step_000000001")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_model_weights(newest / "model.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        import_state_dict(store_dir / "rng_state.pth")
    (newest / "model.safetensors").write_bytes((newest / "model.pt").read_bytes())
    with pytest.raises(CheckpointCorruptError):
        CheckpointStore(store_dir).load("step_000000002")
    with pytest.raises(CheckpointCorruptError):
        load_model_weights(newest / "model.safetensors")  # a bare file: parsed, never unpickled
    assert not marker.exists()


def test_plain_state_dicts_import_with_weights_only(tmp_path: Path) -> None:
    model, _, _ = make_training()
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert_same_tensors(load_model_weights(tmp_path / "plain.pt"), model.state_dict())
    assert_same_tensors(load_model_weights(tmp_path / "wrapped.pth"), model.state_dict())
    with pytest.raises(CheckpointError, match="does not hold a state dict"):
        load_model_weights(tmp_path / "list.pt")
    save_file(dict(model.state_dict()), tmp_path / "bare.safetensors")
    assert_same_tensors(load_model_weights(tmp_path / "bare.safetensors"), model.state_dict())


def test_model_only_loaders_resolve_every_kind_of_path(tmp_path: Path) -> None:
    model, optimizer, _ = make_training()
    run_dir = tmp_path / "runs" / "run-1"
    store_dir = run_checkpoint_dir(tmp_path / "runs", "run-1")
    with CheckpointStore(store_dir, async_save=False) as store:
        store.save(make_state(10, model, optimizer))
        store.save(make_state(20, model, optimizer))
    newest = store_dir / "step_000000020"
    for path in (run_dir, store_dir, store_dir / "latest", newest, str(newest)):
        assert resolve_checkpoint(path) == newest
        assert_same_tensors(load_model_weights(path), model.state_dict())
        assert read_architecture(path) == ARCHITECTURE
    assert resolve_checkpoint(store_dir / "step_000000010") == store_dir / "step_000000010"
    previous = Path.cwd()
    os.chdir(store_dir)
    try:
        assert resolve_checkpoint("latest").resolve() == newest.resolve()
    finally:
        os.chdir(previous)
