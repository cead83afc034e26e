"""The package logger and the metric sinks.

There is one logger, `keisei`, with a Rich console handler (installed on first use, so messages
are never lost for want of set-up) and, once a run directory exists, a file handler writing
`train.log` (on rank N > 0 of several, `train.rank<N>.log`: see `RunLayout.rank_log`). Handler
thresholds are capped at ERROR: whatever level a user asks for, errors (callback failures among
them) always reach both the console and the file. On ranks other than 0 the console shows only
warnings and errors, each line marked `[rank N]`; their log file has every line.

Metrics go through a `MetricsRecorder` to its sinks; `JsonlSink` writes `metrics.jsonl`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Protocol

from rich.console import Console
from rich.logging import RichHandler

LOGGER_NAME = "keisei"
_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_console = Console(stderr=True)
_console_handler: logging.Handler | None = None
_file_handler: logging.FileHandler | None = None
_console_floor = logging.NOTSET
"""The console shows nothing below this (WARNING on ranks other than 0)."""
_lock = threading.Lock()


def _cap(level: int) -> int:
    """Handler level that never filters out errors."""
    return min(level, logging.ERROR)


def get_logger(name: str | None = None) -> logging.Logger:
    """The package logger (or a child of it), with a console handler guaranteed."""
    _ensure_console_handler()
    root = logging.getLogger(LOGGER_NAME)
    return root if not name else root.getChild(name.removeprefix(LOGGER_NAME + "."))


class _PlainStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Plain lines on whatever `sys.stderr` is now (no wrapping at 80 columns in files/CI)."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def _ensure_console_handler() -> None:
    global _console_handler
    root = logging.getLogger(LOGGER_NAME)
    with _lock:
        if _console_handler is None or _console_handler not in root.handlers:
            handler: logging.Handler
            if _console.is_terminal:
                handler = RichHandler(
                    console=_console, show_path=False, rich_tracebacks=False, markup=False
                )
            else:
                handler = _PlainStderrHandler()
                handler.setFormatter(logging.Formatter(_FILE_FORMAT))
            handler.setLevel(_cap(logging.INFO))
            root.addHandler(handler)
            _console_handler = handler
            if root.level == logging.NOTSET:
                root.setLevel(logging.INFO)


def get_console() -> Console:
    """The console the log handler writes to; live displays must share it to stay tidy."""
    return _console


def set_level(level: str | int) -> None:
    """Set the package's verbosity; errors still always get through."""
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown logging level {level!r}")
    _ensure_console_handler()
    root = logging.getLogger(LOGGER_NAME)
    root.setLevel(_cap(numeric))
    if _console_handler is not None:
        _console_handler.setLevel(max(_cap(numeric), _console_floor))
    if _file_handler is not None:
        _file_handler.setLevel(_cap(numeric))


class _RankPrefix(logging.Formatter):
    """Formats as `inner` does, the message marked with the rank (the record is not changed, so
    the log file, which names the rank already, gets the plain message)."""

    def __init__(self, rank: int, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.prefix = f"[rank {rank}] "
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        marked = logging.makeLogRecord(record.__dict__)
        marked.msg = self.prefix + str(record.msg)
        return self.inner.format(marked)


def set_rank(rank: int) -> None:
    """Mark this process's console lines with its rank, and show only its warnings and errors
    (for the ranks other than 0 of a run: rank 0 reports progress for all of them; each of the
    others has its own log file with every line)."""
    global _console_floor
    _ensure_console_handler()
    assert _console_handler is not None
    formatter = _console_handler.formatter
    if isinstance(formatter, _RankPrefix):
        formatter = formatter.inner
    _console_handler.setFormatter(_RankPrefix(rank, formatter))
    _console_floor = logging.WARNING
    _console_handler.setLevel(max(_console_handler.level, logging.WARNING))


def attach_log_file(path: str | Path) -> Path:
    """Also write the log to `path` (replacing any earlier run's file handler)."""
    global _file_handler
    _ensure_console_handler()
    root = logging.getLogger(LOGGER_NAME)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        if _file_handler is not None:
            root.removeHandler(_file_handler)
            _file_handler.close()
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(_FILE_FORMAT))
        handler.setLevel(_cap(root.getEffectiveLevel()))
        root.addHandler(handler)
        _file_handler = handler
    return path


def detach_log_file() -> None:
    """Stop writing to the run's log file (end of a run)."""
    global _file_handler
    with _lock:
        if _file_handler is not None:
            logging.getLogger(LOGGER_NAME).removeHandler(_file_handler)
            _file_handler.close()
            _file_handler = None


class MetricSink(Protocol):
    """Somewhere metrics go: a file, TensorBoard, W&B."""

    def write(self, metrics: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends one JSON object per record to `metrics.jsonl`, flushed each time.

    With `resume_step` (a run resumed from the checkpoint of that step), rows of a later step,
    written by the run that went on past that checkpoint before it stopped, are dropped first
    (the file is replaced atomically), so no step appears twice.
    """

    def __init__(self, path: str | Path, *, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            self._drop_rows_after(resume_step)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def _drop_rows_after(self, step: int) -> None:
        kept, dropped = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row_step = json.loads(line)["step"]
            except (ValueError, KeyError, TypeError):
                dropped += 1  # e.g. a line cut short by a crash
                continue
            if isinstance(row_step, int) and row_step <= step:
                kept.append(line)
            else:
                dropped += 1
        if not dropped:
            return
        temp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        temp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        os.replace(temp, self.path)
        get_logger("metrics").info(
            "%s: dropped %d rows past step %d (written after the checkpoint this run resumes from)",
            self.path,
            dropped,
            step,
        )

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        if self._file is None:
            raise RuntimeError(f"metrics file {self.path} is already closed")
        record: dict[str, object] = {"step": step, "time": round(time.time(), 3)}
        for key, value in metrics.items():
            record[key] = value if math.isfinite(value) else str(value)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoardSink:
    """TensorBoard event files in the run directory (`tensorboard --logdir runs/`).

    With `resume_step`, TensorBoard hides the events of later steps written before (its
    `purge_step`), so a resumed run's curves do not show those steps twice.
    """

    def __init__(self, directory: str | Path, *, resume_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resume_step is None else resume_step + 1
        self._writer: SummaryWriter | None = SummaryWriter(log_dir=str(directory), purge_step=purge)

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        if self._writer is None:
            return
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class WandbSink:
    """Weights & Biases, offline by default (`wandb sync` uploads later). Never required."""

    def __init__(self, directory: str | Path, project: str, run_name: str, mode: str) -> None:
        try:
            import wandb
        except ImportError:
            raise RuntimeError(
                "logging.wandb is on but the wandb package is not installed "
                "(pip install wandb, or set logging.wandb=false)"
            ) from None
        self._run = wandb.init(project=project, name=run_name, dir=str(directory), mode=mode)

    def write(self, metrics: Mapping[str, float], step: int) -> None:
        self._run.log(dict(metrics), step=step)

    def close(self) -> None:
        self._run.finish()


class MetricsRecorder:
    """Fans metrics out to every sink; thread-safe, and a failing sink never stops the others."""

    def __init__(self, sinks: list[MetricSink] | None = None) -> None:
        self._sinks: list[MetricSink] = list(sinks or [])
        self._lock = threading.Lock()
        self._latest: dict[str, float] = {}
        self._logger = get_logger("metrics")

    def add_sink(self, sink: MetricSink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def record(self, metrics: Mapping[str, float], step: int) -> None:
        if not metrics:
            return
        clean = {str(key): float(value) for key, value in metrics.items()}
        with self._lock:
            self._latest.update(clean)
            for sink in self._sinks:
                try:
                    sink.write(clean, step)
                except Exception:
                    self._logger.exception("metric sink %s failed at step %d", sink, step)

    @property
    def latest(self) -> dict[str, float]:
        """The most recent value of every metric recorded so far (for displays)."""
        with self._lock:
            return dict(self._latest)

    def close(self) -> None:
        with self._lock:
            for sink in self._sinks:
                try:
                    sink.close()
                except Exception:
                    self._logger.exception("closing metric sink %s failed", sink)
            self._sinks.clear()


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Read back a `metrics.jsonl` file (reports, tests)."""
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
    return records
