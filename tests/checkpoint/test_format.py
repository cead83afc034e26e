"""The on-disk format: our safetensors writer is read back by the safetensors library, bit for
bit, for every supported dtype; the JSON codec round-trips what state_dicts hold."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file

from keisei.checkpoint import CheckpointError, CheckpointStore
from keisei.checkpoint.codec import decode, encode
from keisei.checkpoint.files import SAFETENSORS_DTYPES, write_tensors
from tests.checkpoint.helpers import make_state, make_training


def _sample(dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randint(
        0,
        256,
        (math.prod(shape) * torch.empty((), dtype=dtype).element_size(),),
        dtype=torch.uint8,
        generator=generator,
    )
    return raw.view(dtype).reshape(shape) if raw.numel() else torch.empty(shape, dtype=dtype)


@pytest.mark.parametrize("dtype", list(SAFETENSORS_DTYPES), ids=str)
def test_written_files_load_with_the_safetensors_library(
    tmp_path: Path, dtype: torch.dtype
) -> None:
    if dtype == torch.bool:
        tensors = {"flags": torch.tensor([True, False, True]), "scalar": torch.tensor(False)}
    else:
        tensors = {
            "matrix": _sample(dtype, (3, 5), 1),
            "scalar": _sample(dtype, (), 2),
            "empty": _sample(dtype, (0, 4), 3),
        }
    tensors["f32"] = torch.arange(7, dtype=torch.float32)  # mixed element sizes stay aligned
    tensors["u8"] = torch.arange(3, dtype=torch.uint8)
    record = write_tensors(tmp_path / "t.safetensors", tensors)
    data = (tmp_path / "t.safetensors").read_bytes()
    assert record.size == len(data)
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    loaded = load_file(tmp_path / "t.safetensors")
    assert loaded.keys() == tensors.keys()
    for key, tensor in tensors.items():
        assert loaded[key].dtype == tensor.dtype and loaded[key].shape == tensor.shape
        as_bytes = loaded[key].reshape(-1).view(torch.uint8)
        assert torch.equal(as_bytes, tensor.reshape(-1).view(torch.uint8)), key
    with safe_open(tmp_path / "t.safetensors", framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}


def test_unsupported_tensors_fail_at_save_time(tmp_path: Path) -> None:
    model, _, _ = make_training()
    model.register_buffer("phase", torch.zeros(2, dtype=torch.complex64))
    with CheckpointStore(tmp_path) as store, pytest.raises(CheckpointError, match="complex64"):
        store.save(make_state(1, model))
    sparse, _, _ = make_training()
    sparse.register_buffer("mask", torch.eye(3).to_sparse())
    with CheckpointStore(tmp_path) as store, pytest.raises(CheckpointError, match="dense"):
        store.save(make_state(1, sparse))


def test_non_contiguous_and_aliased_tensors_are_stored(tmp_path: Path) -> None:
    model, _, _ = make_training()
    model.register_buffer("transposed", torch.arange(12.0).reshape(3, 4).t())
    model.register_buffer("alias", model.transposed)
    with CheckpointStore(tmp_path, async_save=False) as store:
        store.save(make_state(1, model))
    loaded = store.load_latest().model_state
    assert torch.equal(loaded["transposed"], model.transposed)
    assert torch.equal(loaded["alias"], model.transposed)


JSON_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**62), 2**62)
    | st.floats(allow_nan=False)
    | st.sampled_from([math.inf, -math.inf])
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.dictionaries(st.integers(0, 99), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_LIKE)
def test_codec_round_trips_through_strict_json(value: Any) -> None:
    encoded = encode(value, prefix="x")
    text = json.dumps(encoded, allow_nan=False)
    assert decode(json.loads(text), {}) == value


def test_codec_handles_nan_reserved_keys_and_tensors() -> None:
    tensors: dict[str, torch.Tensor] = {}
    value = {"__keisei__": "user data", "nan": math.nan, "t": torch.ones(2)}
    encoded = encode(value, prefix="p", tensors=tensors.__setitem__)
    decoded = decode(json.loads(json.dumps(encoded, allow_nan=False)), tensors)
    assert decoded["__keisei__"] == "user data"
    assert math.isnan(decoded["nan"])
    assert decoded["t"] is tensors["p/t"]
    with pytest.raises(ValueError, match="unknown tagged value"):
        decode({"__keisei__": "pickle", "data": "..."}, {})
    with pytest.raises(ValueError, match="malformed"):
        decode({"__keisei__": "tensor", "key": "missing"}, {})
