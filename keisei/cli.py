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
from keisei.cli_args import add_config_args, add_precision_arg
from keisei.config import ConfigError, config_to_dict, load_config
from keisei.log import get_console, get_logger
from keisei.train_command import register as register_train_command
from keisei.usi.commands import register as register_usi_commands


def _cmd_config(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    sys.stdout.write(yaml.safe_dump(config_to_dict(config), sort_keys=False))
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
            precision=args.amp,
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


CHECKPOINT_KINDS = ("agent", "checkpoint")
"""The kinds of player (`Player.kind`) whose path is a checkpoint."""


def _checkpoint_cell(kind: str, path: str | None) -> str:
    """A checkpoint player's checkpoint (relative to here when below), or that it is gone
    (retention deletes rated checkpoints only with `checkpoint.keep_rated: false`); an engine's
    program as it is."""
    if path is None:
        return ""
    checkpoint = Path(path)
    if kind not in CHECKPOINT_KINDS:
        return path
    if not checkpoint.is_dir():
        return "(checkpoint deleted)"
    here = Path.cwd()
    return str(checkpoint.relative_to(here)) if checkpoint.is_relative_to(here) else path


def _cmd_ratings(args: argparse.Namespace) -> int:

    from rich.table import Table

    from keisei.evaluation.ratings.elo import EloRegistry

    database = RunLayout(args.run_dir).elo_database
    if not database.is_file():
        raise ConfigError(f"no Elo database at {database}: has this run been evaluated?")
    with EloRegistry(database) as registry:
        fitted = registry.fit()
        players = registry.players()
        games = len(registry.games())
    table = Table(title=f"Maximum-likelihood Elo over {games} games (random = anchor)")
    numbers = ("step", "games", "Elo", "95% interval", "incremental")
    for column in ("player", "kind", *numbers, "checkpoint"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for player in sorted(players, key=lambda p: -fitted[p.name].rating if p.name in fitted else 0):
        fit = fitted.get(player.name)
        if fit is None:
            continue
        step = "" if player.step is None else str(player.step)
        table.add_row(player.name, player.kind, step, str(fit.games), f"{fit.rating:.0f}",
                      f"{fit.low:.0f} to {fit.high:.0f}", f"{player.rating:.0f}",
                      _checkpoint_cell(player.kind, player.path))  # fmt: skip
    _stdout_console().print(table)
    from keisei.evaluation.ladder.registry import read_agent_ratings

    for row in read_agent_ratings(database):
        _stdout_console().print(
            f"ladder {row.session}: {row.agent} Elo {row.rating:.0f} (95% interval "
            f"{row.low:.0f} to {row.high:.0f}), {row.games} games against the references of "
            f"{row.registry}"
        )
    return 0


def _recalibrate_argv(args: argparse.Namespace) -> list[str]:
    """The `keisei ladder --recalibrate ...` arguments that `args` came from."""
    argv = ["ladder", "--recalibrate", *([args.target] if args.target else [])]
    argv += ["--config", args.config] if args.config else []
    for flag, value in (("--games", args.games), ("--jobs", args.jobs), ("--seed", args.seed)):
        argv += [flag, str(value)] if value is not None else []
    for override in args.overrides:
        argv += ["--set", override]
    return argv


def _cmd_recalibrate(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    from keisei.evaluation.ladder.calibration import recalibration_target
    from keisei.evaluation.ladder.recalibrate import describe_command, recalibrate
    from keisei.evaluation.ladder.setup import recalibration_settings

    overrides = list(args.overrides)
    if args.games is not None:
        overrides.append(f"ladder.calibration.max_games={args.games}")
    if args.jobs is not None:
        overrides.append(f"ladder.calibration.jobs={args.jobs}")
    if args.seed is not None:
        overrides.append(f"ladder.seed={args.seed}")
    settings, runs = recalibration_settings(args.target, args.config, overrides)
    target = recalibration_target(settings, runs)
    references = settings.references
    names = [reference.name for reference in references]
    most = settings.calibration.max_games
    console = get_console()  # without a terminal, the log lines (every 50 games a pair) show it
    with Progress(console=console, transient=False, disable=not console.is_terminal) as progress:
        tasks = [progress.add_task(f"{escape(upper.name)} vs {escape(lower.name)}", total=most)
                 for lower, upper in zip(references, references[1:], strict=False)]  # fmt: skip
        calibration = recalibrate(
            settings, target, command=describe_command(_recalibrate_argv(args)),
            on_game=lambda game: progress.advance(tasks[game.pair]),
            on_pair=lambda gap: progress.update(
                tasks[names.index(gap.lower)], completed=most,
                description=f"{escape(gap.upper)} vs {escape(gap.lower)}: {gap.elo:+.0f} Elo, "
                f"{gap.games} games"),
        )  # fmt: skip
    out = _stdout_console()
    gaps = Table(
        title=f"Calibration: neighbours' gaps (95% interval, at most {most} games a pair"
        f", until narrower than {settings.calibration.interval_elo:g} Elo)"
    )
    for column in ("stronger", "weaker", "games", "W/D/L", "gap", "95% interval", "width"):
        gaps.add_column(column, justify="left" if column in ("stronger", "weaker") else "right")
    for gap in calibration.gaps:
        gaps.add_row(escape(gap.upper), escape(gap.lower), str(gap.games),
                     f"{gap.wins}/{gap.draws}/{gap.losses}", f"{gap.elo:+.0f}",
                     f"{gap.low:+.0f} to {gap.high:+.0f}", f"{gap.width:.0f}")  # fmt: skip
    out.print(gaps)
    ratings = Table(title="Calibrated ratings (random = 0)")
    for column in ("reference", "player", "Elo", "95% interval", "games"):
        ratings.add_column(column, justify="left" if column in ("reference", "player") else "right")
    for ref in calibration.references:
        ratings.add_row(escape(ref.name), escape(ref.player), f"{ref.rating:.0f}",
                        f"{ref.low:.0f} to {ref.high:.0f}", str(ref.games))  # fmt: skip
    out.print(ratings)
    engines = ", ".join(f"{program}: {name}" for program, name in calibration.engines.items())
    out.print(f"engines: {escape(engines) or '-'}")
    out.print(f"calibration: {target} (the ladder and background evaluation read it)")
    return 0


def _cmd_ladder(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.progress import Progress
    from rich.table import Table

    from keisei.evaluation.ladder.registry import LadderRegistryError
    from keisei.evaluation.ladder.run import run_ladder
    from keisei.evaluation.ladder.setup import ladder_settings, select_references

    if args.recalibrate:
        return _cmd_recalibrate(args)
    if args.target is None:
        raise ConfigError("keisei ladder needs RUN_OR_CHECKPOINT (or --recalibrate)")
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
                precision=args.amp,
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
    console.print(f"ratings: calibrated references from {result.calibration}; the others, and "
                  f"every game, in {result.registry}; this run: keisei ratings "
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
    add_config_args(config)
    config.set_defaults(func=_cmd_config)

    register_train_command(commands)

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
    add_precision_arg(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)

    ratings = commands.add_parser("ratings", help="maximum-likelihood Elo of a run's players")
    ratings.add_argument("run_dir")
    ratings.set_defaults(func=_cmd_ratings)

    ladder = commands.add_parser(
        "ladder", help="rate a checkpoint against fixed references of increasing strength"
    )
    ladder.add_argument("target", metavar="RUN_OR_CHECKPOINT", nargs="?",
                        help="a checkpoint directory, or a run directory (its latest)")  # fmt: skip
    add_config_args(ladder)
    ladder.add_argument("--games", type=int, default=None, metavar="N",
                        help="games a reference (default: ladder.games_per_reference); with "
                        "--recalibrate, at most N games a pair")  # fmt: skip
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
    ladder.add_argument(
        "--recalibrate", action="store_true",
        help="rate the references from games among themselves (neighbours, random = 0) and write "
        "the calibration the ladder reads (ladder.calibration.file, else beside the runs); "
        "no agent plays. Can take hours",
    )  # fmt: skip
    ladder.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="with --recalibrate: pairs played at once (default: "
                        "ladder.calibration.jobs)")  # fmt: skip
    ladder.add_argument("--seed", type=int, default=None, help="default: ladder.seed")
    add_precision_arg(ladder)
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
