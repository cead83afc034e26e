"""Checkpoints: the store (atomic, asynchronous, checksummed writes; safe loading with fallback;
retention) and the layout of a run directory.

This layer sits below evaluation and training: it needs only the config and the logger, so
everything that reads or writes a checkpoint (the trainer, evaluation, the USI engine) imports it
from here.
"""

from keisei.checkpoint.errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointFormatError,
    CheckpointMismatchError,
    CheckpointNameError,
    CheckpointNotFoundError,
    CheckpointWriteError,
)
from keisei.checkpoint.layout import (
    checkpoint_dirs,
    checkpoint_name,
    resolve_checkpoint,
    run_checkpoint_dir,
    step_of,
    validate_name,
)
from keisei.checkpoint.load import LoadedCheckpoint, load_checkpoint
from keisei.checkpoint.manifest import read_manifest
from keisei.checkpoint.results import read_evaluation, record_evaluation
from keisei.checkpoint.rng import capture_rng_state, restore_rng_state
from keisei.checkpoint.snapshot import TrainingState
from keisei.checkpoint.store import CheckpointStore, StateSaver, WriteOutcome
from keisei.checkpoint.weights import (
    import_state_dict,
    load_model_weights,
    load_network,
    read_architecture,
)

__all__ = [
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "CheckpointNameError",
    "CheckpointNotFoundError",
    "CheckpointStore",
    "CheckpointWriteError",
    "LoadedCheckpoint",
    "StateSaver",
    "TrainingState",
    "WriteOutcome",
    "capture_rng_state",
    "checkpoint_dirs",
    "checkpoint_name",
    "import_state_dict",
    "load_checkpoint",
    "load_model_weights",
    "load_network",
    "read_architecture",
    "read_evaluation",
    "read_manifest",
    "record_evaluation",
    "resolve_checkpoint",
    "restore_rng_state",
    "run_checkpoint_dir",
    "step_of",
    "validate_name",
]
