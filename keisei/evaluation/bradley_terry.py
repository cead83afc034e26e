"""Maximum-likelihood (Bradley–Terry) ratings with confidence intervals, on the Elo scale.

P(a beats b) = 1 / (1 + 10^((R_b - R_a) / 400)). A draw counts as half a win for each side. The
anchor player's rating is fixed; every other rating is fitted jointly over all recorded games by
Newton's method. A weak Gaussian prior (centred on the anchor, `prior_sd` Elo wide) keeps ratings
finite for players who won or lost every game; with a few dozen games per player it is negligible.
95% intervals come from the inverse of the observed information matrix.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

ELO_PER_NATURAL_UNIT = 400.0 / math.log(10.0)


@dataclass(frozen=True)
class FittedRating:
    player: str
    rating: float
    low: float
    high: float
    games: int


def fit_ratings(
    games: Iterable[tuple[str, str, float]],
    *,
    anchor: str,
    anchor_rating: float = 0.0,
    prior_sd: float = 1000.0,
    iterations: int = 100,
) -> dict[str, FittedRating]:
    """Ratings of every player in `games` = (player a, player b, score of a in {0, 0.5, 1})."""
    rows = list(games)
    names = sorted({name for a, b, _ in rows for name in (a, b)} | {anchor})
    index = {name: i for i, name in enumerate(names)}
    free = [name for name in names if name != anchor]
    column = {name: i for i, name in enumerate(free)}
    a_idx = np.array([index[a] for a, _, _ in rows], dtype=np.int64)
    b_idx = np.array([index[b] for _, b, _ in rows], dtype=np.int64)
    score = np.array([s for _, _, s in rows], dtype=np.float64)
    counts = np.bincount(np.concatenate([a_idx, b_idx]), minlength=len(names))
    theta = np.zeros(len(names))  # natural units, anchor at 0
    precision = (ELO_PER_NATURAL_UNIT / prior_sd) ** 2
    hessian = np.eye(len(free)) * precision
    for _ in range(iterations):
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
        keep = [index[name] for name in free]
        grad = gradient[keep] - precision * theta[keep]
        hessian = full[np.ix_(keep, keep)] + np.eye(len(free)) * precision
        if not free:
            break
        step = np.linalg.solve(hessian, grad)
        theta[keep] += step
        if np.max(np.abs(step)) < 1e-9:
            break
    covariance = np.linalg.inv(hessian) if free else np.zeros((0, 0))
    out = {
        anchor: FittedRating(
            anchor, anchor_rating, anchor_rating, anchor_rating, int(counts[index[anchor]])
        )
    }
    for name in free:
        rating = anchor_rating + ELO_PER_NATURAL_UNIT * theta[index[name]]
        half_width = 1.96 * ELO_PER_NATURAL_UNIT * math.sqrt(covariance[column[name], column[name]])
        out[name] = FittedRating(
            name, rating, rating - half_width, rating + half_width, int(counts[index[name]])
        )
    return out


def expected_score(rating: float, opponent: float) -> float:
    """The Elo expectation of a player rated `rating` against `opponent`."""
    return 1.0 / (1.0 + 10.0 ** ((opponent - rating) / 400.0))
