"""Where a run lives: `runs/<run-name>/`, which config and checkpoint a resume starts from, and
what rank 0 opens there once the run can start (the log file, `config.yaml`, the metric sinks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from keisei import log
from keisei.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    read_manifest,
    resolve_checkpoint,
    validate_name,
)
from keisei.checkpoint.run_layout import RunLayout
from keisei.config import (
    Config,
    ConfigError,
    add_extra_callbacks,
    dump_config,
    load_config,
    parse_opponent_spec,
)


@dataclass(frozen=True)
class RunPlan:
    """A resolved `keisei train` invocation: config, run directory and resume point."""

    config: Config
    run_dir: Path
    resume_from: Path | None
    """The checkpoint to resume from (for `latest`: the newest; the store falls back if corrupt)."""
    resume_latest: bool = False


def default_run_name() -> str:
    return datetime.now().strftime("run-%Y%m%d-%H%M%S")


def plan_run(
    config_path: str | None,
    overrides: list[str],
    run_name: str | None,
    resume: str | None,
    callbacks: Sequence[str] = (),
) -> RunPlan:
    """Resolve the config, run directory and checkpoint for a fresh run or a resume.

    A fresh run uses `--config` (or the defaults) plus overrides. A resume (`latest`, a run
    directory, or a checkpoint directory) continues in the run's own directory with the config
    the run saved, plus overrides (e.g. a larger `training.total_timesteps`), unless `--config`
    names another file. `callbacks` (`package.module:ClassName`) are added to the config's
    `callbacks.extra`.
    """
    if resume is None:
        config = add_extra_callbacks(load_config(config_path, overrides), callbacks)
        check_runnable_here(config)
        name = validate_name(run_name or config.logging.run_name or default_run_name(), "run name")
        return RunPlan(config, Path(config.logging.model_dir) / name, None)

    if resume == "latest":
        base = load_config(config_path, overrides)
        name = run_name or base.logging.run_name
        if not name:
            raise ConfigError(
                "--resume latest needs --run-name (or logging.run_name) to find the run"
            )
        run_dir = Path(base.logging.model_dir) / validate_name(name, "run name")
        checkpoint_target: Path = RunLayout(run_dir).checkpoints
    else:
        target = Path(resume)
        if RunLayout(target).checkpoints.is_dir():
            run_dir, checkpoint_target = target, RunLayout(target).checkpoints
        else:
            checkpoint_target = target
            run_dir = target.resolve().parent.parent
    try:
        checkpoint = resolve_checkpoint(checkpoint_target)
    except CheckpointNotFoundError as exc:
        raise ConfigError(f"cannot resume: {exc}") from None
    saved = RunLayout(run_dir).config
    if config_path is None and not saved.is_file():
        raise ConfigError(f"cannot resume: {saved} is missing; pass --config")
    config = add_extra_callbacks(load_config(config_path or saved, overrides), callbacks)
    check_runnable_here(config)
    return RunPlan(config, run_dir, checkpoint, resume_latest=resume == "latest")


def check_runnable_here(config: Config) -> None:
    """What a config cannot know by itself, checked before any file is written: the training
    device exists on this machine, and every `checkpoint:` opponent is a checkpoint that loads
    its manifest. Raises `ConfigError` naming the key."""
    device = config.training.device
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise ConfigError(
                f"'training.device' = {device!r}, but this machine has {have}; use "
                "--set training.device=auto (or cpu)"
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"'training.device' = {device!r}, but MPS is not available here")
    for index, spec in enumerate(config.evaluation.opponents):
        kind, argument = parse_opponent_spec(spec)
        if kind != "checkpoint":
            continue
        try:
            read_manifest(resolve_checkpoint(argument))
        except CheckpointError as exc:
            raise ConfigError(f"'evaluation.opponents.{index}' = {spec!r}: {exc}") from None


Hold = Callable[[str, Callable[[], None]], None]
"""`hold(what, release)`: the teardown path calls `release` (named `what` in its log)."""


def open_run_outputs(
    config: Config, layout: RunLayout, *, resume_step: int | None, hold: Hold
) -> log.MetricsRecorder:
    """Create the run directory, attach the log file, write the config and open the metric
    sinks; `resume_step`: the step a resumed run goes on from (metric rows past it are
    superseded). Whatever must be given back is handed to `hold` with its closer as soon as it
    is taken, so the trainer's one teardown path releases it (newest first) even when a later
    piece fails to open."""
    layout.root.mkdir(parents=True, exist_ok=True)
    log.set_level(config.logging.level)
    log.attach_log_file(layout.log)
    hold("log file", log.detach_log_file)
    dump_config(config, layout.config)
    metrics = log.MetricsRecorder([log.JsonlSink(layout.metrics, resume_step=resume_step)])
    hold("metrics", metrics.close)
    if config.logging.tensorboard:
        metrics.add_sink(log.TensorBoardSink(layout.tensorboard, resume_step=resume_step))
    if config.logging.wandb:
        metrics.add_sink(
            log.WandbSink(
                layout.root,
                config.logging.wandb_project,
                layout.root.name,
                config.logging.wandb_mode,
            )
        )
    return metrics
