"""Ratings for the ladder: Bradley–Terry fits in which some players' ratings are held fixed.

The scale is that of `keisei.evaluation.ratings.bradley_terry` (Elo units, random = 0, the same
weak Gaussian prior centred on the anchor). Its `fit_with_fixed` holds any number of players at
given ratings and fits the others jointly; with only the anchor fixed it is `fit_ratings`. The
rules of which ratings the ladder fits, keeps and stores (documented in `keisei.evaluation.ladder`)
are the pure functions `rate_agent` and `refit_references` here; `references_around` picks the
rated references nearest a rating.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from keisei.evaluation.ratings.bradley_terry import FittedRating, fit_with_fixed

ANCHOR = "random"
"""The reference whose rating is fixed at `ANCHOR_RATING` on every ladder: the random player."""
ANCHOR_RATING = 0.0

Triple = tuple[str, str, float]
"""(player a, player b, score of a in {0, 0.5, 1})."""


def two_sided(games: Iterable[Triple], player: str) -> bool:
    """Whether `player` both took and dropped points in `games` (a draw does both). Without
    that, its maximum-likelihood rating is infinite and the fit reports only the prior."""
    points = total = 0.0
    for a, b, score in games:
        if player in (a, b):
            points += score if player == a else 1.0 - score
            total += 1
    return 0 < points < total


def rate_agent(
    games: Sequence[Triple], agent: str, known: Mapping[str, float]
) -> tuple[FittedRating | None, dict[str, FittedRating]]:
    """The agent's rating from one ladder's `games` (agent, reference, agent's score), and the
    ratings to store for references not in `known`.

    References in `known` (with the anchor) stay fixed; the agent and the other references are
    fitted jointly. A new reference is rated only where the agent's record against it is
    two-sided; the games against one that is not are left out of the fit (they say nothing of
    the agent, and would only pass on the prior's pull on that reference). Without any fixed
    reference among the games there is no scale to rate on: None and nothing new.
    """
    played = {b if a == agent else a for a, b, _ in games}
    fixed = {name: known[name] for name in played if name in known}
    if not fixed:
        return None, {}
    new = {name for name in played - set(known) if two_sided(games, name)}
    used = [game for game in games if {game[0], game[1]} & (set(fixed) | new)]
    fitted = fit_with_fixed(used, fixed)
    return fitted[agent], {name: fitted[name] for name in sorted(new)}


def refit_references(
    games: Sequence[Triple], references: Iterable[str], fixed: Mapping[str, float] | None = None
) -> dict[str, FittedRating]:
    """The ratings of `references` refitted from all stored `games` (every agent free, the
    anchor and the `fixed` ones, e.g. calibrated references, held at theirs): those connected
    to a fixed player through the games and with a two-sided record."""
    held = {ANCHOR: ANCHOR_RATING} | dict(fixed or {})
    fitted = fit_with_fixed(games, held, prior_centre=ANCHOR_RATING)
    reachable = _connected(games, *held)
    return {
        name: fitted[name]
        for name in sorted(set(references) - set(held))
        if name in fitted and name in reachable and two_sided(games, name)
    }


def _connected(games: Iterable[Triple], *starts: str) -> set[str]:
    """The players linked to any of `starts` by a chain of games."""
    neighbours: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in games:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, frontier = set(starts), list(starts)
    while frontier:
        for other in neighbours[frontier.pop()] - seen:
            seen.add(other)
            frontier.append(other)
    return seen


_Rated = TypeVar("_Rated")


def references_around(
    rating: float, ratings: Mapping[_Rated, float]
) -> tuple[_Rated | None, _Rated | None]:
    """The rated reference just below `rating` (at most it) and the one just above it, or None
    where there is none (e.g. to play the two that bracket an agent's current rating)."""
    below = [key for key, value in ratings.items() if value <= rating]
    above = [key for key, value in ratings.items() if value > rating]
    return (
        max(below, key=lambda key: ratings[key]) if below else None,
        min(above, key=lambda key: ratings[key]) if above else None,
    )
