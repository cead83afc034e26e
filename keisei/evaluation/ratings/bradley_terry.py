"""Maximum-likelihood (Bradley–Terry) ratings with confidence intervals, on the Elo scale.

P(a beats b) = 1 / (1 + 10^((R_b - R_a) / 400)). A draw counts as half a win for each side. The
anchor player's rating is fixed; every other rating is fitted jointly over all recorded games by
Newton's method. A weak Gaussian prior (centred on the anchor, `prior_sd` Elo wide) keeps ratings
finite for players who won or lost every game; with a few dozen games per player it is negligible.
95% intervals come from the inverse of the observed information matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

ELO_PER_NATURAL_UNIT = 400.0 / math.log(10.0)
_MAX_STEP = 4.0
"""The largest Newton step, in natural units (about 700 Elo), so far-off starts converge."""


@dataclass(frozen=True)
class FittedRating:
    player: str
    rating: float
    low: float
    high: float
    games: int


def fit_with_fixed(
    games: Iterable[tuple[str, str, float]],
    fixed: Mapping[str, float],
    *,
    prior_centre: float = 0.0,
    prior_sd: float = 1000.0,
    iterations: int = 100,
) -> dict[str, FittedRating]:
    """Ratings of every player in `games` and `fixed`: those in `fixed` keep their rating (and a
    zero-width interval), the others are fitted jointly by Newton's method with 95% intervals
    from the observed information (which treats the fixed ratings as exact)."""
    rows = list(games)
    if not fixed:
        raise ValueError("fit_with_fixed needs at least one player with a fixed rating")
    names = sorted({name for a, b, _ in rows for name in (a, b)} | set(fixed))
    index = {name: i for i, name in enumerate(names)}
    free = [name for name in names if name not in fixed]
    keep = np.array([index[name] for name in free], dtype=np.int64)
    a_idx = np.array([index[a] for a, _, _ in rows], dtype=np.int64)
    b_idx = np.array([index[b] for _, b, _ in rows], dtype=np.int64)
    score = np.array([s for _, _, s in rows], dtype=np.float64)
    counts = np.bincount(np.concatenate([a_idx, b_idx]), minlength=len(names))
    theta = np.array(  # natural units, relative to the prior's centre
        [(fixed[name] - prior_centre) / ELO_PER_NATURAL_UNIT if name in fixed else 0.0
         for name in names]
    )  # fmt: skip
    precision = (ELO_PER_NATURAL_UNIT / prior_sd) ** 2
    hessian = np.eye(len(free)) * precision
    for _ in range(iterations if free else 0):
        p = 1.0 / (1.0 + np.exp(-(theta[a_idx] - theta[b_idx])))
        residual = score - p
        weight = p * (1.0 - p)
        gradient = np.zeros(len(names))
        np.add.at(gradient, a_idx, residual)
        np.add.at(gradient, b_idx, -residual)
        full = np.zeros((len(names), len(names)))
        np.add.at(full, (a_idx, a_idx), weight)
        np.add.at(full, (b_idx, b_idx), weight)
        np.add.at(full, (a_idx, b_idx), -weight)
        np.add.at(full, (b_idx, a_idx), -weight)
        grad = gradient[keep] - precision * theta[keep]
        hessian = full[np.ix_(keep, keep)] + np.eye(len(free)) * precision
        step = np.clip(np.linalg.solve(hessian, grad), -_MAX_STEP, _MAX_STEP)
        theta[keep] += step
        if np.max(np.abs(step)) < 1e-9:
            break
    covariance = np.linalg.inv(hessian) if free else np.zeros((0, 0))
    out = {
        name: FittedRating(
            name, float(rating), float(rating), float(rating), int(counts[index[name]])
        )
        for name, rating in fixed.items()
    }
    for column, name in enumerate(free):
        rating = float(prior_centre + ELO_PER_NATURAL_UNIT * theta[index[name]])
        half_width = 1.96 * ELO_PER_NATURAL_UNIT * math.sqrt(float(covariance[column, column]))
        out[name] = FittedRating(
            name, rating, rating - half_width, rating + half_width, int(counts[index[name]])
        )
    return out


def fit_ratings(
    games: Iterable[tuple[str, str, float]],
    *,
    anchor: str,
    anchor_rating: float = 0.0,
    prior_sd: float = 1000.0,
    iterations: int = 100,
) -> dict[str, FittedRating]:
    """Ratings of every player in `games` = (player a, player b, score of a in {0, 0.5, 1}),
    the anchor fixed at `anchor_rating`."""
    return fit_with_fixed(
        games,
        {anchor: anchor_rating},
        prior_centre=anchor_rating,
        prior_sd=prior_sd,
        iterations=iterations,
    )


def expected_score(rating: float, opponent: float) -> float:
    """The Elo expectation of a player rated `rating` against `opponent`."""
    return 1.0 / (1.0 + 10.0 ** ((opponent - rating) / 400.0))
