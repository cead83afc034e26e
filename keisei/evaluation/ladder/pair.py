"""One pair of neighbouring references, played until its gap is measured (`--recalibrate`).

The pair plays games in twos from the ladder's openings, colours swapped, until the 95% interval
of its gap is narrower than `ladder.calibration.interval_elo` (after `min_games`) or it played
`max_games` (the rules: `keisei.evaluation.ladder.recalibrate`). It starts from the games it
played in the calibration being remade and in the journal beside it (`journal_of`), and appends
each new game to that journal as it ends, so an interrupted calibration loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from keisei.config import LadderConfig, LadderReference
from keisei.evaluation.ladder.calibration import CalibrationError, Gap, read_calibration
from keisei.evaluation.ladder.play import FLIPPED, opening_seed
from keisei.evaluation.ladder.ratings import Triple
from keisei.evaluation.ladder.registry import ENGINE_FAILURES, SCORES
from keisei.evaluation.ladder.setup import reference_player
from keisei.evaluation.match import MatchSettings, play_match
from keisei.evaluation.ratings.bradley_terry import fit_with_fixed
from keisei.evaluation.result import GameResult
from keisei.log import get_logger

_log = get_logger("evaluation.ladder")
PROGRESS_EVERY = 50
"""A pair says how it stands in the log every this many games."""
@dataclass(frozen=True)
class PairGame:
    """One calibration game, from the side of the pair's stronger (`upper`) reference."""

    pair: int
    """Which pair: its lower reference's place in the ladder."""
    outcome: str
    reason: str
    plies: int


@dataclass(frozen=True)
class PairResult:
    """What one pair of neighbours played."""

    pair: int
    lower: str
    upper: str
    """Their player names in the registries."""
    games: tuple[PairGame, ...]

    @property
    def counted(self) -> tuple[PairGame, ...]:
        """The games that count (those a program lost by failing left out)."""
        return tuple(g for g in self.games if g.reason not in ENGINE_FAILURES)

    def triples(self) -> list[Triple]:
        return [(self.upper, self.lower, SCORES[g.outcome]) for g in self.counted]

    def gap(self, lower_name: str, upper_name: str) -> Gap:
        """The upper reference's lead (its rating with the lower one's fixed at 0)."""
        games = self.counted
        fitted = fit_with_fixed(self.triples(), {self.lower: 0.0})[self.upper]
        wins, draws = (sum(1 for g in games if g.outcome == o) for o in ("win", "draw"))
        return Gap(lower_name, upper_name, len(games), wins, draws, len(games) - wins - draws,
                   fitted.rating, fitted.low, fitted.high)  # fmt: skip


def one_sided(result: PairResult) -> bool:
    """Whether one side of the pair took every point (no draw either): no finite gap."""
    outcomes = {g.outcome for g in result.counted}
    return len(outcomes) <= 1 and "draw" not in outcomes


def _decided(result: PairResult, settings: LadderConfig) -> bool:
    """Whether the pair has played enough (see the module)."""
    games = result.counted
    rules = settings.calibration
    if len(games) >= rules.max_games:
        return True
    if len(games) < rules.min_games or len(games) % 2 or one_sided(result):
        return False
    return result.gap("", "").width < rules.interval_elo


def journal_of(path: str | Path) -> Path:
    """Where `--recalibrate` writing `path` keeps each game as it is played (one JSON line), so
    that an interrupted calibration continues where it stopped; removed once `path` is written."""
    path = Path(path)
    return path.with_name(f"{path.name}.games.jsonl")


def _games_key(settings: LadderConfig) -> dict[str, int]:
    """The settings that make a journalled game one of this calibration's."""
    return {"max_plies": settings.max_plies, "seed": settings.seed,
            "random_opening_plies": settings.random_opening_plies}  # fmt: skip


def _journalled(journal: Path | None, pair: int, lower: str, upper: str,
                settings: LadderConfig) -> tuple[PairGame, ...]:  # fmt: skip
    """The games of this pair in `journal` (played with the same settings), in order."""
    if journal is None or not journal.is_file():
        return ()
    key, games = _games_key(settings), []
    for number, line in enumerate(journal.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            if (row["lower"], row["upper"], row["settings"]) == (lower, upper, key):
                games.append(PairGame(pair, str(row["outcome"]), str(row["reason"]),
                                      int(row["plies"])))  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:  # e.g. a line cut short by a crash
            _log.warning("%s:%d: not a calibration game (%s), ignored", journal, number, exc)
    return tuple(games)


def _journal(journal: Path | None, result: PairResult, game: PairGame,
             settings: LadderConfig) -> None:  # fmt: skip
    if journal is None:
        return
    row = {"lower": result.lower, "upper": result.upper, "settings": _games_key(settings),
           "outcome": game.outcome, "reason": game.reason, "plies": game.plies}  # fmt: skip
    with journal.open("a", encoding="utf-8") as file:  # one short append: whole lines
        file.write(json.dumps(row) + "\n")


CONTINUED = "calibrated before"
"""The end reason given to the games a remade calibration keeps from the one it replaces (the
file holds each pair's wins, draws and losses, not its games)."""


def previous_games(
    path: Path, settings: LadderConfig
) -> dict[tuple[str, str], tuple[PairGame, ...]]:
    """The games of the calibration at `path`, by pair (its lower and upper players' names), if
    it was played with the same game settings; none otherwise (or without a readable file)."""
    if not path.is_file():
        return {}
    try:
        calibration = read_calibration(path)
    except CalibrationError as exc:
        _log.warning("%s; starting afresh", exc)
        return {}
    if any(calibration.settings.get(key) != value for key, value in _games_key(settings).items()):
        _log.info("%s was played with other settings (%s): starting afresh", path,
                  {key: calibration.settings.get(key) for key in _games_key(settings)})  # fmt: skip
        return {}
    players = {reference.name: reference.player for reference in calibration.references}
    games: dict[tuple[str, str], tuple[PairGame, ...]] = {}
    for gap in calibration.gaps:
        if gap.lower in players and gap.upper in players:
            games[(players[gap.lower], players[gap.upper])] = tuple(
                PairGame(0, outcome, CONTINUED, 0)
                for outcome, count in (("win", gap.wins), ("draw", gap.draws),
                                       ("loss", gap.losses))
                for _ in range(count)
            )  # fmt: skip
    return games


def play_pair(
    settings: LadderConfig,
    pair: int,
    lower: LadderReference,
    upper: LadderReference,
    on_game: Callable[[PairGame], None] | None = None,
    journal: Path | None = None,
    previous: Mapping[tuple[str, str], tuple[PairGame, ...]] | None = None,
) -> PairResult:
    """Play neighbours `lower` (at place `pair` in the ladder) and `upper` until decided,
    continuing from the pair's games in `previous` (by the two players' names: those of the
    calibration being remade) and in `journal` (adding each new one to it)."""
    first = reference_player(lower, seed=settings.seed + 1 + pair, timeout_s=settings.usi_timeout_s)
    second = reference_player(upper, seed=settings.seed + 2 + pair,
                              timeout_s=settings.usi_timeout_s)  # fmt: skip
    kept = (previous or {}).get((first.name, second.name), ())
    earlier = tuple(replace(g, pair=pair) for g in kept)
    earlier += _journalled(journal, pair, first.name, second.name, settings)
    result = PairResult(pair, first.name, second.name, earlier)
    if earlier:
        _log.info("%s vs %s: %d games already played (%d in the calibration being remade, %d "
                  "in %s)", upper.name, lower.name, len(earlier), len(kept),
                  len(earlier) - len(kept), journal)  # fmt: skip
        for game in earlier:
            if on_game is not None:
                on_game(game)
    try:
        number = len(earlier)
        limit = 2 * settings.calibration.max_games  # replacements for failed games included
        while not _decided(result, settings) and number < limit:
            match = MatchSettings(games=1, max_plies=settings.max_plies,
                                  random_opening_plies=settings.random_opening_plies,
                                  seed=opening_seed(settings.seed, number // 2))  # fmt: skip
            if number % 2 == 0:
                [game] = play_match(second, first, match)  # the upper reference black
            else:
                [game] = play_match(first, second, match)
                game = replace(game, outcome=FLIPPED[game.outcome])
            played = _pair_game(pair, game)
            result = replace(result, games=(*result.games, played))
            _journal(journal, result, played, settings)
            if on_game is not None:
                on_game(played)
            number += 1
            if number % PROGRESS_EVERY == 0:
                _log_progress(result, upper.name, lower.name)
    finally:
        first.close()
        second.close()
    return result


def _log_progress(result: PairResult, upper: str, lower: str) -> None:
    games = result.counted
    if not games or one_sided(result):
        _log.info("%s vs %s: %d games, one-sided so far", upper, lower, len(games))
        return
    gap = result.gap(lower, upper)
    _log.info("%s vs %s: %d games, %d/%d/%d, gap so far %+.0f Elo (95%% %+.0f to %+.0f)", upper,
              lower, gap.games, gap.wins, gap.draws, gap.losses, gap.elo, gap.low,
              gap.high)  # fmt: skip


def _pair_game(pair: int, game: GameResult) -> PairGame:
    return PairGame(pair, game.outcome, game.reason, game.plies)
