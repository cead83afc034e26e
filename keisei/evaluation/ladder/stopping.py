"""The ladder's sequential test: when to stop playing a reference, and what the games showed.

After each game at a reference the agent's score (wins + half the draws, over the games played)
gets a Wilson score interval at the configured confidence (95% by default). Once at least
`min_games` games are played, the reference is decided as soon as that interval lies entirely
above 0.5 (`passed`: the agent is clearly stronger) or entirely below it (`cannot reach`: clearly
weaker); otherwise play goes on to the planned number of games, where the reference is left
`undecided` unless the interval is clear then. With fewer planned games than `min_games`, the
interval decides at the last game.

Looking after every game makes a decision somewhat more likely than the nominal 5% when the two
players are exactly even: simulating 20 planned games and `min_games` 6, an even match without
draws is decided (either way, half each) about 15% of the time, with 30% draws about 7.5%. A
lopsided match is decided after a handful of games, which is what the test is for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

EVEN = 0.5
"""The score the interval is compared with: the agent and the reference equally strong."""


class Verdict(StrEnum):
    CONTINUE = "continue"
    """Not decided yet: play another game."""
    PASSED = "passed"
    """The score's interval lies entirely above 0.5."""
    CANNOT_REACH = "cannot reach"
    """The score's interval lies entirely below 0.5: stronger references are skipped."""
    UNDECIDED = "undecided"
    """All the planned games were played and the interval still contains 0.5."""
    SKIPPED = "skipped"
    """Not played: a weaker reference was out of reach (never returned by `verdict`)."""


@dataclass(frozen=True)
class Score:
    """The agent's results against one reference."""

    wins: int = 0
    draws: int = 0
    losses: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def points(self) -> float:
        """Wins, and half a point for each draw."""
        return self.wins + 0.5 * self.draws

    @property
    def share(self) -> float:
        """Points per game (0.5 before any game)."""
        return self.points / self.games if self.games else EVEN

    def __str__(self) -> str:
        """Wins/draws/losses, e.g. `5/1/0`."""
        return f"{self.wins}/{self.draws}/{self.losses}"

    def add(self, outcome: str) -> Score:
        """This score after one more game (`win`, `draw` or `loss`, from the agent's side)."""
        if outcome == "win":
            return Score(self.wins + 1, self.draws, self.losses)
        if outcome == "draw":
            return Score(self.wins, self.draws + 1, self.losses)
        if outcome == "loss":
            return Score(self.wins, self.draws, self.losses + 1)
        raise ValueError(f"unknown outcome {outcome!r}: expected win, draw or loss")

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(self.points, self.games, confidence)


def wilson_interval(points: float, games: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a share `points / games` (draws counting half); (0, 1)
    before any game."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if games < 0 or not 0 <= points <= games:
        raise ValueError(f"{points} points in {games} games is not a score")
    if games == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    share = points / games
    denominator = 1 + z * z / games
    centre = share + z * z / (2 * games)
    half_width = z * math.sqrt(share * (1 - share) / games + z * z / (4 * games * games))
    low, high = (centre - half_width) / denominator, (centre + half_width) / denominator
    return max(0.0, min(low, share)), min(1.0, max(high, share))  # exact at 0 and 1


def verdict(score: Score, *, planned: int, min_games: int, confidence: float = 0.95) -> Verdict:
    """What to do after `score` at a reference planned for `planned` games (see the module)."""
    if planned < 1 or min_games < 1:
        raise ValueError(f"planned ({planned}) and min_games ({min_games}) must be at least 1")
    if score.games >= min(min_games, planned):
        low, high = score.interval(confidence)
        if low > EVEN:
            return Verdict.PASSED
        if high < EVEN:
            return Verdict.CANNOT_REACH
    return Verdict.UNDECIDED if score.games >= planned else Verdict.CONTINUE
