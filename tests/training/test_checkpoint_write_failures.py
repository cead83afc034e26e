"""A run whose checkpoints cannot be written does not report success: each failed write is
logged (never "saved"), tried again at the next due step, and after `checkpoint.max_failures`
failures in a row training stops with a non-zero exit naming the cause; `latest` stays loadable
and no temporary directory is left behind."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from keisei.checkpoint import CheckpointStore
from keisei.cli import main
from tests.support.tiny_config import TINY


def _run(*args: str) -> bool:
    try:
        return subprocess.run(list(args), capture_output=True, timeout=10).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs where the run's checkpoints go: a file system that really fills up."""
    checkpoints = tmp_path / "runs" / "full" / "checkpoints"
    checkpoints.mkdir(parents=True)
    if not _run("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(checkpoints)):
        pytest.skip("cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN)")
    try:
        yield checkpoints
    finally:
        if not _run("umount", str(checkpoints)):
            _run("umount", "-l", str(checkpoints))


def test_a_full_disk_stops_training_with_the_cause_named(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    filler = {"target": "tests.support.faults:FillDiskAt",
              "kwargs": {"path": str(small_disk / "filler"), "step": 128}}  # fmt: skip
    args = ["train", "--no-live", "--run-name", "full"]
    for override in [*TINY, f"logging.model_dir={tmp_path / 'runs'}",
                     "training.total_timesteps=2048", "training.checkpoint_interval_timesteps=64",
                     f"callbacks.extra=[{filler}]"]:  # fmt: skip
        args += ["--set", override]

    code = main(args)

    assert code == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err
    assert str(small_disk) in err
    assert "3 checkpoint writes failed in a row" in err
    assert "training FAILED" in err
    # The disk fills at step 128 before its checkpoint (user callbacks run before checkpoint
    # callbacks): 128, 192 and 256 fail, training stops at 320 (its final try fails too), far
    # short of 2048, and `latest` still names the checkpoint of step 64.
    store = CheckpointStore(small_disk)
    assert store.load_latest().step == 64
    assert not [p.name for p in small_disk.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    log = (tmp_path / "runs" / "full" / "train.log").read_text()
    assert f"checkpoint saved: {small_disk / 'step_000000064'}" in log
    for step in (128, 192, 256, 320):
        name = f"step_{step:09d}"
        assert f"writing checkpoint {name}" in log and "failed" in log
        assert f"checkpoint saved: {small_disk / name}\n" not in log
    assert "training FAILED at step 320" in err
    assert "latest checkpoint: " in err and "step_000000064 (step 64: OLDER than" in err


def test_a_read_only_run_directory_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    args = ["train", "--no-live", "--run-name", "ro"]
    for override in [*TINY, f"logging.model_dir={tmp_path}", "training.total_timesteps=64"]:
        args += ["--set", override]
    assert main(args) == 0
    run = tmp_path / "ro"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    if not _run("mount", "--bind", str(run), str(run)):
        pytest.skip("cannot bind-mount here (needs root/CAP_SYS_ADMIN)")
    try:
        if not _run("mount", "-o", "remount,bind,ro", str(run)):
            pytest.skip("cannot remount read-only here")
        code = main([*args[:4], "--resume", str(run), "--set", "training.total_timesteps=128"])
    finally:
        if not _run("umount", str(run)):
            _run("umount", "-l", str(run))
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot write the run directory" in err[-1] and "Read-only file system" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
