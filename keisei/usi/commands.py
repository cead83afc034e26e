"""`keisei usi` and `keisei play` (registered on the main parser).

Both find the checkpoint before any heavy import, so a wrong path fails at once with exit code 3
(the CLI's code for checkpoint errors); the network itself loads in the background for `usi`.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import TYPE_CHECKING, TextIO

from keisei.cli_args import add_precision_arg

if TYPE_CHECKING:
    from keisei.usi.agent import Agent


def _count(minimum: int) -> type[int]:
    """An argparse type: an integer of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse  # type: ignore[return-value]


def _add_agent_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        default="latest",
        metavar="PATH|latest",
        help="a checkpoint, store or run directory; 'latest' (default): the latest checkpoint of "
        "--run-dir, or of the most recently updated run under runs/",
    )
    parser.add_argument("--run-dir", metavar="DIR", help="run directory for 'latest'")
    parser.add_argument(
        "--device", default="auto", help="torch device: auto (default), cpu, cuda, cuda:1, ..."
    )
    add_precision_arg(parser)


def _cmd_usi(args: argparse.Namespace) -> int:
    from keisei.usi.engine import AgentLoader, UsiEngineServer, UsiOutput
    from keisei.usi.locate import locate_checkpoint

    checkpoint = locate_checkpoint(args.checkpoint, args.run_dir)

    def load() -> Agent:  # runs in the loader thread: torch is imported there
        from keisei.usi.agent import Agent

        return Agent.load(checkpoint, device=args.device, threads=1, precision=args.amp)

    server = UsiEngineServer(
        AgentLoader(load), UsiOutput(sys.stdout), name=f"Keisei ({checkpoint.name})"
    )
    return server.run(_lenient_stdin())


def _lenient_stdin() -> TextIO:
    """stdin as UTF-8 where bytes that are not UTF-8 (a GUI in another encoding) become U+FFFD
    instead of an exception that would end the engine."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="replace")


def _cmd_play(args: argparse.Namespace) -> int:
    from rich.console import Console

    from keisei.usi.agent import Agent
    from keisei.usi.locate import locate_checkpoint
    from keisei.usi.play import PlaySession, default_kif_path

    checkpoint = locate_checkpoint(args.checkpoint, args.run_dir)
    agent = Agent.load(checkpoint, device=args.device, threads=args.threads, precision=args.amp)
    agent.settings.batch_size = args.batch_size
    session = PlaySession(
        agent,
        human=1 if args.white else 0,
        input_stream=sys.stdin,
        console=Console(file=sys.stdout, highlight=False),
        kif_path=args.kif or default_kif_path(),
        playouts=args.playouts,
    )
    session.run()
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the USI-related subcommands to the `keisei` parser."""
    from pathlib import Path

    usi = commands.add_parser(
        "usi", help="run a trained agent as a USI engine on stdin/stdout (for Shogi GUIs)"
    )
    _add_agent_args(usi)
    usi.set_defaults(func=_cmd_usi)

    play = commands.add_parser("play", help="play against a trained agent in the terminal")
    _add_agent_args(play)
    side = play.add_mutually_exclusive_group()
    side.add_argument("--black", action="store_true", help="you play Black, moving first (default)")
    side.add_argument("--white", action="store_true", help="you play White")
    play.add_argument(
        "--playouts",
        type=_count(0),
        default=100,
        help="search playouts per agent move (0: the policy's best move)",
    )
    play.add_argument("--batch-size", type=_count(1), default=16, help="leaves per network batch")
    play.add_argument("--threads", type=_count(1), default=1, help="CPU threads for the network")
    play.add_argument(
        "--kif", type=Path, help="where to save the game (default: keisei-<time>.kifu)"
    )
    play.set_defaults(func=_cmd_play)
