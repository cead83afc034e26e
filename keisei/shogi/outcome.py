"""How a game ended: the reason from the official rules and the winner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Color = Literal["black", "white"]
EndReason = Literal[
    "checkmate", "no_legal_moves", "repetition", "perpetual_check", "declaration", "max_plies"
]

BLACK: Final[int] = 0
WHITE: Final[int] = 1
COLOR_NAMES: Final[tuple[Color, Color]] = ("black", "white")
END_REASONS: Final[tuple[EndReason, ...]] = (
    "checkmate",
    "no_legal_moves",
    "repetition",
    "perpetual_check",
    "declaration",
    "max_plies",
)


@dataclass(frozen=True, slots=True)
class GameEnd:
    """A finished game's verdict: `reason`, `winner` ("black", "white" or None for a draw), and
    `plies`, the number of moves played in the game when it ended."""

    reason: EndReason
    winner: Color | None
    plies: int

    @property
    def is_draw(self) -> bool:
        return self.winner is None

    @property
    def winner_index(self) -> int:
        """0 black, 1 white, -1 draw (for numpy arrays)."""
        return -1 if self.winner is None else COLOR_NAMES.index(self.winner)

    def reward_for(self, color: int | Color) -> float:
        """+1 if `color` won, -1 if it lost, 0 for a draw."""
        name = COLOR_NAMES[color] if isinstance(color, int) else color
        if self.winner is None:
            return 0.0
        return 1.0 if self.winner == name else -1.0
