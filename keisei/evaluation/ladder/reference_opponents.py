"""Ladder references as opponents of background evaluation, and the run's ratings on their scale.

Against random alone the Elo curve of a training run stops meaning anything once the agent wins
nearly every game. So each evaluation also plays `evaluation.reference_opponents` (default 2) of
the ladder's references (`ladder.references`, weakest first; see `keisei.evaluation.ladder`):
those just below and just above the agent, which moves up the ladder as the agent improves.
Which ones:

- The references' fixed ratings are those of the calibration (`calibration.py`: the file
  `ladder.calibration.file` names, else `ladder_calibration.json` beside the runs, else the one
  shipped with Keisei), and, for references not in it, those stored in the shared ladder
  registry (`<logging.model_dir>/ladder.sqlite`) by `keisei ladder`. With any of them, the
  references are ordered by those ratings (random = 0), followed by the unrated ones listed
  after every rated one (the ladder's order makes them stronger; unrated ones listed among the
  rated have no place on the scale and are left out). The agent's current rating is the latest
  evaluated snapshot's fitted rating in the run's Elo registry (`fit_run`, references fixed at
  their ratings), 0 before any. A rated reference counts as passed when its rating is at most
  the agent's.
- With none (a ladder of the user's own, neither calibrated nor laddered yet), the references
  keep the ladder's order and one counts as passed when the ladder's sequential test
  (`stopping.verdict`, `ladder.min_games` and `ladder.confidence`) says "passed" over this
  run's latest `ladder.games_per_reference` games against it (by any of the run's players; the
  latest only, so that early snapshots' defeats do not hold a stronger agent back).
- An unrated reference after the rated ones counts as passed by that test too.

The first reference not passed is the next to reach; the `count` references played are those
consecutive in that order with `count // 2` of them below it (2: the one just below and that one),
shifted to stay within the list at either end. A reference that is already a fixed opponent
(random, by default) is not played twice, and one whose program is not installed is left out.

The games go into the run's Elo registry like all evaluation games. `fit_run` rates the run with
random fixed at 0 and every reference with a fixed rating held at it, so the run's curve is on
the ladder's scale (with the ladder's fitter, `bradley_terry.fit_with_fixed`); references without
one are fitted with the run's players. The run's games never change a reference's rating.

The default ladder's references are limited by nodes, so they play in the background worker (at
a lower priority, beside training) as they did when calibrated. A time-limited reference (a
`byoyomi_ms` of the user's) thinks less on a loaded machine and then plays weaker than its
rating.
"""

from __future__ import annotations

import shlex
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from keisei.checkpoint.run_layout import RunLayout
from keisei.config import LadderConfig, LadderReference, check_opponent_spec, parse_opponent_spec
from keisei.evaluation.ladder.calibration import (
    CalibrationError,
    calibration_file,
    read_calibration,
)
from keisei.evaluation.ladder.ratings import ANCHOR, ANCHOR_RATING, Triple, fit_with_fixed
from keisei.evaluation.ladder.registry import (
    ENGINE_FAILURES,
    LadderRegistry,
    LadderRegistryError,
    StoredRating,
)
from keisei.evaluation.ladder.stopping import Score, Verdict, verdict
from keisei.evaluation.players.builtin import GreedyPlayer, RandomPlayer
from keisei.evaluation.players.usi import UsiPlayer
from keisei.evaluation.ratings.bradley_terry import FittedRating
from keisei.evaluation.ratings.elo import EloRegistry, GameRow
from keisei.log import get_logger

_log = get_logger("evaluation.references")


def reference_name(reference: LadderReference) -> str:
    """The reference's player name in the registries (as `keisei ladder` plays it)."""
    kind, argument = parse_opponent_spec(reference.opponent)
    if kind == "random":
        return RandomPlayer().name
    if kind == "greedy":
        return GreedyPlayer().name
    if kind == "checkpoint":
        from keisei.checkpoint import resolve_checkpoint
        from keisei.evaluation.players.network import checkpoint_player_name

        return checkpoint_player_name(resolve_checkpoint(argument))
    return UsiPlayer(argument, options=reference.options, byoyomi_ms=reference.byoyomi_ms,
                     nodes=reference.nodes).name  # fmt: skip


def usable_references(
    references: Sequence[LadderReference],
) -> tuple[list[LadderReference], list[str]]:
    """The references whose program exists, and the programs missing (each named once)."""
    usable: list[LadderReference] = []
    missing: list[str] = []
    for reference in references:
        try:
            check_opponent_spec(reference.opponent)
        except ValueError:
            _, argument = parse_opponent_spec(reference.opponent)
            words = shlex.split(argument) if argument else []
            program = words[0] if words else reference.opponent
            if program not in missing:
                missing.append(program)
            continue
        usable.append(reference)
    return usable, missing


def run_ladder_settings(run_dir: str | Path) -> LadderConfig:
    """The `ladder` section of the run's `config.yaml`, or the defaults (no file, or a section
    that does not validate: then with a warning)."""
    path = RunLayout(run_dir).config
    if not path.is_file():
        return LadderConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        section = data.get("ladder", {}) if isinstance(data, dict) else {}
        return LadderConfig.model_validate(section or {})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        _log.warning("%s: cannot read its ladder section, using the default references: %s",
                     path, exc)  # fmt: skip
        return LadderConfig()


def stored_ratings(
    path: str | Path, calibration: str | Path | None = None
) -> dict[str, StoredRating]:
    """The references' fixed ratings: those of the calibration file `calibration` (default: the
    one the default settings name for runs beside the ladder registry `path`), and for the
    other references those stored in the ladder registry at `path` (the file is not created).
    A calibration that cannot be read is a `LadderRegistryError` naming it."""
    if calibration is None:
        calibration = calibration_file(LadderConfig(), Path(path).parent)
    try:
        calibrated = read_calibration(calibration).ratings()
    except CalibrationError as exc:
        raise LadderRegistryError(str(exc)) from exc
    stored: dict[str, StoredRating] = {}
    if Path(path).is_file():
        with LadderRegistry(path) as shared:
            stored = shared.stored()
    return {name: s for name, s in stored.items() if name not in calibrated} | {
        name: c for name, c in calibrated.items() if name != ANCHOR
    }


def _triple(game: GameRow) -> Triple:
    return game.black, game.white, 0.5 if game.result == "draw" else float(game.result == "black")


def fit_run(
    games: Sequence[GameRow], stored: Mapping[str, float], anchor_rating: float = ANCHOR_RATING
) -> dict[str, FittedRating]:
    """Every player's rating from a run's games (those a program lost by crashing or hanging
    left out), random fixed at `anchor_rating` and each reference in `stored` that played fixed
    at its stored rating (with stored ratings: on the ladder's scale, random = 0)."""
    triples = [_triple(game) for game in games if game.reason not in ENGINE_FAILURES]
    players = {name for a, b, _ in triples for name in (a, b)}
    fixed = {ANCHOR: anchor_rating} | {
        name: rating for name, rating in stored.items() if name in players and name != ANCHOR
    }
    return fit_with_fixed(triples, fixed)


def current_rating(
    registry: EloRegistry, stored: Mapping[str, float], games: Sequence[GameRow] | None = None
) -> float:
    """The latest evaluated snapshot's fitted rating (`fit_run` over `games`, default all the
    registry's), or 0 before any."""
    latest = registry.latest_agent()
    if latest is None:
        return ANCHOR_RATING
    fitted = fit_run(registry.games() if games is None else games, stored)
    return fitted[latest.name].rating if latest.name in fitted else ANCHOR_RATING


def _outcome(result: str, side: str) -> str:
    """A game's result (`black`, `white` or `draw`) from `side`'s view."""
    return "draw" if result == "draw" else "win" if result == side else "loss"


def recent_scores(games: Sequence[GameRow], names: Sequence[str], window: int) -> dict[str, Score]:
    """The score of whoever played each of `names` in its latest `window` games (not counting
    games a program lost by crashing or hanging)."""
    wanted = set(names)
    recent: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=window))
    for game in games:
        if game.reason in ENGINE_FAILURES:
            continue
        if game.black in wanted:
            reference, side = game.black, "white"
        elif game.white in wanted:
            reference, side = game.white, "black"
        else:
            continue
        recent[reference].append(_outcome(game.result, side))
    scores: dict[str, Score] = {}
    for name in names:
        score = Score()
        for outcome in recent.get(name, ()):
            score = score.add(outcome)
        scores[name] = score
    return scores


@dataclass(frozen=True)
class Choice:
    """A reference chosen for an evaluation."""

    reference: LadderReference
    player: str
    """Its player name in the registries."""
    stored: float | None
    """Its stored rating in the ladder registry, or None (random, the anchor, has none)."""


def _passed(score: Score, ladder: LadderConfig) -> bool:
    decision = verdict(score, planned=ladder.games_per_reference, min_games=ladder.min_games,
                       confidence=ladder.confidence)  # fmt: skip
    return decision is Verdict.PASSED


def choose_references(
    references: Sequence[LadderReference],
    names: Sequence[str],
    stored: Mapping[str, float],
    rating: float,
    scores: Mapping[str, Score],
    count: int,
    ladder: LadderConfig,
) -> list[Choice]:
    """The `count` references to play (see the module): `references` in the ladder's order with
    their player `names`, the `stored` ratings, the agent's current `rating` and the run's
    recent `scores` against each."""
    if count <= 0 or not references:
        return []
    ratings = {name: stored[name] for name in names if name in stored and name != ANCHOR}
    listed = list(zip(references, names, strict=True))
    if ratings:
        rated = [(r, n) for r, n in listed if n in ratings or n == ANCHOR]
        last_rated = max(i for i, (_, n) in enumerate(listed) if n in ratings)
        order = sorted(rated, key=lambda item: ratings.get(item[1], ANCHOR_RATING))
        order += [(r, n) for r, n in listed[last_rated + 1 :] if n not in ratings and n != ANCHOR]
    else:
        order = listed
    reach = len(order)
    for i, (_, name) in enumerate(order):
        if ratings and (name in ratings or name == ANCHOR):
            passed = ratings.get(name, ANCHOR_RATING) <= rating
        else:
            passed = _passed(scores.get(name, Score()), ladder)
        if not passed:
            reach = i
            break
    start = max(0, min(reach - count // 2, len(order) - count))
    return [Choice(r, n, ratings.get(n)) for r, n in order[start : start + count]]


def select_references(
    registry: EloRegistry,
    references: Sequence[LadderReference],
    ladder: LadderConfig,
    shared: str | Path,
    count: int,
) -> list[Choice]:
    """The references an evaluation of the run behind `registry` plays next (before its agent is
    registered): from the stored ratings in the ladder registry `shared`, else by climbing."""
    if count <= 0 or not references:
        return []
    names = [reference_name(reference) for reference in references]
    calibration = calibration_file(ladder, Path(shared).parent)
    stored = {name: s.rating for name, s in stored_ratings(shared, calibration).items()}
    games = registry.games()
    known = any(name in stored for name in names if name != ANCHOR)
    rating = current_rating(registry, stored, games) if known else ANCHOR_RATING
    scores = recent_scores(games, names, ladder.games_per_reference)
    chosen = choose_references(references, names, stored, rating, scores, count, ladder)
    _log.debug("reference opponents for an agent at %.0f: %s", rating,
               ", ".join(c.reference.name for c in chosen))  # fmt: skip
    return chosen


# ---------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ReferenceLine:
    """A reference drawn on the run's Elo curve: a labelled horizontal line at its rating."""

    label: str
    player: str
    rating: float
    source: str
    """`anchor` (random), `stored` (the ladder registry's) or `fitted` (from this run's games)."""

    @property
    def text(self) -> str:
        how = "" if self.source == "stored" else f", {self.source}"
        return f"{self.label} ({self.rating:.0f}{how})"


def reference_labels(ladder: LadderConfig, stored: Mapping[str, StoredRating]) -> dict[str, str]:
    """Player name → label of every known reference: the ladder's (`ladder.references`) and
    every one with a stored rating."""
    labels = {name: s.label for name, s in stored.items()}
    for reference in ladder.references:
        try:
            labels[reference_name(reference)] = reference.name
        except Exception as exc:  # e.g. a checkpoint reference that is gone
            _log.debug("reference %s has no player name here: %s", reference.name, exc)
    labels.setdefault(ANCHOR, ANCHOR)
    return labels


def played_references(registry: EloRegistry, labels: Mapping[str, str]) -> list[str]:
    """The references (by player name) the run's agent snapshots played."""
    kinds = {p.name: p.kind for p in registry.players()}
    played: dict[str, None] = {}
    for game in registry.games():
        if kinds.get(game.subject or "") != "agent":
            continue
        for name in (game.black, game.white):
            if name != game.subject and name in labels:
                played[name] = None
    return list(played)


def reference_lines(
    played: Sequence[str],
    labels: Mapping[str, str],
    stored: Mapping[str, float],
    fitted: Mapping[str, FittedRating],
    anchor_rating: float = ANCHOR_RATING,
) -> list[ReferenceLine]:
    """What the Elo plot draws for the references: random always (at the anchor), and each
    reference `played`, at its stored rating or else its rating fitted from the run; weakest
    first."""
    lines = [ReferenceLine(labels.get(ANCHOR, ANCHOR), ANCHOR, anchor_rating, "anchor")]
    for name in played:
        if name == ANCHOR:
            continue
        if name in stored:
            lines.append(ReferenceLine(labels.get(name, name), name, stored[name], "stored"))
        elif name in fitted:
            lines.append(ReferenceLine(labels.get(name, name), name, fitted[name].rating,
                                       "fitted"))  # fmt: skip
    return sorted(lines, key=lambda line: line.rating)


@dataclass(frozen=True)
class ReferenceScore:
    """The latest agent snapshot's results against one reference."""

    line: ReferenceLine
    agent: str
    step: int
    score: Score


def latest_scores(registry: EloRegistry, lines: Sequence[ReferenceLine]) -> list[ReferenceScore]:
    """For each reference drawn, the results of the latest agent snapshot (highest step) that
    played it; references no snapshot played are left out."""
    players = {p.name: p for p in registry.players()}
    per: dict[tuple[str, str], Score] = defaultdict(Score)
    for game in registry.games():
        subject = players.get(game.subject or "")
        if subject is None or subject.kind != "agent":
            continue
        if subject.name not in (game.black, game.white):
            continue
        side = "black" if subject.name == game.black else "white"
        opponent = game.white if side == "black" else game.black
        per[(subject.name, opponent)] = per[(subject.name, opponent)].add(
            _outcome(game.result, side)
        )
    out = []
    for line in lines:
        agents = [a for a, o in per if o == line.player]
        if not agents:
            continue
        agent = max(agents, key=lambda a: players[a].step or 0)
        out.append(ReferenceScore(line, agent, players[agent].step or 0, per[(agent, line.player)]))
    return out
