"""A write that fails (disk full, read-only, file too large) is logged, handed out by
take_outcomes() or raised by flush()/close() naming the checkpoint, never stops the next save from
being tried, and leaves earlier checkpoints loadable.

The disk-full and read-only cases need to mount a small tmpfs / a read-only bind mount (root in a
container allows it); they are skipped where mounting is not permitted. The file-size-limit case
runs everywhere: RLIMIT_FSIZE makes the kernel refuse the write (EFBIG), even for root.
"""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from keisei.checkpoint import CheckpointStore, CheckpointWriteError
from tests.checkpoint.helpers import (
    TinyNet,
    assert_same_tensors,
    leftovers,
    make_state,
    make_training,
    train_step,
)

REPO = Path(__file__).resolve().parents[2]


def _mount(*args: str) -> bool:
    try:
        result = subprocess.run(["mount", *args], capture_output=True, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real file system that really runs out of space."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)):
        pytest.skip("cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN)")
    try:
        yield mountpoint
    finally:
        _umount(mountpoint)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _errors(caplog: pytest.LogCaptureFixture) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_disk_full_fails_each_write_without_skipping_the_next_and_earlier_ones_survive(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_dir = small_disk / "checkpoints"
    model, optimizer, scheduler = make_training(hidden=64)
    store = CheckpointStore(store_dir, keep_last=5)
    store.save(make_state(1, model, optimizer, scheduler), wait=True)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    assert [o.name for o in store.take_outcomes()] == ["step_000000001"]

    filler = _fill(small_disk)
    train_step(model, optimizer, scheduler)
    with caplog.at_level(logging.ERROR, logger="keisei"):
        store.save(make_state(2, model, optimizer, scheduler))  # snapshot only: returns
        store.save(make_state(3, model, optimizer, scheduler))  # still tried after 2 failed
        (second,) = store.take_outcomes()
        with pytest.raises(CheckpointWriteError, match="step_000000003") as caught:
            store.flush()  # the failure nobody took is raised
    assert second.name == "step_000000002" and second.error is not None
    for error in (second.error, caught.value):
        assert isinstance(error.__cause__, OSError)
        assert error.__cause__.errno == errno.ENOSPC
        assert "No space left on device" in str(error)
    assert "step_000000002" in _errors(caplog) and "step_000000003" in _errors(caplog)

    assert leftovers(store_dir) == []  # the half-written temporary directory is gone
    checkpoint = CheckpointStore(store_dir).load_latest()
    assert checkpoint.step == 1
    assert_same_tensors(checkpoint.model_state, saved)

    filler.unlink()  # space again: saving works, nothing needs resetting
    store.save(make_state(4, model, optimizer, scheduler))
    store.close()
    assert [p.name for p in store.checkpoints()] == ["step_000000001", "step_000000004"]


def test_disk_full_is_raised_by_close(small_disk: Path) -> None:
    store_dir = small_disk / "checkpoints"
    model, optimizer, _ = make_training(hidden=64)
    store = CheckpointStore(store_dir)
    store.save(make_state(1, model, optimizer), wait=True)
    _fill(small_disk)
    store.save(make_state(2, model, optimizer))
    with pytest.raises(CheckpointWriteError, match="step_000000002"):
        store.close()
    store.close()  # reported once; closing again is quiet
    assert CheckpointStore(store_dir).load_latest().step == 1


def test_read_only_directory_fails_the_write_and_keeps_the_old_ones(tmp_path: Path) -> None:
    store_dir = tmp_path / "checkpoints"
    model, optimizer, _ = make_training()
    store = CheckpointStore(store_dir)
    store.save(make_state(1, model, optimizer), wait=True)
    if not _mount("--bind", str(store_dir), str(store_dir)):
        pytest.skip("cannot bind-mount here (needs root/CAP_SYS_ADMIN)")
    try:
        if not _mount("-o", "remount,bind,ro", str(store_dir)):
            pytest.skip("cannot remount read-only here")
        store.save(make_state(2, model, optimizer))
        with pytest.raises(CheckpointWriteError, match="step_000000002") as caught:
            store.flush()
        assert caught.value.__cause__.errno == errno.EROFS  # type: ignore[union-attr]
        sync_store = CheckpointStore(store_dir, async_save=False)
        with pytest.raises(CheckpointWriteError, match="step_000000003"):
            sync_store.save(make_state(3, model, optimizer))
        assert CheckpointStore(store_dir).load_latest().step == 1
    finally:
        _umount(store_dir)
    store.close()
    assert CheckpointStore(store_dir).load_latest().step == 1


def test_file_size_limit_fails_the_background_write(tmp_path: Path) -> None:
    """Runs everywhere, root or not: the kernel refuses writes past RLIMIT_FSIZE (EFBIG)."""
    store_dir = tmp_path / "checkpoints"
    result = subprocess.run(
        [sys.executable, "-m", "tests.checkpoint.child", "fsize", str(store_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["name"] == "step_000000002"
    assert "step_000000002" in report["error"]
    assert "File too large" in report["cause"] or "EFBIG" in report["cause"]
    assert "writing checkpoint step_000000002" in result.stderr  # logged by the writer thread
    assert report["recovered"] == "step_000000004"
    assert [p.name for p in CheckpointStore(store_dir).checkpoints()] == [
        "step_000000001",
        "step_000000004",
    ]
    assert leftovers(store_dir) == []
    assert CheckpointStore(store_dir).load("step_000000001").step == 1
    TinyNet(256).load_state_dict(CheckpointStore(store_dir).load_latest().model_state)


def test_target_path_blocked_by_a_file_fails_cleanly(tmp_path: Path) -> None:
    """A regular file where the store directory should be: the write fails, naming it."""
    blocked = tmp_path / "checkpoints"
    blocked.write_text("not a directory")
    model, _, _ = make_training()
    store = CheckpointStore(blocked, async_save=False)
    with pytest.raises(CheckpointWriteError, match="step_000000001"):
        store.save(make_state(1, model))
    store.close()
    assert blocked.read_text() == "not a directory"
