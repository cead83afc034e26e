"""`keisei evaluate`: a saved checkpoint against one opponent, outside training.

Games are recorded (KIF and CSA) under the run's `games/evaluate-<time>/` and in its Elo registry,
so command-line matches and training evaluations share one rating scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from keisei.checkpoint.run_layout import RunLayout
from keisei.evaluation.match import MatchSettings, play_match
from keisei.evaluation.players.network import load_checkpoint_player
from keisei.evaluation.players.opponents import make_opponent
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.evaluation.result import EvaluationResult, GameResult


@dataclass(frozen=True)
class StandaloneOutcome:
    result: EvaluationResult
    agent: str
    opponent: str
    ratings: dict[str, float]
    record_dir: Path
    run_dir: Path


def evaluate_checkpoint(
    checkpoint: str | Path,
    opponent_spec: str,
    games: int,
    *,
    run_dir: str | Path | None = None,
    options: Mapping[str, str] | None = None,
    seed: int = 0,
    greedy: bool = True,
    playouts: int = 0,
    max_plies: int = 512,
    random_opening_plies: int = 4,
    usi_byoyomi_ms: int | None = 100,
    usi_nodes: int | None = None,
    usi_timeout_s: float = 30.0,
    precision: str = "auto",
    on_game: Callable[[GameResult], None] | None = None,
) -> StandaloneOutcome:
    """Play `games` games and record them; raises a clear error for a bad checkpoint/opponent.

    `usi_timeout_s` bounds every wait for a `usi:` opponent (start-up, new game, each move); an
    engine that does not answer in time loses that game (`engine_timeout`). With `playouts` > 0
    the checkpoint searches (PUCT) that many playouts a move and is rated as `<name>+puct<N>`.
    The networks compute in `precision` (a `ppo.amp` setting: auto, off, bf16).
    """
    if games < 1:
        raise ValueError(f"--games must be at least 1, got {games}")
    if not usi_timeout_s > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, got {usi_timeout_s}")
    if playouts < 0:
        raise ValueError(f"--playouts must be at least 0, got {playouts}")
    agent = load_checkpoint_player(
        checkpoint, greedy=greedy, seed=seed, playouts=playouts, precision=precision
    )
    opponent = make_opponent(
        opponent_spec,
        seed=seed + 1,
        precision=precision,
        options=options,
        usi_byoyomi_ms=usi_byoyomi_ms,
        usi_nodes=usi_nodes,
        usi_timeout_s=usi_timeout_s,
    )
    assert agent.path is not None
    home = RunLayout(run_dir if run_dir is not None else Path(agent.path).parent.parent)
    record_dir = home.games_of_session(datetime.now().strftime("%Y%m%d-%H%M%S"))
    registry = EloRegistry(home.elo_database)
    try:
        registry.ensure_player(agent.name, agent.kind, path=agent.path, step=agent.step)
        registry.ensure_player(opponent.name, opponent.kind, path=opponent.path)

        def record(result: GameResult) -> None:
            registry.record_result(agent.name, result)
            if on_game is not None:
                on_game(result)

        settings = MatchSettings(
            games=games,
            max_plies=max_plies,
            random_opening_plies=random_opening_plies,
            seed=seed,
            record_dir=record_dir,
        )
        results = play_match(agent, opponent, settings, on_game=record)
        ratings = {agent.name: registry.rating(agent.name),
                   opponent.name: registry.rating(opponent.name)}  # fmt: skip
    finally:
        opponent.close()
        registry.close()
    return StandaloneOutcome(
        EvaluationResult(step=agent.step or 0, games=results),
        agent.name,
        opponent.name,
        ratings,
        record_dir,
        home.root,
    )
