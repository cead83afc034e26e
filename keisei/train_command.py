"""`keisei train` (registered on the main parser): one process, `--nproc-per-node` local ranks
(restarted after a failure up to `--max-restarts` times), or one rank under torchrun."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keisei.checkpoint.run_layout import RunLayout
from keisei.cli_args import add_config_args
from keisei.config import ConfigError
from keisei.log import get_logger

if TYPE_CHECKING:
    from keisei.training.distributed import World
    from keisei.training.run_dir import RunPlan


def _latest_line(run_dir: Path, final_step: int) -> str:
    """Where the run's latest checkpoint is, saying so when it is older than `final_step`."""
    from keisei.checkpoint import CheckpointStore, step_of

    latest = CheckpointStore(RunLayout(run_dir).checkpoints).latest()
    if latest is None:
        return "none was written"
    step = step_of(latest.name)
    if step is not None and step < final_step:
        return f"{latest} (step {step}: OLDER than the last completed step {final_step})"
    return str(latest)


def _train_argv(args: argparse.Namespace, run_name: str | None) -> list[str]:
    """The `keisei train` arguments each rank gets from `--nproc-per-node`."""
    argv = [] if args.config is None else ["--config", args.config]
    for override in args.overrides:
        argv += ["--set", override]
    for callback in args.callbacks:
        argv += ["--callback", callback]
    if run_name is not None:
        argv += ["--run-name", run_name]
    if args.resume is not None:
        argv += ["--resume", args.resume]
    if args.live is not None:
        argv.append("--live" if args.live else "--no-live")
    return argv


def _launch_ranks(args: argparse.Namespace) -> int:
    """Check the run once here, then start `--nproc-per-node` ranks (restarting them after a
    failure up to `--max-restarts` times)."""
    from keisei.config import check_world_size
    from keisei.training.distributed import check_devices_for_ranks
    from keisei.training.ranks.launch import launch
    from keisei.training.run_dir import plan_run

    plan = plan_run(args.config, args.overrides, args.run_name, args.resume, args.callbacks)
    check_world_size(plan.config, args.nproc_per_node)
    check_devices_for_ranks(plan.config, args.nproc_per_node)
    # A fixed name, so that every rank and every restart finds the same run directory.
    run_name = args.run_name if args.resume is not None else plan.run_dir.name
    if args.live is None and sys.stderr.isatty():
        args.live = True
    return launch(_train_argv(args, run_name), args.nproc_per_node, args.max_restarts)


def _resume_point(args: argparse.Namespace) -> str | None:
    """What this process resumes: `--resume`, or after a restart of the group (torchrun or
    `--nproc-per-node`), the run's latest checkpoint when it has one."""
    from keisei.checkpoint import CheckpointStore
    from keisei.training.distributed import max_restarts, restart_count, world_size_from_env
    from keisei.training.run_dir import plan_run

    restartable = max_restarts() > 0 and world_size_from_env() > 1
    if restartable and args.resume is None and args.run_name is None:
        raise ConfigError(
            "a group that may be restarted (torchrun --max-restarts) needs --run-name, so that "
            "the restarted ranks find the run and resume it"
        )
    if restart_count() == 0:
        return args.resume
    plan = plan_run(args.config, args.overrides, args.run_name, args.resume, args.callbacks)
    if CheckpointStore(RunLayout(plan.run_dir).checkpoints).latest() is None:
        get_logger().warning(
            "restart %d: the run has no checkpoint yet; starting over", restart_count()
        )
        return args.resume
    get_logger().warning(
        "restart %d: resuming %s from its latest checkpoint", restart_count(), plan.run_dir
    )
    return str(plan.run_dir)


def _cmd_train(args: argparse.Namespace) -> int:
    from keisei.training.distributed import world_size_from_env

    if world_size_from_env() > 1 and (args.nproc_per_node or args.max_restarts):
        raise ConfigError(
            "--nproc-per-node/--max-restarts start ranks themselves; under torchrun, give "
            "torchrun's own --nproc-per-node and --max-restarts instead"
        )
    if args.nproc_per_node is not None and args.nproc_per_node < 1:
        raise ConfigError(f"--nproc-per-node {args.nproc_per_node}: must be at least 1")
    if args.max_restarts < 0:
        raise ConfigError(f"--max-restarts {args.max_restarts}: must be 0 or more")
    if (args.nproc_per_node or 1) > 1 or args.max_restarts:
        return _launch_ranks(args)
    return _train_this_rank(args)


def _finish_together_quietly(world: World) -> None:
    """Every rank stopped at the same step: leave the group together (a rank that is gone
    already is no reason for another error)."""
    from keisei.training.distributed import DistributedError

    try:
        world.finish_together()
    except DistributedError as exc:
        get_logger().warning("%s", exc)


def _train_this_rank(args: argparse.Namespace) -> int:
    """Train as this process: alone, or as one rank of several (failing fast with the others:
    `keisei.training.ranks.failures`)."""
    from keisei.training.distributed import join_world
    from keisei.training.ranks.failures import FailFast
    from keisei.training.run_dir import plan_run

    resume = _resume_point(args)
    plan = plan_run(args.config, args.overrides, args.run_name, resume, args.callbacks)
    world = join_world(plan.config)
    try:
        with FailFast(world):
            return _train_in_world(args, plan, world)
    finally:
        world.close()


def _failed(world: World, step: int, message: str, run_dir: Path) -> int:
    """Say that training failed (rank 0: where the run and its log are); exit status 1."""
    lines = f"\ntraining FAILED at step {step}: {message}\n"
    if world.is_main:
        lines += (
            f"  latest checkpoint: {_latest_line(run_dir, step)}\n"
            f"  log:               {RunLayout(run_dir).log}\n"
        )
    elif world.distributed:
        lines = f"[rank {world.rank}] {lines.lstrip()}"
        lines += f"  log:               {RunLayout(run_dir).rank_log(world.rank)}\n"
    sys.stderr.write(lines)
    return 1


def _train_in_world(args: argparse.Namespace, plan: RunPlan, world: World) -> int:
    from dataclasses import replace

    from keisei.checkpoint.errors import CheckpointError
    from keisei.config import check_world_size, config_hash
    from keisei.training.callbacks import CriticalCallbackError
    from keisei.training.distributed import DistributedError, RankFailedError
    from keisei.training.interrupt import StopRequested
    from keisei.training.ranks.failures import RankStopped
    from keisei.training.trainer import RunDirectoryError, Trainer

    trainer: Trainer | None = None
    try:
        world.check_same(config_hash(plan.config), "configuration")
        check_world_size(plan.config, world.size)
        run_dir = world.broadcast_from_main(str(plan.run_dir), "the run directory")
        plan = replace(plan, run_dir=Path(run_dir))
        live = args.live if args.live is not None else sys.stderr.isatty()
        try:
            trainer = Trainer(plan, live=live and world.is_main, world=world)
        except RunDirectoryError as exc:
            get_logger().error("%s", exc)
            return 1
        summary = trainer.train()
        world.finish_together()
    except RankStopped as exc:  # another rank failed, or the launcher ended the group
        step = trainer.global_timestep if trainer is not None else 0
        return _failed(world, step, str(exc), plan.run_dir)
    except KeyboardInterrupt as exc:
        if isinstance(exc, StopRequested):  # agreed by every rank at the same epoch
            _finish_together_quietly(world)
        if world.is_main:
            how = (
                "stopped at the end of an epoch"
                if isinstance(exc, StopRequested)
                else "interrupted"
            )
            step = trainer.global_timestep if trainer is not None else 0
            sys.stderr.write(
                f"\ntraining {how} at step {step}; the run is in {plan.run_dir}\n"
                f"resume with: keisei train --resume {plan.run_dir}\n"
            )
        return 130
    except (CriticalCallbackError, DistributedError) as exc:
        agreed = isinstance(exc, CriticalCallbackError) or (
            isinstance(exc, RankFailedError) and exc.agreed
        )
        if agreed:  # every rank stopped at the same step: leave the group together
            _finish_together_quietly(world)
        critical = isinstance(exc, CriticalCallbackError) and exc.__cause__ is not None
        cause = f": {exc.__cause__}" if critical else ""
        step = trainer.global_timestep if trainer is not None else 0
        return _failed(world, step, f"{exc}{cause}", plan.run_dir)
    except BaseException as exc:  # an error of this rank's own: the others hear of it first
        world.announce_failure(exc, None if trainer is None else trainer.global_timestep)
        if world.distributed and not isinstance(exc, ConfigError | CheckpointError):
            return 1  # logged with its traceback, in this rank's log file too
        raise
    if not world.is_main:
        return 0
    run = RunLayout(summary.run_dir)
    out = sys.stdout
    out.write(
        f"\ntraining finished at step {summary.final_step} ({summary.games} games, "
        f"{summary.seconds / 60:.1f} min)\n"
    )
    out.write(f"  run directory:     {summary.run_dir}\n")
    out.write(f"  final checkpoint:  {_latest_line(summary.run_dir, summary.final_step)}\n")
    out.write(f"  metrics:           {run.metrics}\n")
    out.write(f"  log:               {run.log}\n")
    if plan.config.logging.tensorboard:
        out.write(f"  TensorBoard:       tensorboard --logdir {run.tensorboard}\n")
    if plan.config.evaluation.enable_periodic_evaluation:
        from keisei.evaluation.report import write_report

        out.write(f"  report:            {write_report(summary.run_dir)}\n")
        out.write(f"  ratings:           keisei ratings {summary.run_dir}\n")
    return 0


def register(commands: Any) -> None:
    """Add `train` to the subcommands of the main parser."""
    train = commands.add_parser("train", help="train an agent by self-play PPO")
    add_config_args(train)
    train.add_argument("--run-name", help="directory name under logging.model_dir")
    train.add_argument(
        "--resume",
        metavar="latest|PATH",
        help="continue a run: 'latest' (with --run-name), a run directory or a checkpoint",
    )
    train.add_argument(
        "--callback",
        dest="callbacks",
        action="append",
        default=[],
        metavar="PACKAGE.MODULE:CLASS",
        help="attach a Callback or AsyncCallback of yours (importable, built without arguments); "
        "may be repeated",
    )
    train.add_argument(
        "--nproc-per-node", type=int, default=None, metavar="N",
        help="train with N ranks on this machine (torch.distributed: gloo on CPU, NCCL with one "
        "GPU per rank); settings stay global, env.num_envs is per rank",
    )  # fmt: skip
    train.add_argument(
        "--max-restarts", type=int, default=0, metavar="K",
        help="with --nproc-per-node: when a rank dies, restart every rank from the latest "
        "checkpoint, up to K times (default: 0)",
    )  # fmt: skip
    display = train.add_mutually_exclusive_group()
    display.add_argument(
        "--live", dest="live", action="store_true", default=None, help="Rich live display"
    )
    display.add_argument(
        "--no-live", dest="live", action="store_false", help="plain log lines (CI, files)"
    )
    train.set_defaults(func=_cmd_train)
