"""The checkpoint store: atomic, asynchronous, checksummed, safe to load, resumable.

A checkpoint is a directory `step_000123456/` holding `model.safetensors`, `optimizer.safetensors`
(optimizer, scheduler and scaler tensors) and `manifest.json` (everything else, with the sha256 of
each data file and of its own content). A save copies the state to CPU memory, which is all the
training loop waits for; a background thread writes into a temporary directory beside the target,
fsyncs, renames it into place, updates the `latest` pointer atomically, then applies the retention
policy (which never deletes a rated checkpoint, nor one in use: see `pin`), and logs the
checkpoint as saved only then. At most one write is in flight. A failed write is logged at once;
it never stops the next `save()` from being tried. How each write ended is handed out by
`take_outcomes()` (the checkpoint callback counts failures in a row with it), and a failure nobody
took is raised by `flush()` or `close()`. A `save(..., wait=True)` (or a synchronous store) raises
its own failure at once. Loading verifies every checksum and never uses pickle.

Typical use::

    store = CheckpointStore.from_config(cfg.checkpoint, run_dir / "checkpoints")
    store.save(TrainingState(step=step, model=model, optimizer=optimizer, ...))
    ...
    checkpoint = store.load_latest()
    checkpoint.restore(model, optimizer, scheduler)
    store.close()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keisei.checkpoint.errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CheckpointWriteError,
)
from keisei.checkpoint.layout import (
    MANIFEST,
    POINTER,
    checkpoint_dirs,
    checkpoint_name,
    latest_candidates,
    resolve_checkpoint,
    validate_name,
)
from keisei.checkpoint.load import LoadedCheckpoint, architecture_differences, load_checkpoint
from keisei.checkpoint.manifest import read_manifest
from keisei.checkpoint.retention import PinSource, RetentionPolicy
from keisei.checkpoint.snapshot import Snapshot, StagingBuffers, TrainingState, take_snapshot
from keisei.checkpoint.writer import CheckpointWriter
from keisei.log import get_logger

if TYPE_CHECKING:
    from keisei.config import CheckpointConfig

_logger = get_logger("checkpoint")


class CheckpointStore:
    """Saves and loads the checkpoints of one run, in `directory` and nowhere else.

    Call `save`, `flush` and `close` from one thread (the training loop's). Readers in other
    processes should use `load_model_weights`/`load_checkpoint`, which never modify the directory.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        keep_last: int = 5,
        keep_every: int | None = None,
        best_metric: str | None = None,
        keep_rated: bool = True,
        async_save: bool = True,
    ) -> None:
        self._directory = Path(directory)
        self.policy = RetentionPolicy(keep_last, keep_every, best_metric, keep_rated)
        self.async_save = async_save
        self._buffers = StagingBuffers()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: tuple[str, Future[Path]] | None = None
        self._outcomes: list[WriteOutcome] = []
        self._lock = threading.RLock()
        self._closed = False
        self._writer = CheckpointWriter(self._directory, self.policy)

    @classmethod
    def from_config(cls, cfg: CheckpointConfig, directory: str | Path) -> CheckpointStore:
        """A store configured by the `checkpoint` section of the run's config."""
        return cls(
            directory,
            keep_last=cfg.keep_last,
            keep_every=cfg.keep_every_timesteps,
            best_metric=cfg.best_metric,
            keep_rated=cfg.keep_rated,
            async_save=cfg.async_save,
        )

    def pin(self, source: PinSource, *, rated: bool = False) -> None:
        """From now on, retention keeps the checkpoints of the steps `source()` returns (asked
        at each retention, in the writer thread): always, or with `rated` (players in a
        rating) only while the policy's `keep_rated` is on. A source that raises makes that
        retention delete nothing, with a warning. Register sources before the first save."""
        self._writer.pins.append((source, rated))

    @property
    def directory(self) -> Path:
        return self._directory

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "async" if self.async_save else "sync"
        return f"CheckpointStore({str(self._directory)!r}, {mode}, {self.policy})"

    # ---- saving ---------------------------------------------------------------------------

    def save(self, state: TrainingState, *, wait: bool = False) -> Path:
        """Save `state`; returns the checkpoint directory (which exists once the write is done).

        Returns as soon as the state is copied to CPU memory, unless `wait` is True or the store
        is synchronous: then only once the checkpoint is committed, raising
        `CheckpointWriteError` if that write fails. First waits for the previous write (its
        outcome goes to `take_outcomes()`; a failure there does not stop this save).
        """
        with self._lock:
            if self._closed:
                raise CheckpointError(f"checkpoint store {self._directory} is closed")
            self._collect()
            snapshot = take_snapshot(state, self._buffers)
            if wait or not self.async_save:
                path = self._write_reporting(snapshot)
                self._outcomes.append(WriteOutcome(snapshot.name, path))
            else:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="checkpoint-writer")
                future = self._executor.submit(self._write_reporting, snapshot)
                self._pending = (snapshot.name, future)
            return self._directory / snapshot.name

    def saver(self, make_state: Callable[[int], TrainingState]) -> StateSaver:
        """A `CheckpointSaver` for `CheckpointCallback`: `make_state(step)` builds what to save."""
        return StateSaver(self, make_state)

    def committed(self, step: int) -> Path | None:
        """The clean checkpoint of `step` once it is on disk (a write in flight is waited for;
        its outcome stays for `take_outcomes`/`flush`), or None if there is none."""
        self._drain()
        path = self._directory / checkpoint_name(step)
        return path if (path / MANIFEST).is_file() else None

    @property
    def pending(self) -> str | None:
        """The name of the checkpoint being written in the background, if any."""
        pending = self._pending
        return pending[0] if pending is not None and not pending[1].done() else None

    def take_outcomes(self) -> list[WriteOutcome]:
        """How the writes that ended since the last call ended, oldest first (the write in
        flight is not waited for)."""
        with self._lock:
            pending = self._pending
            if pending is not None and pending[1].done():
                self._collect()
            outcomes, self._outcomes = self._outcomes, []
            return outcomes

    def flush(self) -> None:
        """Wait until the write in flight is on disk; raise the first write failure that
        `take_outcomes()` has not handed out (the others were logged when they happened)."""
        with self._lock:
            self._collect()
            failures = [outcome for outcome in self._outcomes if outcome.error is not None]
            if failures:
                self._outcomes = [outcome for outcome in self._outcomes if outcome.error is None]
                raise failures[0].error  # type: ignore[misc]

    def close(self) -> None:
        """Flush, stop the writer thread and free the staging memory. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.flush()
            finally:
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                    self._executor = None
                self._buffers.release()

    def _collect(self) -> None:
        """Wait for the write in flight, if any, and keep its outcome."""
        pending = self._pending
        if pending is None:
            return
        name, future = pending
        self._pending = None
        exc = future.exception()
        path = self._directory / name
        if exc is None:
            self._outcomes.append(WriteOutcome(name, path))
        else:
            error = (
                exc
                if isinstance(exc, CheckpointWriteError)
                else CheckpointWriteError(f"writing checkpoint {name} failed: {exc}", name=name)
            )
            self._outcomes.append(WriteOutcome(name, path, error))

    def _write_reporting(self, snapshot: Snapshot) -> Path:
        try:
            path = self._writer.commit(snapshot)
        except Exception as exc:
            message = (
                f"writing checkpoint {snapshot.name} in {self._directory} failed: "
                f"{type(exc).__name__}: {exc}; earlier checkpoints are intact"
            )
            _logger.error(message, exc_info=exc)
            raise CheckpointWriteError(message, name=snapshot.name) from exc
        _logger.info("checkpoint saved: %s", path)
        return path

    # ---- loading --------------------------------------------------------------------------

    def checkpoints(self) -> list[Path]:
        """The complete checkpoints in the store, oldest step first (checksums not verified)."""
        return checkpoint_dirs(self._directory)

    def latest(self) -> Path | None:
        """The checkpoint `latest` designates, or None if the store holds none (not verified)."""
        try:
            return resolve_checkpoint(self._directory)
        except CheckpointNotFoundError:
            return None

    def load(
        self, path: str | Path, *, architecture: Mapping[str, Any] | None = None
    ) -> LoadedCheckpoint:
        """Load and verify one checkpoint: a name in this store (`step_000000100`) or a path.

        With `architecture`, a checkpoint of another architecture raises
        `CheckpointMismatchError` before any tensor is read.
        """
        self._drain()
        path = Path(path)
        if path.name == POINTER and len(path.parts) == 1:
            return self.load_latest(architecture=architecture)
        if len(path.parts) == 1 and not path.is_absolute():
            path = self._directory / validate_name(str(path), "checkpoint name")
        return _load_checked(path, architecture)

    def load_latest(self, *, architecture: Mapping[str, Any] | None = None) -> LoadedCheckpoint:
        """Load the latest checkpoint; if it is corrupt, the newest valid one, with a warning."""
        self._drain()
        failures: list[str] = []
        for candidate in latest_candidates(self._directory):
            if not candidate.is_dir():
                failures.append(f"{candidate.name} (named by {POINTER}) does not exist")
                _logger.warning("%s; trying an older checkpoint", failures[-1])
                continue
            try:
                checkpoint = _load_checked(candidate, architecture)
            except CheckpointCorruptError as exc:
                failures.append(str(exc))
                _logger.warning("%s; trying an older checkpoint", exc)
                continue
            if failures:
                _logger.warning(
                    "loaded %s, the newest valid checkpoint in %s", candidate.name, self._directory
                )
            return checkpoint
        detail = f": {'; '.join(failures)}" if failures else ""
        raise CheckpointNotFoundError(f"no valid checkpoint in {self._directory}{detail}")

    def _drain(self) -> None:
        """Let the write in flight finish, so loads see it; its outcome is kept."""
        with self._lock:
            self._collect()


@dataclass(frozen=True)
class WriteOutcome:
    """How one checkpoint write ended: committed at `path`, or failed with `error`."""

    name: str
    path: Path
    error: CheckpointWriteError | None = None


class StateSaver:
    """Adapts a store to the callbacks' `CheckpointSaver` protocol: `save(step, wait=...)`
    builds the state to save with `make_state(step)`."""

    def __init__(self, store: CheckpointStore, make_state: Callable[[int], TrainingState]) -> None:
        self.store = store
        self._make_state = make_state

    def save(self, step: int, *, wait: bool = False) -> Path:
        state = self._make_state(step)
        if state.step != step:
            raise CheckpointError(f"asked to save step {step}, but the state is at {state.step}")
        return self.store.save(state, wait=wait)

    def flush(self) -> None:
        self.store.flush()

    def committed(self, step: int) -> Path | None:
        return self.store.committed(step)

    def take_outcomes(self) -> list[WriteOutcome]:
        return self.store.take_outcomes()


def _load_checked(path: Path, architecture: Mapping[str, Any] | None) -> LoadedCheckpoint:
    if architecture is not None:
        manifest = read_manifest(path)
        differences = architecture_differences(manifest, architecture)
        if differences:
            raise CheckpointMismatchError(
                f"checkpoint {path} is of another architecture: {differences}"
            )
    return load_checkpoint(path)
