"""Damaged checkpoints are detected and named; `load_latest` falls back to the newest valid one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from keisei.checkpoint import (
    CheckpointCorruptError,
    CheckpointFormatError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CheckpointStore,
    load_checkpoint,
    load_model_weights,
)
from tests.checkpoint.helpers import (
    ARCHITECTURE,
    TinyNet,
    assert_same_tensors,
    edit_manifest,
    make_state,
    make_training,
    train_step,
)


@pytest.fixture
def store_with_three(tmp_path: Path) -> CheckpointStore:
    """A store holding steps 10, 20, 30, each with distinct weights."""
    model, optimizer, scheduler = make_training()
    with CheckpointStore(tmp_path, async_save=False) as store:
        for step in (10, 20, 30):
            train_step(model, optimizer, scheduler, step)
            store.save(make_state(step, model, optimizer, scheduler))
    return CheckpointStore(tmp_path)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # inside the tensor data: still a parseable safetensors file
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("file", "damage", "message"),
    [
        ("model.safetensors", _truncate, "truncated"),
        ("model.safetensors", _flip_byte, "sha256 checksum mismatch"),
        ("optimizer.safetensors", _truncate, "truncated"),
        ("optimizer.safetensors", _flip_byte, "sha256 checksum mismatch"),
        ("optimizer.safetensors", Path.unlink, "missing"),
        ("model.safetensors", Path.unlink, "missing"),
        ("manifest.json", Path.unlink, "incomplete"),
        ("manifest.json", _truncate, "not valid JSON"),
    ],
)
def test_damage_is_detected_and_names_the_file(
    store_with_three: CheckpointStore, file: str, damage: object, message: str
) -> None:
    target = store_with_three.directory / "step_000000030"
    damage(target / file)  # type: ignore[operator]
    with pytest.raises(CheckpointCorruptError, match=message) as caught:
        load_checkpoint(target)
    assert file in str(caught.value)
    assert caught.value.file == file
    assert caught.value.path == target


def test_model_only_loaders_verify_checksums_too(store_with_three: CheckpointStore) -> None:
    _flip_byte(store_with_three.directory / "step_000000030" / "model.safetensors")
    with pytest.raises(CheckpointCorruptError, match="model.safetensors"):
        load_model_weights(store_with_three.directory / "step_000000030")


@pytest.mark.parametrize("file", ["model.safetensors", "optimizer.safetensors", "manifest.json"])
def test_load_latest_falls_back_with_a_warning(
    store_with_three: CheckpointStore, file: str, caplog: pytest.LogCaptureFixture
) -> None:
    expected = load_checkpoint(store_with_three.directory / "step_000000020").model_state
    _truncate(store_with_three.directory / "step_000000030" / file)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        checkpoint = store_with_three.load_latest()
    assert checkpoint.step == 20
    assert_same_tensors(checkpoint.model_state, expected)
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "step_000000030" in warnings and file in warnings


def test_load_latest_skips_several_corrupt_checkpoints(store_with_three: CheckpointStore) -> None:
    _flip_byte(store_with_three.directory / "step_000000030" / "model.safetensors")
    (store_with_three.directory / "step_000000020" / "optimizer.safetensors").unlink()
    assert store_with_three.load_latest().step == 10


def test_all_corrupt_raises_naming_each(store_with_three: CheckpointStore) -> None:
    for step in (10, 20, 30):
        _truncate(store_with_three.directory / f"step_{step:09d}" / "model.safetensors")
    with pytest.raises(CheckpointNotFoundError) as caught:
        store_with_three.load_latest()
    for step in (10, 20, 30):
        assert f"step_{step:09d}" in str(caught.value)


def test_empty_store_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        CheckpointStore(tmp_path / "none").load_latest()
    with pytest.raises(CheckpointNotFoundError):
        load_model_weights(tmp_path / "none")


@pytest.mark.parametrize("pointer", ["step_000000099", "../../etc", "", "garbage\x00", None])
def test_bad_latest_pointer_falls_back_to_newest(
    store_with_three: CheckpointStore, pointer: str | None
) -> None:
    latest = store_with_three.directory / "latest"
    if pointer is None:
        latest.unlink()
    else:
        latest.write_text(pointer)
    assert store_with_three.load_latest().step == 30
    assert store_with_three.latest() == store_with_three.directory / "step_000000030"


def test_pointer_is_followed_even_when_newer_directories_exist(
    store_with_three: CheckpointStore,
) -> None:
    """`latest` is the commit point: a newer directory it does not name is not preferred."""
    (store_with_three.directory / "latest").write_text("step_000000020\n")
    assert store_with_three.load_latest().step == 20


def test_newer_format_version_is_refused_clearly(store_with_three: CheckpointStore) -> None:
    """A newer checkpoint (its own checksum holds) asks for an upgrade, not a fallback."""
    target = store_with_three.directory / "step_000000030"
    edit_manifest(target, lambda manifest: manifest.update(format_version=99))
    with pytest.raises(CheckpointFormatError, match="format version 99"):
        load_checkpoint(target)


def test_manifest_naming_a_file_outside_is_refused(store_with_three: CheckpointStore) -> None:
    def add_outside(manifest: dict[str, Any]) -> None:
        files = manifest["files"]
        files["../step_000000020/model.safetensors"] = files["model.safetensors"]

    target = store_with_three.directory / "step_000000030"
    edit_manifest(target, add_outside)  # resealed: refused for the name, not the checksum
    with pytest.raises(CheckpointCorruptError, match="unsafe file name"):
        load_checkpoint(target)


def test_other_architecture_is_refused_before_loading(store_with_three: CheckpointStore) -> None:
    other = {**ARCHITECTURE, "sizes": [6, 24, 3]}
    with pytest.raises(CheckpointMismatchError, match=r"sizes: checkpoint \[6, 12, 3\]"):
        store_with_three.load_latest(architecture=other)


def test_shape_mismatch_names_the_tensors(store_with_three: CheckpointStore) -> None:
    checkpoint = store_with_three.load_latest()
    wider = TinyNet(hidden=24)
    with pytest.raises(CheckpointMismatchError) as caught:
        checkpoint.restore_model(wider)
    message = str(caught.value)
    assert "body.0.weight: checkpoint [12, 6], model [24, 6]" in message
    assert "body.2.weight" in message
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    assert_same_tensors(wider.state_dict(), before)  # nothing was half-loaded


def test_missing_and_unexpected_tensors_are_named(store_with_three: CheckpointStore) -> None:
    checkpoint = store_with_three.load_latest()
    model = TinyNet()
    model.register_buffer("extra_buffer", checkpoint.model_state["visits"].clone())
    del model.temperature
    with pytest.raises(CheckpointMismatchError) as caught:
        checkpoint.restore_model(model)
    assert "model has but the checkpoint lacks: extra_buffer" in str(caught.value)
    assert "checkpoint has but the model lacks: temperature" in str(caught.value)


def test_optimizer_mismatches_are_named(store_with_three: CheckpointStore) -> None:
    import torch

    checkpoint = store_with_three.load_latest()
    model, _, _ = make_training()
    with pytest.raises(CheckpointMismatchError, match="torch.optim.adam.Adam"):
        checkpoint.restore_optimizer(torch.optim.SGD(model.parameters(), lr=0.1))
    partial = torch.optim.Adam(list(model.parameters())[:2])
    with pytest.raises(CheckpointMismatchError, match=r"hold \[4\] parameters.*\[2\]"):
        checkpoint.restore_optimizer(partial)
