"""Turns Python state (optimizer, scheduler, callbacks) into JSON plus named tensors, and back.

`state_dict()`s hold more than JSON can say: int keys, tuples, non-finite floats, tensors. The
codec writes those as small tagged objects (`{"__keisei__": "tuple", ...}`) so a round trip gives
back the same types, and sends tensors to a separate mapping that is stored in a safetensors
file. Nothing here ever uses pickle: an unknown type is an error naming where it was found.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from keisei.checkpoint.errors import CheckpointError

TAG = "__keisei__"

TensorSink = Callable[[str, torch.Tensor], None]
"""Receives each tensor met while encoding, with the key it will be stored under."""


def encode(value: Any, *, prefix: str, tensors: TensorSink | None = None) -> Any:
    """JSON-ready copy of `value`; tensors go to `tensors` (an error when it is None).

    `prefix` names the value in error messages and starts every tensor key (`optimizer/state/0/
    exp_avg`). The result shares nothing mutable with `value`.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {TAG: "float", "value": repr(float(value))}
    if isinstance(value, np.generic):
        return encode(value.item(), prefix=prefix, tensors=tensors)
    if isinstance(value, torch.Tensor):
        if tensors is None:
            raise CheckpointError(f"{prefix}: tensors are not allowed here (JSON values only)")
        tensors(prefix, value)
        return {TAG: "tensor", "key": prefix}
    if isinstance(value, tuple | list):
        items = [
            encode(item, prefix=f"{prefix}/{i}", tensors=tensors) for i, item in enumerate(value)
        ]
        return items if isinstance(value, list) else {TAG: "tuple", "items": items}
    if isinstance(value, Mapping):
        plain = all(isinstance(key, str) for key in value) and TAG not in value
        if plain:
            return {
                key: encode(item, prefix=f"{prefix}/{key}", tensors=tensors)
                for key, item in value.items()
            }
        return {
            TAG: "dict",
            "items": [
                [
                    encode(key, prefix=f"{prefix}/<key>", tensors=None),
                    encode(item, prefix=f"{prefix}/{key}", tensors=tensors),
                ]
                for key, item in value.items()
            ],
        }
    raise CheckpointError(
        f"{prefix}: cannot store a value of type {type(value).__module__}.{type(value).__name__} "
        "in a checkpoint (allowed: None, bool, int, float, str, list, tuple, dict, tensor)"
    )


def _hashable(key: Any) -> Any:
    return tuple(_hashable(part) for part in key) if isinstance(key, list) else key


def decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of `encode`; `tensors` maps keys back to tensors.

    Raises `ValueError` on anything `encode` cannot have written; the loader reports it as a
    corrupt manifest.
    """
    if isinstance(value, list):
        return [decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {key: decode(item, tensors) for key, item in value.items()}
    try:
        if tag == "float":
            return float(value["value"])
        if tag == "tuple":
            return tuple(decode(item, tensors) for item in value["items"])
        if tag == "dict":
            return {
                _hashable(decode(key, tensors)): decode(item, tensors)
                for key, item in value["items"]
            }
        if tag == "tensor":
            return tensors[value["key"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed tagged value {value!r:.200}: {exc!r}") from None
    raise ValueError(f"unknown tagged value {tag!r}")
