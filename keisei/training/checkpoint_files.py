"""Durable file operations: checksummed safetensors files, fsync, atomic small files.

A checkpoint survives a crash only if its bytes reach the disk before the rename that publishes
it. These helpers write, `fsync` the file, and `fsync` the directory that holds a new name; on
platforms without directory fsync (Windows) that step is skipped.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

_CHUNK = 1 << 22


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


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> FileRecord:
    """Write `tensors` (CPU, contiguous) as a safetensors file, fsync it, return its record."""
    save_file(tensors, path, metadata={"format": "pt"})
    return hash_file(path, sync=True)


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
