"""The manifest of a checkpoint, checked before anything in it is trusted, and each data file
verified against it.

The manifest's `manifest_sha256` must be the sha256 of its own canonical content
(`keisei.checkpoint.files.manifest_digest`), and its step, name and clean flag must agree with
each other and with the directory it is in (a checkpoint directory renamed to another step, or a
manifest copied into another checkpoint, is refused; a directory whose name is not a checkpoint
name, e.g. a copy kept as `best/`, makes no claim to check). Any failure is a
`CheckpointCorruptError` naming `manifest.json`, so `load_latest` falls back past it as it does
past damaged weights. Every data file is verified against its size and sha256 in the manifest
(`verify_file`) before it is parsed.

Manifests of format version 1 carry no checksum of their own. They still load (so older runs can
be resumed and played), with a warning, once per checkpoint, that damage to them cannot be
detected; a manifest of version 2 or later without its checksum is refused as damaged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keisei.checkpoint.errors import CheckpointCorruptError, CheckpointError, CheckpointFormatError
from keisei.checkpoint.files import hash_file, manifest_digest
from keisei.checkpoint.layout import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_DIGEST,
    MANIFEST_DIGEST_SINCE,
    MODEL_FILE,
    checkpoint_name,
    parse_checkpoint_name,
    resolve_checkpoint,
    validate_name,
)
from keisei.log import get_logger

_SHA256 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("step", "files", "model", "counters", "architecture", "rng")
_REQUIRED_SINCE_DIGEST = ("name", "clean")

_logger = get_logger("checkpoint")
_warned_unprotected: set[Path] = set()


def corrupt(path: Path, file: str | None, what: str) -> CheckpointCorruptError:
    """The error saying `what` is wrong with `file` of the checkpoint at `path` (None: itself)."""
    where = path / file if file else path
    return CheckpointCorruptError(f"corrupt checkpoint: {where}: {what}", path=path, file=file)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the checkpoint at `path` (see `resolve_checkpoint`), format-checked."""
    path = resolve_checkpoint(path)
    try:
        text = (path / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise corrupt(path, MANIFEST, "missing (the checkpoint is incomplete)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise corrupt(path, MANIFEST, f"unreadable: {exc}") from exc
    try:
        manifest = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise corrupt(path, MANIFEST, f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise corrupt(path, MANIFEST, f"not a {FORMAT_NAME} manifest")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise corrupt(path, MANIFEST, f"bad format_version {version!r}")
    _check_digest(path, manifest, version)
    if version > FORMAT_VERSION:
        raise CheckpointFormatError(
            f"checkpoint {path} has format version {version}; this Keisei reads up to "
            f"{FORMAT_VERSION}: upgrade Keisei to load it"
        )
    required = _REQUIRED + (_REQUIRED_SINCE_DIGEST if version >= MANIFEST_DIGEST_SINCE else ())
    missing = [key for key in required if key not in manifest]
    if missing:
        raise corrupt(path, MANIFEST, f"lacks {', '.join(missing)}")
    _check_identity(path, manifest)
    files = manifest["files"]
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise corrupt(path, MANIFEST, f"does not list {MODEL_FILE}")
    for name, record in files.items():
        try:
            validate_name(name, "file name")
        except CheckpointError:
            raise corrupt(path, MANIFEST, f"lists an unsafe file name {name!r}") from None
        if not (
            isinstance(record, dict)
            and isinstance(record.get("sha256"), str)
            and _SHA256.fullmatch(record["sha256"])
            and isinstance(record.get("bytes"), int)
        ):
            raise corrupt(path, MANIFEST, f"has a malformed record for {name}")
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
            raise corrupt(
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
        raise corrupt(path, MANIFEST, f"has a malformed {MANIFEST_DIGEST} {recorded!r:.80}")
    try:
        actual = manifest_digest(manifest)
    except ValueError as exc:
        raise corrupt(path, MANIFEST, f"holds a value strict JSON cannot: {exc}") from None
    if actual != recorded:
        raise corrupt(
            path,
            MANIFEST,
            f"{MANIFEST_DIGEST} checksum mismatch (the manifest was modified or damaged)",
        )


def _check_identity(path: Path, manifest: Mapping[str, Any]) -> None:
    """Raise unless step, name and clean flag agree with each other and with the directory."""
    step, clean = manifest["step"], manifest.get("clean", True)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise corrupt(path, MANIFEST, f"has a bad step {step!r:.80}")
    if not isinstance(clean, bool):
        raise corrupt(path, MANIFEST, f"has a bad clean flag {clean!r:.80}")
    expected = checkpoint_name(step, clean=clean)
    name = manifest.get("name", expected)  # only version 1 manifests may lack it
    if name != expected:
        raise corrupt(
            path,
            MANIFEST,
            f"names the checkpoint {name!r:.80}, but its step {step} and clean flag {clean} make "
            f"it {expected}",
        )
    if parse_checkpoint_name(path.name) is not None and path.name != expected:
        raise corrupt(
            path,
            MANIFEST,
            f"is the manifest of {expected} (step {step}), not of {path.name}: the directory "
            "was renamed or the manifest copied from another checkpoint",
        )


def verify_file(path: Path, manifest: Mapping[str, Any], name: str) -> Path:
    """Check `path/name` against its size and sha256 in the manifest; returns its path."""
    record = manifest["files"].get(name)
    if record is None:
        raise corrupt(path, MANIFEST, f"does not list {name}")
    file = path / name
    try:
        actual = hash_file(file)
    except FileNotFoundError:
        raise corrupt(path, name, "missing") from None
    except OSError as exc:
        raise corrupt(path, name, f"unreadable: {exc}") from exc
    if actual.size != record["bytes"]:
        raise corrupt(
            path, name, f"truncated or resized: {actual.size} bytes, expected {record['bytes']}"
        )
    if actual.sha256 != record["sha256"]:
        raise corrupt(path, name, "sha256 checksum mismatch (the file was modified or damaged)")
    return file
