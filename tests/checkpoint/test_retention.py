"""Retention keeps the last K, every multiple of `keep_every`, the best by metric, and `latest`;
and, beyond those K, every pinned checkpoint: rated (with `keep_rated`) or in use."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keisei.checkpoint import CheckpointStore, checkpoint_name, record_evaluation
from keisei.checkpoint.retention import RetentionPolicy
from tests.checkpoint.helpers import (
    assert_same_tensors,
    leftovers,
    make_state,
    make_training,
    train_step,
)


def _steps(store: CheckpointStore) -> list[int]:
    return [int(path.name.removeprefix("step_")) for path in store.checkpoints()]


def test_policy_keeps_last_every_and_best() -> None:
    policy = RetentionPolicy(keep_last=2, keep_every=30, best_metric="elo")
    entries = [(10, 5.0), (20, 9.0), (30, 1.0), (40, None), (50, 2.0), (60, 3.0)]
    assert policy.to_delete(entries) == [10, 40]
    assert policy.to_delete(entries, protected=[10]) == [40]


def test_policy_best_ignores_non_finite_and_prefers_earliest_on_ties() -> None:
    policy = RetentionPolicy(keep_last=1, best_metric="elo")
    entries = [(1, 4.0), (2, float("nan")), (3, float("inf")), (4, 4.0), (5, 0.0)]
    assert policy.to_delete(entries) == [2, 3, 4]


def test_policy_without_metric_keeps_no_best() -> None:
    assert RetentionPolicy(keep_last=1).to_delete([(1, 9.0), (2, 1.0)]) == [1]


@pytest.mark.parametrize("bad", [{"keep_last": 0}, {"keep_last": True}, {"keep_every": 0}])
def test_policy_rejects_bad_settings(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetentionPolicy(**bad)  # type: ignore[arg-type]


@given(
    steps=st.sets(st.integers(0, 10_000), max_size=30),
    keep_last=st.integers(1, 6),
    keep_every=st.none() | st.integers(1, 3000),
    protected=st.integers(0, 10_000),
)
def test_policy_properties(
    steps: set[int], keep_last: int, keep_every: int | None, protected: int
) -> None:
    policy = RetentionPolicy(keep_last=keep_last, keep_every=keep_every)
    deleted = policy.to_delete([(s, None) for s in steps], protected=[protected])
    last = set(sorted(steps)[-keep_last:])
    multiples = {s for s in steps if keep_every and s % keep_every == 0}
    assert deleted == sorted(steps - last - multiples - {protected})


def test_store_applies_retention_after_each_commit(tmp_path: Path) -> None:
    model, optimizer, _ = make_training()
    store = CheckpointStore(tmp_path, keep_last=2, keep_every=40, best_metric="evaluation/elo")
    elo = {10: 1000.0, 20: 1300.0, 30: 1100.0, 40: 900.0, 50: 1200.0, 60: 1250.0, 70: 1000.0}
    for step, value in elo.items():
        store.save(make_state(step, model, optimizer, metrics={"evaluation/elo": value}))
    store.close()
    assert _steps(store) == [20, 40, 60, 70]  # best (20), multiple of 40, last two
    assert leftovers(tmp_path) == []


def test_latest_is_never_deleted_even_when_older(tmp_path: Path) -> None:
    """A run resumed from an older checkpoint saves a lower step; it must survive retention."""
    model, optimizer, _ = make_training()
    with CheckpointStore(tmp_path, keep_last=2, async_save=False) as store:
        for step in (10, 20, 30, 40):
            store.save(make_state(step, model, optimizer))
        store.save(make_state(5, model, optimizer))
    assert _steps(store) == [5, 30, 40]
    assert (tmp_path / "latest").read_text().strip() == "step_000000005"
    assert store.load_latest().step == 5


def test_saving_an_existing_step_replaces_it(tmp_path: Path) -> None:
    model, optimizer, scheduler = make_training()
    with CheckpointStore(tmp_path, async_save=False) as store:
        store.save(make_state(10, model, optimizer))
        train_step(model, optimizer, scheduler)
        store.save(make_state(10, model, optimizer))
    assert_same_tensors(store.load_latest().model_state, model.state_dict())
    assert leftovers(tmp_path) == []


def test_stale_temporaries_are_removed_by_the_next_writer(tmp_path: Path) -> None:
    model, _, _ = make_training()
    for name in (".tmp-step_000000005-abc", ".trash-step_000000001-1234"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "model.safetensors").write_bytes(b"partial")
    (tmp_path / ".latest.tmp-1-aa").write_text("step_000000005")
    reader = CheckpointStore(tmp_path)
    with pytest.raises(Exception):  # noqa: B017 - reading must not clean up anything
        reader.load_latest()
    assert len(leftovers(tmp_path)) == 3
    with CheckpointStore(tmp_path) as writer:
        writer.save(make_state(1, model), wait=True)
    assert leftovers(tmp_path) == []


def test_symlinked_checkpoint_is_neither_followed_nor_deleted_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}")
    (outside / "precious").write_text("keep me")
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / "step_000000001").symlink_to(outside, target_is_directory=True)
    model, _, _ = make_training()
    with CheckpointStore(store_dir, keep_last=1, async_save=False) as store:
        for step in (2, 3, 4):
            store.save(make_state(step, model))
    assert (outside / "precious").read_text() == "keep me"
    assert _steps(store) == [4]


# ---- rated and in-use checkpoints are pinned -------------------------------------------------


def test_pinned_steps_are_kept_and_keep_last_counts_the_others() -> None:
    policy = RetentionPolicy(keep_last=2)
    entries = [(step, None) for step in (10, 20, 30, 40, 50)]
    assert policy.to_delete(entries) == [10, 20, 30]
    # 40 and 50 are pinned: the last two of the others are 20 and 30.
    assert policy.to_delete(entries, pinned=[40, 50]) == [10]
    assert policy.to_delete(entries, pinned=[10, 99]) == [20, 30]


@given(
    steps=st.sets(st.integers(0, 10_000), max_size=30),
    pinned=st.sets(st.integers(0, 10_000), max_size=10),
    keep_last=st.integers(1, 6),
)
def test_policy_never_deletes_a_pinned_step(
    steps: set[int], pinned: set[int], keep_last: int
) -> None:
    deleted = RetentionPolicy(keep_last=keep_last).to_delete(
        [(s, None) for s in steps], pinned=pinned
    )
    others = sorted(steps - pinned)
    assert deleted == others[: max(len(others) - keep_last, 0)]


def _rate(store: CheckpointStore, step: int) -> None:
    record_evaluation(store.directory / checkpoint_name(step), {"evaluation/win_rate": 0.5})


@pytest.mark.parametrize("keep_rated", [True, False])
def test_a_checkpoint_with_evaluation_results_is_kept_while_keep_rated(
    tmp_path: Path, keep_rated: bool
) -> None:
    model, optimizer, _ = make_training()
    with CheckpointStore(tmp_path, keep_last=1, keep_rated=keep_rated, async_save=False) as store:
        for step in (10, 20, 30, 40):
            store.save(make_state(step, model, optimizer))
            if step in (10, 20):
                _rate(store, step)
    assert _steps(store) == ([10, 20, 40] if keep_rated else [40])


def test_pin_sources_rated_only_with_keep_rated_in_use_always(tmp_path: Path) -> None:
    model, optimizer, _ = make_training()
    in_use: set[int] = {10}
    kept = {}
    for keep_rated in (True, False):
        directory = tmp_path / str(keep_rated)
        store = CheckpointStore(directory, keep_last=1, keep_rated=keep_rated, async_save=False)
        store.pin(lambda: set(in_use))
        store.pin(lambda: [20], rated=True)
        with store:
            for step in (10, 20, 30, 40):
                store.save(make_state(step, model, optimizer))
        kept[keep_rated] = _steps(store)
    assert kept == {True: [10, 20, 40], False: [10, 40]}
    in_use.clear()  # the evaluation of 10 is over: the next commit may delete it
    with CheckpointStore(tmp_path / "False", keep_last=1, keep_rated=False) as store:
        store.pin(lambda: set(in_use))
        store.save(make_state(50, model, optimizer))
    assert _steps(store) == [50]


def test_a_failing_pin_source_deletes_nothing_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, _, _ = make_training()

    def unreadable() -> list[int]:
        raise sqlite3.DatabaseError("file is not a database")

    with caplog.at_level(logging.WARNING, logger="keisei"):
        with CheckpointStore(tmp_path, keep_last=1, async_save=False) as store:
            store.pin(unreadable, rated=True)
            for step in (1, 2, 3):
                store.save(make_state(step, model))
    assert _steps(store) == [1, 2, 3]
    assert "retention in" in caplog.text and "file is not a database" in caplog.text
