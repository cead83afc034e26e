"""The manifest protects itself: its own checksum (`manifest_sha256`) and its step and name, which
must agree with the directory. A damaged manifest is refused naming `manifest.json`, never loaded
as another state, and `load_latest` falls back past it."""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path
from typing import Any

import pytest

from keisei.checkpoint import (
    CheckpointCorruptError,
    CheckpointStore,
    load_checkpoint,
    load_model_weights,
    read_manifest,
)
from tests.checkpoint.helpers import (
    assert_same_tensors,
    edit_manifest,
    make_state,
    make_training,
    manifest_sha256,
    optimizer_tensors,
    train_step,
)

MANIFEST = "manifest.json"
STEP_30 = "step_000000030"


@pytest.fixture
def store(tmp_path: Path) -> CheckpointStore:
    """A store holding steps 10, 20, 30, each with distinct weights and optimizer state."""
    model, optimizer, scheduler = make_training()
    with CheckpointStore(tmp_path, async_save=False) as writer:
        for step in (10, 20, 30):
            train_step(model, optimizer, scheduler, step)
            writer.save(make_state(step, model, optimizer, scheduler))
    return CheckpointStore(tmp_path)


def _flip_digit_after(path: Path, marker: str) -> None:
    """Flip the lowest bit of the first digit after `marker` (0<->1, 2<->3, ...): one changed
    byte, and the file is still valid JSON with the same shape."""
    text = path.read_text(encoding="utf-8")
    start = text.index(marker) + len(marker)
    match = re.compile(r"\d").search(text, start)
    assert match is not None, marker
    digit = match.start()
    flipped = chr(ord(text[digit]) ^ 1)
    path.write_text(text[:digit] + flipped + text[digit + 1 :], encoding="utf-8")


def _assert_refused(target: Path, message: str) -> None:
    with pytest.raises(CheckpointCorruptError, match=message) as caught:
        load_checkpoint(target)
    assert caught.value.file == MANIFEST
    assert caught.value.path == target
    assert str(target / MANIFEST) in str(caught.value)


def test_fresh_checkpoint_carries_its_own_checksum_and_round_trips(tmp_path: Path) -> None:
    model, optimizer, scheduler = make_training()
    train_step(model, optimizer, scheduler)
    with CheckpointStore(tmp_path, async_save=False) as store:
        path = store.save(make_state(7, model, optimizer, scheduler))
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format_version"] == 2
    assert manifest["manifest_sha256"] == manifest_sha256(manifest)
    assert list(manifest)[-1] == "manifest_sha256"
    checkpoint = load_checkpoint(path)
    assert checkpoint.step == 7
    assert checkpoint.manifest == manifest
    restored, restored_optimizer, _ = make_training(seed=5)
    checkpoint.restore(restored, restored_optimizer)
    assert_same_tensors(restored.state_dict(), model.state_dict())
    assert_same_tensors(optimizer_tensors(restored_optimizer), optimizer_tensors(optimizer))


def test_one_changed_byte_in_the_step_is_refused_naming_the_manifest(
    store: CheckpointStore,
) -> None:
    target = store.directory / STEP_30
    _flip_digit_after(target / MANIFEST, '"step": ')  # 30 -> 20
    assert json.loads((target / MANIFEST).read_text())["step"] == 20
    _assert_refused(target, "manifest_sha256 checksum mismatch")
    with pytest.raises(CheckpointCorruptError, match=MANIFEST):
        load_model_weights(target)  # the model-only readers check it too


def test_no_single_bit_flip_loads_as_another_state(store: CheckpointStore) -> None:
    """Every bit of the head (format, version, name, step, clean, counters), of the optimizer's
    hyperparameters and of the checksum field, and every bit of one byte in each of 200 equal
    slices of the file (seeded: random and optimizer state, tensor records): each flip is refused
    naming the manifest, or reads back as exactly the saved manifest."""
    target = store.directory / STEP_30
    path = target / MANIFEST
    original = path.read_bytes()
    saved = json.loads(original)
    head = original.index(b'"config_hash"')
    groups = original.index(b'"param_groups"')
    tail = original.rfind(b'"manifest_sha256"') % len(original)  # the end, if there is none
    chooser = random.Random(20240612)
    slices = 200
    width = len(original) // slices
    positions = sorted(
        {
            *range(head),
            *range(groups, groups + 160),
            *range(tail, len(original)),
            *(k * width + chooser.randrange(width) for k in range(slices)),
        }
    )
    refused = unchanged = 0
    with open(path, "r+b", buffering=0) as handle:  # one byte changed at a time, then put back
        for position in positions:
            for bit in range(8):
                handle.seek(position)
                handle.write(bytes([original[position] ^ (1 << bit)]))
                try:
                    manifest = read_manifest(target)
                except CheckpointCorruptError as exc:
                    assert exc.file == MANIFEST and exc.path == target, (position, bit, exc)
                    refused += 1
                    continue
                assert manifest == saved, f"bit {bit} of byte {position} loads as another state"
                unchanged += 1
            handle.seek(position)
            handle.write(original[position : position + 1])
    assert path.read_bytes() == original
    assert refused + unchanged == 8 * len(positions) > 4000
    assert unchanged < 8  # what loads is a respelling of the same content (e.g. 1e-08, 1E-08)
    assert load_checkpoint(target).manifest == saved


def test_changed_format_version_is_damage_not_a_newer_format(store: CheckpointStore) -> None:
    """A newer version asks for an upgrade (no fallback); a damaged one must fall back."""
    target = store.directory / STEP_30
    path = target / MANIFEST
    text = path.read_text(encoding="utf-8")
    version = json.loads(text)["format_version"]
    old, new = f'"format_version": {version},', f'"format_version": {version + 1},'
    path.write_text(text.replace(old, new), encoding="utf-8")
    _assert_refused(target, "manifest_sha256 checksum mismatch")
    assert store.load_latest().step == 20


def test_manifest_without_its_checksum_is_refused(store: CheckpointStore) -> None:
    target = store.directory / STEP_30
    edit_manifest(target, lambda manifest: manifest.pop("manifest_sha256", None))
    _assert_refused(target, "lacks manifest_sha256")


def test_version_1_manifest_loads_with_a_warning(
    store: CheckpointStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Version 1 had no manifest checksum: such checkpoints still load, flagged as unprotected."""
    target = store.directory / STEP_30
    expected = load_checkpoint(target).model_state

    def as_version_1(manifest: dict[str, Any]) -> None:
        manifest.pop("manifest_sha256")
        manifest["format_version"] = 1

    edit_manifest(target, as_version_1)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        checkpoint = load_checkpoint(target)
        load_checkpoint(target)
    assert checkpoint.step == 30
    assert_same_tensors(checkpoint.model_state, expected)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per checkpoint, not once per read
    assert str(target) in warnings[0] and "no checksum of its own" in warnings[0]


def test_directory_renamed_to_another_step_is_refused(
    store: CheckpointStore, caplog: pytest.LogCaptureFixture
) -> None:
    renamed = store.directory / "step_000000040"
    (store.directory / STEP_30).rename(renamed)
    _assert_refused(renamed, "manifest of step_000000030 .step 30., not of step_000000040")
    with caplog.at_level(logging.WARNING, logger="keisei"):
        assert store.load_latest().step == 20
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "step_000000040" in warnings and MANIFEST in warnings


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"step": 40}, r"names the checkpoint 'step_000000030', but its step 40"),
        ({"step": 40, "name": "step_000000040"}, "manifest of step_000000040 .step 40., not of"),
        ({"clean": False}, "but its step 30 and clean flag False make it step_000000030-inte"),
        ({"step": "30"}, "bad step '30'"),
    ],
)
def test_resealed_manifest_that_disagrees_with_the_directory_is_refused(
    store: CheckpointStore, fields: dict[str, Any], message: str
) -> None:
    """Its checksum holds (rewritten by a tool), but step and name still have to agree."""
    target = store.directory / STEP_30
    edit_manifest(target, lambda manifest: manifest.update(fields))
    _assert_refused(target, message)


def test_interrupted_checkpoint_loads_but_cannot_pose_as_another(tmp_path: Path) -> None:
    model, optimizer, scheduler = make_training()
    train_step(model, optimizer, scheduler)
    with CheckpointStore(tmp_path, async_save=False) as store:
        path = store.save(make_state(40, model, optimizer, scheduler, clean=False))
    assert path.name == "step_000000040-interrupted"
    checkpoint = load_checkpoint(path)
    assert checkpoint.step == 40 and checkpoint.manifest["clean"] is False
    for other in ("step_000000040", "step_000000041-interrupted"):
        path = path.rename(tmp_path / other)
        _assert_refused(path, f"manifest of step_000000040-interrupted .step 40., not of {other}")


@pytest.mark.parametrize(
    "marker",
    [
        '"step": ',  # the step
        '"keys": [',  # NumPy's random state
        '"torch_cpu": "',  # torch's random state
        '"lr": ',  # the optimizer's learning rate
        '"counters": {"episodes": ',
    ],
)
def test_load_latest_falls_back_past_a_damaged_manifest(
    store: CheckpointStore, marker: str, caplog: pytest.LogCaptureFixture
) -> None:
    expected = load_checkpoint(store.directory / "step_000000020").model_state
    _flip_digit_after(store.directory / STEP_30 / MANIFEST, marker)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        checkpoint = store.load_latest()
    assert checkpoint.step == 20
    assert_same_tensors(checkpoint.model_state, expected)
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert f"{STEP_30}/{MANIFEST}" in warnings and "checksum mismatch" in warnings
