"""Where checkpoints live on disk, what they are called, and how `latest` is found.

A store directory holds one directory per checkpoint, `step_000123456/` (the step, zero-padded so
names sort by step), and a `latest` file naming the newest committed one. Names are validated
before any path is built from them, so no name, pointer content or user input can lead outside
the store's directory.
"""

from __future__ import annotations

import re
from pathlib import Path

from keisei.checkpoint.errors import (
    CheckpointCorruptError,
    CheckpointNameError,
    CheckpointNotFoundError,
)
from keisei.log import get_logger

FORMAT_NAME = "keisei-checkpoint"
FORMAT_VERSION = 2
"""1: the first format. 2: the manifest carries `manifest_sha256`, the checksum of its own content
(see `keisei.checkpoint.files.manifest_digest`); version 1 manifests still load, with a warning."""
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest_sha256"
"""The manifest's field holding the sha256 of its own canonical content, without this field."""
MANIFEST_DIGEST_SINCE = 2
"""The first format version whose manifests must carry `MANIFEST_DIGEST`. Every later version
keeps it, computed the same way: that is how an older reader tells a newer checkpoint (its
checksum holds) from a damaged one (it does not)."""
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
POINTER = "latest"
CHECKPOINTS_SUBDIR = "checkpoints"
INTERRUPTED_SUFFIX = "-interrupted"
"""Names a checkpoint written when training stopped mid-epoch: loadable by its path, but never
`latest`, never in the retention policy, never a resume point unless named explicitly."""
TEMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
STEP_DIGITS = 9

_STEP_NAME = re.compile(rf"step_(\d{{{STEP_DIGITS},}})")
_ANY_CHECKPOINT_NAME = re.compile(_STEP_NAME.pattern + f"({re.escape(INTERRUPTED_SUFFIX)})?")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

_logger = get_logger("checkpoint")


def validate_name(name: str, what: str = "name") -> str:
    """Return `name` if it is a safe single path component, else raise `CheckpointNameError`.

    Allowed: 1-128 characters from letters, digits, `.`, `_`, `-`, starting with a letter or
    digit, and no `..` anywhere. So no separators, no hidden or relative names.
    """
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise CheckpointNameError(
            f"invalid {what} {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with "
            "a letter or digit, without path separators or '..'"
        )
    return name


def checkpoint_name(step: int, *, clean: bool = True) -> str:
    """The directory name of the checkpoint at `step` (`clean=False`: stopped mid-epoch)."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointNameError(f"a checkpoint step must be an int >= 0, got {step!r}")
    return f"step_{step:0{STEP_DIGITS}d}" + ("" if clean else INTERRUPTED_SUFFIX)


def step_of(name: str) -> int | None:
    """The step in a checkpoint directory name, or None if `name` is not one."""
    match = _STEP_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def parse_checkpoint_name(name: str) -> tuple[int, bool] | None:
    """`(step, clean)` of a checkpoint directory name, interrupted ones (`step_...-interrupted`,
    `clean` False) included; None if `name` is neither kind."""
    match = _ANY_CHECKPOINT_NAME.fullmatch(name)
    return (int(match.group(1)), match.group(2) is None) if match else None


def run_checkpoint_dir(model_dir: str | Path, run_name: str) -> Path:
    """`model_dir/<run_name>/checkpoints`, after checking that `run_name` is a safe name."""
    return Path(model_dir) / validate_name(run_name, "run name") / CHECKPOINTS_SUBDIR


def checkpoint_dirs(directory: Path, *, complete_only: bool = True) -> list[Path]:
    """Checkpoint directories directly inside `directory`, oldest step first.

    Symbolic links are ignored (the store never follows one out of its directory); with
    `complete_only`, so is any directory without a manifest.
    """
    found: list[tuple[int, Path]] = []
    try:
        entries = list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        step = step_of(entry.name)
        if step is None or entry.is_symlink() or not entry.is_dir():
            continue
        if complete_only and not (entry / MANIFEST).is_file():
            continue
        found.append((step, entry))
    return [path for _, path in sorted(found)]


def read_pointer(directory: Path) -> str | None:
    """The checkpoint name in `directory/latest`, or None when there is no pointer.

    A pointer whose content is not a checkpoint name raises `CheckpointCorruptError`.
    """
    pointer = directory / POINTER
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointCorruptError(
            f"checkpoint pointer {pointer} is unreadable: {exc}", path=directory, file=POINTER
        ) from exc
    if step_of(text) is None:
        raise CheckpointCorruptError(
            f"checkpoint pointer {pointer} holds {text[:80]!r}, not a checkpoint name",
            path=directory,
            file=POINTER,
        )
    return text


def latest_candidates(directory: Path) -> list[Path]:
    """Checkpoints to try for "latest", best first: the pointer's target, then newest first."""
    newest_first = checkpoint_dirs(directory)[::-1]
    try:
        name = read_pointer(directory)
    except CheckpointCorruptError as exc:
        _logger.warning("%s; using the newest complete checkpoint instead", exc)
        name = None
    if name is None:
        return newest_first
    target = directory / name
    return [target] + [path for path in newest_first if path != target]


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory that `path` designates.

    `path` may be a checkpoint directory (`.../step_000123456`), a store directory or the
    `latest` file in one (its latest checkpoint), or a run directory holding `checkpoints/`. For
    "latest", the pointer is followed when its target is complete, else the newest complete
    checkpoint is used with a warning. Checksums are verified when the checkpoint is loaded.
    """
    path = Path(path)
    if step_of(path.name) is not None and path.is_dir():
        return path
    if path.name == POINTER and not path.is_dir():
        directory = path.parent
    elif path.is_dir() and (path / MANIFEST).is_file():
        return path
    elif path.is_dir() and (path / CHECKPOINTS_SUBDIR).is_dir() and not (path / POINTER).exists():
        directory = path / CHECKPOINTS_SUBDIR
    elif path.is_dir():
        directory = path
    else:
        raise CheckpointNotFoundError(f"no checkpoint at {path}: no such directory")
    candidates = latest_candidates(directory)
    for rank, candidate in enumerate(candidates):
        if (candidate / MANIFEST).is_file():
            if rank:
                _logger.warning(
                    "the latest pointer in %s is missing or unusable; using %s",
                    directory,
                    candidate.name,
                )
            return candidate
    raise CheckpointNotFoundError(f"no complete checkpoint in {directory}")
