"""What the trainer hands to the store (`TrainingState`) and the CPU copy taken of it (`Snapshot`).

Taking the snapshot is the only part of a save the training loop waits for: tensors are copied
into CPU buffers that are reused from one save to the next (pinned when the source is on a GPU),
and everything else is encoded to JSON, so nothing in the snapshot aliases live training state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from keisei.checkpoint.codec import encode
from keisei.checkpoint.errors import CheckpointError
from keisei.checkpoint.files import check_dtype
from keisei.checkpoint.layout import FORMAT_NAME, FORMAT_VERSION, checkpoint_name
from keisei.checkpoint.rng import capture_rng_state


@dataclass
class TrainingState:
    """Everything a checkpoint holds, as the trainer fills it at save time.

    `callback_state`, `architecture`, `metrics` and `extra` must be JSON-like (dicts, lists,
    tuples, numbers, strings, None). `metrics` feeds best-by-metric retention.
    """

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any | None = None
    """Anything with `state_dict()`/`load_state_dict()`, usually a torch LR scheduler."""
    scaler: Any | None = None
    """An AMP `torch.amp.GradScaler`, when mixed precision is in use."""
    counters: dict[str, int] = field(default_factory=dict)
    """E.g. `episodes`, `black_wins`, `white_wins`, `draws`."""
    callback_state: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    architecture: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    clean: bool = True
    """False when training stopped mid-epoch (during collection or the update): the state is
    not at an epoch boundary, so it is named `step_...-interrupted` and is never `latest`."""
    failure: str | None = None
    """Why training stopped, when the checkpoint was written on the way out of a failure."""


@dataclass
class Snapshot:
    """A CPU copy of a `TrainingState`, ready to write from another thread."""

    name: str
    step: int
    model_tensors: dict[str, torch.Tensor]
    optimizer_tensors: dict[str, torch.Tensor]
    manifest: dict[str, Any]

    @property
    def nbytes(self) -> int:
        tensors = [*self.model_tensors.values(), *self.optimizer_tensors.values()]
        return sum(t.numel() * t.element_size() for t in tensors)


class StagingBuffers:
    """CPU buffers for snapshots, reused by the next snapshot when shape and dtype match.

    Reuse avoids allocating (and, for GPU sources, pinning) a checkpoint's worth of memory on each
    save. The caller must not stage a new snapshot while an earlier one is still being written.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}
        self._next: dict[str, torch.Tensor] = {}
        self._cuda_devices: set[torch.device] = set()

    def stage(self, key: str, tensor: torch.Tensor) -> torch.Tensor:
        source = tensor.detach()
        check_dtype(key, source)
        pin = source.is_cuda
        buffer = self._buffers.get(key)
        if (
            buffer is None
            or buffer.shape != source.shape
            or buffer.dtype != source.dtype
            or (pin and not buffer.is_pinned())
        ):
            buffer = torch.empty(source.shape, dtype=source.dtype, device="cpu", pin_memory=pin)
        buffer.copy_(source, non_blocking=pin)
        if pin:
            self._cuda_devices.add(source.device)
        self._next[key] = buffer
        return buffer

    def finish(self) -> None:
        """Wait for device copies to land; what was staged since the last call becomes reusable."""
        for device in self._cuda_devices:
            torch.cuda.synchronize(device)
        self._cuda_devices.clear()
        self._buffers, self._next = self._next, {}

    def abort(self) -> None:
        """A snapshot failed half-way: drop what it staged (after its copies have landed)."""
        for device in self._cuda_devices:
            torch.cuda.synchronize(device)
        self._cuda_devices.clear()
        self._next.clear()

    def release(self) -> None:
        """Free the memory held for reuse (when the store closes)."""
        self._buffers.clear()
        self._next.clear()


def _qualname(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _stateful(
    obj: Any | None, prefix: str, sink: dict[str, torch.Tensor], buffers: StagingBuffers
) -> dict[str, Any] | None:
    if obj is None:
        return None

    def stage(key: str, tensor: torch.Tensor) -> None:
        sink[key] = buffers.stage(key, tensor)

    return {
        "class": _qualname(obj),
        "state": encode(obj.state_dict(), prefix=prefix, tensors=stage),
    }


def take_snapshot(state: TrainingState, buffers: StagingBuffers) -> Snapshot:
    """Copy `state` to CPU memory and JSON; returns once the copy is complete."""
    name = checkpoint_name(state.step, clean=state.clean)
    try:
        return _take(state, name, buffers)
    except BaseException:
        buffers.abort()
        raise


def _take(state: TrainingState, name: str, buffers: StagingBuffers) -> Snapshot:
    model_tensors: dict[str, torch.Tensor] = {}
    shapes: dict[str, dict[str, Any]] = {}
    for key, value in state.model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"model state entry {key!r} is a {type(value).__name__}")
        model_tensors[key] = buffers.stage(f"model/{key}", value)
        shapes[key] = {"dtype": str(value.dtype).removeprefix("torch."), "shape": list(value.shape)}
    optimizer_tensors: dict[str, torch.Tensor] = {}
    optimizer = _stateful(state.optimizer, "optimizer", optimizer_tensors, buffers)
    scheduler = _stateful(state.scheduler, "scheduler", optimizer_tensors, buffers)
    scaler = _stateful(state.scaler, "scaler", optimizer_tensors, buffers)
    buffers.finish()
    counters: Mapping[str, Any] = state.counters
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": name,
        "step": state.step,
        "created_unix": round(time.time(), 3),
        "clean": bool(state.clean),
        "failure": None if state.failure is None else str(state.failure),
        "torch_version": torch.__version__,
        "counters": {str(key): int(value) for key, value in counters.items()},
        "config_hash": str(state.config_hash),
        "architecture": encode(state.architecture, prefix="architecture"),
        "metrics": encode({str(k): float(v) for k, v in state.metrics.items()}, prefix="metrics"),
        "callback_state": encode(state.callback_state, prefix="callback_state"),
        "extra": encode(state.extra, prefix="extra"),
        "model": {"class": _qualname(state.model), "tensors": shapes},
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": scaler,
        "rng": capture_rng_state(),
    }
    return Snapshot(name, state.step, model_tensors, optimizer_tensors, manifest)
