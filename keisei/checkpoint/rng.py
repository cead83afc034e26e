"""Capture and restore every random-number generator a training run draws from.

A resumed run must continue the same random sequence as the run that saved the checkpoint, so the
checkpoint holds the states of Python's `random`, NumPy's global generator, torch's CPU generator
and, when CUDA is in use, every CUDA device's generator. The state is plain JSON (byte states as
base64) so it can live in the manifest.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from keisei.log import get_logger

_logger = get_logger("checkpoint")


def _bytes_to_text(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def _text_to_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text, validate=True)), dtype=torch.uint8)


def capture_rng_state() -> dict[str, Any]:
    """The current state of every generator, as JSON-ready data.

    CUDA states are included only when CUDA has been initialised: asking earlier would start CUDA
    in a process that never used it (and its generators are still at their seeds anyway).
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": [int(key) for key in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch_cpu": _bytes_to_text(torch.get_rng_state()),
        "torch_cuda": None,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = [_bytes_to_text(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put every generator back to `state` (from `capture_rng_state`).

    CUDA states are restored when this process has as many CUDA devices as the saving one;
    otherwise they are skipped with a warning (the CPU generators are still restored).
    """
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            np.asarray(numpy["keys"], dtype=np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(_text_to_bytes(state["torch_cpu"]))
    cuda = state.get("torch_cuda")
    if cuda is None:
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available != len(cuda):
        _logger.warning(
            "the checkpoint holds random states for %d CUDA device(s) but this process has %d; "
            "CUDA random streams are not restored",
            len(cuda),
            available,
        )
        return
    torch.cuda.set_rng_state_all([_text_to_bytes(text) for text in cuda])
