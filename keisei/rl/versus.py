"""Self-play games against a frozen past opponent: which games, which side the learner plays, and
the opponent's moves.

While an opponent is set, the first `count` games of the environment are versus games: in each,
the learner plays one side (alternating from one game to the next in that slot) and the frozen
opponent the other. At every ply the opponent's moves for all versus games where it is to move
come from one batched forward pass of its network, sampled from its policy; they are played but
never enter the learner's batch (`play` says which rows are the learner's). GAE is still computed
per mover over every ply, so a learner's move bootstraps from its own next move two plies later,
and a game the opponent ends is credited to the learner's last move. Without an opponent (before
the run has a checkpoint) versus games are ordinary self-play.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from keisei.model.network import masked_logits


class VersusGames:
    """The versus games of one environment and the frozen opponent that plays in them."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.learner_side = (np.arange(count) % 2).astype(np.int8)
        """The side (0 black, 1 white) the learner plays in each versus game."""
        self.opponent: nn.Module | None = None
        self.opponent_name: str | None = None

    @property
    def active(self) -> bool:
        return self.opponent is not None and self.count > 0

    def set_opponent(self, model: nn.Module | None, name: str | None) -> None:
        """Play the versus games against `model` (frozen here: eval mode, no gradients)."""
        if model is not None:
            model.eval()
            model.requires_grad_(False)
        self.opponent, self.opponent_name = model, name

    def opponent_rows(self, to_move: np.ndarray) -> np.ndarray:
        """The games (indices) where the opponent is to move (`to_move`: each game's side)."""
        if self.opponent is None or self.count == 0:
            return np.zeros(0, dtype=np.intp)
        return np.flatnonzero(to_move[: self.count] != self.learner_side)

    def play(
        self, obs: torch.Tensor, mask: torch.Tensor, to_move: np.ndarray, labels: np.ndarray
    ) -> np.ndarray | None:
        """Put the opponent's moves into `labels` (one per game, the learner's so far); return
        which games' moves are the learner's, or None when all of them are."""
        if self.opponent is None or self.count == 0:
            return None
        theirs = self.opponent_rows(to_move)
        learner = np.ones(len(labels), dtype=bool)
        if theirs.size:
            learner[theirs] = False
            rows = torch.from_numpy(theirs).to(obs.device)
            logits, _ = self.opponent(obs[rows])
            probabilities = torch.softmax(masked_logits(logits.float(), mask[rows]), dim=-1)
            labels[theirs] = torch.multinomial(probabilities, 1).squeeze(-1).cpu().numpy()
        return learner

    def finished(self, index: int, winner: int) -> float | None:
        """A game ended in env `index` (winner 0/1, or -1 for a draw): the learner's score in it
        if it was a versus game against an opponent, else None. The slot's next game gives the
        learner the other side."""
        if index >= self.count:
            return None
        side = int(self.learner_side[index])
        self.learner_side[index] ^= 1
        if self.opponent is None:
            return None
        return 0.5 if winner not in (0, 1) else float(winner == side)

    def state_dict(self) -> dict[str, Any]:
        return {"learner_side": self.learner_side.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sides = np.asarray(state.get("learner_side", []), dtype=np.int8)
        if sides.shape == self.learner_side.shape:
            self.learner_side = sides
