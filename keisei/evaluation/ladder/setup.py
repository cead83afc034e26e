"""Setting up a ladder: its settings (from a config file, the run's config.yaml or the defaults),
the references chosen, each checked for its program before any game, and their players."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from keisei.checkpoint.layout import resolve_checkpoint
from keisei.checkpoint.run_layout import CONFIG_FILE
from keisei.config import (
    ConfigError,
    LadderConfig,
    LadderReference,
    check_opponent_spec,
    load_config,
)
from keisei.evaluation.players.base import Player
from keisei.evaluation.players.opponents import make_opponent


def ladder_settings(
    target: str | Path, config_file: str | Path | None, overrides: Sequence[str] = ()
) -> LadderConfig:
    """The `ladder` section: from `config_file`, else from the config.yaml of the run `target`
    is in (a run directory or a checkpoint), else the defaults; then `overrides`."""
    if not Path(target).exists():
        raise ConfigError(f"{target}: no such run directory or checkpoint")
    if config_file is None:
        run_config = resolve_checkpoint(target).parent.parent / CONFIG_FILE
        config_file = run_config if run_config.is_file() else None
    try:
        return load_config(config_file, overrides).ladder
    except ConfigError as exc:
        raise ConfigError(f"{config_file}: {exc}" if config_file else str(exc)) from None


def recalibration_settings(
    target: str | Path | None, config_file: str | Path | None, overrides: Sequence[str] = ()
) -> tuple[LadderConfig, Path]:
    """The `ladder` section for `--recalibrate` and the directory of the runs it is for: those
    of the run `target` is in (as `ladder_settings`), else of `config_file` (or the defaults)
    with its `logging.model_dir`."""
    if target is not None:
        settings = ladder_settings(target, config_file, overrides)
        return settings, resolve_checkpoint(target).parent.parent.parent
    try:
        config = load_config(config_file, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{config_file}: {exc}" if config_file else str(exc)) from None
    return config.ladder, Path(config.logging.model_dir)


def select_references(settings: LadderConfig, names: Sequence[str] = ()) -> list[LadderReference]:
    """The references named (all when none), in the ladder's order; each program checked."""
    known = [reference.name for reference in settings.references]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"--references: no reference named {', '.join(map(repr, unknown))} in "
                          f"ladder.references (it has {', '.join(map(repr, known))})")  # fmt: skip
    chosen = [r for r in settings.references if not names or r.name in names]
    if not chosen:
        raise ConfigError("ladder.references is empty: nothing to play")
    for reference in chosen:
        check_program(settings, reference)
    return chosen


def check_program(settings: LadderConfig, reference: LadderReference) -> None:
    """ConfigError naming the key unless the reference's program exists (a usi: executable, a
    checkpoint: directory)."""
    where = next((i for i, r in enumerate(settings.references) if r.name == reference.name), None)
    key = f"ladder.references.{where}.opponent" if where is not None else "opponent"
    try:
        check_opponent_spec(reference.opponent)
    except ValueError as exc:
        raise ConfigError(f"ladder reference {reference.name!r} ('{key}'): {exc}") from None


def reference_player(reference: LadderReference, *, seed: int, timeout_s: float,
                     device: str = "cpu") -> Player:  # fmt: skip
    """The player of a reference (an engine starts at its first game, not here)."""
    return make_opponent(reference.opponent, seed=seed, device=device, options=reference.options,
                         usi_byoyomi_ms=reference.byoyomi_ms, usi_nodes=reference.nodes,
                         usi_timeout_s=timeout_s)  # fmt: skip
