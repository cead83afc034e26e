"""Durable file operations: checksummed safetensors files, the self-checksummed manifest, fsync,
atomic small files.

A checkpoint survives a crash only if its bytes reach the disk before the rename that publishes
it. These helpers write, `fsync` the file, and `fsync` the directory that holds a new name; on
platforms without directory fsync (Windows) that step is skipped.

The manifest holds the sha256 of every data file, and `manifest_sha256`, the sha256 of its own
content: the canonical JSON (`canonical_json`: keys sorted, no spaces, ASCII only, no NaN or
infinity) of the manifest without that field. The digest is over the content, not the file's
bytes, so it holds whatever the file's layout, and anything that parses to other content fails it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from keisei.checkpoint.errors import CheckpointError
from keisei.checkpoint.layout import MANIFEST_DIGEST

_CHUNK = 1 << 22
SAFETENSORS_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.uint16: "U16",
    torch.uint32: "U32",
    torch.uint64: "U64",
}
"""The tensor dtypes a checkpoint can hold, with their safetensors names."""


@dataclass(frozen=True)
class FileRecord:
    """What the manifest knows about a data file: its size and sha256."""

    sha256: str
    size: int

    def to_json(self) -> dict[str, object]:
        return {"sha256": self.sha256, "bytes": self.size}


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (new names, renames) durable."""
    if os.name == "nt":  # pragma: no cover - no directory fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path: Path, *, sync: bool = False) -> FileRecord:
    """sha256 and size of `path`; with `sync`, also fsync it (one pass over an open file)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        while read := handle.readinto(buffer):
            digest.update(view[:read])
            size += read
        if sync:
            os.fsync(handle.fileno())
    return FileRecord(digest.hexdigest(), size)


def check_dtype(key: str, tensor: torch.Tensor) -> None:
    """Raise `CheckpointError` unless `tensor` can be stored (dense, a safetensors dtype)."""
    if tensor.layout != torch.strided:
        raise CheckpointError(f"{key}: cannot store a {tensor.layout} tensor; make it dense")
    if tensor.dtype not in SAFETENSORS_DTYPES:
        raise CheckpointError(f"{key}: cannot store a tensor of dtype {tensor.dtype}")


def _write_all(handle: io.FileIO, data: memoryview, digest: Any) -> None:
    digest.update(data)
    while data:
        written = handle.write(data) or 0
        data = data[written:]


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> FileRecord:
    """Write `tensors` (CPU, contiguous) as a safetensors file, fsync it, return its record.

    The file is written here rather than by `safetensors.torch.save_file` so that the sha256 is
    computed in the same pass, the GIL is released during the big writes, and a failure is an
    `OSError` with its errno (ENOSPC, EROFS, ...). Files are read back with the safetensors
    library. Tensors are laid out largest element size first, so each is aligned.
    """
    if sys.byteorder != "little":  # pragma: no cover - safetensors data is little-endian
        raise CheckpointError("writing checkpoints needs a little-endian machine")
    order = sorted(tensors, key=lambda key: (-tensors[key].element_size(), key))
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for key in order:
        tensor = tensors[key]
        check_dtype(key, tensor)
        size = tensor.numel() * tensor.element_size()
        header[key] = {
            "dtype": SAFETENSORS_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    digest = hashlib.sha256()
    with open(path, "xb", buffering=0) as handle:
        _write_all(handle, memoryview(struct.pack("<Q", len(text)) + text), digest)
        for key in order:
            tensor = tensors[key]
            if tensor.numel():
                data = tensor.contiguous().reshape(-1).view(torch.uint8).numpy()
                _write_all(handle, memoryview(data), digest)
        os.fsync(handle.fileno())
    return FileRecord(digest.hexdigest(), 8 + len(text) + offset)


def canonical_json(value: Any) -> bytes:
    """The one serialisation of a JSON value that digests are computed over.

    Raises `ValueError` for a non-finite float (which strict JSON cannot hold).
    """
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 (hex) of `manifest`'s canonical JSON, without its `manifest_sha256` field.

    Raises `ValueError` if the manifest holds a non-finite float.
    """
    body = {key: value for key, value in manifest.items() if key != MANIFEST_DIGEST}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def seal_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes of `manifest.json`: `manifest` with its own digest as its last field.

    The bytes are parsed back and checked here, so a manifest that a reader could not verify
    (a value whose JSON does not read back as itself) fails the save instead of the load.
    """
    body = {key: value for key, value in manifest.items() if key != MANIFEST_DIGEST}
    digest = manifest_digest(body)
    data = json.dumps({**body, MANIFEST_DIGEST: digest}, allow_nan=False).encode("ascii")
    if manifest_digest(json.loads(data)) != digest:
        raise CheckpointError("the manifest does not read back as written; refusing to save it")
    return data


def write_durable(path: Path, data: bytes) -> None:
    """Write `data` to a new file `path` and fsync it (the caller fsyncs the directory)."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def replace_atomic(path: Path, data: bytes) -> None:
    """Replace file `path` with `data` atomically: readers see the old or the new content."""
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        write_durable(temp, data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
