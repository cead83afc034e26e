"""Committing a snapshot to disk: the atomic write protocol, then retention.

1. Write the data files into a temporary directory beside the target (`.tmp-step_...-xxxx`),
   fsync each file; write `manifest.json` last (with every file's sha256, and a sha256 of its own
   content), fsync it and the directory. A directory without a manifest is never a checkpoint.
2. Rename the temporary directory to `step_...` and fsync the store directory.
3. Replace the `latest` pointer atomically (write, fsync, rename, fsync).
4. Apply the retention policy, never touching what `latest` names nor a pinned checkpoint (rated
   or in use, see `retention.py`). When what is pinned cannot be told (a pin source failed), no
   checkpoint is deleted this time.

A snapshot that is not clean (training stopped mid-epoch) is written the same way under its own
name (`step_...-interrupted`), but steps 3 and 4 are skipped: `latest` keeps naming the last clean
checkpoint, from which a resume is exact.

A process killed at any point leaves the previous `latest` valid; leftovers (`.tmp-`, `.trash-`)
are removed by the next writer. Deletion renames a checkpoint to `.trash-...` first, so a
half-deleted directory is never mistaken for a checkpoint.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from keisei.checkpoint.codec import decode
from keisei.checkpoint.errors import CheckpointCorruptError, CheckpointError
from keisei.checkpoint.files import (
    FileRecord,
    fsync_dir,
    replace_atomic,
    seal_manifest,
    write_durable,
    write_tensors,
)
from keisei.checkpoint.layout import (
    MANIFEST,
    MODEL_FILE,
    OPTIMIZER_FILE,
    POINTER,
    TEMP_PREFIX,
    TRASH_PREFIX,
    checkpoint_dirs,
    read_pointer,
    step_of,
)
from keisei.checkpoint.manifest import read_manifest
from keisei.checkpoint.results import EVALUATION_FILE, read_evaluation
from keisei.checkpoint.retention import PinSource, RetentionPolicy
from keisei.checkpoint.snapshot import Snapshot
from keisei.log import get_logger

_logger = get_logger("checkpoint")


class CheckpointWriter:
    """Writes snapshots into `directory`, one at a time (the store guarantees that)."""

    def __init__(self, directory: Path, policy: RetentionPolicy) -> None:
        self.directory = directory
        self.policy = policy
        self.pins: list[tuple[PinSource, bool]] = []
        """(source, rated): the pin sources retention asks; a rated one only with `keep_rated`."""
        self._stale_removed = False

    def commit(self, snapshot: Snapshot) -> Path:
        """Write `snapshot` as a checkpoint; if it is clean, point `latest` at it and apply
        retention."""
        started = time.perf_counter()
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        if not self._stale_removed:
            self._remove_stale()
            self._stale_removed = True
        target = directory / snapshot.name
        temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{snapshot.name}-", dir=directory))
        trash: Path | None = None
        try:
            temp.chmod(0o755)
            files: dict[str, FileRecord] = {
                MODEL_FILE: write_tensors(temp / MODEL_FILE, snapshot.model_tensors)
            }
            if any(snapshot.manifest[part] for part in ("optimizer", "scheduler", "scaler")):
                files[OPTIMIZER_FILE] = write_tensors(
                    temp / OPTIMIZER_FILE, snapshot.optimizer_tensors
                )
            manifest = {**snapshot.manifest, "files": {k: v.to_json() for k, v in files.items()}}
            write_durable(temp / MANIFEST, seal_manifest(manifest))
            fsync_dir(temp)
            if os.path.lexists(target):  # the same step saved again: replace it
                trash = directory / f"{TRASH_PREFIX}{snapshot.name}-{secrets.token_hex(4)}"
                os.rename(target, trash)
            os.rename(temp, target)
            fsync_dir(directory)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        clean = snapshot.manifest.get("clean", True)
        if clean:
            replace_atomic(directory / POINTER, f"{snapshot.name}\n".encode())
        if trash is not None:
            remove(trash)
        if clean:
            self._apply_retention()
        _logger.debug(
            "checkpoint %s written: %.1f MB in %.2f s",
            snapshot.name,
            snapshot.nbytes / 1e6,
            time.perf_counter() - started,
        )
        return target

    def _remove_stale(self) -> None:
        """Remove temporary and half-deleted directories left by a process that died."""
        for entry in self.directory.iterdir():
            if entry.name.startswith((TEMP_PREFIX, TRASH_PREFIX, f".{POINTER}.tmp-")):
                _logger.info("removing %s, left over by an interrupted save", entry)
                remove(entry)

    def _metric(self, path: Path) -> float | None:
        metric = self.policy.best_metric
        if metric is None:
            return None
        evaluated = read_evaluation(path)
        if evaluated is not None and metric in evaluated:
            return evaluated[metric]
        try:
            manifest = read_manifest(path)  # verified: a damaged one sways nothing
            value = decode(manifest.get("metrics", {}), {}).get(metric)
        except (CheckpointError, ValueError, AttributeError):
            return None
        return float(value) if isinstance(value, int | float) else None

    def _pinned(self, by_step: dict[int, Path]) -> set[int]:
        """The steps retention may not delete (raises when a pin source fails)."""
        keep_rated = self.policy.keep_rated
        pinned = (
            {step for step, path in by_step.items() if (path / EVALUATION_FILE).is_file()}
            if keep_rated
            else set()
        )
        for source, rated in list(self.pins):
            if keep_rated or not rated:
                pinned.update(int(step) for step in source())
        return pinned

    def _apply_retention(self) -> None:
        """Delete what the policy does not keep; a failure here loses nothing, so it only warns."""
        try:
            by_step = {
                step: path
                for path in checkpoint_dirs(self.directory)
                if (step := step_of(path.name)) is not None
            }
            try:
                pointer = read_pointer(self.directory)
            except CheckpointCorruptError:
                pointer = None
            protected = {step_of(pointer) or 0} if pointer is not None else set()
            try:
                pinned = self._pinned(by_step)
            except Exception as exc:
                _logger.warning(
                    "retention in %s skipped (nothing deleted): which checkpoints are rated or "
                    "in use is unknown: %s: %s",
                    self.directory,
                    type(exc).__name__,
                    exc,
                )
                return
            entries = [(step, self._metric(path)) for step, path in by_step.items()]
            for step in self.policy.to_delete(entries, protected=protected, pinned=pinned):
                path = by_step[step]
                trash = self.directory / f"{TRASH_PREFIX}{path.name}-{secrets.token_hex(4)}"
                os.rename(path, trash)
                remove(trash)
                _logger.debug("retention: deleted checkpoint %s", path.name)
        except OSError as exc:
            _logger.warning("retention in %s failed (nothing lost): %s", self.directory, exc)


def remove(path: Path) -> None:
    """Delete a file or directory tree; a symbolic link is unlinked, never followed."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
