"""An opponent from its spec: `random`, `greedy`, `checkpoint:PATH` or `usi:COMMAND`."""

from __future__ import annotations

from collections.abc import Mapping

from keisei.config import parse_opponent_spec
from keisei.evaluation.players.base import Player
from keisei.evaluation.players.builtin import GreedyPlayer, RandomPlayer
from keisei.evaluation.players.network import load_checkpoint_player
from keisei.evaluation.players.usi import UsiPlayer


def make_opponent(
    spec: str,
    *,
    seed: int = 0,
    device: str = "cpu",
    options: Mapping[str, str] | None = None,
    usi_byoyomi_ms: int | None = 100,
    usi_nodes: int | None = None,
    usi_timeout_s: float = 30.0,
    precision: str = "auto",
) -> Player:
    """Build an opponent from `random`, `greedy`, `checkpoint:PATH` or `usi:COMMAND` (the one
    spec grammar, `keisei.config.parse_opponent_spec`; ValueError for anything else); a
    checkpoint's network computes in `precision` (a `ppo.amp` setting)."""
    kind, argument = parse_opponent_spec(spec)
    if kind == "random":
        return RandomPlayer(seed)
    if kind == "greedy":
        return GreedyPlayer(seed)
    if kind == "checkpoint":
        return load_checkpoint_player(argument, seed=seed, device=device, precision=precision)
    return UsiPlayer(
        argument,
        options=options,
        byoyomi_ms=usi_byoyomi_ms,
        nodes=usi_nodes,
        timeout_s=usi_timeout_s,
    )
