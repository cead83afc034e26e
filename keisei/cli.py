"""The `keisei` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import yaml

from keisei.config import ConfigError, config_to_dict, load_config
from keisei.log import get_logger
from keisei.training.checkpoint_errors import CheckpointError
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


def _cmd_train(args: argparse.Namespace) -> int:
    from keisei.training.run_dir import plan_run
    from keisei.training.trainer import StopRequested, Trainer

    plan = plan_run(args.config, args.overrides, args.run_name, args.resume)
    live = args.live if args.live is not None else sys.stderr.isatty()
    trainer = Trainer(plan, live=live)
    try:
        summary = trainer.train()
    except KeyboardInterrupt as exc:
        how = "stopped at the end of an epoch" if isinstance(exc, StopRequested) else "interrupted"
        sys.stderr.write(
            f"\ntraining {how} at step {trainer.global_timestep}; the run is in {plan.run_dir}\n"
            f"resume with: keisei train --resume {plan.run_dir}\n"
        )
        return 130
    out = sys.stdout
    out.write(
        f"\ntraining finished at step {summary.final_step} ({summary.games} games, "
        f"{summary.seconds / 60:.1f} min)\n"
    )
    out.write(f"  run directory:     {summary.run_dir}\n")
    out.write(f"  final checkpoint:  {summary.final_checkpoint}\n")
    out.write(f"  metrics:           {summary.run_dir / 'metrics.jsonl'}\n")
    out.write(f"  log:               {summary.run_dir / 'train.log'}\n")
    if plan.config.logging.tensorboard:
        out.write(f"  TensorBoard:       tensorboard --logdir {summary.run_dir / 'tensorboard'}\n")
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
    display = train.add_mutually_exclusive_group()
    display.add_argument(
        "--live", dest="live", action="store_true", default=None, help="Rich live display"
    )
    display.add_argument(
        "--no-live", dest="live", action="store_false", help="plain log lines (CI, files)"
    )
    train.set_defaults(func=_cmd_train)

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


if __name__ == "__main__":
    raise SystemExit(main())
