"""Which checkpoint `--checkpoint PATH|latest [--run-dir DIR]` designates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keisei.checkpoint.errors import CheckpointNotFoundError
from keisei.usi.locate import locate_checkpoint
from tests.support.checkpoints import save_checkpoint


def test_explicit_paths_and_run_dirs(tmp_path: Path) -> None:
    run = save_checkpoint(tmp_path / "runs" / "a", step=7)
    (checkpoint,) = (run / "checkpoints").glob("step_*")
    assert locate_checkpoint(str(checkpoint), None) == checkpoint
    assert locate_checkpoint(str(run), None) == checkpoint
    assert locate_checkpoint("latest", run) == checkpoint
    assert locate_checkpoint(None, run) == checkpoint


def test_latest_without_run_dir_is_the_most_recently_updated_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    older = save_checkpoint(runs / "older", step=5)
    newer = save_checkpoint(runs / "newer", step=3)
    (runs / "not-a-run").mkdir()
    os.utime(older / "checkpoints" / "latest", (1_000_000, 1_000_000))
    chosen = locate_checkpoint("latest", None, runs_dir=runs)
    assert chosen.parent == newer / "checkpoints"


def test_nothing_to_load_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="pass --checkpoint"):
        locate_checkpoint("latest", None, runs_dir=tmp_path / "runs")
    with pytest.raises(CheckpointNotFoundError, match="missing"):
        locate_checkpoint(str(tmp_path / "missing"), None)
