"""Reading checkpoints back: manifest checks, checksum verification, restoring into objects.

The manifest is checked before anything in it is trusted: its `manifest_sha256` must be the
sha256 of its own canonical content (`keisei.checkpoint.files.manifest_digest`), and its step,
name and clean flag must agree with each other and with the directory it is in (a checkpoint
directory renamed to another step, or a manifest copied into another checkpoint, is refused; a
directory whose name is not a checkpoint name, e.g. a copy kept as `best/`, makes no claim to
check). Any failure is a `CheckpointCorruptError` naming `manifest.json`, so `load_latest` falls
back past it as it does past damaged weights. Every data file is then verified against the sha256
in the manifest before it is parsed, and parsing uses safetensors and JSON only, never pickle.
Restoring into a model first compares the stored architecture and tensor names/shapes with the
target, so a wrong checkpoint fails with a message naming the difference rather than deep inside
`load_state_dict`.

Manifests of format version 1 carry no checksum of their own. They still load (so older runs can
be resumed and played), with a warning, once per checkpoint, that damage to them cannot be
detected; a manifest of version 2 or later without its checksum is refused as damaged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from keisei.checkpoint.codec import decode, encode
from keisei.checkpoint.errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointFormatError,
    CheckpointMismatchError,
)
from keisei.checkpoint.files import hash_file, manifest_digest
from keisei.checkpoint.layout import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_DIGEST,
    MANIFEST_DIGEST_SINCE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    checkpoint_name,
    parse_checkpoint_name,
    resolve_checkpoint,
    validate_name,
)
from keisei.checkpoint.rng import restore_rng_state
from keisei.log import get_logger

_SHA256 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("step", "files", "model", "counters", "architecture", "rng")
_REQUIRED_SINCE_DIGEST = ("name", "clean")
_MAX_LISTED = 8

_logger = get_logger("checkpoint")
_warned_unprotected: set[Path] = set()


def _corrupt(path: Path, file: str | None, what: str) -> CheckpointCorruptError:
    where = path / file if file else path
    return CheckpointCorruptError(f"corrupt checkpoint: {where}: {what}", path=path, file=file)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the checkpoint at `path` (see `resolve_checkpoint`), format-checked."""
    path = resolve_checkpoint(path)
    try:
        text = (path / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _corrupt(path, MANIFEST, "missing (the checkpoint is incomplete)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _corrupt(path, MANIFEST, f"unreadable: {exc}") from exc
    try:
        manifest = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise _corrupt(path, MANIFEST, f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise _corrupt(path, MANIFEST, f"not a {FORMAT_NAME} manifest")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _corrupt(path, MANIFEST, f"bad format_version {version!r}")
    _check_digest(path, manifest, version)
    if version > FORMAT_VERSION:
        raise CheckpointFormatError(
            f"checkpoint {path} has format version {version}; this Keisei reads up to "
            f"{FORMAT_VERSION}: upgrade Keisei to load it"
        )
    required = _REQUIRED + (_REQUIRED_SINCE_DIGEST if version >= MANIFEST_DIGEST_SINCE else ())
    missing = [key for key in required if key not in manifest]
    if missing:
        raise _corrupt(path, MANIFEST, f"lacks {', '.join(missing)}")
    _check_identity(path, manifest)
    files = manifest["files"]
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise _corrupt(path, MANIFEST, f"does not list {MODEL_FILE}")
    for name, record in files.items():
        try:
            validate_name(name, "file name")
        except CheckpointError:
            raise _corrupt(path, MANIFEST, f"lists an unsafe file name {name!r}") from None
        if not (
            isinstance(record, dict)
            and isinstance(record.get("sha256"), str)
            and _SHA256.fullmatch(record["sha256"])
            and isinstance(record.get("bytes"), int)
        ):
            raise _corrupt(path, MANIFEST, f"has a malformed record for {name}")
    return manifest


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _check_digest(path: Path, manifest: dict[str, Any], version: int) -> None:
    """Raise unless the manifest's own checksum holds (a version 1 manifest has none: warn)."""
    recorded = manifest.get(MANIFEST_DIGEST)
    if recorded is None:
        if version > FORMAT_VERSION:
            return  # a newer format: the caller says so
        if version >= MANIFEST_DIGEST_SINCE:
            raise _corrupt(
                path,
                MANIFEST,
                f"lacks {MANIFEST_DIGEST}, the checksum of its own content that format version "
                f"{version} requires (the manifest was modified or damaged)",
            )
        if path not in _warned_unprotected:
            _warned_unprotected.add(path)
            _logger.warning(
                "checkpoint %s has format version %d: its manifest carries no checksum of its "
                "own, so damage to it (its step, counters, random or optimizer state) cannot be "
                "detected; a checkpoint saved by this version of Keisei is protected",
                path,
                version,
            )
        return
    if not isinstance(recorded, str) or not _SHA256.fullmatch(recorded):
        raise _corrupt(path, MANIFEST, f"has a malformed {MANIFEST_DIGEST} {recorded!r:.80}")
    try:
        actual = manifest_digest(manifest)
    except ValueError as exc:
        raise _corrupt(path, MANIFEST, f"holds a value strict JSON cannot: {exc}") from None
    if actual != recorded:
        raise _corrupt(
            path,
            MANIFEST,
            f"{MANIFEST_DIGEST} checksum mismatch (the manifest was modified or damaged)",
        )


def _check_identity(path: Path, manifest: Mapping[str, Any]) -> None:
    """Raise unless step, name and clean flag agree with each other and with the directory."""
    step, clean = manifest["step"], manifest.get("clean", True)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise _corrupt(path, MANIFEST, f"has a bad step {step!r:.80}")
    if not isinstance(clean, bool):
        raise _corrupt(path, MANIFEST, f"has a bad clean flag {clean!r:.80}")
    expected = checkpoint_name(step, clean=clean)
    name = manifest.get("name", expected)  # only version 1 manifests may lack it
    if name != expected:
        raise _corrupt(
            path,
            MANIFEST,
            f"names the checkpoint {name!r:.80}, but its step {step} and clean flag {clean} make "
            f"it {expected}",
        )
    if parse_checkpoint_name(path.name) is not None and path.name != expected:
        raise _corrupt(
            path,
            MANIFEST,
            f"is the manifest of {expected} (step {step}), not of {path.name}: the directory "
            "was renamed or the manifest copied from another checkpoint",
        )


def verify_file(path: Path, manifest: Mapping[str, Any], name: str) -> Path:
    """Check `path/name` against its size and sha256 in the manifest; returns its path."""
    record = manifest["files"].get(name)
    if record is None:
        raise _corrupt(path, MANIFEST, f"does not list {name}")
    file = path / name
    try:
        actual = hash_file(file)
    except FileNotFoundError:
        raise _corrupt(path, name, "missing") from None
    except OSError as exc:
        raise _corrupt(path, name, f"unreadable: {exc}") from exc
    if actual.size != record["bytes"]:
        raise _corrupt(
            path, name, f"truncated or resized: {actual.size} bytes, expected {record['bytes']}"
        )
    if actual.sha256 != record["sha256"]:
        raise _corrupt(path, name, "sha256 checksum mismatch (the file was modified or damaged)")
    return file


def _load_tensors(path: Path, manifest: Mapping[str, Any], name: str) -> dict[str, torch.Tensor]:
    file = verify_file(path, manifest, name)
    try:
        return load_file(file, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _corrupt(path, name, f"not a readable safetensors file: {exc}") from exc


def _decoded(path: Path, value: Any, tensors: Mapping[str, torch.Tensor], what: str) -> Any:
    try:
        return decode(value, tensors)
    except ValueError as exc:
        raise _corrupt(path, MANIFEST, f"{what}: {exc}") from None


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
                raise _corrupt(
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
        raise _corrupt(path, MODEL_FILE, "holds other tensors than the manifest lists")
    optimizer_tensors: dict[str, torch.Tensor] = {}
    if OPTIMIZER_FILE in manifest["files"]:
        optimizer_tensors = _load_tensors(path, manifest, OPTIMIZER_FILE)
    return LoadedCheckpoint(path, manifest, model_state, optimizer_tensors)
