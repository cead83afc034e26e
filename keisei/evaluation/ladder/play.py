"""Playing a ladder: the references in order, each game by game until the sequential test
(`stopping.py`) decides, and nothing above a reference the agent cannot reach.

Games come in pairs: both games of a pair start from the same random opening (drawn from the
ladder's seed and the pair's number, so every reference and every agent sees the same openings),
the agent black in the first and white in the second. Each game is saved as KIF and CSA in the
reference's folder, named `<black>_vs_<white>_<game number>`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from keisei.config import LadderConfig, LadderReference
from keisei.evaluation.ladder.registry import ENGINE_FAILURES
from keisei.evaluation.ladder.stopping import Score, Verdict, verdict
from keisei.evaluation.match import MatchSettings, play_match
from keisei.evaluation.players.base import Player
from keisei.evaluation.result import GameResult, Outcome
from keisei.log import get_logger

_log = get_logger("evaluation.ladder")
FLIPPED: dict[Outcome, Outcome] = {"win": "loss", "loss": "win", "draw": "draw"}
"""A game's outcome from the other side."""


@dataclass(frozen=True)
class Rung:
    """What was played at one reference."""

    reference: LadderReference
    player: str
    """The reference's name in the registries (every setting that sets its strength)."""
    planned: int
    games: tuple[GameResult, ...]
    score: Score
    verdict: Verdict
    skipped_after: str | None = None
    """For a skipped reference: the name of the one the agent could not reach."""

    @property
    def engine_failures(self) -> int:
        """Games the reference lost because its program crashed or hung."""
        return sum(1 for g in self.games if g.outcome == "win" and g.reason in ENGINE_FAILURES)

    @property
    def early(self) -> bool:
        return self.verdict in (Verdict.PASSED, Verdict.CANNOT_REACH) and (
            self.score.games < self.planned
        )

    @property
    def stopped(self) -> str:
        """Why play at this reference stopped, in words."""
        if self.verdict is Verdict.SKIPPED:
            return f"skipped: the agent could not reach {self.skipped_after}"
        if self.verdict is Verdict.UNDECIDED:
            return f"all {self.planned}"
        if self.verdict is Verdict.PASSED and self.early:
            return "passed early"
        return self.verdict.value


def opening_seed(seed: int, pair: int) -> int:
    """The seed of the opening shared by games 2·pair and 2·pair + 1 at every reference."""
    state = np.random.SeedSequence([abs(seed), int(seed < 0), pair]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


def folder_name(name: str) -> str:
    """A reference's name as a folder name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)[:80] or "reference"


def _from_agent_side(result: GameResult, reference: str) -> GameResult:
    """A game the reference played as `play_match`'s first player, seen from the agent."""
    return replace(result, opponent=reference, agent_color="white", outcome=FLIPPED[result.outcome])


def _file(result: GameResult, directory: Path, game: int) -> GameResult:
    """Move the game's KIF and CSA out of the scratch folder, numbered as the `game`th."""
    if result.record_path is None:
        return result
    kif = Path(result.record_path)
    stem = f"{kif.stem.rsplit('_', 1)[0]}_{game:03d}"
    for suffix in (".kifu", ".csa"):
        os.replace(kif.with_suffix(suffix), directory / f"{stem}{suffix}")
    return replace(result, record_path=str(directory / f"{stem}.kifu"))


def play_reference(
    agent: Player,
    opponent: Player,
    reference: LadderReference,
    settings: LadderConfig,
    directory: Path,
    on_game: Callable[[LadderReference, GameResult], None] | None = None,
) -> Rung:
    """Play `reference` game by game until the sequential test decides (at most
    `settings.games_per_reference` games; all of them without `settings.early_stop`)."""
    planned = settings.games_per_reference
    scratch = directory / ".playing"
    scratch.mkdir(parents=True, exist_ok=True)
    score, games, decision = Score(), list[GameResult](), Verdict.CONTINUE
    for number in range(planned):
        match = MatchSettings(
            games=1,
            max_plies=settings.max_plies,
            random_opening_plies=settings.random_opening_plies,
            seed=opening_seed(settings.seed, number // 2),
            record_dir=scratch,
        )
        if number % 2 == 0:
            [result] = play_match(agent, opponent, match)
        else:
            [result] = play_match(opponent, agent, match)
            result = _from_agent_side(result, opponent.name)
        result = _file(result, directory, number)
        games.append(result)
        score = score.add(result.outcome)
        if on_game is not None:
            on_game(reference, result)
        decision = verdict(score, planned=planned, min_games=settings.min_games,
                           confidence=settings.confidence)  # fmt: skip
        if decision is not Verdict.CONTINUE and settings.early_stop:
            break
    scratch.rmdir()
    rung = Rung(reference, opponent.name, planned, tuple(games), score, decision)
    if rung.engine_failures:
        _log.warning("%s: %d of %d games lost to engine failures (see the log above)",
                     reference.name, rung.engine_failures, score.games)  # fmt: skip
    return rung


def climb(
    agent: Player,
    opponents: Sequence[tuple[LadderReference, Player]],
    settings: LadderConfig,
    directory: Path,
    on_game: Callable[[LadderReference, GameResult], None] | None = None,
    on_rung: Callable[[Rung], None] | None = None,
) -> list[Rung]:
    """Play the references in order (weakest first); after one the agent cannot reach, the
    others are skipped (unless `settings.early_stop` is off: then every one is played)."""
    rungs: list[Rung] = []
    out_of_reach: str | None = None
    for reference, opponent in opponents:
        if out_of_reach is not None:
            rung = Rung(reference, opponent.name, settings.games_per_reference, (), Score(),
                        Verdict.SKIPPED, skipped_after=out_of_reach)  # fmt: skip
        else:
            rung = play_reference(agent, opponent, reference, settings,
                                  directory / folder_name(reference.name), on_game)  # fmt: skip
            if rung.verdict is Verdict.CANNOT_REACH and settings.early_stop:
                out_of_reach = reference.name
        _log.debug("ladder %s: %s, %s", reference.name, rung.score, rung.stopped)
        rungs.append(rung)
        if on_rung is not None:
            on_rung(rung)
    return rungs
