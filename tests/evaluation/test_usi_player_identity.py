"""A USI opponent's registry name says every setting that changes its strength, so `keisei
ratings` never merges an engine held to one node with the same engine given 100 ms a move."""

from __future__ import annotations

from pathlib import Path

from keisei.checkpoint.run_layout import RunLayout
from keisei.evaluation.players.usi import UsiPlayer
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.evaluation.standalone import evaluate_checkpoint
from tests.support.checkpoints import save_checkpoint
from tests.support.engines import FAIRY_STOCKFISH, fairy_stockfish

WEAKEST = {"Skill Level": "-20"}


def test_names_carry_the_limits_as_well_as_the_options() -> None:
    # The engine starts only when asked for a move: naming needs no binary.
    by_nodes = UsiPlayer(FAIRY_STOCKFISH, options=WEAKEST, byoyomi_ms=None, nodes=1)
    by_time = UsiPlayer(FAIRY_STOCKFISH, options=WEAKEST, byoyomi_ms=100)
    both = UsiPlayer(FAIRY_STOCKFISH, options=WEAKEST, byoyomi_ms=100, nodes=1)
    assert by_nodes.name == "usi:fairy-stockfish Skill Level=-20 nodes=1"
    assert by_time.name == "usi:fairy-stockfish Skill Level=-20 byoyomi=100ms"
    assert both.name == "usi:fairy-stockfish Skill Level=-20 byoyomi=100ms nodes=1"


def test_the_same_settings_give_the_same_name() -> None:
    options = {"Skill Level": "-20", "Threads": "1"}
    first = UsiPlayer(FAIRY_STOCKFISH, options=options, byoyomi_ms=None, nodes=50)
    again = UsiPlayer(FAIRY_STOCKFISH, options=dict(reversed(options.items())), nodes=50,
                      byoyomi_ms=None)  # fmt: skip
    assert first.name == again.name == "usi:fairy-stockfish Skill Level=-20 Threads=1 nodes=50"
    # No limit at all means the default byoyomi, which is what the engine is then sent.
    unlimited = UsiPlayer(FAIRY_STOCKFISH, byoyomi_ms=None, nodes=None)
    assert unlimited.name == UsiPlayer(FAIRY_STOCKFISH, byoyomi_ms=1000).name
    assert unlimited.byoyomi_ms == 1000


def test_differently_limited_engines_are_two_players_in_the_registry(tmp_path: Path) -> None:
    run = save_checkpoint(tmp_path / "run")
    engine = f"usi:{fairy_stockfish()}"
    by_nodes = evaluate_checkpoint(
        run, engine, 1, options=WEAKEST, max_plies=16, usi_byoyomi_ms=None, usi_nodes=1
    )
    by_time = evaluate_checkpoint(run, engine, 1, options=WEAKEST, max_plies=16, usi_byoyomi_ms=100)
    assert by_nodes.opponent != by_time.opponent
    with EloRegistry(RunLayout(run).elo_database) as registry:
        engines = {p.name: p.games for p in registry.players() if p.kind == "usi"}
    assert engines == {by_nodes.opponent: 1, by_time.opponent: 1}
