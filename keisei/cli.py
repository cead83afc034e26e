"""The `keisei` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from rich.console import Console

from keisei.checkpoint.errors import CheckpointError
from keisei.checkpoint.run_layout import RunLayout
from keisei.config import ConfigError, config_to_dict, load_config
from keisei.log import get_console, get_logger
from keisei.usi.commands import register as register_usi_commands


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (default: the built-in defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting; may be repeated",
    )


def _cmd_config(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    sys.stdout.write(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return 0


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
    from keisei.training.launch import launch
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


def _train_this_rank(args: argparse.Namespace) -> int:
    """Train as this process: alone, or as one rank of several."""
    from dataclasses import replace

    from keisei.config import check_world_size, config_hash
    from keisei.training.callbacks import CriticalCallbackError
    from keisei.training.distributed import DistributedError, join_world
    from keisei.training.run_dir import plan_run
    from keisei.training.trainer import RunDirectoryError, StopRequested, Trainer

    resume = _resume_point(args)
    plan = plan_run(args.config, args.overrides, args.run_name, resume, args.callbacks)
    world = join_world(plan.config)
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
        try:
            summary = trainer.train()
        except KeyboardInterrupt as exc:
            if world.is_main:
                how = (
                    "stopped at the end of an epoch"
                    if isinstance(exc, StopRequested)
                    else "interrupted"
                )
                sys.stderr.write(
                    f"\ntraining {how} at step {trainer.global_timestep}; "
                    f"the run is in {plan.run_dir}\n"
                    f"resume with: keisei train --resume {plan.run_dir}\n"
                )
            return 130
        except (CriticalCallbackError, DistributedError) as exc:
            critical = isinstance(exc, CriticalCallbackError) and exc.__cause__ is not None
            cause = f": {exc.__cause__}" if critical else ""
            lines = f"\ntraining FAILED at step {trainer.global_timestep}: {exc}{cause}\n"
            if world.is_main:
                lines += (
                    f"  latest checkpoint: {_latest_line(plan.run_dir, trainer.global_timestep)}\n"
                    f"  log:               {RunLayout(plan.run_dir).log}\n"
                )
            elif world.distributed:
                lines = f"[rank {world.rank}] {lines.lstrip()}"
            sys.stderr.write(lines)
            return 1
    finally:
        world.close()
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


def _stdout_console() -> Console:
    """Rich output on stdout; not squeezed to 80 columns when redirected to a file."""
    return Console(width=None if sys.stdout.isatty() else 160)


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--option {pair!r} is not of the form Name=Value")
        options[name.strip()] = value
    return options


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from rich.progress import Progress
    from rich.table import Table

    from keisei.evaluation.standalone import evaluate_checkpoint

    options = _parse_options(args.option)
    with Progress(console=get_console(), transient=True) as progress:
        task = progress.add_task(f"{args.games} games vs {args.opponent}", total=args.games)
        outcome = evaluate_checkpoint(
            args.checkpoint,
            args.opponent,
            args.games,
            run_dir=args.run_dir,
            options=options,
            seed=args.seed,
            greedy=not args.sample,
            playouts=args.playouts,
            max_plies=args.max_plies,
            random_opening_plies=args.opening_plies,
            usi_byoyomi_ms=args.byoyomi,
            usi_nodes=args.nodes,
            usi_timeout_s=args.timeout,
            on_game=lambda _: progress.advance(task),
        )
    result = outcome.result
    table = Table(title=f"{outcome.agent} vs {outcome.opponent}")
    for column in ("games", "wins", "draws", "losses", "score", "avg plies"):
        table.add_column(column, justify="right")
    score = (result.wins + 0.5 * result.draws) / result.total_games
    table.add_row(str(result.total_games), str(result.wins), str(result.draws),
                  str(result.losses), f"{score:.1%}", f"{result.avg_game_length:.0f}")  # fmt: skip
    console = _stdout_console()
    console.print(table)
    console.print("end reasons: " + ", ".join(f"{k} {v}" for k, v in result.end_reasons.items()))
    for name, rating in outcome.ratings.items():
        console.print(f"incremental Elo {name}: {rating:.0f}")
    console.print(f"records: {outcome.record_dir}")
    console.print(f"ratings: keisei ratings {outcome.run_dir}")
    return 0


def _cmd_ratings(args: argparse.Namespace) -> int:

    from rich.table import Table

    from keisei.checkpoint.run_layout import RunLayout
    from keisei.evaluation.elo import EloRegistry

    database = RunLayout(args.run_dir).elo_database
    if not database.is_file():
        raise ConfigError(f"no Elo database at {database}: has this run been evaluated?")
    with EloRegistry(database) as registry:
        fitted = registry.fit()
        players = registry.players()
        games = len(registry.games())
    table = Table(title=f"Maximum-likelihood Elo over {games} games (random = anchor)")
    for column in ("player", "kind", "step", "games", "Elo", "95% interval", "incremental"):
        table.add_column(column, justify="left" if column in ("player", "kind") else "right")
    for player in sorted(players, key=lambda p: -fitted[p.name].rating if p.name in fitted else 0):
        fit = fitted.get(player.name)
        if fit is None:
            continue
        table.add_row(player.name, player.kind, "" if player.step is None else str(player.step),
                      str(fit.games), f"{fit.rating:.0f}", f"{fit.low:.0f} to {fit.high:.0f}",
                      f"{player.rating:.0f}")  # fmt: skip
    _stdout_console().print(table)
    from keisei.evaluation.ladder_registry import read_agent_ratings

    for row in read_agent_ratings(database):
        _stdout_console().print(
            f"ladder {row.session}: {row.agent} Elo {row.rating:.0f} (95% interval "
            f"{row.low:.0f} to {row.high:.0f}), {row.games} games against the references of "
            f"{row.registry}"
        )
    return 0


def _cmd_ladder(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    from keisei.evaluation.ladder import run_ladder
    from keisei.evaluation.ladder_registry import LadderRegistryError
    from keisei.evaluation.ladder_setup import ladder_settings, select_references

    overrides = list(args.overrides)
    if args.games is not None:
        overrides.append(f"ladder.games_per_reference={args.games}")
    if args.seed is not None:
        overrides.append(f"ladder.seed={args.seed}")
    settings = ladder_settings(args.target, args.config, overrides)
    names = [name.strip() for name in (args.references or "").split(",") if name.strip()]
    references = select_references(settings, names)
    planned = settings.games_per_reference
    with Progress(console=get_console(), transient=True) as progress:
        task = progress.add_task("ladder", total=planned * len(references))
        try:
            result = run_ladder(
                args.target, references, settings, refit=args.refit, playouts=args.playouts,
                on_game=lambda ref, _: progress.update(
                    task, advance=1, description=f"vs {escape(ref.name)}"),
                on_rung=lambda rung: progress.advance(task, planned - rung.score.games),
            )  # fmt: skip
        except LadderRegistryError as exc:
            get_logger().error("%s", exc)
            return 1
    level = f"{settings.confidence:.0%}"
    table = Table(title=f"Ladder: {result.agent}, up to {planned} games a reference")
    for column in ("reference", "Elo (95%)", "rated", "games", "W/D/L", "score",
                   f"score {level}", "stopped"):  # fmt: skip
        left = column in ("reference", "rated", "stopped")
        table.add_column(column, justify="left" if left else "right")
    for rung in result.rungs:
        rating, played = rung.rating, rung.rung.score
        low, high = played.interval(settings.confidence)
        table.add_row(
            escape(rung.name), "-" if rating is None else f"{rating.rating:.0f}" + (
                "" if rating.method == "anchor" else f" ± {(rating.high - rating.low) / 2:.0f}"),
            rung.rated, str(played.games), str(played) if played.games else "-",
            f"{played.share:.0%}" if played.games else "-",
            f"{low:.0%} to {high:.0%}" if played.games else "-", escape(rung.rung.stopped),
        )  # fmt: skip
    console = _stdout_console()
    console.print(table)
    fit = result.agent_rating
    console.print(
        f"agent {escape(result.agent)}: "
        + ("not rated (no random or rated reference was played)" if fit is None else
           f"Elo {fit.rating:.0f} (95% interval {fit.low:.0f} to {fit.high:.0f}) from {fit.games} "
           "games against the references' fixed ratings (random = 0)")
    )  # fmt: skip
    console.print(
        f"sequential test: after {settings.min_games} games at a reference, stop once the "
        f"score's {level} Wilson interval (draws half) is above 50% (passed) or below it\n"
        "(cannot reach: the stronger references are skipped)"
    )
    console.print(f"games:   {result.record_dir} (KIF and CSA, a folder per reference)")
    console.print(f"ratings: references in {result.registry}; this run: keisei ratings "
                  f"{result.run_dir}")  # fmt: skip
    console.print(f"plot:    {result.plot}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from keisei.evaluation.report import write_report

    path = write_report(args.run_dir)
    sys.stdout.write(f"report: {path}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keisei", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    config = commands.add_parser("config", help="print the effective configuration as YAML")
    _add_config_args(config)
    config.set_defaults(func=_cmd_config)

    train = commands.add_parser("train", help="train an agent by self-play PPO")
    _add_config_args(train)
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

    evaluate = commands.add_parser("evaluate", help="play a saved checkpoint against an opponent")
    evaluate.add_argument("checkpoint", help="a checkpoint directory, or a run directory (latest)")
    evaluate.add_argument(
        "--opponent", required=True, help="random | greedy | checkpoint:PATH | usi:COMMAND"
    )
    evaluate.add_argument("--games", type=int, default=20)
    evaluate.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE",
        help="option for a usi: opponent (repeatable), e.g. 'Skill Level=0'",
    )  # fmt: skip
    evaluate.add_argument("--run-dir", help="where records and ratings go (default: the run's)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--sample", action="store_true", help="sample moves, not argmax")
    evaluate.add_argument(
        "--playouts", type=int, default=0, metavar="N",
        help="the checkpoint searches (PUCT) N playouts a move, rated as <name>+puct<N> "
        "(default 0: its raw policy)",
    )  # fmt: skip
    evaluate.add_argument("--max-plies", type=int, default=512)
    evaluate.add_argument("--opening-plies", type=int, default=4)
    evaluate.add_argument("--byoyomi", type=int, default=100, help="ms per move for usi: engines")
    evaluate.add_argument("--nodes", type=int, default=None, help="node limit for usi: engines")
    evaluate.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS",
        help="how long a usi: engine may take to start, to begin a game or (beyond its byoyomi) "
        "to move before it loses that game (default: 30)",
    )  # fmt: skip
    evaluate.set_defaults(func=_cmd_evaluate)

    ratings = commands.add_parser("ratings", help="maximum-likelihood Elo of a run's players")
    ratings.add_argument("run_dir")
    ratings.set_defaults(func=_cmd_ratings)

    ladder = commands.add_parser(
        "ladder", help="rate a checkpoint against fixed references of increasing strength"
    )
    ladder.add_argument("target", metavar="RUN_OR_CHECKPOINT",
                        help="a checkpoint directory, or a run directory (its latest)")  # fmt: skip
    _add_config_args(ladder)
    ladder.add_argument("--games", type=int, default=None, metavar="N",
                        help="games a reference (default: ladder.games_per_reference)")  # fmt: skip
    ladder.add_argument("--references", metavar="NAME,NAME",
                        help="play only these references of ladder.references")  # fmt: skip
    ladder.add_argument(
        "--playouts", type=int, default=0, metavar="N",
        help="the checkpoint searches (PUCT) N playouts a move (default 0: its raw policy)",
    )  # fmt: skip
    ladder.add_argument(
        "--refit", action="store_true",
        help="first refit the references' stored ratings from all the ladder games stored so far",
    )  # fmt: skip
    ladder.add_argument("--seed", type=int, default=None, help="default: ladder.seed")
    ladder.set_defaults(func=_cmd_ladder)

    report = commands.add_parser("report", help="plots and a Markdown summary of a run")
    report.add_argument("run_dir")
    report.set_defaults(func=_cmd_report)

    register_usi_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        get_logger().error("%s", exc)
        return 2
    except CheckpointError as exc:
        get_logger().error("%s", exc)
        return 3
    except (ValueError, FileNotFoundError) as exc:
        if args.command == "train":
            raise
        get_logger().error("%s", exc)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
