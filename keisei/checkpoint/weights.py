"""Model-only access to checkpoints, for evaluation opponents, past opponents and the USI engine.

These readers need the weights and the architecture, not the optimizer: they verify and load only
`model.safetensors` and the manifest. A plain `.pt`/`.pth` state dict can be imported too; it is
read with `torch.load(..., weights_only=True)`, which refuses anything but tensors and containers.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from keisei.checkpoint.codec import decode
from keisei.checkpoint.errors import CheckpointCorruptError, CheckpointError
from keisei.checkpoint.layout import MODEL_FILE, resolve_checkpoint
from keisei.checkpoint.manifest import read_manifest, verify_file
from keisei.model import FLOAT32, ActorCritic, Architecture, Precision

TORCH_SUFFIXES = (".pt", ".pth")
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")


def _tensor_dict(value: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(value, Mapping):
        for key in _NESTED_KEYS:
            if isinstance(value.get(key), Mapping):
                value = value[key]
                break
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and isinstance(tensor, torch.Tensor) for key, tensor in value.items()
    ):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(value)


def import_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a plain PyTorch state dict file without running any code it may contain."""
    path = Path(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no weights file {path}") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} cannot be read as plain weights (torch.load with weights_only=True "
            f"refused it): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    return _tensor_dict(loaded, path)


def load_model_weights(path: str | Path, *, verify: bool = True) -> dict[str, torch.Tensor]:
    """The model weights (on CPU) of the checkpoint at `path`.

    `path` may be anything `resolve_checkpoint` accepts (a checkpoint, a store or run directory,
    a `latest` file), a bare `.safetensors` file, or a `.pt`/`.pth` state dict (imported safely).
    Checkpoint files are checked against the manifest's sha256 unless `verify` is False.
    """
    path = Path(path)
    if path.suffix in TORCH_SUFFIXES and path.is_file():
        return import_state_dict(path)
    if path.suffix == ".safetensors" and path.is_file():
        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointCorruptError(
                f"{path} is not a readable safetensors file: {exc}",
                path=path.parent,
                file=path.name,
            ) from exc
    directory = resolve_checkpoint(path)
    manifest = read_manifest(directory)
    file = verify_file(directory, manifest, MODEL_FILE) if verify else directory / MODEL_FILE
    try:
        return load_file(file, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointCorruptError(
            f"corrupt checkpoint: {file}: not a readable safetensors file: {exc}",
            path=directory,
            file=MODEL_FILE,
        ) from exc


def read_architecture(path: str | Path) -> dict[str, Any]:
    """The architecture dict stored with the checkpoint at `path` (to rebuild the model)."""
    directory = resolve_checkpoint(path)
    manifest = read_manifest(directory)
    try:
        return decode(manifest["architecture"], {})
    except ValueError as exc:
        raise CheckpointCorruptError(
            f"corrupt checkpoint: {directory}: architecture: {exc}", path=directory, file=None
        ) from None


def load_network(
    path: str | Path, device: torch.device | str = "cpu", precision: Precision = FLOAT32
) -> ActorCritic:
    """The network a checkpoint holds (weights verified, no pickle), on `device`, computing in
    `precision`, in eval mode. A stored architecture this version cannot build, or weights that
    do not fit it, raise `CheckpointError` naming the checkpoint."""
    checkpoint = resolve_checkpoint(path)
    try:
        architecture = Architecture.from_dict(read_architecture(checkpoint))
    except ValueError as exc:
        raise CheckpointError(f"{checkpoint}: unusable architecture: {exc}") from None
    model = ActorCritic(architecture, precision)
    try:
        model.load_state_dict(load_model_weights(checkpoint))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{checkpoint}: the weights do not fit the stored architecture: {first}"
        ) from None
    return model.eval().to(device)
