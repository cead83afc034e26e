"""PUCT tree search guided by the policy and value heads, with batched leaf evaluation.

AlphaZero-style: each playout walks down the tree choosing the move that maximises
Q + c_puct * P * sqrt(N_parent) / (1 + N), until it reaches a position not yet evaluated or a
finished game. Playouts are gathered into batches with a virtual loss (a path counts as a loss
until its value arrives), so one forward pass serves many leaves; a playout that runs into a leaf
already waiting in the batch is withdrawn (a collision). Game ends come from `ShogiGame`'s rules
(mate, repetition, perpetual check, declaration); a position where the side to move mates in one
(cshogi's 1-ply mate search) is a proven win, not evaluated, and at the root that mate is played
at once. With no playouts the result is the policy's own best move, from one evaluation of the
root.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import cshogi
import numpy as np

from keisei.shogi import ShogiGame
from keisei.usi.evaluator import BatchEvaluator
from keisei.usi.limits import SearchControl

PROGRESS_INTERVAL_S: Final[float] = 0.5


@dataclass(frozen=True)
class SearchResult:
    """The chosen move and what the search knows about it (values for the side to move)."""

    move: int
    usi: str
    value: float
    playouts: int
    pv: list[str]
    seldepth: int
    seconds: float
    mate: int | None = None
    """+1 when the chosen move mates at once."""


class Node:
    """A position in the tree: its legal moves with priors, and per-move visit counts and value
    sums from this position's side to move's point of view."""

    __slots__ = (
        "children",
        "first",
        "moves",
        "n",
        "pending",
        "priors",
        "q_count",
        "q_sum",
        "terminal",
        "visits",
        "w",
    )

    def __init__(self, terminal: float | None = None) -> None:
        self.terminal = terminal
        self.pending = terminal is None
        self.moves: list[int] = []
        self.priors = np.zeros(0, dtype=np.float32)
        self.n = np.zeros(0)
        self.w = np.zeros(0)
        self.children: list[Node | None] = []
        self.q_sum = 0.0
        self.q_count = 0
        self.visits = 0
        self.first = 0

    def expand(self, moves: list[int], priors: np.ndarray, value: float) -> None:
        self.moves = moves
        self.priors = priors.astype(np.float64)
        self.n = np.zeros(len(moves))
        self.w = np.zeros(len(moves))
        self.children = [None] * len(moves)
        self.first = int(np.argmax(priors))
        self.q_sum, self.q_count = float(value), 1
        self.pending = False

    def best_index(self) -> int:
        """A move proven to win at once if there is one, else the most visited move that is not
        proven to lose at once (ties go to the higher prior)."""
        children = self.children
        for index, child in enumerate(children):
            if child is not None and child.terminal == -1.0:
                return index
        ranked = np.lexsort((self.priors, self.n))[::-1]
        for index in ranked:
            child = children[index]
            if child is None or child.terminal != 1.0:
                return int(index)
        return int(ranked[0])


def _terminal_value(game: ShogiGame) -> float:
    """The finished game's result for the side to move there."""
    result = game.result
    assert result is not None
    if result.winner is None:
        return 0.0
    return 1.0 if result.winner == game.side_to_move else -1.0


def _mate_in_one(board: cshogi.Board, legal: list[int] | None) -> int | None:
    """A move that checkmates at once (cshogi's 1-ply mate search, verified on the board), or
    None. `legal`, when given, must contain it. A position with such a move is a proven win for
    its side to move, so the search needs no network evaluation there."""
    move = board.mate_move_in_1ply()
    if not move or (legal is not None and move not in legal):
        return None
    board.push(move)
    mated = board.is_check() and not any(True for _ in board.legal_moves)
    board.pop()
    return move if mated else None


Path = list[tuple[Node, int]]


class PuctSearch:
    """Searches one position at a time with `evaluator` (batch size = its capacity)."""

    def __init__(
        self, evaluator: BatchEvaluator, *, c_puct: float = 1.5, fpu_reduction: float = 0.2
    ) -> None:
        self.evaluator = evaluator
        self.c_puct = c_puct
        self.fpu_reduction = fpu_reduction
        self.collisions = 0

    def run(
        self,
        game: ShogiGame,
        control: SearchControl,
        on_progress: Callable[[SearchResult], None] | None = None,
    ) -> SearchResult:
        """Search `game` (not over; restored on return) within `control`'s limits."""
        if game.is_over:
            raise ValueError(f"cannot search a finished game ({game.result})")
        started = time.monotonic()
        root = Node()
        priors, values = self.evaluator.evaluate_games([game])
        root.expand(game.legal_moves(), priors[0], float(values[0]))
        playouts = seldepth = 0
        last_report = started
        board = game.board_copy()  # mirrors the path, for the mate probe only
        mate = _mate_in_one(board, root.moves) if control.max_playouts > 0 else None
        if mate is not None:
            index = root.moves.index(mate)
            root.children[index] = Node(-1.0)
            root.n[index], root.w[index] = 1.0, 1.0
        elif len(root.moves) > 1:
            while not control.should_stop(playouts):
                done, depth = self._batch(game, board, root, control.max_playouts - playouts)
                playouts += done
                seldepth = max(seldepth, depth)
                now = time.monotonic()
                if on_progress is not None and now - last_report >= PROGRESS_INTERVAL_S:
                    last_report = now
                    on_progress(self._result(root, playouts, seldepth, now - started))
        return self._result(root, playouts, seldepth, time.monotonic() - started)

    # --- one batch of playouts -----------------------------------------------------------

    def _batch(
        self, game: ShogiGame, board: cshogi.Board, root: Node, budget: int
    ) -> tuple[int, int]:
        """Collect up to min(capacity, budget) leaves, evaluate them, back up. Returns
        (playouts completed, deepest path)."""
        evaluator = self.evaluator
        limit = min(evaluator.capacity, budget)
        waiting: list[tuple[Path, Node]] = []
        labels: list[np.ndarray] = []
        done = deepest = collisions = 0
        while len(waiting) < limit and done + len(waiting) < budget and collisions < limit:
            path: Path = []
            node = root
            while True:
                index = self._select(node) if node.visits else node.first
                node.visits += 1
                node.n[index] += 1
                node.w[index] -= 1.0  # virtual loss
                path.append((node, index))
                game.push_move(node.moves[index])
                board.push(node.moves[index])
                child = node.children[index]
                if child is None:
                    if game.is_over:
                        child = node.children[index] = Node(_terminal_value(game))
                    elif _mate_in_one(board, None) is not None:
                        child = node.children[index] = Node(1.0)  # its side to move mates
                    else:
                        child = node.children[index] = Node()
                        game.observation(evaluator.slot(len(waiting)))
                        child.moves = game.legal_moves()
                        labels.append(game.legal_labels())
                        waiting.append((path, child))
                        break
                if child.pending:
                    self._withdraw(path)
                    collisions += 1
                    break
                if child.terminal is not None:
                    self._backup(path, child.terminal)
                    done += 1
                    break
                node = child
            deepest = max(deepest, len(path))
            for _ in path:
                game.pop()
                board.pop()
        self.collisions += collisions
        if waiting:
            priors, values = evaluator.evaluate(labels)
            for (path, child), prior, value in zip(waiting, priors, values, strict=True):
                child.expand(child.moves, prior, float(value))
                self._backup(path, float(value))
            done += len(waiting)
        return done, deepest

    def _select(self, node: Node) -> int:
        n = node.n
        fpu = node.q_sum / node.q_count - self.fpu_reduction
        q = np.where(n > 0, node.w / np.maximum(n, 1.0), fpu)
        q += node.priors * (self.c_puct * math.sqrt(node.visits + 1.0) / (1.0 + n))
        return int(q.argmax())

    @staticmethod
    def _backup(path: Path, leaf_value: float) -> None:
        """`leaf_value` is for the side to move at the end of `path`; flip it at each ply."""
        value = leaf_value
        for node, index in reversed(path):
            value = -value
            node.w[index] += 1.0 + value  # remove the virtual loss, add the real value
            node.q_sum += value
            node.q_count += 1

    @staticmethod
    def _withdraw(path: Path) -> None:
        for node, index in path:
            node.visits -= 1
            node.n[index] -= 1
            node.w[index] += 1.0

    # --- reporting -----------------------------------------------------------------------

    def _result(self, root: Node, playouts: int, seldepth: int, seconds: float) -> SearchResult:
        best = root.best_index()
        visits = root.n[best]
        value = root.w[best] / visits if visits else root.q_sum / root.q_count
        child = root.children[best]
        mate = 1 if child is not None and child.terminal == -1.0 else None
        return SearchResult(
            move=root.moves[best],
            usi=cshogi.move_to_usi(root.moves[best]),
            value=float(value),
            playouts=playouts,
            pv=self._pv(root),
            seldepth=max(seldepth, 1),
            seconds=seconds,
            mate=mate,
        )

    @staticmethod
    def _pv(root: Node) -> list[str]:
        pv: list[str] = []
        node: Node | None = root
        while node is not None and node.moves and not node.pending:
            best = node.best_index()
            pv.append(cshogi.move_to_usi(node.moves[best]))
            if node.n[best] == 0:
                break
            node = node.children[best]
        return pv
