"""Reading checkpoints back: loading a verified checkpoint, restoring it into objects.

What is read is checked first (`keisei.checkpoint.manifest`: the manifest's own checksum and
identity, each data file's sha256), and parsing uses safetensors and JSON only, never pickle.
Restoring into a model first compares the stored architecture and tensor names/shapes with the
target, so a wrong checkpoint fails with a message naming the difference rather than deep inside
`load_state_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from keisei.checkpoint.codec import decode, encode
from keisei.checkpoint.errors import CheckpointMismatchError
from keisei.checkpoint.layout import MANIFEST, MODEL_FILE, OPTIMIZER_FILE, resolve_checkpoint
from keisei.checkpoint.manifest import corrupt, read_manifest, verify_file
from keisei.checkpoint.rng import restore_rng_state

_MAX_LISTED = 8


def _load_tensors(path: Path, manifest: Mapping[str, Any], name: str) -> dict[str, torch.Tensor]:
    file = verify_file(path, manifest, name)
    try:
        return load_file(file, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise corrupt(path, name, f"not a readable safetensors file: {exc}") from exc


def _decoded(path: Path, value: Any, tensors: Mapping[str, torch.Tensor], what: str) -> Any:
    try:
        return decode(value, tensors)
    except ValueError as exc:
        raise corrupt(path, MANIFEST, f"{what}: {exc}") from None


def _normalised(value: Any) -> Any:
    return encode(value, prefix="architecture")


def _list(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" (and {len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def architecture_differences(manifest: Mapping[str, Any], architecture: Mapping[str, Any]) -> str:
    """How the stored architecture differs from `architecture` ("" when they are the same)."""
    stored, wanted = manifest["architecture"], _normalised(dict(architecture))
    if stored == wanted:
        return ""
    if not isinstance(stored, dict):
        return f"checkpoint {stored!r}, model {wanted!r}"
    diffs = [
        f"{key}: checkpoint {stored.get(key)!r}, model {wanted.get(key)!r}"
        for key in sorted(set(stored) | set(wanted))
        if stored.get(key) != wanted.get(key)
    ]
    return _list(diffs)


def describe_mismatch(
    manifest: Mapping[str, Any],
    model: nn.Module,
    architecture: Mapping[str, Any] | None = None,
) -> list[str]:
    """How the checkpoint differs from `model` (and `architecture`, if given); [] if it fits."""
    problems: list[str] = []
    if architecture is not None:
        differences = architecture_differences(manifest, architecture)
        if differences:
            problems.append(f"architecture differs: {differences}")
    stored_shapes = {
        key: tuple(spec["shape"]) for key, spec in manifest["model"]["tensors"].items()
    }
    model_shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = sorted(set(model_shapes) - set(stored_shapes))
    unexpected = sorted(set(stored_shapes) - set(model_shapes))
    shapes = [
        f"{key}: checkpoint {list(stored_shapes[key])}, model {list(model_shapes[key])}"
        for key in sorted(set(stored_shapes) & set(model_shapes))
        if stored_shapes[key] != model_shapes[key]
    ]
    if missing:
        problems.append(f"tensors the model has but the checkpoint lacks: {_list(missing)}")
    if unexpected:
        problems.append(f"tensors the checkpoint has but the model lacks: {_list(unexpected)}")
    if shapes:
        problems.append(f"shapes differ: {_list(shapes)}")
    return problems


@dataclass
class LoadedCheckpoint:
    """A verified checkpoint in memory, and the means to put it back into training objects."""

    path: Path
    manifest: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    optimizer_tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def step(self) -> int:
        return int(self.manifest["step"])

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.manifest["counters"])

    @property
    def config_hash(self) -> str:
        return str(self.manifest.get("config_hash", ""))

    @property
    def architecture(self) -> dict[str, Any]:
        return _decoded(self.path, self.manifest["architecture"], {}, "architecture")

    @property
    def metrics(self) -> dict[str, float]:
        return _decoded(self.path, self.manifest.get("metrics", {}), {}, "metrics")

    @property
    def callback_state(self) -> dict[str, Any]:
        return _decoded(self.path, self.manifest.get("callback_state", {}), {}, "callback_state")

    @property
    def extra(self) -> dict[str, Any]:
        return _decoded(self.path, self.manifest.get("extra", {}), {}, "extra")

    def check_model(self, model: nn.Module, architecture: Mapping[str, Any] | None = None) -> None:
        """Raise `CheckpointMismatchError` unless this checkpoint fits `model`."""
        problems = describe_mismatch(self.manifest, model, architecture)
        if problems:
            raise CheckpointMismatchError(
                f"checkpoint {self.path} does not fit the model: " + "; ".join(problems)
            )

    def restore_model(
        self, model: nn.Module, *, architecture: Mapping[str, Any] | None = None
    ) -> None:
        """Copy the weights into `model` (on whatever device it is), after `check_model`."""
        self.check_model(model, architecture)
        model.load_state_dict(self.model_state, strict=True)

    def _state(self, part: str, target: object) -> Any:
        entry = self.manifest.get(part)
        if entry is None:
            raise CheckpointMismatchError(f"checkpoint {self.path} holds no {part} state")
        wanted = f"{type(target).__module__}.{type(target).__qualname__}"
        if entry.get("class") != wanted:
            raise CheckpointMismatchError(
                f"checkpoint {self.path} holds the state of a {entry.get('class')} {part}, "
                f"not of a {wanted}"
            )
        # Fresh copies: `load_state_dict` keeps CPU tensors as they are, and two objects restored
        # from one checkpoint must not share (and both update) the same state tensors.
        tensors = {key: value.clone() for key, value in self.optimizer_tensors.items()}
        return _decoded(self.path, entry["state"], tensors, part)

    def restore_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Load the optimizer state; its next step is bitwise the one the saving run would take."""
        state = self._state("optimizer", optimizer)
        saved = [len(group["params"]) for group in state["param_groups"]]
        current = [len(group["params"]) for group in optimizer.param_groups]
        if saved != current:
            raise CheckpointMismatchError(
                f"checkpoint {self.path}: optimizer parameter groups hold {saved} parameters, "
                f"the optimizer's hold {current}"
            )
        params = [param for group in optimizer.param_groups for param in group["params"]]
        for index, per_param in state["state"].items():
            if not isinstance(index, int) or not 0 <= index < len(params):
                raise corrupt(
                    self.path, MANIFEST, f"optimizer state for unknown parameter {index}"
                )
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"):
                value = per_param.get(key)
                shape = tuple(params[index].shape)
                if isinstance(value, torch.Tensor) and tuple(value.shape) != shape:
                    raise CheckpointMismatchError(
                        f"checkpoint {self.path}: optimizer state {key} of parameter {index} has "
                        f"shape {list(value.shape)}, the parameter {list(shape)}"
                    )
        try:
            optimizer.load_state_dict(state)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointMismatchError(f"checkpoint {self.path}: optimizer: {exc}") from exc

    def restore_scheduler(self, scheduler: Any) -> None:
        """Load the learning-rate scheduler's state."""
        scheduler.load_state_dict(self._state("scheduler", scheduler))

    def restore_scaler(self, scaler: Any) -> None:
        """Load the AMP gradient scaler's state."""
        scaler.load_state_dict(self._state("scaler", scaler))

    def restore_rng(self) -> None:
        """Put Python, NumPy, torch CPU (and CUDA, when present) generators back as saved."""
        restore_rng_state(self.manifest["rng"])

    def restore(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any | None = None,
        scaler: Any | None = None,
        *,
        architecture: Mapping[str, Any] | None = None,
        rng: bool = True,
    ) -> None:
        """Everything a resume needs, in one call (callback state is the trainer's to apply)."""
        self.restore_model(model, architecture=architecture)
        if optimizer is not None:
            self.restore_optimizer(optimizer)
        if scheduler is not None:
            self.restore_scheduler(scheduler)
        if scaler is not None:
            self.restore_scaler(scaler)
        if rng:
            self.restore_rng()


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Load and verify the checkpoint at `path` (see `resolve_checkpoint`).

    Raises `CheckpointCorruptError` naming the first file that is missing, truncated or fails its
    checksum; `CheckpointFormatError` for a format this version cannot read.
    """
    path = resolve_checkpoint(path)
    manifest = read_manifest(path)
    model_state = _load_tensors(path, manifest, MODEL_FILE)
    expected = set(manifest["model"].get("tensors", {}))
    if set(model_state) != expected:
        raise corrupt(path, MODEL_FILE, "holds other tensors than the manifest lists")
    optimizer_tensors: dict[str, torch.Tensor] = {}
    if OPTIMIZER_FILE in manifest["files"]:
        optimizer_tensors = _load_tensors(path, manifest, OPTIMIZER_FILE)
    return LoadedCheckpoint(path, manifest, model_state, optimizer_tensors)
