"""`keisei usi` and `keisei play` (registered on the main parser)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the USI-related subcommands to the `keisei` parser."""
