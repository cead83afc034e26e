"""Which checkpoint `--checkpoint PATH|latest [--run-dir DIR]` means (no torch import: fast).

`latest` (or no `--checkpoint` at all) with `--run-dir` is that run's latest checkpoint; without
`--run-dir` it is the latest checkpoint of the most recently updated run under `runs/`.
"""

from __future__ import annotations

from pathlib import Path

from keisei.checkpoint.errors import CheckpointNotFoundError
from keisei.checkpoint.layout import POINTER, resolve_checkpoint
from keisei.checkpoint.run_layout import RunLayout

DEFAULT_RUNS_DIR = Path("runs")


def locate_checkpoint(
    checkpoint: str | None, run_dir: str | Path | None, runs_dir: Path = DEFAULT_RUNS_DIR
) -> Path:
    """The checkpoint directory to load; `CheckpointNotFoundError` naming what was looked at."""
    if checkpoint is not None and checkpoint != "latest":
        return resolve_checkpoint(Path(checkpoint))
    if run_dir is not None:
        return resolve_checkpoint(Path(run_dir))
    newest = _newest_run(runs_dir)
    if newest is None:
        raise CheckpointNotFoundError(
            f"no run with checkpoints under {runs_dir}/: pass --checkpoint PATH or --run-dir DIR"
        )
    return resolve_checkpoint(newest)


def _newest_run(runs_dir: Path) -> Path | None:
    """The run directory whose checkpoints changed last."""
    best: tuple[float, Path] | None = None
    try:
        runs = [entry for entry in runs_dir.iterdir() if entry.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return None
    for run in runs:
        store = RunLayout(run).checkpoints
        marker = store / POINTER if (store / POINTER).exists() else store
        if not store.is_dir():
            continue
        stamp = marker.stat().st_mtime
        if best is None or stamp > best[0]:
            best = (stamp, run)
    return None if best is None else best[1]
